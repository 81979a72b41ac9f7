from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_hpi import SobolImportanceEvaluator
from tests.conftest import study_from_function


S1 = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
ST = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}


def test_ishigami_first_total_and_inert(ishigami_study: optuna.Study) -> None:
    result = SobolImportanceEvaluator(seed=0, n_samples=4096, pairwise=True).analyze(
        ishigami_study, n_bootstrap=0
    )
    for name in S1:
        assert result.first[name] == pytest.approx(S1[name], abs=0.05), name
        assert result.total[name] == pytest.approx(ST[name], abs=0.05), name
    for name in ("inert1", "inert2"):
        assert abs(result.first[name]) < 0.02
        assert result.total[name] < 0.02
    # The only interaction of Ishigami is x1-x3: S13 = ST3 = 0.2437.
    assert result.pairwise[("x1", "x3")] == pytest.approx(0.2437, abs=0.06)
    assert abs(result.pairwise[("x1", "x2")]) < 0.03
    assert result.surrogate_r2 > 0.9


def _head(study: optuna.Study, n: int) -> optuna.Study:
    head = optuna.create_study(directions=study.directions)
    head.add_trials(study.get_trials()[:n])
    return head


def test_evaluate_is_thin_view_of_analyze(ishigami_study: optuna.Study) -> None:
    ishigami_study = _head(ishigami_study, 300)
    for index in ("first", "total"):
        evaluator = SobolImportanceEvaluator(seed=1, index=index, n_samples=512)
        importances = evaluator.evaluate(ishigami_study)
        result = evaluator.analyze(ishigami_study, n_bootstrap=0)
        assert importances == result.importances
        raw = result.first if index == "first" else result.total
        clipped = {k: max(0.0, v) for k, v in raw.items()}
        assert importances == dict(sorted(clipped.items(), key=lambda kv: -kv[1]))
        assert list(importances)[:2] == (["x2", "x1"] if index == "first" else ["x1", "x2"])


def test_log_measure_indicator_function() -> None:
    # f = 1[lr < 1e-3] + d, lr log-uniform on [1e-5, 1e-1], d ~ U[0, 1].
    # Under the log-uniform measure P(lr < 1e-3) = 1/2, Var = 1/4; Var(d) = 1/12, so
    # S_lr = 0.75 and S_d = 0.25. Optuna's fANOVA integrates lr on the raw scale (~0.105).
    dists = {"lr": FloatDistribution(1e-5, 1e-1, log=True), "d": FloatDistribution(0.0, 1.0)}
    study = study_from_function(dists, lambda p: float(p["lr"] < 1e-3) + p["d"], 500, seed=3)
    result = SobolImportanceEvaluator(seed=0, n_samples=4096).analyze(study, n_bootstrap=0)
    assert result.first["lr"] == pytest.approx(0.75, abs=0.05)
    assert result.first["d"] == pytest.approx(0.25, abs=0.05)


def test_categorical_log_and_int_additive_function() -> None:
    # f = a[c] + log10(x) + n with c uniform over 3 choices (a = 0, 1, 2: Var 2/3),
    # log10(x) uniform on [-4, 0] (Var 16/12), n uniform on {1..5} (Var 2): total Var 4.
    # Additive, so first == total: S = 1/6, 1/3, 1/2 and 0 for the inert step param.
    effects = {"a": 0.0, "b": 1.0, "c": 2.0}
    dists = {
        "c": CategoricalDistribution(["a", "b", "c"]),
        "x": FloatDistribution(1e-4, 1.0, log=True),
        "n": IntDistribution(1, 5),
        "s": FloatDistribution(0.0, 1.0, step=0.25),
    }
    study = study_from_function(
        dists, lambda p: effects[p["c"]] + math.log10(p["x"]) + p["n"], 600, seed=1
    )
    result = SobolImportanceEvaluator(seed=0, n_samples=4096).analyze(study, n_bootstrap=0)
    expected = {"c": 1 / 6, "x": 1 / 3, "n": 1 / 2, "s": 0.0}
    for name, value in expected.items():
        assert result.first[name] == pytest.approx(value, abs=0.05), name
        assert result.total[name] == pytest.approx(value, abs=0.05), name


