"""Shared helpers of the benchmark scripts: analytic test functions and fast study building."""

from __future__ import annotations

from collections.abc import Callable
import math
import os
import subprocess
import sys

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution


os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
optuna.logging.set_verbosity(optuna.logging.ERROR)


def build_study(
    distributions: dict[str, BaseDistribution], values: np.ndarray, y: np.ndarray
) -> optuna.Study:
    """An in-memory study whose trial i has params ``values[i]`` and objective ``y[i]``."""
    names = list(distributions)
    study = optuna.create_study()
    study.add_trials(
        [
            optuna.create_trial(
                params={n: float(v) for n, v in zip(names, row)},
                distributions=distributions,
                value=float(t),
            )
            for row, t in zip(values, y)
        ]
    )
    return study


Problem = tuple[optuna.Study, dict[str, float], dict[str, float]]


def ishigami_study(n: int, n_inert: int, seed: int) -> Problem:
    """Ishigami (a=7, b=0.1) on 3 params plus inert ones; returns study, S1 and ST."""
    rng = np.random.default_rng(seed)
    d = 3 + n_inert
    x = rng.uniform(-math.pi, math.pi, (n, d))
    y = np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])
    names = [f"x{i + 1}" for i in range(d)]
    dists: dict[str, BaseDistribution] = {n_: FloatDistribution(-math.pi, math.pi) for n_ in names}
    s1 = dict(zip(names, [0.3139, 0.4424] + [0.0] * (d - 2)))
    st = dict(zip(names, [0.5576, 0.4424, 0.2437] + [0.0] * (d - 3)))
    return build_study(dists, x, y), s1, st


def g_function_study(n: int, a: list[float], seed: int) -> Problem:
    """Sobol' G-function on U[0,1]^d with coefficients ``a``; returns study, S1 and ST."""
    rng = np.random.default_rng(seed)
    d = len(a)
    x = rng.uniform(0, 1, (n, d))
    av = np.asarray(a, dtype=float)
    y = np.prod((np.abs(4 * x - 2) + av) / (1 + av), axis=1)
    v = 1 / (3 * (1 + av) ** 2)
    total = np.prod(1 + v) - 1
    names = [f"x{i + 1}" for i in range(d)]
    s1 = dict(zip(names, (v / total).tolist()))
    st = dict(zip(names, (v * np.prod(1 + v) / (1 + v) / total).tolist()))
    dists: dict[str, BaseDistribution] = {n_: FloatDistribution(0, 1) for n_ in names}
    return build_study(dists, x, y), s1, st


def normalized(d: dict[str, float]) -> dict[str, float]:
    clipped = {k: max(0.0, v) for k, v in d.items()}
    s = sum(clipped.values())
    return {k: (v / s if s > 0 else 1 / len(d)) for k, v in clipped.items()}


def max_abs_error(estimate: dict[str, float], truth: dict[str, float]) -> float:
    e, t = normalized(estimate), normalized(truth)
    return max(abs(e[k] - t[k]) for k in t)


def run_isolated(code: str) -> str:
    """Run Python code in a fresh interpreter (for peak-memory readings); returns stdout."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return out.stdout


def median_time(fn: Callable[[], object], repeats: int) -> float:
    import time

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
