"""Stage plans: a pure function from a fixed set of finished trials to what a stage freezes."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace as _replace
from decimal import Decimal
import json
import math
from typing import Any
from typing import TYPE_CHECKING
import warnings

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


if TYPE_CHECKING:
    from optuna.study import Study

#: Study user attribute holding the stage configuration (stages, rules, roles, defaults, lag
#: and the number of the first staged trial).
CONFIG_KEY = "optuna_hpi:staged:config"
#: Prefix of the study user attributes holding each stage's plan as JSON.
PLAN_KEY = "optuna_hpi:staged:plan:"
#: Trial user attribute recording the stage of each trial.
STAGE_KEY = "optuna_hpi:stage"


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
        min_trials: A plan freezes or narrows by importance only when the trials behind the
            importances include at least ``max(min_trials, n_free)`` complete ones, ``n_free``
            being the number of parameters assessed; with fewer, every parameter stays free
            and the plan says why (bootstrap intervals from a handful of trials are narrow
            only because the surrogate cannot split).
    """

    freeze_below: float = 0.05
    narrow_above: float = 0.1
    top_fraction: float = 0.2
    pad: float = 0.5
    min_width: float = 0.2
    min_trials: int = 10

    def __post_init__(self) -> None:
        for name in ("freeze_below", "narrow_above", "top_fraction", "min_width"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")
        if self.pad < 0:
            raise ValueError(f"`pad` must be >= 0, got {self.pad!r}.")
        if isinstance(self.min_trials, bool) or not isinstance(self.min_trials, int):
            raise TypeError(f"`min_trials` must be an int, got {self.min_trials!r}.")
        if self.min_trials < 2:
            raise ValueError(f"`min_trials` must be >= 2, got {self.min_trials!r}.")

    def to_dict(self) -> dict[str, float]:
        return {
            "freeze_below": self.freeze_below,
            "narrow_above": self.narrow_above,
            "top_fraction": self.top_fraction,
            "pad": self.pad,
            "min_width": self.min_width,
            "min_trials": self.min_trials,
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
        importances: Share (normalised to sum 1 over the assessed parameters) of each of the
            previous stage's free parameters, by the plan's evaluator on that stage's trials.
        intervals: Bootstrap interval of each share, on the same scale (the point value twice
            for evaluators without intervals; empty if none could be computed).
        method: What :attr:`importances` measure, e.g. ``"sobol_total share"``.
        local: Share of each parameter in the local effects at the incumbent (how much the
            predicted objective changes when it alone moves; see :func:`local_effects`).
        local_intervals: Bootstrap interval of each :attr:`local` share.
        best_trial: Number of the best trial behind the plan (the incumbent whose values the
            held parameters take).
        n_complete: Complete trials behind :attr:`importances`.
        n_pruned: Pruned trials among the trials the plan is based on.
        excluded: Unfinished trials below :attr:`cutoff` the plan was made without (only when
            this process holds them unfinished, e.g. a batch of ``study.ask()``).

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
    local: dict[str, float] = field(default_factory=dict)
    local_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    best_trial: int | None = None
    n_complete: int = 0
    n_pruned: int = 0
    excluded: tuple[int, ...] = ()

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
            "local": self.local,
            "local_intervals": {k: list(v) for k, v in self.local_intervals.items()},
            "best_trial": self.best_trial,
            "n_complete": self.n_complete,
            "n_pruned": self.n_pruned,
            "excluded": list(self.excluded),
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
            local={k: float(v) for k, v in p.get("local", {}).items()},
            local_intervals={
                k: (float(v[0]), float(v[1])) for k, v in p.get("local_intervals", {}).items()
            },
            best_trial=p["best_trial"],
            n_complete=int(p.get("n_complete", len(p["based_on"]))),
            n_pruned=int(p.get("n_pruned", 0)),
            excluded=tuple(p.get("excluded", ())),
        )

    def is_free(self, name: str, stage: Stage, roles: Mapping[str, str]) -> bool:
        """Whether ``name`` moves in this stage (plan first, the stage's spec for new names)."""
        if name in self.frozen:
            return False
        if name in self.distributions:
            return name in self.free
        return stage.is_free(name, roles)

    def is_window(self, name: str) -> bool:
        """Whether ``name``'s range in :attr:`narrowed` is a window around the incumbent (a
        stage's ``hold_window`` or ``local``), not a narrowing by importance."""
        reason = self.reasons.get(name, "")
        return name in self.narrowed and reason.startswith(("around", "local", "unimportant"))

    def summary(self) -> str:
        """One line: what the stage moves, holds and narrows."""
        parts = [f"moves {list(self.free)}" if self.distributions else "moves per its spec"]
        if self.frozen:
            parts.append("holds " + ", ".join(f"{k}={v!r:.12}" for k, v in self.frozen.items()))
        near = {k: d for k, d in self.narrowed.items() if self.is_window(k)}
        narrowed = {k: d for k, d in self.narrowed.items() if k not in near}
        if near:
            parts.append(
                "keeps near the best trial "
                + ", ".join(f"{k} in [{_fmt(d)}]" for k, d in near.items())
            )
        if narrowed:
            parts.append(
                "narrows " + ", ".join(f"{k} to [{_fmt(d)}]" for k, d in narrowed.items())
            )
        if self.excluded:
            parts.append(f"made without unfinished trials {list(self.excluded)}")
        return "; ".join(parts)

    def __str__(self) -> str:
        stop = "end" if self.stop is None else self.stop - 1
        lines = [f"stage {self.stage} '{self.name}' (trials {self.start}..{stop})"]
        for name in sorted(self.reasons):
            lines.append(f"  {name}: {self.reasons[name]}")
        return "\n".join(lines)


class Schedule:
    """Stage boundaries: the stage of a trial is a pure function of its number.

    Trials numbered below ``offset`` were in the study before the staged run started: they are
    history (stage ``-1``), usable as evidence but never counted against a stage's budget.
    """

    def __init__(self, stages: Sequence[Stage], offset: int = 0) -> None:
        self.stages = list(stages)
        self.offset = offset
        self.starts = [offset]
        for s in self.stages[:-1]:
            self.starts.append(self.starts[-1] + s.n_trials)
        self.total = self.starts[-1] + self.stages[-1].n_trials - offset

    def stage_of(self, number: int) -> int:
        """Stage index of trial ``number``; ``-1`` for history trials."""
        k = -1
        for i, start in enumerate(self.starts):
            if number >= start:
                k = i
        return k

    def stop(self, k: int) -> int | None:
        return self.starts[k + 1] if k + 1 < len(self.starts) else None


def initial_plan(schedule: Schedule) -> StagePlan:
    """Plan of the first stage: nothing learned yet, every decision follows the stage's spec."""
    stage = schedule.stages[0]
    return StagePlan(0, stage.name, schedule.starts[0], schedule.stop(0), reasons={})


def min_complete_trials(rules: PlanRules, n_params: int) -> int:
    """Complete trials a plan needs before it freezes or narrows by importance."""
    return max(rules.min_trials, n_params)


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
    excluded: Sequence[int] = (),
) -> StagePlan:
    """Plan of stage ``k`` (>= 1): a deterministic function of its arguments.

    Held parameters take their value in the incumbent (the best complete trial below
    ``cutoff``, history included). Importances are computed on the previous stage's complete
    trials over the parameters free in it (the history trials join them when the previous
    stage is the first: every parameter was free there), as shares with intervals; a
    parameter is frozen only when both its share and its share of the local effects at the
    incumbent (see :func:`local_effects`) are confidently below ``rules.freeze_below``.

    Args:
        k: Stage index.
        schedule: Stage boundaries.
        cutoff: Only trials numbered below this are used (finished ones only).
        trials: The study's trials (those at or above ``cutoff`` are ignored).
        directions: The study's directions.
        previous: Plans of stages ``0..k-1``.
        evaluator: Importance evaluator (deterministic for a fixed seed).
        rules: Thresholds.
        roles: User roles by parameter name (others are inferred from the name).
        defaults: User defaults by parameter name.
        excluded: Unfinished trials below ``cutoff`` this plan is made without (recorded).

    Raises:
        ValueError: the previous stage has no complete or pruned trial below ``cutoff``.
    """
    stage = schedule.stages[k]
    used = sorted(
        (t for t in trials if t.number < cutoff and t.state.is_finished()), key=lambda t: t.number
    )
    complete = [t for t in used if t.state == TrialState.COMPLETE]
    dists: dict[str, BaseDistribution] = {}
    for t in used:
        dists.update(t.distributions)

    def free_in(t: FrozenTrial, name: str) -> bool:
        j = schedule.stage_of(t.number)
        return j < 0 or previous[j].is_free(name, schedule.stages[j], roles)

    lo, hi = schedule.starts[k - 1], schedule.starts[k]
    prev_trials = [t for t in used if lo <= t.number < hi]
    if k - 1 == 0:
        prev_trials = [t for t in used if t.number < hi]  # history warm-starts the first plan
    prev_complete = [t for t in prev_trials if t.state == TrialState.COMPLETE]
    n_pruned = sum(t.state == TrialState.PRUNED for t in prev_trials)
    if not prev_complete and not n_pruned:
        states = sorted({t.state.name for t in prev_trials})
        raise ValueError(
            f"Stage {k - 1} ('{schedule.stages[k - 1].name}') has no COMPLETE trial among "
            f"trials {lo}..{min(hi, cutoff) - 1} (states: {states or 'none'}), so stage {k} "
            "cannot be planned. Fix the objective (every trial failed) and continue in "
            "a new study."
        )

    ranked = encode_trials(complete, directions, params=[])
    y_of = {t.number: float(v) for t, v in zip(ranked.trials, ranked.y)}
    best_trial = min(y_of, key=lambda n: (y_of[n], n)) if y_of else None
    incumbent = next((t for t in complete if t.number == best_trial), None)

    # Importances of the previous stage on its own trials over its own free parameters: a
    # held/frozen parameter is constant there and would otherwise get spurious importance.
    prev_plan = previous[k - 1]
    scored = [t for t in prev_complete if t.number in y_of]
    seen = sorted({name for t in scored for name in t.distributions})
    prev_free = [p for p in seen if all(free_in(t, p) for t in scored if p in t.params)]
    prev_free = [p for p in prev_free if not dists[p].single()]
    values: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    local: dict[str, float] = {}
    local_iv: dict[str, tuple[float, float]] = {}
    method = ""
    needed = min_complete_trials(rules, len(prev_free))
    evidence = bool(prev_free) and len(scored) >= needed
    if evidence and (stage.freeze or stage.narrow):  # a stage that does neither needs none
        with warnings.catch_warnings():
            # The evaluators' "few trials per parameter" guardrails speak to a user reading
            # importances; a plan has its own evidence rule (`min_trials`) and its intervals.
            warnings.simplefilter("ignore", UserWarning)
            values, intervals, method = _importances(evaluator, scored, directions, prev_free)
            if stage.freeze and incumbent is not None:
                local, local_iv = local_effects(
                    scored, directions, prev_free, incumbent, evaluator
                )
    thin = (
        f"too few complete trials for importances ({len(scored)} < {needed} = "
        f"max(min_trials, {len(prev_free)} parameters))"
    )

    def held_value(name: str, dist: BaseDistribution) -> tuple[Any, str]:
        if incumbent is not None and name in incumbent.params:
            return incumbent.params[name], f"best trial {incumbent.number}"
        return _default(name, dist, defaults), "default"

    free: list[str] = []
    frozen: dict[str, Any] = {}
    narrowed: dict[str, BaseDistribution] = {}
    reasons: dict[str, str] = {}
    spec_free = [n for n in dists if stage.is_free(n, roles)]

    def in_window(name: str, dist: BaseDistribution, value: Any, why: str) -> bool:
        """Search ``name`` in the stage's hold window around ``value`` instead of holding it;
        ``False`` when it must be held (no window, a categorical, or a one-value window)."""
        if stage.hold_window <= 0 or isinstance(dist, CategoricalDistribution):
            return False
        window = _local_window(dist, value, stage.hold_window, rules)
        if window is None:
            return False
        free.append(name)
        narrowed[name] = window
        reasons[name] = f"{why}: [{_fmt(window)}]"
        return True

    for name in sorted(dists):
        dist = dists[name]
        if spec_free and not stage.is_free(name, roles):
            value, source = held_value(name, dist)
            if in_window(name, dist, value, f"around {value!r} ({source})"):
                continue
            frozen[name] = value
            reasons[name] = f"held at {value!r} ({source}; not free in this stage)"
            continue
        if not spec_free:
            reasons[name] = (
                "free: no parameter has this stage's roles/params "
                f"{list(stage.roles or stage.params or ())}; pass roles={{name: role}}"
            )
            free.append(name)
            continue
        imp = values.get(name)
        lower, upper = intervals.get(name, (math.nan, math.nan))
        l_imp = local.get(name)
        l_lower, l_upper = local_iv.get(name, (math.nan, math.nan))
        if (
            stage.freeze
            and imp is not None
            and l_imp is not None
            and upper < rules.freeze_below
            and l_upper < rules.freeze_below
        ):
            value, source = held_value(name, dist)
            if in_window(name, dist, value, f"unimportant, around {value!r} ({source})"):
                continue
            frozen[name] = value
            reasons[name] = (
                f"frozen at {value!r} ({source}): share {imp:.3f} [{lower:.3f}, {upper:.3f}] "
                f"and local effect share {l_imp:.3f} [{l_lower:.3f}, {l_upper:.3f}] below "
                f"{rules.freeze_below}"
            )
            continue
        if stage.freeze and prev_plan.reasons.get(name, "").startswith("frozen"):
            frozen[name] = prev_plan.frozen[name]
            reasons[name] = prev_plan.reasons[name] + " (carried over)"
            continue
        free.append(name)
        reasons[name] = "free, user range"
        if name in prev_free and not evidence and (stage.freeze or stage.narrow):
            reasons[name] = f"free, user range: {thin}"
        if dist.single() or isinstance(dist, CategoricalDistribution):
            continue
        if stage.narrow and imp is not None and lower > rules.narrow_above:
            rows = [t for t in complete if t.number in y_of and name in t.params]
            narrow = _narrow(name, dist, [t for t in rows if free_in(t, name)], directions, rules)
            if narrow is not None and narrow.single():
                free.remove(name)
                frozen[name] = narrow.to_external_repr(narrow.to_internal_repr(narrow.low))  # type: ignore[attr-defined]
                reasons[name] = f"frozen at {frozen[name]!r}: its narrowed range has one value"
                continue
            if narrow is not None:
                narrowed[name] = narrow
                reasons[name] = (
                    f"narrowed to [{_fmt(narrow)}]: share {imp:.3f}, interval "
                    f"[{lower:.3f}, {upper:.3f}] above {rules.narrow_above}"
                )
        elif (
            stage.narrow
            and name in prev_plan.narrowed
            and prev_plan.reasons.get(name, "").startswith("narrowed")
            and prev_plan.distributions.get(name) == dist
        ):
            # Only importance-based narrowing is carried over, not a stage's local windows.
            narrowed[name] = prev_plan.narrowed[name]
            reasons[name] = f"narrowed to [{_fmt(prev_plan.narrowed[name])}] (carried over)"
        if stage.local > 0 and name not in narrowed and incumbent is not None:
            window = _local_window(dist, incumbent.params.get(name), stage.local, rules)
            if window is not None:
                narrowed[name] = window
                fallback = f"; every {stage.full_every}th trial: user range" * bool(
                    stage.full_every
                )
                around = f"around trial {incumbent.number}{fallback}"
                reasons[name] = f"local: [{_fmt(window)}] {around}"

    return StagePlan(
        stage=k,
        name=stage.name,
        start=schedule.starts[k],
        stop=schedule.stop(k),
        cutoff=cutoff,
        based_on=tuple(t.number for t in scored),
        distributions=dists,
        free=tuple(free),
        frozen=frozen,
        narrowed=narrowed,
        reasons=reasons,
        importances=values,
        intervals=intervals,
        method=method,
        local=local,
        local_intervals=local_iv,
        best_trial=best_trial,
        n_complete=len(scored),
        n_pruned=n_pruned,
        excluded=tuple(excluded),
    )


