"""Surrogate ablation next to Sobol' (ours) and Optuna's fANOVA / MDI / PED-ANOVA (issue 4).

Run from the repository root::

    python benchmarks/bench_ablation.py          # full run -> benchmarks/results_ablation.md
    python benchmarks/bench_ablation.py --quick  # smoke run (one seed, small sizes)

Accuracy: random-sampler studies of functions whose ablation path is known exactly. The truth is
Fawcett & Hoos' ablation run on the *true* function (no surrogate) from the same source
(``default_params``) to the same target (the best trial); ``AblationImportanceEvaluator`` runs
the same greedy path on the boosted-trees surrogate. Metrics against the true per-parameter
improvements: Spearman rho, whether the top-3 set matches, and the mean absolute error of the
shares (improvement / total gap; ablation only, the other evaluators answer a different question
and are listed to show how far their ranking is from "what to change from the defaults").
Time: ``evaluate()`` wall time including the encoding of the study at N = 1000, 10000 trials and
D = 5, 20 parameters, all evaluators in the same run; fANOVA only at N = 1000, D = 5.
"""

from __future__ import annotations

import os


# Multi-threaded BLAS/OpenMP on a 2-core machine shared with other jobs distorts every timing.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
from collections.abc import Callable  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.distributions import BaseDistribution  # noqa: E402
from optuna.distributions import CategoricalDistribution  # noqa: E402
from optuna.distributions import FloatDistribution  # noqa: E402
from optuna.distributions import IntDistribution  # noqa: E402
from optuna.importance import BaseImportanceEvaluator  # noqa: E402
from optuna.importance import FanovaImportanceEvaluator  # noqa: E402
from optuna.importance import MeanDecreaseImpurityImportanceEvaluator  # noqa: E402
from optuna.importance import PedAnovaImportanceEvaluator  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from optuna_hpi import AblationImportanceEvaluator  # noqa: E402
from optuna_hpi import encode_study  # noqa: E402
from optuna_hpi import SobolImportanceEvaluator  # noqa: E402


optuna.logging.set_verbosity(optuna.logging.WARNING)
Params = dict[str, Any]

# --- Functions with an exactly known ablation path -------------------------------------------

# Strong parameters whose defaults are already near their optimum: variance-based methods rank
# them first, ablation (what to change from the defaults) should rank them last.
Q_W = (8.0, 4.0, 2.0, 1.0, 0.5, 0.0)
Q_OPT = (0.3, 0.7, 0.5, 0.2, 0.8, 0.5)


def _quadratic(p: Params) -> float:
    return float(sum(w * (p[f"x{i}"] - o) ** 2 for i, (w, o) in enumerate(zip(Q_W, Q_OPT))))


def _mixed(p: Params) -> float:
    # Learning-rate optimum depends on the optimizer (an interaction), layers and dropout add,
    # "seed_like" is inert.
    lr_opt = {"sgd": -1.0, "adam": -3.0, "rmsprop": -2.5}[p["optimizer"]]
    lr_term = (math.log10(p["lr"]) - lr_opt) ** 2 * (0.5 if p["optimizer"] == "adam" else 1.0)
    return float(
        lr_term
        + 0.4 * abs(p["layers"] - 3)
        + 2.0 * (p["dropout"] - 0.1) ** 2
        + (0.0 if p["optimizer"] == "adam" else 0.5)
    )


FUNCTIONS: dict[str, dict[str, Any]] = {
    "quadratic, strong params near-optimal at default (D=6)": {
        "f": _quadratic,
        "dists": {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(len(Q_W))},
        "defaults": {"x0": 0.35, "x1": 0.6, "x2": 0.0, "x3": 1.0, "x4": 0.0, "x5": 0.0},
    },
    "mixed types + interaction (log lr x optimizer, int, inert)": {
        "f": _mixed,
        "dists": {
            "lr": FloatDistribution(1e-5, 1.0, log=True),
            "optimizer": CategoricalDistribution(["sgd", "adam", "rmsprop"]),
            "layers": IntDistribution(1, 8),
            "dropout": FloatDistribution(0.0, 0.5),
            "seed_like": FloatDistribution(0.0, 1.0),
        },
        "defaults": {
            "lr": 1e-3,
            "optimizer": "sgd",
            "layers": 6,
            "dropout": 0.5,
            "seed_like": 0.5,
        },
    },
}


