from __future__ import annotations

from collections.abc import Iterator
import copy
import itertools
import pickle
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest
from threadpoolctl import threadpool_limits

from optuna_hpi import AblationImportanceEvaluator
from optuna_hpi import AblationResult
from optuna_hpi import encode_study
from optuna_hpi import SurrogateConfig
from optuna_hpi._surrogate import Surrogate
from optuna_hpi.importance._ablation import ablation_units
from optuna_hpi.importance._ablation import center
from optuna_hpi.importance._ablation import greedy_path
from optuna_hpi.importance._ablation import infer_parents


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The boosted trees use OpenMP; on a shared 2-core runner oversubscription costs 10x.
    with threadpool_limits(1):
        yield


def _study(
    dists: dict[str, BaseDistribution],
    rows: list[dict[str, Any]],
    f: Any,
    direction: str = "minimize",
) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.add_trials(
        [
            optuna.trial.create_trial(
                params=p, distributions={k: dists[k] for k in p}, value=float(f(p))
            )
            for p in rows
        ]
    )
    return study


def _random_rows(dists: dict[str, BaseDistribution], n: int, seed: int) -> list[dict[str, Any]]:
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    rows = []
    for _ in range(n):
        trial = study.ask(dists)
        rows.append(dict(trial.params))
        study.tell(trial, 0.0)
    return rows


# f = -(3a + b + 2ac): from (0,0,0) to (1,1,1) the path is a (3), c (2), b (1).
ORACLE_DISTS: dict[str, BaseDistribution] = {k: IntDistribution(0, 1) for k in "abc"}


def _oracle(p: dict[str, Any]) -> float:
    return -(3 * p["a"] + p["b"] + 2 * p["a"] * p["c"])


def _oracle_study(direction: str = "minimize") -> optuna.Study:
    grid = [dict(zip("abc", v)) for v in itertools.product([0, 1], repeat=3)]
    sign = 1.0 if direction == "minimize" else -1.0
    return _study(ORACLE_DISTS, grid * 4, lambda p: sign * _oracle(p), direction)


def test_hand_oracle_path_and_shares() -> None:
    study = _oracle_study()
    evaluator = AblationImportanceEvaluator(default_params={"a": 0, "b": 0, "c": 0}, seed=0)
    result = evaluator.analyze(study, n_bootstrap=0)
    assert isinstance(result, AblationResult)
    assert [s.params for s in result.path] == [("a",), ("c",), ("b",)]
    assert [s.share for s in result.path] == pytest.approx([1 / 2, 1 / 3, 1 / 6], abs=1e-3)
    assert result.shares == pytest.approx({"a": 1 / 2, "b": 1 / 6, "c": 1 / 3}, abs=1e-3)
    assert [s.predicted for s in result.path] == pytest.approx([-3.0, -5.0, -6.0], abs=1e-3)
    assert result.values == pytest.approx({"a": 3.0, "b": 1.0, "c": 2.0}, abs=1e-3)
    assert result.path[1].before == {"c": 0} and result.path[1].after == {"c": 1}
    assert result.source == {"a": 0, "b": 0, "c": 0}
    assert result.source_kind == "default_params"
    assert result.target == {"a": 1, "b": 1, "c": 1}
    assert result.target_trial == 7  # first (1, 1, 1) of the grid
    assert result.predicted_source == pytest.approx(0.0, abs=1e-3)
    assert result.predicted_target == pytest.approx(-6.0, abs=1e-3)
    assert list(evaluator.evaluate(study)) == ["a", "c", "b"]


def test_greedy_path_on_exact_function_keeps_negative_steps() -> None:
    # On the true function (no surrogate) the greedy order and gaps are exact; a harmful
    # step (b raises f by 1 once a is set) stays negative in the path.
    data = encode_study(_oracle_study())

    def f(rows: np.ndarray) -> np.ndarray:
        a, b, c = rows.T
        return -(3 * a - b + 2 * a * c)

    path = greedy_path(f, data, np.zeros(3), np.ones(3), [[0], [1], [2]])
    assert [(u, before, after) for u, before, after in path] == [
        ([0], 0.0, -3.0),
        ([2], -3.0, -5.0),
        ([1], -5.0, -4.0),
    ]


