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
        delta: ``objective`` minus the reference response of the best configuration, in the
            objective's own sign (negative is better when minimizing, worse when maximizing);
            :meth:`SensitivityResult.change` turns it into "positive = worse".

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import sensitivity_analysis


            def objective(trial):
                return (trial.suggest_float("x", 0.1, 10, log=True) - 1) ** 2


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=10)
            first = sensitivity_analysis(study, objective).perturbations[0]
            print(first.param, first.label, first.value, first.delta, first.trial_number)
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

    def change(self, perturbation: Perturbation) -> float:
        """How much worse ``perturbation`` is than :attr:`reference` (positive = worse).

        This is :attr:`Perturbation.delta` with the sign of the study's direction: equal to it
        when minimizing, its negation when maximizing. :attr:`worst_change` is the largest
        change of each parameter.
        """
        sign = -1.0 if self.direction == "maximize" else 1.0
        return sign * perturbation.delta + 0.0  # no '-0' for unchanged values

    def to_text(self) -> str:
        """Printable table, most sensitive parameter first.

        Every number labelled "change" uses one convention, stated in the header: positive =
        worse than the reference, in either direction. The raw value is printed beside it.
        """
        lines = [
            f"Sensitivity around trial {self.base_trial} ({self.direction}, "
            f"best {self.base_value:.6g}, reference {self.reference:.6g}); "
            "change = how much worse than the reference (positive = worse)",
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
                        f"change {self.change(q):+.6g}  (trial {q.trial_number})"
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


#: User attribute that marks the trials enqueued by :func:`ablation_on_objective`.
ABLATION_ATTR = "optuna_hpi:ablation"


@dataclass(frozen=True)
class MeasuredStep:
    """One step of an ablation path measured on the real objective.

    Attributes:
        param: The parameter flipped to its target value in this step.
        before: Its value before the step.
        after: Its target value.
        objective: Measured response after the step (user's orientation).
        improvement: Measured improvement of the step (positive = better, either direction).
        share: ``improvement`` over the total measured improvement from source to target.
        trial_number: The trial that measured the configuration after the step.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.analysis import ablation_on_objective


            def objective(trial):
                return -(3 * trial.suggest_int("a", 0, 1) + trial.suggest_int("b", 0, 1))


            study = optuna.create_study()
            study.enqueue_trial({"a": 1, "b": 1})
            study.optimize(objective, n_trials=1)
            step = ablation_on_objective(study, objective, {"a": 0, "b": 0}).path[0]
            print(step.param, step.before, step.after, step.share)  # a 0 1 0.75
    """

    param: str
    before: Any
    after: Any
    objective: float
    improvement: float
    share: float
    trial_number: int


@dataclass(frozen=True)
class MeasuredAblation:
    """Ablation path (Fawcett & Hoos 2016) measured with real trials of the study.

    Attributes:
        source: The source configuration.
        source_value: Measured response of the source.
        source_trial_number: The trial that measured it.
        target_trial: Number of the best trial (the target configuration).
        direction: ``"minimize"`` or ``"maximize"``.
        path: The greedy path, best step first.
        n_evaluations: Trials run (1 + D(D+1)/2 for D differing parameters).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.analysis import ablation_on_objective


            def objective(trial):
                a = trial.suggest_int("a", 0, 1)
                b = trial.suggest_int("b", 0, 1)
                return -(3 * a + b)


            study = optuna.create_study()
            study.enqueue_trial({"a": 1, "b": 1})
            study.optimize(objective, n_trials=1)
            result = ablation_on_objective(study, objective, {"a": 0, "b": 0})
            print([(s.param, s.share) for s in result.path])
    """

    source: dict[str, Any]
    source_value: float
    source_trial_number: int
    target_trial: int
    direction: str
    path: list[MeasuredStep]
    n_evaluations: int

    @property
    def importances(self) -> dict[str, float]:
        """Each flipped parameter's share of the measured improvement."""
        return {s.param: s.share for s in self.path}

    def to_text(self) -> str:
        lines = [
            f"Measured ablation from the source ({self.source_value:.6g}) to trial "
            f"{self.target_trial} ({self.direction}), {self.n_evaluations} trials:"
        ]
        for s in self.path:
            lines.append(
                f"  {s.param}: {s.before!r} -> {s.after!r}  value {s.objective:.6g}  "
                f"improvement {s.improvement:+.6g}  share {s.share:.3f}  (trial {s.trial_number})"
            )
        return "\n".join(lines)


def _run_tagged(
    study: Study,
    objective: Callable[[Trial], Any],
    configs: list[tuple[dict[str, Any], dict[str, Any]]],
    attr: str,
    catch: tuple[type[Exception], ...],
) -> list[FrozenTrial | None]:
    """Enqueue ``(params, tag)`` pairs, run them, and return the trial that ran each one."""
    run = uuid.uuid4().hex[:12]
    for k, (params, tag) in enumerate(configs):
        study.enqueue_trial(params, user_attrs={attr: {"run": run, "index": k, **tag}})
    study.optimize(objective, n_trials=len(configs), catch=catch)
    found: dict[int, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False):
        stored = t.user_attrs.get(attr)
        if isinstance(stored, dict) and stored.get("run") == run:
            found[int(stored["index"])] = t
    return [found.get(k) for k in range(len(configs))]


def ablation_on_objective(
    study: Study,
    objective: Callable[[Trial], Any],
    source_params: dict[str, Any],
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    catch: tuple[type[Exception], ...] = (),
) -> MeasuredAblation:
    """Greedy ablation path from ``source_params`` to the best trial, on the real objective.

    Each round enqueues one trial per parameter that still differs from the best trial (that
    parameter flipped to its best value), runs them with ``study.optimize`` and keeps the flip
    with the best measured response. The trials are tagged with the user attribute
    ``"optuna_hpi:ablation"`` and stay in the study. Cost: one source trial plus D(D+1)/2 for D
    differing parameters; use :class:`~optuna_hpi.AblationImportanceEvaluator` for the free
    surrogate path and this to check it. Conditional parameters are not grouped with their
    parents: a flip that activates a branch leaves the new parameters to the study's sampler.

    Args:
        study: Study with a completed best trial (single objective, or pass ``target``).
        objective: The study's objective function.
        source_params: Source value of each parameter (e.g. the library defaults); parameters
            of the best trial not given here start at their best value.
        target: Response to use instead of the objective value; it is minimized.
        catch: Exceptions of the objective to record as failed trials instead of raising.

    Raises:
        ValueError: multi-objective study without ``target``, no usable trial, or a name in
            ``source_params`` the best trial does not have.
    """
    if study._is_multi_objective() and target is None:
        raise ValueError(
            "Ablation needs one response; pass target=lambda t: t.values[i] for a "
            "multi-objective study."
        )
    data = encode_study(study, None, target)
    if data.n_trials == 0:
        raise ValueError("The study has no completed trial with a finite value to ablate to.")
    best = data.trials[int(np.argmin(data.y))]
    unknown = sorted(set(source_params) - set(best.params))
    if unknown:
        raise ValueError(
            f"`source_params` names {unknown}, which the best trial (number {best.number}) "
            f"does not have; its parameters are {sorted(best.params)}."
        )
    maximize = target is None and study.direction == StudyDirection.MAXIMIZE
    sign = -1.0 if maximize else 1.0

    def loss(t: FrozenTrial | None) -> float:
        if t is None or t.state != TrialState.COMPLETE:
            return math.inf
        v = float(target(t)) if target is not None else float(t.value)  # type: ignore[arg-type]
        return sign * v if math.isfinite(v) else math.inf

    current = {**best.params, **source_params}
    remaining = [p for p in best.params if p in source_params and current[p] != best.params[p]]
    (source_trial,) = _run_tagged(
        study, objective, [(current, {"step": "source"})], ABLATION_ATTR, catch
    )
    source_loss = loss(source_trial)
    if source_trial is None or not math.isfinite(source_loss):
        raise ValueError("The source configuration failed or gave a non-finite value.")
    source = dict(current)
    source_number = source_trial.number
    previous = source_loss
    n_evaluations = 1
    steps: list[tuple[str, Any, Any, float, int]] = []
    while remaining:
        configs = [
            ({**current, p: best.params[p]}, {"step": len(steps), "param": p}) for p in remaining
        ]
        trials = _run_tagged(study, objective, configs, ABLATION_ATTR, catch)
        n_evaluations += len(configs)
        losses = [loss(t) for t in trials]
        k = int(np.argmin(losses))
        p = remaining.pop(k)
        chosen = trials[k]
        number = -1 if chosen is None else chosen.number
        steps.append((p, current[p], best.params[p], losses[k], number))
        current[p] = best.params[p]
        previous = losses[k]
    total = source_loss - previous
    path = []
    before_loss = source_loss
    for p, before, after, step_loss, number in steps:
        improvement = before_loss - step_loss
        share = improvement / total if total != 0 and math.isfinite(total) else math.nan
        path.append(MeasuredStep(p, before, after, sign * step_loss, improvement, share, number))
        before_loss = step_loss
    return MeasuredAblation(
        source=source,
        source_value=sign * source_loss,
        source_trial_number=source_number,
        target_trial=best.number,
        direction="maximize" if maximize else "minimize",
        path=path,
        n_evaluations=n_evaluations,
    )
