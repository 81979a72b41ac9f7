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


#: Role of parameters whose name says "learning rate" (``lr``, ``eta``, ``learning_rate``...).
LEARNING_RATE = "learning_rate"
#: Role of regularization-like parameters (weight decay, penalties, dropout, depth).
REGULARIZATION = "regularization"
#: Role of every other parameter.
OTHER = "other"
#: The roles :func:`infer_role` gives; a :class:`Stage` may name further roles of its own.
BUILTIN_ROLES = (LEARNING_RATE, REGULARIZATION, OTHER)

# Token phrases (consecutive name tokens) of each role, matched anywhere in the name.
_LR_PHRASES = (("lr",), ("eta",), ("learning", "rate"), ("learningrate",), ("step", "size"))
_REG_PHRASES = (
    ("weight", "decay"),
    ("decay",),
    ("wd",),
    ("alpha",),
    ("lambda",),
    ("reg",),
    ("regularization",),
    ("regularisation",),
    ("penalty",),
    ("dropout",),
    ("drop",),
    ("depth",),
    ("gamma",),
    ("min", "child"),
    ("min", "samples"),
    ("min", "data"),
    ("min", "gain"),
    ("min", "split"),
    ("subsample",),
    ("colsample",),
    ("bagging", "fraction"),
    ("feature", "fraction"),
    ("max", "features"),
    ("l1", "ratio"),
    ("label", "smoothing"),
)
# Whole names that are regularization although no token says so (scikit-learn's SVC/LogReg C).
_REG_NAMES = frozenset({"c", "l1", "l2"})


def name_tokens(name: str) -> list[str]:
    """Lower-case tokens of a parameter name: separators, case changes and digits split.

    ``"n_units_l1"`` -> ``["n", "units", "l", "1"]``; ``"baseLR"`` -> ``["base", "lr"]``;
    ``"eta0"`` -> ``["eta", "0"]``. ``"l1"``/``"l2"`` followed by ``"ratio"`` or a penalty
    word stay recognisable through :data:`_REG_PHRASES` matching on the re-joined pair.
    """
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return re.findall(r"[a-z]+|[0-9]+", spaced.lower())


def _has_phrase(tokens: list[str], phrases: Sequence[tuple[str, ...]]) -> bool:
    # "l" + "1" is re-joined so that "l1_ratio" can still match ("l1", "ratio").
    joined: list[str] = []
    for tok in tokens:
        if tok.isdigit() and joined and joined[-1] == "l":
            joined[-1] = "l" + tok
        else:
            joined.append(tok)
    for seq in (tokens, joined):
        for phrase in phrases:
            n = len(phrase)
            if any(tuple(seq[i : i + n]) == phrase for i in range(len(seq) - n + 1)):
                return True
    return False


def infer_role(name: str) -> str:
    """The role of a parameter from its name alone, by whole tokens (see :func:`name_tokens`).

    ``learning_rate`` when the tokens contain ``lr``, ``eta`` or ``learning rate`` anywhere
    (``lr``, ``base_lr``, ``lr_head``, ``eta0``, ``learning_rate_init``, ``learningRate``);
    ``regularization`` for names that are ``C``, or whose tokens contain ``weight decay``,
    ``alpha``, ``lambda``, ``reg``, ``penalty``, ``dropout``, ``depth``, ``gamma``,
    ``min child``/``min samples``/``min data``, ``subsample``, ``colsample``, ``bagging
    fraction``, ``feature fraction``, ``l1 ratio``; ``other`` otherwise (``n_units_l1``,
    ``hidden_l2``, ``batch_size``, ``num_leaves``, ``momentum``).
    """
    tokens = name_tokens(name)
    if _has_phrase(tokens, _LR_PHRASES):
        return LEARNING_RATE
    if name.lower() in _REG_NAMES or _has_phrase(tokens, _REG_PHRASES):
        return REGULARIZATION
    return OTHER


