"""Plotly figures of the analysis (the ``plot`` extra); plotly is imported on call."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TYPE_CHECKING

from optuna_hpi.analysis._marginal import MarginalEffects
from optuna_hpi.analysis._report import ImportanceReport
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._sobol import SobolResult
from optuna_hpi.visualization._common import effects
from optuna_hpi.visualization._common import grid_shape
from optuna_hpi.visualization._common import importance_bars
from optuna_hpi.visualization._common import interaction_matrix
from optuna_hpi.visualization._common import require


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial
    import plotly.graph_objects as go


def plot_importances(
    source: Study | ImportanceReport | ImportanceResult,
    *,
    evaluators: Sequence[str] = ("sobol",),
    params: list[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    n_bootstrap: int = 20,
    seed: int = 0,
) -> go.Figure:
    """Normalized importances with bootstrap error bars, one bar group per evaluator.

    Args:
        source: A study (analysed with ``evaluators``), an :class:`ImportanceReport` or one
            evaluator's result (e.g. ``SobolImportanceEvaluator().analyze(study)``).
        evaluators: Evaluators to run when ``source`` is a study.
        params: Parameters to assess when ``source`` is a study.
        target: Response to explain when ``source`` is a study.
        n_bootstrap: Bootstrap resamples for the error bars when ``source`` is a study.
        seed: Seed of the evaluators when ``source`` is a study.

    Returns:
        A ``plotly.graph_objects.Figure`` with one horizontal ``Bar`` trace per evaluator
        (``x``: shares summing to 1, ``error_x``: distances to the interval ends).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.visualization import plot_importances

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", -1, 1) ** 2 + t.suggest_float("y", -1, 1),
                n_trials=40,
            )
            fig = plot_importances(study, evaluators=("sobol", "fanova"), n_bootstrap=5)
            fig.write_html("importances.html")
    """
    go_ = require("plotly.graph_objects")
    order, bars = importance_bars(source, evaluators, params, target, n_bootstrap, seed)
    fig = go_.Figure()
    for b in bars:
        error = None
        if b.err_plus is not None:
            error = {
                "type": "data",
                "symmetric": False,
                "array": b.err_plus,
                "arrayminus": b.err_minus,
            }
        fig.add_trace(go_.Bar(x=b.values, y=b.params, orientation="h", name=b.name, error_x=error))
    fig.update_layout(
        title="Hyperparameter importances",
        xaxis_title="normalized importance (error bars: bootstrap interval)",
        yaxis_title="parameter",
        barmode="group",
        showlegend=len(bars) > 1,
    )
    return fig


def plot_interactions(
    source: Study | ImportanceReport | SobolResult,
    *,
    params: list[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    seed: int = 0,
) -> go.Figure:
    """Heatmap of Sobol' indices: first-order S_i on the diagonal, pairwise S_ij off it.

    Args:
        source: A study (a pairwise Sobol' analysis is run), an :class:`ImportanceReport` with
            ``"sobol"`` or a :class:`SobolResult` with pairwise indices.
        params: Parameters to assess when ``source`` is a study.
        target: Response to explain when ``source`` is a study.
        seed: Seed of the analysis when ``source`` is a study.

    Returns:
        A figure with one ``Heatmap`` trace whose ``z`` is the symmetric index matrix
        (parameters ordered by total-order index).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.visualization import plot_interactions

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", -1, 1) * t.suggest_float("y", -1, 1), n_trials=60
            )
            plot_interactions(study).write_html("interactions.html")
    """
    go_ = require("plotly.graph_objects")
    names, m = interaction_matrix(source, params, target, seed)
    text = [[f"{v:.3f}" for v in row] for row in m]
    fig = go_.Figure(
        go_.Heatmap(
            z=m,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            colorbar={"title": "Sobol' index"},
        )
    )
    fig.update_layout(
        title="Interactions (diagonal: first-order S_i, off-diagonal: pairwise S_ij)",
        yaxis={"autorange": "reversed"},
    )
    return fig


def plot_marginal_effects(
    source: Study | MarginalEffects,
    *,
    params: list[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    n_bootstrap: int = 10,
    show_trials: bool = True,
    seed: int = 0,
) -> go.Figure:
    """Marginal-effect curves (partial dependence of the surrogate) with bootstrap bands.

    Args:
        source: A study (see :func:`~optuna_hpi.marginal_effects`) or its result.
        params: Parameters to draw (default: all).
        target: Response to explain when ``source`` is a study.
        n_bootstrap: Surrogate refits for the bands when ``source`` is a study.
        show_trials: Overlay the observed trials as points.
        seed: Seed when ``source`` is a study.

    Returns:
        A figure with one subplot per parameter. Per numeric parameter the traces are the band
        (``"<param> band"``: upper then lower edge, filled), the curve (``"<param>"``, ``x``
        in parameter units, ``y`` in the objective's orientation) and the trials; categorical
        parameters get points with error bars.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.visualization import plot_marginal_effects

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=30)
            plot_marginal_effects(study, n_bootstrap=3).write_html("marginal.html")
    """
    go_ = require("plotly.graph_objects")
    subplots = require("plotly.subplots")
    me = effects(source, params, target, n_bootstrap, seed)
    names = list(me.curves)
    rows, cols = grid_shape(len(names))
    fig = subplots.make_subplots(rows=rows, cols=cols, subplot_titles=names)
    for k, name in enumerate(names):
        c = me.curves[name]
        row, col = k // cols + 1, k % cols + 1
        if c.kind == "categorical":
            labels = [str(v) for v in c.values]
            fig.add_trace(
                go_.Scatter(
                    x=labels,
                    y=c.mean,
                    mode="markers",
                    name=name,
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": c.upper - c.mean,
                        "arrayminus": c.mean - c.lower,
                    },
                    showlegend=False,
                ),
                row=row,
                col=col,
            )
        else:
            band_x: list[Any] = list(c.values) + list(reversed(c.values))
            band_y = list(c.upper) + list(reversed(c.lower))
            fig.add_trace(
                go_.Scatter(
                    x=band_x,
                    y=band_y,
                    fill="toself",
                    line={"width": 0},
                    fillcolor="rgba(31,119,180,0.2)",
                    name=f"{name} band",
                    hoverinfo="skip",
                    showlegend=False,
                ),
                row=row,
                col=col,
            )
            fig.add_trace(
                go_.Scatter(
                    x=list(c.values),
                    y=c.mean,
                    mode="lines",
                    name=name,
                    line={"color": "rgb(31,119,180)"},
                    showlegend=False,
                ),
                row=row,
                col=col,
            )
            if c.log:
                fig.update_xaxes(type="log", row=row, col=col)
        if show_trials and c.observed:
            fig.add_trace(
                go_.Scatter(
                    x=[str(v) if c.kind == "categorical" else v for v, _ in c.observed],
                    y=[y for _, y in c.observed],
                    mode="markers",
                    marker={"size": 4, "color": "rgba(120,120,120,0.5)"},
                    name=f"{name} trials",
                    showlegend=False,
                ),
                row=row,
                col=col,
            )
        fig.update_yaxes(title_text=me.response_label if col == 1 else None, row=row, col=col)
    level = int(round(100 * me.confidence))
    fig.update_layout(
        title=f"Marginal effects (surrogate partial dependence, {level}% bootstrap band)",
        height=300 * rows,
    )
    return fig