def test_negative_improvement_kept_in_values_and_clipped_by_evaluate() -> None:
    # Replicated configurations with noise: the best trial is a lucky draw of (good, b=1),
    # whose mean is worse than (good, b=0). From (bad, 0) the b step is harmful on average.
    dists: dict[str, BaseDistribution] = {
        "a": CategoricalDistribution(["bad", "good"]),
        "b": IntDistribution(0, 1),
    }
    rows, values = [], []
    for a, b in itertools.product(["bad", "good"], [0, 1]):
        spread = 0.8 if (a, b) == ("good", 1) else 0.1
        for noise in np.linspace(-spread, spread, 10):
            rows.append({"a": a, "b": b})
            values.append(5.0 * (a == "bad") + 0.5 * b + noise)
    lookup = iter(values)
    study = _study(dists, rows, lambda p: next(lookup))
    evaluator = AblationImportanceEvaluator(default_params={"a": "bad", "b": 0}, seed=0)
    result = evaluator.analyze(study, n_bootstrap=0)
    assert result.target == {"a": "good", "b": 1}
    assert [s.params for s in result.path] == [("a",), ("b",)]
    assert result.values["a"] == pytest.approx(5.0, abs=0.05)
    assert result.values["b"] == pytest.approx(-0.5, abs=0.05)
    assert sum(result.values.values()) == pytest.approx(
        result.predicted_source - result.predicted_target, abs=1e-9
    )
    assert evaluator.evaluate(study) == {"a": result.values["a"], "b": 0.0}


def _mixed_dists() -> dict[str, BaseDistribution]:
    return {
        "x": FloatDistribution(-2.0, 2.0),
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "n": IntDistribution(1, 9),
        "k": CategoricalDistribution(["p", "q", "r"]),
    }


def _mixed(p: dict[str, Any]) -> float:
    lr = np.log10(p["lr"])
    return float(
        p["x"] ** 2 + (lr + 2.5) ** 2 * (1 + 0.3 * p["n"]) + {"p": 0, "q": 1, "r": 3}[p["k"]]
    )


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_telescoping_equals_surrogate_gap(direction: str) -> None:
    sign = 1.0 if direction == "minimize" else -1.0
    study = _study(
        _mixed_dists(),
        _random_rows(_mixed_dists(), 150, seed=1),
        lambda p: sign * _mixed(p),
        direction,
    )
    config = SurrogateConfig(max_iter=50)
    evaluator = AblationImportanceEvaluator(surrogate=config, seed=3)
    result = evaluator.analyze(study, n_bootstrap=0)
    assert result.source_kind == "center"
    assert result.source == {"x": 0.0, "lr": pytest.approx(10**-2.5), "n": 5, "k": "p"}
    # The package surrogate fitted independently, at the reported source and target.
    data = encode_study(study)
    model = Surrogate(data, config, 3)
    rows = np.array(
        [
            [data.specs[j].encode(r[s.name]) for j, s in enumerate(data.specs)]
            for r in (result.source, result.target)
        ]
    )
    f_s, f_t = model.predict(rows)
    total = sum(result.values.values())
    assert total == pytest.approx(f_s - f_t, abs=1e-9)
    assert sign * result.predicted_source == pytest.approx(f_s, abs=1e-9)
    assert sign * result.predicted_target == pytest.approx(f_t, abs=1e-9)
    assert total > 0
    assert result.path[-1].predicted == pytest.approx(result.predicted_target, abs=1e-12)
    assert sum(s.share for s in result.path) == pytest.approx(1.0, abs=1e-9)


