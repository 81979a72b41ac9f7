"""StagedStudy in pipelines that already exist: history, roles, long trials, batch ask, races."""

from __future__ import annotations

from collections.abc import Iterator
import datetime
import json
import logging
import math
import random
import threading
import time
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.importance import BaseImportanceEvaluator
from optuna.trial import create_trial
from optuna.trial import TrialState
import pytest

from optuna_hpi import load_plans
from optuna_hpi import Stage
from optuna_hpi import StagedSampler
from optuna_hpi import StagedStudy
from optuna_hpi.staged import PlanRules
from optuna_hpi.staged._plan import compute_plan
from optuna_hpi.staged._plan import CONFIG_KEY
from optuna_hpi.staged._plan import initial_plan
from optuna_hpi.staged._plan import Schedule
from optuna_hpi.staged._plan import STAGE_KEY


class RandomEvaluator(BaseImportanceEvaluator):
    """A foreign, unseeded evaluator: two calls give two different answers."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.calls = 0
        self.barrier = barrier

    def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict[str, float]:
        self.calls += 1
        if self.barrier is not None:
            try:
                self.barrier.wait(timeout=2.0)  # both workers inside at once, if both compute
            except threading.BrokenBarrierError:
                pass
        return {p: random.random() for p in params}


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    wd = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
    units = trial.suggest_int("units", 8, 64)
    return (math.log10(lr) + 2) ** 2 + wd + 1.0 / units


@pytest.fixture
def optuna_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # Optuna's root logger does not propagate; attach pytest's handler to it directly.
    root = logging.getLogger("optuna")
    root.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="optuna")
    yield caplog
    root.removeHandler(caplog.handler)


def test_existing_trials_are_history_and_the_run_starts_at_stage_0() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage, study_name="s", sampler=optuna.samplers.TPESampler(seed=0)
    )
    study.optimize(objective, n_trials=30)
    staged = StagedStudy.three_stage(study, n_trials=(6, 6, 6))
    staged.optimize(objective, n_trials=3)
    new = study.trials[30:]
    assert [t.user_attrs[STAGE_KEY] for t in new] == [0, 0, 0]
    assert all(STAGE_KEY not in t.user_attrs for t in study.trials[:30])
    assert json.loads(study.user_attrs[CONFIG_KEY])["offset"] == 30
    # A resume (another process, same stages) agrees on the offset and finishes the budget.
    again = optuna.load_study(
        study_name="s", storage=storage, sampler=optuna.samplers.TPESampler(seed=1)
    )
    resumed = StagedStudy.three_stage(again, n_trials=(6, 6, 6))
    resumed.optimize(objective)
    assert len(study.trials) == 30 + 18
    stages = [t.user_attrs[STAGE_KEY] for t in study.trials[30:]]
    assert stages == [0] * 4 + [1] * 2 + [2] * 6 + [3] * 6
    plans = load_plans(study)
    assert [p.start for p in plans] == [30, 34, 36, 42]
    # The history warm-starts the first plan: its incumbent may be an earlier trial.
    best_early = min(study.trials[:34], key=lambda t: t.value)  # type: ignore[arg-type,return-value]
    assert plans[1].best_trial == best_early.number


def test_unknown_role_and_stage_without_its_role(optuna_logs: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match=r"Unknown role 'learningrate'.*valid roles"):
        StagedStudy.three_stage(optuna.create_study(), roles={"lr": "learningrate"})

    def no_lr(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        y = trial.suggest_int("y", 0, 10)
        return x**2 + 0.1 * y

    # A first stage that moves only the learning rate, and no parameter has that role: it
    # must not evaluate one configuration over and over.
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    stages = [Stage(10, roles=("learning_rate",)), Stage(10)]
    StagedStudy(study, stages).optimize(no_lr)
    configs = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(set(configs[:10])) == 10
    assert any(
        "none of the parameters ['x', 'y'] has" in r.getMessage() for r in optuna_logs.records
    )
    # Same in the three-stage preset, whose learning-rate stage comes after the warm start.
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    staged = StagedStudy.three_stage(study, n_trials=(10, 6, 6))
    staged.optimize(no_lr)
    configs = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(set(configs)) == len(configs)
    assert "pass roles=" in staged.plans[1].reasons["x"]


def test_roles_and_defaults_are_part_of_the_stored_config() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s")
    StagedStudy.three_stage(study, n_trials=(6, 6, 6), roles={"units": "regularization"}).optimize(
        objective, n_trials=2
    )
    stored = json.loads(study.user_attrs[CONFIG_KEY])
    assert stored["roles"] == {"units": "regularization"}
    again = optuna.load_study(study_name="s", storage=storage)
    with pytest.raises(ValueError, match="different roles"):
        StagedStudy.three_stage(again, n_trials=(6, 6, 6)).optimize(objective, n_trials=1)
    again = optuna.load_study(study_name="s", storage=storage)
    # Defaults also change the preset's stages (exact holds instead of windows).
    with pytest.raises(ValueError, match="different (stages|defaults)"):
        StagedStudy.three_stage(
            again, n_trials=(6, 6, 6), roles={"units": "regularization"}, defaults={"units": 8}
        ).optimize(objective, n_trials=1)
    # The refused trials are failed, not left running.
    assert all(t.state != TrialState.RUNNING for t in study.trials)


def test_describe_shows_roles_and_defaults_before_the_search() -> None:
    study = optuna.create_study()
    staged = StagedStudy.three_stage(study, n_trials=(8, 6, 6), defaults={"units": 16})
    text = staged.describe()
    assert "stage 1 'learning_rate' (trials 0..." not in text  # no offset known yet: from 0
    assert "stage 1 'learning_rate'" in text and "roles ['learning_rate']" in text
    study.enqueue_trial({"lr": 0.01, "weight_decay": 1e-3, "units": 16})
    study.optimize(objective, n_trials=1)  # the first trial reveals the names
    text = staged.describe()
    assert "lr: role learning_rate, free in stages 0, 1, 2, 3" in text
    assert "weight_decay: role regularization, free in stages 0, 2, 3" in text
    assert "units: role other, free in stages 0, 3, default 16" in text


def test_a_live_trial_of_another_worker_is_never_failed_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = optuna.storages.InMemoryStorage()
    stages = [Stage(2), Stage(2)]
    evaluator = RandomEvaluator()
    a = optuna.create_study(
        storage=storage, study_name="s", sampler=StagedSampler(None, stages, evaluator=evaluator)
    )
    b = optuna.load_study(
        study_name="s", storage=storage, sampler=StagedSampler(None, stages, evaluator=evaluator)
    )
    long_trial = b.ask()  # worker B's trial 0: it runs for "an hour"
    long_trial.suggest_float("lr", 1e-4, 1.0, log=True)
    t1 = a.ask()
    a.tell(t1, objective(t1))

    # The clock says trial 0 started an hour ago.
    real = datetime.datetime

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            return real.now(tz) + datetime.timedelta(hours=1)

    monkeypatch.setattr("optuna_hpi.staged._sampler.datetime.datetime", Later)
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(a.ask()), daemon=True)
    thread.start()  # worker A's trial 2 starts stage 1 and waits for trial 0
    time.sleep(1.0)
    assert storage.get_trial(long_trial._trial_id).state == TrialState.RUNNING
    b.tell(long_trial, 1.0)  # the owner finishes: its result must not be lost
    thread.join(timeout=30)
    assert done and done[0].number == 2
    assert storage.get_trial(long_trial._trial_id).state == TrialState.COMPLETE
    assert load_plans(a)[1].cutoff == 2


def test_batch_ask_does_not_hang(optuna_logs: pytest.LogCaptureFixture) -> None:
    sampler = StagedSampler(
        optuna.samplers.RandomSampler(seed=0), [Stage(3), Stage(3)], rules=PlanRules(min_trials=2)
    )
    study = optuna.create_study(sampler=sampler)
    asked: list[Any] = []

    def batch() -> None:  # in a thread, so that a hang fails the test instead of blocking it
        trials = [study.ask() for _ in range(3)]
        for t in trials:
            t.suggest_float("x", 0.0, 1.0)
        study.tell(trials[0], 0.5)
        study.tell(trials[1], 0.2)
        asked.append(study.ask())  # first trial of stage 1; trial 2 is still unfinished here

    thread = threading.Thread(target=batch, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert asked, "study.ask() blocked on trials this thread holds"
    plan = load_plans(study)[1]
    assert plan.excluded == (2,) and plan.best_trial == 1
    assert any("lag >= 1" in r.getMessage() for r in optuna_logs.records)

    # Nothing finished at all: a clear error that names `lag`, and no trial left running.
    study = optuna.create_study(sampler=StagedSampler(None, [Stage(2), Stage(2)]))
    first = [study.ask() for _ in range(2)]
    for t in first:
        t.suggest_float("x", 0.0, 1.0)
    with pytest.raises(ValueError, match="lag >= 2"):
        study.ask()
    assert study.trials[-1].state == TrialState.FAIL


def test_one_plan_per_stage_even_with_an_unseeded_foreign_evaluator() -> None:
    storage = optuna.storages.InMemoryStorage()
    stages = [Stage(3), Stage(3)]
    evaluator = RandomEvaluator(threading.Barrier(2))
    rules = PlanRules(min_trials=2)

    def worker_study() -> optuna.Study:
        sampler = StagedSampler(
            optuna.samplers.RandomSampler(seed=0), stages, evaluator=evaluator, rules=rules
        )
        return optuna.load_study(study_name="s", storage=storage, sampler=sampler)

    optuna.create_study(storage=storage, study_name="s")
    a, b = worker_study(), worker_study()
    a.optimize(objective, n_trials=3)
    asked: dict[str, Any] = {}
    ta = threading.Thread(target=lambda: asked.setdefault("a", a.ask()), daemon=True)
    ta.start()
    while len(storage.get_all_trials(a._study_id, deepcopy=False)) < 4:
        time.sleep(0.01)
    tb = threading.Thread(target=lambda: asked.setdefault("b", b.ask()), daemon=True)
    tb.start()  # both workers reach stage 1 while its plan is being computed
    ta.join(timeout=30)
    tb.join(timeout=30)
    assert {asked["a"].number, asked["b"].number} == {3, 4}
    assert evaluator.calls == 1
    plan_a = a.sampler._plans[1]  # type: ignore[attr-defined]
    plan_b = b.sampler._plans[1]  # type: ignore[attr-defined]
    assert plan_a.to_json() == plan_b.to_json() == load_plans(a)[1].to_json()


def test_plans_from_too_little_evidence_keep_parameters_free() -> None:
    dists = {"a": FloatDistribution(0.0, 1.0), "b": FloatDistribution(0.0, 1.0)}
    trials = []
    for i in range(10):
        pruned = i % 2 == 1
        t = create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else float(i),
            params={"a": 0.1 * i, "b": 0.05 * i},
            distributions=dists,
        )
        t.number = i
        trials.append(t)
    schedule = Schedule([Stage(10), Stage(5, freeze=True), Stage(5)])

    class Fixed(BaseImportanceEvaluator):
        def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict:
            return {"a": 0.99, "b": 0.0}

    plan = compute_plan(
        1, schedule, 10, trials, [optuna.study.StudyDirection.MINIMIZE],
        [initial_plan(schedule)], Fixed(), PlanRules(), {}, {},
    )  # fmt: skip
    assert plan.n_complete == 5 and plan.n_pruned == 5
    assert plan.frozen == {} and plan.narrowed == {} and plan.importances == {}
    assert "too few complete trials for importances (5 < 10" in plan.reasons["b"]


def test_stage_changes_are_logged_and_shown_in_the_progress_bar(
    optuna_logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    StagedStudy.three_stage(study, n_trials=(8, 6, 6)).optimize(objective, show_progress_bar=True)
    messages = [r.getMessage() for r in optuna_logs.records]
    starts = [m for m in messages if m.startswith("Stage ")]
    assert [m.split(" from trial ")[0] for m in starts] == [
        "Stage 0 'warm_start'",
        "Stage 1 'learning_rate'",
        "Stage 2 'regularization'",
        "Stage 3 'fine_tune'",
    ]
    assert "moves ['lr', 'units', 'weight_decay']" in starts[1]
    assert "keeps near the best trial units in [" in starts[1]
    err = capsys.readouterr().err
    assert "stage 3/3 'fine_tune'" in err and "20/20" in err


@pytest.mark.parametrize("preset", ["three_stage", "importance_driven"])
def test_presets_as_samplers_for_ask_and_tell(preset: str) -> None:
    sampler = getattr(StagedSampler, preset)(
        optuna.samplers.RandomSampler(seed=0), n_trials=(8, 6, 6)
    )
    study = optuna.create_study(sampler=sampler)
    for _ in range(20):
        trial = study.ask()
        study.tell(trial, objective(trial))
    stages = [t.user_attrs[STAGE_KEY] for t in study.trials]
    expected = [0] * 4 + [1] * 4 + [2] * 6 + [3] * 6 if preset == "three_stage" else None
    assert stages == (expected or [0] * 8 + [1] * 6 + [2] * 6)
    assert [p.name for p in load_plans(study)] == [s.name for s in sampler.stages]
