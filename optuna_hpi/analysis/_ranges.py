"""Range advice for the next study: keep, narrow, expand, log-scale or freeze each parameter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import json
import keyword
import math
import re
import textwrap
from typing import Any
from typing import Literal
from typing import TYPE_CHECKING

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_hpi._encoding import encode_study
from optuna_hpi._surrogate import SurrogateConfig
from optuna_hpi.analysis._marginal import marginal_effects
from optuna_hpi.analysis._marginal import MarginalEffect
from optuna_hpi.importance._sobol import SobolImportanceEvaluator
from optuna_hpi.staged._plan import narrow_distribution
from optuna_hpi.staged._plan import PlanRules


if TYPE_CHECKING:
    from optuna.study import Study

Action = Literal["keep", "narrow", "expand", "log", "freeze"]

#: A linear range is a candidate for ``log`` only when ``high / low`` is at least this.
LOG_SPAN = 100.0
#: ``expand``: the marginal effect is lowest within this share of the range from a bound...
PD_EDGE = 0.05
#: ...and the best trial lies within this share of it (sampler scale).
EDGE = 0.15
#: ``log``: the best trials crowd the lowest this share of a linear range, where a log scale
#: would sample far more often.
LOW_EDGE = 0.1
#: ``expand`` moves a crowded bound by this share of the range (sampler scale).
EXPAND_BY = 0.5


@dataclass(frozen=True)
class RangeAdvice:
    """What to do with one parameter's range in the next study, and why.

    Attributes:
        param: The parameter.
        action: ``"keep"`` (the current range), ``"narrow"`` (new :attr:`low`/:attr:`high`
            inside it), ``"expand"`` (a bound moved outwards: the best trials crowd it),
            ``"log"`` (the same bounds on a log scale) or ``"freeze"`` (no detectable effect;
            fix it at :attr:`value`, the best trial's value).
        low: Lower bound of the next range (``None`` for categoricals and frozen parameters).
        high: Upper bound of the next range.
        log: Whether the next range is log-scaled.
        value: The fixed value of a frozen parameter (else ``None``).
        reason: The evidence: importance (Sobol' total-order index of the surrogate, with its
            bootstrap interval) and where the best trials lie.
        distribution: The parameter's current distribution (of its latest trial).
        importance: Total-order Sobol' index (``None`` when not assessed).
        interval: Its bootstrap interval (``None`` without bootstrap).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import suggest_ranges

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 2) ** 2, n_trials=40)
            advice = suggest_ranges(study, n_bootstrap=5)["x"]
            print(advice.action, advice.low, advice.high, advice.reason)  # expand ...
    """

    param: str
    action: Action
    low: float | int | None
    high: float | int | None
    log: bool
    value: Any
    reason: str
    distribution: BaseDistribution
    importance: float | None = None
    interval: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``param, action, low, high, log, value, reason`` plus ``step`` and
        ``choices`` of the distribution, ``importance`` and ``interval``."""
        d = self.distribution
        return {
            "param": self.param,
            "action": self.action,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "value": self.value,
            "reason": self.reason,
            "type": _kind(d),
            "step": getattr(d, "step", None),
            "choices": list(d.choices) if isinstance(d, CategoricalDistribution) else None,
            "importance": self.importance,
            "interval": None if self.interval is None else list(self.interval),
        }

    def suggest_line(self, variable: str | None = None, trial: str = "trial") -> str:
        """One line of Python for the next objective (a ``suggest_*`` call or a constant)."""
        var = variable or _identifier(self.param)
        d = self.distribution
        if self.action == "freeze":
            return f"{var} = {self.value!r}"
        if isinstance(d, CategoricalDistribution):
            return f"{var} = {trial}.suggest_categorical({self.param!r}, {list(d.choices)!r})"
        extra = ""
        step = getattr(d, "step", None)
        if step is not None and not (isinstance(d, IntDistribution) and step == 1):
            extra += f", step={step!r}"
        if self.log:
            extra += ", log=True"
        kind = "int" if isinstance(d, IntDistribution) else "float"
        bounds = f"{self.low!r}, {self.high!r}{extra}"
        return f"{var} = {trial}.suggest_{kind}({self.param!r}, {bounds})"


