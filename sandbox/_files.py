"""Host-side access to a workspace folder that hostile code may have filled with traps.

Code inside a sandbox can plant symlinks (``ws/x -> /etc/passwd``), FIFOs that block a
reader forever, or deep trees. Every function here walks the workspace one component at a
time with ``O_NOFOLLOW`` relative to a directory fd, so nothing outside the workspace is ever
read or written on the host, and opens files ``O_NONBLOCK`` so a FIFO cannot hang us.
A symlink anywhere on the path is refused (``SandboxError``), never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

from exapt.sandbox.base import MAX_DEPTH, SandboxError, WorkspaceTooLarge, workspace_relpath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_parent(root: Path, rel: str, *, create: bool, owner: tuple[int, int] | None) -> int:
    """Return an fd of the directory holding ``rel``'s last component (caller closes it)."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in rel.split("/")[:-1]:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    if owner is not None:
                        os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SandboxError(
                        f"refusing to follow a symlink or non-directory at {part!r} in {rel!r}"
                    ) from exc
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_file(
    root: Path, path: str, data: str | bytes, owner: tuple[int, int] | None = None
) -> None:
    """Write ``data`` to ``root/path`` (path relative or under /workspace), creating folders.

    A symlink at any component raises ``SandboxError``; ``owner`` (uid, gid) is applied to
    what is created so the unprivileged user inside can change it.
    """
    rel = workspace_relpath(path)
    payload = data.encode() if isinstance(data, str) else data
    dfd = _open_parent(root, rel, create=True, owner=owner)
    try:
        name = rel.split("/")[-1]
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o644, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                raise SandboxError(f"refusing to write {rel!r}: not a regular file") from exc
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SandboxError(f"refusing to write {rel!r}: not a regular file")
            if owner is not None:
                os.fchown(fd, *owner)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def _read_fd(fd: int, rel: str, max_bytes: int | None) -> bytes:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise SandboxError(f"refusing to read {rel!r}: not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise SandboxError(f"{rel!r} is larger than {max_bytes} bytes")
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def read_file(root: Path, path: str) -> bytes:
    """Read ``root/path``; ``FileNotFoundError`` if absent, ``SandboxError`` for a symlink/FIFO."""
    rel = workspace_relpath(path)
    dfd = _open_parent(root, rel, create=False, owner=None)
    try:
        name = rel.split("/")[-1]
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SandboxError(f"refusing to follow the symlink {rel!r}") from exc
            raise
        try:
            return _read_fd(fd, rel, None)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def snapshot(root: Path, max_bytes: int, max_files: int = 1 << 31) -> dict[str, bytes]:
    """Every regular file under ``root`` (symlinks, FIFOs, devices skipped), sorted by path.

    Raises ``WorkspaceTooLarge`` past ``max_bytes`` of content, ``max_files`` entries
    (files and folders) or ``MAX_DEPTH`` nested folders. Walks with an explicit stack of
    directory fds (never recursion: a 10 000-deep tree must not raise ``RecursionError``).
    """
    out: dict[str, bytes] = {}
    total = 0
    entries = 0
    stack: list[tuple[int, str, int]] = [(os.open(root, _DIR_FLAGS), "", 0)]
    try:
        while stack:
            dfd, prefix, depth = stack.pop()
            try:
                with os.scandir(dfd) as it:
                    listing = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
                entries += len(listing)
                if entries > max_files:
                    raise WorkspaceTooLarge("files", max_files, f"more than {max_files} entries")
                for name, is_dir in listing:
                    rel = prefix + name
                    if is_dir:
                        if depth + 1 > MAX_DEPTH:
                            raise WorkspaceTooLarge(
                                "depth", MAX_DEPTH, f"{rel[:200]!r} is nested too deep"
                            )
                        try:
                            stack.append(
                                (os.open(name, _DIR_FLAGS, dir_fd=dfd), rel + "/", depth + 1)
                            )
                        except OSError:
                            continue  # replaced by a symlink meanwhile, or unreadable
                        continue
                    data = _read_regular(dfd, name, rel, max_bytes - total)
                    if data is None:
                        continue
                    total += len(data)
                    out[rel] = data
            finally:
                os.close(dfd)
    finally:
        for dfd, _, _ in stack:
            os.close(dfd)
    return dict(sorted(out.items()))


def _read_regular(dfd: int, name: str, rel: str, room: int) -> bytes | None:
    """The content of regular file ``name`` in ``dfd``; None for anything else."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None  # a symlink (ELOOP), a socket, or a file that vanished
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > room:
            raise WorkspaceTooLarge("bytes", room, f"{rel[:200]!r} does not fit")
        chunks = []
        got = 0
        while chunk := os.read(fd, 1 << 20):
            got += len(chunk)
            if got > room:  # grew while we read it
                raise WorkspaceTooLarge("bytes", room, f"{rel[:200]!r} does not fit")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def clear(root: Path) -> None:
    """Remove everything inside ``root`` (not ``root`` itself); symlinks removed, not followed."""
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            # rmtree is fd-based on Linux and does not follow symlinks (symlink attack safe).
            with contextlib.suppress(OSError, RecursionError):
                shutil.rmtree(entry.path)
            if os.path.lexists(entry.path):
                _force_rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _force_rmtree(path: str) -> None:
    # Hostile code may chmod 000 its folders (only root ignores that) or nest them deeper
    # than shutil.rmtree's recursion allows: coreutils' rm walks iteratively (fts) and
    # never follows symlinks; chmod first so a non-root caller can enter every folder.
    subprocess.run(["chmod", "-R", "u+rwx", "--", path], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", "--", path], capture_output=True, check=False)


def seed(
    root: Path, files: Mapping[str, str | bytes] | None, owner: tuple[int, int] | None
) -> None:
    for name, data in (files or {}).items():
        write_file(root, name, data, owner)