def test_maximize_equals_minimize_of_negation() -> None:
    dists = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    f = lambda p: 3 * p["x"] + p["y"] ** 2  # noqa: E731
    up = study_from_function(dists, f, 100, direction="maximize")
    down = study_from_function(dists, lambda p: -f(p), 100, direction="minimize")
    evaluator = SobolImportanceEvaluator(seed=0, n_samples=256)
    a, b = evaluator.evaluate(up), evaluator.evaluate(down)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-9)


def test_bootstrap_intervals_bracket_the_estimate(ishigami_study: optuna.Study) -> None:
    study = _head(ishigami_study, 300)
    result = SobolImportanceEvaluator(seed=0, n_samples=256, pairwise=True).analyze(
        study, n_bootstrap=10
    )
    assert set(result.first_intervals) == set(result.first)
    for lo, hi in result.total_intervals.values():
        assert lo <= hi
    lo, hi = result.first_intervals["x2"]
    assert 0.2 < lo < hi < 0.7
    assert result.intervals == result.first_intervals
    assert ("x1", "x3") in result.pairwise_intervals


def test_conditional_child_measured_where_active() -> None:
    # y = x where "kind" == "a" (child x active), else constant 5 + tiny noise-free offset.
    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["a", "b"])
        z = trial.suggest_float("z", 0, 1)
        if kind == "a":
            return 10 * trial.suggest_float("x", 0, 1) + 0.01 * z
        return 5.0 + 0.01 * z

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=300)
    result = SobolImportanceEvaluator(seed=0, n_samples=1024).analyze(study, n_bootstrap=0)
    assert set(result.first) == {"kind", "x", "z"}
    assert result.total["x"] > 0.3
    assert result.total["z"] < 0.02


def test_dynamic_range_uses_union() -> None:
    study = optuna.create_study()
    for i in range(60):
        high = 1.0 if i % 2 else 2.0
        x = (i * 0.37) % high
        study.add_trial(
            optuna.create_trial(
                params={"x": x, "y": 0.5},
                distributions={"x": FloatDistribution(0, high), "y": FloatDistribution(0, 1)},
                value=x,
            )
        )
    result = SobolImportanceEvaluator(seed=0, n_samples=256).analyze(study, n_bootstrap=0)
    assert result.first["x"] > 0.9


def test_deterministic_and_seed_sensitive(ishigami_study: optuna.Study) -> None:
    ishigami_study = _head(ishigami_study, 200)
    a = SobolImportanceEvaluator(seed=5, n_samples=256).evaluate(ishigami_study)
    b = SobolImportanceEvaluator(seed=5, n_samples=256).evaluate(ishigami_study)
    c = SobolImportanceEvaluator(seed=6, n_samples=256).evaluate(ishigami_study)
    assert a == b
    assert a != c
    unseeded = SobolImportanceEvaluator(n_samples=256)
    assert unseeded.evaluate(ishigami_study) == unseeded.evaluate(ishigami_study)


@pytest.mark.parametrize(
    "kwargs",
    [{"index": "second"}, {"n_samples": 3}, {"n_bootstrap": -1}, {"confidence": 1.5}],
)
def test_constructor_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SobolImportanceEvaluator(**kwargs)


def test_seed_type_error() -> None:
    with pytest.raises(TypeError):
        SobolImportanceEvaluator(seed=1.5)  # type: ignore[arg-type]


def test_works_with_optuna_plot(ishigami_study: optuna.Study) -> None:
    pytest.importorskip("plotly")
    fig = optuna.visualization.plot_param_importances(
        ishigami_study, evaluator=SobolImportanceEvaluator(seed=0, n_samples=256)
    )
    names = list(fig.data[0].y)
    assert set(names) == {"x1", "x2", "x3", "inert1", "inert2"}
    assert np.isclose(sum(fig.data[0].x), 1.0, atol=0.02)
