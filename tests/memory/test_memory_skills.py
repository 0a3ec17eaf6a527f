"""Skills: proposed from passing solutions, inserted only when their tests pass in a real
sandbox, versioned, merged when duplicate, scored by use and retired."""

from __future__ import annotations

from pathlib import Path

import pytest

from exapt.memory.base import SkillCheck
from exapt.memory.skill_extract import propose
from exapt.memory.skills import SkillLibrary, render_skills_module
from exapt.memory.store import MemoryStore
from exapt.tasks.base import SandboxFactory

pytestmark = pytest.mark.bwrap

SOLUTION = '''
import math

LIMIT = 10

def _helper(n):
    return n * 2

def double_all(xs):
    """Double every number of a list.

    >>> double_all([1, 2])
    [2, 4]
    """
    return [_helper(x) for x in xs]

def is_square(n: int) -> bool:
    """True when n is a perfect square."""
    return math.isqrt(n) ** 2 == n

def untested(x):
    return x
'''

TESTS = """
from solution import is_square

def test_square():
    assert is_square(16)
    assert not is_square(15)
    value = 3
    assert is_square(value)  # reads a local: not taken

class T:
    def test_more(self):
        self.assertEqual(is_square(25), True)
"""


def _lib(tmp_path: Path) -> SkillLibrary:
    return SkillLibrary(MemoryStore(str(tmp_path)))


def _one(code: str, name: str, tests: list[str], doc: str = "") -> object:
    from exapt.memory.skill_extract import SkillProposal

    return SkillProposal(name, code, "(s)", doc or f"{name} doc", tests, {"task_id": "t"})


def test_propose_takes_functions_helpers_and_their_visible_tests() -> None:
    got = {
        p.name: p
        for p in propose({"solution.py": SOLUTION.encode(), "test_sol.py": TESTS.encode()})
    }
    assert set(got) == {"double_all", "is_square"}  # untested is not proposed
    double = got["double_all"]
    assert "def _helper" in double.code and "import math" in double.code
    assert double.tests == ["assert double_all([1, 2]) == [2, 4]"]
    assert got["is_square"].tests == [
        "assert is_square(16)",
        "assert not is_square(15)",
        "assert is_square(25) == True",
    ]
    assert got["is_square"].signature == "(n: int) -> bool"


def test_verified_skill_is_inserted_and_failing_one_never(
    tmp_path: Path, skill_check: SkillCheck, embedder: object
) -> None:
    lib = _lib(tmp_path)
    proposals = propose({"solution.py": SOLUTION.encode(), "test_sol.py": TESTS.encode()})
    results = [lib.insert(p, skill_check) for p in proposals]
    assert [r.action for r in results] == ["inserted", "inserted"]
    wrong = _one("def add(a, b):\n    return a - b\n", "add", ["assert add(2, 3) == 5"])
    result = lib.insert(wrong, skill_check)  # type: ignore[arg-type]
    assert result.action == "rejected" and "AssertionError" in result.reason
    crash = _one("import nonexistent_module\ndef f(x):\n    return x\n", "f", ["assert f(1) == 1"])
    assert lib.insert(crash, skill_check).action == "rejected"  # type: ignore[arg-type]
    hang = _one("def g(x):\n    while True: pass\n", "g", ["assert g(1) == 1"])
    assert lib.insert(hang, skill_check).action == "rejected"  # type: ignore[arg-type]
    assert lib.store.count("skills") == 2
    assert lib.latest("add") is None


