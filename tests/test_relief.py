from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_hpi import encode_study
from optuna_hpi import NRReliefFImportanceEvaluator
from optuna_hpi import NRReliefFResult
from optuna_hpi.importance._relief import _brute_neighbours
from optuna_hpi.importance._relief import _neighbours
from optuna_hpi.importance._relief import rrelieff


def _study(
    params: list[dict[str, Any]], dists: dict[str, BaseDistribution], values: list[float]
) -> optuna.Study:
    study = optuna.create_study()
    study.add_trials(
        [
            optuna.create_trial(params=p, distributions={k: dists[k] for k in p}, value=float(v))
            for p, v in zip(params, values)
        ]
    )
    return study


def _unit(name: str) -> dict[str, BaseDistribution]:
    return {name: FloatDistribution(0.0, 1.0)}


# --- Hand oracles (DESIGN.md section 4) --------------------------------------------------------


def test_one_attribute_oracle() -> None:
    # R0 -> R1 (dt 0, dA .4), R1 -> R0 (dt 0, dA .4), R2 -> R1 (dt 1, dA .6):
    # N_dC = 1, N_dA = 1.4, N_dCdA = .6, W = .6 / 1 - (1.4 - .6) / (3 - 1) = 0.2.
    study = _study([{"x": 0.0}, {"x": 0.4}, {"x": 1.0}], _unit("x"), [0, 0, 1])
    result = NRReliefFImportanceEvaluator(n_neighbors=1, seed=0).analyze(study)
    assert isinstance(result, NRReliefFResult)
    assert result.values["x"] == pytest.approx(0.2, abs=1e-9)
    assert result.shares == {"x": 1.0}
    assert result.n_neighbors == 1 and result.n_iterations == 3


def test_two_attribute_oracle_and_clipping() -> None:
    # R0 -> R2 (dt 1, dA (1, .2)), R1 -> R0 (dt 0, dA (.3, 1)), R2 -> R0 (dt 1, dA (1, .2)):
    # N_dC = 2, N_dA = (2.3, 1.4), N_dCdA = (2, .4); W = (1 - .3 / 1, .2 - 1 / 1) = (.7, -.8).
    dists = {"a": FloatDistribution(0.0, 1.0), "b": FloatDistribution(0.0, 1.0)}
    params = [{"a": 0.0, "b": 0.0}, {"a": 0.3, "b": 1.0}, {"a": 1.0, "b": 0.2}]
    study = _study(params, dists, [0, 0, 1])
    evaluator = NRReliefFImportanceEvaluator(n_neighbors=1, seed=0)
    result = evaluator.analyze(study)
    assert result.values["a"] == pytest.approx(0.7, abs=1e-9)
    assert result.values["b"] == pytest.approx(-0.8, abs=1e-9)
    assert result.shares == {"a": 1.0, "b": 0.0}
    importances = evaluator.evaluate(study)
    assert list(importances) == ["a", "b"]
    assert importances["a"] == pytest.approx(0.7, abs=1e-9)
    assert importances["b"] == 0.0
    assert all(type(v) is float for v in importances.values())


def test_oracle_on_log_scale_and_maximize() -> None:
    # lr = 10 ** (-4 + 4 x) on a log-scaled range puts the trials at the unit positions
    # 0, .4, 1 of the first oracle; maximizing -y is minimizing y.
    dists = {"lr": FloatDistribution(1e-4, 1.0, log=True)}
    params = [{"lr": 10 ** (-4 + 4 * u)} for u in (0.0, 0.4, 1.0)]
    study = optuna.create_study(direction="maximize")
    study.add_trials(
        [
            optuna.create_trial(params=p, distributions=dists, value=-v)
            for p, v in zip(params, [0, 0, 1])
        ]
    )
    result = NRReliefFImportanceEvaluator(n_neighbors=1, seed=0).analyze(study)
    assert result.values["lr"] == pytest.approx(0.2, abs=1e-9)


