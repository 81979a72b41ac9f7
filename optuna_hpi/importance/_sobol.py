from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass
from dataclasses import field
import itertools
import math
from typing import Literal

import numpy as np
from scipy.stats import qmc

from optuna_hpi._encoding import EncodedTrials
from optuna_hpi._surrogate import cross_validated_r2
from optuna_hpi._surrogate import SCALED
from optuna_hpi._surrogate import Surrogate
from optuna_hpi._surrogate import SurrogateConfig
from optuna_hpi.importance._base import Bounds
from optuna_hpi.importance._base import check_positive_int
from optuna_hpi.importance._base import expand
from optuna_hpi.importance._base import expand_intervals
from optuna_hpi.importance._base import HpiImportanceEvaluator
from optuna_hpi.importance._base import Stats
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._result import Interval


@dataclass(frozen=True)
class SobolResult(ImportanceResult):
    """Sobol' indices of the surrogate, with intervals for the indices of the objective.

    All indices are those of the surrogate's prediction under the measure ``RandomSampler``
    draws from (log-uniform for ``log=True``, equal mass per int/step value, uniform choices).
    The intervals aim at the objective's indices: the union of the percentile and basic
    bootstrap intervals over surrogate refits, scaled by the surrogate's cross-validated R^2
    with ``(1 - R^2) / 2`` added to the upper bound (:func:`widen_by_fit`), clipped to [0, 1]
    and always containing the estimate. Measured coverage of the analytic S1 and ST by the
    95 % intervals: 90-100 % on Ishigami, the G-function and a mixed-type function at 300 and
    1000 trials (``benchmarks/bench_coverage.py``).

    Attributes:
        first: First-order index S_i (main effect share of the variance).
        total: Total-order index ST_i (share including every interaction of i).
        pairwise: Second-order index S_ij per parameter pair (only with ``pairwise=True``).
        first_intervals: Bootstrap intervals of :attr:`first`.
        total_intervals: Bootstrap intervals of :attr:`total`.
        pairwise_intervals: Bootstrap intervals of :attr:`pairwise`.
        surrogate_r2: 5-fold cross-validated R^2 of the surrogate (``nan`` below 10 trials):
            indices of a surrogate that explains little say little about the objective.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import SobolImportanceEvaluator

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: t.suggest_float("x", 0, 1) * t.suggest_float("y", 0, 1), n_trials=60
            )
            result = SobolImportanceEvaluator(seed=0, pairwise=True).analyze(study, n_bootstrap=3)
            assert result.total["x"] >= result.first["x"] - 0.05
            print(result.pairwise[("x", "y")], result.first_intervals["x"])
    """

    first: dict[str, float] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    pairwise: dict[tuple[str, str], float] = field(default_factory=dict)
    first_intervals: dict[str, Interval] = field(default_factory=dict)
    total_intervals: dict[str, Interval] = field(default_factory=dict)
    pairwise_intervals: dict[tuple[str, str], Interval] = field(default_factory=dict)
    surrogate_r2: float = float("nan")


