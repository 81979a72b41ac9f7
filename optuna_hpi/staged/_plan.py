"""Stage plans: a pure function from a fixed set of finished trials to what a stage freezes."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
import json
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import distribution_to_json
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.distributions import json_to_distribution
from optuna.importance import BaseImportanceEvaluator
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_hpi._encoding import encode_trials
from optuna_hpi.staged._stage import default_value
from optuna_hpi.staged._stage import Stage


@dataclass(frozen=True)
class PlanRules:
    """Thresholds that turn importances into a plan (shared by every stage of a search).

    Attributes:
        freeze_below: A parameter is frozen (in stages with ``freeze=True``) only when the upper
            end of its importance interval is below this share.
        narrow_above: A numeric parameter is narrowed (in stages with ``narrow=True``) only when
            the lower end of its importance interval is above this share.
        top_fraction: Narrowed ranges span the values of this fraction of the best earlier trials
            in which the parameter was free (at least 3 trials)...
        pad: ...widened on each side by this fraction of their width...
        min_width: ...and at least this fraction of the user's range wide (sampler scale).
    """

    freeze_below: float = 0.05
    narrow_above: float = 0.1
    top_fraction: float = 0.2
    pad: float = 0.5
    min_width: float = 0.2

    def __post_init__(self) -> None:
        for name in ("freeze_below", "narrow_above", "top_fraction", "min_width"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")
        if self.pad < 0:
            raise ValueError(f"`pad` must be >= 0, got {self.pad!r}.")

    def to_dict(self) -> dict[str, float]:
        return {
            "freeze_below": self.freeze_below,
            "narrow_above": self.narrow_above,
            "top_fraction": self.top_fraction,
            "pad": self.pad,
            "min_width": self.min_width,
        }


@dataclass(frozen=True)
class StagePlan:
    """What one stage freezes and narrows, and the evidence behind it.

    Plans are computed once per stage from the finished trials numbered below :attr:`cutoff`,
    stored as JSON in the study's user attributes and always read back from there, so every
    worker uses the same plan. Parameters not listed (e.g. first suggested after the plan
    was made) follow the stage's spec: free with the user's range, or held at their default.

    Attributes:
        stage: Index of the stage (0-based).
        name: Name of the stage.
        start: First trial number of the stage.
        stop: Trial number after the stage's last (``None`` for the last stage, which also takes
            any trial beyond the total budget).
        cutoff: The plan is a function of the finished trials numbered below this.
        based_on: Numbers of the previous stage's complete trials behind :attr:`importances`.
        distributions: The user's distribution of each parameter known to the plan.
        free: Parameters the stage moves.
        frozen: Fixed value of each parameter the stage does not move (held or frozen).
        narrowed: Narrowed distribution handed to the base sampler for some free parameters.
        reasons: Why each parameter is frozen, narrowed or free.
        importances: Importance of the previous stage's free parameters on its own trials.
        intervals: Bootstrap interval of each importance (empty if none could be computed).
        method: The evaluator's name for :attr:`importances`.
        best_trial: Number of the best trial behind the plan.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import StagedStudy

            def objective(trial):
                lr = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
                return (lr - 0.01) ** 2 + trial.suggest_float("alpha", 0, 1) * 1e-3

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            staged = StagedStudy.three_stage(study, n_trials=(6, 6, 6))
            staged.optimize(objective)
            for plan in staged.plans:
                print(plan.stage, plan.name, plan.frozen, plan.reasons)
    """

    stage: int
    name: str
    start: int
    stop: int | None
    cutoff: int = 0
    based_on: tuple[int, ...] = ()
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    free: tuple[str, ...] = ()
    frozen: dict[str, Any] = field(default_factory=dict)
    narrowed: dict[str, BaseDistribution] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    importances: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    method: str = ""
    best_trial: int | None = None

    def to_json(self) -> str:
        frozen = {
            name: self.distributions[name].to_internal_repr(value)
            for name, value in self.frozen.items()
        }
        payload = {
            "stage": self.stage,
            "name": self.name,
            "start": self.start,
            "stop": self.stop,
            "cutoff": self.cutoff,
            "based_on": list(self.based_on),
            "distributions": {k: distribution_to_json(d) for k, d in self.distributions.items()},
            "free": list(self.free),
            "frozen": frozen,
            "narrowed": {k: distribution_to_json(d) for k, d in self.narrowed.items()},
            "reasons": self.reasons,
            "importances": self.importances,
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "method": self.method,
            "best_trial": self.best_trial,
        }
        return json.dumps(payload, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StagePlan:
        p = json.loads(text)
        dists = {k: json_to_distribution(v) for k, v in p["distributions"].items()}
        return cls(
            stage=p["stage"],
            name=p["name"],
            start=p["start"],
            stop=p["stop"],
            cutoff=p["cutoff"],
            based_on=tuple(p["based_on"]),
            distributions=dists,
            free=tuple(p["free"]),
            frozen={k: dists[k].to_external_repr(v) for k, v in p["frozen"].items()},
            narrowed={k: json_to_distribution(v) for k, v in p["narrowed"].items()},
            reasons=dict(p["reasons"]),
            importances={k: float(v) for k, v in p["importances"].items()},
            intervals={k: (float(v[0]), float(v[1])) for k, v in p["intervals"].items()},
            method=p["method"],
            best_trial=p["best_trial"],
        )

    def is_free(self, name: str, stage: Stage, roles: Mapping[str, str]) -> bool:
        """Whether ``name`` moves in this stage (plan first, the stage's spec for new names)."""
        if name in self.frozen:
            return False
        if name in self.distributions:
            return name in self.free
        return stage.is_free(name, roles)

    def __str__(self) -> str:
        lines = [f"stage {self.stage} '{self.name}' (trials {self.start}..{self.stop or 'end'})"]
        for name in sorted(self.reasons):
            lines.append(f"  {name}: {self.reasons[name]}")
        return "\n".join(lines)


class Schedule:
    """Stage boundaries: the stage of a trial is a pure function of its number."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)
        self.starts = [0]
        for s in self.stages[:-1]:
            self.starts.append(self.starts[-1] + s.n_trials)
        self.total = self.starts[-1] + self.stages[-1].n_trials

    def stage_of(self, number: int) -> int:
        k = 0
        for i, start in enumerate(self.starts):
            if number >= start:
                k = i
        return k

    def stop(self, k: int) -> int | None:
        return self.starts[k + 1] if k + 1 < len(self.starts) else None


def initial_plan(schedule: Schedule) -> StagePlan:
    """Plan of the first stage: nothing learned yet, every decision follows the stage's spec."""
    stage = schedule.stages[0]
    return StagePlan(0, stage.name, 0, schedule.stop(0), reasons={})


def compute_plan(
    k: int,
    schedule: Schedule,
    cutoff: int,
    trials: Sequence[FrozenTrial],
    directions: Sequence[StudyDirection],
    previous: Sequence[StagePlan],
    evaluator: BaseImportanceEvaluator,
    rules: PlanRules,
    roles: Mapping[str, str],
    defaults: Mapping[str, Any],
) -> StagePlan:
    """Plan of stage ``k`` (>= 1): a deterministic function of its arguments.

    Args:
        k: Stage index.
        schedule: Stage boundaries.
        cutoff: Only trials numbered below this are used (they must all be finished).
        trials: The study's trials (those at or above ``cutoff`` are ignored).
        directions: The study's directions.
        previous: Plans of stages ``0..k-1``.
        evaluator: Importance evaluator (deterministic for a fixed seed).
        rules: Thresholds.
        roles: User roles by parameter name (others are inferred from the name).
        defaults: User defaults by parameter name.

    Raises:
        ValueError: the previous stage has no complete trial below ``cutoff``.
    """
    stage = schedule.stages[k]
    used = sorted((t for t in trials if t.number < cutoff), key=lambda t: t.number)
    complete = [t for t in used if t.state == TrialState.COMPLETE]
    dists: dict[str, BaseDistribution] = {}
    for t in used:
        dists.update(t.distributions)

    def free_in(t: FrozenTrial, name: str) -> bool:
        j = schedule.stage_of(t.number)
        return previous[j].is_free(name, schedule.stages[j], roles)

    lo, hi = schedule.starts[k - 1], schedule.starts[k]
    prev_trials = [t for t in used if lo <= t.number < hi]
    prev_complete = [t for t in prev_trials if t.state == TrialState.COMPLETE]
    if not prev_complete and not any(t.state == TrialState.PRUNED for t in prev_trials):
        states = sorted({t.state.name for t in prev_trials})
        raise ValueError(
            f"Stage {k - 1} ('{schedule.stages[k - 1].name}') has no COMPLETE trial among "
            f"trials {lo}..{min(hi, cutoff) - 1} (states: {states or 'none'}), so stage {k} "
            "cannot be planned. Fix the objective (every trial failed) and continue in "
            "a new study."
        )

    # Importances of the previous stage on its own trials over its own free parameters: a
    # held/frozen parameter is constant there and would otherwise get spurious importance.
    prev_plan = previous[k - 1]
    seen = {name for t in prev_complete for name in t.distributions}
    prev_free = [p for p in sorted(seen) if free_in(prev_complete[0], p)] if seen else []
    values: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    method = ""
    # A stage whose trials were all pruned teaches nothing: its plan only holds and carries.
    if prev_free and len(prev_complete) >= 2:
        values, intervals, method = _importances(evaluator, prev_complete, directions, prev_free)

    ranked = encode_trials(complete, directions, params=[])
    y_of = {t.number: float(v) for t, v in zip(ranked.trials, ranked.y)}
    best_trial = min(y_of, key=lambda n: (y_of[n], n)) if y_of else None

    def free_rows(name: str) -> list[FrozenTrial]:
        return [t for t in complete if t.number in y_of and name in t.params and free_in(t, name)]

    def best_free_value(name: str) -> Any:
        rows = free_rows(name)
        if not rows:
            return None
        best = min(rows, key=lambda t: (y_of[t.number], t.number))
        return best.params[name]

    free: list[str] = []
    frozen: dict[str, Any] = {}
    narrowed: dict[str, BaseDistribution] = {}
    reasons: dict[str, str] = {}
    for name in sorted(dists):
        dist = dists[name]
        if not stage.is_free(name, roles):
            value = best_free_value(name)
            if value is None:
                value = _default(name, dist, defaults)
                reasons[name] = f"held at default {value!r} (not free in this stage)"
            else:
                reasons[name] = f"held at best value {value!r} (not free in this stage)"
            frozen[name] = value
            continue
        imp = values.get(name)
        upper = intervals.get(name, (math.nan, math.nan))[1]
        lower = intervals.get(name, (math.nan, math.nan))[0]
        if stage.freeze and imp is not None and upper < rules.freeze_below:
            value = best_free_value(name)
            if value is None:
                value = _default(name, dist, defaults)
            frozen[name] = value
            reasons[name] = (
                f"frozen at {value!r}: importance {imp:.3f}, interval "
                f"[{lower:.3f}, {upper:.3f}] below {rules.freeze_below}"
            )
            continue
        if stage.freeze and prev_plan.reasons.get(name, "").startswith("frozen"):
            frozen[name] = prev_plan.frozen[name]
            reasons[name] = prev_plan.reasons[name] + " (carried over)"
            continue
        free.append(name)
        reasons[name] = "free, user range"
        if not stage.narrow or dist.single() or isinstance(dist, CategoricalDistribution):
            continue
        if imp is not None and lower > rules.narrow_above:
            narrow = _narrow(name, dist, free_rows(name), directions, rules)
            if narrow is None:
                continue
            if narrow.single():
                free.remove(name)
                frozen[name] = narrow.to_external_repr(narrow.to_internal_repr(narrow.low))  # type: ignore[attr-defined]
                reasons[name] = f"frozen at {frozen[name]!r}: its narrowed range has one value"
                continue
            narrowed[name] = narrow
            reasons[name] = (
                f"narrowed to [{_fmt(narrow)}]: importance {imp:.3f}, interval "
                f"[{lower:.3f}, {upper:.3f}] above {rules.narrow_above}"
            )
        elif name in prev_plan.narrowed and prev_plan.distributions.get(name) == dist:
            narrowed[name] = prev_plan.narrowed[name]
            reasons[name] = f"narrowed to [{_fmt(prev_plan.narrowed[name])}] (carried over)"

    return StagePlan(
        stage=k,
        name=stage.name,
        start=schedule.starts[k],
        stop=schedule.stop(k),
        cutoff=cutoff,
        based_on=tuple(t.number for t in prev_complete),
        distributions=dists,
        free=tuple(free),
        frozen=frozen,
        narrowed=narrowed,
        reasons=reasons,
        importances=values,
        intervals=intervals,
        method=method,
        best_trial=best_trial,
    )


def _importances(
    evaluator: BaseImportanceEvaluator,
    trials: list[FrozenTrial],
    directions: Sequence[StudyDirection],
    params: list[str],
) -> tuple[dict[str, float], dict[str, tuple[float, float]], str]:
    # Imported here: the importance package imports nothing from staged, but keep it one-way.
    from optuna_hpi.importance._base import HpiImportanceEvaluator
    from optuna_hpi.importance._sobol import SobolResult

    if isinstance(evaluator, HpiImportanceEvaluator):
        data = encode_trials(trials, directions, params=params)
        result = evaluator.analyze_encoded(data, diagnostics=False)  # plans ignore R^2
        if isinstance(result, SobolResult) and result.total:
            # Freezing must not miss a parameter that acts only through interactions.
            vals, ivs, method = result.total, result.total_intervals, "sobol_total"
        else:
            vals, ivs, method = result.values, result.intervals, result.method
        return (
            {k: float(v) for k, v in vals.items()},
            {k: (float(a), float(b)) for k, (a, b) in ivs.items()},
            method,
        )
    # A foreign evaluator has no intervals: its normalized point estimate is used as both ends.
    import optuna

    tmp = optuna.create_study(directions=list(directions))
    tmp.add_trials(trials)
    raw = evaluator.evaluate(tmp, params=params)
    total = sum(max(0.0, float(v)) for v in raw.values())
    vals = {k: (max(0.0, float(v)) / total if total > 0 else 0.0) for k, v in raw.items()}
    return vals, {k: (v, v) for k, v in vals.items()}, type(evaluator).__name__


def _narrow(
    name: str,
    dist: BaseDistribution,
    rows: list[FrozenTrial],
    directions: Sequence[StudyDirection],
    rules: PlanRules,
) -> BaseDistribution | None:
    """A narrowed copy of ``dist`` around the best ``rows``; ``None`` if nothing to narrow."""
    assert isinstance(dist, (FloatDistribution, IntDistribution))
    if len(rows) < 3:
        return None
    data = encode_trials(rows, directions, params=[name])
    if not data.specs:
        return None
    spec = data.specs[0]
    x = data.X[:, 0]
    keep = np.isfinite(x)
    x, y = x[keep], data.y[keep]
    if x.size < 3:
        return None
    n_top = max(3, math.ceil(rules.top_fraction * x.size))
    top = x[np.argsort(y, kind="stable")[:n_top]]
    # The user's current range on the sampler's scale: the union spec may be wider.
    user_lo = math.log(dist.low) if dist.log else float(dist.low)
    user_hi = math.log(dist.high) if dist.log else float(dist.high)
    span = user_hi - user_lo
    width = float(top.max() - top.min())
    pad = max(rules.pad * width, 0.5 * rules.min_width * span)
    lo = max(float(top.min()) - pad, user_lo)
    hi = min(float(top.max()) + pad, user_hi)
    if spec.grid is not None:
        grid = spec.grid[(spec.grid >= user_lo - 1e-9) & (spec.grid <= user_hi + 1e-9)]
        # Nearest grid values: the best trials (on the grid, inside [lo, hi]) stay inside, and a
        # parameter whose best trials share one value ends up with a one-value range (frozen).
        lo = float(grid[np.argmin(np.abs(grid - lo))])
        hi = float(grid[np.argmin(np.abs(grid - hi))])
    low_ext = math.exp(lo) if dist.log else lo
    high_ext = math.exp(hi) if dist.log else hi
    if isinstance(dist, IntDistribution):
        low_i = int(round(low_ext))
        high_i = int(round(high_ext))
        # Keep the user's grid: low + k * step.
        low_i = dist.low + ((low_i - dist.low) // dist.step) * dist.step
        high_i = dist.low + -(-(high_i - dist.low) // dist.step) * dist.step
        low_i, high_i = max(low_i, dist.low), min(high_i, dist.high)
        narrowed: BaseDistribution = IntDistribution(low_i, high_i, log=dist.log, step=dist.step)
    else:
        low_f = min(max(low_ext, dist.low), dist.high)
        high_f = min(max(high_ext, dist.low), dist.high)
        if dist.step is not None:
            k_lo = math.floor((low_f - dist.low) / dist.step + 1e-9)
            k_hi = math.ceil((high_f - dist.low) / dist.step - 1e-9)
            # Decimal arithmetic keeps the bounds exactly on the user's grid (0.7, not 0.70..01).
            base, step = Decimal(str(dist.low)), Decimal(str(dist.step))
            low_f = float(base + k_lo * step)
            high_f = min(float(base + k_hi * step), dist.high)
        narrowed = FloatDistribution(low_f, high_f, log=dist.log, step=dist.step)
    if narrowed == dist:
        return None
    return narrowed


def _default(name: str, dist: BaseDistribution, defaults: Mapping[str, Any]) -> Any:
    if name not in defaults:
        return default_value(dist)
    value = defaults[name]
    try:
        ok = dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ValueError(
            f"The default {value!r} of parameter '{name}' is outside its distribution {dist}; "
            "pass a value the objective can suggest."
        )
    return value


def _fmt(d: BaseDistribution) -> str:
    assert isinstance(d, (FloatDistribution, IntDistribution))
    return f"{d.low:.4g}, {d.high:.4g}"