def check_roles(roles: Mapping[str, str] | None, stages: Sequence[Stage]) -> dict[str, str]:
    """Validate a ``roles`` mapping against the built-in roles and those the stages name."""
    if roles is None:
        return {}
    if not isinstance(roles, Mapping):
        raise TypeError(f"`roles` must be a mapping of parameter name to role, got {roles!r}.")
    valid = list(BUILTIN_ROLES)
    for stage in stages:
        valid += [r for r in stage.roles or () if r not in valid]
    for name, role in roles.items():
        if not isinstance(name, str) or not isinstance(role, str):
            raise TypeError(f"`roles` must map str to str, got {name!r}: {role!r}.")
        if role not in valid:
            raise ValueError(
                f"Unknown role {role!r} for parameter {name!r} in `roles`; valid roles are "
                f"{valid} (a Stage's `roles` can add more)."
            )
    return dict(roles)


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
    that are not free are *held* at their value in the best trial so far (the incumbent, among
    the finished trials the stage's plan is based on), or at their default while no trial has
    them (the user's ``defaults`` or :func:`default_value`). Because held parameters are
    decided by name, the first trial can discover the search space: nothing needs to be known
    before the objective runs.

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
        local: When > 0, a local search: every free numeric parameter not otherwise narrowed
            is searched in a window of this fraction of its range (sampler scale) around the
            incumbent's value.
        full_every: With ``local``, every ``full_every``-th trial of the stage (counted from
            its first) searches the user's full ranges instead: a fallback in case the
            incumbent sits in the wrong basin. ``0``: never.
        hold_window: When > 0, numeric parameters the stage would hold (outside
            ``params``/``roles``, or frozen as unimportant) are not held at the incumbent's
            value but searched in a window of this fraction of their range (sampler scale)
            around it: the stage still focuses on its own parameters, while the others may
            follow them (the best batch size moves with the learning rate). Categorical
            parameters are held.
    """

    n_trials: int
    params: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    freeze: bool = False
    narrow: bool = True
    name: str = ""
    local: float = 0.0
    full_every: int = 0
    hold_window: float = 0.0

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
        if not 0.0 <= self.local < 1.0:
            raise ValueError(f"Stage `local` must be in [0, 1), got {self.local!r}.")
        if not 0.0 <= self.hold_window < 1.0:
            raise ValueError(f"Stage `hold_window` must be in [0, 1), got {self.hold_window!r}.")
        if isinstance(self.full_every, bool) or not isinstance(self.full_every, int):
            raise TypeError(f"Stage `full_every` must be an int, got {self.full_every!r}.")
        if self.full_every < 0:
            raise ValueError(f"Stage `full_every` must be >= 0, got {self.full_every!r}.")

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
            "local": self.local,
            "full_every": self.full_every,
            "hold_window": self.hold_window,
        }


def warm_start_size(n_first: int) -> int:
    """Space-filling full-space trials the presets spend at the start of their first stage.

    A quarter of the first budget, between 4 and 10 (TPE's own random start-up is 10 trials).
    """
    return int(min(10, max(4, n_first // 4), max(1, n_first - 1)))


#: ``hold_window`` of the three-stage preset's learning-rate and regularization stages when
#: no ``defaults`` are given. Holding the other parameters at the best of a random warm start
#: caps what those stages can reach: on every HPOBench-NN table even the exact optimum of the
#: learning-rate line, the others held at a warm start's best or at range centres, is behind
#: flat TPE after 25 trials (``benchmarks/results_lr_line.md``). Windows of 50 %, 75 % and
#: 90 % were measured; 90 % (only the part of a range farthest from the incumbent is cut;
#: categoricals held) was the least behind TPE early and ahead of it at 100 trials on the 9-
#: to 30-parameter tables. With ``defaults`` (library defaults carry real prior knowledge) the
#: preset holds exactly: on LightGBM and SGD, holding at the defaults beat the 90 % window.
THREE_STAGE_HOLD_WINDOW = 0.9


def three_stage(
    n_trials: Sequence[int], lag: int = 0, hold_window: float = THREE_STAGE_HOLD_WINDOW
) -> list[Stage]:
    """Warm start -> learning rate -> learning rate + regularization -> every parameter.

    The first ``warm_start_size(n_trials[0])`` trials of the learning-rate budget move every
    parameter (the base sampler's space-filling start-up). In the learning-rate and
    regularization stages the other parameters stay at the best configuration found so far:
    numeric ones in a window of ``hold_window`` of their range around its values (``0``: at
    its values exactly), categorical ones at its values. The last stage searches the user's
    full ranges with every earlier trial in its model.
    """
    n = _check_budgets(n_trials, 3)
    if n[0] < 2:
        raise ValueError(
            "The first budget of `n_trials` must be >= 2 (warm start + learning rate), got "
            f"{n[0]}."
        )
    # The warm start must outlast the lag, or its plan would be made from no trial.
    warm = min(max(warm_start_size(n[0]), lag + 1), n[0] - 1)
    return [
        Stage(warm, narrow=False, name="warm_start"),
        Stage(
            n[0] - warm,
            roles=(LEARNING_RATE,),
            narrow=False,
            name="learning_rate",
            hold_window=hold_window,
        ),
        Stage(
            n[1],
            roles=(LEARNING_RATE, REGULARIZATION),
            name="regularization",
            hold_window=hold_window,
        ),
        Stage(n[2], narrow=False, name="fine_tune"),
    ]


def preset_hold_window(defaults: Mapping[str, Any] | None) -> float:
    """The three-stage preset's ``hold_window``: exact holds from the user's defaults, else
    :data:`THREE_STAGE_HOLD_WINDOW` around a warm start's best."""
    return 0.0 if defaults else THREE_STAGE_HOLD_WINDOW


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
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in n_trials):
        raise ValueError(f"`n_trials` must be ints >= 1, got {n_trials!r}.")
    return list(n_trials)
