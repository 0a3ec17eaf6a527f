"""A size- and file-count-limited workspace: a tmpfs of its own, mounted on the host folder.

A workspace on the host's disk could fill it (one ``head -c`` of /dev/zero) or hold
millions of files. As root, each sandbox's workspace folder is a fresh tmpfs with
``size=Limits.workspace_mb`` and ``nr_inodes=Limits.workspace_files``: writes past either
fail inside the sandbox with ENOSPC, the host's disk is never touched, and emptying the
workspace is one unmount (no walk of a hostile tree). Its pages are charged to the memory
cgroup of whoever writes them (the sandbox). Both backends bind the same folder, so the
quota holds for bwrap and docker alike.

The sandbox's state folder (the session's io files and FIFOs, the cwd file) is a small
tmpfs too: on the host's disk each ``mkfifo`` cost 0.15-2 ms, several per command.

Without root (no mount), ``mount`` returns False and the workspace is a plain folder:
``RLIMIT_FSIZE`` still bounds each file and ``snapshot`` refuses what is over the limits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount(
    path: Path, size_mb: int, files: int, owner: tuple[int, int] | None, mode: int = 0o755
) -> bool:
    """Mount a tmpfs of ``size_mb`` and ``files`` inodes at ``path``; False if not allowed."""
    if os.geteuid() != 0:
        return False
    uid, gid = owner or (os.getuid(), os.getgid())
    # +1 inode: the root folder of the tmpfs counts too
    options = f"size={size_mb}m,nr_inodes={files + 1},mode={mode:o},uid={uid},gid={gid}"
    rc = _libc.mount(
        b"exapt-workspace",
        os.fsencode(path),
        b"tmpfs",
        _MS_NOSUID | _MS_NODEV,
        options.encode(),
    )
    return rc == 0


def unmount(path: Path) -> None:
    """Detach the tmpfs at ``path`` (lazily: a process still inside cannot keep it)."""
    _libc.umount2(os.fsencode(path), _MNT_DETACH)


def is_mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point of ours (the cleanup of a crashed process)."""
    target = os.fsencode(os.path.realpath(path))
    try:
        with open("/proc/self/mounts", "rb") as fh:
            return any(
                line.split()[1] == target and line.startswith(b"exapt-workspace ") for line in fh
            )
    except OSError:
        return False
