"""Plotly figures of the analysis (``pip install 'optuna-hpi[plot]'``).

Plotly is imported only when a figure is made, so importing this module is free; the
:mod:`optuna_hpi.visualization.matplotlib` submodule has the same functions drawn with
matplotlib.
"""

from optuna_hpi.visualization import matplotlib
from optuna_hpi.visualization._plotly import plot_ablation_path
from optuna_hpi.visualization._plotly import plot_importances
from optuna_hpi.visualization._plotly import plot_interactions
from optuna_hpi.visualization._plotly import plot_marginal_effects
from optuna_hpi.visualization._plotly import plot_staged_timeline


__all__ = [
    "matplotlib",
    "plot_ablation_path",
    "plot_importances",
    "plot_interactions",
    "plot_marginal_effects",
    "plot_staged_timeline",
]
