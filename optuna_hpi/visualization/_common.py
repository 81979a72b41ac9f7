"""Backend-independent data behind the plots (no plotly / matplotlib import here)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
import importlib
import math
from typing import Any
from typing import TYPE_CHECKING

import numpy as np

from optuna_hpi.analysis._marginal import marginal_effects
from optuna_hpi.analysis._marginal import MarginalEffects
from optuna_hpi.analysis._report import importance_report
from optuna_hpi.analysis._report import ImportanceReport
from optuna_hpi.analysis._report import normalize
from optuna_hpi.analysis._sensitivity import MeasuredAblation
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._sobol import SobolImportanceEvaluator
from optuna_hpi.importance._sobol import SobolResult


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

    from optuna_hpi.staged._plan import StagePlan


def require(module: str) -> Any:
    """Import a plotting backend or explain how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"Plotting needs {module.split('.')[0]}; install it with "
            "`pip install 'optuna-hpi[plot]'`."
        ) from err


@dataclass(frozen=True)
class Bars:
    """One evaluator's normalized importances with asymmetric error-bar lengths."""

    name: str
    params: list[str]
    values: list[float]
    err_minus: list[float] | None
    err_plus: list[float] | None


def importance_bars(
    source: Study | ImportanceReport | ImportanceResult,
    evaluators: Sequence[str],
    params: list[str] | None,
    target: Callable[[FrozenTrial], float] | None,
    n_bootstrap: int,
    seed: int,
) -> tuple[list[str], list[Bars]]:
    """Parameters (least important first, the bottom-to-top order of a bar chart) and bars."""
    if isinstance(source, ImportanceResult):
        shares, total = normalize(source.values)
        ivs = {}
        if source.intervals and total > 0:
            ivs = {
                p: (max(0.0, lo) / total, max(0.0, hi) / total)
                for p, (lo, hi) in source.intervals.items()
            }
        columns = [(source.method, shares, ivs)]
        order = sorted(shares, key=lambda p: shares[p])
    else:
        report = (
            source
            if isinstance(source, ImportanceReport)
            else importance_report(
                source, evaluators, params, target=target, n_bootstrap=n_bootstrap, seed=seed
            )
        )
        columns = [(c.name, c.importances, c.intervals) for c in report.columns]
        order = list(reversed(report.params))
    bars = []
    for name, shares, ivs in columns:
        values = [shares.get(p, math.nan) for p in order]
        if ivs:
            # Percentile intervals need not contain the point estimate; never draw negative bars.
            minus = [max(0.0, v - ivs[p][0]) if p in ivs else 0.0 for p, v in zip(order, values)]
            plus = [max(0.0, ivs[p][1] - v) if p in ivs else 0.0 for p, v in zip(order, values)]
            bars.append(Bars(name, order, values, minus, plus))
        else:
            bars.append(Bars(name, order, values, None, None))
    return order, bars


def interaction_matrix(
    source: Study | ImportanceReport | SobolResult,
    params: list[str] | None,
    target: Callable[[FrozenTrial], float] | None,
    seed: int,
) -> tuple[list[str], np.ndarray]:
    """Symmetric matrix of Sobol' indices: S_i on the diagonal, S_ij off it."""
    if isinstance(source, ImportanceReport):
        found = [c.result for c in source.columns if isinstance(c.result, SobolResult)]
        if not found or not found[0].pairwise:
            raise ValueError(
                "The report has no pairwise Sobol' indices; build it with 'sobol' among the "
                "evaluators."
            )
        result = found[0]
    elif isinstance(source, SobolResult):
        result = source
    else:
        evaluator = SobolImportanceEvaluator(pairwise=True, seed=seed)
        result = evaluator.analyze(source, params, target=target, n_bootstrap=0)
    if not result.pairwise and len(result.first) > 1:
        raise ValueError(
            "This SobolResult has no pairwise indices; use "
            "SobolImportanceEvaluator(pairwise=True)."
        )
    names = sorted(result.first, key=lambda p: -result.total.get(p, 0.0))
    index = {p: k for k, p in enumerate(names)}
    m = np.zeros((len(names), len(names)))
    for p in names:
        m[index[p], index[p]] = result.first[p]
    for (a, b), v in result.pairwise.items():
        m[index[a], index[b]] = m[index[b], index[a]] = v
    return names, m


def effects(
    source: Study | MarginalEffects,
    params: list[str] | None,
    target: Callable[[FrozenTrial], float] | None,
    n_bootstrap: int,
    seed: int,
) -> MarginalEffects:
    if isinstance(source, MarginalEffects):
        if params is None:
            return source
        missing = [p for p in params if p not in source.curves]
        if missing:
            raise ValueError(f"`params` {missing} have no curve; they have {list(source.curves)}.")
        curves = {p: source.curves[p] for p in params}
        return MarginalEffects(
            curves, source.response, source.response_label, source.confidence, source.n_trials
        )
    return marginal_effects(source, params, target=target, n_bootstrap=n_bootstrap, seed=seed)


