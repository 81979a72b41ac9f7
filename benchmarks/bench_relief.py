"""N-RReliefF next to Sobol' (ours) and Optuna's fANOVA / MDI / PED-ANOVA: accuracy and time.

Run from the repository root::

    python benchmarks/bench_relief.py            # full run, writes benchmarks/results_relief.md
    python benchmarks/bench_relief.py --quick    # smoke run (few seeds, small sizes)

Accuracy: random-sampler studies of functions with known Sobol' indices (Ishigami plus two
inert parameters, the Sobol' G-function, an additive function with a categorical driver);
Spearman correlation of the normalised importances with the analytic total-order indices,
whether the truly important parameters are the top-k, and the share given to inert ones.
Time: ``evaluate()`` wall time (including the encoding of the study) at N = 1000, 10000 trials
and D = 5, 20 parameters; fANOVA only at N = 1000, D = 5 (it takes minutes beyond).
Stability: ``importance_stability`` ICC(3,1) over 5 subsamples of 80 % of the trials.
"""

from __future__ import annotations

import os


# Multi-threaded BLAS on a 2-core machine shared with other jobs distorts every timing.
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

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.distributions import BaseDistribution  # noqa: E402
from optuna.distributions import CategoricalDistribution  # noqa: E402
from optuna.distributions import FloatDistribution  # noqa: E402
from optuna.importance import BaseImportanceEvaluator  # noqa: E402
from optuna.importance import FanovaImportanceEvaluator  # noqa: E402
from optuna.importance import MeanDecreaseImpurityImportanceEvaluator  # noqa: E402
from optuna.importance import PedAnovaImportanceEvaluator  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from optuna_hpi import importance_stability  # noqa: E402
from optuna_hpi import NRReliefFImportanceEvaluator  # noqa: E402
from optuna_hpi import SobolImportanceEvaluator  # noqa: E402


optuna.logging.set_verbosity(optuna.logging.WARNING)
Params = dict[str, Any]


# --- Test functions with analytic total-order indices -----------------------------------------


def _ishigami(p: Params) -> float:
    return float(np.sin(p["x1"]) + 7 * np.sin(p["x2"]) ** 2 + 0.1 * p["x3"] ** 4 * np.sin(p["x1"]))


G_A = (0.0, 1.0, 4.5, 9.0, 99.0, 99.0, 99.0, 99.0)


def _g_function(p: Params) -> float:
    return float(np.prod([(abs(4 * p[f"g{i}"] - 2) + a) / (1 + a) for i, a in enumerate(G_A)]))


def _g_total() -> dict[str, float]:
    v = np.array([1 / (3 * (1 + a) ** 2) for a in G_A])
    total = np.prod(1 + v) - 1
    return {f"g{i}": float(v[i] * np.prod(np.delete(1 + v, i)) / total) for i in range(len(G_A))}


def _categorical(p: Params) -> float:
    return 3.0 * (p["opt"] == "b") + float(np.sin(p["x1"])) + 0.5 * p["x2"]


_CAT_VAR = {"opt": 2.0, "x1": 0.5, "x2": 0.25 * math.pi**2 / 3}

