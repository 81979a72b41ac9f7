"""The shared trial-encoding layer.

Every evaluator, the report and the staged driver turn trials into numbers here and nowhere
else. The layer decides

* which trials count (``COMPLETE`` with a finite response),
* which parameters are assessed (and raises the argument errors Optuna's evaluators raise),
* the response (``target``, the study direction, or a Pareto rank for multi-objective studies),
  always oriented so that *lower is better*,
* a numeric matrix with one column per parameter and per-column metadata (:class:`ParamSpec`):
  the measure ``RandomSampler`` draws from, grids of int/step parameters, categorical codes,
  conditional activity and the union of dynamic ranges.

Encoded scale: floats and ints are stored on their transformed scale (natural log for
``log=True``), categoricals as the index of the choice. An inactive conditional parameter is
``NaN`` in :attr:`EncodedTrials.X`; :meth:`EncodedTrials.filled` gives the surrogate-ready matrix
in which inactive entries get an explicit out-of-range code.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
import math
from typing import Any
from typing import Literal
from typing import TYPE_CHECKING
import warnings

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState


if TYPE_CHECKING:
    from optuna.study import Study

#: A conditional parameter is assessed by default (``params=None``) when it is active in at least
#: this many usable trials: with fewer there is nothing to tell its effect from noise. Parameters
#: active in every usable trial are always assessed.
MIN_CONDITIONAL_TRIALS = 3

Kind = Literal["float", "int", "categorical"]

#: Marks an inactive parameter in :meth:`ParamSpec.encode_many` (``None`` is a valid choice).
INACTIVE: Any = object()


@dataclass(frozen=True)
class ParamSpec:
    """One assessed parameter: its merged distribution and the measure importances refer to.

    Attributes:
        name: Parameter name.
        distribution: The union of the distributions stored for this parameter.
        kind: ``"float"``, ``"int"`` or ``"categorical"``.
        log: Whether the encoded scale is the natural log of the value.
        low: Lower bound on the encoded scale (choice index 0 for categoricals).
        high: Upper bound on the encoded scale (last choice index for categoricals).
        grid: Encoded values of an int or stepped float parameter, else ``None``.
        weights: Probability of each grid value (or choice) under ``RandomSampler``'s measure.
        conditional: Whether the parameter is inactive in some usable trials.

    Example:

        .. code-block:: python

            import math

            import optuna
            from optuna_hpi import encode_study

            study = optuna.create_study()
            study.optimize(lambda t: t.suggest_float("lr", 1e-5, 1e-1, log=True), n_trials=5)
            spec = encode_study(study).specs[0]
            assert spec.log and math.isclose(spec.decode(spec.encode(1e-3)), 1e-3)
    """

    name: str
    distribution: BaseDistribution
    kind: Kind
    log: bool
    low: float
    high: float
    grid: np.ndarray | None = field(default=None, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    conditional: bool = False

    @property
    def single(self) -> bool:
        """Whether the parameter can take only one value (its importance is exactly 0)."""
        return self.distribution.single()

    @property
    def span(self) -> float:
        """Width of the encoded range (1 for a single-valued or one-choice parameter)."""
        width = self.high - self.low
        return width if width > 0 else 1.0

    @property
    def inactive_code(self) -> float:
        """Surrogate code for "inactive": one span below the range, or -1 for categoricals."""
        return -1.0 if self.kind == "categorical" else self.low - self.span

    def encode(self, value: Any) -> float:
        """Encode one external parameter value."""
        if self.kind == "categorical":
            assert isinstance(self.distribution, CategoricalDistribution)
            return float(self.distribution.to_internal_repr(value))
        return math.log(value) if self.log else float(value)

    def encode_many(self, values: Sequence[Any]) -> np.ndarray:
        """Encode many external values at once; :data:`INACTIVE` becomes ``NaN``."""
        if self.kind == "categorical":
            assert isinstance(self.distribution, CategoricalDistribution)
            index = {_choice_key(c): float(i) for i, c in enumerate(self.distribution.choices)}
            return np.array(
                [np.nan if v is INACTIVE else index[_choice_key(v)] for v in values], dtype=float
            )
        out = np.array([np.nan if v is INACTIVE else v for v in values], dtype=float)
        return np.log(out) if self.log else out

    def decode(self, encoded: float) -> Any:
        """Turn an encoded value back into an external value (snapped to the grid)."""
        if self.kind == "categorical":
            assert isinstance(self.distribution, CategoricalDistribution)
            return self.distribution.choices[int(round(encoded))]
        if self.grid is not None:
            encoded = float(self.grid[np.argmin(np.abs(self.grid - encoded))])
        value = math.exp(encoded) if self.log else float(encoded)
        if self.kind == "int":
            return int(round(value))
        d = self.distribution
        assert isinstance(d, FloatDistribution)
        return float(min(max(value, d.low), d.high))

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map uniform draws in [0, 1) to encoded values distributed as ``RandomSampler``'s."""
        u = np.clip(u, 0.0, np.nextafter(1.0, 0.0))
        if self.grid is not None:
            assert self.weights is not None
            index = np.searchsorted(np.cumsum(self.weights), u, side="right")
            return self.grid[np.minimum(index, len(self.grid) - 1)]
        return self.low + u * (self.high - self.low)

    def to_unit(self, encoded: np.ndarray) -> np.ndarray:
        """Scale encoded values to [0, 1] by the search-space range (not the data range)."""
        if self.single:
            return np.zeros_like(encoded)
        return (encoded - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class EncodedTrials:
    """Usable trials of a study as a matrix, with the response to explain.

    Attributes:
        trials: The usable trials (``COMPLETE``, finite response), in trial-number order.
        specs: One :class:`ParamSpec` per assessed parameter, in :attr:`params` order.
        X: ``(n_trials, n_params)`` encoded values, ``NaN`` where a parameter is inactive.
        y: ``(n_trials,)`` response, oriented so that lower is better.
        response: How :attr:`y` was made: ``"target"``, ``"objective"`` or ``"pareto_rank"``.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import encode_study

            study = optuna.create_study(direction="maximize")
            study.optimize(lambda t: t.suggest_int("n", 1, 9), n_trials=5)
            data = encode_study(study)
            assert data.params == ["n"] and (data.y == -data.X[:, 0]).all()
    """

    trials: list[FrozenTrial]
    specs: list[ParamSpec]
    X: np.ndarray
    y: np.ndarray
    response: str

    @property
    def params(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    def filled(self) -> np.ndarray:
        """``X`` with inactive entries set to each parameter's ``inactive_code``."""
        codes = np.array([s.inactive_code for s in self.specs], dtype=float)
        return np.where(np.isnan(self.X), codes, self.X)

    def unit(self) -> np.ndarray:
        """``X`` scaled to [0, 1] per column by the search-space range; ``NaN`` stays ``NaN``."""
        if not self.specs:
            return np.empty((self.n_trials, 0))
        return np.column_stack([s.to_unit(self.X[:, j]) for j, s in enumerate(self.specs)])

    def sample_measure(self, u: np.ndarray) -> np.ndarray:
        """Map a ``(n, n_params)`` array of uniform draws to encoded points of the measure."""
        return np.column_stack([s.from_unit(u[:, j]) for j, s in enumerate(self.specs)])

    def select(self, columns: Sequence[int]) -> EncodedTrials:
        """The same trials restricted to some parameters (columns)."""
        cols = list(columns)
        return EncodedTrials(
            trials=self.trials,
            specs=[self.specs[j] for j in cols],
            X=self.X[:, cols],
            y=self.y,
            response=self.response,
        )

    def subset(self, rows: np.ndarray) -> EncodedTrials:
        """The same encoding restricted to some rows (bootstrap resamples, subsamples)."""
        return EncodedTrials(
            trials=[self.trials[i] for i in rows],
            specs=self.specs,
            X=self.X[rows],
            y=self.y[rows],
            response=self.response,
        )


def _choice_key(value: Any) -> tuple[type, Any]:
    # Choices may be unhashable-looking but are None/bool/int/float/str in Optuna; the type is
    # part of the key because True == 1 == 1.0 would otherwise collide; NaN != NaN needs one
    # canonical key.
    if isinstance(value, float) and math.isnan(value):
        return (float, "nan")
    return (type(value), value)


def check_params_arg(params: Any) -> list[str] | None:
    """Validate the ``params`` argument of ``evaluate`` and return it as a list."""
    if params is None:
        return None
    if not isinstance(params, (list, tuple)):
        raise TypeError(
            f"`params` must be a list or tuple of parameter names, got {type(params).__name__}: "
            f"{params!r}. Pass e.g. params=['x', 'y'] or params=None for all parameters."
        )
    bad = [p for p in params if not isinstance(p, str)]
    if bad:
        raise TypeError(
            f"`params` must contain parameter names as str; got {bad!r} in {params!r}."
        )
    duplicated = sorted({p for p in params if list(params).count(p) > 1})
    if duplicated:
        raise ValueError(f"`params` names {duplicated} more than once; list each name once.")
    return list(params)


def encode_study(
    study: Study,
    params: Sequence[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
) -> EncodedTrials:
    """Encode the usable trials of ``study``; the one entry point evaluators call.

    Args:
        study: The study to read.
        params: Names to assess; ``None`` assesses every parameter active in all usable trials
            plus conditional ones active in at least :data:`MIN_CONDITIONAL_TRIALS` of them.
        target: Optional function of a trial giving the response. Required for a meaningful
            single-objective reading of a multi-objective study; without it such studies are
            explained through the non-domination rank of each trial (0 = Pareto front).

    Raises:
        TypeError: ``params`` is not a list/tuple of str.
        ValueError: a name in ``params`` is absent from every completed trial, or its stored
            distributions cannot be merged.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return encode_trials(trials, study.directions, params, target)


def encode_trials(
    trials: Sequence[FrozenTrial],
    directions: Sequence[StudyDirection],
    params: Sequence[str] | None = None,
    target: Callable[[FrozenTrial], float] | None = None,
) -> EncodedTrials:
    """Encode a list of trials (see :func:`encode_study`); non-complete trials are ignored."""
    wanted = check_params_arg(params)
    # Trial-number order whatever order the caller gives: results that depend on row order
    # (N-RReliefF's tie rule and instance sample, bootstrap resamples) stay reproducible.
    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number
    )
    if wanted:
        seen = {name for t in complete for name in t.distributions}
        missing = [p for p in wanted if p not in seen]
        if missing:
            raise ValueError(
                f"Parameters {missing} do not appear in any completed trial; check the names or "
                "wait until trials that suggest them complete."
            )
    y, response, usable = _response(complete, directions, target)
    if wanted is None:
        names = _default_params(usable)
    else:
        # One column order whatever order `params` lists: surrogate fits and quasi-random
        # designs depend on column order, results must not depend on how the names are listed.
        names = sorted(wanted)
    stored = [t.distributions for t in usable]
    specs = []
    for name in names:
        dists = [d[name] for d in stored if name in d]
        never_active = not dists and wanted is not None
        if never_active:
            # Asked for but active only in trials without a usable response: it stays in the
            # result (importance 0) instead of silently going missing from the asked keys.
            dists = [t.distributions[name] for t in complete if name in t.distributions]
        try:
            spec = _merge_spec(name, dists, len(usable))
            if spec is not None and never_active:
                spec = replace(spec, conditional=bool(usable))
        except ValueError as err:
            if wanted is not None:
                raise
            # Mirrors Optuna's intersection search space, which leaves such parameters out.
            warnings.warn(f"{err} Leaving '{name}' out of the assessment.", stacklevel=3)
            continue
        if spec is not None:
            specs.append(spec)
    X = np.full((len(usable), len(specs)), np.nan)
    values = [t.params for t in usable]
    for j, spec in enumerate(specs):
        X[:, j] = spec.encode_many([v.get(spec.name, INACTIVE) for v in values])
    return EncodedTrials(usable, specs, X, y, response)


def _response(
    trials: list[FrozenTrial],
    directions: Sequence[StudyDirection],
    target: Callable[[FrozenTrial], float] | None,
) -> tuple[np.ndarray, str, list[FrozenTrial]]:
    if target is not None:
        values = np.array([float(target(t)) for t in trials], dtype=float)
        keep = np.isfinite(values)
        # A user target has no direction; its sign does not change any importance we compute
        # except ablation, which documents that ``target`` is minimized unless told otherwise.
        return values[keep], "target", [t for t, k in zip(trials, keep) if k]
    if len(directions) == 1:
        values = np.array([t.value for t in trials], dtype=float)
        keep = np.isfinite(values)
        sign = -1.0 if directions[0] == StudyDirection.MAXIMIZE else 1.0
        return sign * values[keep], "objective", [t for t, k in zip(trials, keep) if k]
    values = np.array([t.values for t in trials], dtype=float).reshape(len(trials), -1)
    keep = np.all(np.isfinite(values), axis=1)
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    ranks = non_domination_rank(values[keep] * signs)
    return ranks.astype(float), "pareto_rank", [t for t, k in zip(trials, keep) if k]


def non_domination_rank(loss: np.ndarray) -> np.ndarray:
    """Non-domination rank of each row of a minimization loss matrix (0 = Pareto front)."""
    n = len(loss)
    ranks = np.full(n, -1, dtype=int)
    remaining = np.arange(n)
    rank = 0
    while remaining.size:
        sub = loss[remaining]
        # Row a is dominated if some row b is <= everywhere and < somewhere.
        le = np.all(sub[None, :, :] <= sub[:, None, :], axis=2)
        lt = np.any(sub[None, :, :] < sub[:, None, :], axis=2)
        dominated = np.any(le & lt, axis=1)
        ranks[remaining[~dominated]] = rank
        remaining = remaining[dominated]
        rank += 1
    return ranks


def _default_params(trials: list[FrozenTrial]) -> list[str]:
    counts: dict[str, int] = {}
    for t in trials:
        for name in t.distributions:
            counts[name] = counts.get(name, 0) + 1
    n = len(trials)
    return sorted(name for name, c in counts.items() if c == n or c >= MIN_CONDITIONAL_TRIALS)


def _merge_spec(name: str, dists: list[BaseDistribution], n_trials: int) -> ParamSpec | None:
    if not dists:
        # Requested, but active only in trials without a usable response.
        return None
    first = dists[0]
    # Comparing attribute dicts is ~50x faster than hashing distributions (which sorts their
    # __dict__ per call) and this runs once per parameter and trial.
    reference = first.__dict__
    others = [d for d in dists if type(d) is not type(first) or d.__dict__ != reference]
    if others:
        unique = [first]
        for d in others:
            # Optuna's __eq__ on the few odd ones out: it treats NaN choices as equal.
            if not any(d == u for u in unique):
                unique.append(d)
        if len(unique) > 1:
            first = _union(name, unique)
    return _spec(name, first, conditional=len(dists) < n_trials)


def _union(name: str, dists: list[BaseDistribution]) -> BaseDistribution:
    kinds = {type(d) for d in dists}
    if len(kinds) > 1:
        raise ValueError(
            f"Parameter '{name}' was suggested with different distribution types "
            f"({sorted(k.__name__ for k in kinds)}); importances need one type per parameter. "
            "Rename one of them or pass `params` without it."
        )
    d0 = dists[0]
    if isinstance(d0, CategoricalDistribution):
        raise ValueError(
            f"Parameter '{name}' was suggested with different categorical choices; "
            "importances need one fixed set of choices. Pass `params` without it."
        )
    assert isinstance(d0, (FloatDistribution, IntDistribution))
    numeric = [d for d in dists if isinstance(d, (FloatDistribution, IntDistribution))]
    if len({(d.log, d.step) for d in numeric}) > 1:
        raise ValueError(
            f"Parameter '{name}' was suggested with different `log`/`step` settings; "
            "importances need one scale per parameter. Pass `params` without it."
        )
    if any(d.single() for d in numeric):
        # A single-valued distribution means "not searched" in Optuna. A parameter that was
        # fixed in some trials and searched in others has no single measure to integrate over.
        raise ValueError(
            f"Parameter '{name}' is fixed (single-valued distribution) in some trials and "
            "searched in others; pass `params` without it or assess the two groups separately."
        )
    low = min(d.low for d in numeric)
    high = max(d.high for d in numeric)
    if isinstance(d0, FloatDistribution):
        if d0.step is not None:
            # Grids with different lows are not aligned; keep the grid of the lowest low.
            high = low + math.floor((high - low) / d0.step + 1e-9) * d0.step
        return FloatDistribution(low, high, log=d0.log, step=d0.step)
    step = d0.step
    high = low + ((high - low) // step) * step
    return IntDistribution(int(low), int(high), log=d0.log, step=step)


def _spec(name: str, d: BaseDistribution, conditional: bool) -> ParamSpec:
    if isinstance(d, CategoricalDistribution):
        n = len(d.choices)
        return ParamSpec(
            name,
            d,
            "categorical",
            False,
            0.0,
            float(n - 1),
            grid=np.arange(n, dtype=float),
            weights=np.full(n, 1.0 / n),
            conditional=conditional,
        )
    if isinstance(d, FloatDistribution):
        if d.step is None:
            lo, hi = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
            return ParamSpec(name, d, "float", d.log, lo, hi, conditional=conditional)
        n = int(round((d.high - d.low) / d.step)) + 1
        values = d.low + d.step * np.arange(n)
        return ParamSpec(
            name,
            d,
            "float",
            False,
            float(values[0]),
            float(values[-1]),
            grid=values,
            weights=np.full(n, 1.0 / n),
            conditional=conditional,
        )
    if isinstance(d, IntDistribution):
        values = np.arange(d.low, d.high + 1, d.step, dtype=float)
        if d.log:
            # RandomSampler draws log-uniformly on [low - 0.5, high + 0.5] and rounds.
            edges = np.log(np.append(values - 0.5, values[-1] + 0.5))
            weights = np.diff(edges) / (edges[-1] - edges[0])
            grid = np.log(values)
        else:
            weights = np.full(len(values), 1.0 / len(values))
            grid = values
        return ParamSpec(
            name,
            d,
            "int",
            d.log,
            float(grid[0]),
            float(grid[-1]),
            grid=grid,
            weights=weights,
            conditional=conditional,
        )
    raise TypeError(f"Parameter '{name}' has an unsupported distribution {d!r}.")


# A numeric parent may switch a child on over at most this many intervals of its value
# (e.g. ``if 0.2 < x < 0.5``); more changes of activity along its sorted values look like noise.
MAX_ACTIVITY_CHANGES = 2


def infer_parents(data: EncodedTrials) -> list[int | None]:
    """Inferred parent column of each conditional column (``None``: unconditional or unknown).

    A column's parent is the assessed column whose value decides, in every usable trial, whether
    the column is active: any categorical whose choices map consistently to active/inactive, or
    a numeric column whose activity changes at most twice along its sorted values (the fewest
    changes wins, then the column active in fewer trials). Used by ablation (flip a parent
    with its children) and N-RReliefF (the switch is the parent's diff).
    """
    active = ~np.isnan(data.X)
    d = len(data.specs)
    parents: list[int | None] = [None] * d
    masks: dict[bytes, list[int]] = {}
    for j in range(d):
        if not active[:, j].all():
            masks.setdefault(active[:, j].tobytes(), []).append(j)
    for group in masks.values():
        mask = active[:, group[0]]
        best: tuple[int, int, int] | None = None
        for p in range(d):
            spec = data.specs[p]
            if p in group or spec.single:
                continue
            m_p = active[:, p]
            if np.any(mask & ~m_p) or np.array_equal(mask, m_p):
                continue
            changes = _activity_changes(spec, data.X[m_p, p], mask[m_p])
            if changes is None:
                continue
            key = (changes, int(m_p.sum()), p)
            if best is None or key < best:
                best = key
        if best is not None:
            for j in group:
                parents[j] = best[2]
    return parents


def _activity_changes(spec: ParamSpec, values: np.ndarray, activity: np.ndarray) -> int | None:
    """How often ``activity`` changes along the values of a candidate parent; ``None``: not a
    function of the value (or too irregular to be a condition)."""
    order = np.argsort(values, kind="stable")
    v, a = values[order], activity[order]
    unique, start = np.unique(v, return_index=True)
    a = a.astype(np.int8)
    per_value = np.minimum.reduceat(a, start)
    if np.any(per_value != np.maximum.reduceat(a, start)):
        return None
    if spec.kind == "categorical":
        # Choice order means nothing: any consistent choice -> activity map is a condition.
        return 0 if len(unique) > 1 else None
    changes = int(np.sum(np.diff(per_value) != 0))
    return changes if 0 < changes <= MAX_ACTIVITY_CHANGES else None
