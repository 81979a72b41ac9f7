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
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._sobol import SobolImportanceEvaluator
from optuna_hpi.importance._sobol import SobolResult


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial


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