FUNCTIONS: dict[str, dict[str, Any]] = {
    "Ishigami + 2 inert": {
        "f": _ishigami,
        "dists": {
            **{f"x{i}": FloatDistribution(-math.pi, math.pi) for i in (1, 2, 3)},
            "inert1": FloatDistribution(0.0, 1.0),
            "inert2": FloatDistribution(1e-3, 1.0, log=True),
        },
        "total": {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437, "inert1": 0.0, "inert2": 0.0},
        "top": {"x1", "x2"},
        "inert": {"inert1", "inert2"},
    },
    "G-function (a = 0, 1, 4.5, 9, 99 x4)": {
        "f": _g_function,
        "dists": {f"g{i}": FloatDistribution(0.0, 1.0) for i in range(len(G_A))},
        "total": _g_total(),
        "top": {"g0", "g1"},
        "inert": {f"g{i}" for i in range(4, len(G_A))},
    },
    "Categorical driver + 2 inert": {
        "f": _categorical,
        "dists": {
            "opt": CategoricalDistribution(["a", "b", "c"]),
            "x1": FloatDistribution(-math.pi, math.pi),
            "x2": FloatDistribution(-math.pi, math.pi),
            "z1": FloatDistribution(0.0, 1.0),
            "z2": FloatDistribution(1e-3, 1.0, log=True),
        },
        "total": {
            **{k: v / sum(_CAT_VAR.values()) for k, v in _CAT_VAR.items()},
            "z1": 0.0,
            "z2": 0.0,
        },
        "top": {"opt"},
        "inert": {"z1", "z2"},
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


def evaluators(with_fanova: bool) -> dict[str, Callable[[], BaseImportanceEvaluator]]:
    out: dict[str, Callable[[], BaseImportanceEvaluator]] = {
        "N-RReliefF (ours)": lambda: NRReliefFImportanceEvaluator(seed=0),
        "Sobol' first (ours)": lambda: SobolImportanceEvaluator(seed=0),
        "Sobol' total (ours)": lambda: SobolImportanceEvaluator(index="total", seed=0),
        "PED-ANOVA (Optuna)": lambda: PedAnovaImportanceEvaluator(),
        "MDI (Optuna)": lambda: MeanDecreaseImpurityImportanceEvaluator(seed=0),
    }
    if with_fanova:
        out["fANOVA (Optuna)"] = lambda: FanovaImportanceEvaluator(seed=0)
    return out


def timed(
    make: Callable[[], BaseImportanceEvaluator], study: optuna.Study
) -> tuple[dict[str, float], float, float]:
    """Normalised importances, wall seconds and CPU seconds of this process."""
    start, cpu = time.perf_counter(), time.process_time()
    importances = optuna.importance.get_param_importances(study, evaluator=make())
    return importances, time.perf_counter() - start, time.process_time() - cpu


def accuracy(n_trials: int, seeds: list[int], fanova_trials: int) -> list[str]:
    lines = [
        f"### Ranking accuracy ({n_trials} random trials, seeds {seeds}; fANOVA: "
        f"{fanova_trials} trials, seed {seeds[0]} only)",
        "",
        "rho = Spearman correlation of the normalised importances with the analytic total-order "
        "indices; top-k = share of seeds whose top-k params are exactly the truly dominant ones; "
        "inert = mean normalised share given to inert params; TV = total-variation distance "
        "between the normalised importances and the normalised total-order indices (0 = the "
        "shares are the variance shares); time = median `evaluate()` wall seconds.",
        "",
        "| function | evaluator | rho | top-k | inert share | TV | time (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fname, spec in FUNCTIONS.items():
        names = list(spec["dists"])
        truth = [spec["total"][p] for p in names]
        studies = {s: random_study(spec["dists"], spec["f"], n_trials, s) for s in seeds}
        small = random_study(spec["dists"], spec["f"], fanova_trials, seeds[0])
        for ename, make in evaluators(with_fanova=True).items():
            runs = [(studies[s], s) for s in seeds]
            if ename.startswith("fANOVA"):
                runs = [(small, seeds[0])]
            rhos, hits, inert, tvs, times = [], [], [], [], []
            for study, _ in runs:
                imp, dt, _ = timed(make, study)
                tvs.append(0.5 * sum(abs(imp[p] - t / sum(truth)) for p, t in zip(names, truth)))
                rho = spearmanr([imp[p] for p in names], truth).statistic
                rhos.append(float(rho) if np.isfinite(rho) else 0.0)
                top = sorted(names, key=lambda p: -imp[p])[: len(spec["top"])]
                hits.append(set(top) == spec["top"])
                inert.append(sum(imp[p] for p in spec["inert"]))
                times.append(dt)
            lines.append(
                f"| {fname} | {ename} | {statistics.mean(rhos):.2f} | "
                f"{sum(hits)}/{len(hits)} | {statistics.mean(inert):.3f} | "
                f"{statistics.mean(tvs):.2f} | {statistics.median(times):.2f} |"
            )
            print(lines[-1], flush=True)
    return lines


def nrrelieff_weights(n_trials: int, seed: int) -> list[str]:
    lines = [
        f"### N-RReliefF raw weights and shares ({n_trials} random trials, seed {seed})",
        "",
        "| function | param | total-order truth | raw weight W | share |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for fname, spec in FUNCTIONS.items():
        study = random_study(spec["dists"], spec["f"], n_trials, seed)
        result = NRReliefFImportanceEvaluator(seed=0).analyze(study, n_bootstrap=0)
        for p in spec["dists"]:
            lines.append(
                f"| {fname} | {p} | {spec['total'][p]:.3f} | {result.values[p]:+.4f} | "
                f"{result.shares[p]:.3f} |"
            )
    return lines


def stability(n_trials: int, n_subsamples: int, seeds: list[int]) -> list[str]:
    names = ("N-RReliefF (ours)", "Sobol' first (ours)", "PED-ANOVA (Optuna)", "MDI (Optuna)")
    lines = [
        f"### Stability: ICC(3,1) over {n_subsamples} subsamples of {n_trials} random trials "
        f"(median [min, max] over seeds {seeds})",
        "",
        "overlapping = 80 % subsamples (the paper's protocol); disjoint = "
        f"{n_subsamples} disjoint parts (`disjoint=True`).",
        "",
        "| study | subsamples | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join(["---:"] * len(names)) + " |",
    ]
    spec = FUNCTIONS["Ishigami + 2 inert"]
    makers = evaluators(with_fanova=False)
    for sname in ("Ishigami + 2 inert", "pure noise (same params)"):
        for disjoint in (False, True):
            cells = []
            for ename in names:
                iccs = []
                for seed in seeds:
                    rng = np.random.default_rng(1000 + seed)
                    f = (
                        spec["f"]
                        if sname.startswith("Ishigami")
                        else (lambda p, rng=rng: float(rng.normal()))
                    )
                    study = random_study(spec["dists"], f, n_trials, seed)
                    result = importance_stability(
                        study, makers[ename](), n_subsamples=n_subsamples, disjoint=disjoint
                    )
                    iccs.append(result.icc)
                cells.append(f"{statistics.median(iccs):.2f} [{min(iccs):.2f}, {max(iccs):.2f}]")
            kind = "disjoint" if disjoint else "overlapping"
            lines.append(f"| {sname} | {kind} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return lines


def _timing_function(p: Params) -> float:
    # Five active params with different strengths; the rest are inert.
    return float(
        np.sin(6 * p["p0"])
        + 2 * p["p1"] ** 2
        + 0.5 * p["p2"]
        + p["p3"] * p["p4"]
        + 0.1 * math.cos(3 * p["p0"] * p["p2"])
    )


def timing(sizes: list[int], dims: list[int], fanova_at: tuple[int, int] | None) -> list[str]:
    makers = evaluators(with_fanova=True)
    makers = {
        "N-RReliefF (ours, M=1000)": makers["N-RReliefF (ours)"],
        "N-RReliefF (ours, M=all)": lambda: NRReliefFImportanceEvaluator(
            n_iterations="all", seed=0
        ),
        **{k: v for k, v in makers.items() if not k.startswith("N-RReliefF")},
    }
    header = "| N | D | " + " | ".join(makers) + " |"
    lines = [
        "### `evaluate()` time in seconds: wall (CPU of this process), median of 3 runs; "
        "1 run when > 5 s",
        "",
        "CPU time is the less load-sensitive number when the machine is shared.",
        "",
        header,
        "| " + " | ".join(["---:"] * (len(makers) + 2)) + " |",
    ]
    agreement = []
    for n in sizes:
        for d in dims:
            dists = {f"p{i}": FloatDistribution(0.0, 1.0) for i in range(d)}
            study = random_study(dists, _timing_function, n, seed=0)
            row = [str(n), str(d)]
            results: dict[str, dict[str, float]] = {}
            for ename, make in makers.items():
                if ename.startswith("fANOVA") and (n, d) != fanova_at:
                    row.append("-")
                    continue
                imp, wall, cpu = timed(make, study)
                runs = [(wall, cpu)]
                if wall < 5:
                    runs += [timed(make, study)[1:] for _ in range(2)]
                results[ename] = imp
                walls, cpus = zip(*runs)
                row.append(f"{statistics.median(walls):.2f} ({statistics.median(cpus):.2f})")
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
            a = results["N-RReliefF (ours, M=1000)"]
            b = results["N-RReliefF (ours, M=all)"]
            names = list(dists)
            rho = spearmanr([a[p] for p in names], [b[p] for p in names]).statistic
            top_a = sorted(names, key=lambda p: -a[p])[:3]
            top_b = sorted(names, key=lambda p: -b[p])[:3]
            agreement.append(
                f"| {n} | {d} | {rho:.3f} | {top_a == top_b} | "
                f"{max(abs(a[p] - b[p]) for p in names):.3f} |"
            )
    lines += [
        "",
        "N-RReliefF with the default M = 1000 sampled trials vs M = all (same study): Spearman "
        "of the shares, same top-3 order, max |share difference|.",
        "",
        "| N | D | rho | same top-3 | max abs diff |",
        "| ---: | ---: | ---: | --- | ---: |",
        *agreement,
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run with small sizes")
    parser.add_argument("--out", default="benchmarks/results_relief.md")
    args = parser.parse_args()
    if args.quick:
        acc = accuracy(200, [0], fanova_trials=50)
        weights = nrrelieff_weights(200, 0)
        stab = stability(100, 3, [0])
        tim = timing([300], [5], fanova_at=None)
    else:
        acc = accuracy(1000, [0, 1, 2], fanova_trials=200)
        weights = nrrelieff_weights(1000, 0)
        stab = stability(500, 5, [0, 1, 2])
        tim = timing([1000, 10000], [5, 20], fanova_at=(1000, 5))
    command = "python benchmarks/bench_relief.py" + (" --quick" if args.quick else "")
    text = [
        "## N-RReliefF and stability (issue 3)",
        "",
        f"Command: `{command}` (OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1, set by the script). "
        f"Python {sys.version.split()[0]}, optuna {optuna.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores, 1-minute load average {os.getloadavg()[0]:.1f} at the start: "
        "ratios within one table are measured in the same run.",
        "",
        *acc,
        "",
        *weights,
        "",
        *stab,
        "",
        *tim,
        "",
    ]
    with open(args.out, "w") as fh:
        fh.write("\n".join(text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