@dataclass(frozen=True)
class RangeSuggestions:
    """Range advice for every parameter of a study (see :func:`suggest_ranges`).

    Attributes:
        advice: One :class:`RangeAdvice` per parameter, in the study's parameter order.
        n_trials: Usable trials behind the advice.
        surrogate_r2: Cross-validated R^2 of the Sobol' surrogate (``nan`` if not computed).
        study_name: Name of the study.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import suggest_ranges

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2 + 0 * t.suggest_int("n", 0, 9),
                n_trials=60,
            )
            ranges = suggest_ranges(study, n_bootstrap=5)
            print(ranges.to_text())
            print(ranges.to_python())
    """

    advice: list[RangeAdvice]
    n_trials: int
    surrogate_r2: float = float("nan")
    study_name: str = ""

    def __getitem__(self, param: str) -> RangeAdvice:
        for a in self.advice:
            if a.param == param:
                return a
        raise KeyError(f"No advice for {param!r}; have {[a.param for a in self.advice]}.")

    def to_dicts(self) -> list[dict[str, Any]]:
        """A list of :meth:`RangeAdvice.to_dict`."""
        return [a.to_dict() for a in self.advice]

    def to_json(self, indent: int | None = 2) -> str:
        """The advice as a JSON list of objects (see :meth:`RangeAdvice.to_dict`)."""
        return json.dumps(self.to_dicts(), indent=indent)

    def to_text(self) -> str:
        """A table (one line per parameter, its reason indented below), at most 100 columns."""
        r2 = "" if math.isnan(self.surrogate_r2) else f", surrogate CV R^2 {self.surrogate_r2:.2f}"
        lines = [f"Range advice for the next study ({self.n_trials} trials{r2})"]
        rows = [("param", "action", "next range")]
        for a in self.advice:
            rows.append((a.param, a.action, _describe(a)))
        widths = [max(len(r[k]) for r in rows) for k in range(2)]
        for i, (p, action, rng) in enumerate(rows):
            lines.append(f"{p.ljust(widths[0])}  {action.ljust(widths[1])}  {rng}".rstrip())
            if i == 0:
                continue
            lines += textwrap.wrap(
                self.advice[i - 1].reason, 99, initial_indent="    ", subsequent_indent="    "
            )
        return "\n".join(lines)

    def to_python(self, trial: str = "trial") -> str:
        """Paste-ready lines for the next objective: one ``suggest_*`` call (or constant) per
        parameter, each preceded by its reason as a comment."""
        title = f" of study {self.study_name!r}" if self.study_name else ""
        lines = [f"# optuna-hpi range advice{title} ({self.n_trials} trials)"]
        used: set[str] = set()
        for a in self.advice:
            var = _identifier(a.param)
            while var in used:
                var += "_"
            used.add(var)
            lines += textwrap.wrap(
                f"{a.param}: {a.action} - {a.reason}",
                99,
                initial_indent="# ",
                subsequent_indent="#   ",
            )
            lines.append(a.suggest_line(var, trial))
        return "\n".join(lines)


def _kind(d: BaseDistribution) -> str:
    if isinstance(d, CategoricalDistribution):
        return "categorical"
    return "int" if isinstance(d, IntDistribution) else "float"


def _identifier(name: str) -> str:
    var = re.sub(r"\W", "_", name) or "_"
    if var[0].isdigit():
        var = "_" + var
    if keyword.iskeyword(var) or var == "trial":
        var += "_"
    return var


def _describe(a: RangeAdvice) -> str:
    if a.action == "freeze":
        return f"= {a.value!r}"
    if isinstance(a.distribution, CategoricalDistribution):
        return f"{list(a.distribution.choices)!r}"
    return f"[{a.low!r}, {a.high!r}]" + (" log" if a.log else "")


def _round_out(v: float, up: bool) -> float:
    """``v`` rounded outwards to 4 significant digits (readable bounds that still contain
    what they must)."""
    if v == 0 or not math.isfinite(v):
        return float(v)
    q = 10.0 ** (math.floor(math.log10(abs(v))) - 3)
    r = (math.ceil(v / q - 1e-9) if up else math.floor(v / q + 1e-9)) * q
    return float(f"{r:.4g}")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


