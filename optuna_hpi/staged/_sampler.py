"""The sampler wrapper that applies stage plans to any Optuna sampler."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import copy
import datetime
import hashlib
import json
import math
import threading
import time
from typing import Any
from typing import cast
from typing import TYPE_CHECKING

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.importance import BaseImportanceEvaluator
from optuna.samplers import BaseSampler
from optuna.samplers import CmaEsSampler
from optuna.storages import fail_stale_trials
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_hpi._surrogate import SurrogateConfig
from optuna_hpi.importance._base import HpiImportanceEvaluator
from optuna_hpi.importance._sobol import SobolImportanceEvaluator
from optuna_hpi.staged._plan import compute_plan
from optuna_hpi.staged._plan import CONFIG_KEY
from optuna_hpi.staged._plan import initial_plan
from optuna_hpi.staged._plan import PLAN_KEY
from optuna_hpi.staged._plan import PlanRules
from optuna_hpi.staged._plan import Schedule
from optuna_hpi.staged._plan import STAGE_KEY
from optuna_hpi.staged._plan import StagePlan
from optuna_hpi.staged._stage import check_roles
from optuna_hpi.staged._stage import default_value
from optuna_hpi.staged._stage import importance_driven
from optuna_hpi.staged._stage import infer_role
from optuna_hpi.staged._stage import preset_hold_window
from optuna_hpi.staged._stage import Stage
from optuna_hpi.staged._stage import three_stage


if TYPE_CHECKING:
    from optuna.study import Study

# Under Optuna's root logger, so that ``optuna.logging.set_verbosity`` and its handler apply.
_logger = optuna.logging.get_logger("optuna." + __name__)

_POLL_SECONDS = 0.2
_LOG_WAIT_SECONDS = 60.0
_CONFIG_WAIT_SECONDS = 10.0


def default_evaluator() -> SobolImportanceEvaluator:
    """The evaluator staged search uses by default.

    Total Sobol' indices (a parameter acting only through interactions is not frozen) of a
    small boosted-trees surrogate with 10 bootstrap refits; seeded so that every worker
    computes the same plan. Small because it runs once per stage on a few dozen trials.
    """
    return SobolImportanceEvaluator(
        index="total",
        n_samples=256,
        n_bootstrap=10,
        surrogate=SurrogateConfig(max_iter=30, learning_rate=0.3),
        seed=0,
    )


class _StudyView:
    """A read-only view of a study whose trials the base sampler sees filtered.

    Everything but the trial lists is delegated to the real study, so samplers that write
    system attributes (TPE's constant liar, QMC's sample ids) keep writing to the real trials.
    """

    def __init__(self, study: Study, transform: Callable[[FrozenTrial], FrozenTrial | None]):
        self._study = study
        self._transform = transform

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Any = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=False, states=states, use_cache=use_cache)
        out = [self._transform(t) for t in trials]
        kept = [t for t in out if t is not None]
        return copy.deepcopy(kept) if deepcopy else kept

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states, use_cache=False)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class StagedSampler(BaseSampler):
    """Run a study in stages that freeze, hold and narrow parameters, around any sampler.

    Stage membership is a pure function of the trial number: trials already in the study when
    the staged run starts are *history* (evidence for the first plan and for the base sampler,
    never counted in a stage's budget), and the staged run starts at stage 0 with the next
    trial (the number is stored with the configuration, so every worker and every resume
    agrees). Trials past the total budget belong to the last stage. Each stage after the
    first has a :class:`~optuna_hpi.StagePlan` computed from the finished trials numbered
    below ``stage start - lag``: held parameters take the incumbent's values, importances
    (shares with intervals) decide freezing and narrowing (see :class:`~optuna_hpi.Stage`).
    The plan is computed by one worker (the one running the stage's lowest-numbered running
    trial), stored as JSON in the study's user attributes, and read back by every other
    worker, so workers on one RDB/Journal storage agree without a coordinator and a killed
    run resumes from the storage alone. Each trial records its stage in the trial user
    attribute ``"optuna_hpi:stage"``.

    How a plan is applied, so that every Optuna tool keeps working:

    * frozen/held parameters are returned from :meth:`sample_independent` and never reach the
      base sampler; the stored distribution is the one the objective passed;
    * a narrowed parameter is sampled by the base sampler from a narrowed *copy* of the user's
      distribution (clipped to it and aligned to its int/step grid); a range that would have a
      single value is frozen instead; categorical choices are never reduced;
    * the base sampler sees every finished trial, but a value that was held or frozen is
      shown as an uninformative draw from the user's distribution (deterministic per trial
      and parameter): a parameter that becomes free again is not pulled back to the value it
      was held at (the "unfreezing trap"), while a multivariate base sampler keeps every
      trial in its joint model. While a parameter is narrowed, trials whose value lies
      outside the narrowed range are not shown for it.

    Not supported: :class:`~optuna.samplers.CmaEsSampler` (its single optimizer cannot change
    dimension between stages; it raises ``TypeError`` here). Use TPE, Random, QMC or GP.

    Waiting: a stage's plan needs every trial numbered below ``start - lag`` to be finished; a
    worker that reaches the stage earlier waits (logging every minute which trials it awaits).
    With RDB heartbeats (``heartbeat_interval``), Optuna's own stale-trial check fails trials
    of dead workers. Without them nothing expires unless you opt in with ``stale_after``.
    When every awaited trial was asked by this very thread and is still unfinished (a batch of
    ``study.ask()`` calls), waiting could never end: the plan is then made from the finished
    trials and records the others in :attr:`~optuna_hpi.StagePlan.excluded`.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import Stage
            from optuna_hpi import StagedSampler

            sampler = StagedSampler(
                optuna.samplers.TPESampler(seed=0),
                [Stage(10, roles=("learning_rate",)), Stage(10)],
            )
            study = optuna.create_study(sampler=sampler)
            for _ in range(20):
                trial = study.ask()
                lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
                units = trial.suggest_int("units", 8, 128, log=True)
                study.tell(trial, (lr - 0.01) ** 2 + 1.0 / units)
            print(sampler.plans(study)[1])

    Args:
        base_sampler: The sampler that samples free parameters (``None``: TPE).
        stages: The stages, in order.
        evaluator: Importance evaluator for the plans (default: :func:`default_evaluator`).
            Only one worker computes each plan, but give this package's evaluators a ``seed``
            anyway so that a rerun reproduces it (a warning says so otherwise).
        roles: Role of parameters by name, overriding :func:`~optuna_hpi.staged.infer_role`;
            a role must be built in or named by a stage (else ``ValueError``).
        defaults: Value of parameters held before any trial has them (the presets start with
            a full-space warm start, so defaults rarely matter; the first staged trial
            evaluates them when given); others use :func:`~optuna_hpi.staged.default_value`.
        lag: A stage's plan uses the trials numbered below ``start - lag``; set it to the
            number of concurrent workers or more so that workers rarely wait.
        rules: Thresholds of freezing and narrowing.
        stale_after: Opt-in: seconds after which another process's ``RUNNING`` trial that
            blocks a plan is marked failed. Use it only if no trial ever runs longer than
            this (a live trial marked failed loses its result). ``None`` (default): wait.
    """

    def __init__(
        self,
        base_sampler: BaseSampler | None,
        stages: Sequence[Stage],
        *,
        evaluator: BaseImportanceEvaluator | None = None,
        roles: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        lag: int = 0,
        rules: PlanRules | None = None,
        stale_after: float | None = None,
    ) -> None:
        if base_sampler is None:
            base_sampler = optuna.samplers.TPESampler()
        if not isinstance(base_sampler, BaseSampler):
            raise TypeError(f"`base_sampler` must be an Optuna sampler, got {base_sampler!r}.")
        if isinstance(base_sampler, StagedSampler):
            raise TypeError("`base_sampler` is already a StagedSampler; do not nest them.")
        if isinstance(base_sampler, CmaEsSampler):
            raise TypeError(
                "StagedSampler does not support CmaEsSampler: CMA-ES keeps one optimizer per "
                "study and falls back to random sampling for the rest of the study once the "
                "number of free parameters changes between stages. Use TPESampler, "
                "GPSampler, QMCSampler or RandomSampler as the base sampler."
            )
        stages = list(stages)
        if not stages or not all(isinstance(s, Stage) for s in stages):
            raise TypeError("`stages` must be a non-empty list of optuna_hpi.Stage.")
        if isinstance(lag, bool) or not isinstance(lag, int) or lag < 0:
            raise ValueError(f"`lag` must be an int >= 0, got {lag!r}.")
        too_small = [i for i, s in enumerate(stages[:-1]) if s.n_trials <= lag]
        if too_small:
            raise ValueError(
                f"`lag`={lag} leaves stage(s) {too_small} no trial to plan from; use a lag "
                "smaller than every stage's n_trials."
            )
        if evaluator is not None and not isinstance(evaluator, BaseImportanceEvaluator):
            raise TypeError(f"`evaluator` must be an importance evaluator, got {evaluator!r}.")
        if isinstance(evaluator, HpiImportanceEvaluator) and not evaluator._seed_given:
            _logger.warning(
                f"The {type(evaluator).__name__} given to StagedSampler has no `seed`; pass "
                "e.g. seed=0 so that a rerun of the study reproduces its stage plans."
            )
        if defaults is not None and not isinstance(defaults, Mapping):
            raise TypeError(f"`defaults` must be a mapping of name to value, got {defaults!r}.")
        if stale_after is not None and stale_after < 0:
            raise ValueError(f"`stale_after` must be >= 0 or None, got {stale_after!r}.")
        self._base = base_sampler
        self._stages = stages
        self._schedule = Schedule(stages)
        self._evaluator = evaluator if evaluator is not None else default_evaluator()
        self._roles = check_roles(roles, stages)
        self._defaults = dict(defaults or {})
        self._lag = lag
        self._rules = rules or PlanRules()
        self._stale_after = stale_after
        self._plans: dict[int, StagePlan] = {}
        self._config_checked: set[int] = set()
        # trial id -> ident of the thread that asked it (to detect a batch-ask deadlock).
        self._running: dict[int, int] = {}
        self._lock = threading.Lock()
        self._view_cache: dict[tuple[int, int, str, bool], FrozenTrial | None] = {}
        self._warned_no_free: set[int] = set()
        # Benchmark ablation only: hide held values instead of showing uninformative draws.
        self._hide_held = False

    @classmethod
    def three_stage(
        cls,
        base_sampler: BaseSampler | None = None,
        n_trials: Sequence[int] = (20, 30, 50),
        **kwargs: Any,
    ) -> StagedSampler:
        """The three-stage preset as a sampler, for ask-and-tell and Ray Tune's ``OptunaSearch``.

        Same stages as :meth:`optuna_hpi.StagedStudy.three_stage`; ``kwargs`` are this class's
        keyword arguments (``roles``, ``defaults``, ``lag``, ...).
        """
        window = preset_hold_window(kwargs.get("defaults"))
        return cls(base_sampler, three_stage(n_trials, kwargs.get("lag") or 0, window), **kwargs)

    @classmethod
    def importance_driven(
        cls,
        base_sampler: BaseSampler | None = None,
        n_trials: Sequence[int] = (30, 40, 30),
        **kwargs: Any,
    ) -> StagedSampler:
        """The importance-driven preset as a sampler (see :meth:`three_stage`)."""
        return cls(base_sampler, importance_driven(n_trials), **kwargs)

    # ------------------------------------------------------------------ public helpers
    @property
    def stages(self) -> list[Stage]:
        return list(self._stages)

    @property
    def base_sampler(self) -> BaseSampler:
        return self._base

    @property
    def n_trials(self) -> int:
        """Total budget of all stages."""
        return self._schedule.total

    @property
    def offset(self) -> int:
        """Number of the first staged trial (trials below it are history)."""
        return self._schedule.offset

    def stage_of(self, number: int) -> int:
        """Stage index of trial ``number`` (a pure function of the number; -1 for history)."""
        return self._schedule.stage_of(number)

    def plans(self, study: Study) -> list[StagePlan]:
        """The plans known so far (stage 0 always; later ones once computed and stored)."""
        if CONFIG_KEY not in study.user_attrs:
            return [initial_plan(self._schedule)]
        from optuna_hpi.staged._plan import load_plans

        return load_plans(study)

    def config(self) -> dict[str, Any]:
        return {
            "version": 2,
            "stages": [s.to_dict() for s in self._stages],
            "lag": self._lag,
            "rules": self._rules.to_dict(),
            "roles": self._roles,
            "defaults": {k: _jsonable(v) for k, v in sorted(self._defaults.items())},
            "offset": self._schedule.offset,
        }

    def describe(self, study: Study | None = None) -> str:
        """Each known parameter's role, default and fate per stage, as text.

        Before the first trial only the stage specs are known; with ``study`` (after at least
        one trial) every parameter seen in it is listed with its role (``roles`` or
        :func:`~optuna_hpi.staged.infer_role`) and the value it is held at until a plan says
        otherwise.
        """
        lines = []
        starts = self._schedule.starts
        for k, stage in enumerate(self._stages):
            spec = "every parameter"
            if stage.params is not None or stage.roles is not None:
                spec = ", ".join(
                    [*(f"roles {list(stage.roles)}" for _ in [0] if stage.roles)]
                    + [*(f"params {list(stage.params)}" for _ in [0] if stage.params)]
                )
            extra = " (freezes unimportant)" if stage.freeze else ""
            extra += " (narrows important)" if stage.narrow else ""
            if stage.hold_window > 0:
                extra += f" (others: numeric in {stage.hold_window:.0%} windows around the best)"
            stop = self._schedule.stop(k)
            span = f"trials {starts[k]}..{stop - 1 if stop is not None else 'end'}"
            lines.append(f"stage {k} '{stage.name}' ({span}): moves {spec}{extra}")
        if study is not None:
            dists: dict[str, BaseDistribution] = {}
            for t in study.get_trials(deepcopy=False):
                dists.update(t.distributions)
            if dists:
                lines.append("parameters:")
            for name in sorted(dists):
                role = self._roles.get(name, infer_role(name))
                moves = [
                    str(k) for k, st in enumerate(self._stages) if st.is_free(name, self._roles)
                ]
                default = self._defaults.get(name, default_value(dists[name]))
                fate = "held at the incumbent's value once a trial has it"
                near = [
                    f"{st.hold_window:.0%} of its range in stage {k}"
                    for k, st in enumerate(self._stages)
                    if st.hold_window > 0
                    and not st.is_free(name, self._roles)
                    and not isinstance(dists[name], CategoricalDistribution)
                ]
                if near:
                    fate = "elsewhere near the incumbent's value: " + ", ".join(near)
                lines.append(
                    f"  {name}: role {role}, free in stages {', '.join(moves) or 'none'}, "
                    f"default {default!r} ({fate})"
                )
        return "\n".join(lines)

    # ------------------------------------------------------------------ sampler interface
    def reseed_rng(self) -> None:
        self._base.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        with self._lock:
            self._running[trial._trial_id] = threading.get_ident()
        try:
            self._check_config(study, trial.number)
            k = self._schedule.stage_of(trial.number)
            if k < 0:
                raise ValueError(
                    f"Trial {trial.number} precedes the staged run, which starts at trial "
                    f"{self._schedule.offset}; this cannot happen unless trials were created "
                    "without the sampler."
                )
            # Tagged before planning: the tag tells other workers this trial is a staged one
            # (whose worker computes the stage's plan if it is the lowest-numbered).
            study._storage.set_trial_user_attr(trial._trial_id, STAGE_KEY, k)
            self._plan(study, k, trial.number)
        except BaseException:
            # Leave no orphan RUNNING trial behind the error.
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            with self._lock:
                self._running.pop(trial._trial_id, None)
            raise
        self._base.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._running.pop(trial._trial_id, None)
        self._base.after_trial(study, trial, state, values)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        k = self._schedule.stage_of(trial.number)
        plan = self._plan(study, k, trial.number)
        space: dict[str, BaseDistribution] = {}
        full = self._full_range(k, trial.number)
        for name, dist in self._base.infer_relative_search_space(study, trial).items():
            if not self._is_free(study, plan, k, name, trial.number):
                continue
            space[name] = dist if full else self._narrowed(plan, name, dist)
        return space

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        k = self._schedule.stage_of(trial.number)
        names = list(search_space)
        full = self._full_range(k, trial.number)

        def keep_complete(t: FrozenTrial) -> FrozenTrial | None:
            # Relative samplers model the joint space: a trial missing any of its (visible)
            # parameters is left out rather than handed over incomplete.
            v = self._visible(study, k, t, full)
            if v is None or not all(n in v.params for n in names):
                return None if v is None or v.state.is_finished() else v
            return v

        params = self._base.sample_relative(
            cast("Study", _StudyView(study, keep_complete)), trial, search_space
        )
        return {
            n: _clip(v, search_space[n]) if n in search_space else v for n, v in params.items()
        }

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        k = self._schedule.stage_of(trial.number)
        plan = self._plan(study, k, trial.number)
        if k == 0 and trial.number == self._schedule.offset and param_name in self._defaults:
            value = self._defaults[param_name]
            if _contains(param_distribution, value):
                return value  # the first staged trial evaluates the user's defaults
        if not self._is_free(study, plan, k, param_name, trial.number):
            value = plan.frozen.get(param_name)
            if param_name not in plan.frozen:
                value = self._defaults.get(param_name, default_value(param_distribution))
            if _contains(param_distribution, value):
                return value
            _logger.warning(
                f"Trial {trial.number}: the value {value!r} planned for '{param_name}' is "
                f"outside its distribution {param_distribution}; sampling it instead."
            )
            narrowed = param_distribution
        else:
            narrowed = self._narrowed(plan, param_name, param_distribution)
        full = self._full_range(k, trial.number)
        if full:
            narrowed = param_distribution

        def without_hidden(t: FrozenTrial) -> FrozenTrial | None:
            # A trial whose value of this parameter is hidden is left out altogether, so the
            # base sampler's startup rule counts only trials that say something about it.
            v = self._visible(study, k, t, full)
            if v is not None and param_name in t.params and param_name not in v.params:
                return None
            return v

        view = cast("Study", _StudyView(study, without_hidden))
        value = self._base.sample_independent(view, trial, param_name, narrowed)
        return _clip(value, narrowed)

    # ------------------------------------------------------------------ internals
    def _is_free(self, study: Study, plan: StagePlan, k: int, name: str, number: int) -> bool:
        stage = self._stages[k]
        if plan.is_free(name, stage, self._roles):
            return True
        if plan.distributions or name in plan.frozen:
            return False
        # The first stage has no plan: once earlier trials have revealed the parameter names,
        # a stage whose roles/params match none of them would evaluate one configuration over
        # and over; it moves every parameter instead (with a warning).
        names = {
            n
            for t in study.get_trials(deepcopy=False)
            if t.number < number
            for n in t.distributions
        }
        if not names or any(stage.is_free(n, self._roles) for n in names):
            return False
        if k not in self._warned_no_free:
            self._warned_no_free.add(k)
            _logger.warning(_no_free_message(k, stage, sorted(names)))
        return True

    def _narrowed(self, plan: StagePlan, name: str, dist: BaseDistribution) -> BaseDistribution:
        narrow = plan.narrowed.get(name)
        if narrow is None or plan.distributions.get(name) != dist:
            # A changed user distribution (dynamic search space) cancels the narrowing.
            return dist
        return narrow

    def _full_range(self, k: int, number: int) -> bool:
        """Whether trial ``number`` is a local stage's full-range fallback trial."""
        stage = self._stages[k]
        return (
            bool(stage.full_every) and (number - self._schedule.starts[k]) % stage.full_every == 0
        )

    def _visible(
        self, study: Study, k: int, t: FrozenTrial, full: bool = False
    ) -> FrozenTrial | None:
        """``t`` as the base sampler may see it while sampling stage ``k``.

        ``full``: for a trial that searches the user's full ranges (no narrowed range applies).
        """
        key = (k, t._trial_id, t.state.name, full)
        finished = t.state.is_finished()
        if finished and key in self._view_cache:
            return self._view_cache[key]
        plan = self._plans.get(k)
        j = self._schedule.stage_of(t.number)
        own = self._plans.get(j) if j >= 0 else None
        if plan is None or (j >= 0 and own is None):
            return t
        narrowed = {} if full else plan.narrowed
        params = dict(t.params)
        hidden = []
        for name, value in t.params.items():
            if own is not None and not own.is_free(name, self._stages[j], self._roles):
                # A held value says nothing about the parameter (unfreezing trap); an
                # uninformative draw keeps the trial in a multivariate model's joint space.
                if self._hide_held:
                    hidden.append(name)
                    continue
                dist = narrowed.get(name, t.distributions[name])
                params[name] = _uninformative(dist, t.number, name)
                continue
            narrow = narrowed.get(name)
            if narrow is not None and not _contains(narrow, value):
                hidden.append(name)
        view = t
        if hidden or params != t.params:
            view = copy.copy(t)
            view._params = {n: v for n, v in params.items() if n not in hidden}
            view._distributions = {n: d for n, d in t.distributions.items() if n not in hidden}
        if finished:
            with self._lock:
                self._view_cache[key] = view
        return view

    def _check_config(self, study: Study, number: int) -> None:
        if study._study_id in self._config_checked:
            return
        attrs = study.user_attrs
        if CONFIG_KEY not in attrs:
            self._propose_config(study, number)
            attrs = study.user_attrs
        stored = json.loads(attrs[CONFIG_KEY])
        if "stages" in stored:
            # Through Stage, so that a configuration stored before a field existed compares
            # equal to the same stages with that field at its default.
            stored["stages"] = [Stage(**s).to_dict() for s in stored["stages"]]
        ours = json.loads(json.dumps(self.config()))
        for field_name in ("stages", "rules", "roles", "defaults"):
            if field_name in stored and stored[field_name] != ours[field_name]:
                raise ValueError(
                    f"This study was started with different {field_name} "
                    f"({stored[field_name]!r}, here {ours[field_name]!r}); resume it with the "
                    "same stages, rules, roles and defaults, or use a new study."
                )
        if stored.get("lag") != self._lag:
            _logger.info(f"Using the study's stored lag={stored['lag']} (not {self._lag}).")
            self._lag = int(stored["lag"])
        self._schedule = Schedule(self._stages, int(stored.get("offset", 0)))
        if self._schedule.offset:
            _logger.info(
                f"The study has {self._schedule.offset} earlier trials: they are history for "
                f"the staged run, which starts at trial {self._schedule.offset}."
            )
        if not self._plans:
            self._plans[0] = initial_plan(self._schedule)
            stage = self._stages[0]
            spec = list(stage.roles or stage.params or ()) or "every parameter"
            first = self._schedule.offset
            _logger.info(f"Stage 0 '{stage.name}' from trial {first}: moves {spec}")
        self._config_checked.add(study._study_id)

    def _propose_config(self, study: Study, number: int) -> None:
        """Store the configuration, with the number of the first staged trial as its offset.

        Workers starting together each propose their first trial number under their own key
        (writes to distinct keys cannot overwrite each other) and the lowest proposal wins.
        A worker waits, up to ``_CONFIG_WAIT_SECONDS``, while a lower-numbered trial is still
        running without a proposal: it may be another staged worker about to propose. After
        that, such a trial (from a plain, unstaged process) is history.
        """
        prefix = CONFIG_KEY + ":"
        self._schedule = Schedule(self._stages, number)
        study.set_user_attr(f"{prefix}{number}", json.dumps(self.config()))
        deadline = time.monotonic() + _CONFIG_WAIT_SECONDS
        while True:
            attrs = study.user_attrs
            if CONFIG_KEY in attrs:
                return
            proposals = {
                int(k[len(prefix) :]): v for k, v in attrs.items() if k.startswith(prefix)
            }
            first = min(proposals)
            unsettled = [
                t
                for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.number < first and STAGE_KEY not in t.user_attrs
            ]
            if not unsettled or time.monotonic() > deadline:
                study.set_user_attr(CONFIG_KEY, proposals[first])
                return
            time.sleep(_POLL_SECONDS)

    def _plan(self, study: Study, k: int, number: int) -> StagePlan:
        plan = self._plans.get(k)
        if plan is not None:
            return plan
        for j in range(1, k):
            self._plan(study, j, number)
        key = PLAN_KEY + str(k)
        start = self._schedule.starts[k]
        cutoff = start - self._lag
        logged = time.monotonic()
        excluded: list[int] = []
        while True:
            attrs = study.user_attrs
            if key in attrs:
                return self._remember(k, StagePlan.from_json(attrs[key]))
            trials = study.get_trials(deepcopy=False)
            pending = [t for t in trials if t.number < cutoff and t.state == TrialState.RUNNING]
            if pending and self._held_here(pending):
                if not excluded:
                    _logger.warning(
                        f"Stage {k} starts at trial {start}, but trials "
                        f"{[t.number for t in pending]} that its plan needs were asked in this "
                        "thread and are not told yet (a batch of study.ask()); the plan uses the "
                        "finished trials only. Tell them first, or pass lag >= "
                        f"{start - min(t.number for t in pending)} so that plans never wait."
                    )
                excluded = [t.number for t in pending]
                pending = []
            # Trials of unstaged processes (no tag) never compute plans: skip them.
            running = [
                t.number
                for t in trials
                if t.number >= start
                and t.state == TrialState.RUNNING
                and STAGE_KEY in t.user_attrs
            ]
            first = min(running, default=number)
            if not pending and number <= first:
                break  # this worker runs the stage's lowest running trial: it plans
            if pending:
                self._expire(study, pending)
            if time.monotonic() - logged > _LOG_WAIT_SECONDS:
                waits = (
                    f"trials {[t.number for t in pending]} to finish"
                    if pending
                    else f"the plan that trial {first} computes"
                )
                _logger.info(f"Trial {number} (stage {k}) waits for {waits}.")
                logged = time.monotonic()
            time.sleep(_POLL_SECONDS)
        previous = [self._plans[j] for j in range(k)]
        try:
            plan = compute_plan(
                k,
                self._schedule,
                cutoff,
                trials,
                study.directions,
                previous,
                self._evaluator,
                self._rules,
                self._roles,
                self._defaults,
                excluded,
            )
        except ValueError as err:
            if not excluded:
                raise
            raise ValueError(
                f"Stage {k} starts at trial {start}, but none of the earlier trials its plan "
                f"needs is finished: trials {excluded} were asked in this thread and not told. "
                "Tell them before asking the next stage's first trial, or pass a lag >= "
                f"{start - min(excluded)} to StagedSampler/StagedStudy."
            ) from err
        attrs = study.user_attrs
        if key not in attrs:
            study.set_user_attr(key, plan.to_json())
            attrs = study.user_attrs
        plan = StagePlan.from_json(attrs[key])
        if any(r.startswith("free: no parameter has") for r in plan.reasons.values()):
            _logger.warning(_no_free_message(k, self._stages[k], sorted(plan.distributions)))
        return self._remember(k, plan)

    def _remember(self, k: int, plan: StagePlan) -> StagePlan:
        with self._lock:
            if k not in self._plans:
                self._plans[k] = plan
                _logger.info(f"Stage {k} '{plan.name}' from trial {plan.start}: {plan.summary()}")
            return self._plans[k]

    def _held_here(self, pending: list[FrozenTrial]) -> bool:
        """Whether every awaited trial was asked by this thread or by one that has ended."""
        alive = {t.ident for t in threading.enumerate()} - {threading.get_ident()}
        with self._lock:
            owners = [self._running.get(t._trial_id) for t in pending]
        return all(o is not None and o not in alive for o in owners)

    def _expire(self, study: Study, pending: list[FrozenTrial]) -> None:
        if is_heartbeat_enabled(study._storage):
            fail_stale_trials(study)
            return
        if self._stale_after is None:
            return
        now = datetime.datetime.now()
        for t in pending:
            if t._trial_id in self._running or t.datetime_start is None:
                continue
            age = (now - t.datetime_start).total_seconds()
            if age < self._stale_after:
                continue
            try:
                # The mark goes first: a finished trial accepts no attribute.
                study._storage.set_trial_user_attr(t._trial_id, "optuna_hpi:stale", True)
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except RuntimeError:
                # Finished in the meantime (UpdateFinishedTrialError is a RuntimeError).
                continue
            _logger.warning(
                f"Trial {t.number} has been RUNNING for {age:.0f} s (> stale_after="
                f"{self._stale_after}); marked FAIL so that stage plans can proceed."
            )


