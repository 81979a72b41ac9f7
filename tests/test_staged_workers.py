"""Several processes on one storage, and a killed run resumed from the storage alone."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_hpi import Stage
from optuna_hpi import StagedStudy
from optuna_hpi import StagePlan
from optuna_hpi.staged._plan import compute_plan
from optuna_hpi.staged._plan import PlanRules
from optuna_hpi.staged._sampler import PLAN_KEY
from optuna_hpi.staged._sampler import STAGE_KEY
from tests.staged_helpers import light_evaluator
from tests.staged_helpers import lr_objective


STAGES = [Stage(6, params=("lr",)), Stage(6, freeze=True), Stage(6)]


_evaluator = light_evaluator
_objective = lr_objective


def _storage(path: str) -> JournalStorage:
    return JournalStorage(JournalFileBackend(path))


def _worker(path: str, out: str, seed: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(
        study_name="w", storage=_storage(path), sampler=optuna.samplers.TPESampler(seed=seed)
    )
    staged = StagedStudy(study, STAGES, evaluator=_evaluator(), lag=3)
    staged.optimize(_objective)
    used = {k: p.to_json() for k, p in staged.sampler._plans.items() if k > 0}
    Path(out).write_text(json.dumps(used))


def _check_trials_follow_plans(study: optuna.Study, plans: list[StagePlan]) -> None:
    for t in study.trials:
        k = min(t.number // 6, 2)
        assert t.user_attrs[STAGE_KEY] == k
        if t.state != TrialState.COMPLETE:
            continue
        for name, value in plans[k].frozen.items():
            assert t.params[name] == value, (t.number, name)
        for name, narrow in plans[k].narrowed.items():
            assert narrow._contains(narrow.to_internal_repr(t.params[name]))


def test_three_workers_agree_on_every_plan(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.log")
    optuna.create_study(study_name="w", storage=_storage(path))
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(path, str(tmp_path / f"out{i}.json"), i))
        for i in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    study = optuna.load_study(study_name="w", storage=_storage(path))
    # Every worker stops once the budget is reached; concurrent asks overshoot by < workers.
    assert 18 <= len(study.trials) <= 20
    stored = {k: study.user_attrs[PLAN_KEY + str(k)] for k in (1, 2)}
    for i in range(3):
        used = json.loads((tmp_path / f"out{i}.json").read_text())
        for k, text in used.items():
            assert text == stored[int(k)]
    plans = StagedStudy(study, STAGES, evaluator=_evaluator(), lag=3).plans
    assert [p.cutoff for p in plans[1:]] == [3, 9]
    _check_trials_follow_plans(study, plans)
    # A plan is a pure function of the trials below its cutoff, even once later ones exist.
    from optuna_hpi.staged._plan import Schedule

    schedule = Schedule(STAGES)
    for k in (1, 2):
        again = compute_plan(
            k, schedule, plans[k].cutoff, study.trials, study.directions, plans[:k],
            _evaluator(), PlanRules(), {}, {},
        )  # fmt: skip
        assert again.to_json() == stored[k]


def _killed_run(path: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(
        study_name="k", storage=_storage(path), sampler=optuna.samplers.TPESampler(seed=0)
    )

    def objective(trial: optuna.Trial) -> float:
        value = _objective(trial)
        if trial.number == 9:
            os._exit(3)  # the machine dies in the middle of stage 1
        return value

    StagedStudy(study, STAGES, evaluator=_evaluator()).optimize(objective)


def test_killed_run_resumes_without_repeating_stage_work(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.log")
    optuna.create_study(study_name="k", storage=_storage(path))
    proc = mp.get_context("fork").Process(target=_killed_run, args=(path,))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == 3
    study = optuna.load_study(study_name="k", storage=_storage(path))
    assert len(study.trials) == 10 and study.trials[9].state == TrialState.RUNNING
    plan1 = study.user_attrs[PLAN_KEY + "1"]

    resumed = optuna.load_study(
        study_name="k", storage=_storage(path), sampler=optuna.samplers.TPESampler(seed=1)
    )
    staged = StagedStudy(resumed, STAGES, evaluator=_evaluator(), stale_after=0.0)
    staged.optimize(_objective)
    trials = resumed.trials
    # The remaining budget only: 8 new trials, no stage restarted, plan 1 reused as stored.
    assert len(trials) == 18
    assert [t.user_attrs[STAGE_KEY] for t in trials] == [0] * 6 + [1] * 6 + [2] * 6
    assert resumed.user_attrs[PLAN_KEY + "1"] == plan1
    # The dead worker's trial is failed (it blocked plan 2) and marked as stale.
    assert trials[9].state == TrialState.FAIL and trials[9].user_attrs["optuna_hpi:stale"]
    assert 9 not in staged.plans[2].based_on
    _check_trials_follow_plans(resumed, staged.plans)
    # Running again does nothing: the budget is used.
    staged.optimize(_objective)
    assert len(resumed.trials) == 18