def suggest_ranges(
    study: Study,
    params: list[str] | None = None,
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    n_bootstrap: int = 20,
    seed: int = 0,
    min_trials: int = 20,
    min_r2: float = 0.3,
    rules: PlanRules | None = None,
    n_samples: int = 1024,
    surrogate: SurrogateConfig | None = None,
) -> RangeSuggestions:
    """Advise each parameter's range for the next study, with the evidence.

    Two pieces of evidence are used. *How much* a parameter matters: its total-order Sobol'
    index with a bootstrap interval (total order, so that a parameter acting only through
    interactions is not frozen). *Where* its optimum lies: the minimum of the surrogate's
    marginal effect (partial dependence, see :func:`~optuna_hpi.marginal_effects`) and the
    best trials. Thresholds and narrowed ranges are the staged planner's
    (:class:`~optuna_hpi.staged.PlanRules` and its narrowing rule), so a range narrowed here is
    the one a :class:`~optuna_hpi.StagedStudy` would narrow to. Rules, in order:

    * too few usable trials (``min_trials``) or a surrogate that explains little (CV R^2 below
      ``min_r2``): ``keep`` every parameter, saying so;
    * interval entirely below ``rules.freeze_below``: ``freeze`` at the best trial's value;
    * categorical, or an interval reaching below ``rules.freeze_below`` (uncertain): ``keep``;
    * a linear range spanning at least two decades (``high / low >= 100``) whose marginal
      effect is lowest in the bottom 10 % of the range, where the best trial lies too: ``log``
      with the same bounds (linear sampling almost never visits the lower decades);
    * marginal effect lowest within 5 % of a bound, and the best trial within 15 % of it
      (sampler scale): ``expand`` that bound by half the range (never across 0; never below 1
      for log ints);
    * interval entirely above ``rules.narrow_above``: ``narrow`` with the planner's rule (the
      span of the best ``rules.top_fraction`` of the trials, padded, at least
      ``rules.min_width`` of the range), when it is narrower than the current range;
    * otherwise ``keep``.

    Args:
        study: A finished study (single objective, or any study with ``target``).
        params: Parameters to advise on (default: every assessed one).
        target: Response to use instead of the objective; it is minimized.
        n_bootstrap: Surrogate refits for the importance intervals.
        seed: Seed of the surrogate and the designs.
        min_trials: Below this many usable trials every parameter is kept.
        min_r2: Below this surrogate CV R^2 every parameter is kept.
        rules: Thresholds (default: the staged planner's defaults).
        n_samples: Base size of the Sobol' design (see
            :class:`~optuna_hpi.SobolImportanceEvaluator`).
        surrogate: Surrogate settings.

    Returns:
        The advice; ``to_json()``, ``to_text()`` and ``to_python()`` format it.

    Raises:
        ValueError: a multi-objective study without ``target``, or bad ``min_trials``.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import suggest_ranges


            def objective(trial):
                x = trial.suggest_float("x", 0, 1)
                u = trial.suggest_float("u", -5, 5)
                trial.suggest_float("noise", 0, 1)
                return (x - 2) ** 2 + 0.1 * (u - 1) ** 2


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=80)
            ranges = suggest_ranges(study, n_bootstrap=10)
            for advice in ranges.advice:
                print(advice.param, advice.action, advice.low, advice.high, advice.value)
            print(ranges.to_python())
    """
    if study._is_multi_objective() and target is None:
        raise ValueError(
            "Range advice needs one response; pass target=lambda t: t.values[i] for a "
            "multi-objective study."
        )
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 2:
        raise ValueError(f"`min_trials` must be an int >= 2, got {min_trials!r}.")
    rules = rules or PlanRules()
    data = encode_study(study, params, target)
    # The next study starts from the range the user used last.
    current: dict[str, BaseDistribution] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        current.update(t.distributions)
    names = [s.name for s in data.specs]
    name_of = study.study_name
    r2 = math.nan
    total: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    if data.n_trials >= min_trials:
        evaluator = SobolImportanceEvaluator(n_samples=n_samples, surrogate=surrogate, seed=seed)
        result = evaluator.analyze_encoded(data, n_bootstrap)
        r2, total, intervals = result.surrogate_r2, result.total, result.total_intervals

    def keep(name: str, reason: str) -> RangeAdvice:
        d = current[name]
        low, high = getattr(d, "low", None), getattr(d, "high", None)
        return RangeAdvice(
            name, "keep", low, high, bool(getattr(d, "log", False)), None, reason, d,
            total.get(name), intervals.get(name),
        )  # fmt: skip

    if data.n_trials < min_trials:
        reason = (
            f"keep: only {data.n_trials} usable trials (fewer than min_trials={min_trials}), "
            "too few to tell what matters or where the optimum lies"
        )
        return RangeSuggestions([keep(n, reason) for n in names], data.n_trials, r2, name_of)
    if math.isfinite(r2) and r2 < min_r2:
        reason = (
            f"keep: the surrogate's CV R^2 is {r2:.2f} (below min_r2={min_r2}); it explains too "
            "little of the objective for its importances to justify a change"
        )
        return RangeSuggestions([keep(n, reason) for n in names], data.n_trials, r2, name_of)

    numeric = [
        n for n in names if not isinstance(current[n], CategoricalDistribution) and n in total
    ]
    curves: dict[str, MarginalEffect] = {}
    sign = 1.0
    if numeric:
        effects = marginal_effects(
            study, numeric, target=target, n_bootstrap=0, surrogate=surrogate, seed=seed
        )
        curves = effects.curves
        if effects.response == "objective" and study.direction == StudyDirection.MAXIMIZE:
            sign = -1.0  # curves are in the user's orientation; rules want lower = better
    y_of = {t.number: float(v) for t, v in zip(data.trials, data.y)}
    advice = [
        _advise(
            name,
            current[name],
            data.trials,
            y_of,
            total,
            intervals,
            curves.get(name),
            sign,
            rules,
            keep,
        )  # fmt: skip
        for name in names
    ]
    return RangeSuggestions(advice, data.n_trials, r2, name_of)


