"""Output with a cap: the one piece every way of reading a command's streams shares.

A command may print 100 MB; we keep the first ``limit`` bytes of each stream, read and
drop the rest (so it never sits in memory and the command never blocks on a full pipe),
and remember that we cut it.
"""

from __future__ import annotations

import os


class Capped:
    """The first ``limit`` bytes of one stream; ``truncated`` once anything was dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk

    def read_from(self, fd: int, size: int = 65536) -> bool:
        """Read what ``fd`` (non-blocking) has into the buffer; False at end of file."""
        try:
            chunk = os.read(fd, size)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self.add(chunk)
        return True

    def bytes(self) -> bytes:
        return bytes(self.data)
