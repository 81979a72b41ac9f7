from __future__ import annotations

from collections.abc import Callable
import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.importance import BaseImportanceEvaluator
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from optuna_hpi import importance_stability
from optuna_hpi import NRReliefFImportanceEvaluator
from optuna_hpi import StabilityResult
from optuna_hpi.importance._stability import icc


# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges. Published: ICC(2,1) = .29,
# ICC(3,1) = .71, from BMS = 11.24, JMS = 32.49, EMS = 1.02.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)


def test_icc_shrout_fleiss_table() -> None:
    assert icc(SHROUT_FLEISS, "3,1") == pytest.approx((11.24 - 1.02) / (11.24 + 3 * 1.02), 1e-3)
    assert icc(SHROUT_FLEISS, "2,1") == pytest.approx(
        (11.24 - 1.02) / (11.24 + 3 * 1.02 + 4 * (32.49 - 1.02) / 6), abs=1e-3
    )
    assert round(icc(SHROUT_FLEISS, "3,1"), 2) == 0.71
    assert round(icc(SHROUT_FLEISS, "2,1"), 2) == 0.29


def test_icc_edge_cases() -> None:
    # Identical raters: perfect consistency and agreement.
    same = np.repeat(np.array([[0.6], [0.3], [0.1]]), 5, axis=1)
    assert icc(same, "3,1") == pytest.approx(1.0)
    assert icc(same, "2,1") == pytest.approx(1.0)
    # A constant shift between raters keeps consistency but breaks absolute agreement.
    shifted = same + np.arange(5)[None, :]
    assert icc(shifted, "3,1") == pytest.approx(1.0)
    assert icc(shifted, "2,1") < 0.5
    assert math.isnan(icc(np.ones((1, 4))))
    assert math.isnan(icc(np.ones((3, 4))))
    with pytest.raises(ValueError, match="kind"):
        icc(same, "1,1")


def _study(f: Callable[[np.ndarray], float], n: int, seed: int = 0, **kw: Any) -> optuna.Study:
    rng = np.random.default_rng(seed)
    dists = {name: FloatDistribution(-1, 1) for name in ("x", "y", "z")}
    study = optuna.create_study(**kw)
    trials = []
    for _ in range(n):
        u = rng.uniform(-1, 1, size=3)
        trials.append(
            optuna.create_trial(
                params=dict(zip(dists, map(float, u))), distributions=dists, value=f(u)
            )
        )
    study.add_trials(trials)
    return study


def test_structured_function_is_stable_and_noise_is_not() -> None:
    evaluator = NRReliefFImportanceEvaluator(seed=0)
    structured, noise = [], []
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        f = lambda u, rng=rng: float(4 * u[0] ** 2 + u[1] + 0.3 * rng.normal())  # noqa: E731
        study = _study(f, 300, seed=seed)
        structured.append(importance_stability(study, evaluator, n_subsamples=5, disjoint=True))
        study = _study(lambda u, rng=rng: float(rng.normal()), 300, seed=seed)
        noise.append(importance_stability(study, evaluator, n_subsamples=5, disjoint=True))
    assert all(isinstance(r, StabilityResult) and r.disjoint for r in structured)
    assert min(r.icc for r in structured) > 0.9
    assert max(r.icc for r in noise) < 0.6
    assert np.mean([r.icc for r in noise]) < 0.3
    # Overlapping subsamples (the paper's protocol) on the structured study.
    overlapping = importance_stability(
        _study(lambda u: float(4 * u[0] ** 2 + u[1]), 200), evaluator
    )
    assert overlapping.icc > 0.95 and not overlapping.disjoint
    # Optuna's own evaluators plug in too.
    structured_study = _study(lambda u: float(4 * u[0] ** 2 + u[1]), 200)
    ped = importance_stability(structured_study, PedAnovaImportanceEvaluator(), n_subsamples=4)
    assert ped.icc > 0.8
    assert ped.mean["z"] < min(ped.mean["x"], ped.mean["y"])


def test_disjoint_parts_partition_the_trials() -> None:
    study = _study(lambda u: float(u[0]), 23)
    recorder = _Recorder()
    result = importance_stability(study, recorder, n_subsamples=4, disjoint=True)
    numbers = [t.params["x"] for sub in recorder.studies for t in sub.get_trials()]
    assert sorted(numbers) == sorted(t.params["x"] for t in study.trials)
    assert [len(sub.get_trials()) for sub in recorder.studies] == [6, 6, 6, 5]
    assert result.subsample_size == 5
    with pytest.raises(ValueError, match="disjoint"):
        importance_stability(study, recorder, n_subsamples=12, disjoint=True)