def _advise(
    name: str,
    dist: BaseDistribution,
    trials: list[FrozenTrial],
    y_of: dict[int, float],
    total: dict[str, float],
    intervals: dict[str, tuple[float, float]],
    curve: MarginalEffect | None,
    sign: float,
    rules: PlanRules,
    keep: Callable[[str, str], RangeAdvice],
) -> RangeAdvice:
    rows = sorted(
        (t for t in trials if name in t.params), key=lambda t: (y_of[t.number], t.number)
    )
    imp = total.get(name)
    if dist.single():
        return keep(name, "keep: a single value already")
    if imp is None or not rows:
        return keep(name, "keep: not assessed (too rarely active)")
    lo_i, hi_i = intervals.get(name, (imp, imp))
    evidence = f"total-order Sobol' index {imp:.3f} [{lo_i:.3f}, {hi_i:.3f}]"
    log = bool(getattr(dist, "log", False))
    best_trial = rows[0]
    if hi_i < rules.freeze_below:
        best = best_trial.params[name]
        return RangeAdvice(
            name, "freeze", None, None, log, best,
            f"{evidence}, entirely below {rules.freeze_below}: no detectable effect; fix it at "
            f"the best trial's value {_fmt(best)} (trial {best_trial.number})",
            dist, imp, (lo_i, hi_i),
        )  # fmt: skip
    if isinstance(dist, CategoricalDistribution):
        return keep(name, f"keep: {evidence}; categorical choices are kept")
    if lo_i <= rules.freeze_below:
        return keep(
            name,
            f"keep: {evidence} reaches below {rules.freeze_below}: its effect is uncertain",
        )
    assert isinstance(dist, (FloatDistribution, IntDistribution))
    low, high = float(dist.low), float(dist.high)
    best = float(best_trial.params[name])

    def pos(v: float) -> float:
        """Position in the range on the sampler's scale (0 = low, 1 = high)."""
        if log:
            return (math.log(v) - math.log(low)) / (math.log(high) - math.log(low))
        return (v - low) / (high - low)

    if curve is not None:
        loss = sign * np.asarray(curve.mean, dtype=float)
        arg = int(np.argmin(loss))
        at = float(curve.values[arg])
        where = (
            f"the surrogate's marginal effect is lowest at {_fmt(at)} "
            f"({float(np.max(loss) - loss[arg]):.3g} better than its worst), the best trial "
            f"(number {best_trial.number}) has {_fmt(best)}"
        )
        # A linear range over decades whose optimum sits at its low end: a log scale samples
        # those decades as often as the upper ones (linear sampling almost never visits them).
        linear_grid = dist.step is None or (isinstance(dist, IntDistribution) and dist.step == 1)
        if not log and linear_grid and low > 0 and high / low >= LOG_SPAN:
            if pos(at) <= LOW_EDGE and pos(best) <= LOW_EDGE:
                return RangeAdvice(
                    name, "log", dist.low, dist.high, True, None,
                    f"{evidence}; {where}: both in the lowest {LOW_EDGE:.0%} of a linear range "
                    f"spanning {math.log10(high / low):.1f} decades; search it on a log scale",
                    dist, imp, (lo_i, hi_i),
                )  # fmt: skip
        for side, edge in (("upper", 1.0), ("lower", 0.0)):
            if abs(pos(at) - edge) > PD_EDGE or abs(pos(best) - edge) > EDGE:
                continue
            new = _expanded(dist, side)
            if new is None:
                break  # a hard limit (0, or 1 for a log int): narrowing may still apply
            new_low, new_high = (dist.low, new) if side == "upper" else (new, dist.high)
            bound = dist.high if side == "upper" else dist.low
            return RangeAdvice(
                name, "expand", new_low, new_high, log, None,
                f"{evidence}; {where}: both at the {side} bound {_fmt(bound)}, so the optimum "
                f"may lie beyond it; move the bound to {_fmt(new)} (half the range further)",
                dist, imp, (lo_i, hi_i),
            )  # fmt: skip

    if lo_i > rules.narrow_above:
        narrowed = narrow_distribution(
            dist, [t.params[name] for t in rows], [y_of[t.number] for t in rows], rules
        )
        n_top = max(3, math.ceil(rules.top_fraction * len(rows)))
        top = [float(t.params[name]) for t in rows[:n_top]]
        top_desc = f"the {len(top)} best trials span [{_fmt(min(top))}, {_fmt(max(top))}]"
        if isinstance(narrowed, (FloatDistribution, IntDistribution)):
            n_low: float | int = narrowed.low
            n_high: float | int = narrowed.high
            if isinstance(narrowed, FloatDistribution) and narrowed.step is None:
                n_low = max(_round_out(n_low, up=False), dist.low)
                n_high = min(_round_out(n_high, up=True), dist.high)
            return RangeAdvice(
                name, "narrow", n_low, n_high, log, None,
                f"{evidence}, entirely above {rules.narrow_above}; {top_desc}: the staged "
                f"planner's rule narrows [{_fmt(dist.low)}, {_fmt(dist.high)}] to "
                f"[{_fmt(n_low)}, {_fmt(n_high)}]",
                dist, imp, (lo_i, hi_i),
            )  # fmt: skip
        return keep(name, f"keep: {evidence}; {top_desc}: no narrower range")
    return keep(
        name,
        f"keep: {evidence} is neither below {rules.freeze_below} (freeze) nor entirely above "
        f"{rules.narrow_above} (narrow)",
    )


