"""Issue 13: the evaluators say when their numbers cannot be trusted, and intervals hold."""

from __future__ import annotations

import math
from typing import Any
import warnings

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
import pytest

from optuna_hpi import AblationImportanceEvaluator
from optuna_hpi import importance_stability
from optuna_hpi import NRReliefFImportanceEvaluator
from optuna_hpi import SobolImportanceEvaluator
from optuna_hpi import SurrogateConfig


FAST = SurrogateConfig(max_iter=40)
EVALUATORS = {
    "sobol": lambda: SobolImportanceEvaluator(seed=0, n_samples=256, surrogate=FAST),
    "relief": lambda: NRReliefFImportanceEvaluator(seed=0),
    "ablation": lambda: AblationImportanceEvaluator(seed=0, surrogate=FAST),
}
UNIT = {name: FloatDistribution(0.0, 1.0) for name in ("lr", "x", "y")}


def _study(n: int, f: Any, seed: int = 0, state: TrialState = TrialState.COMPLETE) -> Any:
    rng = np.random.default_rng(seed)
    study = optuna.create_study()
    for _ in range(n):
        params = {k: float(rng.uniform()) for k in UNIT}
        value = f(params, rng) if state == TrialState.COMPLETE else None
        study.add_trial(
            optuna.create_trial(params=params, distributions=UNIT, value=value, state=state)
        )
    return study


def _no_warning(fn: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn()


@pytest.mark.parametrize("name", list(EVALUATORS))
def test_too_few_trials_per_parameter_warns(name: str) -> None:
    # Two trials, three parameters: today's answer {'lr': 1.0, ...} must not come silently.
    study = _study(2, lambda p, rng: p["lr"])
    with pytest.warns(UserWarning, match=r"Only 2 usable trials for 3 parameters.*Run more"):
        EVALUATORS[name]().evaluate(study)
    # 10 trials per parameter is enough (the measured rule).
    enough = _study(30, lambda p, rng: p["lr"] + 0.5 * p["x"])
    _no_warning(lambda: EVALUATORS[name]().evaluate(enough))


@pytest.mark.parametrize("name", list(EVALUATORS))
def test_empty_failed_and_nan_studies_warn(name: str) -> None:
    empty = optuna.create_study()
    failed = _study(5, None, state=TrialState.FAIL)
    values = _study(5, lambda p, rng: p["lr"])
    for study, target in ((empty, None), (failed, None), (values, lambda t: math.nan)):
        with pytest.warns(UserWarning, match="No usable trials"):
            assert EVALUATORS[name]().evaluate(study, target=target) == {}
    # params=[] asks for nothing: nothing to warn about (Optuna's contract).
    assert _no_warning(lambda: EVALUATORS[name]().evaluate(values, params=[])) == {}


@pytest.mark.parametrize("name", list(EVALUATORS))
def test_constant_objective_warns(name: str) -> None:
    study = _study(40, lambda p, rng: 1.0)
    with pytest.warns(UserWarning, match="same in all 40 usable trials"):
        importances = EVALUATORS[name]().evaluate(study)
    assert set(importances.values()) == {0.0}


@pytest.mark.parametrize("name", ["sobol", "ablation"])
def test_surrogate_that_explains_little_warns(name: str) -> None:
    noise = _study(60, lambda p, rng: float(rng.normal()))
    with pytest.warns(UserWarning, match=r"explains only R\^2 = -?\d\.\d\d"):
        result = EVALUATORS[name]().analyze(noise, n_bootstrap=0)
    assert result.surrogate_r2 < 0.5  # type: ignore[attr-defined]
    signal = _study(60, lambda p, rng: 3 * p["lr"] + p["x"])
    _no_warning(lambda: EVALUATORS[name]().analyze(signal, n_bootstrap=0))


def test_noise_gets_wide_sobol_intervals() -> None:
    # A surrogate with R^2 <= 0 knows nothing: no parameter can be told from nothing.
    noise = _study(60, lambda p, rng: float(rng.normal()))
    with pytest.warns(UserWarning, match="explains only"):
        result = EVALUATORS["sobol"]().analyze(noise, n_bootstrap=5)
    for lo, hi in result.total_intervals.values():  # type: ignore[attr-defined]
        assert lo <= 0.05 and hi >= 0.45


def test_stability_constant_objective_and_small_disjoint_parts_warn() -> None:
    constant = _study(40, lambda p, rng: 2.0)
    with pytest.warns(UserWarning, match="ICC is undefined") as caught:
        result = importance_stability(constant, NRReliefFImportanceEvaluator(seed=0))
    assert result.constant_response and math.isnan(result.icc)
    assert len(caught) == 1  # once, not once per subsample
    assert "ICC undefined: the response is the same" in result.to_text()
    study = _study(90, lambda p, rng: p["lr"] + 0.3 * p["x"])
    with pytest.warns(UserWarning, match=r"parts of 9 trials for 3 parameters"):
        importance_stability(study, NRReliefFImportanceEvaluator(seed=0), disjoint=True)
    _no_warning(
        lambda: importance_stability(
            study, NRReliefFImportanceEvaluator(seed=0), n_subsamples=3, disjoint=True
        )
    )


def test_stability_to_text() -> None:
    study = _study(60, lambda p, rng: p["lr"] + 0.3 * p["x"])
    result = importance_stability(study, NRReliefFImportanceEvaluator(seed=0), n_subsamples=4)
    text = result.to_text()
    assert text.splitlines()[0] == (
        "Importance stability: 4 random subsamples of 48 of the 60 usable trials"
    )
    assert f"ICC(3,1) consistency {result.icc:.3f}" in text
    # Most important first, with the mean over subsamples.
    assert text.splitlines()[4].split()[:2] == ["lr", f"{result.mean['lr']:.3f}"]


@pytest.mark.parametrize("seed", [0, 1])
def test_sobol_intervals_hold_the_ishigami_indices_and_the_estimate(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-math.pi, math.pi, (300, 3))
    y = np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])
    dists = {k: FloatDistribution(-math.pi, math.pi) for k in ("x1", "x2", "x3")}
    study = optuna.create_study()
    study.add_trials(
        [
            optuna.create_trial(
                params=dict(zip(dists, map(float, row))), distributions=dists, value=v
            )
            for row, v in zip(x, y)
        ]
    )
    result = SobolImportanceEvaluator(seed=seed, n_samples=1024).analyze(study, n_bootstrap=20)
    s1 = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
    st = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}
    for values, intervals, truth in (
        (result.first, result.first_intervals, s1),
        (result.total, result.total_intervals, st),
    ):
        for p, (lo, hi) in intervals.items():
            assert lo <= values[p] <= hi
            assert lo <= truth[p] <= hi, (p, truth[p], lo, hi)
