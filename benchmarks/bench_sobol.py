"""Accuracy and speed of SobolImportanceEvaluator beside Optuna's fANOVA, MDI and PED-ANOVA.

Usage: ``python benchmarks/bench_sobol.py [--quick]``; writes ``benchmarks/results_sobol.md``.
Everything is measured in one run, side by side, because this machine is noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import sys

import numpy as np
from optuna.distributions import FloatDistribution
from optuna.importance import FanovaImportanceEvaluator
from optuna.importance import MeanDecreaseImpurityImportanceEvaluator
from optuna.importance import PedAnovaImportanceEvaluator


sys.path.insert(0, str(Path(__file__).parent))
from _common import build_study  # noqa: E402
from _common import g_function_study  # noqa: E402
from _common import ishigami_study  # noqa: E402
from _common import max_abs_error  # noqa: E402
from _common import median_time  # noqa: E402
from _common import run_isolated  # noqa: E402

from optuna_hpi import SobolImportanceEvaluator  # noqa: E402


def evaluators(seed: int) -> dict[str, object]:
    return {
        "hpi-sobol (first)": SobolImportanceEvaluator(seed=seed),
        "hpi-sobol (total)": SobolImportanceEvaluator(seed=seed, index="total"),
        "optuna fANOVA": FanovaImportanceEvaluator(seed=seed),
        "optuna MDI": MeanDecreaseImpurityImportanceEvaluator(seed=seed),
        "optuna PED-ANOVA": PedAnovaImportanceEvaluator(),
    }


def log_indicator_study(n: int, seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    lr = np.exp(rng.uniform(math.log(1e-5), math.log(1e-1), n))
    d = rng.uniform(0, 1, n)
    dists = {"lr": FloatDistribution(1e-5, 1e-1, log=True), "d": FloatDistribution(0, 1)}
    study = build_study(dists, np.column_stack([lr, d]), (lr < 1e-3) + d)
    s = {"lr": 0.75, "d": 0.25}
    return study, s, s


PROBLEMS = {
    "ishigami+2 inert": lambda n, s: ishigami_study(n, 2, s),
    "G-function d=8": lambda n, s: g_function_study(n, [0, 1, 4.5, 9, 99, 99, 99, 99], s),
    "log indicator": log_indicator_study,
}


def accuracy(ns: list[int], seeds: list[int]) -> list[str]:
    rows = []
    for problem, make in PROBLEMS.items():
        for n in ns:
            errors: dict[str, list[float]] = {}
            for seed in seeds:
                study, s1, st = make(n, seed)
                for name, ev in evaluators(seed).items():
                    truth = st if "total" in name else s1
                    imp = ev.evaluate(study)  # type: ignore[attr-defined]
                    errors.setdefault(name, []).append(max_abs_error(imp, truth))
            cells = " | ".join(f"{np.median(v):.3f}" for v in errors.values())
            rows.append(f"| {problem} | {n} | {cells} |")
            print(rows[-1], flush=True)
    header = "| problem | N | " + " | ".join(evaluators(0)) + " |"
    return [header, "|" + "---|" * (2 + len(evaluators(0)))] + rows


def speed(ns: list[int], ds: list[int], fanova_max_n: int, repeats: int) -> list[str]:
    rows = []
    for d in ds:
        for n in ns:
            study, _, _ = g_function_study(n, [float(i) for i in range(d)], seed=0)
            cells = []
            for name, ev in evaluators(0).items():
                if "total" in name:
                    continue
                if "fANOVA" in name and n > fanova_max_n:
                    cells.append("skipped")
                    continue
                reps = 1 if "fANOVA" in name else repeats
                t = median_time(lambda ev=ev, st=study: ev.evaluate(st), reps)  # type: ignore[misc]
                cells.append(f"{t:.2f}")
            ours = float(cells[0])
            ratio = [f"{float(c) / ours:.1f}x" if c != "skipped" else "-" for c in cells[1:]]
            rows.append(f"| {n} | {d} | " + " | ".join(cells) + " | " + " / ".join(ratio) + " |")
            print(rows[-1], flush=True)
    header = (
        "| N | D | hpi-sobol s | fANOVA s | MDI s | PED-ANOVA s | speed-up vs fANOVA / MDI / PED |"
    )
    return [header, "|---|---|---|---|---|---|---|"] + rows


def small_studies(ns: list[int], d: int, repeats: int) -> list[str]:
    """Typical studies (50-300 trials): Sobol' beside MDI and PED-ANOVA.

    The three evaluators take turns within each repeat, so a change of load on this shared
    machine hits all of them alike.
    """
    import time

    names = ("hpi-sobol (first)", "optuna MDI", "optuna PED-ANOVA")
    rows = []
    for n in ns:
        study, _, _ = g_function_study(n, [float(i) for i in range(d)], seed=0)
        evs = evaluators(0)
        times: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            evs[name].evaluate(study)  # type: ignore[attr-defined]  # warm-up
        for _ in range(repeats):
            for name in names:
                t0 = time.perf_counter()
                evs[name].evaluate(study)  # type: ignore[attr-defined]
                times[name].append(time.perf_counter() - t0)
        ours, mdi, ped = (float(np.median(times[name])) for name in names)
        rows.append(f"| {n} | {d} | {ours:.3f} | {mdi:.3f} | {ped:.3f} | {ours / mdi:.2f} |")
        print(rows[-1], flush=True)
    header = "| N | D | hpi-sobol s | MDI s | PED-ANOVA s | hpi-sobol / MDI |"
    return [header, "|---|---|---|---|---|---|"] + rows


PEAK_CODE = """
import sys, time, tracemalloc
sys.path.insert(0, {bench!r})
from _common import g_function_study
from optuna_hpi import SobolImportanceEvaluator
study, _, _ = g_function_study({n}, [float(i) for i in range({d})], seed=0)
evaluator = SobolImportanceEvaluator(seed=0)
tracemalloc.start()
wall, cpu = time.perf_counter(), time.process_time()
evaluator.evaluate(study)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = tracemalloc.get_traced_memory()[1] / 2**20
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec.
with open("/proc/self/status") as f:
    rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