def _expanded(dist: FloatDistribution | IntDistribution, side: str) -> float | int | None:
    """The moved bound (``None`` when the bound is a hard limit that must not be crossed)."""
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        ratio = (high / low) ** EXPAND_BY
        new = high * ratio if side == "upper" else low / ratio
    else:
        shift = EXPAND_BY * (high - low)
        new = high + shift if side == "upper" else low - shift
        # Crossing zero changes the parameter's meaning (a rate, a size): stop at 0.
        if side == "lower" and low >= 0:
            new = max(new, 0.0)
        if side == "upper" and high <= 0:
            new = min(new, 0.0)
    if isinstance(dist, IntDistribution):
        step = dist.step
        k = (new - dist.low) / step
        k_int = math.ceil(k - 1e-9) if side == "upper" else math.floor(k + 1e-9)
        n_int = dist.low + k_int * step
        if dist.log:
            n_int = max(n_int, 1)
        if n_int == (dist.high if side == "upper" else dist.low):
            return None
        return n_int
    if dist.step is not None:
        k = (new - dist.low) / dist.step
        k_i = math.ceil(k - 1e-9) if side == "upper" else math.floor(k + 1e-9)
        new = float(f"{dist.low + k_i * dist.step:.12g}")
    else:
        new = _round_out(new, up=side == "upper")
    if new == (high if side == "upper" else low):
        return None
    return new
