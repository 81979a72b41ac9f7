from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
import pytest


optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_from_function(
    distributions: dict[str, BaseDistribution],
    function: Callable[[dict[str, Any]], float],
    n_trials: int,
    seed: int = 0,
    direction: str = "minimize",
) -> optuna.Study:
    """A study of ``n_trials`` RandomSampler draws, built without the optimize loop."""
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler, direction=direction)
    for _ in range(n_trials):
        trial = study.ask(distributions)
        study.tell(trial, function(trial.params))
    return study


def ishigami(p: dict[str, Any]) -> float:
    x1, x2, x3 = p["x1"], p["x2"], p["x3"]
    return float(np.sin(x1) + 7 * np.sin(x2) ** 2 + 0.1 * x3**4 * np.sin(x1))


ISHIGAMI_DISTRIBUTIONS: dict[str, BaseDistribution] = {
    **{f"x{i}": FloatDistribution(-np.pi, np.pi) for i in (1, 2, 3)},
    "inert1": FloatDistribution(0.0, 1.0),
    "inert2": FloatDistribution(-5.0, 5.0),
}


@pytest.fixture(scope="session")
def ishigami_study() -> optuna.Study:
    return study_from_function(ISHIGAMI_DISTRIBUTIONS, ishigami, n_trials=1000, seed=0)