def test_matrix_and_summaries() -> None:
    study = _study(lambda u: float(u[0] + 0.3 * u[2]), 50)
    result = importance_stability(
        study, NRReliefFImportanceEvaluator(seed=0), n_subsamples=4, fraction=0.5, seed=3
    )
    assert result.params == ["x", "y", "z"]
    assert result.matrix.shape == (3, 4)
    np.testing.assert_allclose(result.matrix.sum(axis=0), 1.0)
    for i, p in enumerate(result.params):
        row = result.matrix[i]
        assert result.mean[p] == pytest.approx(row.mean())
        assert result.std[p] == pytest.approx(row.std(ddof=1))
        assert result.min[p] == row.min() and result.max[p] == row.max()
    assert result.n_trials == 50 and result.subsample_size == 25
    assert result.icc == pytest.approx(icc(result.matrix, "3,1"))
    again = importance_stability(
        study, NRReliefFImportanceEvaluator(seed=0), n_subsamples=4, fraction=0.5, seed=3
    )
    np.testing.assert_array_equal(result.matrix, again.matrix)
    other = importance_stability(
        study, NRReliefFImportanceEvaluator(seed=0), n_subsamples=4, fraction=0.5, seed=4
    )
    assert not np.array_equal(result.matrix, other.matrix)


class _Recorder(BaseImportanceEvaluator):
    """Records what each subsample study looks like; importance = mean |param| of its trials."""

    def __init__(self) -> None:
        self.studies: list[optuna.Study] = []

    def evaluate(
        self,
        study: optuna.Study,
        params: list[str] | None = None,
        *,
        target: Callable[[FrozenTrial], float] | None = None,
    ) -> dict[str, float]:
        self.studies.append(study)
        trials = study.get_trials(deepcopy=False)
        names = params or ["x", "y"]
        return {p: float(np.mean([abs(t.params[p]) for t in trials])) for p in names}


def test_subsamples_hold_only_usable_trials_and_keep_directions() -> None:
    study = _study(lambda u: float(u[0]), 20, direction="maximize")
    dists = {name: FloatDistribution(-1, 1) for name in ("x", "y", "z")}
    p = {"x": 0.5, "y": 0.5, "z": 0.5}
    study.add_trial(optuna.create_trial(params=p, distributions=dists, value=float("inf")))
    study.add_trial(
        optuna.create_trial(params=p, distributions=dists, state=TrialState.FAIL, value=None)
    )
    recorder = _Recorder()
    result = importance_stability(study, recorder, n_subsamples=3, fraction=0.5, normalize=False)
    assert result.n_trials == 20 and result.subsample_size == 10
    assert len(recorder.studies) == 3
    for sub in recorder.studies:
        assert sub.directions == [StudyDirection.MAXIMIZE]
        trials = sub.get_trials()
        assert len(trials) == 10
        assert all(t.state == TrialState.COMPLETE and math.isfinite(t.value) for t in trials)
    # normalize=False keeps the evaluator's own numbers.
    first = recorder.studies[0].get_trials()
    assert result.matrix[0, 0] == pytest.approx(np.mean([abs(t.params["x"]) for t in first]))
    assert result.params == ["x", "y"]


def test_params_and_target_are_passed_through() -> None:
    study = _study(lambda u: float(u[0]), 40)
    recorder = _Recorder()
    result = importance_stability(study, recorder, n_subsamples=2, params=["z"])
    assert result.params == ["z"]
    np.testing.assert_allclose(result.matrix, 1.0)
    # A target that is infinite for some trials shrinks the usable set.
    target = lambda t: t.params["y"] if t.params["y"] > 0 else float("inf")  # noqa: E731
    n_usable = sum(t.params["y"] > 0 for t in study.trials)
    result = importance_stability(study, NRReliefFImportanceEvaluator(seed=0), target=target)
    assert result.n_trials == n_usable


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"n_subsamples": 1}, ValueError),
        ({"fraction": 0.0}, ValueError),
        ({"fraction": 1.5}, ValueError),
        ({"fraction": "half"}, ValueError),
        ({"params": "x"}, TypeError),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    study = _study(lambda u: float(u[0]), 10)
    with pytest.raises(error):
        importance_stability(study, NRReliefFImportanceEvaluator(seed=0), **kwargs)


def test_not_an_evaluator_and_too_few_trials() -> None:
    study = _study(lambda u: float(u[0]), 10)
    with pytest.raises(TypeError, match="evaluator"):
        importance_stability(study, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="usable trial"):
        importance_stability(_study(lambda u: 0.0, 1), NRReliefFImportanceEvaluator(seed=0))
