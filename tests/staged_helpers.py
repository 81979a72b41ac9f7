"""Objective and light evaluator shared by the multi-process StagedStudy tests."""

from __future__ import annotations

import math
import time

import optuna

from optuna_hpi import SobolImportanceEvaluator
from optuna_hpi import SurrogateConfig


def light_evaluator() -> SobolImportanceEvaluator:
    """A seeded, cheap Sobol' evaluator: plans must be identical across processes."""
    return SobolImportanceEvaluator(
        index="total",
        n_samples=64,
        n_bootstrap=8,
        surrogate=SurrogateConfig(max_iter=20, learning_rate=0.3),
        seed=0,
    )


def lr_objective(trial: optuna.Trial) -> float:
    """Learning rate dominates; the sleep lets several workers interleave."""
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    wd = trial.suggest_float("wd", 1e-6, 1e-1, log=True)
    units = trial.suggest_int("units", 8, 64, step=8)
    time.sleep(0.02)
    return (math.log10(lr) + 2) ** 2 + 0.1 * wd + 1.0 / units
