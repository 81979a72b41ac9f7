"""What every evaluator of this package shares: argument handling, trivial cases, bootstrap."""

from __future__ import annotations

import abc
from collections.abc import Callable
import math
from typing import Generic
from typing import TYPE_CHECKING
from typing import TypeVar
import warnings

import numpy as np
from optuna.importance import BaseImportanceEvaluator
from scipy.stats import bootstrap

from optuna_hpi._encoding import encode_study
from optuna_hpi._encoding import EncodedTrials
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._result import Interval


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

R = TypeVar("R", bound=ImportanceResult)
Stats = dict[str, np.ndarray]
Bounds = tuple[np.ndarray, np.ndarray]

# Below this many usable trials a bootstrap resample is mostly duplicates; no interval is given.
MIN_BOOTSTRAP_TRIALS = 5

#: Fewer usable trials per assessed parameter than this draws a warning. Measured with Sobol'
#: total indices on G-functions (a = 0, 1, 4.5, 9, 99, ...; D = 3, 6, 12; 12 seeds of random
#: trials): the truly dominant parameter came first in 42-83 % of the studies at 1-5 trials per
#: parameter and in 92-100 % at 10 (max share error 0.12-0.21 at 10, 0.2-0.5 below).
MIN_TRIALS_PER_PARAM = 10

#: A surrogate whose cross-validated R^2 is below this draws a warning (and a flag in the
#: report). Below 0.5 the surrogate misses more of the variance than it explains, so the
#: widening of Sobol' intervals (``UNEXPLAINED_SHARE * (1 - R^2)``) exceeds 0.25 and a quarter
#: of the variance can no longer be told from nothing; on pure noise the R^2 is <= 0.
LOW_R2 = 0.5