class SobolImportanceEvaluator(HpiImportanceEvaluator[SobolResult]):
    """Variance-based (Sobol') importance of a gradient-boosted-trees surrogate.

    The surrogate is fitted to the usable trials; its Sobol' indices are then estimated on a
    scrambled Sobol' design (Saltelli 2010 first-order, Jansen 1999 total-order, Saltelli 2002
    second-order estimators) under the measure ``RandomSampler`` draws from. Conditional
    parameters are sampled over their whole range regardless of their parents, so a child's
    index is its effect where it is active.

    ``evaluate()`` returns the index chosen by ``index``, clipped at 0; :meth:`analyze` returns
    first, total and (optionally) pairwise indices with bootstrap intervals.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import SobolImportanceEvaluator


            def objective(trial):
                x = trial.suggest_float("x", -1, 1)
                lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
                return x**2 + (lr < 1e-3)


            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=100)
            evaluator = SobolImportanceEvaluator(seed=0)
            print(optuna.importance.get_param_importances(study, evaluator=evaluator))
            result = evaluator.analyze(study, n_bootstrap=5)
            print(result.first, result.total_intervals)

    Args:
        index: ``"first"`` (default: the main-effect share) or ``"total"`` (including
            interactions) for ``evaluate()``.
        pairwise: Also estimate second-order indices in :meth:`analyze` (costs D more
            surrogate evaluations of the design).
        n_samples: Base size N of the quasi-random design (rounded up to a power of 2);
            ``N * (D + 2)`` surrogate predictions, ``N * (2D + 2)`` with ``pairwise``.
        n_bootstrap: Default number of surrogate refits on bootstrap resamples of the trials
            for the intervals of :meth:`analyze` (``evaluate()`` never bootstraps).
        confidence: Level of the intervals.
        surrogate: Surrogate settings (default: boosting iterations scaled with the number of
            trials, see :class:`SurrogateConfig`).
        seed: Seed of the design and the surrogate; ``None`` draws one at construction, so
            that one instance is always deterministic.
    """

    def __init__(
        self,
        *,
        index: Literal["first", "total"] = "first",
        pairwise: bool = False,
        n_samples: int = 2048,
        n_bootstrap: int = 30,
        confidence: float = 0.95,
        surrogate: SurrogateConfig | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed, n_bootstrap=n_bootstrap, confidence=confidence)
        if index not in ("first", "total"):
            raise ValueError(f"`index` must be 'first' or 'total', got {index!r}.")
        if surrogate is not None and not isinstance(surrogate, SurrogateConfig):
            raise TypeError("`surrogate` must be a SurrogateConfig or None.")
        self._index = index
        self._pairwise = bool(pairwise)
        n = check_positive_int("n_samples", n_samples, minimum=16)
        self._n_samples = 1 << (n - 1).bit_length()
        self._surrogate = surrogate or SCALED

    def _statistics(self, data: EncodedTrials) -> Stats:
        model = Surrogate(data, self._surrogate, self._seed)
        return sobol_indices(model.predict, data, self._n_samples, self._seed, self._pairwise)

    def _result(
        self,
        data: EncodedTrials,
        live: list[int],
        point: Stats | None,
        intervals: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> SobolResult:
        get = (lambda k: None) if point is None else point.get
        first = expand(data, live, get("first"))
        total = expand(data, live, get("total"))
        pairs = list(itertools.combinations([data.specs[j].name for j in live], 2))
        pairwise: dict[tuple[str, str], float] = {}
        pairwise_intervals: dict[tuple[str, str], Interval] = {}
        if point is not None and "pairwise" in point:
            pairwise = {p: float(v) for p, v in zip(pairs, point["pairwise"])}
            if "pairwise" in intervals:
                lo, hi = intervals["pairwise"]
                pairwise_intervals = {p: (float(a), float(b)) for p, a, b in zip(pairs, lo, hi)}
        first_iv = expand_intervals(data, live, intervals.get("first"))
        total_iv = expand_intervals(data, live, intervals.get("total"))
        return SobolResult(
            method=f"sobol_{self._index}",
            values=first if self._index == "first" else total,
            intervals=first_iv if self._index == "first" else total_iv,
            confidence=self._confidence,
            n_trials=data.n_trials,
            response=data.response,
            first=first,
            total=total,
            pairwise=pairwise,
            first_intervals=first_iv,
            total_intervals=total_iv,
            pairwise_intervals=pairwise_intervals,
        )

    def _range(self, key: str) -> tuple[float, float]:
        # S1 and ST are shares of the variance; S_ij is a difference of them.
        return (0.0, 1.0) if key in ("first", "total") else (-1.0, 1.0)

    def _widen(
        self,
        key: str,
        point: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        r2: float,
        data: EncodedTrials,
    ) -> Bounds:
        return widen_by_fit(low, high, r2)

    def _fit_quality(self, data: EncodedTrials) -> float:
        return cross_validated_r2(data, self._surrogate, self._seed)

    def _with_diagnostics(self, result: SobolResult, r2: float) -> SobolResult:
        return dataclasses.replace(result, surrogate_r2=r2)


#: Share of the variance the surrogate misses (1 - CV R^2) that the upper bound of an index
#: interval may gain. 1 would be the worst case (all of it belongs to one parameter). Measured
#: with ``benchmarks/bench_coverage.py`` (Ishigami, G-function, mixed types; 300 and 1000
#: trials; seeds 0-9, 50 refits): lowest cell coverage 0.63 with no widening, 0.93 with half,
#: 0.96 with all of it, at 1.1-1.5x the width; half kept every cell >= 90 % (0.95-1.00
#: on the fresh seeds 200-209 of the table in ``benchmarks/RESULTS.md``).
UNEXPLAINED_SHARE = 0.5


def widen_by_fit(low: np.ndarray, high: np.ndarray, r2: float) -> Bounds:
    """Propagate the surrogate's cross-validated error ``1 - r2`` into index intervals.

    The indices of the surrogate are shares of the variance it explains, about ``r2`` of the
    objective's. Writing ``f = f_hat + e``, the index of ``f`` is ``r2 * S(f_hat) + (1 - r2) *
    S(e)`` up to covariance terms, with the residual's own index ``S(e)`` unknown in [0, 1].
    Bounds are therefore scaled by ``r2`` and the upper one gains ``UNEXPLAINED_SHARE * (1 -
    r2)``. A ``nan`` R^2 (fewer than 10 trials, too few to cross-validate) leaves the bounds as
    they are; the evaluators warn about so few trials instead.
    """
    if not math.isfinite(r2):
        return low, high
    fit = float(np.clip(r2, 0.0, 1.0))
    return fit * low, fit * high + UNEXPLAINED_SHARE * (1.0 - fit)


def sobol_indices(
    predict: Callable[[np.ndarray], np.ndarray],
    data: EncodedTrials,
    n_samples: int,
    seed: int,
    pairwise: bool = False,
) -> Stats:
    """Sobol' indices of ``predict`` under the measure of ``data``'s parameters.

    Returns ``first`` (Saltelli 2010), ``total`` (Jansen 1999) and optionally ``pairwise``
    second-order indices (Saltelli 2002, pairs in ``itertools.combinations`` order), each
    normalised by the variance of the prediction over the design.
    """
    d = len(data.specs)
    u = qmc.Sobol(2 * d, scramble=True, seed=seed).random(n_samples)
    a = data.sample_measure(u[:, :d])
    b = data.sample_measure(u[:, d:])
    blocks = [a, b]
    for i in range(d):
        ab = a.copy()
        ab[:, i] = b[:, i]
        blocks.append(ab)
    if pairwise:
        for i in range(d):
            ba = b.copy()
            ba[:, i] = a[:, i]
            blocks.append(ba)
    y = predict(np.vstack(blocks)).reshape(len(blocks), n_samples)
    f_a, f_b, f_ab = y[0], y[1], y[2 : 2 + d]
    var = float(np.var(np.concatenate([f_a, f_b])))
    if var <= 0.0:
        zeros = np.zeros(d)
        out = {"first": zeros, "total": zeros.copy()}
        if pairwise:
            out["pairwise"] = np.zeros(d * (d - 1) // 2)
        return out
    out = {
        "first": np.mean(f_b * (f_ab - f_a), axis=1) / var,
        "total": 0.5 * np.mean((f_a - f_ab) ** 2, axis=1) / var,
    }
    if pairwise:
        f_ba = y[2 + d :]
        first = out["first"]
        mean_ab = float(np.mean(f_a * f_b))
        out["pairwise"] = np.array(
            [
                (np.mean(f_ba[i] * f_ab[j]) - mean_ab) / var - first[i] - first[j]
                for i, j in itertools.combinations(range(d), 2)
            ]
        )
    return out
