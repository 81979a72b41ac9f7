"""One call that runs several importance evaluators on a study and puts them side by side."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import csv
import dataclasses
from dataclasses import dataclass
from dataclasses import field
import io
import itertools
import json
import math
import textwrap
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
from optuna_hpi.importance._base import LOW_R2
from optuna_hpi.importance._base import MIN_TRIALS_PER_PARAM
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._result import Interval
from optuna_hpi.importance._sobol import SobolResult
from optuna_hpi.staged._plan import CONFIG_KEY


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

_logger = optuna.logging.get_logger(__name__)

#: Evaluators of the default report: every registered one.
DEFAULT_EVALUATORS: tuple[str, ...] = EVALUATOR_NAMES

Progress = Callable[[str], None]

#: Width of :meth:`ImportanceReport.to_text` (a terminal with some margin).
TEXT_WIDTH = 100

#: Below this mean Kendall's tau-b the report explains why evaluators can disagree. At 0.5,
#: three quarters of the parameter pairs are ordered alike; below, the rankings differ enough
#: that reading one evaluator alone would mislead.
DISAGREEMENT_TAU = 0.5

#: The question each evaluator answers, printed when they disagree.
QUESTIONS: dict[str, str] = {
    "sobol": "share of the objective's variance over the whole search space (global)",
    "fanova": "variance share too, from a random forest's own partition (global)",
    "mdi": "how much a random forest's splits on it reduce the error (global, split-based)",
    "pedanova": "how it differs between the best trials and the rest (local, top quantile)",
    "relief": "whether close trials that differ in it differ in the objective (neighbourhood)",
    "ablation": "how much of the gain from the default to the best trial it brings (path)",
}


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
        constant_response: The response is the same in every usable trial (at least two):
            every column is then all 0, not Optuna's uniform split.

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
    constant_response: bool = False

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
            "surrogate_r2_low": self.low_r2,
            "constant_response": self.constant_response,
            "params": list(self.params),
            "evaluators": self.evaluators,
            "importances": {c.name: _nums(self._ordered(c.importances)) for c in self.columns},
            "intervals": {
                c.name: {p: [_num(a), _num(b)] for p, (a, b) in self._ordered(c.intervals).items()}
                for c in self.columns
            },
            "seconds": {c.name: round(c.seconds, 3) for c in self.columns},
            "failed": dict(self.failed),
            "sobol": {
                "first": _nums(self._ordered(self.sobol_first)),
                "total": _nums(self._ordered(self.sobol_total)),
                "first_intervals": {
                    p: [_num(a), _num(b)]
                    for p, (a, b) in self._ordered(self.sobol_first_intervals).items()
                },
                "total_intervals": {
                    p: [_num(a), _num(b)]
                    for p, (a, b) in self._ordered(self.sobol_total_intervals).items()
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

    def _ordered(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` in the report's parameter order (most important first)."""
        return {p: values[p] for p in self.params if p in values}

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

    def to_text(self, *, details: bool = False, width: int = TEXT_WIDTH) -> str:
        """A printable summary that fits ``width`` columns.

        Normalized importances with intervals, Sobol' indices of the surrogate (flagged when the
        surrogate explains little), pairs of parameters the intervals cannot rank, the strongest
        interactions and a one-line summary of the agreement between evaluators; when they
        disagree, which question each one answers and which has too little evidence.

        Args:
            details: Also list the agreement of every pair of evaluators.
            width: Maximum line length; wide tables are split into blocks of columns.
        """
        level = int(round(100 * self.confidence))
        lines = [f"Importance report: {self.n_trials} trials, response={self.response}"]
        if self.constant_response:
            lines.append(
                f"The {self.response} is the same in every trial: no parameter has any effect "
                "(all importances 0)."
            )
        lines.append(f"Normalized importances (shares of each column) [{level}% interval]:")
        rows = [["param", *self.evaluators]]
        for p in self.params:
            rows.append(
                [p, *(_fmt_share(c.importances.get(p), c.intervals.get(p)) for c in self.columns)]
            )
        lines += _table(rows, width)
        if self.sobol_first:
            lines.append("")
            r2 = (
                ""
                if math.isnan(self.surrogate_r2)
                else f", surrogate CV R^2 {self.surrogate_r2:.2f}"
            )
            lines.append(f"Sobol' indices of the surrogate [{level}% interval]{r2}:")
            if self.low_r2:
                lines.append(
                    f"  LOW R^2 (< {LOW_R2}): the surrogate misses most of the variance; its "
                    "indices, and ablation's path, say little about the objective."
                )
            rows = [["param", "S1 (first order)", "ST (total)"]]
            for p in self.params:
                if p in self.sobol_first:
                    rows.append(
                        [
                            p,
                            _fmt_share(self.sobol_first[p], self.sobol_first_intervals.get(p)),
                            _fmt_share(self.sobol_total[p], self.sobol_total_intervals.get(p)),
                        ]
                    )
            lines += _table(rows, width)
        notes = []
        for c in self.columns:
            kind = getattr(c.result, "source_kind", None)
            if kind is not None:
                notes.append(f"{c.name} starts from the {kind.replace('_', ' ')} configuration")
        notes += [
            f"{c.name}: not enough trials to rank " + ", ".join(f"{a} and {b}" for a, b in pairs)
            for c in self.columns
            if (pairs := unresolved_pairs(c.importances, c.intervals))
        ]
        notes.append("time: " + ", ".join(f"{c.name} {c.seconds:.1f} s" for c in self.columns))
        notes += [f"{name} failed and is left out: {error}" for name, error in self.failed.items()]
        lines.extend(_wrap(f"({n})", width) for n in notes)
        if self.interactions:
            lines.append("")
            lines.append("Strongest interactions (Sobol' S_ij of the surrogate):")
            for it in self.interactions:
                value = _fmt_share(it.value, it.interval, digits=3)
                lines.append(f"  {it.params[0]} x {it.params[1]}: {value}")
        if self.agreement:
            lines.append("")
            lines.append(_wrap(self._agreement_line(details), width))
            if details and len(self.agreement) > 1:
                for (a, b), t in self.agreement.items():
                    lines.append(f"  {a} ~ {b}: " + ("n/a" if math.isnan(t) else f"{t:+.2f}"))
            if self.disagree:
                lines += [_wrap(line, width) for line in self._why_they_differ()]
        return "\n".join(lines)

    @property
    def low_r2(self) -> bool:
        """Whether the Sobol' surrogate's cross-validated R^2 is below ``LOW_R2``."""
        return self.surrogate_r2 < LOW_R2

    @property
    def disagree(self) -> bool:
        """Whether the evaluators' rankings agree poorly (mean tau-b below 0.5)."""
        return self.mean_agreement < DISAGREEMENT_TAU

    def _agreement_line(self, details: bool) -> str:
        if len(self.agreement) == 1:
            ((a, b), t), *_ = self.agreement.items()
            tau = "n/a" if math.isnan(t) else f"{t:+.2f}"
            return f"Agreement of the rankings (Kendall's tau-b): {a} ~ {b} {tau}."
        mean = "n/a" if math.isnan(self.mean_agreement) else f"{self.mean_agreement:.2f}"
        line = (
            f"Agreement of the rankings (Kendall's tau-b): mean {mean} over "
            f"{len(self.agreement)} pairs of evaluators"
        )
        finite = {k: t for k, t in self.agreement.items() if math.isfinite(t)}
        if len(finite) > 1:
            (a, b), t = min(finite.items(), key=lambda kv: kv[1])
            line += f"; lowest {a} ~ {b} {t:+.2f}"
        if not details and len(self.agreement) > 1:
            line += " (every pair: to_text(details=True) or the `agreement` field)"
        return line + "."

    def _why_they_differ(self) -> list[str]:
        out = ["They answer different questions:"]
        for c in self.columns:
            question = QUESTIONS.get(c.name)
            if question is not None:
                out.append(f"  {c.name}: {question}")
        weak = []
        n_params = max(1, len(self.params))
        if self.n_trials < MIN_TRIALS_PER_PARAM * n_params:
            weak.append(
                f"every evaluator: {self.n_trials} trials for {n_params} parameters "
                f"(< {MIN_TRIALS_PER_PARAM} per parameter)"
            )
        for c in self.columns:
            r2 = getattr(c.result, "surrogate_r2", math.nan)
            if r2 < LOW_R2:
                weak.append(f"{c.name}: its surrogate explains only R^2 = {r2:.2f}")
            top = sorted(c.importances, key=lambda p: -c.importances[p])[:2]
            if len(top) == 2 and top in [
                list(pair) for pair in unresolved_pairs(c.importances, c.intervals)
            ]:
                weak.append(
                    f"{c.name}: its intervals cannot order its top two ({top[0]}, {top[1]})"
                )
        no_interval = [c.name for c in self.columns if not c.intervals]
        if no_interval:
            weak.append(f"{', '.join(no_interval)}: no intervals, so their evidence is unknown")
        if weak:
            out.append("Too little evidence: " + "; ".join(weak) + ".")
        return out


