"""The sampler wrapper that applies stage plans to any Optuna sampler."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import copy
import datetime
import json
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
from optuna_hpi.staged._plan import initial_plan
from optuna_hpi.staged._plan import PlanRules
from optuna_hpi.staged._plan import Schedule
from optuna_hpi.staged._plan import StagePlan
from optuna_hpi.staged._stage import default_value
from optuna_hpi.staged._stage import Stage


if TYPE_CHECKING:
    from optuna.study import Study

_logger = optuna.logging.get_logger(__name__)

#: Study user attribute holding the stage configuration (first writer wins).
CONFIG_KEY = "optuna_hpi:staged:config"
#: Prefix of the study user attributes holding each stage's plan as JSON.
PLAN_KEY = "optuna_hpi:staged:plan:"
#: Trial user attribute recording the stage of each trial.
STAGE_KEY = "optuna_hpi:stage"

_POLL_SECONDS = 0.2


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

    Trial ``n`` belongs to the stage whose cumulative budget range contains ``n`` (trials past
    the total budget belong to the last stage). Each stage after the first has a
    :class:`~optuna_hpi.StagePlan` computed from the finished trials numbered below
    ``stage start - lag``: importances of the previous stage's free parameters on that stage's
    own trials, then frozen values and narrowed ranges (see :class:`~optuna_hpi.Stage`). The
    plan is stored as JSON in the study's user attributes and always read back, so several
    processes on one RDB/Journal storage agree on it without a coordinator, and a killed run
    resumes from the storage alone. Each trial records its stage in the trial user attribute
    ``"optuna_hpi:stage"``.

    How a plan is applied, so that every Optuna tool keeps working:

    * frozen/held parameters are returned from :meth:`sample_independent` and never reach the
      base sampler; the stored distribution is the one the objective passed;
    * a narrowed parameter is sampled by the base sampler from a narrowed *copy* of the user's
      distribution (clipped to it and aligned to its int/step grid); a range that would have a
      single value is frozen instead; categorical choices are never reduced;
    * the base sampler sees, for each parameter, only the trials in which that parameter was
      free (and, while it is narrowed, only values inside the narrowed range): a parameter that
      becomes free again is not pulled back to the value it was frozen at. A relative
      (multivariate) base sampler models only the trials in which every parameter it is asked
      for was visible, so a stage that frees a parameter for the first time starts that joint
      model afresh: the base sampler's own startup rule applies again (independent sampling
      until it has enough such trials).

    Not supported: :class:`~optuna.samplers.CmaEsSampler` (its single optimizer cannot change
    dimension between stages; it raises ``TypeError`` here). Use TPE, Random, QMC or GP.

    Waiting: a stage's plan needs every trial numbered below ``start - lag`` to be finished; a
    worker that reaches the stage earlier waits. A ``RUNNING`` trial started by another process
    that blocks a plan is marked ``FAIL`` once it is older than ``stale_after`` seconds, or by
    Optuna's heartbeat check when the storage has heartbeats; the plan then treats it as failed.

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
            It must be deterministic, or workers may compute different plans: give this
            package's evaluators a ``seed`` (a warning says so otherwise).
        roles: Role of parameters by name, overriding the name rules of
            :func:`~optuna_hpi.staged.infer_role`.
        defaults: Value of parameters held before they were ever free; others use
            :func:`~optuna_hpi.staged.default_value`.
        lag: A stage's plan uses the trials numbered below ``start - lag``; set it to the
            number of concurrent workers or more so that workers rarely wait.
        rules: Thresholds of freezing and narrowing.
        stale_after: Seconds after which another process's ``RUNNING`` trial that blocks a
            plan is marked failed (``None``: wait for it, or rely on heartbeats).
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
        stale_after: float | None = 600.0,
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
            # Each process would draw its own seed, so workers on one storage could compute
            # different plans for the same stage (the first stored one wins, but a worker that
            # already used its own would disagree).
            _logger.warning(
                f"The {type(evaluator).__name__} given to StagedSampler has no `seed`; pass "
                "e.g. seed=0 so that every worker computes the same stage plans."
            )
        if stale_after is not None and stale_after < 0:
            raise ValueError(f"`stale_after` must be >= 0 or None, got {stale_after!r}.")
        self._base = base_sampler
        self._schedule = Schedule(stages)
        self._evaluator = evaluator if evaluator is not None else default_evaluator()
        self._roles = dict(roles or {})
        self._defaults = dict(defaults or {})
        self._lag = lag
        self._rules = rules or PlanRules()
        self._stale_after = stale_after
        self._plans: dict[int, StagePlan] = {0: initial_plan(self._schedule)}
        self._config_checked: set[int] = set()
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._view_cache: dict[tuple[int, int, str], FrozenTrial | None] = {}

    # ------------------------------------------------------------------ public helpers
    @property
    def stages(self) -> list[Stage]:
        return list(self._schedule.stages)

    @property
    def base_sampler(self) -> BaseSampler:
        return self._base

    @property
    def n_trials(self) -> int:
        """Total budget of all stages."""
        return self._schedule.total

    def stage_of(self, number: int) -> int:
        """Stage index of trial ``number`` (a pure function of the number)."""
        return self._schedule.stage_of(number)

    def plans(self, study: Study) -> list[StagePlan]:
        """The plans known so far (stage 0 always; later ones once computed and stored)."""
        out = [self._plans[0]]
        attrs = study.user_attrs
        for k in range(1, len(self._schedule.stages)):
            if k in self._plans:
                out.append(self._plans[k])
            elif PLAN_KEY + str(k) in attrs:
                out.append(StagePlan.from_json(attrs[PLAN_KEY + str(k)]))
            else:
                break
        return out

    def config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "stages": [s.to_dict() for s in self._schedule.stages],
            "lag": self._lag,
            "rules": self._rules.to_dict(),
        }

    # ------------------------------------------------------------------ sampler interface
    def reseed_rng(self) -> None:
        self._base.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._check_config(study)
        k = self._schedule.stage_of(trial.number)
        with self._lock:
            self._running.add(trial._trial_id)
        try:
            self._plan(study, k)
        except BaseException:
            # Leave no orphan RUNNING trial behind the error.
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            with self._lock:
                self._running.discard(trial._trial_id)
            raise
        study._storage.set_trial_user_attr(trial._trial_id, STAGE_KEY, k)
        self._base.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._running.discard(trial._trial_id)
        self._base.after_trial(study, trial, state, values)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        k = self._schedule.stage_of(trial.number)
        plan = self._plan(study, k)
        stage = self._schedule.stages[k]
        space: dict[str, BaseDistribution] = {}
        for name, dist in self._base.infer_relative_search_space(study, trial).items():
            if not plan.is_free(name, stage, self._roles):
                continue
            space[name] = self._narrowed(plan, name, dist)
        return space

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        k = self._schedule.stage_of(trial.number)
        names = list(search_space)

        def keep_complete(t: FrozenTrial) -> FrozenTrial | None:
            # Relative samplers model the joint space: a trial missing any of its (visible)
            # parameters is left out rather than handed over incomplete.
            v = self._visible(study, k, t)
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
        plan = self._plan(study, k)
        stage = self._schedule.stages[k]
        if not plan.is_free(param_name, stage, self._roles):
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

        def without_hidden(t: FrozenTrial) -> FrozenTrial | None:
            # A trial whose value of this parameter is hidden is left out altogether, so the
            # base sampler's startup rule counts only trials that say something about it
            # (and GPSampler does not warn about a "dynamic search space" it never had).
            v = self._visible(study, k, t)
            if v is not None and param_name in t.params and param_name not in v.params:
                return None
            return v

        view = cast("Study", _StudyView(study, without_hidden))
        value = self._base.sample_independent(view, trial, param_name, narrowed)
        return _clip(value, narrowed)

    # ------------------------------------------------------------------ internals
    def _narrowed(self, plan: StagePlan, name: str, dist: BaseDistribution) -> BaseDistribution:
        narrow = plan.narrowed.get(name)
        if narrow is None or plan.distributions.get(name) != dist:
            # A changed user distribution (dynamic search space) cancels the narrowing.
            return dist
        return narrow

    def _visible(self, study: Study, k: int, t: FrozenTrial) -> FrozenTrial | None:
        """``t`` as the base sampler may see it while sampling stage ``k``."""
        key = (k, t._trial_id, t.state.name)
        finished = t.state.is_finished()
        if finished and key in self._view_cache:
            return self._view_cache[key]
        plan = self._plans.get(k)
        j = self._schedule.stage_of(t.number)
        own = self._plans.get(j)
        if plan is None or own is None:
            return t
        own_stage = self._schedule.stages[j]
        hidden = []
        for name, value in t.params.items():
            if not own.is_free(name, own_stage, self._roles):
                # Frozen/held values say nothing about the parameter (unfreezing trap).
                hidden.append(name)
                continue
            narrow = plan.narrowed.get(name)
            if narrow is not None and not _contains(narrow, value):
                hidden.append(name)
        view = t
        if hidden:
            view = copy.copy(t)
            view._params = {n: v for n, v in t.params.items() if n not in hidden}
            view._distributions = {n: d for n, d in t.distributions.items() if n not in hidden}
        if finished:
            with self._lock:
                self._view_cache[key] = view
        return view

    def _check_config(self, study: Study) -> None:
        if study._study_id in self._config_checked:
            return
        mine = json.dumps(self.config(), sort_keys=True)
        attrs = study.user_attrs
        if CONFIG_KEY not in attrs:
            study.set_user_attr(CONFIG_KEY, mine)
            attrs = study.user_attrs
        stored = json.loads(attrs[CONFIG_KEY])
        ours = json.loads(mine)
        if stored["stages"] != ours["stages"] or stored.get("rules") != ours["rules"]:
            raise ValueError(
                "This study was started with different stages or rules "
                f"({stored['stages']}); resume it with the same stages, or use a new study."
            )
        if stored.get("lag") != self._lag:
            _logger.info(f"Using the study's stored lag={stored['lag']} (not {self._lag}).")
            self._lag = int(stored["lag"])
        self._config_checked.add(study._study_id)

    def _plan(self, study: Study, k: int) -> StagePlan:
        plan = self._plans.get(k)
        if plan is not None:
            return plan
        for j in range(1, k):
            self._plan(study, j)
        key = PLAN_KEY + str(k)
        cutoff = self._schedule.starts[k] - self._lag
        waited_since = time.monotonic()
        while True:
            attrs = study.user_attrs
            if key in attrs:
                return self._remember(k, StagePlan.from_json(attrs[key]))
            trials = study.get_trials(deepcopy=False)
            pending = [t for t in trials if t.number < cutoff and t.state == TrialState.RUNNING]
            if not pending:
                break
            self._expire(study, pending)
            if time.monotonic() - waited_since > 30:
                _logger.info(
                    f"Stage {k} waits for trials {[t.number for t in pending]} to finish."
                )
                waited_since = time.monotonic()
            time.sleep(_POLL_SECONDS)
        previous = [self._plans[j] for j in range(k)]
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
        )
        attrs = study.user_attrs
        if key not in attrs:
            study.set_user_attr(key, plan.to_json())
            attrs = study.user_attrs
        # First writer wins: whatever is stored is what this worker uses.
        plan = StagePlan.from_json(attrs[key])
        _logger.info(f"Plan of {plan}")
        return self._remember(k, plan)

    def _remember(self, k: int, plan: StagePlan) -> StagePlan:
        with self._lock:
            self._plans.setdefault(k, plan)
            return self._plans[k]

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
