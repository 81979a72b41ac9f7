"""Sensitivity around the best configuration, measured on the real objective."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import math
from typing import Any
from typing import TYPE_CHECKING
import uuid

import numpy as np
import optuna.logging
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_hpi._encoding import encode_study
from optuna_hpi._encoding import ParamSpec


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial
    from optuna.trial import Trial

_logger = optuna.logging.get_logger(__name__)

#: User attribute that marks the trials enqueued by :func:`sensitivity_analysis`.
SENSITIVITY_ATTR = "optuna_hpi:sensitivity"


@dataclass(frozen=True)
class Perturbation:
    """One evaluated change of one parameter of the best configuration.

    Attributes:
        param: The parameter changed (``None`` for the re-evaluation of the best itself).
        label: How it was changed: ``"x0.8"``, ``"x1.2"``, ``"-20% range"``, ``"grid -1"``,
            ``"choice=..."``; ``"best"`` for the re-evaluation.
        value: The new value of the parameter (external units).
        trial_number: Number of the trial that evaluated it.
        objective: Response of that trial in the user's orientation (``nan`` if it failed).
        delta: ``objective`` minus the reference response of the best configuration.
    """

    param: str | None
    label: str
    value: Any
    trial_number: int
    objective: float
    delta: float


@dataclass(frozen=True)
class SensitivityResult:
    """Measured effect of perturbing each parameter of the best configuration.

    Attributes:
        base_trial: Number of the best trial that was perturbed.
        base_params: Its parameters.
        base_value: Its stored response (user's orientation).
        reference: The response deltas are measured against: the re-evaluation of the best
            configuration if it was run, else :attr:`base_value`.
        direction: ``"minimize"`` or ``"maximize"`` (a ``target`` is minimized).
        perturbations: Every evaluated change, in evaluation order.
        worst_change: Per parameter, the largest degradation over its perturbations
            (positive = worse, in objective units); ``nan`` if all its trials failed.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import sensitivity_analysis


            def objective(trial):
                x = trial.suggest_float("x", 0.1, 10, log=True)
                y = trial.suggest_int("y", 0, 10)
                return (x - 1) ** 2 + 0.01 * y


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=30)
            result = sensitivity_analysis(study, objective)
            print(result.to_text())
    """

    base_trial: int
    base_params: dict[str, Any]
    base_value: float
    reference: float
    direction: str
    perturbations: list[Perturbation]
    worst_change: dict[str, float] = field(default_factory=dict)

    def to_text(self) -> str:
        """Printable table, most sensitive parameter first."""
        lines = [
            f"Sensitivity around trial {self.base_trial} ({self.direction}, "
            f"best {self.base_value:.6g}, reference {self.reference:.6g}); "
            "positive change = worse",
        ]
        order = sorted(
            self.worst_change, key=lambda p: -np.nan_to_num(self.worst_change[p], nan=-np.inf)
        )
        for p in order:
            lines.append(f"{p}: worst change {self.worst_change[p]:+.6g}")
            for q in self.perturbations:
                if q.param == p:
                    lines.append(
                        f"    {q.label:>12}  {q.value!r:>14}  value {q.objective:.6g}  "
                        f"delta {q.delta:+.6g}  (trial {q.trial_number})"
                    )
        return "\n".join(lines)


def perturbations(
    spec: ParamSpec, value: Any, factors: Sequence[float] = (0.8, 1.2)
) -> list[tuple[str, Any]]:
    """The changed values tried for one parameter (label, external value), clipped to its range.

    * Log-scaled numeric parameters, and positive values of parameters whose range is
      non-negative, are multiplied by each factor; other values move by ``(factor - 1)`` times
      the width of the range (e.g. 0 in [-1, 1] becomes -0.4 and 0.4).
    * Int and step parameters are snapped to their grid; a move that snaps back to the current
      value takes the neighbouring grid value in that direction instead.
    * Categoricals try every other choice.
    * Moves that end on the current value (already at the bound) are dropped; duplicates too.
    """
    if spec.single:
        return []
    out: list[tuple[str, Any]] = []
    if spec.kind == "categorical":
        current = spec.encode(value)
        for k, choice in enumerate(spec.distribution.choices):  # type: ignore[attr-defined]
            if k != int(current):
                out.append((f"choice={choice!r}", choice))
        return out
    d = spec.distribution
    lo_ext, hi_ext = d.low, d.high  # type: ignore[attr-defined]
    current = spec.encode(value)

    def same(a: Any, b: Any) -> bool:
        return abs(spec.encode(a) - spec.encode(b)) <= 1e-12 * spec.span

    # Scaling 0 or a negative value does not move it in a useful direction: use the range.
    multiplicative = spec.log or (lo_ext >= 0 and value > 0)
    for f in factors:
        if f <= 0 or f == 1.0:
            raise ValueError(f"`factors` must be positive and != 1, got {f!r}.")
        if multiplicative:
            moved = float(np.clip(value * f, lo_ext, hi_ext))
            label = f"x{f:g}"
        else:
            moved = float(np.clip(value + (f - 1.0) * (hi_ext - lo_ext), lo_ext, hi_ext))
            label = f"{(f - 1.0) * 100:+.0f}% range"
        # Continuous values are used as computed: a log round trip would turn 1e-3 into
        # 1.0000000000000002e-3, which compares unequal to the bound it was clipped to.
        new = moved if spec.grid is None else spec.decode(spec.encode(moved))
        if spec.grid is not None and same(new, value):
            grid = spec.grid
            k = int(np.argmin(np.abs(grid - current)))
            k += 1 if f > 1.0 else -1
            if 0 <= k < len(grid):
                new = spec.decode(float(grid[k]))
                label = f"grid {'+1' if f > 1.0 else '-1'}"
        if not same(new, value) and not any(same(new, v) for _, v in out):
            out.append((label, new))
    return out


def sensitivity_analysis(
    study: Study,
    objective: Callable[[Trial], float],
    params: list[str] | None = None,
    *,
    factors: Sequence[float] = (0.8, 1.2),
    target: Callable[[FrozenTrial], float] | None = None,
    reevaluate_best: bool = True,
    catch: tuple[type[Exception], ...] = (),
) -> SensitivityResult:
    """Perturb each parameter of the best trial and evaluate the changes on the real objective.

    The perturbed configurations are enqueued into ``study`` (tagged with the user attribute
    ``"optuna_hpi:sensitivity"``) and run by ``study.optimize(objective, ...)``, so they are
    ordinary trials of the study: stored, visible in every Optuna tool, and never lost. Parameters
    that are not changed keep their best value; parameters the objective suggests but the best
    trial did not (a branch activated by a changed categorical) are left to the study's sampler.

    Args:
        study: A single-objective study (or any study with ``target``) with a completed trial.
        objective: The study's objective function.
        params: Parameters to perturb (default: every assessed, non-fixed one).
        factors: Multiplicative changes of numeric parameters (see :func:`perturbations`).
        target: Response to use instead of the objective value; it is minimized.
        reevaluate_best: Also run the best configuration once more and measure changes against
            that run, which separates the effect of a change from evaluation noise.
        catch: Exceptions of the objective to record as failed trials instead of raising.

    Raises:
        ValueError: a multi-objective study without ``target``, or no usable trial.
    """
    if study._is_multi_objective() and target is None:
        raise ValueError(
            "Sensitivity analysis needs one response; pass target=lambda t: t.values[i] for a "
            "multi-objective study."
        )
    data = encode_study(study, params, target)
    if data.n_trials == 0:
        raise ValueError("The study has no completed trial with a finite value to start from.")
    best = data.trials[int(np.argmin(data.y))]
    maximize = target is None and study.direction == StudyDirection.MAXIMIZE
    sign = -1.0 if maximize else 1.0

    def response(t: FrozenTrial) -> float:
        if t.state != TrialState.COMPLETE:
            return math.nan
        v = float(target(t)) if target is not None else float(t.value)  # type: ignore[arg-type]
        return v if math.isfinite(v) else math.nan

    run = uuid.uuid4().hex[:12]
    plan: list[tuple[str | None, str, Any]] = []
    if reevaluate_best:
        plan.append((None, "best", None))
    for spec in data.specs:
        if spec.name not in best.params:
            continue
        for label, value in perturbations(spec, best.params[spec.name], factors):
            plan.append((spec.name, label, value))
    for k, (name, label, value) in enumerate(plan):
        params_k = dict(best.params)
        if name is not None:
            params_k[name] = value
        attrs = {"run": run, "index": k, "base_trial": best.number, "param": name, "label": label}
        study.enqueue_trial(params_k, user_attrs={SENSITIVITY_ATTR: attrs})
    _logger.info(f"Sensitivity: evaluating {len(plan)} configurations around trial {best.number}.")
    study.optimize(objective, n_trials=len(plan), catch=catch)

    by_index: dict[int, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False):
        tag = t.user_attrs.get(SENSITIVITY_ATTR)
        if isinstance(tag, dict) and tag.get("run") == run:
            by_index[int(tag["index"])] = t
    base_value = response(best)
    reference = base_value
    results: list[Perturbation] = []
    for k, (name, label, value) in enumerate(plan):
        done = by_index.get(k)
        v = math.nan if done is None else response(done)
        if name is None and math.isfinite(v):
            reference = v
        results.append(
            Perturbation(name, label, value, -1 if done is None else done.number, v, math.nan)
        )
    results = [
        Perturbation(
            q.param, q.label, q.value, q.trial_number, q.objective, q.objective - reference + 0.0
        )
        for q in results
    ]
    worst: dict[str, float] = {}
    for q in results:
        if q.param is None:
            continue
        change = sign * q.delta + 0.0  # no '-0' for unchanged values
        prev = worst.get(q.param, math.nan)
        if math.isnan(prev) or (math.isfinite(change) and change > prev):
            worst[q.param] = change
    return SensitivityResult(
        base_trial=best.number,
        base_params=dict(best.params),
        base_value=base_value,
        reference=reference,
        direction="maximize" if maximize else "minimize",
        perturbations=results,
        worst_change=worst,
    )