def unresolved_pairs(
    shares: Mapping[str, float], intervals: Mapping[str, Interval], top: int = 3
) -> list[tuple[str, str]]:
    """Neighbours in the ranking (among the ``top`` first with a positive share) whose
    intervals overlap: the trials cannot tell which of the two matters more."""
    ranked = [p for p in sorted(shares, key=lambda p: -shares[p]) if shares[p] > 0][:top]
    out = []
    for a, b in itertools.pairwise(ranked):
        if a in intervals and b in intervals and intervals[b][1] >= intervals[a][0]:
            out.append((a, b))
    return out


def _table(rows: list[list[str]], width: int) -> list[str]:
    """Right-aligned columns under a header, split into blocks of columns that fit ``width``."""
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    blocks: list[list[int]] = [[]]
    used = widths[0]
    for k in range(1, len(widths)):
        if blocks[-1] and used + 2 + widths[k] > width:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(k)
        used += 2 + widths[k]
    out = []
    for i, block in enumerate(blocks):
        if i:
            out.append("")
        cols = [0, *block]
        for j, r in enumerate(rows):
            cells = [r[0].ljust(widths[0])] + [r[k].rjust(widths[k]) for k in block]
            out.append("  ".join(cells).rstrip())
            if j == 0:
                out.append("  ".join("-" * widths[k] for k in cols))
    return out


