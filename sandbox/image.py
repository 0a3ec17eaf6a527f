"""Build the docker backend's image locally: a debootstrap rootfs imported with the SDK.

No registry is needed (none may be reachable): ``debootstrap --variant=minbase`` fetches
Debian packages from the apt mirror, and ``docker import`` turns the folder into an image.
``python3`` (the full standard library, which test harnesses need) is always included.
Needs root (debootstrap) and a running engine. ~1-2 min and ~250 MB.

Example:
    build_image("exapt-sandbox:latest")   # what `exapt sandbox build-image` runs
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from exapt.errors import ConfigError, UnavailableError
from exapt.sandbox._docker_client import DEFAULT_IMAGE, docker_client

DEFAULT_SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
_CHANGES = [
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    "ENV LANG=C.UTF-8",
    "WORKDIR /workspace",
    'LABEL org.opencontainers.image.title="exapt sandbox"',
]


def apt_mirror() -> str:
    """The Debian mirror apt on this machine uses (sources.list or deb822), else deb.debian.org."""
    candidates = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"(?:^deb\s+(?:\[[^\]]*\]\s+)?|^URIs:\s*)(\S+)", text, re.M):
            uri = m.group(1)
            if "security" not in uri and uri.rstrip("/").endswith("/debian"):
                return uri
    return FALLBACK_MIRROR


def build_image(
    name: str = DEFAULT_IMAGE,
    *,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    include: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> float:
    """Build ``name`` from a fresh debootstrap rootfs; returns the seconds it took.

    Raises ``UnavailableError`` (not root, debootstrap missing, no engine) or
    ``ConfigError`` (a bad name); nothing is left behind on failure.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/-]*(:[\w][\w.-]{0,127})?", name):
        raise ConfigError(f"invalid image name {name!r}", hint="e.g. exapt-sandbox:latest")
    if os.geteuid() != 0:
        raise UnavailableError(
            "building the image needs root (debootstrap)", hint="run it with sudo"
        )
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise UnavailableError(
            "debootstrap is not installed", hint="apt-get install -y debootstrap"
        )
    client = docker_client()
    packages = ",".join(dict.fromkeys(["python3", *include]))
    repository, _, tag = name.partition(":")
    start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="exapt-rootfs-"))
    try:
        url = mirror or apt_mirror()
        log(f"debootstrap {suite} ({packages}) from {url} ...")
        proc = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={packages}", suite, str(root), url],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-5:])
            raise UnavailableError(
                f"debootstrap failed (exit {proc.returncode}):\n{tail}",
                hint="check that the Debian mirror is reachable, or pass --mirror",
            )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (root / junk).glob("*"):
                if f.is_file():
                    f.unlink()
        log(f"docker import -> {name} ...")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            client.api.import_image_from_stream(
                tar.stdout, repository=repository, tag=tag or "latest", changes=_CHANGES
            )
        finally:
            tar.stdout.close()
            tar.wait()
        client.images.get(name)  # raises if the import did not produce it
    finally:
        shutil.rmtree(root, ignore_errors=True)
    took = time.monotonic() - start
    log(f"built {name} in {took:.0f} s")
    return took