def random_study(
    dists: dict[str, BaseDistribution], f: Callable[[Params], float], n: int, seed: int
) -> optuna.Study:
    """``n`` trials drawn as RandomSampler would, added without the optimize loop."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for name, d in dists.items():
        if isinstance(d, CategoricalDistribution):
            columns[name] = [d.choices[i] for i in rng.integers(len(d.choices), size=n)]
        elif isinstance(d, IntDistribution):
            columns[name] = [int(v) for v in rng.integers(d.low, d.high + 1, size=n)]
        else:
            assert isinstance(d, FloatDistribution)
            if d.log:
                u = rng.uniform(math.log(d.low), math.log(d.high), size=n)
                columns[name] = [min(max(float(v), d.low), d.high) for v in np.exp(u)]
            else:
                columns[name] = [float(v) for v in rng.uniform(d.low, d.high, size=n)]
    trials = []
    for i in range(n):
        p = {name: columns[name][i] for name in dists}
        trials.append(optuna.create_trial(params=p, distributions=dists, value=f(p)))
    study = optuna.create_study()
    study.add_trials(trials)
    return study


def true_ablation(
    f: Callable[[Params], float], source: Params, target: Params
) -> tuple[dict[str, float], list[str]]:
    """Fawcett & Hoos' greedy ablation on the true function: improvements and path order."""
    current = dict(source)
    out = {name: 0.0 for name in source}
    remaining = [name for name in source if source[name] != target[name]]
    order = []
    before = f(current)
    while remaining:
        trial_values = [f({**current, name: target[name]}) for name in remaining]
        k = int(np.argmin(trial_values))
        name = remaining.pop(k)
        out[name] = before - trial_values[k]
        order.append(name)
        current[name] = target[name]
        before = trial_values[k]
    return out, order


def evaluators(
    defaults: Params | None, with_fanova: bool
) -> dict[str, Callable[[], BaseImportanceEvaluator]]:
    out: dict[str, Callable[[], BaseImportanceEvaluator]] = {
        "Ablation (ours)": lambda: AblationImportanceEvaluator(default_params=defaults, seed=0),
        "Sobol' total (ours)": lambda: SobolImportanceEvaluator(index="total", seed=0),
        "PED-ANOVA (Optuna)": lambda: PedAnovaImportanceEvaluator(),
        "MDI (Optuna)": lambda: MeanDecreaseImpurityImportanceEvaluator(seed=0),
    }
    if with_fanova:
        out["fANOVA (Optuna)"] = lambda: FanovaImportanceEvaluator(seed=0)
    return out


def timed(
    make: Callable[[], BaseImportanceEvaluator], study: optuna.Study
) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importances = make().evaluate(study)
    return importances, time.perf_counter() - start


def _shares(values: dict[str, float]) -> dict[str, float]:
    clipped = {k: max(0.0, v) for k, v in values.items()}
    total = sum(clipped.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in clipped.items()}