def _no_free_message(k: int, stage: Stage, names: list[str]) -> str:
    wanted = list(stage.roles or stage.params or ())
    return (
        f"Stage {k} '{stage.name}' moves {wanted}, but none of the parameters {names} has "
        "that role or name, so it moves every parameter instead. Pass e.g. "
        f"roles={{'{names[0] if names else 'lr'}': '{(stage.roles or ('learning_rate',))[0]}'}}."
    )


def _uninformative(dist: BaseDistribution, number: int, name: str) -> Any:
    """A draw from ``dist``'s sampling measure that depends only on (trial number, name)."""
    digest = hashlib.blake2b(f"{number}:{name}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2.0**64
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[min(int(u * len(dist.choices)), len(dist.choices) - 1)]
    assert isinstance(dist, (FloatDistribution, IntDistribution))
    if dist.log:
        value = math.exp(math.log(dist.low) + u * (math.log(dist.high) - math.log(dist.low)))
    else:
        value = dist.low + u * (dist.high - dist.low)
    return _clip(value, dist)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError, IndexError):
        return False


def _clip(value: Any, dist: BaseDistribution) -> Any:
    """Clip a sampled value into ``dist`` and onto its grid (Optuna does not check it)."""
    if isinstance(dist, CategoricalDistribution):
        return value
    if isinstance(dist, IntDistribution):
        i = int(round(value))
        i = dist.low + round((i - dist.low) / dist.step) * dist.step
        return int(min(max(i, dist.low), dist.high))
    assert isinstance(dist, FloatDistribution)
    v = float(value)
    if dist.step is not None:
        v = dist.low + round((v - dist.low) / dist.step) * dist.step
    return float(min(max(v, dist.low), dist.high))