def grid_shape(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return max(1, math.ceil(n / max(cols, 1))), max(cols, 1)


@dataclass(frozen=True)
class AblationPoint:
    """One point of the ablation path: after moving ``label`` the surrogate predicts ``value``."""

    label: str
    value: float
    share: float


def ablation_points(
    source: Any,
    params: list[str] | None,
    target: Callable[[FrozenTrial], float] | None,
    default_params: dict[str, Any] | None,
    seed: int,
) -> tuple[list[AblationPoint], float]:
    """``source`` first, then one point per step; and the surrogate's CV R^2 (``nan`` when
    the path was measured on the objective)."""
    from optuna_hpi.analysis._registry import make_evaluator

    if isinstance(source, MeasuredAblation):
        measured = [AblationPoint("source", source.source_value, 0.0)]
        measured += [AblationPoint(s.param, s.objective, s.share) for s in source.path]
        return measured, math.nan
    result = source
    if isinstance(source, ImportanceReport):
        found = [c.result for c in source.columns if c.name == "ablation"]
        if not found or found[0] is None:
            raise ValueError(
                "The report has no ablation result; build it with 'ablation' among the evaluators."
            )
        result = found[0]
    elif not hasattr(source, "path"):
        kwargs: dict[str, Any] = (
            {} if default_params is None else {"default_params": default_params}
        )
        evaluator = make_evaluator("ablation", seed=seed, **kwargs)
        result = evaluator.analyze(source, params, target=target, n_bootstrap=0)  # type: ignore[attr-defined]
    points = [AblationPoint(f"source ({result.source_kind})", result.predicted_source, 0.0)]
    for step in result.path:
        label = step.params[0] if len(step.params) == 1 else "+".join(step.params)
        points.append(AblationPoint(label, float(step.predicted), float(step.share)))
    return points, float(result.surrogate_r2)


#: Status codes of the staged timeline.
FREE, NARROWED, FROZEN = 0, 1, 2
STATUS_NAMES = ("free", "narrowed", "frozen")


@dataclass(frozen=True)
class Timeline:
    """What each stage of a staged study did, and the objective over trials.

    Attributes:
        stage_names: Name of each stage.
        starts: First trial number of each stage.
        params: Parameters (rows of :attr:`status`).
        status: ``(n_params, n_stages)`` codes: 0 free, 1 narrowed, 2 frozen / held.
        labels: Text per cell (frozen value, narrowed range, or "near best" and the window
            around the incumbent of a ``hold_window``/``local`` stage).
        numbers: Numbers of the complete trials.
        values: Their objective values.
        best: Best value so far at each of those trials (study direction).
        stage_of: Stage of each of those trials.
    """

    stage_names: list[str]
    starts: list[int]
    params: list[str]
    status: np.ndarray
    labels: list[list[str]]
    numbers: list[int]
    values: list[float]
    best: list[float]
    stage_of: list[int]


def _fmt_dist(d: Any) -> str:
    if hasattr(d, "low"):
        return f"[{d.low:.3g}, {d.high:.3g}]"
    return str(getattr(d, "choices", d))


def staged_config(study: Study) -> dict[str, Any] | None:
    """The stage configuration a StagedStudy stored in ``study`` (``None``: not a staged study)."""
    from optuna_hpi.staged._plan import CONFIG_KEY
    from optuna_hpi.staged._plan import load_config

    return load_config(study) if CONFIG_KEY in study.user_attrs else None


def stored_plans(study: Study) -> dict[int, StagePlan]:
    """Plans of stages >= 1 that the study's storage holds, by stage index.

    The one place that reads plans for the plots and the dashboard note (through the staged
    package's public :func:`~optuna_hpi.load_plans`).
    """
    from optuna_hpi.staged import load_plans

    if staged_config(study) is None:
        return {}
    return {p.stage: p for p in load_plans(study)[1:]}


def staged_timeline(source: Any) -> Timeline:
    """Timeline data of a :class:`~optuna_hpi.StagedStudy` or a study run by one.

    Plans of stages >= 1 come from the study's user attributes (what every worker used). The
    first stage has no stored plan; a parameter is shown held there when all its complete
    trials of that stage share one value.
    """
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from optuna_hpi.staged._plan import CONFIG_KEY

    study = getattr(source, "study", source)
    if study._is_multi_objective():
        raise ValueError("The staged timeline draws one objective; the study has several.")
    config = staged_config(study)
    if config is None:
        raise ValueError(
            f"Study {study.study_name!r} was not run by a StagedStudy (no "
            f"{CONFIG_KEY!r} user attribute)."
        )
    stage_names = [s.get("name") or f"stage {k}" for k, s in enumerate(config["stages"])]
    starts = [int(config.get("offset", 0))]
    for s in config["stages"][:-1]:
        starts.append(starts[-1] + int(s["n_trials"]))
    plans = stored_plans(study)

    def stage_of(number: int) -> int:
        return max((k for k, s in enumerate(starts) if number >= s), default=0)

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trials = [t for t in trials if t.number >= starts[0]]  # history trials are not staged
    names = sorted({p for t in trials for p in t.params})
    status = np.zeros((len(names), len(starts)), dtype=int)
    labels = [["" for _ in starts] for _ in names]
    for i, name in enumerate(names):
        for k in range(len(starts)):
            plan = plans.get(k)
            if plan is not None:
                if name in plan.frozen:
                    status[i, k] = FROZEN
                    labels[i][k] = f"{plan.frozen[name]!r:.10}"
                elif name in plan.narrowed:
                    status[i, k] = NARROWED
                    near = "near best " if plan.is_window(name) else ""
                    labels[i][k] = near + _fmt_dist(plan.narrowed[name])
                continue
            stage_values = [
                repr(t.params[name])
                for t in trials
                if stage_of(t.number) == k and name in t.params
            ]
            if len(stage_values) > 1 and len(set(stage_values)) == 1:
                status[i, k] = FROZEN
                labels[i][k] = stage_values[0][:10]
    maximize = study.direction == StudyDirection.MAXIMIZE
    numbers, values, best, stages = [], [], [], []
    current = math.nan
    for t in sorted(trials, key=lambda t: t.number):
        v = float(t.value)
        if math.isnan(current) or (v > current if maximize else v < current):
            current = v
        numbers.append(t.number)
        values.append(v)
        best.append(current)
        stages.append(stage_of(t.number))
    return Timeline(stage_names, starts, names, status, labels, numbers, values, best, stages)
