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

from optuna_hpi.staged._plan import PlanRules
from optuna_hpi.staged._plan import StagePlan
from optuna_hpi.staged._sampler import StagedSampler
from optuna_hpi.staged._stage import importance_driven
from optuna_hpi.staged._stage import Stage
from optuna_hpi.staged._stage import three_stage


_logger = optuna.logging.get_logger(__name__)

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
        stale_after: See :class:`~optuna_hpi.StagedSampler`.
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
        """Learning rate -> regularization -> fine-tune.

        Stage 1 moves only parameters with the ``learning_rate`` role and holds the others at
        their defaults; stage 2 moves learning rate (narrowed around stage 1's best trials
        when its importance is confident) and ``regularization`` parameters, holding the rest;
        stage 3 moves every parameter over the user's full ranges (a range narrowed while other
        parameters sat at their defaults may exclude the joint optimum), with the history of
        each parameter limited to the trials in which it was free. Roles come from ``roles``
        or the parameter names (:func:`~optuna_hpi.staged.infer_role`); defaults from
        ``defaults`` or the centre of each range on the sampler's scale
        (:func:`~optuna_hpi.staged.default_value`).
        """
        return cls(study, three_stage(n_trials, kwargs.get("lag") or 0), roles=roles,
                   defaults=defaults, **kwargs)

    @classmethod
    def importance_driven(
        cls, study: Study, n_trials: Sequence[int] = (30, 40, 30), **kwargs: Any
    ) -> StagedStudy:
        """Explore all -> freeze confidently unimportant, narrow important -> all again.

        The last stage moves every parameter over the user's full ranges.
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
            remaining = total - done
            if remaining <= 0:
                _logger.info(f"All {total} staged trials are done; nothing to run.")
                return
            n_trials = remaining

            def stop_at_budget(study: Study, trial: FrozenTrial) -> None:
                if len(study.get_trials(deepcopy=False)) >= total:
                    study.stop()

            cbs.append(stop_at_budget)
        self._study.optimize(
            func,
            n_trials=n_trials,
            timeout=timeout,
            n_jobs=n_jobs,
            callbacks=cbs,
            catch=catch,
            gc_after_trial=gc_after_trial,
            show_progress_bar=show_progress_bar,
        )


def _set_lag(sampler: StagedSampler, lag: int) -> None:
    """Adopt ``lag`` if the sampler has not yet stored its configuration or planned."""
    if sampler._config_checked or len(sampler._plans) > 1:
        return
    if all(s.n_trials > lag for s in sampler.stages[:-1]):
        sampler._lag = lag