def test_four_trials_two_neighbours_rank_weights_by_hand() -> None:
    # x = 0, .1, .3, .7 on [0, 1]; y = 0, 1, 1, 3 (diffs of y divided by 3); J = 2, sigma = 1.
    # Neighbours by distance: R0 -> R1 (.1), R2 (.3); R1 -> R0 (.1), R2 (.2);
    # R2 -> R1 (.2), R0 (.3); R3 -> R2 (.4), R1 (.6). 0-based ranks 0 and 1 give
    # d1 = 1 and exp(-1), normalised to a and b per instance.
    a = 1.0 / (1.0 + math.exp(-1.0))
    b = math.exp(-1.0) / (1.0 + math.exp(-1.0))
    pairs = [  # (weight, target diff, attribute diff)
        (a, 1 / 3, 0.1), (b, 1 / 3, 0.3),
        (a, 1 / 3, 0.1), (b, 0.0, 0.2),
        (a, 0.0, 0.2), (b, 1 / 3, 0.3),
        (a, 2 / 3, 0.4), (b, 2 / 3, 0.6),
    ]  # fmt: skip
    n_dc = sum(w * dt for w, dt, _ in pairs)
    n_da = sum(w * da for w, _, da in pairs)
    n_dcda = sum(w * dt * da for w, dt, da in pairs)
    assert n_dc == pytest.approx(4 / 3)
    expected = n_dcda / n_dc - (n_da - n_dcda) / (4 - n_dc)

    study = _study([{"x": v} for v in (0.0, 0.1, 0.3, 0.7)], _unit("x"), [0, 1, 1, 3])
    result = NRReliefFImportanceEvaluator(n_neighbors=2, sigma=1.0, seed=0).analyze(study)
    assert result.values["x"] == pytest.approx(expected, abs=1e-9)
    # Plain (unweighted) neighbours would give another value: sigma really enters.
    flat = NRReliefFImportanceEvaluator(n_neighbors=2, sigma=1e9, seed=0).analyze(study)
    assert abs(flat.values["x"] - expected) > 1e-3


def test_tied_distances_share_the_rank_of_the_first() -> None:
    # R0 at .5 has R1 (.3) and R2 (.7) both at distance .2: both rank 0, weights 1/2 each,
    # whatever sigma is. With k = 2 and 3 trials every instance sees both others.
    study = _study([{"x": v} for v in (0.5, 0.3, 0.7)], _unit("x"), [0, 1, 3])
    small = NRReliefFImportanceEvaluator(n_neighbors=2, sigma=0.5, seed=0).analyze(study)
    # By hand, dt = |dy| / 3, d = (R0: 1/2, 1/2; R1: R0 .2 rank 0, R2 .4 rank 1;
    # R2: R0 .2 rank 0, R1 .4 rank 1) with exp(-(1 / .5)^2) = exp(-4) for rank 1.
    e = math.exp(-4.0)
    p, q = 1 / (1 + e), e / (1 + e)
    pairs = [
        (0.5, 1 / 3, 0.2), (0.5, 1.0, 0.2),
        (p, 1 / 3, 0.2), (q, 2 / 3, 0.4),
        (p, 1.0, 0.2), (q, 2 / 3, 0.4),
    ]  # fmt: skip
    n_dc = sum(w * dt for w, dt, _ in pairs)
    n_da = sum(w * da for w, _, da in pairs)
    n_dcda = sum(w * dt * da for w, dt, da in pairs)
    expected = n_dcda / n_dc - (n_da - n_dcda) / (3 - n_dc)
    assert small.values["x"] == pytest.approx(expected, abs=1e-9)


# --- An independent, loop-based reference of the documented conventions ------------------------


