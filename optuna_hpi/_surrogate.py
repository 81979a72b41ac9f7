"""The one tree-ensemble surrogate of the package: fit, predict, refits and accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from optuna_hpi._encoding import EncodedTrials


# HistGradientBoosting bins categorical codes; above this many choices a categorical is
# treated as an ordinal code instead (trees still isolate any choice with two splits).
_MAX_NATIVE_CATEGORIES = 254
# scikit-learn never splits a native categorical node on a category seen in fewer than 10
# trials (MIN_CAT_SUPPORT): with fewer trials per choice a 50-choice parameter was invisible
# (importance 0 while it explained everything), so such categoricals are ordinal codes too.
_MIN_CATEGORY_SUPPORT = 10


@dataclass(frozen=True)
class SurrogateConfig:
    """Settings of the gradient-boosted-trees surrogate.

    Boosted trees rather than a random forest: a variance decomposition needs the surrogate to
    keep the amplitude of each main effect, which averaging forests shrink.

    Attributes:
        max_iter: Boosting iterations; ``None`` scales them with the number of trials n:
            ``clip(n // 25, 40, 200)`` (the Sobol' evaluator's default, :data:`SCALED`). Measured
            on the Sobol' benchmark (Ishigami + 2 inert, G-function d=8, log indicator; 5-8
            seeds), 40 iterations at learning rate 0.3 gave Sobol' indices as accurate as 200
            at 0.1 at 200, 500 and 1000 trials (max |S1 error| 0.062 vs 0.075 at 200, 0.019 vs
            0.021 at 1000) in a fifth of the time. Ablation needs accurate predictions near
            the best trial and lost accuracy with it (rank correlation with the true path 0.98
            -> 0.74 on a 6-D quadratic at 1000 trials), so it keeps 200.
        learning_rate: Shrinkage per iteration; ``None``: ``12 / max_iter`` clipped to
            ``[0.1, 0.3]`` (0.3 at 40 iterations, 0.1 at 120 or more).
        max_leaf_nodes: Leaves per tree.
        min_samples_leaf: Minimum trials per leaf; ``None`` scales it with the number of trials
            (``n // 40`` clipped to ``[1, 20]``) so that tiny studies still get splits.
        n_threads: OpenMP threads for fitting and prediction. One by default: with any other
            load on the machine (``n_jobs > 1``, several workers) multi-threaded boosting was
            measured 20-40x slower on 2 cores because of OpenMP spin-waiting.

    Example:

        .. code-block:: python

            from optuna_hpi import SobolImportanceEvaluator
            from optuna_hpi import SurrogateConfig

            evaluator = SobolImportanceEvaluator(surrogate=SurrogateConfig(max_iter=400))
    """

    max_iter: int | None = 200
    learning_rate: float | None = 0.1
    max_leaf_nodes: int = 15
    min_samples_leaf: int | None = None
    n_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("max_iter", "max_leaf_nodes"):
            value = getattr(self, name)
            if name == "max_iter" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"`{name}` must be an int >= 2, got {value!r}.")
        if self.learning_rate is not None and not 0.0 < self.learning_rate <= 1.0:
            raise ValueError(f"`learning_rate` must be in (0, 1], got {self.learning_rate!r}.")
        if not isinstance(self.n_threads, int) or self.n_threads < 1:
            raise ValueError(f"`n_threads` must be an int >= 1, got {self.n_threads!r}.")
        if self.min_samples_leaf is not None and self.min_samples_leaf < 1:
            raise ValueError(f"`min_samples_leaf` must be >= 1, got {self.min_samples_leaf!r}.")

    def boosting(self, n_trials: int) -> tuple[int, float]:
        """``(max_iter, learning_rate)`` used for a fit on ``n_trials`` trials."""
        iterations = self.max_iter or int(np.clip(n_trials // 25, 40, 200))
        rate = self.learning_rate or float(np.clip(12.0 / iterations, 0.1, 0.3))
        return iterations, rate


#: Boosting scaled with the number of trials: the Sobol' evaluator's default surrogate.
SCALED = SurrogateConfig(max_iter=None, learning_rate=None)


class Surrogate:
    """Gradient-boosted trees on the encoded trials of an :class:`EncodedTrials`.

    Inactive conditional entries arrive as their explicit out-of-range code
    (:meth:`EncodedTrials.filled`); categoricals are native categorical features when there
    are at least 10 trials per choice, ordinal codes otherwise.
    """

    def __init__(self, data: EncodedTrials, config: SurrogateConfig, seed: int) -> None:
        n = data.n_trials
        leaf = config.min_samples_leaf or int(np.clip(n // 40, 1, 20))
        categorical = [
            s.kind == "categorical"
            and len(s.distribution.choices) <= _MAX_NATIVE_CATEGORIES  # type: ignore[attr-defined]
            and n >= _MIN_CATEGORY_SUPPORT * len(s.distribution.choices)  # type: ignore[attr-defined]
            for s in data.specs
        ]
        iterations, rate = config.boosting(n)
        self._model = HistGradientBoostingRegressor(
            max_iter=iterations,
            learning_rate=rate,
            max_leaf_nodes=config.max_leaf_nodes,
            min_samples_leaf=leaf,
            categorical_features=np.array(categorical, dtype=bool) if any(categorical) else None,
            early_stopping=False,
            random_state=seed,
        )
        self._config = config
        self._seed = seed
        with threadpool_limits(config.n_threads, user_api="openmp"):
            self._model.fit(data.filled(), data.y)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict the response for surrogate-ready (``filled``) encoded rows."""
        with threadpool_limits(self._config.n_threads, user_api="openmp"):
            return np.asarray(self._model.predict(X), dtype=float)


def cross_validated_r2(
    data: EncodedTrials, config: SurrogateConfig, seed: int, n_folds: int = 5
) -> float:
    """K-fold cross-validated R^2 of the surrogate; ``nan`` below ``2 * n_folds`` trials."""
    n = data.n_trials
    if n < 2 * n_folds or np.ptp(data.y) == 0:
        return float("nan")
    order = np.random.default_rng(seed).permutation(n)
    pred = np.empty(n)
    for test in np.array_split(order, n_folds):
        train = np.setdiff1d(order, test)
        pred[test] = Surrogate(data.subset(train), config, seed).predict(
            data.subset(test).filled()
        )
    ss_tot = float(np.sum((data.y - data.y.mean()) ** 2))
    return 1.0 - float(np.sum((data.y - pred) ** 2)) / ss_tot
