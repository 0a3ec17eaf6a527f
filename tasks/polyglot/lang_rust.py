"""Polyglot Rust: cargo from the host's toolchain (rustup's, bound read-only), offline.

Only ``src/**/*.rs`` of the workspace enters the scoring sandbox: ``Cargo.toml`` is the
task's (an agent's ``autotests = false`` or ``[lib] test = false`` is gone), a ``build.rs``,
``.cargo/`` config, ``examples/`` or ``benches/`` the task does not have never arrive, and
``tests/`` holds the task's tests alone. Each integration test target runs with libtest's
JSON report (``--format json``, an unstable option enabled for the test binary by
``RUSTC_BOOTSTRAP=1``) into ``.exapt/report.jsonl``; ``--include-ignored`` runs the tests
Exercism marks ``#[ignore]``. Expected: the ``#[test]`` functions of the task's test files.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from exapt.records import Task
from exapt.tasks.polyglot.base import REPORT_DIR, Exercise, ReportLanguage, Toolchain, count_calls
from exapt.tasks.verdict import Seen

_TEST_FN = re.compile(r"#\[test\](?:\s*#\[[^\]]*\])*\s*(?:pub\s+)?(?:async\s+)?fn\s+(\w+)")


def _command(exercise: Exercise) -> str:
    targets = " ".join(
        f"--test {shlex.quote(PurePosixPath(p).stem)}"
        for p in sorted(exercise.test_files)
        if p.startswith("tests/") and p.endswith(".rs")
    )
    report = f"{REPORT_DIR}/report.jsonl"
    return (
        f"rm -rf {REPORT_DIR}; mkdir -p {REPORT_DIR}; "
        f"cargo test --offline --quiet {targets} --no-fail-fast -- --include-ignored "
        f"-Z unstable-options --format json > {report}"
    )


class RustLanguage(ReportLanguage):
    name = "rust"
    report = "report.jsonl"

    def toolchain(self) -> Toolchain:
        # not resolved: rustup's proxies are symlinks that dispatch on their own name
        rustc = shutil.which("rustc") or str(Path.home() / ".cargo/bin/rustc")
        if not Path(rustc).exists():
            return Toolchain("rust", "rustc/cargo not found (install rustup or Debian's cargo)")
        try:
            sysroot = subprocess.run(
                [rustc, "--print", "sysroot"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            return Toolchain("rust", f"rustc does not run: {exc}")
        bin_dir = Path(sysroot) / "bin"
        if not (bin_dir / "cargo").exists():
            return Toolchain("rust", f"no cargo beside rustc in {bin_dir}")
        # The toolchain's own binaries (not rustup's proxies, which want a writable
        # RUSTUP_HOME), bound read-only; cargo's home and build output go to /tmp.
        binds = () if sysroot.startswith("/usr/") else (sysroot,)
        return Toolchain(
            "rust",
            "",
            _command,
            timeout_s=300.0,
            env={
                "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
                "RUSTC": str(bin_dir / "rustc"),
                "CARGO_HOME": "/tmp/cargo-home",
                "CARGO_TARGET_DIR": "/tmp/target",
                "CARGO_NET_OFFLINE": "true",
                "CARGO_TERM_COLOR": "never",
                "RUSTC_BOOTSTRAP": "1",  # libtest's --format json is an unstable option
                "HOME": "/tmp",
            },
            ro_binds=binds,
            drop_dirs=("target",),
        )

    def keeps(self, path: str, task: Task) -> bool:
        return path.startswith("src/") and path.endswith(".rs")

    def expected(self, tests: Mapping[str, str]) -> list[str]:
        names: list[str] = []
        for path, text in tests.items():
            if path.startswith("tests/") and path.endswith(".rs"):
                names += count_calls(_TEST_FN, text)
        return names

    def parse(self, data: bytes) -> Seen:
        items = []
        for line in data.decode("utf-8", "replace").splitlines():
            if not line.startswith("{"):
                continue  # what else the binary printed
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") != "test" or event.get("event") == "started":
                continue
            outcome = {"ok": "pass", "failed": "fail", "ignored": "skip"}.get(
                str(event.get("event")), "error"
            )
            name = str(event.get("name", "")).rsplit("::", 1)[-1]
            items.append((name, outcome, "", False))
        return Seen.of(items)


LANGUAGE = RustLanguage()
