"""Marginal-effect (partial dependence) curves of the surrogate, with bootstrap bands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
import optuna.logging
from optuna.study import StudyDirection
from scipy.stats import qmc

from optuna_hpi._encoding import encode_study
from optuna_hpi._encoding import EncodedTrials
from optuna_hpi._surrogate import Surrogate
from optuna_hpi._surrogate import SurrogateConfig
from optuna_hpi.importance._base import check_positive_int
from optuna_hpi.importance._base import check_seed


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

_logger = optuna.logging.get_logger(__name__)


@dataclass(frozen=True)
class MarginalEffect:
    """Expected response as one parameter varies, the others averaged under the search measure.

    Attributes:
        param: Parameter name.
        kind: ``"float"``, ``"int"`` or ``"categorical"``.
        log: Whether the parameter is log-scaled (plot its axis on a log scale).
        values: Parameter values of the curve, in external units (choices for categoricals).
        mean: Partial dependence of the surrogate at each value, in the user's orientation:
            the median over the bootstrap refits (a bagged surrogate), or the full-data fit
            without bootstrap.
        lower: Lower edge of the band (percentile of bootstrap refits); equals :attr:`mean`
            without bootstrap.
        upper: Upper edge of the band.
        observed: ``(value, response)`` of the usable trials in which the parameter is active,
            for a scatter underlay.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import marginal_effects

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.5) ** 2, n_trials=30)
            curve = marginal_effects(study, n_bootstrap=0).curves["x"]
            print(curve.values[int(curve.mean.argmin())])  # close to 0.5
    """

    param: str
    kind: str
    log: bool
    values: list[Any]
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    observed: list[tuple[Any, float]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class MarginalEffects:
    """Marginal-effect curves of every assessed parameter (see :func:`marginal_effects`).

    Attributes:
        curves: One :class:`MarginalEffect` per parameter, keyed by name.
        response: ``"objective"``, ``"target"`` or ``"pareto_rank"``.
        response_label: Axis label of the response (e.g. ``"objective value"``).
        confidence: Level of the bands.
        n_trials: Usable trials the surrogate was fitted on.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import marginal_effects


            def objective(trial):
                x = trial.suggest_float("x", -2, 2)
                lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
                return x**2 + 0.1 * lr


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=80)
            effects = marginal_effects(study, n_bootstrap=5)
            curve = effects.curves["x"]
            print(curve.values[:3], curve.mean[:3])
    """

    curves: dict[str, MarginalEffect]
    response: str
    response_label: str
    confidence: float
    n_trials: int


def _orientation(study: Study, response: str) -> tuple[float, str]:
    if response == "objective":
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        return sign, "objective value"
    if response == "target":
        return 1.0, "target"
    return 1.0, "Pareto rank (0 = front)"


def marginal_effects(
    study: Study,
    params: list[str] | None = None,
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    n_points: int = 30,
    n_samples: int = 128,
    n_bootstrap: int = 10,
    confidence: float = 0.9,
    surrogate: SurrogateConfig | None = None,
    seed: int | None = 0,
) -> MarginalEffects:
    """Marginal-effect curves of the parameters through the package's surrogate.

    For each parameter ``i`` and value ``v`` the curve is the partial dependence
    ``E[f(v, X_-i)]`` of the boosted-trees surrogate ``f``, the other parameters drawn from the
    measure ``RandomSampler`` samples (the one the Sobol' indices refer to) on a scrambled
    Sobol' design. Bands are percentiles over surrogate refits on bootstrap resamples of the
    trials, so they cover data and surrogate uncertainty. Curves are in the user's orientation
    (a maximized objective is shown as maximized) and in external parameter units.

    Args:
        study: The study.
        params: Parameters to draw (default: every assessed parameter).
        target: Response to explain instead of the objective.
        n_points: Points per numeric curve (int/step parameters use their grid when it has at
            most this many values).
        n_samples: Design points averaged per curve point.
        n_bootstrap: Surrogate refits for the bands (0: no band).
        confidence: Level of the bands.
        surrogate: Surrogate settings.
        seed: Seed of the design, the surrogate and the resamples.

    Raises:
        ValueError: fewer than 2 usable trials, or bad arguments.
    """
    check_positive_int("n_points", n_points, minimum=2)
    check_positive_int("n_samples", n_samples, minimum=1)
    check_positive_int("n_bootstrap", n_bootstrap, minimum=0)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}.")
    seed = check_seed(seed)
    config = surrogate or SurrogateConfig()
    data = encode_study(study, params, target)
    if data.n_trials < 2:
        raise ValueError(
            f"Marginal effects need at least 2 usable trials, the study has {data.n_trials}."
        )
    sign, label = _orientation(study, data.response)
    grids = [_grid(data, j, n_points) for j in range(len(data.specs))]
    u = qmc.Sobol(max(1, len(data.specs)), scramble=True, seed=seed).random(n_samples)
    base = data.sample_measure(u)

    rng = np.random.default_rng(seed)
    refits = []
    for _ in range(n_bootstrap):
        rows = rng.integers(0, data.n_trials, data.n_trials)
        refits.append(_curves(Surrogate(data.subset(rows), config, seed), base, grids))
    full = _curves(Surrogate(data, config, seed), base, grids) if n_bootstrap == 0 else []

    alpha = (1.0 - confidence) / 2.0
    curves = {}
    for j, spec in enumerate(data.specs):
        if n_bootstrap > 0:
            stack = sign * np.vstack([c[j] for c in refits])
            # The bagged (median) curve lies inside its own band, which the single full-data
            # fit does not (one tree split can sit outside every refit's).
            mean = np.median(stack, axis=0)
            lower = np.quantile(stack, alpha, axis=0)
            upper = np.quantile(stack, 1.0 - alpha, axis=0)
        else:
            mean = sign * full[j]
            lower, upper = mean.copy(), mean.copy()
        active = ~np.isnan(data.X[:, j])
        observed = [
            (spec.decode(x), float(sign * y)) for x, y in zip(data.X[active, j], data.y[active])
        ]
        curves[spec.name] = MarginalEffect(
            param=spec.name,
            kind=spec.kind,
            log=spec.log,
            values=[spec.decode(g) for g in grids[j]],
            mean=mean,
            lower=lower,
            upper=upper,
            observed=observed,
        )
    return MarginalEffects(curves, data.response, label, confidence, data.n_trials)


def _grid(data: EncodedTrials, j: int, n_points: int) -> np.ndarray:
    spec = data.specs[j]
    if spec.grid is not None and (spec.kind == "categorical" or len(spec.grid) <= n_points):
        return np.asarray(spec.grid, dtype=float)
    points = np.linspace(spec.low, spec.high, n_points)
    if spec.grid is not None:
        # Long int/step grids: evenly spaced points snapped to the grid, without repeats.
        points = np.unique(spec.grid[np.abs(spec.grid[None, :] - points[:, None]).argmin(1)])
    return points


def _curves(model: Surrogate, base: np.ndarray, grids: list[np.ndarray]) -> list[np.ndarray]:
    n = len(base)
    out = []
    for j, grid in enumerate(grids):
        block = np.repeat(base[None, :, :], len(grid), axis=0)
        block[:, :, j] = grid[:, None]
        out.append(model.predict(block.reshape(-1, base.shape[1])).reshape(len(grid), n).mean(1))
    return out
