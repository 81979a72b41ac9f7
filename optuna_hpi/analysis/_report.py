"""One call that runs several importance evaluators on a study and puts them side by side."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import csv
from dataclasses import dataclass
from dataclasses import field
import io
import itertools
import json
import math
import time
from typing import Any
from typing import TYPE_CHECKING
import warnings

import numpy as np
from optuna.importance import BaseImportanceEvaluator
import optuna.logging
from scipy.stats import kendalltau

from optuna_hpi._encoding import encode_study
from optuna_hpi.analysis._registry import EVALUATOR_NAMES
from optuna_hpi.analysis._registry import make_evaluator
from optuna_hpi.importance._base import HpiImportanceEvaluator
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._result import Interval
from optuna_hpi.importance._sobol import SobolResult


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

_logger = optuna.logging.get_logger(__name__)

#: Evaluators of the default report: every registered one.
DEFAULT_EVALUATORS: tuple[str, ...] = EVALUATOR_NAMES

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EvaluatorColumn:
    """One evaluator's column of an :class:`ImportanceReport`.

    Attributes:
        name: Registry name (``"sobol"``, ``"fanova"``, ...) or the class name of an instance.
        importances: Importance per parameter, clipped at 0 and normalized to sum to 1 like
            :func:`optuna.importance.get_param_importances`. Parameters the evaluator did not
            assess (e.g. conditional ones for Optuna's evaluators) are absent.
        intervals: Bootstrap interval per parameter on the normalized scale: the bootstrap
            interval of the shares themselves when the result has one (N-RReliefF's
            ``share_intervals``), else the raw interval clipped at 0, divided by the same sum as
            the point estimate and clipped at 1 (an approximation that ignores the resampling
            of the sum). Empty for evaluators without intervals.
        result: The rich result of this package's evaluators (``None`` for Optuna's).
        seconds: Wall time the evaluator took.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import importance_report

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", 0, 1) + 0.1 * t.suggest_float("y", 0, 1),
                n_trials=20,
            )
            column = importance_report(study, ("mdi",), n_bootstrap=0).column("mdi")
            print(column.importances, column.seconds)
    """

    name: str
    importances: dict[str, float]
    intervals: dict[str, Interval] = field(default_factory=dict)
    result: ImportanceResult | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Interaction:
    """A pairwise Sobol' index S_ij of the surrogate, with its bootstrap interval.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import importance_report

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", -1, 1) * t.suggest_float("y", -1, 1), n_trials=40
            )
            report = importance_report(
                study, ("sobol",), n_bootstrap=0, evaluator_options={"sobol": {"n_samples": 256}}
            )
            strongest = report.interactions[0]
            print(strongest.params, strongest.value)
    """

    params: tuple[str, str]
    value: float
    interval: Interval | None = None


@dataclass(frozen=True)
class ImportanceReport:
    """Several evaluators' importances side by side, with Sobol' detail and their agreement.

    Built by :func:`importance_report`.

    Attributes:
        params: Parameters in the table, most important first (by the mean normalized importance
            over the evaluators).
        columns: One :class:`EvaluatorColumn` per evaluator, in the order requested.
        sobol_first: Sobol' first-order index per parameter (raw, not normalized); empty if
            ``"sobol"`` was not among the evaluators.
        sobol_total: Sobol' total-order index per parameter.
        sobol_first_intervals: Bootstrap intervals of :attr:`sobol_first`.
        sobol_total_intervals: Bootstrap intervals of :attr:`sobol_total`.
        interactions: The strongest pairwise Sobol' indices, largest first.
        agreement: Kendall's tau-b between the importance rankings of each pair of evaluators
            (over the parameters both assessed); ``nan`` when undefined (a constant column or
            fewer than two common parameters).
        mean_agreement: Mean of the finite values of :attr:`agreement` (``nan`` if none).
        n_trials: Usable trials behind the report.
        response: What was explained: ``"objective"``, ``"target"`` or ``"pareto_rank"``.
        confidence: Level of the intervals.
        surrogate_r2: Cross-validated R^2 of the Sobol' surrogate (``nan`` if not computed).
        failed: Evaluators that raised, with the error (``"TypeName: message"``); they have no
            column, so one evaluator's limitation does not cost the others' results.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import importance_report


            def objective(trial):
                x = trial.suggest_float("x", -1, 1)
                y = trial.suggest_float("y", -1, 1)
                return x**2 + 0.1 * y


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=60)
            report = importance_report(study, evaluators=("sobol", "fanova"), n_bootstrap=5)
            print(report.to_text())
    """

    params: list[str]
    columns: list[EvaluatorColumn]
    sobol_first: dict[str, float] = field(default_factory=dict)
    sobol_total: dict[str, float] = field(default_factory=dict)
    sobol_first_intervals: dict[str, Interval] = field(default_factory=dict)
    sobol_total_intervals: dict[str, Interval] = field(default_factory=dict)
    interactions: list[Interaction] = field(default_factory=list)
    agreement: dict[tuple[str, str], float] = field(default_factory=dict)
    mean_agreement: float = float("nan")
    n_trials: int = 0
    response: str = "objective"
    confidence: float = 0.95
    surrogate_r2: float = float("nan")
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def evaluators(self) -> list[str]:
        """Names of the evaluator columns, in order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> EvaluatorColumn:
        """The column of evaluator ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"No evaluator {name!r} in this report; it has {self.evaluators}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` becomes ``None``)."""
        return {
            "n_trials": self.n_trials,
            "response": self.response,
            "confidence": self.confidence,
            "surrogate_r2": _num(self.surrogate_r2),
            "params": list(self.params),
            "evaluators": self.evaluators,
            "importances": {c.name: _nums(c.importances) for c in self.columns},
            "intervals": {
                c.name: {p: [_num(a), _num(b)] for p, (a, b) in c.intervals.items()}
                for c in self.columns
            },
            "seconds": {c.name: round(c.seconds, 3) for c in self.columns},
            "failed": dict(self.failed),
            "sobol": {
                "first": _nums(self.sobol_first),
                "total": _nums(self.sobol_total),
                "first_intervals": {
                    p: [_num(a), _num(b)] for p, (a, b) in self.sobol_first_intervals.items()
                },
                "total_intervals": {
                    p: [_num(a), _num(b)] for p, (a, b) in self.sobol_total_intervals.items()
                },
            },
            "interactions": [
                {
                    "params": list(i.params),
                    "value": _num(i.value),
                    "interval": None if i.interval is None else [_num(v) for v in i.interval],
                }
                for i in self.interactions
            ],
            "agreement": {
                "method": "kendall_tau_b",
                "pairs": [
                    {"evaluators": [a, b], "tau": _num(t)} for (a, b), t in self.agreement.items()
                ],
                "mean": _num(self.mean_agreement),
            },
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON document (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        """One row per parameter: each evaluator's importance and interval, Sobol' S1 and ST."""
        header = ["param"]
        for c in self.columns:
            header += [c.name, f"{c.name}_low", f"{c.name}_high"]
        if self.sobol_first:
            header += ["sobol_first", "sobol_first_low", "sobol_first_high"]
            header += ["sobol_total", "sobol_total_low", "sobol_total_high"]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for p in self.params:
            row: list[Any] = [p]
            for c in self.columns:
                lo, hi = c.intervals.get(p, (math.nan, math.nan))
                row += [_cell(c.importances.get(p, math.nan)), _cell(lo), _cell(hi)]
            if self.sobol_first:
                for values, ivs in (
                    (self.sobol_first, self.sobol_first_intervals),
                    (self.sobol_total, self.sobol_total_intervals),
                ):
                    lo, hi = ivs.get(p, (math.nan, math.nan))
                    row += [_cell(values.get(p, math.nan)), _cell(lo), _cell(hi)]
            writer.writerow(row)
        return out.getvalue()

    def to_text(self) -> str:
        """A printable table (normalized importances with intervals) and the summaries."""
        level = int(round(100 * self.confidence))
        r2 = "" if math.isnan(self.surrogate_r2) else f", surrogate CV R^2 {self.surrogate_r2:.2f}"
        lines = [
            f"Importance report: {self.n_trials} trials, response={self.response}{r2}; "
            f"normalized importances [{level}% bootstrap interval]"
        ]
        header = ["param"] + self.evaluators
        if self.sobol_first:
            header += ["S1", "ST"]
        rows = [header]
        for p in self.params:
            row = [p]
            for c in self.columns:
                row.append(_fmt(c.importances.get(p), c.intervals.get(p)))
            if self.sobol_first:
                row.append(_fmt(self.sobol_first.get(p), self.sobol_first_intervals.get(p)))
                row.append(_fmt(self.sobol_total.get(p), self.sobol_total_intervals.get(p)))
            rows.append(row)
        widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
        for i, r in enumerate(rows):
            cells = [r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        notes = []
        for c in self.columns:
            kind = getattr(c.result, "source_kind", None)
            if kind is not None:
                notes.append(f"{c.name} starts from the {kind.replace('_', ' ')} configuration")
        notes.append("time: " + ", ".join(f"{c.name} {c.seconds:.1f} s" for c in self.columns))
        notes += [f"{name} failed and is left out: {error}" for name, error in self.failed.items()]
        lines.extend(f"({n})" for n in notes)
        if self.interactions:
            lines.append("")
            lines.append("Strongest interactions (Sobol' S_ij of the surrogate):")
            for it in self.interactions:
                lines.append(f"  {it.params[0]} x {it.params[1]}: {_fmt(it.value, it.interval)}")
        if self.agreement:
            lines.append("")
            lines.append(
                "Agreement between evaluators (Kendall's tau-b of the rankings): mean "
                + ("n/a" if math.isnan(self.mean_agreement) else f"{self.mean_agreement:.2f}")
            )
            for (a, b), t in self.agreement.items():
                lines.append(f"  {a} ~ {b}: " + ("n/a" if math.isnan(t) else f"{t:+.2f}"))
        return "\n".join(lines)


def _num(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(v)


def _nums(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: _num(v) for k, v in d.items()}


def _cell(v: float) -> str:
    return "" if not math.isfinite(v) else repr(float(v))


def _fmt(v: float | None, interval: Interval | None = None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    s = f"{v:.3f}"
    if interval is not None:
        s += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return s


def normalize(importances: Mapping[str, float]) -> tuple[dict[str, float], float]:
    """Clip at 0 and divide by the sum (uniform if the sum is 0); returns the shares and sum."""
    clipped = {k: max(0.0, float(v)) for k, v in importances.items()}
    total = sum(clipped.values())
    if total <= 0.0:
        n = len(clipped)
        return {k: 1.0 / n for k in clipped}, 0.0
    return {k: v / total for k, v in clipped.items()}, total


def rank_agreement(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Kendall's tau-b of two importance dicts over their common keys (``nan``: undefined)."""
    common = [k for k in a if k in b]
    if len(common) < 2:
        return math.nan
    x = np.array([a[k] for k in common])
    y = np.array([b[k] for k in common])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(kendalltau(x, y).statistic)


def _name_of(evaluator: str | BaseImportanceEvaluator) -> str:
    return evaluator if isinstance(evaluator, str) else type(evaluator).__name__


def importance_report(
    study: Study,
    evaluators: Sequence[str | BaseImportanceEvaluator] = DEFAULT_EVALUATORS,
    params: list[str] | None = None,
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    n_bootstrap: int = 20,
    n_interactions: int = 5,
    seed: int = 0,
    evaluator_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress | None = None,
) -> ImportanceReport:
    """Run several importance evaluators on one study and compare them.

    The study is encoded once; this package's evaluators (``sobol``, ``relief``, ``ablation``)
    analyse that encoding with ``n_bootstrap`` bootstrap resamples for intervals, Optuna's
    (``fanova``, ``pedanova``, ``mdi``) run through their ``evaluate()`` and have no intervals.
    Sobol' runs with pairwise indices, which give the interaction summary.

    Args:
        study: The study to analyse (any storage).
        evaluators: Registry names (see :data:`~optuna_hpi.analysis.EVALUATOR_NAMES`) or
            evaluator instances, in the column order wanted.
        params: Parameters to assess; ``None``: this package's default (every parameter plus
            conditional ones active often enough). It is passed as given to Optuna's
            evaluators, which by default use the intersection search space.
        target: Response to explain instead of the objective (required for multi-objective
            studies when one of Optuna's evaluators is included).
        n_bootstrap: Bootstrap resamples of the trials for the intervals (0: none).
        n_interactions: How many of the strongest pairwise interactions to keep.
        seed: Seed of the evaluators built from names.
        evaluator_options: Extra constructor arguments per registry name, e.g.
            ``{"sobol": {"n_samples": 1024}}``.
        progress: Called with a short message before each evaluator (e.g. print to stderr).

    An evaluator that raises while analysing is left out with a warning and listed in
    :attr:`ImportanceReport.failed`; the error is raised only when every evaluator fails.

    Raises:
        ValueError: unknown evaluator name, no evaluator, or a multi-objective study without
            ``target`` when one of Optuna's evaluators is requested.
        ImportError: a named evaluator is not available in this installation.
    """
    if isinstance(evaluators, str):
        evaluators = (evaluators,)
    if not evaluators:
        raise ValueError("`evaluators` is empty; pass e.g. evaluators=('sobol', 'fanova').")
    options = {k: dict(v) for k, v in (evaluator_options or {}).items()}
    built: list[tuple[str, BaseImportanceEvaluator]] = []
    for ev in evaluators:
        name = _name_of(ev)
        if isinstance(ev, str):
            kwargs = options.get(ev, {})
            if ev == "sobol":
                kwargs = {"pairwise": True, **kwargs}
            built.append((name, make_evaluator(ev, seed=seed, **kwargs)))
        elif isinstance(ev, BaseImportanceEvaluator):
            built.append((name, ev))
        else:
            raise TypeError(
                f"`evaluators` items must be names or BaseImportanceEvaluator instances, got "
                f"{type(ev).__name__}."
            )
    if len({n for n, _ in built}) < len(built):
        raise ValueError(f"`evaluators` lists an evaluator twice: {[n for n, _ in built]}.")
    if study._is_multi_objective() and target is None:
        foreign = [n for n, e in built if not isinstance(e, HpiImportanceEvaluator)]
        if foreign:
            raise ValueError(
                f"The study has {len(study.directions)} objectives; {foreign} need `target` "
                "(e.g. target=lambda t: t.values[0]) to know which one to explain."
            )

    data = encode_study(study, params, target)
    columns: list[EvaluatorColumn] = []
    sobol: SobolResult | None = None
    failed: dict[str, str] = {}
    for k, (name, ev) in enumerate(built):
        message = f"[{k + 1}/{len(built)}] {name} on {data.n_trials} trials"
        if progress is not None:
            progress(message)
        _logger.info(message)
        start = time.perf_counter()
        result: ImportanceResult | None = None
        try:
            if isinstance(ev, HpiImportanceEvaluator):
                result = ev.analyze_encoded(data, n_bootstrap)
                raw: Mapping[str, float] = result.values
            else:
                with warnings.catch_warnings():
                    # PED-ANOVA warns that a `target` is minimized: the report's convention.
                    warnings.filterwarnings(
                        "ignore", message="PedAnovaImportanceEvaluator computes"
                    )
                    raw = ev.evaluate(study, params=params, target=target)
        except Exception as error:
            if not columns and len(failed) == len(built) - 1:
                raise  # every evaluator failed: the user needs the error itself
            failed[name] = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"Evaluator {name!r} failed and is left out of the report: {failed[name]}",
                stacklevel=2,
            )
            continue
        seconds = time.perf_counter() - start
        shares, total = normalize(raw) if raw else ({}, 0.0)
        intervals: dict[str, Interval] = {}
        share_intervals = getattr(result, "share_intervals", None)
        if share_intervals:
            intervals = {p: (float(lo), float(hi)) for p, (lo, hi) in share_intervals.items()}
        elif result is not None and result.intervals and total > 0.0:
            intervals = {
                p: (min(1.0, max(0.0, lo) / total), min(1.0, max(0.0, hi) / total))
                for p, (lo, hi) in result.intervals.items()
            }
        if isinstance(result, SobolResult) and sobol is None:
            sobol = result
        columns.append(EvaluatorColumn(name, shares, intervals, result, seconds))

    names = list(data.params)
    for c in columns:
        names += [p for p in c.importances if p not in names]
    # Most important first; ties keep the encoding order.
    mean = {
        p: float(np.mean([c.importances[p] for c in columns if p in c.importances] or [0.0]))
        for p in names
    }
    names.sort(key=lambda p: -mean[p])

    agreement = {
        (a.name, b.name): rank_agreement(a.importances, b.importances)
        for a, b in itertools.combinations(columns, 2)
    }
    finite = [t for t in agreement.values() if math.isfinite(t)]
    interactions: list[Interaction] = []
    if sobol is not None and sobol.pairwise:
        ranked = sorted(sobol.pairwise.items(), key=lambda kv: -kv[1])[:n_interactions]
        interactions = [
            Interaction(pair, float(v), sobol.pairwise_intervals.get(pair)) for pair, v in ranked
        ]
    return ImportanceReport(
        params=names,
        columns=columns,
        sobol_first=dict(sobol.first) if sobol else {},
        sobol_total=dict(sobol.total) if sobol else {},
        sobol_first_intervals=dict(sobol.first_intervals) if sobol else {},
        sobol_total_intervals=dict(sobol.total_intervals) if sobol else {},
        interactions=interactions,
        agreement=agreement,
        mean_agreement=float(np.mean(finite)) if finite else math.nan,
        n_trials=data.n_trials,
        response=data.response,
        confidence=next((c.result.confidence for c in columns if c.result is not None), 0.95),
        surrogate_r2=sobol.surrogate_r2 if sobol else math.nan,
        failed=failed,
    )
