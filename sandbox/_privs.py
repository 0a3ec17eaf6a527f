"""Dropping root inside a sandbox: the ``setpriv`` command line the bwrap backend, its
session server and the browser jail run their process under (``bwrap.py``'s doc says why
``setpriv`` and not bwrap's own ``--uid``)."""

from __future__ import annotations

SETPRIV = "/usr/bin/setpriv"
#: the uid and gid sandboxed commands run as (``nobody``/``nogroup``)
NOBODY = 65534


def setpriv_argv(
    uid: int = NOBODY, caps: str = "-all", *, ambient: bool = False, bounding: bool = True
) -> list[str]:
    """``setpriv`` to ``uid`` (as uid and gid, no supplementary groups, ``no_new_privs``)
    with the inheritable set ``caps``, and the ambient and bounding sets too when asked;
    ends with ``--``, so the command follows.

    Example:
        setpriv_argv(65533, "-all,+setuid,+setgid", ambient=True)  # a session server
    """
    argv = [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs"]
    argv.append(f"--inh-caps={caps}")
    if ambient:
        argv.append(f"--ambient-caps={caps}")
    if bounding:
        argv.append(f"--bounding-set={caps}")
    return [*argv, "--"]