def test_additive_function_recovers_known_gaps_and_exact_zero() -> None:
    # Three levels per parameter so that 300 random trials cover the grid and the surrogate is
    # accurate; the test checks the ablation, not the surrogate's extrapolation.
    dists: dict[str, BaseDistribution] = {
        **{f"x{i}": IntDistribution(0, 2) for i in range(4)},
        "z": IntDistribution(0, 4),
    }
    weights = [4.0, 2.0, 1.0, 0.0]

    def f(p: dict[str, Any]) -> float:
        return sum(w * p[f"x{i}"] for i, w in enumerate(weights)) + 0.5 * abs(p["z"] - 2)

    best = {"x0": 0, "x1": 0, "x2": 0, "x3": 0, "z": 2}
    study = _study(dists, [best] + _random_rows(dists, 300, seed=2), f)
    defaults = {"x0": 1, "x1": 1, "x2": 1, "x3": 1, "z": 2}
    evaluator = AblationImportanceEvaluator(
        default_params=defaults, surrogate=SurrogateConfig(max_iter=100), seed=0
    )
    result = evaluator.analyze(study, n_bootstrap=0)
    assert result.target == best
    assert result.values["z"] == 0.0
    assert all("z" not in s.params for s in result.path)
    true_gaps = {"x0": 4.0, "x1": 2.0, "x2": 1.0, "x3": 0.0}
    for name, gap in true_gaps.items():
        assert result.values[name] == pytest.approx(gap, abs=0.25), name
    assert [s.params[0] for s in result.path][:3] == ["x0", "x1", "x2"]


def test_maximize_and_negated_minimize_twin_agree() -> None:
    rows = _random_rows(_mixed_dists(), 120, seed=4)
    up = _study(_mixed_dists(), rows, lambda p: -_mixed(p), "maximize")
    down = _study(_mixed_dists(), rows, _mixed, "minimize")
    evaluator = AblationImportanceEvaluator(seed=5, surrogate=SurrogateConfig(max_iter=50))
    r_up = evaluator.analyze(up, n_bootstrap=0)
    r_down = evaluator.analyze(down, n_bootstrap=0)
    assert r_up.values == r_down.values
    assert evaluator.evaluate(up) == evaluator.evaluate(down)
    assert r_up.target_trial == r_down.target_trial
    assert [s.params for s in r_up.path] == [s.params for s in r_down.path]
    # Predictions are reported in each study's own orientation.
    assert r_up.predicted_source == pytest.approx(-r_down.predicted_source)
    assert r_up.predicted_target > r_up.predicted_source
    assert r_down.predicted_target < r_down.predicted_source
    assert [s.predicted for s in r_up.path] == pytest.approx([-s.predicted for s in r_down.path])
    assert [s.improvement for s in r_up.path] == [s.improvement for s in r_down.path]


def test_deterministic_per_seed_and_bootstrap_intervals() -> None:
    study = _study(_mixed_dists(), _random_rows(_mixed_dists(), 80, seed=6), _mixed)
    config = SurrogateConfig(max_iter=30)
    a = AblationImportanceEvaluator(seed=1, surrogate=config).analyze(study, n_bootstrap=8)
    b = AblationImportanceEvaluator(seed=1, surrogate=config).analyze(study, n_bootstrap=8)
    assert a == b
    assert set(a.intervals) == set(a.values)
    assert all(lo <= hi for lo, hi in a.intervals.values())
    assert np.isfinite(a.surrogate_r2)


def _conditional_study() -> optuna.Study:
    dists: dict[str, BaseDistribution] = {
        "model": CategoricalDistribution(["svm", "rf"]),
        "svm_c": FloatDistribution(1e-3, 1e3, log=True),
        "rf_depth": IntDistribution(1, 20),
        "x": FloatDistribution(0.0, 1.0),
    }
    rng = np.random.default_rng(7)
    rows: list[dict[str, Any]] = []
    for _ in range(200):
        if rng.random() < 0.5:
            row: dict[str, Any] = {"model": "svm", "svm_c": float(10 ** rng.uniform(-3, 3))}
        else:
            row = {"model": "rf", "rf_depth": int(rng.integers(1, 21))}
        row["x"] = float(rng.uniform())
        rows.append(row)

    def f(p: dict[str, Any]) -> float:
        if p["model"] == "svm":
            return 1.0 + abs(np.log10(p["svm_c"])) + p["x"]
        return abs(p["rf_depth"] - 8) / 4 + p["x"]

    return _study(dists, rows, f)


