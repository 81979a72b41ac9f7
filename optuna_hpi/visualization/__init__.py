"""Plotly figures of the analysis (``pip install 'optuna-hpi[plot]'``).

Plotly is imported only when a figure is made, so importing this module is free; the
:mod:`optuna_hpi.visualization.matplotlib` submodule has the same functions drawn with
matplotlib.
"""

from optuna_hpi.visualization import matplotlib
from optuna_hpi.visualization._plotly import plot_importances
from optuna_hpi.visualization._plotly import plot_interactions
from optuna_hpi.visualization._plotly import plot_marginal_effects


__all__ = ["matplotlib", "plot_importances", "plot_interactions", "plot_marginal_effects"]