def _reference(
    values: np.ndarray,
    categorical: np.ndarray,
    y: np.ndarray,
    k: int,
    sigma: float,
    scale: float,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    n, d = values.shape
    counts = np.ones(n) if counts is None else counts

    def diff(i: int, j: int, a: int) -> float:
        u, v = values[i, a], values[j, a]
        if math.isnan(u) or math.isnan(v):
            return 0.0  # inactive in one or both: no evidence (the parent's diff records it)
        if categorical[a]:
            return float(u != v)
        return abs(u - v)

    span = y.max() - y.min()
    n_dc, n_da, n_dcda = 0.0, np.zeros(d), np.zeros(d)
    for i in range(n):
        if counts[i] == 0:
            continue

        def gap(j: int, a: int, i: int = i) -> float:
            # Distance contribution: categorical diffs are scaled; "absent vs present" is 0.
            if categorical[a]:
                return scale * diff(i, j, a)
            return diff(i, j, a)

        dist = {j: round(sum(gap(j, a) for a in range(d)), 10) for j in range(n) if j != i}
        nbrs = sorted(dist, key=lambda j: (dist[j], j))[:k]
        ranks = [next(r for r, m in enumerate(nbrs) if dist[m] == dist[j]) for j in nbrs]
        d1 = np.exp(-((np.array(ranks) / sigma) ** 2))
        w = d1 / d1.sum() * counts[i]
        for j, wj in zip(nbrs, w):
            dt = abs(y[i] - y[j]) / span
            n_dc += wj * dt
            for a in range(d):
                n_da[a] += wj * diff(i, j, a)
                n_dcda[a] += wj * dt * diff(i, j, a)
    m = counts.sum()
    n_dc = min(max(n_dc, 1e-9), m - 1e-9)
    return n_dcda / n_dc - (n_da - n_dcda) / (m - n_dc)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_loop_reference_with_categoricals_conditionals_and_ties(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    values = np.column_stack(
        [
            rng.uniform(size=n),
            rng.integers(0, 4, size=n) / 3.0,  # an int grid: many tied distances
            rng.integers(0, 3, size=n).astype(float),  # a categorical
            np.where(rng.uniform(size=n) < 0.4, np.nan, rng.uniform(size=n)),  # conditional
            np.where(rng.uniform(size=n) < 0.3, np.nan, rng.integers(0, 2, size=n)),
        ]
    )
    categorical = np.array([False, False, True, False, True])
    y = rng.normal(size=n)
    counts = rng.integers(0, 3, size=n).astype(float)
    for k, sigma, scale, c in [(5, 2.0, 0.25, None), (12, 20.0, 1.0, counts)]:
        got = rrelieff(
            values, categorical, y, c, n_neighbors=k, sigma=sigma, categorical_distance_scale=scale
        )
        want = _reference(values, categorical, y, k, sigma, scale, c)
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_kdtree_and_brute_force_pick_the_same_neighbours() -> None:
    rng = np.random.default_rng(0)
    for emb in (rng.uniform(size=(300, 4)), rng.integers(0, 3, size=(300, 4)) / 2.0):
        rows = np.arange(300)
        tree_nbr, tree_dist = _neighbours(emb, rows, 15)
        brute_nbr, brute_dist = _brute_neighbours(emb, rows, 15)
        np.testing.assert_array_equal(tree_nbr, brute_nbr)
        np.testing.assert_allclose(tree_dist, brute_dist)
        # (distance, index) order, self excluded.
        assert not np.any(tree_nbr == rows[:, None])
        full = np.abs(emb[:, None, :] - emb[None, :, :]).sum(axis=2).round(10)
        np.fill_diagonal(full, np.inf)
        np.testing.assert_array_equal(tree_nbr, np.argsort(full, axis=1, kind="stable")[:, :15])


def test_bootstrap_copies_weight_instances_not_neighbours() -> None:
    study = _study([{"x": v} for v in (0.0, 0.1, 0.3, 0.7)], _unit("x"), [0, 1, 1, 3])
    data = encode_study(study)
    evaluator = NRReliefFImportanceEvaluator(n_neighbors=3, sigma=1.0, seed=0)
    resampled = data.subset(np.array([3, 0, 0, 1, 2, 3, 3]))
    got = evaluator._statistics(resampled)["weights"]
    # 4 distinct trials out of 7 rows: J = round(3 * 4 / 7) = 2 and sigma = 4 / 7.
    want = _reference(
        data.unit(), np.array([False]), data.y, 2, 4 / 7, 0.25, np.array([2.0, 1.0, 1.0, 3.0])
    )
    np.testing.assert_allclose(got, want, atol=1e-12)


# --- Behaviour on functions with a known answer -------------------------------------------------


def _random_study(
    n: int, dists: dict[str, BaseDistribution], f: Any, seed: int = 0
) -> optuna.Study:
    rng = np.random.default_rng(seed)
    params = []
    for _ in range(n):
        p: dict[str, Any] = {}
        for name, d in dists.items():
            if isinstance(d, CategoricalDistribution):
                p[name] = d.choices[int(rng.integers(len(d.choices)))]
            elif isinstance(d, IntDistribution):
                p[name] = int(rng.integers(d.low, d.high + 1))
            else:
                assert isinstance(d, FloatDistribution)
                p[name] = float(rng.uniform(d.low, d.high))
        params.append(p)
    return _study(params, dists, [f(p) for p in params])


def _ishigami(p: dict[str, Any]) -> float:
    return float(np.sin(p["x1"]) + 7 * np.sin(p["x2"]) ** 2 + 0.1 * p["x3"] ** 4 * np.sin(p["x1"]))


def test_ishigami_ranks_main_effects_above_inert_params() -> None:
    dists: dict[str, BaseDistribution] = {
        f"x{i}": FloatDistribution(-math.pi, math.pi) for i in (1, 2, 3)
    }
    dists.update({"z1": FloatDistribution(0, 1), "z2": IntDistribution(0, 10)})
    study = _random_study(1000, dists, _ishigami)
    result = NRReliefFImportanceEvaluator(seed=0).analyze(study)
    w = result.values
    assert min(w["x1"], w["x2"]) > max(w["z1"], w["z2"]) + 0.01
    assert w["x2"] > w["x1"]
    assert abs(w["z1"]) < 0.02 and abs(w["z2"]) < 0.02
    assert result.shares["z1"] == 0.0 and result.shares["z2"] == 0.0
    assert sum(result.shares.values()) == pytest.approx(1.0)
    # get_param_importances' normalisation of evaluate() is exactly the shares.
    importances = optuna.importance.get_param_importances(
        study, evaluator=NRReliefFImportanceEvaluator(seed=0)
    )
    assert importances == pytest.approx(result.shares, abs=1e-12)


def _categorical_driver(p: dict[str, Any]) -> float:
    return 3.0 * (p["opt"] == "b") + float(np.sin(p["x1"])) + 0.5 * p["x2"]


def test_categorical_driver_is_found() -> None:
    dists: dict[str, BaseDistribution] = {
        "opt": CategoricalDistribution(["a", "b", "c"]),
        "x1": FloatDistribution(-math.pi, math.pi),
        "x2": FloatDistribution(-math.pi, math.pi),
        "z1": FloatDistribution(0, 1),
        "z2": FloatDistribution(1e-3, 1, log=True),
    }
    study = _random_study(600, dists, _categorical_driver, seed=1)
    w = NRReliefFImportanceEvaluator(seed=0).analyze(study).values
    assert w["opt"] > 0.1
    assert w["opt"] > max(w["x1"], w["x2"]) > max(w["z1"], w["z2"])
    assert abs(w["z1"]) < 0.03 and abs(w["z2"]) < 0.03
    # The failure mode the distance scale fixes: with a full categorical distance every
    # neighbour shares the category and the driver is (nearly) missed.
    plain = NRReliefFImportanceEvaluator(categorical_distance_scale=1.0, seed=0).analyze(study)
    assert plain.values["opt"] < 0.2 * w["opt"]


def test_conditional_presence_drives_the_response() -> None:
    # "head" is suggested only with model "big"; "big" costs 2.
    dists: dict[str, BaseDistribution] = {
        "model": CategoricalDistribution(["small", "big"]),
        "head": FloatDistribution(0, 1),
        "x": FloatDistribution(0, 1),
        "z1": FloatDistribution(0, 1),
        "z2": FloatDistribution(0, 1),
    }
    rng = np.random.default_rng(0)
    params = []
    for _ in range(300):
        p: dict[str, Any] = {"model": ["small", "big"][int(rng.integers(2))]}
        p.update({name: rng.uniform() for name in ("x", "z1", "z2")})
        if p["model"] == "big":
            p["head"] = rng.uniform()
        params.append(p)
    values = [2.0 * (p["model"] == "big") + p["x"] + 0.1 * rng.normal() for p in params]
    study = _study(params, dists, values)
    w = NRReliefFImportanceEvaluator(seed=0).analyze(study).values
    assert w["model"] > 0.05
    # "head" does nothing where it is active: being switched on is its parent's effect.
    assert max(w["head"], w["z1"], w["z2"]) < 0.0
    # Neighbours now cross "model", whose effect dominates the response differences: x (8 % of
    # the variance) falls near 0 but stays clearly above the inert parameters.
    assert w["x"] > max(w["head"], w["z1"], w["z2"]) + 0.01
    # A full distance for the category keeps every neighbour in the same model and hides it.
    plain = NRReliefFImportanceEvaluator(categorical_distance_scale=1.0, seed=0).analyze(study)
    assert plain.values["model"] < 0.02


def _parent_study(n: int, seed: int) -> optuna.Study:
    # Issue 13: p in {a, b}; if a: 3 + x + 0.5 z (x suggested only then), else 0.5 z.
    dists: dict[str, BaseDistribution] = {
        "p": CategoricalDistribution(["a", "b"]),
        "x": FloatDistribution(0, 1),
        "z": FloatDistribution(0, 1),
    }
    rng = np.random.default_rng(seed)
    params: list[dict[str, Any]] = []
    for _ in range(n):
        p: dict[str, Any] = {"p": ["a", "b"][int(rng.integers(2))], "z": float(rng.uniform())}
        if p["p"] == "a":
            p["x"] = float(rng.uniform())
        params.append(p)
    values = [(3 + p["x"] if p["p"] == "a" else 0.0) + 0.5 * p["z"] for p in params]
    return _study(params, dists, values)


@pytest.mark.parametrize("seed", [0, 1])
def test_parent_that_switches_a_child_on_is_ranked_first(seed: int) -> None:
    # The switch costs 3.5 on average, the child x at most 1 where active: p dominates.
    result = NRReliefFImportanceEvaluator(seed=0).analyze(_parent_study(500, seed), n_bootstrap=0)
    assert max(result.values, key=result.values.__getitem__) == "p"
    assert result.shares["p"] > 0.5


def test_deterministic_per_seed_and_sampled_iterations() -> None:
    dists = {f"x{i}": FloatDistribution(-math.pi, math.pi) for i in (1, 2, 3)}
    study = _random_study(300, dists, _ishigami)
    a = NRReliefFImportanceEvaluator(n_iterations=50, seed=3).analyze(study)
    b = NRReliefFImportanceEvaluator(n_iterations=50, seed=3).analyze(study)
    c = NRReliefFImportanceEvaluator(n_iterations=50, seed=4).analyze(study)
    assert a.values == b.values
    assert a.values != c.values
    assert a.n_iterations == 50
    every = NRReliefFImportanceEvaluator(n_iterations="all", seed=3).analyze(study)
    many = NRReliefFImportanceEvaluator(n_iterations=10**6, seed=3).analyze(study)
    assert every.values == many.values and every.n_iterations == 300


def test_bootstrap_intervals() -> None:
    dists: dict[str, BaseDistribution] = {
        f"x{i}": FloatDistribution(-math.pi, math.pi) for i in (1, 2, 3)
    }
    dists["z"] = FloatDistribution(0, 1)
    study = _random_study(300, dists, _ishigami)
    evaluator = NRReliefFImportanceEvaluator(n_bootstrap=20, seed=0)
    result = evaluator.analyze(study)
    assert set(result.intervals) == set(result.values) == set(result.share_intervals)
    for name, (low, high) in result.intervals.items():
        # Resamples keep the neighbourhood's extent, so the intervals surround the estimate.
        assert low <= result.values[name] <= high
    assert result.intervals["x2"][0] > result.intervals["z"][1]
    assert result.confidence == 0.95
    # evaluate() never bootstraps and equals the clipped point estimate.
    assert evaluator.evaluate(study) == {
        k: max(0.0, v) for k, v in sorted(result.values.items(), key=lambda kv: -kv[1])
    }


def test_single_valued_param_is_exactly_zero() -> None:
    dists = {"x": FloatDistribution(0, 1), "fixed": IntDistribution(3, 3)}
    params = [{"x": v, "fixed": 3} for v in (0.0, 0.4, 1.0)]
    result = NRReliefFImportanceEvaluator(n_neighbors=1, seed=0).analyze(
        _study(params, dists, [0, 0, 1])
    )
    assert result.values == {"x": pytest.approx(0.2, abs=1e-9), "fixed": 0.0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_neighbors": 0},
        {"n_neighbors": 2.5},
        {"n_iterations": 0},
        {"n_iterations": "some"},
        {"sigma": 0.0},
        {"sigma": "wide"},
        {"categorical_distance_scale": -1.0},
        {"n_bootstrap": -1},
        {"confidence": 1.0},
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="`"):
        NRReliefFImportanceEvaluator(**kwargs)


def test_neighbours_capped_by_distinct_trials() -> None:
    # 70 neighbours requested, 4 trials: every other trial is a neighbour.
    study = _study([{"x": v} for v in (0.0, 0.1, 0.3, 0.7)], _unit("x"), [0, 1, 1, 3])
    result = NRReliefFImportanceEvaluator(seed=0).analyze(study)
    assert result.n_neighbors == 3
    assert math.isfinite(result.values["x"])


def test_all_pairs_small_study_matches_reference() -> None:
    # Every subset of 3 out of 5 trials, k = 2: many tiny studies, all against the reference.
    xs = [(0.0, 0.2), (0.5, 0.9), (0.25, 0.25), (1.0, 0.0), (0.6, 0.4)]
    ys = [0.0, 2.0, 0.5, 1.0, 3.0]
    dists = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    for rows in itertools.combinations(range(5), 3):
        params = [{"a": xs[r][0], "b": xs[r][1]} for r in rows]
        values = [ys[r] for r in rows]
        got = NRReliefFImportanceEvaluator(n_neighbors=2, sigma=1.5, seed=0).analyze(
            _study(params, dists, values)
        )
        want = _reference(
            np.array([xs[r] for r in rows]), np.array([False, False]), np.array(values), 2,
            1.5, 0.25,
        )  # fmt: skip
        np.testing.assert_allclose([got.values["a"], got.values["b"]], want, atol=1e-12)


def test_child_without_its_parent_keeps_the_switch_as_evidence() -> None:
    # Asked about x alone, nothing else explains x's activity: the switch is its evidence.
    study = _parent_study(200, 0)
    alone = NRReliefFImportanceEvaluator(seed=0).analyze(study, ["x"], n_bootstrap=0)
    assert alone.values["x"] > 0.1
    with_parent = NRReliefFImportanceEvaluator(seed=0).analyze(study, n_bootstrap=0)
    assert with_parent.values["x"] < 0.0 < with_parent.values["p"]
