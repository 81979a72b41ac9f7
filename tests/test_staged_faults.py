"""StagedStudy under faults (issue 7): SIGKILL and restart, 4 workers, failing objectives.

Storages: SQLite and a Journal file always; a real PostgreSQL server when
``OPTUNA_HPI_TEST_POSTGRES_URL`` is set (``.ci/run`` starts one), e.g.
``postgresql+psycopg2://postgres@127.0.0.1:55432/optuna_hpi``.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import math
import multiprocessing as mp
import os
from pathlib import Path
import signal
import time
from typing import Any
import uuid

import optuna
from optuna.storages import BaseStorage
from optuna.storages import JournalStorage
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
import pytest

from optuna_hpi import Stage
from optuna_hpi import StagedSampler
from optuna_hpi import StagedStudy
from optuna_hpi.staged._sampler import PLAN_KEY
from optuna_hpi.staged._sampler import STAGE_KEY
from tests.staged_helpers import light_evaluator
from tests.staged_helpers import lr_objective


POSTGRES_URL = os.environ.get("OPTUNA_HPI_TEST_POSTGRES_URL")
_NO_POSTGRES = (
    "OPTUNA_HPI_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against "
    "(.ci/run starts one; locally export e.g. postgresql+psycopg2://postgres@127.0.0.1/db)."
)
STORAGES = [
    "sqlite",
    "journal",
    pytest.param("postgres", marks=pytest.mark.skipif(POSTGRES_URL is None, reason=_NO_POSTGRES)),
]

N = 8
STAGES = [Stage(N, params=("lr",)), Stage(N, freeze=True), Stage(N)]
TOTAL = 3 * N
WORKERS = 4


_evaluator = light_evaluator
_objective = lr_objective


def _storage(kind: str, where: str, heartbeat: bool = False) -> BaseStorage:
    if kind == "journal":
        return JournalStorage(JournalFileBackend(where))
    hb: dict[str, Any] = {"heartbeat_interval": 1, "grace_period": 2} if heartbeat else {}
    if kind == "sqlite":
        # Four writers on one SQLite file: wait for the lock instead of failing at once.
        return RDBStorage(where, engine_kwargs={"connect_args": {"timeout": 60}}, **hb)
    return RDBStorage(where, **hb)


def _where(kind: str, tmp_path: Path) -> str:
    if kind == "journal":
        return str(tmp_path / "journal.log")
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    assert POSTGRES_URL is not None
    return POSTGRES_URL


def _create(kind: str, where: str, name: str) -> None:
    storage = _storage(kind, where)
    optuna.create_study(study_name=name, storage=storage)
    if isinstance(storage, RDBStorage):
        # Forked workers must not share the parent's pooled connections.
        storage.engine.dispose()


def _load(kind: str, where: str, name: str, seed: int, heartbeat: bool = False) -> optuna.Study:
    return optuna.load_study(
        study_name=name,
        storage=_storage(kind, where, heartbeat),
        sampler=optuna.samplers.TPESampler(seed=seed),
    )


def _cleanup(kind: str, where: str, name: str) -> None:
    if kind == "postgres":
        optuna.delete_study(study_name=name, storage=_storage(kind, where))


def _check_stages(study: optuna.Study, max_total: int) -> None:
    """Every trial tagged with the stage of its number; stage budgets honoured."""
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(len(trials)))  # no trial lost
    assert TOTAL <= len(trials) <= max_total
    for t in trials:
        assert t.state.is_finished(), (t.number, t.state)
        assert t.user_attrs[STAGE_KEY] == min(t.number // N, 2), t.number
    per_stage = [sum(t.user_attrs[STAGE_KEY] == k for t in trials) for k in range(3)]
    # Earlier stages get exactly their budget; concurrent overshoot lands in the last stage.
    assert per_stage[:2] == [N, N] and N <= per_stage[2] <= max_total - 2 * N


def _check_plans_followed(study: optuna.Study) -> None:
    plans = StagedSampler(None, STAGES, evaluator=_evaluator(), lag=WORKERS).plans(study)
    assert [p.stage for p in plans] == [0, 1, 2]
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        plan = plans[t.user_attrs[STAGE_KEY]]
        for name, value in plan.frozen.items():
            assert t.params[name] == value, (t.number, name)
        for name, narrow in plan.narrowed.items():
            assert narrow._contains(narrow.to_internal_repr(t.params[name])), (t.number, name)


# ------------------------------------------------------------------ 4 worker processes
def _worker(kind: str, where: str, name: str, out: str, seed: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _load(kind, where, name, seed)
    staged = StagedStudy(study, STAGES, evaluator=_evaluator(), lag=WORKERS)
    staged.optimize(_objective)
    used = {k: p.to_json() for k, p in staged.sampler._plans.items() if k > 0}
    Path(out).write_text(json.dumps(used))


@pytest.mark.parametrize("kind", STORAGES)
def test_four_workers_one_plan_per_stage(kind: str, tmp_path: Path) -> None:
    where, name = _where(kind, tmp_path), f"w4-{uuid.uuid4().hex[:8]}"
    _create(kind, where, name)
    ctx = mp.get_context("fork")
    outs = [tmp_path / f"out{i}.json" for i in range(WORKERS)]
    procs = [
        ctx.Process(target=_worker, args=(kind, where, name, str(outs[i]), i))
        for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    try:
        assert [p.exitcode for p in procs] == [0] * WORKERS
        study = _load(kind, where, name, 0)
        _check_stages(study, TOTAL + WORKERS - 1)
        stored = {k: study.user_attrs[PLAN_KEY + str(k)] for k in (1, 2)}
        # Exactly one plan per stage: every worker used the stored one. (A worker starved by
        # the OS may see the budget used up before it reaches the last stage.)
        seen: set[str] = set()
        for out in outs:
            used = json.loads(out.read_text())
            assert "1" in used
            seen |= set(used)
            for k, text in used.items():
                assert text == stored[int(k)]
        assert seen == {"1", "2"}
        assert sorted(k for k in study.user_attrs if k.startswith(PLAN_KEY)) == [
            PLAN_KEY + "1",
            PLAN_KEY + "2",
        ]
        _check_plans_followed(study)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        _cleanup(kind, where, name)


# ------------------------------------------------------------------ SIGKILL and restart
_HANG_AT = N + 2  # a trial in the middle of stage 1


def _doomed_worker(kind: str, where: str, name: str, marker: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _load(kind, where, name, 0, heartbeat=kind != "journal")

    def objective(trial: optuna.Trial) -> float:
        value = _objective(trial)
        if trial.number == _HANG_AT:
            Path(marker).write_text("running")
            time.sleep(600)  # killed here
        return value

    StagedStudy(study, STAGES, evaluator=_evaluator(), lag=1).optimize(objective)


@pytest.mark.parametrize("kind", STORAGES)
def test_sigkill_mid_stage_then_restart(kind: str, tmp_path: Path) -> None:
    where, name = _where(kind, tmp_path), f"kill-{uuid.uuid4().hex[:8]}"
    _create(kind, where, name)
    marker = tmp_path / "marker"
    proc = mp.get_context("fork").Process(
        target=_doomed_worker, args=(kind, where, name, str(marker))
    )
    proc.start()
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the worker never reached the trial to kill"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
        assert proc.exitcode == -signal.SIGKILL

        study = _load(kind, where, name, 1, heartbeat=kind != "journal")
        before = study.get_trials(deepcopy=False)
        assert len(before) == _HANG_AT + 1
        assert before[_HANG_AT].state == TrialState.RUNNING
        plan1 = study.user_attrs[PLAN_KEY + "1"]
        assert PLAN_KEY + "2" not in study.user_attrs

        # Restart: the journal has no heartbeat, so a RUNNING trial is stale at once.
        staged = StagedStudy(study, STAGES, evaluator=_evaluator(), lag=1, stale_after=0.0)
        staged.optimize(_objective)
        trials = study.get_trials(deepcopy=False)
        # Exactly the total budget: no stage restarted, nothing run twice, nothing lost.
        assert len(trials) == TOTAL
        _check_stages(study, TOTAL)
        assert study.user_attrs[PLAN_KEY + "1"] == plan1  # plan unchanged
        # Trials finished before the kill are untouched.
        for old, new in zip(before[:_HANG_AT], trials):
            assert (old.state, old.params, old.value) == (new.state, new.params, new.value)
        # The killed trial is failed (by the heartbeat check or as stale), never re-run.
        assert trials[_HANG_AT].state == TrialState.FAIL
        assert _HANG_AT not in staged.plans[2].based_on
        assert sum(t.state == TrialState.COMPLETE for t in trials) == TOTAL - 1
        _check_plans_followed(study)
        staged.optimize(_objective)  # the budget is used: nothing more runs
        assert len(study.get_trials(deepcopy=False)) == TOTAL
    finally:
        if proc.is_alive():
            proc.kill()
        _cleanup(kind, where, name)


# ------------------------------------------------------------------ failing objectives
def _flaky(bad: Callable[[int], str | None]) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        value = _objective(trial)
        kind = bad(trial.number)
        if kind == "raise":
            raise RuntimeError(f"objective failed at trial {trial.number}")
        if kind == "nan":
            return math.nan
        return value

    return objective


def test_raising_and_nan_trials_fail_like_optuna_and_the_stage_continues() -> None:
    # Trials 1 and 9 raise, 2 and 10 return NaN (stage 0 and stage 1).
    bad = {1: "raise", 9: "raise", 2: "nan", 10: "nan"}
    objective = _flaky(bad.get)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    staged = StagedStudy(study, STAGES, evaluator=_evaluator())
    # Without `catch`, the exception propagates exactly as from Study.optimize...
    with pytest.raises(RuntimeError, match="objective failed at trial 1"):
        staged.optimize(objective)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    # ...and the same call continues the stage from where it stopped.
    staged.optimize(objective, catch=(RuntimeError,))
    trials = study.trials
    assert len(trials) == TOTAL
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    assert failed == [1, 2, 9, 10]
    # NaN: Optuna's own FAIL (no value stored); every trial keeps its stage tag.
    assert trials[2].value is None and trials[10].value is None
    assert [t.user_attrs[STAGE_KEY] for t in trials] == [0] * N + [1] * N + [2] * N
    plans = staged.plans
    # Plans are made from the complete trials only.
    assert plans[1].based_on == tuple(n for n in range(N) if n not in (1, 2))
    assert plans[2].based_on == tuple(n for n in range(N, 2 * N) if n not in (9, 10))


@pytest.mark.parametrize("how", ["raise", "nan"])
def test_a_stage_whose_trials_all_fail_stops_with_a_clear_error(how: str) -> None:
    stages = [Stage(4), Stage(3, freeze=True), Stage(3)]
    objective = _flaky(lambda n: how if 4 <= n < 7 else None)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    staged = StagedStudy(study, stages, evaluator=_evaluator())
    message = r"Stage 1 \('' *\) has no COMPLETE trial among trials 4..6"
    with pytest.raises(ValueError, match=message):
        staged.optimize(objective, catch=(RuntimeError,))
    # Stage 2 was never planned on nothing; the trial that asked for it is not left RUNNING.
    assert PLAN_KEY + "2" not in study.user_attrs
    assert all(t.state.is_finished() for t in study.trials)
    assert len(study.trials) == 8
    # Trying again gives the same error instead of running stage 2.
    with pytest.raises(ValueError, match=message):
        staged.optimize(objective, catch=(RuntimeError,))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert all(t.state == TrialState.FAIL for t in study.trials[4:])