print(wall, cpu, peak, rss)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer seeds and sizes")
    parser.add_argument("--peak-only", action="store_true", help="only the N=10000 line")
    args = parser.parse_args()
    if args.peak_only:
        bench = str(Path(__file__).parent)
        print(run_isolated(PEAK_CODE.format(bench=bench, n=10000, d=20)))
        return
    seeds = [0, 1] if args.quick else [0, 1, 2]
    lines = [
        "## Sobol' evaluator: accuracy and speed",
        "",
        f"Command: `python benchmarks/bench_sobol.py{' --quick' if args.quick else ''}` "
        f"({os.cpu_count()}-core machine, 1-minute load average {os.getloadavg()[0]:.1f} at "
        "the start; all columns measured in the same run).",
        "",
        "### Accuracy: max |normalized importance - normalized analytic index| "
        f"(median over seeds {seeds})",
        "",
        "First-order evaluators are compared with S1, `hpi-sobol (total)` with ST. fANOVA and "
        "MDI report first-order-like shares.",
        "",
    ]
    lines += accuracy([200, 1000], seeds)
    lines += [
        "",
        "### Small studies: time per `evaluate()` (seconds, median of 7 turns, after a warm-up)",
        "",
        "The issue-13 target: no slower than Optuna's MDI at N=200, D=5, measured side by side.",
        "",
    ]
    lines += small_studies([50, 100, 200, 300], 5, repeats=7)
    lines += ["", "### Time per `evaluate()` (seconds, median of 3; fANOVA once)", ""]
    lines += speed([200, 1000, 5000, 10000], [5, 20], fanova_max_n=1000, repeats=3)
    bench = str(Path(__file__).parent)
    peak = run_isolated(PEAK_CODE.format(bench=bench, n=10000, d=20))
    wall, cpu, traced, rss = map(float, peak.split())
    lines += [
        "",
        f"N=10000, D=20 in a fresh process: evaluate() {wall:.2f} s wall, {cpu:.2f} s CPU; "
        f"peak memory allocated during evaluate() {traced:.0f} MiB (tracemalloc); the whole "
        f"process, including Optuna's in-memory study of 10000 trials, peaked at {rss:.0f} MiB.",
        "",
    ]
    out = Path(__file__).parent / "results_sobol.md"
    out.write_text("\n".join(lines) + "\n")
    print(json.dumps({"written": str(out)}))


if __name__ == "__main__":
    main()
