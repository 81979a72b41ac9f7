"""Matplotlib twins of the plotly figures; matplotlib is imported only when a plot is made."""

from optuna_hpi.visualization.matplotlib._plots import plot_ablation_path
from optuna_hpi.visualization.matplotlib._plots import plot_importances
from optuna_hpi.visualization.matplotlib._plots import plot_interactions
from optuna_hpi.visualization.matplotlib._plots import plot_marginal_effects
from optuna_hpi.visualization.matplotlib._plots import plot_staged_timeline


__all__ = [
    "plot_ablation_path",
    "plot_importances",
    "plot_interactions",
    "plot_marginal_effects",
    "plot_staged_timeline",
]