def _wrap(text: str, width: int) -> str:
    return "\n".join(
        textwrap.wrap(text, width=width, subsequent_indent="  ", break_on_hyphens=False)
    )


def _share(v: float) -> float:
    # Shares live in [0, 1]: estimation noise must not print as -0.000 or 1.011 (raw values
    # stay in the fields and in to_dict()); + 0.0 turns -0.0 into 0.0.
    return min(1.0, max(0.0, float(v))) + 0.0


def _fmt_share(v: float | None, interval: Interval | None = None, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    s = f"{_share(v):.{digits}f}"
    if interval is not None and all(math.isfinite(x) for x in interval):
        s += f" [{_share(interval[0]):.{digits}f}, {_share(interval[1]):.{digits}f}]"
    return s


def _num(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(v)


def _nums(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: _num(v) for k, v in d.items()}


def _cell(v: float) -> str:
    return "" if not math.isfinite(v) else repr(float(v))


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
            ``{"sobol": {"n_samples": 1024}}``. For a study run by a
            :class:`~optuna_hpi.StagedStudy` given ``defaults=``, the ablation path starts
            from those defaults unless ``"ablation"`` options name ``default_params`` or
            ``source_trial``.
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
    ablation = options.setdefault("ablation", {})
    if "default_params" not in ablation and "source_trial" not in ablation:
        # A staged study knows the user's defaults: the ablation path starts there.
        staged = json.loads(study.user_attrs.get(CONFIG_KEY, "{}")).get("defaults") or {}
        known = {n for t in study.get_trials(deepcopy=False) for n in t.distributions}
        if any(k in known for k in staged):
            ablation["default_params"] = {k: v for k, v in staged.items() if k in known}
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
    constant = data.n_trials >= 2 and float(np.ptp(data.y)) == 0.0
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
        if constant:
            # Optuna's uniform split would read as "every parameter matters equally".
            shares = {p: 0.0 for p in shares}
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
    # Every column in the same (report) order: JSON, CSV and plots read alike.
    columns = [
        dataclasses.replace(
            c,
            importances={p: c.importances[p] for p in names if p in c.importances},
            intervals={p: c.intervals[p] for p in names if p in c.intervals},
        )
        for c in columns
    ]

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
        constant_response=constant,
    )
