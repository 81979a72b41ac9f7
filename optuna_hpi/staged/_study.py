"""StagedStudy: run a study's remaining stage budget with the user's objective unchanged."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.importance import BaseImportanceEvaluator
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import Trial

from optuna_hpi.staged._plan import CONFIG_KEY
from optuna_hpi.staged._plan import load_config
from optuna_hpi.staged._plan import PlanRules
from optuna_hpi.staged._plan import StagePlan
from optuna_hpi.staged._sampler import StagedSampler
from optuna_hpi.staged._stage import importance_driven
from optuna_hpi.staged._stage import preset_hold_window
from optuna_hpi.staged._stage import Stage
from optuna_hpi.staged._stage import three_stage


_logger = optuna.logging.get_logger("optuna." + __name__)

ObjectiveFuncType = Callable[[Trial], "float | Sequence[float]"]


class StagedStudy:
    """Importance-guided staged search on an existing Optuna study.

    Wraps the study's sampler in a :class:`~optuna_hpi.StagedSampler` (the study's
    ``sampler`` attribute is replaced, so ``study.ask()`` is staged too) and runs the stages'
    budget with :meth:`optimize`. All state lives in the study's storage: stage membership is
    a function of trial numbers and each plan is stored as JSON in the study's user
    attributes, so several processes can run :meth:`optimize` on one RDB or Journal storage
    and a killed run resumes where it stopped.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import StagedStudy


            def objective(trial):
                lr = trial.suggest_float("learning_rate", 1e-5, 1.0, log=True)
                alpha = trial.suggest_float("alpha", 1e-8, 1.0, log=True)
                width = trial.suggest_int("width", 16, 1024, log=True)
                return (lr - 0.01) ** 2 + 0.01 * alpha + 1.0 / width


            study = optuna.create_study()
            staged = StagedStudy.three_stage(study, n_trials=(10, 10, 10))
            staged.optimize(objective)
            for plan in staged.plans:
                print(plan)

    Args:
        study: The study to run (any storage, any direction(s)).
        stages: The stages, in order.
        evaluator: Importance evaluator behind the plans (default:
            :func:`~optuna_hpi.staged.default_evaluator`, seeded Sobol' total indices).
        roles: Role of parameters by name (``"learning_rate"``, ``"regularization"``, ...).
        defaults: Values of parameters held before they were ever free.
        lag: Plans use trials numbered below ``stage start - lag``; ``None`` uses ``n_jobs - 1``
            of the first :meth:`optimize` call. With several processes, pass the number of
            workers. The first worker's value is stored and used by all.
        rules: Thresholds of freezing and narrowing.
        stale_after: See :class:`~optuna_hpi.StagedSampler` (opt-in expiry of other
            processes' long trials; default: never).
    """

    def __init__(
        self,
        study: Study,
        stages: Sequence[Stage],
        evaluator: BaseImportanceEvaluator | None = None,
        *,
        roles: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        lag: int | None = None,
        rules: PlanRules | None = None,
        stale_after: float | None = None,
    ) -> None:
        if not isinstance(study, Study):
            raise TypeError(f"`study` must be an optuna.Study, got {type(study).__name__}.")
        base = study.sampler
        if isinstance(base, StagedSampler):
            raise TypeError(
                "The study's sampler is already a StagedSampler; create the study with the "
                "sampler to wrap (e.g. TPESampler) or use that StagedSampler directly."
            )
        self._study = study
        self._lag_given = lag is not None
        self._sampler = StagedSampler(
            base,
            stages,
            evaluator=evaluator,
            roles=roles,
            defaults=defaults,
            lag=lag or 0,
            rules=rules,
            stale_after=stale_after,
        )
        study.sampler = self._sampler

    @classmethod
    def three_stage(
        cls,
        study: Study,
        n_trials: Sequence[int] = (20, 30, 50),
        roles: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> StagedStudy:
        """Warm start -> learning rate -> regularization -> fine-tune.

        The first stage's budget starts with a few full-space trials (a quarter, 4 to 10; the
        first evaluates ``defaults`` when given), then searches parameters with the
        ``learning_rate`` role over their full ranges while the others stay at the best
        configuration so far; stage 2 adds the ``regularization`` parameters (and narrows
        the learning rate around stage 1's best trials when its importance is confident);
        stage 3 moves every parameter over the user's full ranges, with every earlier trial
        in the base sampler's model (held values shown as uninformative draws).

        "Stay" depends on where that configuration comes from. With ``defaults`` the others
        are held exactly at the incumbent (your defaults until a trial beats them). Without,
        the incumbent is only the best of a random warm start: numeric parameters then follow
        in a window of 90 % of their range around its values (categorical ones are held), a
        trust region rather than a point (see ``THREE_STAGE_HOLD_WINDOW``). Roles come from
        ``roles`` or the parameter names (:func:`~optuna_hpi.staged.infer_role`). If no
        parameter has the learning-rate role, that stage moves every parameter (with a
        warning).
        """
        window = preset_hold_window(defaults)
        stages = three_stage(n_trials, kwargs.get("lag") or 0, window)
        return cls(study, stages, roles=roles, defaults=defaults, **kwargs)

    @classmethod
    def importance_driven(
        cls, study: Study, n_trials: Sequence[int] = (30, 40, 30), **kwargs: Any
    ) -> StagedStudy:
        """Explore all -> freeze confidently unimportant, narrow important -> all again.

        A parameter is frozen (at the incumbent's value) only when its share of the
        evaluator's importances *and* its share of the local effects at the incumbent are
        confidently below ``rules.freeze_below``, from at least ``max(rules.min_trials,
        n_params)`` complete trials. The last stage moves every parameter over the user's full
        ranges with every earlier trial in the base sampler's model.
        """
        return cls(study, importance_driven(n_trials), **kwargs)

    @property
    def study(self) -> Study:
        return self._study

    @property
    def sampler(self) -> StagedSampler:
        return self._sampler

    @property
    def n_trials(self) -> int:
        """Total budget of all stages."""
        return self._sampler.n_trials

    @property
    def plans(self) -> list[StagePlan]:
        """Plans computed so far, read from the study's storage."""
        return self._sampler.plans(self._study)

    def optimize(
        self,
        func: ObjectiveFuncType,
        n_trials: int | None = None,
        timeout: float | None = None,
        n_jobs: int = 1,
        callbacks: Iterable[Callable[[Study, FrozenTrial], None]] | None = None,
        catch: Iterable[type[Exception]] | type[Exception] = (),
        gc_after_trial: bool = False,
        show_progress_bar: bool = False,
    ) -> None:
        """Run the objective until every stage's budget is used (mirrors ``Study.optimize``).

        Args:
            func: The objective, unchanged.
            n_trials: Trials for this call (per worker, as in ``Study.optimize``). ``None``
                runs the remaining budget: until the study holds as many trials as the stages'
                total (trials of every state count, including those of earlier or concurrent
                runs; concurrent workers may overshoot by up to ``n_jobs - 1`` per process,
                and extra trials belong to the last stage).
            timeout: Stop after this many seconds.
            n_jobs: Threads, as in ``Study.optimize``.
            callbacks: As in ``Study.optimize``.
            catch: As in ``Study.optimize``.
            gc_after_trial: As in ``Study.optimize``.
            show_progress_bar: As in ``Study.optimize``.
        """
        if not self._lag_given and n_jobs != 1:
            _set_lag(self._sampler, max(0, (n_jobs if n_jobs > 0 else 2) - 1))
        cbs = list(callbacks or [])
        total = self._sampler.n_trials
        if n_trials is None:
            done = len(self._study.get_trials(deepcopy=False))
            if CONFIG_KEY in self._study.user_attrs:
                done -= int(load_config(self._study).get("offset", 0))
            else:
                done = 0  # the trials already here are history; the staged run starts next
            remaining = total - done
            if remaining <= 0:
                _logger.info(f"All {total} staged trials are done; nothing to run.")
                return
            n_trials = remaining
            sampler = self._sampler

            def stop_at_budget(study: Study, trial: FrozenTrial) -> None:
                if len(study.get_trials(deepcopy=False)) >= sampler.offset + total:
                    study.stop()

            cbs.append(stop_at_budget)
        bar = None
        if show_progress_bar:
            bar = _StageProgress(self._sampler, n_trials)
            cbs.append(bar)
        try:
            self._study.optimize(
                func,
                n_trials=n_trials,
                timeout=timeout,
                n_jobs=n_jobs,
                callbacks=cbs,
                catch=catch,
                gc_after_trial=gc_after_trial,
                show_progress_bar=False,
            )
        finally:
            if bar is not None:
                bar.close()

    def describe(self) -> str:
        """The stages, and each known parameter's role, default and stages (text).

        Before the first trial only the stage specs are known (parameters are discovered by
        the objective); afterwards every parameter seen in the study is listed.
        """
        return self._sampler.describe(self._study)


class _StageProgress:
    """Progress bar callback that shows the current stage and the best value."""

    def __init__(self, sampler: StagedSampler, n_trials: int) -> None:
        from tqdm.auto import tqdm

        self._sampler = sampler
        self._bar = tqdm(total=n_trials, desc="staged search")

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        k = max(self._sampler.stage_of(trial.number), 0)
        stage = self._sampler.stages[k]
        text = f"stage {k}/{len(self._sampler.stages) - 1} '{stage.name}'"
        if not study._is_multi_objective():
            try:
                text += f", best {study.best_value:.6g}"
            except ValueError:
                pass  # no complete trial yet
        self._bar.set_postfix_str(text, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def _set_lag(sampler: StagedSampler, lag: int) -> None:
    """Adopt ``lag`` if the sampler has not yet stored its configuration or planned."""
    if sampler._config_checked or len(sampler._plans) > 1:
        return
    if all(s.n_trials > lag for s in sampler.stages[:-1]):
        sampler._lag = lag