def _importances(
    evaluator: BaseImportanceEvaluator,
    trials: list[FrozenTrial],
    directions: Sequence[StudyDirection],
    params: list[str],
) -> tuple[dict[str, float], dict[str, tuple[float, float]], str]:
    """Shares (values and intervals divided by the sum of the positive point values)."""
    # Imported here: the importance package imports nothing from staged, but keep it one-way.
    from optuna_hpi.importance._base import HpiImportanceEvaluator
    from optuna_hpi.importance._sobol import SobolResult

    if isinstance(evaluator, HpiImportanceEvaluator):
        data = encode_trials(trials, directions, params=params)
        # Plans compare parameters on the surrogate-refit bootstrap alone (see `widen`).
        result = evaluator.analyze_encoded(data, diagnostics=False, widen=False)
        if isinstance(result, SobolResult) and result.total:
            # Freezing must not miss a parameter that acts only through interactions.
            vals, ivs, method = result.total, result.total_intervals, "sobol_total"
        else:
            vals, ivs, method = result.values, result.intervals, result.method
        raw = {k: float(v) for k, v in vals.items()}
        raw_iv = {k: (float(a), float(b)) for k, (a, b) in ivs.items()}
    else:
        # A foreign evaluator has no intervals: its point estimate is used as both ends.
        import optuna

        tmp = optuna.create_study(directions=list(directions))
        tmp.add_trials(trials)
        raw = {k: float(v) for k, v in evaluator.evaluate(tmp, params=params).items()}
        raw_iv = {k: (v, v) for k, v in raw.items()}
        method = type(evaluator).__name__
    return (*_shares(raw, raw_iv), f"{method} share")