def check_seed(seed: int | None) -> int:
    """Turn ``seed`` into a fixed int so that one instance always gives the same answer."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an int or None, got {type(seed).__name__}.")
    return int(seed)


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


class HpiImportanceEvaluator(BaseImportanceEvaluator, Generic[R], abc.ABC):
    """Base of the evaluators of this package.

    Subclasses compute named statistic vectors from encoded trials (:meth:`_statistics`) and
    build their rich result from the point estimate and bootstrap intervals (:meth:`_result`).
    Everything else lives here once: ``params``/``target`` handling through the encoding layer,
    the trivial cases of Optuna's contract (no params, <= 1 trial, constant response,
    single-valued distributions -> exactly 0) and bootstrap intervals over trial resamples.
    """

    def __init__(self, *, seed: int | None, n_bootstrap: int, confidence: float) -> None:
        self._seed = check_seed(seed)
        # A drawn seed differs between processes: StagedSampler warns about it.
        self._seed_given = seed is not None
        self._n_bootstrap = check_positive_int("n_bootstrap", n_bootstrap, minimum=0)
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}.")
        self._confidence = float(confidence)

    def evaluate(
        self,
        study: Study,
        params: list[str] | None = None,
        *,
        target: Callable[[FrozenTrial], float] | None = None,
    ) -> dict[str, float]:
        data = encode_study(study, params, target)
        return self.analyze_encoded(data, 0, diagnostics=False).importances

    def analyze(
        self,
        study: Study,
        params: list[str] | None = None,
        *,
        target: Callable[[FrozenTrial], float] | None = None,
        n_bootstrap: int | None = None,
    ) -> R:
        """Full result: raw estimates, extra statistics and bootstrap intervals.

        Args:
            study: The study to analyse.
            params: Parameters to assess (see :func:`optuna.importance.get_param_importances`).
            target: Response to explain instead of the objective value.
            n_bootstrap: Number of bootstrap resamples of the trials for the intervals
                (``None``: the constructor's value, ``0``: no intervals).
        """
        data = encode_study(study, params, target)
        return self.analyze_encoded(data, n_bootstrap)

    def analyze_encoded(
        self,
        data: EncodedTrials,
        n_bootstrap: int | None = None,
        *,
        diagnostics: bool = True,
        widen: bool = True,
    ) -> R:
        """:meth:`analyze` on already encoded trials (used by the report and StagedStudy).

        ``diagnostics=False`` skips extra cost that does not change the importances (e.g. the
        surrogate's cross-validated R^2); ``evaluate()`` uses it. The intervals use the R^2
        whenever they are computed, unless ``widen=False``: then they cover the bootstrap over
        trials only (data and refit noise, not the variance the surrogate leaves unexplained).
        The staged planner compares parameters with such intervals: widened ones add up to
        half the unexplained variance to every upper bound, so that no parameter could ever be
        frozen from a few dozen trials.
        """
        n_boot = self._n_bootstrap if n_bootstrap is None else n_bootstrap
        check_positive_int("n_bootstrap", n_boot, minimum=0)
        live = [j for j, s in enumerate(data.specs) if not s.single]
        check_evidence(data, len(live), stacklevel=4)
        if data.n_trials <= 1 or not live or np.ptp(data.y) == 0:
            return self._result(data, live, None, {})
        sub = data.select(live)
        point = self._statistics(sub)
        intervals: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        with_intervals = n_boot > 0 and data.n_trials >= MIN_BOOTSTRAP_TRIALS
        r2 = self._fit_quality(sub) if diagnostics or (with_intervals and widen) else math.nan
        if with_intervals:
            intervals = self._bootstrap(sub, point, n_boot, r2 if widen else math.nan)
        result = self._result(data, live, point, intervals)
        if diagnostics and r2 < LOW_R2:
            warnings.warn(
                f"The surrogate explains only R^2 = {r2:.2f} of the response (5-fold cross-"
                f"validation on {data.n_trials} trials): its importances may say little about "
                "the objective. Run more trials, or check whether the objective is mostly noise.",
                stacklevel=3,
            )
        return self._with_diagnostics(result, r2) if diagnostics else result

    def _fit_quality(self, data: EncodedTrials) -> float:
        """Cross-validated R^2 of the evaluator's surrogate on ``data`` (``nan``: none)."""
        return math.nan

    def _with_diagnostics(self, result: R, r2: float) -> R:
        """Add diagnostics (the surrogate's cross-validated R^2 ``r2``) to ``result``."""
        return result

    def _widen(
        self,
        key: str,
        point: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        r2: float,
        data: EncodedTrials,
    ) -> Bounds:
        """Bootstrap bounds of statistic ``key`` (estimate ``point``) widened for error the
        resampling misses."""
        return low, high

    def _range(self, key: str) -> tuple[float, float]:
        """The values statistic ``key`` can take (interval bounds are clipped to it)."""
        return -math.inf, math.inf

    def _bootstrap(
        self, data: EncodedTrials, point: Stats, n_boot: int, r2: float = math.nan
    ) -> dict[str, Bounds]:
        """Intervals from ``n_boot`` refits on bootstrap resamples of the trials.

        Each interval is the union of the percentile and the basic (reverse percentile)
        bootstrap intervals, widened by :meth:`_widen` and extended to contain the point
        estimate. Why the union: an estimate made through a surrogate is biased (trees shrink
        small effects and spread unexplained variance over the large ones), and a resample,
        with ~63 % distinct trials, is biased the same way but more. The percentile interval
        then lies on the far side of the estimate from the truth, the basic interval reflects
        it to the near side; neither alone covers (measured on Ishigami, the G-function and a
        mixed-type function at 300 and 1000 trials, 10 seeds, 50 refits: percentile 53 %,
        basic 73 %, union 82 % of the analytic Sobol' indices; ``benchmarks/bench_coverage.py``).
        """
        keys = list(point)
        sizes = [point[k].size for k in keys]

        def flat(rows: np.ndarray) -> np.ndarray:
            stats = self._statistics(data.subset(rows))
            return np.concatenate([np.ravel(stats[k]) for k in keys])

        theta = np.concatenate([np.ravel(point[k]) for k in keys])
        with warnings.catch_warnings():
            # Degenerate resamples (e.g. all-equal statistics) only widen nothing.
            warnings.simplefilter("ignore")
            resampled = bootstrap(
                (np.arange(data.n_trials),),
                flat,
                n_resamples=n_boot,
                vectorized=False,
                method="percentile",
                confidence_level=self._confidence,
                rng=np.random.default_rng(self._seed),
            )
            basic = bootstrap(
                (np.arange(data.n_trials),),
                flat,
                n_resamples=0,
                vectorized=False,
                method="basic",
                confidence_level=self._confidence,
                bootstrap_result=resampled,
            ).confidence_interval
        ci = resampled.confidence_interval
        low = np.fmin(ci.low, basic.low)
        high = np.fmax(ci.high, basic.high)
        splits = np.cumsum(sizes)[:-1]
        out = {}
        for k, lo, hi, th in zip(
            keys, np.split(low, splits), np.split(high, splits), np.split(theta, splits)
        ):
            lo, hi = self._widen(k, th, lo, hi, r2, data)
            # A reflected (basic) bound can leave the statistic's range, e.g. a share above 1.
            floor, ceiling = self._range(k)
            lo, hi = np.clip(lo, floor, ceiling), np.clip(hi, floor, ceiling)
            # The estimate always lies inside its own interval.
            lo, hi = np.fmin(lo, th), np.fmax(hi, th)
            out[k] = (lo.reshape(point[k].shape), hi.reshape(point[k].shape))
        return out

    @abc.abstractmethod
    def _statistics(self, data: EncodedTrials) -> Stats:
        """Named statistic vectors of non-single parameters; must be deterministic."""

    @abc.abstractmethod
    def _result(
        self,
        data: EncodedTrials,
        live: list[int],
        point: Stats | None,
        intervals: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> R:
        """Assemble the rich result; ``point`` is ``None`` when every importance is 0."""


def check_evidence(data: EncodedTrials, n_params: int, stacklevel: int = 2) -> None:
    """Warn (one line, what to do) when ``data`` cannot support importances of its params.

    Args:
        data: The encoded trials.
        n_params: Number of assessed parameters that can vary.
        stacklevel: Passed to :func:`warnings.warn` (the caller of the public entry point).
    """
    n = data.n_trials
    if not data.specs and n > 0:
        return  # ``params=[]``: nothing asked, nothing to warn about.
    if n == 0:
        message = (
            "No usable trials (none is COMPLETE with a finite objective value): there are no "
            "importances. Run trials, or check why they fail or return NaN."
        )
    elif n == 1:
        message = (
            "At most one usable trial: every importance is 0 (uniform once normalized). "
            "Run more trials."
        )
    elif np.ptp(data.y) == 0:
        message = (
            f"The {data.response} is the same in all {n} usable trials: no parameter has a "
            "measurable effect and every importance is 0 (uniform once normalized). Check the "
            "objective or `target`."
        )
    elif n_params and n < MIN_TRIALS_PER_PARAM * n_params:
        message = (
            f"Only {n} usable trials for {n_params} parameters: importances are unreliable "
            f"below {MIN_TRIALS_PER_PARAM} trials per parameter. Run more trials or pass "
            "fewer `params`."
        )
    else:
        return
    warnings.warn(message, stacklevel=stacklevel)


def expand(data: EncodedTrials, live: list[int], vector: np.ndarray | None) -> dict[str, float]:
    """Per-parameter dict over all assessed params; non-live (single-valued) ones get 0."""
    out = {s.name: 0.0 for s in data.specs}
    if vector is not None:
        for j, v in zip(live, vector):
            out[data.specs[j].name] = float(v)
    return out


def expand_intervals(
    data: EncodedTrials, live: list[int], bounds: tuple[np.ndarray, np.ndarray] | None
) -> dict[str, Interval]:
    if bounds is None:
        return {}
    out = {s.name: (0.0, 0.0) for s in data.specs}
    for j, lo, hi in zip(live, bounds[0], bounds[1]):
        out[data.specs[j].name] = (float(lo), float(hi))
    return out
