"""Merge the per-topic result files into ``benchmarks/RESULTS.md``.

Usage: ``python benchmarks/collect_results.py``. Each ``results_<topic>.md`` is written by its
benchmark script and states the exact command that produced it.
"""

from __future__ import annotations

from pathlib import Path


ORDER = ["sobol", "coverage", "relief", "ablation", "staged"]


def main() -> None:
    here = Path(__file__).parent
    parts = sorted(
        here.glob("results_*.md"),
        key=lambda p: (ORDER.index(p.stem[8:]) if p.stem[8:] in ORDER else len(ORDER), p.name),
    )
    header = [
        "# Benchmark results",
        "",
        "Produced by the scripts in this folder; each section names the command that made it",
        "(merged with `python benchmarks/collect_results.py`). All were run on a 2-core machine,",
        "some while it was shared with other jobs: compare columns measured in the same run, not",
        "absolute times across sections.",
        "",
    ]
    body = [p.read_text().rstrip() + "\n" for p in parts]
    (here / "RESULTS.md").write_text("\n".join(header) + "\n" + "\n".join(body))


if __name__ == "__main__":
    main()