def test_conditional_children_move_with_their_parent() -> None:
    study = _conditional_study()
    data = encode_study(study)
    parents = infer_parents(data)
    names = data.params
    assert {names[j]: (None if p is None else names[p]) for j, p in enumerate(parents)} == {
        "model": None,
        "rf_depth": "model",
        "svm_c": "model",
        "x": None,
    }
    config = SurrogateConfig(max_iter=60)
    evaluator = AblationImportanceEvaluator(
        default_params={"model": "svm", "svm_c": 1.0, "x": 0.5}, surrogate=config, seed=0
    )
    result = evaluator.analyze(study, n_bootstrap=0)
    assert result.target["model"] == "rf" and result.target["svm_c"] is None
    assert result.source == {"model": "svm", "rf_depth": None, "svm_c": 1.0, "x": 0.5}
    step = next(s for s in result.path if "model" in s.params)
    assert step.params == ("model", "rf_depth", "svm_c")
    assert step.before == {"model": "svm", "rf_depth": None, "svm_c": 1.0}
    assert step.after == {"model": "rf", "rf_depth": result.target["rf_depth"], "svm_c": None}
    assert result.values["rf_depth"] == 0.0 and result.values["svm_c"] == 0.0
    assert result.values["model"] > 0.5
    assert sum(result.values.values()) == pytest.approx(
        result.predicted_source - result.predicted_target, abs=1e-9
    )
    # The centre rule: first choice switches its own children on (at their centre).
    centre = AblationImportanceEvaluator(surrogate=config, seed=0).analyze(study, n_bootstrap=0)
    assert centre.source == {"model": "svm", "rf_depth": None, "svm_c": 1.0, "x": 0.5}


def test_numeric_parent_is_inferred_from_a_threshold() -> None:
    # x is suggested when c > 0.5, y otherwise; the noise param z does not decide anything.
    dists: dict[str, BaseDistribution] = {
        "c": FloatDistribution(0.0, 1.0),
        "z": FloatDistribution(0.0, 1.0),
        "x": FloatDistribution(-2.0, 0.0),
        "y": FloatDistribution(0.0, 2.0),
    }
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(60):
        c, z = float(rng.uniform()), float(rng.uniform())
        row = {"c": c, "z": z, **({"x": -c} if c > 0.5 else {"y": c})}
        rows.append(row)
    data = encode_study(_study(dists, rows, lambda p: p["c"]))
    names = data.params
    parents = infer_parents(data)
    assert {names[j]: (None if p is None else names[p]) for j, p in enumerate(parents)} == {
        "c": None,
        "x": "c",
        "y": "c",
        "z": None,
    }


def test_units_group_switching_children_under_their_parent() -> None:
    nan = np.nan
    source = np.array([0.0, 0.3, nan, 0.5])
    target = np.array([1.0, nan, 4.0, 0.5])
    units, credit = ablation_units(source, target, [None, 0, 0, None], [0, 1, 2, 3])
    assert units == [[0, 1, 2]]
    assert credit == {0: [0]}
    # Without a moving parent a switching group is one step shared by its members.
    units, credit = ablation_units(source, target, [None, None, None, None], [0, 1, 2, 3])
    assert units == [[0], [1], [2]]
    assert credit == {0: [0], 1: [1], 2: [2]}
    # Siblings (same activity pattern) switched on without a moving parent: one shared step.
    units, credit = ablation_units(
        np.array([nan, nan, 0.5, 0.0]),
        np.array([1.0, 2.0, 0.5, 1.0]),
        [None, None, None, None],
        [0, 1, 2, 3],
        siblings=[0, 0, 2, 2],
    )
    assert units == [[0, 1], [3]]
    assert credit == {0: [0, 1], 3: [3]}


