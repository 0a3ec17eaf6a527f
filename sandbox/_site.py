"""``StaticSite``: the only web pages a browser episode can reach, served from one folder.

The pages are not served by a listening server: the browser environment intercepts every
request (Playwright's ``BrowserContext.route``) and answers the ones for ``origin`` from
``root`` here, in the exapt process. Nothing listens on a port, so no other program or
page can reach these files, and the browser itself needs no network at all (it runs in an
empty network namespace under bubblewrap). ``origin`` defaults to a host under ``.invalid``
(RFC 2606), which resolves nowhere, so a request that ever escaped routing would fail.

Only regular files under ``root`` are served, read-only, for GET and HEAD; a path that
leaves ``root`` (``..``, an encoded ``%2e%2e``, a symlink pointing outside) is a 404.

Example:
    site = StaticSite(Path(miniwob.__file__).parent / "html")
    site.url("miniwob/click-test.html")   # "http://miniwob.invalid/miniwob/click-test.html"
    site.lookup(site.url("core/core.js"), "GET").status   # 200
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_ORIGIN = "http://miniwob.invalid"


@dataclass(frozen=True)
class Response:
    """What the site answers: an HTTP status, a content type and the body."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class StaticSite:
    """Read-only files of ``root`` at ``origin`` (``scheme://host``, no path)."""

    root: Path
    origin: str = DEFAULT_ORIGIN
    _resolved: Path = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ValueError(f"site origin must be http(s)://HOST, got {self.origin!r}")
        if not Path(self.root).is_dir():
            raise ValueError(f"site root {str(self.root)!r} is not a folder")
        object.__setattr__(self, "origin", f"{parts.scheme}://{parts.netloc}")
        object.__setattr__(self, "_resolved", Path(self.root).resolve())

    def url(self, path: str = "") -> str:
        """The absolute URL of ``path`` (relative to ``root``) on this site."""
        return f"{self.origin}/{path.lstrip('/')}"

    def owns(self, url: str) -> bool:
        """True when ``url`` is on this site (same scheme, host and port)."""
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}".lower() == self.origin.lower()

    def lookup(self, url: str, method: str = "GET") -> Response | None:
        """The response for ``url``, or None when ``url`` is not on this site."""
        if not self.owns(url):
            return None
        if method.upper() not in ("GET", "HEAD"):
            return Response(405, "text/plain", b"method not allowed")
        path = self._file(unquote(urlsplit(url).path))
        if path is None:
            return Response(404, "text/plain", b"not found")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        return Response(200, kind, b"" if method.upper() == "HEAD" else path.read_bytes())

    def _file(self, path: str) -> Path | None:
        """The regular file under ``root`` that ``path`` names, or None."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if not parts or any(p == ".." or "\\" in p or "\0" in p for p in parts):
            return None
        target = self._resolved.joinpath(*parts)
        try:
            real = target.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_relative_to(self._resolved) or not real.is_file():
            return None
        return real