def test_same_name_new_behaviour_is_a_new_version(
    tmp_path: Path, skill_check: SkillCheck, embedder: object
) -> None:
    lib = _lib(tmp_path)
    v1 = _one(
        "def clamp(x):\n    return max(0, x)\n", "clamp", ["assert clamp(-1) == 0"], "Clamp x."
    )
    v2 = _one(
        "def clamp(x):\n    return min(max(0, x), 10)\n",
        "clamp",
        ["assert clamp(11) == 10"],
        "Clamp x.",
    )
    assert lib.insert(v1, skill_check).action == "inserted"  # type: ignore[arg-type]
    result = lib.insert(v2, skill_check)  # type: ignore[arg-type]
    assert (result.action, result.id) == ("versioned", "skill:clamp:v2")
    versions = lib.versions("clamp")
    assert [(v.metadata["version"], v.metadata["status"]) for v in versions] == [
        (1, "superseded"),
        (2, "active"),
    ]
    assert [i.id for i in lib.search("clamp a number", k=3)] == ["skill:clamp:v2"]


def test_near_duplicate_is_merged_only_when_behaviour_matches(
    tmp_path: Path, skill_check: SkillCheck, embedder: object
) -> None:
    lib = _lib(tmp_path)
    doc = "Return the largest element of a list of numbers."
    a = _one(
        "def biggest(xs):\n    return max(xs)\n", "biggest", ["assert biggest([1, 3, 2]) == 3"], doc
    )
    b = _one(
        "def biggest(xs):\n    best = xs[0]\n    for x in xs:\n"
        "        best = x if x > best else best\n    return best\n",
        "biggest",
        ["assert biggest([5, 4]) == 5"],
        doc,
    )
    wrong = _one(  # passes its own test, but differs on [1, 3, 2]
        "def biggest(xs):\n    return xs[0]\n", "biggest", ["assert biggest([5, 4]) == 5"], doc
    )
    assert lib.insert(a, skill_check).action == "inserted"  # type: ignore[arg-type]
    merged = lib.insert(b, skill_check)  # type: ignore[arg-type]
    assert (merged.action, merged.id) == ("merged", "skill:biggest:v1")
    item = lib.latest("biggest")
    assert item is not None and item.metadata["merged"] == 1
    assert "assert biggest([5, 4]) == 5" in item.payload()["tests"]
    assert lib.insert(wrong, skill_check).action == "versioned"  # type: ignore[arg-type]


def test_usage_score_and_retiring(
    tmp_path: Path, skill_check: SkillCheck, embedder: object
) -> None:
    lib = _lib(tmp_path)
    p = _one("def inc(x):\n    return x + 1\n", "inc", ["assert inc(1) == 2"], "Add one to x.")
    sid = lib.insert(p, skill_check).id  # type: ignore[arg-type]
    assert sid is not None
    assert lib.search("increment a number by one", k=1, track=True)[0].id == sid
    assert lib.record_use([sid], "print('no call')", passed=True) == []
    for _ in range(6):
        assert lib.record_use([sid], "y = inc(3)", passed=False) == [sid]
    meta = lib.store.get("skills", ids=[sid])[0].metadata
    assert (meta["retrieved"], meta["used"], meta["passed_when_used"]) == (1, 6, 0)
    assert lib.prune(min_uses=5, min_rate=0.2) == {"retired": 1, "dropped": 0}
    assert lib.search("increment a number by one", k=1) == []
    assert lib.prune(drop=True)["dropped"] == 1
    assert lib.store.count("skills") == 0


def test_rendered_skills_module_imports_and_works(
    tmp_path: Path, sandbox_factory: SandboxFactory, skill_check: SkillCheck, embedder: object
) -> None:
    lib = _lib(tmp_path)
    for p in propose({"solution.py": SOLUTION.encode(), "test_sol.py": TESTS.encode()}):
        lib.insert(p, skill_check)
    module = render_skills_module(lib.search("double each number in a list and check squares", k=2))
    files: dict[str, str | bytes] = {
        "skills.py": module,
        "use.py": "from skills import double_all, is_square\n"
        "print(double_all([3]), is_square(9))\n",
    }
    with sandbox_factory(files) as box:
        res = box.exec(["python3", "use.py"])
    assert res.ok, res.stderr
    assert res.stdout.strip() == "[6] True"
