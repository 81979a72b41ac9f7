"""Ablation analysis on the surrogate: the greedy path from a source to the best trial."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
from dataclasses import field
import math
import threading
from typing import Any
import warnings

import numpy as np
from optuna.logging import get_logger

from optuna_hpi._encoding import EncodedTrials
from optuna_hpi._encoding import infer_parents
from optuna_hpi._encoding import ParamSpec
from optuna_hpi._surrogate import cross_validated_r2
from optuna_hpi._surrogate import Surrogate
from optuna_hpi._surrogate import SurrogateConfig
from optuna_hpi.importance._base import Bounds
from optuna_hpi.importance._base import expand
from optuna_hpi.importance._base import expand_intervals
from optuna_hpi.importance._base import HpiImportanceEvaluator
from optuna_hpi.importance._base import Stats
from optuna_hpi.importance._result import ImportanceResult


_logger = get_logger(__name__)

#: What ablation intervals gain on each side, in cross-validated RMSEs of the surrogate. The
#: refits see the trials' sampling noise but share the surrogate's systematic error; one
#: out-of-sample prediction error covers it. Chosen with a 40-iteration surrogate, seeds
#: 100-109: the true-path improvements of Ishigami and the G-function (300 and 1000 trials)
#: fell inside 77-83 % of the bootstrap intervals, 93-100 % with one RMSE added. With the
#: default 200-iteration surrogate every cell of ``benchmarks/bench_coverage.py`` (seeds
#: 200-209) is at 100 %, so the factor may be conservative there.
ABLATION_RMSE_FACTOR = 1.0


@dataclass(frozen=True)
class AblationStep:
    """One step of the ablation path.

    Attributes:
        params: The parameters moved together in this step. The first is the one the step is
            credited to; the others are conditional parameters switched on or off with it
            (``None`` in :attr:`before` / :attr:`after` means inactive).
        before: External values of :attr:`params` before the step.
        after: External values of :attr:`params` after the step (their target values).
        predicted: Predicted objective after the step, in the study's own orientation (a
            maximized objective is reported as is, not negated).
        improvement: Predicted improvement of the step (positive = better, in either
            direction). Can be negative: the step alone makes things worse.
        share: ``improvement`` divided by the total predicted improvement from source to target
            (``nan`` when that total is 0). Shares of a path sum to 1.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import AblationImportanceEvaluator


            def objective(trial):
                return -(3 * trial.suggest_int("a", 0, 1) + trial.suggest_int("b", 0, 1))


            study = optuna.create_study()
            for a, b in [(0, 0), (0, 1), (1, 0), (1, 1)] * 3:
                study.enqueue_trial({"a": a, "b": b})
            study.optimize(objective, n_trials=12)
            evaluator = AblationImportanceEvaluator(default_params={"a": 0, "b": 0}, seed=0)
            for step in evaluator.analyze(study, n_bootstrap=0).path:
                print(step.params, step.before, step.after, step.predicted, step.share)
    """

    params: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]
    predicted: float
    improvement: float
    share: float


@dataclass(frozen=True)
class AblationResult(ImportanceResult):
    """Surrogate ablation from a source configuration to the best trial.

    :attr:`values` holds each parameter's predicted improvement (raw, may be negative); a
    parameter equal at source and target, or moved only as a conditional child of another
    parameter's step, gets exactly 0. :attr:`intervals` are the union of the percentile and
    basic bootstrap intervals of these improvements over surrogate refits on resampled trials
    (source, target and grouping held fixed), widened on each side by the surrogate's
    cross-validated RMSE (:data:`ABLATION_RMSE_FACTOR`) and always containing the estimate.

    Attributes:
        path: The greedy path, best step first.
        shares: Each parameter's improvement divided by the total predicted improvement
            (Fawcett & Hoos' "percentage of performance gap"); ``nan`` when the total is 0.
        source: External values of the source configuration (``None`` = inactive).
        source_kind: Where the source came from: ``"default_params"``, ``"source_trial"``,
            ``"center"`` (centre of each distribution) or ``"median_trial"`` (used instead of
            the centre when the surrogate does not predict the centre worse than the target).
        source_trial: Number of the trial used as (or to fill in) the source, if any.
        target: External values of the target configuration.
        target_trial: Number of the target (best usable) trial.
        predicted_source: Surrogate prediction at the source, in the study's orientation.
        predicted_target: Surrogate prediction at the target, in the study's orientation.
        surrogate_r2: 5-fold cross-validated R^2 of the surrogate (``nan`` below 10 trials and
            when called through ``evaluate()``, which skips the cross-validation).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import AblationImportanceEvaluator


            def objective(trial):
                x = trial.suggest_float("x", 0, 1)
                opt = trial.suggest_categorical("opt", ["sgd", "adam"])
                return (x - 0.2) ** 2 + (opt == "sgd")


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=60)
            defaults = {"x": 0.9, "opt": "sgd"}
            evaluator = AblationImportanceEvaluator(default_params=defaults, seed=0)
            result = evaluator.analyze(study, n_bootstrap=5)
            print(result.source_kind, result.source, "->", result.target)
            print(result.predicted_source, result.predicted_target, result.surrogate_r2)
            print(result.shares, result.intervals)
    """

    path: tuple[AblationStep, ...] = ()
    shares: dict[str, float] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    source_kind: str = "center"
    source_trial: int | None = None
    target: dict[str, Any] = field(default_factory=dict)
    target_trial: int | None = None
    predicted_source: float = float("nan")
    predicted_target: float = float("nan")
    surrogate_r2: float = float("nan")


@dataclass
class _Plan:
    """What one ``analyze`` call holds fixed across the point estimate and bootstrap refits."""

    data: EncodedTrials
    source: np.ndarray
    source_kind: str
    source_trial: int | None
    target_row: int
    parents: list[int | None]
    siblings: list[int]
    # Filled by the point estimate (the first ``_statistics`` call).
    path: list[tuple[list[int], float, float]] | None = None
    credit: dict[int, list[int]] = field(default_factory=dict)
    predicted_source: float = float("nan")
    predicted_target: float = float("nan")


class AblationImportanceEvaluator(HpiImportanceEvaluator[AblationResult]):
    """Ablation path importance (Fawcett & Hoos 2016) on a surrogate (Biedenkapp et al. 2017).

    The package's gradient-boosted-trees surrogate is fitted to the usable trials. Starting at a
    source configuration, each round flips every parameter that still differs from the target
    to its target value (one batched prediction), keeps the flip with the best prediction and
    records its predicted improvement. A parameter's importance is the improvement of its step;
    the improvements telescope to ``surrogate(source) - surrogate(target)``. Improvements are
    in the response's units and positive means better for minimized and maximized studies
    alike; negative ones stay in :meth:`analyze` and are clipped to 0 by ``evaluate()``.

    Source configuration, in order of precedence per parameter:

    1. ``default_params`` (the usual case: the library's defaults; external values, validated
       against the search space),
    2. else the values of trial ``source_trial`` (if given; the whole trial when
       ``default_params`` is not given),
    3. else the centre of the distribution on the encoded scale (log-aware, snapped to the
       int/step grid; the first choice of a categorical). If the surrogate does not predict
       this automatic source worse than the target (very small studies), the median trial by
       response is used instead and the result says so (``source_kind="median_trial"``).

    Target: the best usable trial (lowest response of the encoding layer, i.e. by the study
    direction; a ``target`` function is minimized; ties go to the lowest trial number).

    Conditional parameters: the encoding marks a parameter inactive in a trial where it was not
    suggested. Parameters with the same activity pattern across trials form a group; the
    group's *parent* is inferred as the parameter, active wherever the group is, whose value
    decides the group's activity (each categorical choice always or never activates it; along a
    numeric parent's sorted values activity changes at most twice; fewest changes, then the
    closest ancestor, then column order win). In the source a conditional parameter is active
    exactly when its parent's source value activates it (as observed in the trials, nearest
    observed value for numerics); a group with no inferred parent keeps the target's activity
    unless ``default_params`` or ``source_trial`` say otherwise. On the path, a parameter whose
    activity differs between source and target moves in the same step as its parent (children
    switched on take their target values, children switched off become inactive); the step is
    credited to the parent and the children get 0. A switching group without a moving parent
    is one step whose improvement is split equally among its members.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import AblationImportanceEvaluator


            def objective(trial):
                lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
                depth = trial.suggest_int("depth", 1, 10)
                return (lr - 1e-2) ** 2 * 1e4 + abs(depth - 3)


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=100)
            defaults = {"lr": 1e-3, "depth": 6}
            evaluator = AblationImportanceEvaluator(default_params=defaults, seed=0)
            print(optuna.importance.get_param_importances(study, evaluator=evaluator))
            result = evaluator.analyze(study, n_bootstrap=5)
            for step in result.path:
                print(step.params, step.before, "->", step.after, step.predicted)

    Args:
        default_params: Source values by parameter name (external values as passed to
            ``suggest_*``). Names must be parameters of the study; parameters of the study
            that are not assessed (``params``) are ignored.
        source_trial: Number of a usable trial to start from (or to fill in parameters missing
            from ``default_params``).
        surrogate: Surrogate settings.
        n_bootstrap: Default number of surrogate refits on bootstrap resamples of the trials
            for the intervals of :meth:`analyze` (``evaluate()`` never bootstraps).
        confidence: Level of the intervals.
        seed: Seed of the surrogate; ``None`` draws one at construction, so that one instance
            is always deterministic.
    """

    def __init__(
        self,
        *,
        default_params: Mapping[str, Any] | None = None,
        source_trial: int | None = None,
        surrogate: SurrogateConfig | None = None,
        n_bootstrap: int = 30,
        confidence: float = 0.95,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed, n_bootstrap=n_bootstrap, confidence=confidence)
        if default_params is not None and not isinstance(default_params, Mapping):
            raise TypeError(
                "`default_params` must be a dict of parameter name -> value, got "
                f"{type(default_params).__name__}."
            )
        if default_params is not None and not all(isinstance(k, str) for k in default_params):
            raise TypeError("`default_params` keys must be parameter names (str).")
        if source_trial is not None and (
            isinstance(source_trial, bool) or not isinstance(source_trial, (int, np.integer))
        ):
            raise TypeError(
                f"`source_trial` must be a trial number (int) or None, got {source_trial!r}."
            )
        if surrogate is not None and not isinstance(surrogate, SurrogateConfig):
            raise TypeError("`surrogate` must be a SurrogateConfig or None.")
        self._default_params = dict(default_params) if default_params is not None else None
        self._source_trial = None if source_trial is None else int(source_trial)
        self._surrogate = surrogate or SurrogateConfig()
        # One analysis in flight per thread: the plan ties the point estimate and its refits.
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        # threading.local cannot be pickled or deep-copied; it holds nothing between calls.
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def analyze_encoded(
        self,
        data: EncodedTrials,
        n_bootstrap: int | None = None,
        *,
        diagnostics: bool = True,
        widen: bool = True,
    ) -> AblationResult:
        previous = getattr(self._local, "plan", None)
        self._local.plan = self._plan(data) if data.specs and data.n_trials >= 1 else None
        try:
            return super().analyze_encoded(data, n_bootstrap, diagnostics=diagnostics, widen=widen)
        finally:
            self._local.plan = previous

    # -- source, target and grouping --------------------------------------------------------

    def _plan(self, data: EncodedTrials) -> _Plan:
        parents = infer_parents(data)
        target_row = int(np.argmin(data.y))
        source_row: int | None = None
        if self._source_trial is not None:
            numbers = [t.number for t in data.trials]
            if self._source_trial not in numbers:
                raise ValueError(
                    f"`source_trial={self._source_trial}` is not a usable trial (COMPLETE with a "
                    "finite response) of this study; pass the number of one, e.g. "
                    f"source_trial={numbers[0]}, or give `default_params` instead."
                )
            source_row = numbers.index(self._source_trial)
        defaults = self._encoded_defaults(data)
        if defaults is None and source_row is not None:
            return _Plan(
                data,
                data.X[source_row].copy(),
                "source_trial",
                self._source_trial,
                target_row,
                parents,
                activity_groups(data),
            )
        source = np.full(len(data.specs), np.nan)
        centred = []
        for j, spec in enumerate(data.specs):
            if defaults is not None and spec.name in defaults:
                source[j] = defaults[spec.name]
            elif source_row is not None:
                source[j] = data.X[source_row, j]
            else:
                source[j] = center(spec)
                if defaults is not None and not spec.conditional:
                    centred.append(spec.name)
        if centred:
            _logger.info(f"Parameters {centred} are not in `default_params`; using their centre.")
        source = _apply_activity(data, parents, source, target_row, defaults, source_row)
        kind = "default_params" if defaults is not None else "center"
        return _Plan(
            data,
            source,
            kind,
            self._source_trial,
            target_row,
            parents,
            activity_groups(data),
        )

    def _encoded_defaults(self, data: EncodedTrials) -> dict[str, float] | None:
        if self._default_params is None:
            return None
        known = {name for t in data.trials for name in t.distributions}
        unknown = sorted(set(self._default_params) - known)
        if unknown:
            raise ValueError(
                f"`default_params` names {unknown}, which are not parameters of any usable trial "
                f"of this study (known: {sorted(known)}); fix the names or drop them."
            )
        specs = {s.name: s for s in data.specs}
        return {
            name: encode_default(specs[name], value)
            for name, value in self._default_params.items()
            if name in specs
        }

    # -- the evaluator protocol ---------------------------------------------------------------

    def _statistics(self, data: EncodedTrials) -> Stats:
        plan: _Plan = self._local.plan
        full = plan.data.params
        cols = [full.index(name) for name in data.params]
        model = Surrogate(data, self._surrogate, self._seed)
        target = plan.data.X[plan.target_row, cols]
        if plan.path is None:
            source = plan.source[cols]
            f_s, f_t = _predict_pair(model, data, source, target)
            if plan.source_kind == "center" and f_s <= f_t:
                median = _median_row(plan.data.y, plan.target_row)
                if median is not None:
                    _logger.info(
                        "The surrogate does not predict the centre of the search space worse "
                        "than the best trial; ablating from the median trial instead."
                    )
                    plan.source = plan.data.X[median].copy()
                    plan.source_kind = "median_trial"
                    plan.source_trial = plan.data.trials[median].number
                    source = plan.source[cols]
                    f_s, f_t = _predict_pair(model, data, source, target)
            units, credit = _units(plan, source, target, cols)
            path = greedy_path(model.predict, data, source, target, units)
            plan.path = [([cols[j] for j in unit], before, after) for unit, before, after in path]
            plan.credit = {cols[k]: [cols[j] for j in v] for k, v in credit.items()}
            plan.predicted_source, plan.predicted_target = f_s, f_t
            if f_t >= f_s and units:
                warnings.warn(
                    "The surrogate does not predict the target (best trial) better than the "
                    "source; ablation importances are unreliable. Check `surrogate_r2`, run more "
                    "trials or choose another source.",
                    stacklevel=2,
                )
        else:
            source = plan.source[cols]
            units, credit = _units(plan, source, target, cols)
            path = greedy_path(model.predict, data, source, target, units)
        return {"importance": _credit(path, credit, len(cols))}

    def _result(
        self,
        data: EncodedTrials,
        live: list[int],
        point: Stats | None,
        intervals: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> AblationResult:
        plan: _Plan | None = self._local.plan
        values = expand(data, live, None if point is None else point["importance"])
        total = sum(values.values())
        shares = {k: (v / total if total != 0 else float("nan")) for k, v in values.items()}
        if plan is None:
            return AblationResult(
                method="ablation",
                values=values,
                confidence=self._confidence,
                n_trials=data.n_trials,
                response=data.response,
                shares=shares,
            )
        sign = _orientation(data)
        path: list[AblationStep] = []
        if plan.path is not None:
            current = plan.predicted_source
            for unit, _before, after in plan.path:
                improvement = current - after
                path.append(
                    AblationStep(
                        params=tuple(data.specs[j].name for j in unit),
                        before={
                            data.specs[j].name: self._source_value(data, j, plan) for j in unit
                        },
                        after={
                            data.specs[j].name: _decode(data, j, data.X[plan.target_row])
                            for j in unit
                        },
                        predicted=sign * after,
                        improvement=improvement,
                        share=improvement / total if total != 0 else float("nan"),
                    )
                )
                current = after
        return AblationResult(
            method="ablation",
            values=values,
            intervals=expand_intervals(data, live, intervals.get("importance")),
            confidence=self._confidence,
            n_trials=data.n_trials,
            response=data.response,
            path=tuple(path),
            shares=shares,
            source={s.name: self._source_value(data, j, plan) for j, s in enumerate(data.specs)},
            source_kind=plan.source_kind,
            source_trial=plan.source_trial,
            target={
                s.name: _decode(data, j, data.X[plan.target_row]) for j, s in enumerate(data.specs)
            },
            target_trial=data.trials[plan.target_row].number,
            predicted_source=sign * plan.predicted_source,
            predicted_target=sign * plan.predicted_target,
        )

    def _widen(
        self,
        key: str,
        point: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        r2: float,
        data: EncodedTrials,
    ) -> Bounds:
        if not math.isfinite(r2):
            return low, high
        # The surrogate's out-of-sample error: sqrt(1 - R^2) standard deviations of the
        # response. A step's improvement is a difference of two predictions.
        rmse = math.sqrt(max(0.0, 1.0 - r2)) * float(np.std(data.y))
        return low - ABLATION_RMSE_FACTOR * rmse, high + ABLATION_RMSE_FACTOR * rmse

    def _fit_quality(self, data: EncodedTrials) -> float:
        return cross_validated_r2(data, self._surrogate, self._seed)

    def _with_diagnostics(self, result: AblationResult, r2: float) -> AblationResult:
        return dataclasses.replace(result, surrogate_r2=r2)

    def _source_value(self, data: EncodedTrials, j: int, plan: _Plan) -> Any:
        # Report the user's own default (not a log/exp round trip of it) where it was used.
        name = data.specs[j].name
        if (
            plan.source_kind == "default_params"
            and self._default_params is not None
            and name in self._default_params
            and not np.isnan(plan.source[j])
        ):
            return self._default_params[name]
        return _decode(data, j, plan.source)


# -- pure helpers (module level so that tests can check them directly) --------------------------


def center(spec: ParamSpec) -> float:
    """Encoded centre of a distribution: midpoint of the encoded range, snapped to the grid.

    Categoricals give their first choice (index 0). Ties on a grid go to the lower value.
    """
    if spec.kind == "categorical":
        return 0.0
    mid = 0.5 * (spec.low + spec.high)
    if spec.grid is not None:
        return float(spec.grid[int(np.argmin(np.abs(spec.grid - mid)))])
    return mid


def encode_default(spec: ParamSpec, value: Any) -> float:
    """Validate one ``default_params`` value against ``spec`` and encode it."""
    name = spec.name
    if spec.kind == "categorical":
        choices = spec.distribution.choices  # type: ignore[attr-defined]
        try:
            return spec.encode(value)
        except (ValueError, TypeError):
            raise ValueError(
                f"`default_params['{name}']={value!r}` is not one of the choices {choices!r}; "
                "pass one of them."
            ) from None
    dist = spec.distribution
    low, high = dist.low, dist.high  # type: ignore[attr-defined]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
    ):
        raise ValueError(
            f"`default_params['{name}']` must be a finite number in [{low}, {high}], got "
            f"{value!r}."
        )
    if not low <= value <= high:
        raise ValueError(
            f"`default_params['{name}']={value!r}` is outside the search space [{low}, {high}] "
            f"of '{name}'; pass a value inside it."
        )
    encoded = spec.encode(value)
    if spec.grid is not None:
        gap = float(np.min(np.abs(spec.grid - encoded)))
        if gap > 1e-8 * max(1.0, abs(encoded)):
            step = getattr(dist, "step", None)
            raise ValueError(
                f"`default_params['{name}']={value!r}` is not on the grid of '{name}' (low={low}, "
                f"step={step}); pass a value of that grid."
            )
    return encoded


def activity_groups(data: EncodedTrials) -> list[int]:
    """For each column, the first column with the same activity pattern across the trials."""
    active = ~np.isnan(data.X)
    first: dict[bytes, int] = {}
    return [first.setdefault(active[:, j].tobytes(), j) for j in range(len(data.specs))]


def _apply_activity(
    data: EncodedTrials,
    parents: list[int | None],
    source: np.ndarray,
    target_row: int,
    defaults: dict[str, float] | None,
    source_row: int | None,
) -> np.ndarray:
    """Switch conditional entries of ``source`` on or off (see the class docstring)."""
    active = ~np.isnan(data.X)
    out = source.copy()
    # Ancestors are active in strictly more trials than descendants: resolve them first.
    order = sorted(range(len(data.specs)), key=lambda j: -int(active[:, j].sum()))
    for j in order:
        spec = data.specs[j]
        if not spec.conditional:
            continue
        p = parents[j]
        if p is not None:
            on = False
            if not np.isnan(out[p]):
                m_p = active[:, p]
                gap = np.abs(data.X[m_p, p] - out[p])
                nearest = int(np.argmin(gap))
                # A categorical choice never observed says nothing about its children: off.
                seen = data.specs[p].kind != "categorical" or gap[nearest] == 0
                on = seen and bool(active[m_p, j][nearest])
            if not on:
                out[j] = np.nan
            elif np.isnan(out[j]):
                out[j] = center(spec)
        elif defaults is not None and spec.name in defaults:
            continue
        elif source_row is not None:
            out[j] = data.X[source_row, j]
        elif np.isnan(data.X[target_row, j]):
            out[j] = np.nan
    return out


def ablation_units(
    source: np.ndarray,
    target: np.ndarray,
    parents: list[int | None],
    columns: list[int],
    siblings: list[int] | None = None,
) -> tuple[list[list[int]], dict[int, list[int]]]:
    """Group the differing columns into steps and say whom each step is credited to.

    Args:
        source: Encoded source row (``NaN`` = inactive).
        target: Encoded target row.
        parents: Parent of each column as an index into the *full* column list (``columns``
            maps local to full indices), or ``None``.
        columns: Full-data index of each local column.
        siblings: Activity group of each local column (:func:`activity_groups`); switching
            columns of one group move together. ``None``: every column is its own group.

    Returns:
        The units (lists of local column indices, credited column first) in column order of
        their first member, and for each unit's first member the local columns that share its
        improvement.
    """
    both_nan = np.isnan(source) & np.isnan(target)
    differ = ~both_nan & ~(source == target)
    switching = np.isnan(source) != np.isnan(target)
    local = {c: i for i, c in enumerate(columns)}
    root = list(range(len(source)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    first_of_group: dict[int, int] = {}
    for j in np.flatnonzero(switching):
        p = parents[j]
        if p is not None and p in local and differ[local[p]]:
            root[find(int(j))] = find(local[p])
        if siblings is not None:
            other = first_of_group.setdefault(siblings[j], int(j))
            root[find(int(j))] = find(other)
    groups: dict[int, list[int]] = {}
    for j in np.flatnonzero(differ):
        groups.setdefault(find(int(j)), []).append(int(j))
    units, credit = [], {}
    for members in groups.values():
        leads = [j for j in members if not switching[j]]
        ordered = leads + [j for j in members if switching[j]]
        units.append(ordered)
        credit[ordered[0]] = leads if leads else list(members)
    units.sort(key=lambda u: min(u))
    return units, credit


def greedy_path(
    predict: Callable[[np.ndarray], np.ndarray],
    data: EncodedTrials,
    source: np.ndarray,
    target: np.ndarray,
    units: list[list[int]],
) -> list[tuple[list[int], float, float]]:
    """Greedy ablation: each round, one batched prediction of every remaining unit's flip.

    Returns ``(unit, prediction before, prediction after)`` per step, in path order.
    Predictions are on the response scale (lower is better). Ties go to the earlier unit.
    """
    codes = np.array([s.inactive_code for s in data.specs], dtype=float)
    current = np.where(np.isnan(source), codes, source)
    goal = np.where(np.isnan(target), codes, target)
    before = float(predict(current[None, :])[0])
    remaining = list(units)
    path = []
    while remaining:
        batch = np.repeat(current[None, :], len(remaining), axis=0)
        for r, unit in enumerate(remaining):
            batch[r, unit] = goal[unit]
        pred = predict(batch)
        k = int(np.argmin(pred))
        after = float(pred[k])
        path.append((remaining[k], before, after))
        current = batch[k]
        before = after
        del remaining[k]
    return path


def _units(
    plan: _Plan, source: np.ndarray, target: np.ndarray, cols: list[int]
) -> tuple[list[list[int]], dict[int, list[int]]]:
    parents = [plan.parents[c] for c in cols]
    return ablation_units(source, target, parents, cols, [plan.siblings[c] for c in cols])


def _credit(
    path: list[tuple[list[int], float, float]], credit: dict[int, list[int]], d: int
) -> np.ndarray:
    out = np.zeros(d)
    for unit, before, after in path:
        owners = credit[unit[0]]
        out[owners] += (before - after) / len(owners)
    return out


def _predict_pair(
    model: Surrogate, data: EncodedTrials, source: np.ndarray, target: np.ndarray
) -> tuple[float, float]:
    codes = np.array([s.inactive_code for s in data.specs], dtype=float)
    rows = np.vstack([source, target])
    pred = model.predict(np.where(np.isnan(rows), codes, rows))
    return float(pred[0]), float(pred[1])


def _median_row(y: np.ndarray, target_row: int) -> int | None:
    order = np.argsort(y, kind="stable")
    row = int(order[len(y) // 2])
    return None if row == target_row else row


def _orientation(data: EncodedTrials) -> float:
    """+1 if ``data.y`` is the objective as the user sees it, -1 if it was negated (maximize)."""
    if data.response != "objective":
        return 1.0
    values = np.array([t.value for t in data.trials], dtype=float)
    if np.array_equal(data.y, values):
        return 1.0
    return -1.0 if np.array_equal(data.y, -values) else 1.0


def _decode(data: EncodedTrials, j: int, row: np.ndarray) -> Any:
    return None if np.isnan(row[j]) else data.specs[j].decode(float(row[j]))
