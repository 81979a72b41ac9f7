"""Matplotlib twins of :mod:`optuna_hpi.visualization` (matplotlib is imported on call).

Every function returns one ``matplotlib.axes.Axes``: the main panel of the figure. Plots with
several panels (marginal effects, staged timeline) reach the others through ``ax.figure.axes``,
in the documented order, so ``ax.figure.savefig(...)`` works the same for every plot.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TYPE_CHECKING

import numpy as np

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
    from matplotlib.axes import Axes
    from optuna.study import Study
    from optuna.trial import FrozenTrial


def plot_importances(
    source: Study | ImportanceReport | ImportanceResult,
    *,
    evaluators: Sequence[str] = ("sobol",),
    params: list[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    n_bootstrap: int = 20,
    seed: int = 0,
) -> Axes:
    """Matplotlib version of :func:`optuna_hpi.visualization.plot_importances`.

    Returns:
        The ``Axes``; one ``BarContainer`` per evaluator (``ax.containers``), bar widths are
        the normalized importances.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.visualization.matplotlib import plot_importances

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", -1, 1) ** 2 + t.suggest_float("y", -1, 1),
                n_trials=40,
            )
            ax = plot_importances(study, n_bootstrap=5)
            ax.figure.savefig("importances.png")
    """
    plt = require("matplotlib.pyplot")
    order, bars = importance_bars(source, evaluators, params, target, n_bootstrap, seed)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 1.2 + 0.2 * len(order) * max(1, len(bars)))))
    height = 0.8 / max(1, len(bars))
    ypos = np.arange(len(order))
    for k, b in enumerate(bars):
        xerr = None if b.err_plus is None else np.array([b.err_minus, b.err_plus])
        values = np.nan_to_num(np.array(b.values, dtype=float))
        offset = (k - (len(bars) - 1) / 2) * height
        ax.barh(ypos + offset, values, height=height, xerr=xerr, capsize=3, label=b.name)
    ax.set_yticks(ypos, order)
    ax.set_xlabel("normalized importance (error bars: bootstrap interval)")
    ax.set_title("Hyperparameter importances")
    if len(bars) > 1:
        ax.legend()
    fig.tight_layout()
    return ax


def plot_interactions(
    source: Study | ImportanceReport | SobolResult,
    *,
    params: list[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    seed: int = 0,
) -> Axes:
    """Matplotlib version of :func:`optuna_hpi.visualization.plot_interactions`.

    Returns:
        The ``Axes``; ``ax.images[0].get_array()`` is the symmetric index matrix.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.visualization.matplotlib import plot_interactions

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", -1, 1) * t.suggest_float("y", -1, 1), n_trials=60
            )
            plot_interactions(study).figure.savefig("interactions.png")
    """
    plt = require("matplotlib.pyplot")
    names, m = interaction_matrix(source, params, target, seed)
    size = 2.5 + 0.7 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(m, cmap="Blues", vmin=0.0)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            dark = m[i, j] > 0.6 * max(float(m.max()), 1e-12)
            color = "white" if dark else "black"
            ax.text(j, i, f"{m[i, j]:.3f}", ha="center", va="center", fontsize=8, color=color)
    fig.colorbar(image, ax=ax, label="Sobol' index")
    ax.set_title("Interactions (diagonal S_i, off-diagonal S_ij)")
    fig.tight_layout()
    return ax


def plot_marginal_effects(
    source: Study | MarginalEffects,
    *,
    params: list[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    n_bootstrap: int = 10,
    show_trials: bool = True,
    seed: int = 0,
) -> Axes:
    """Matplotlib version of :func:`optuna_hpi.visualization.plot_marginal_effects`.

    Returns:
        The ``Axes`` of the first parameter; ``ax.figure.axes`` holds one ``Axes`` per
        parameter, in curve order (grid cells beyond the last parameter are removed). On a
        numeric parameter's axes ``lines[0]`` is the curve, ``collections[0]`` the band.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.visualization.matplotlib import plot_marginal_effects

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=30)
            ax = plot_marginal_effects(study, n_bootstrap=3)
            ax.figure.savefig("marginal.png")
    """
    plt = require("matplotlib.pyplot")
    ticker = require("matplotlib.ticker")
    me = effects(source, params, target, n_bootstrap, seed)
    names = list(me.curves)
    rows, cols = grid_shape(len(names))
    fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[len(names) :]:
        # Removed rather than hidden, so that figure.axes lists exactly one Axes per parameter.
        fig.delaxes(ax)
    for ax, name in zip(axes, names):
        c = me.curves[name]
        if c.kind == "categorical":
            x: Any = np.arange(len(c.values))
            yerr = np.array([c.mean - c.lower, c.upper - c.mean])
            ax.errorbar(x, c.mean, yerr=yerr, fmt="o", capsize=4)
            ax.set_xticks(x, [str(v) for v in c.values])
            if show_trials and c.observed:
                index = {str(v): k for k, v in enumerate(c.values)}
                ox = [index[str(v)] for v, _ in c.observed]
                ax.scatter(ox, [y for _, y in c.observed], s=6, color="grey", alpha=0.5)
        else:
            x = np.asarray(c.values, dtype=float)
            ax.plot(x, c.mean, color="C0")
            ax.fill_between(x, c.lower, c.upper, color="C0", alpha=0.2, linewidth=0)
            if show_trials and c.observed:
                ax.scatter(
                    [v for v, _ in c.observed],
                    [y for _, y in c.observed],
                    s=6,
                    color="grey",
                    alpha=0.5,
                )
            if c.log:
                ax.set_xscale("log")
                # Short log ranges get minor-tick labels that overlap; majors are enough.
                ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(name)
        ax.set_ylabel(me.response_label)
    level = int(round(100 * me.confidence))
    fig.suptitle(f"Marginal effects (surrogate partial dependence, {level}% bootstrap band)")
    fig.tight_layout()
    return axes[0]


def plot_ablation_path(
    source: Any,
    *,
    params: list[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
    default_params: dict[str, Any] | None = None,
    seed: int = 0,
) -> Axes:
    """Matplotlib version of :func:`optuna_hpi.visualization.plot_ablation_path`.

    Returns:
        The ``Axes``; ``ax.lines[0]`` is the predicted objective along the path (source first).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi.visualization.matplotlib import plot_ablation_path

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", -1, 1) ** 2 + abs(t.suggest_int("n", 0, 9) - 3),
                n_trials=50,
            )
            ax = plot_ablation_path(study, default_params={"x": 1.0, "n": 9})
            ax.figure.savefig("path.png")
    """
    plt = require("matplotlib.pyplot")
    points, r2 = ablation_points(source, params, target, default_params, seed)
    measured = isinstance(source, MeasuredAblation)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(points)), 4))
    x = np.arange(len(points))
    ax.plot(x, [p.value for p in points], marker="o", color="C0", label="predicted")
    ax.set_xticks(x, [p.label for p in points], rotation=30, ha="right")
    ax.set_ylabel("objective" if measured else "predicted objective")
    twin = ax.twinx()
    twin.bar(x[1:], [p.share for p in points[1:]], color="C1", alpha=0.35, label="share")
    twin.set_ylabel("share of the improvement")
    # Keep the path line above the share bars of the twin axes.
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    r2_text = "" if r2 != r2 else f", CV R^2 {r2:.2f}"
    ax.set_title(
        "Ablation path (measured on the objective)"
        if measured
        else f"Ablation path (surrogate predictions{r2_text})"
    )
    fig.tight_layout()
    return ax


def plot_staged_timeline(source: Any) -> Axes:
    """Matplotlib version of :func:`optuna_hpi.visualization.plot_staged_timeline`.

    Returns:
        The ``Axes`` of the objective over trials (``lines[0]`` is the best so far);
        ``ax.figure.axes[1]`` is the status grid (``images[0].get_array()``: 0 free,
        1 narrowed, 2 frozen; params x stages).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import StagedStudy
            from optuna_hpi.visualization.matplotlib import plot_staged_timeline


            def objective(trial):
                lr = trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)
                alpha = trial.suggest_float("alpha", 1e-6, 1.0, log=True)
                return (lr - 0.01) ** 2 + 0.01 * alpha


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            staged = StagedStudy.three_stage(study, n_trials=(10, 10, 10))
            staged.optimize(objective)
            ax = plot_staged_timeline(staged)
            ax.figure.savefig("timeline.png")
    """
    plt = require("matplotlib.pyplot")
    colors = require("matplotlib.colors")
    tl = staged_timeline(source)
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(8, 3.5 + 0.35 * len(tl.params)),
        gridspec_kw={"height_ratios": [3, max(1, len(tl.params)) * 0.5]},
    )
    top.step(tl.numbers, tl.best, where="post", color="black", label="best so far")
    for k, name in enumerate(tl.stage_names):
        xs = [n for n, s in zip(tl.numbers, tl.stage_of) if s == k]
        ys = [v for v, s in zip(tl.values, tl.stage_of) if s == k]
        top.scatter(xs, ys, s=10, label=name)
    for start in tl.starts[1:]:
        top.axvline(start - 0.5, color="grey", linestyle="--", linewidth=1)
    top.set_xlabel("trial number")
    top.set_ylabel("objective value")
    top.legend(fontsize=8)
    cmap = colors.ListedColormap(["#c6dbef", "#fdd0a2", "#bdbdbd"])
    bottom.imshow(tl.status, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto")
    bottom.set_xticks(range(len(tl.stage_names)), tl.stage_names)
    bottom.set_yticks(range(len(tl.params)), tl.params)
    for i in range(len(tl.params)):
        for k in range(len(tl.stage_names)):
            text = tl.labels[i][k] or STATUS_NAMES[int(tl.status[i, k])]
            bottom.text(k, i, text, ha="center", va="center", fontsize=7)
    bottom.set_title("parameter status per stage (blue free, orange narrowed, grey frozen)")
    top.set_title("Staged study timeline")
    fig.tight_layout()
    return top
