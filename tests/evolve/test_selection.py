"""Selection policies: frequencies match each formula (chi-square at p = 0.001, fixed seed)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from exapt.evolve.base import Candidate
from exapt.evolve.selection import make_selector
from exapt.evolve.selection.metaproductivity import MetaproductivitySelector
from exapt.evolve.selection.pareto import ParetoSelector

DRAWS = 20_000


def chi2_ok(counts: Counter[str], expected: dict[str, float], draws: int = DRAWS) -> bool:
    """Pearson's chi-square against ``expected`` probabilities, at p = 0.001 (the critical
    value by the Wilson-Hilferty approximation, accurate to < 1% for df >= 2)."""
    assert set(counts) <= set(expected), f"drew outside the support: {set(counts) - set(expected)}"
    support = [k for k, p in expected.items() if p > 0]
    stat = sum(
        (counts.get(k, 0) - draws * expected[k]) ** 2 / (draws * expected[k]) for k in support
    )
    df = max(1, len(support) - 1)
    z = 3.0902  # the 0.999 quantile of the standard normal
    critical = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return stat < critical


def cand(
    vid: str,
    score: float,
    *,
    parent: str | None = None,
    children: int = 0,
    eligible: bool = True,
    tasks: dict[str, float] | None = None,
    gen: int = 0,
) -> Candidate:
    return Candidate(vid, parent, gen, score, tasks or {}, children, eligible)


def draw(name: str, population: list[Candidate], **options: object) -> Counter[str]:
    selector = make_selector(name, **options)
    return Counter(selector.select(population, DRAWS, random.Random(7)))


def test_score_child_matches_dgm_formula() -> None:
    population = [
        cand("a", 0.9, children=0), cand("b", 0.6, children=2), cand("c", 0.5, children=0),
        cand("d", 0.1, children=1), cand("x", 1.0, eligible=False),
    ]  # fmt: skip

    def weight(c: Candidate) -> float:  # sigmoid(10 (s - 0.5)) / (1 + children), DGM's form
        return 1 / (1 + math.exp(-10 * (c.score - 0.5))) / (1 + c.children)

    total = sum(weight(c) for c in population if c.eligible)
    expected = {c.variant_id: weight(c) / total for c in population if c.eligible}
    counts = draw("score_child", population)
    assert "x" not in counts  # ineligible (rejected / failed) members are never chosen
    assert chi2_ok(counts, expected)
    # The control: a wrong formula (no children term) is rejected by the same test.
    plain = {c.variant_id: 1 / (1 + math.exp(-10 * (c.score - 0.5))) for c in population[:4]}
    wrong = {k: v / sum(plain.values()) for k, v in plain.items()}
    assert not chi2_ok(counts, wrong)


def test_random_is_uniform_over_eligible() -> None:
    population = [cand(v, s) for v, s in [("a", 0.9), ("b", 0.1), ("c", 0.0)]]
    population.append(cand("z", 1.0, eligible=False))
    counts = draw("random", population)
    assert chi2_ok(counts, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_best_takes_the_highest_eligible_score() -> None:
    population = [cand("a", 0.4), cand("b", 0.7), cand("c", 0.9, eligible=False)]
    assert make_selector("best").select(population, 3, random.Random(0)) == ["b", "b", "b"]


def test_no_eligible_parent_is_an_error() -> None:
    with pytest.raises(ValueError, match="no eligible parent"):
        make_selector("score_child").select([cand("a", 1, eligible=False)], 1, random.Random(0))


# --- HGM: clade metaproductivity with Thompson sampling ---------------------------------


def hgm_tree() -> list[Candidate]:
    """root (2 of 4 solved) -> a (1 of 2) -> a1 (2 of 2, rejected); root -> b (0 of 2)."""
    return [
        cand("root", 0.5, tasks={"t1": 1, "t2": 1, "t3": 0, "t4": 0}),
        cand("a", 0.5, parent="root", tasks={"t1": 1, "t2": 0}, gen=1),
        cand("a1", 1.0, parent="a", tasks={"t1": 1, "t2": 1}, eligible=False, gen=2),
        cand("b", 0.0, parent="root", tasks={"t1": 0, "t2": 0}, gen=1),
    ]


def test_metaproductivity_counts_the_whole_clade() -> None:
    selector = MetaproductivitySelector(n_pseudo=3)
    params = selector.beta_params(hgm_tree())
    # root: own 4 evals capped at 3 pseudo-evals of its mean (0.5) + a's 2 + a1's 2 + b's 2
    succ_root = 3 * 0.5 + 1 + 2 + 0
    assert params["root"] == pytest.approx((1 + succ_root, 1 + 9 - succ_root))
    # a: own (2 < 3, kept as they are) + its rejected child a1, which still counts as clade
    assert params["a"] == pytest.approx((1 + 1 + 2, 1 + 4 - 3))
    assert "b" not in params  # HGM expands only nodes with a positive mean
    assert set(params) == {"root", "a"}


def argmax_probabilities(
    params: dict[str, tuple[float, float]], grid: int = 20_000
) -> dict[str, float]:
    """P(theta_i is the largest), theta_i ~ Beta(a_i, b_i) independent: the integral of
    pdf_i(x) * prod_j cdf_j(x) over [0, 1], by the midpoint rule."""
    xs = [(k + 0.5) / grid for k in range(grid)]

    def pdf(a: float, b: float) -> list[float]:
        log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        return [math.exp(log_norm + (a - 1) * math.log(x) + (b - 1) * math.log(1 - x)) for x in xs]

    pdfs = {v: pdf(a, b) for v, (a, b) in params.items()}
    cdfs = {}
    for v, p in pdfs.items():
        acc, out = 0.0, []
        for value in p:
            acc += value / grid
            out.append(acc)
        cdfs[v] = out
    probs = {}
    for v in params:
        total = 0.0
        for k in range(grid):
            prod = pdfs[v][k]
            for w in params:
                if w != v:
                    prod *= cdfs[w][k]
            total += prod / grid
        probs[v] = total
    norm = sum(probs.values())
    return {v: p / norm for v, p in probs.items()}


def test_metaproductivity_thompson_frequencies_match_the_posterior() -> None:
    extra = cand("c", 0.25, parent="root", tasks={"t1": 1, "t2": 0, "t3": 0, "t4": 0}, gen=1)
    population = [*hgm_tree(), extra]
    selector = MetaproductivitySelector(n_pseudo=3)
    expected = argmax_probabilities(selector.beta_params(population))
    assert min(expected.values()) > 0.05  # a test with real uncertainty between nodes
    counts = draw("metaproductivity", population, n_pseudo=3)
    assert chi2_ok(counts, expected)


# --- GEPA: per-task Pareto frontier -----------------------------------------------------


def pareto_population() -> list[Candidate]:
    return [
        cand("strong", 0.75, tasks={"t1": 1, "t2": 1, "t3": 1, "t4": 0}),
        cand("niche", 0.25, tasks={"t1": 0, "t2": 0, "t3": 0, "t4": 1}),  # alone on t4
        cand("copy", 0.5, tasks={"t1": 1, "t2": 1, "t3": 0, "t4": 0}),  # dominated by strong
        cand("weak", 0.0, tasks={"t1": 0, "t2": 0, "t3": 0, "t4": 0}),
        cand("gone", 1.0, tasks={"t1": 1, "t2": 1, "t3": 1, "t4": 1}, eligible=False),
    ]


def test_pareto_keeps_every_task_winner_and_drops_the_dominated() -> None:
    selector = ParetoSelector()
    fronts = selector.fronts(pareto_population())
    assert fronts == {"t1": {"strong", "copy"}, "t2": {"strong", "copy"}, "t3": {"strong"},
                      "t4": {"niche"}}  # fmt: skip
    kept = selector.undominated(pareto_population())
    assert kept == {"t1": {"strong"}, "t2": {"strong"}, "t3": {"strong"}, "t4": {"niche"}}
    weights = selector.weights(pareto_population())
    assert weights == {"niche": 0.25, "strong": 0.75}  # 3 fronts vs 1, the low mean kept
    counts = draw("pareto", pareto_population())
    assert chi2_ok(counts, {"strong": 0.75, "niche": 0.25, "copy": 0.0, "weak": 0.0})


def test_pareto_with_nothing_solved_draws_uniformly() -> None:
    population = [cand(v, 0.0, tasks={"t1": 0}) for v in ("a", "b")]
    assert ParetoSelector().weights(population) == {"a": 0.5, "b": 0.5}
    # GEPA's own rule: the unsolved task is a front of both; one dominates the other (a tie)
    assert list(ParetoSelector(skip_unsolved=False).weights(population).values()) == [1.0]