def test_center_rule() -> None:
    specs = encode_study(
        _study(
            {
                "lr": FloatDistribution(1e-4, 1e-2, log=True),
                "n": IntDistribution(1, 4),
                "m": IntDistribution(1, 50, log=True),
                "k": CategoricalDistribution(["b", "a"]),
            },
            [{"lr": 1e-3, "n": 2, "m": 3, "k": "a"}] * 2,
            lambda p: 0.0,
        )
    ).specs
    values = {s.name: s.decode(center(s)) for s in specs}
    # Log-aware: the centre of [1, 50] on the log scale is 7.07, snapped to the int grid.
    assert values == {"k": "b", "lr": pytest.approx(1e-3), "m": 7, "n": 2}


def test_median_trial_when_centre_is_not_predicted_worse() -> None:
    dists: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 5.0)}
    study = _study(dists, [{"x": 1.0}, {"x": 4.9}, {"x": 5.0}], lambda p: p["x"])
    result = AblationImportanceEvaluator(seed=0).analyze(study, n_bootstrap=0)
    assert result.source_kind == "median_trial"
    assert result.source_trial == 1
    assert result.source == {"x": 4.9}
    assert result.values["x"] > 0


def test_pickle_and_deepcopy_round_trip() -> None:
    study = _oracle_study()
    evaluator = AblationImportanceEvaluator(default_params={"a": 0, "b": 0, "c": 0}, seed=0)
    expected = evaluator.evaluate(study)
    assert pickle.loads(pickle.dumps(evaluator)).evaluate(study) == expected
    assert copy.deepcopy(evaluator).evaluate(study) == expected


def test_source_trial() -> None:
    study = _oracle_study()
    evaluator = AblationImportanceEvaluator(source_trial=0, seed=0)
    result = evaluator.analyze(study, n_bootstrap=0)
    assert result.source_kind == "source_trial" and result.source_trial == 0
    assert result.source == {"a": 0, "b": 0, "c": 0}
    assert [s.params for s in result.path] == [("a",), ("c",), ("b",)]


def test_warns_when_target_not_predicted_better() -> None:
    dists: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}
    study = _study(dists, [{"x": float(x)} for x in np.linspace(0.01, 1, 30)], lambda p: p["x"])
    evaluator = AblationImportanceEvaluator(default_params={"x": 0.0}, seed=0)
    with pytest.warns(UserWarning, match="not predict the target"):
        importances = evaluator.evaluate(study)
    assert importances == {"x": 0.0}


@pytest.mark.parametrize(
    "defaults, match",
    [
        ({"nope": 1}, "nope"),
        ({"a": 2}, r"default_params\['a'\]=2.*outside"),
        ({"a": "x"}, r"default_params\['a'\]"),
        ({"a": 0.5}, r"not on the grid"),
    ],
)
def test_bad_default_params(defaults: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AblationImportanceEvaluator(default_params=defaults, seed=0).evaluate(_oracle_study())


def test_bad_categorical_default_and_source_trial() -> None:
    dists: dict[str, BaseDistribution] = {"k": CategoricalDistribution(["p", "q"])}
    study = _study(dists, [{"k": "p"}, {"k": "q"}, {"k": "q"}], lambda p: float(p["k"] == "p"))
    with pytest.raises(ValueError, match=r"default_params\['k'\]='z'.*choices"):
        AblationImportanceEvaluator(default_params={"k": "z"}, seed=0).evaluate(study)
    with pytest.raises(ValueError, match="source_trial=9"):
        AblationImportanceEvaluator(source_trial=9, seed=0).evaluate(study)
    with pytest.raises(TypeError, match="default_params"):
        AblationImportanceEvaluator(default_params=[("k", "p")], seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="source_trial"):
        AblationImportanceEvaluator(source_trial=1.0, seed=0)  # type: ignore[arg-type]