def accuracy(sizes: list[int], seeds: list[int], fanova_trials: int) -> list[str]:
    lines = [
        f"### Ranking accuracy against the true ablation path (random trials, seeds {seeds}; "
        f"fANOVA: {fanova_trials} trials, seed {seeds[0]} only)",
        "",
        "Truth: greedy ablation on the true function from `default_params` to the best trial. "
        "rho = Spearman correlation with the true per-param improvements; top-3 = seeds whose "
        "top-3 set is the true one; share MAE = mean |share - true share| over params; time = "
        "median `evaluate()` seconds.",
        "",
        "| function | N | evaluator | rho | top-3 | share MAE | time (s) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for fname, spec in FUNCTIONS.items():
        names = list(spec["dists"])
        for n in sizes:
            studies = {s: random_study(spec["dists"], spec["f"], n, s) for s in seeds}
            truths = {
                s: true_ablation(spec["f"], spec["defaults"], studies[s].best_trial.params)[0]
                for s in seeds
            }
            for ename, make in evaluators(spec["defaults"], with_fanova=True).items():
                runs = seeds
                if ename.startswith("fANOVA"):
                    if n != fanova_trials:
                        continue
                    runs = seeds[:1]
                rhos, hits, maes, times = [], [], [], []
                for s in runs:
                    imp, dt = timed(make, studies[s])
                    truth = truths[s]
                    rho = spearmanr([imp[p] for p in names], [truth[p] for p in names]).statistic
                    rhos.append(float(rho) if np.isfinite(rho) else 0.0)
                    true_top = set(sorted(names, key=lambda p: -truth[p])[:3])
                    hits.append(set(sorted(names, key=lambda p: -imp[p])[:3]) == true_top)
                    est, ref = _shares(imp), _shares(truth)
                    maes.append(statistics.mean(abs(est[p] - ref[p]) for p in names))
                    times.append(dt)
                lines.append(
                    f"| {fname} | {n} | {ename} | {statistics.mean(rhos):.2f} | "
                    f"{sum(hits)}/{len(hits)} | {statistics.mean(maes):.3f} | "
                    f"{statistics.median(times):.2f} |"
                )
                print(lines[-1], flush=True)
    return lines


def paths(n: int, seed: int) -> list[str]:
    lines = [
        f"### Ablation path on the surrogate vs the true path ({n} random trials, seed {seed})",
        "",
        "| function | step | surrogate path: param (share) | true path: param (share) | "
        "95 % interval of the improvement (30 refits) |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for fname, spec in FUNCTIONS.items():
        study = random_study(spec["dists"], spec["f"], n, seed)
        evaluator = AblationImportanceEvaluator(default_params=spec["defaults"], seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = evaluator.analyze(study, n_bootstrap=30)
        truth, true_order = true_ablation(spec["f"], spec["defaults"], study.best_trial.params)
        total = sum(truth.values())
        for i, step in enumerate(result.path):
            name = step.params[0]
            lo, hi = result.intervals[name]
            true_cell = ""
            if i < len(true_order):
                true_cell = f"{true_order[i]} ({truth[true_order[i]] / total:.3f})"
            lines.append(
                f"| {fname} | {i + 1} | {name} ({step.share:.3f}) | {true_cell} | "
                f"[{lo:.3f}, {hi:.3f}] |"
            )
        lines.append(
            f"| {fname} | | surrogate CV R^2 = {result.surrogate_r2:.3f}; predicted gap "
            f"{result.predicted_source - result.predicted_target:.3f}, true gap {total:.3f} | | |"
        )
    return lines


def _timing_function(p: Params) -> float:
    return float(
        np.sin(6 * p["p0"])
        + 2 * p["p1"] ** 2
        + 0.5 * p["p2"]
        + p["p3"] * p["p4"]
        + 0.1 * math.cos(3 * p["p0"] * p["p2"])
    )


def timing(sizes: list[int], dims: list[int], fanova_at: tuple[int, int] | None) -> list[str]:
    makers = evaluators(None, with_fanova=True)
    header = "| N | D | encode only | " + " | ".join(makers) + " | Ablation CPU |"
    lines = [
        "### `evaluate()` wall time in seconds (median of 3 runs; 1 run when > 5 s)",
        "",
        "Includes the encoding of the study (the `encode only` column is the share of it in "
        "our evaluators). Ablation from the centre rule (no `default_params`). `Ablation CPU` "
        "= process CPU seconds of the same ablation runs (less sensitive to the other jobs on "
        "the machine than wall time).",
        "",
        header,
        "| " + " | ".join(["---:"] * (len(makers) + 4)) + " |",
    ]
    for n in sizes:
        for d in dims:
            dists = {f"p{i}": FloatDistribution(0.0, 1.0) for i in range(d)}
            study = random_study(dists, _timing_function, n, seed=0)
            enc = []
            for _ in range(3):
                start = time.perf_counter()
                encode_study(study)
                enc.append(time.perf_counter() - start)
            row = [str(n), str(d), f"{statistics.median(enc):.2f}"]
            cpu = []
            for ename, make in makers.items():
                if ename.startswith("fANOVA") and (n, d) != fanova_at:
                    row.append("-")
                    continue
                times = []
                for _ in range(3):
                    start = time.process_time()
                    times.append(timed(make, study)[1])
                    if ename.startswith("Ablation"):
                        cpu.append(time.process_time() - start)
                    if times[0] >= 5:
                        break
                row.append(f"{statistics.median(times):.2f}")
            row.append(f"{statistics.median(cpu):.2f}")
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run with small sizes")
    parser.add_argument("--out", default="benchmarks/results_ablation.md")
    args = parser.parse_args()
    if args.quick:
        acc = accuracy([200], [0], fanova_trials=200)
        path = paths(200, 0)
        tim = timing([300], [5], fanova_at=None)
    else:
        acc = accuracy([200, 1000], [0, 1, 2], fanova_trials=200)
        path = paths(1000, 0)
        tim = timing([1000, 10000], [5, 20], fanova_at=(1000, 5))
    command = "python benchmarks/bench_ablation.py" + (" --quick" if args.quick else "")
    text = [
        "## Ablation (issue 4)",
        "",
        f"Command: `{command}` (OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1, set by the script). "
        f"Python {sys.version.split()[0]}, optuna {optuna.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores, 1-minute load average {os.getloadavg()[0]:.1f} at the start: "
        "ratios within one table are measured in the same run.",
        "",
        *acc,
        "",
        *path,
        "",
        *tim,
        "",
    ]
    with open(args.out, "w") as fh:
        fh.write("\n".join(text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