def _shares(
    raw: Mapping[str, float], raw_iv: Mapping[str, tuple[float, float]]
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    # Raw scales differ by evaluator (N-RReliefF weights are ~0.01, ablation improvements are
    # in objective units): every plan threshold reads shares of the positive total instead.
    total = sum(max(0.0, v) for v in raw.values() if math.isfinite(v))
    if not total > 0:
        return {}, {}
    shares = {k: max(0.0, v) / total for k, v in raw.items()}
    ivs = {}
    for k in raw:
        a, b = raw_iv.get(k, (raw[k], raw[k]))
        ivs[k] = (max(0.0, min(a, raw[k])) / total, min(1.0, max(0.0, b, raw[k]) / total))
    return shares, ivs


def local_effects(
    trials: list[FrozenTrial],
    directions: Sequence[StudyDirection],
    params: list[str],
    incumbent: FrozenTrial,
    evaluator: BaseImportanceEvaluator | None = None,
    n_grid: int = 16,
    n_bootstrap: int = 10,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Shares of what moving each parameter alone changes near the incumbent.

    A boosted-trees surrogate (the evaluator's configuration when it is one of ours) predicts
    the objective at the incumbent with one parameter moved over ``n_grid`` quantiles of its
    sampling measure, the others kept at the incumbent; a parameter's local effect is the mean
    absolute change from the incumbent's prediction (a one-at-a-time effect at the best trial,
    not a variance share over the whole space). A parameter with no local effect costs nothing
    when frozen at the incumbent's value. The predicted *gain* of re-tuning it is no use here:
    a tree surrogate interpolates, so it always predicts the incumbent as the best point.
    Intervals are percentiles over ``n_bootstrap`` refits on resampled trials, divided by the
    point estimate's total like the shares.
    """
    from optuna_hpi._surrogate import Surrogate
    from optuna_hpi._surrogate import SurrogateConfig

    data = encode_trials(trials, directions, params=params)
    config = getattr(evaluator, "_surrogate", None)
    if not isinstance(config, SurrogateConfig):
        config = SurrogateConfig(max_iter=30, learning_rate=0.3)
    seed = int(getattr(evaluator, "_seed", 0) or 0)
    x0 = np.array(
        [
            s.encode(incumbent.params[s.name]) if s.name in incumbent.params else s.inactive_code
            for s in data.specs
        ]
    )
    u = (np.arange(n_grid) + 0.5) / n_grid
    rows = np.tile(x0, (1 + len(data.specs) * n_grid, 1))
    for j, spec in enumerate(data.specs):
        rows[1 + j * n_grid : 1 + (j + 1) * n_grid, j] = spec.from_unit(u)

    def effects(model: Surrogate) -> np.ndarray:
        pred = model.predict(rows)
        moved = pred[1:].reshape(len(data.specs), n_grid)
        return np.asarray(np.abs(moved - pred[0]).mean(axis=1))

    point = effects(Surrogate(data, config, seed))
    rng = np.random.default_rng(seed)
    resamples = [rng.integers(0, data.n_trials, data.n_trials) for _ in range(n_bootstrap)]
    boots = np.array([effects(Surrogate(data.subset(r), config, seed)) for r in resamples])
    raw = {s.name: float(g) for s, g in zip(data.specs, point)}
    lo = np.percentile(boots, 2.5, axis=0)
    hi = np.percentile(boots, 97.5, axis=0)
    raw_iv = {s.name: (float(a), float(b)) for s, a, b in zip(data.specs, lo, hi)}
    return _shares(raw, raw_iv)


def _narrow(
    name: str,
    dist: BaseDistribution,
    rows: list[FrozenTrial],
    directions: Sequence[StudyDirection],
    rules: PlanRules,
) -> BaseDistribution | None:
    """:func:`narrow_distribution` around the best ``rows`` (ranked by the study's response)."""
    assert isinstance(dist, (FloatDistribution, IntDistribution))
    if len(rows) < 3:
        return None
    data = encode_trials(rows, directions, params=[name])
    if not data.specs:
        return None
    values = [t.params[name] for t in data.trials]
    return narrow_distribution(dist, values, data.y.tolist(), rules)


def narrow_distribution(
    dist: BaseDistribution, values: Sequence[Any], losses: Sequence[float], rules: PlanRules
) -> BaseDistribution | None:
    """A narrowed copy of ``dist`` around the values with the lowest losses.

    The rule of the staged planner and of :func:`~optuna_hpi.suggest_ranges`: the values of
    the best ``rules.top_fraction`` (at least 3), widened on each side by ``rules.pad`` of
    their width and to at least ``rules.min_width`` of the user's range, on the sampler's
    scale (log for ``log=True``), clipped to ``dist`` and aligned to its int/step grid.

    Args:
        dist: The user's numeric distribution.
        values: Parameter values (external representation), one per trial.
        losses: The trials' response, lower is better.
        rules: Thresholds.

    Returns:
        The narrowed distribution, or ``None`` when fewer than 3 values are given or nothing
        would change. A one-value result is a distribution with ``low == high``.
    """
    if not isinstance(dist, (FloatDistribution, IntDistribution)):
        raise TypeError(f"Only int and float distributions can be narrowed, got {dist}.")
    if len(values) != len(losses):
        raise ValueError("`values` and `losses` must have the same length.")
    from optuna_hpi._encoding import _spec

    spec = _spec("_", dist, False)
    x = spec.encode_many(list(values))
    y = np.asarray(losses, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
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


def _local_window(
    dist: BaseDistribution, value: Any, width: float, rules: PlanRules
) -> BaseDistribution | None:
    """A window of ``width`` of the range around ``value``: the narrowing rule with ``value``
    as the only top value and ``width`` as the minimum width."""
    if value is None:
        return None
    window = narrow_distribution(
        dist, [value] * 3, [0.0] * 3, _replace(rules, min_width=width, pad=0.0, top_fraction=1.0)
    )
    return None if window is None or window.single() else window


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


def load_plans(study: Study) -> list[StagePlan]:
    """The stage plans a staged run stored in ``study`` (stage 0 first), read from its storage.

    Works on any study a :class:`~optuna_hpi.StagedStudy` or :class:`~optuna_hpi.StagedSampler`
    ran, from any process (e.g. ``optuna.load_study``), without the objective or the stages.
    Stage 0 has no stored plan (nothing was learned before it); its entry is rebuilt from the
    stored configuration. Plans of stages not reached yet are missing.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import load_plans
            from optuna_hpi import StagedStudy

            study = optuna.create_study()
            StagedStudy.importance_driven(study, n_trials=(12, 6, 6)).optimize(
                lambda t: t.suggest_float("x", -1, 1) ** 2 + 0.01 * t.suggest_float("y", 0, 1)
            )
            for plan in load_plans(study):
                print(plan)

    Raises:
        ValueError: the study was not run by a staged sampler.
    """
    config = load_config(study)
    stages = [Stage(**s) for s in config["stages"]]
    schedule = Schedule(stages, int(config.get("offset", 0)))
    plans = [initial_plan(schedule)]
    attrs = study.user_attrs
    for k in range(1, len(stages)):
        if PLAN_KEY + str(k) not in attrs:
            break
        plans.append(StagePlan.from_json(attrs[PLAN_KEY + str(k)]))
    return plans


def load_config(study: Study) -> dict[str, Any]:
    """The stored staged configuration of ``study`` (see :data:`CONFIG_KEY`)."""
    attrs = study.user_attrs
    if CONFIG_KEY not in attrs:
        raise ValueError(
            f"Study {study.study_name!r} was not run by a StagedStudy (no {CONFIG_KEY!r} user "
            "attribute)."
        )
    config: dict[str, Any] = json.loads(attrs[CONFIG_KEY])
    return config
