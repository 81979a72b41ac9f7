"""Stage specifications, the built-in presets and the parameter-name roles they use."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import math
import re
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


#: Role of parameters whose name says "learning rate" (whole lower-cased name).
LEARNING_RATE = "learning_rate"
#: Role of regularization-like parameters (weight decay, penalties, dropout, depth).
REGULARIZATION = "regularization"
#: Role of every other parameter.
OTHER = "other"

_LR_NAMES = frozenset(
    {"learning_rate", "lr", "eta", "learning_rate_init", "lr_init", "base_lr", "initial_lr"}
)
# A name has the regularization role when one of its ``_``/``.``/``-`` separated tokens (or the
# whole name) is listed here.
_REG_TOKENS = frozenset(
    {
        "weight_decay",
        "decay",
        "wd",
        "alpha",
        "l1",
        "l2",
        "lambda",
        "lambda_l1",
        "lambda_l2",
        "reg",
        "regularization",
        "penalty",
        "dropout",
        "drop",
        "depth",
        "c",
        "gamma",
        "min_child_weight",
        "min_samples_leaf",
        "min_samples_split",
        "min_data_in_leaf",
        "subsample",
        "colsample_bytree",
    }
)


def infer_role(name: str) -> str:
    """The role of a parameter from its name alone.

    ``learning_rate`` for ``learning_rate``, ``lr``, ``eta``, ``learning_rate_init`` (and names
    ending in ``_lr`` or ``learning_rate``); ``regularization`` when the name or one of its
    ``_``/``.``/``-`` separated tokens is a regularization word (``weight_decay``, ``alpha``,
    ``l1``, ``l2``, ``lambda``, ``dropout``, ``depth``, ``C``, ``gamma``, ``subsample``, ...);
    ``other`` otherwise.
    """
    lower = name.lower()
    if lower in _LR_NAMES or lower.endswith("_lr") or lower.endswith("learning_rate"):
        return LEARNING_RATE
    tokens = set(re.split(r"[_.\-]", lower))
    if lower in _REG_TOKENS or tokens & _REG_TOKENS:
        return REGULARIZATION
    return OTHER


def default_value(distribution: BaseDistribution) -> Any:
    """The documented default of a parameter the user gave no default for.

    The centre of the range on the sampler's scale (geometric mean for ``log=True``), snapped
    to the int/step grid; the first choice of a categorical.
    """
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    assert isinstance(distribution, (FloatDistribution, IntDistribution))
    low, high = distribution.low, distribution.high
    centre = math.sqrt(low * high) if distribution.log else 0.5 * (low + high)
    if distribution.step is not None:
        k = round((centre - low) / distribution.step)
        centre = low + k * distribution.step
        centre = min(max(centre, low), high)
    if isinstance(distribution, IntDistribution):
        return int(min(max(round(centre), low), high))
    return float(min(max(centre, low), high))


@dataclass(frozen=True)
class Stage:
    """One stage of a staged search: its trial budget and which parameters it may move.

    A parameter is *free* in a stage when ``params`` and ``roles`` are both ``None`` (every
    parameter), when its name is in ``params``, or when its role (see :func:`infer_role` and
    the ``roles`` argument of :class:`~optuna_hpi.StagedSampler`) is in ``roles``. Parameters
    that are not free are *held*: at the value of the best earlier trial in which they were
    free, or at their default if they never were (the user's ``defaults`` or
    :func:`default_value`). Because held parameters are decided by name, the first trial can
    discover the search space: nothing needs to be known before the objective runs.

    The plan of a stage (every stage but the first) is computed from the previous stage's
    trials: parameters whose importance interval lies entirely below the sampler's
    ``freeze_below`` are frozen at their best value when ``freeze`` is set; numeric parameters
    whose interval lies entirely above ``narrow_above`` get a narrowed range around the best
    trials when ``narrow`` is set (a range narrowed by an earlier plan is carried over).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import Stage
            from optuna_hpi import StagedStudy


            def objective(trial):
                lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
                wd = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
                return (lr - 0.01) ** 2 + 0.01 * wd


            study = optuna.create_study()
            stages = [
                Stage(10, roles=("learning_rate",), name="lr"),
                Stage(10, name="all"),
            ]
            StagedStudy(study, stages).optimize(objective)

    Args:
        n_trials: Trial budget of the stage (trial numbers, failed and pruned trials included).
        params: Names of the free parameters.
        roles: Roles of the free parameters (``"learning_rate"``, ``"regularization"``,
            ``"other"`` or any role given in the sampler's ``roles`` mapping).
        freeze: Freeze parameters the previous stage found confidently unimportant.
        narrow: Narrow numeric parameters the previous stage found confidently important.
        name: Label shown in plans and logs.
    """

    n_trials: int
    params: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    freeze: bool = False
    narrow: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.n_trials, bool) or not isinstance(self.n_trials, int):
            raise TypeError(f"Stage `n_trials` must be an int, got {self.n_trials!r}.")
        if self.n_trials < 1:
            raise ValueError(f"Stage `n_trials` must be >= 1, got {self.n_trials}.")
        for field_name in ("params", "roles"):
            value = getattr(self, field_name)
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise TypeError(
                    f"Stage `{field_name}` must be a tuple of str, got {value!r}; "
                    f"write {field_name}=({value!r},) for a single entry."
                )
            if not all(isinstance(v, str) for v in value):
                raise TypeError(f"Stage `{field_name}` must contain str only, got {value!r}.")
            object.__setattr__(self, field_name, tuple(value))

    def is_free(self, name: str, roles: Mapping[str, str]) -> bool:
        """Whether the stage's spec lets ``name`` move (before any importance-based freeze)."""
        if self.params is None and self.roles is None:
            return True
        if self.params is not None and name in self.params:
            return True
        return self.roles is not None and roles.get(name, infer_role(name)) in self.roles

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_trials": self.n_trials,
            "params": list(self.params) if self.params is not None else None,
            "roles": list(self.roles) if self.roles is not None else None,
            "freeze": self.freeze,
            "narrow": self.narrow,
            "name": self.name,
        }


def three_stage(n_trials: Sequence[int]) -> list[Stage]:
    """Learning rate -> learning rate (narrowed) + regularization -> every parameter."""
    n = _check_budgets(n_trials, 3)
    # The last stage searches the user's full ranges so that every parameter can move again: a
    # range narrowed while the other parameters sat at their defaults can exclude the joint
    # optimum (kc1 in benchmarks/RESULTS.md; on average the two rules are indistinguishable).
    return [
        Stage(n[0], roles=(LEARNING_RATE,), narrow=False, name="learning_rate"),
        Stage(n[1], roles=(LEARNING_RATE, REGULARIZATION), name="regularization"),
        Stage(n[2], narrow=False, name="fine_tune"),
    ]


def importance_driven(n_trials: Sequence[int]) -> list[Stage]:
    """Explore everything -> freeze unimportant / narrow important -> every parameter again."""
    n = _check_budgets(n_trials, 3)
    return [
        Stage(n[0], narrow=False, name="explore"),
        Stage(n[1], freeze=True, name="focus"),
        Stage(n[2], narrow=False, name="final"),
    ]


def _check_budgets(n_trials: Sequence[int], count: int) -> list[int]:
    if isinstance(n_trials, (str, bytes)) or not isinstance(n_trials, Sequence):
        raise TypeError(f"`n_trials` must be a tuple of {count} ints, got {n_trials!r}.")
    if len(n_trials) != count:
        raise ValueError(
            f"`n_trials` must give {count} stage budgets, e.g. (20, 30, 50); got {n_trials!r}."
        )
    return [int(v) for v in n_trials]
