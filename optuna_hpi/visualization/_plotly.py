"""Plotly figures of the analysis (the ``plot`` extra); plotly is imported on call."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TYPE_CHECKING

from optuna_hpi.analysis._marginal import MarginalEffects
from optuna_hpi.analysis._report import ImportanceReport
from optuna_hpi.analysis._sensitivity import MeasuredAblation
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._sobol import SobolResult
from optuna_hpi.visualization._common import ablation_points
from optuna_hpi.visualization._common import effects
from optuna_hpi.visualization._common import grid_shape
from optuna_hpi.visualization._common import importance_bars
from optuna_hpi.visualization._common import interaction_matrix
from optuna_hpi.visualization._common import require
from optuna_hpi.visualization._common import staged_timeline
from optuna_hpi.visualization._common import STATUS_NAMES


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


def plot_ablation_path(
    source: Any,
    *,
    params: list[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    default_params: dict[str, Any] | None = None,
    seed: int = 0,
) -> go.Figure:
    """The ablation path: predicted objective after each greedy step from source to best.

    Args:
        source: A study (analysed with ``AblationImportanceEvaluator``), an ``AblationResult``,
            an :class:`ImportanceReport` with ``"ablation"``, or a path measured on the real
            objective (:func:`~optuna_hpi.analysis.ablation_on_objective`).
        params: Parameters to assess when ``source`` is a study.
        target: Response to explain when ``source`` is a study.
        default_params: Source configuration when ``source`` is a study (default: the
            evaluator's rule, the centre of the space).
        seed: Seed when ``source`` is a study.

    Returns:
        A figure with a ``Scatter`` trace ``"predicted"`` (``x``: ``"source (...)"`` then the
        parameter moved at each step, ``y``: surrogate prediction in the study's orientation)
        and a ``Bar`` trace ``"share"`` of each step's share of the total improvement.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.visualization import plot_ablation_path

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", -1, 1) ** 2 + abs(t.suggest_int("n", 0, 9) - 3),
                n_trials=50,
            )
            plot_ablation_path(study, default_params={"x": 1.0, "n": 9}).write_html("path.html")
    """
    go_ = require("plotly.graph_objects")
    subplots = require("plotly.subplots")
    points, r2 = ablation_points(source, params, target, default_params, seed)
    measured = isinstance(source, MeasuredAblation)
    labels = [p.label for p in points]
    fig = subplots.make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go_.Bar(
            x=labels[1:],
            y=[p.share for p in points[1:]],
            name="share",
            opacity=0.4,
        ),
        secondary_y=True,
    )
    fig.add_trace(
        go_.Scatter(
            x=labels,
            y=[p.value for p in points],
            mode="lines+markers",
            name="predicted",
        ),
        secondary_y=False,
    )
    r2_text = "" if r2 != r2 else f", CV R^2 {r2:.2f}"
    fig.update_layout(
        title="Ablation path (measured on the objective)"
        if measured
        else f"Ablation path (surrogate predictions{r2_text})",
        xaxis_title="step",
    )
    fig.update_yaxes(
        title_text="objective" if measured else "predicted objective", secondary_y=False
    )
    fig.update_yaxes(title_text="share of the improvement", secondary_y=True)
    return fig


def plot_staged_timeline(source: Any) -> go.Figure:
    """Which parameters each stage froze or narrowed, and the objective over trials.

    Args:
        source: A :class:`~optuna_hpi.StagedStudy` or a study run by one (plans are read from
            the study's user attributes, so a study loaded from storage works).

    Returns:
        A two-row figure: top, the trials' values (``Scatter`` per stage, named by the stage)
        and the best value so far (``"best so far"``); bottom, a ``Heatmap`` whose ``z`` is the
        status of each parameter (rows) per stage (columns): 0 free, 1 narrowed, 2 frozen.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import StagedStudy
            from optuna_hpi.visualization import plot_staged_timeline


            def objective(trial):
                lr = trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)
                alpha = trial.suggest_float("alpha", 1e-6, 1.0, log=True)
                return (lr - 0.01) ** 2 + 0.01 * alpha


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            staged = StagedStudy.three_stage(study, n_trials=(10, 10, 10))
            staged.optimize(objective)
            plot_staged_timeline(staged).write_html("timeline.html")
    """
    go_ = require("plotly.graph_objects")
    subplots = require("plotly.subplots")
    tl = staged_timeline(source)
    fig = subplots.make_subplots(
        rows=2,
        cols=1,
        row_heights=[0.6, 0.4],
        vertical_spacing=0.12,
        subplot_titles=("objective over trials", "parameter status per stage"),
    )
    for k, name in enumerate(tl.stage_names):
        xs = [n for n, s in zip(tl.numbers, tl.stage_of) if s == k]
        ys = [v for v, s in zip(tl.values, tl.stage_of) if s == k]
        fig.add_trace(
            go_.Scatter(x=xs, y=ys, mode="markers", name=name, marker={"size": 5}), row=1, col=1
        )
    fig.add_trace(
        go_.Scatter(
            x=tl.numbers, y=tl.best, mode="lines", name="best so far", line={"shape": "hv"}
        ),
        row=1,
        col=1,
    )
    for start in tl.starts[1:]:
        fig.add_vline(x=start - 0.5, line_dash="dash", line_color="grey", row=1, col=1)
    fig.add_trace(
        go_.Heatmap(
            z=tl.status,
            x=tl.stage_names,
            y=tl.params,
            text=tl.labels,
            texttemplate="%{text}",
            zmin=0,
            zmax=2,
            colorscale=[
                [0.0, "rgb(198,219,239)"],
                [0.33, "rgb(198,219,239)"],
                [0.34, "rgb(253,208,162)"],
                [0.66, "rgb(253,208,162)"],
                [0.67, "rgb(189,189,189)"],
                [1.0, "rgb(189,189,189)"],
            ],
            colorbar={
                "tickvals": [0, 1, 2],
                "ticktext": list(STATUS_NAMES),
                "len": 0.4,
                "y": 0.2,
            },
            showscale=True,
            name="status",
        ),
        row=2,
        col=1,
    )
    fig.update_xaxes(title_text="trial number", row=1, col=1)
    fig.update_layout(title="Staged study timeline", height=650)
    return fig
