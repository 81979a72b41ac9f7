from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.importance import BaseImportanceEvaluator
from optuna.trial import create_trial
from optuna.trial import TrialState
import pytest

from optuna_hpi import SobolImportanceEvaluator
from optuna_hpi import Stage
from optuna_hpi import StagedSampler
from optuna_hpi import StagedStudy
from optuna_hpi import StagePlan
from optuna_hpi import SurrogateConfig
from optuna_hpi.staged import default_value
from optuna_hpi.staged import infer_role
from optuna_hpi.staged import load_plans
from optuna_hpi.staged import PlanRules
from optuna_hpi.staged._plan import compute_plan
from optuna_hpi.staged._plan import initial_plan
from optuna_hpi.staged._plan import Schedule
from optuna_hpi.staged._sampler import PLAN_KEY
from optuna_hpi.staged._sampler import STAGE_KEY


def fast_evaluator() -> SobolImportanceEvaluator:
    return SobolImportanceEvaluator(
        index="total",
        n_samples=64,
        n_bootstrap=8,
        surrogate=SurrogateConfig(max_iter=20, learning_rate=0.3),
        seed=0,
    )


class FixedEvaluator(BaseImportanceEvaluator):
    """A foreign evaluator with known answers (its values are used as both interval ends)."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values
        self.calls: list[list[str] | None] = []

    def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict[str, float]:
        self.calls.append(params)
        return {p: self.values[p] for p in (params or self.values)}


LR = FloatDistribution(1e-5, 1.0, log=True)
ALPHA = FloatDistribution(1e-8, 1.0, log=True)
WIDTH = IntDistribution(16, 1024, log=True)


def mlp_like(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("learning_rate", 1e-5, 1.0, log=True)
    alpha = trial.suggest_float("alpha", 1e-8, 1.0, log=True)
    width = trial.suggest_int("width", 16, 1024, log=True)
    return (math.log10(lr) + 2.0) ** 2 + 0.05 * (math.log10(alpha) + 4) ** 2 + 10.0 / width


# Real parameter names from scikit-learn, LightGBM, XGBoost and PyTorch code, and their role.
ROLE_TABLE = {
    # scikit-learn
    "learning_rate_init": "learning_rate",
    "eta0": "learning_rate",
    "alpha": "regularization",
    "C": "regularization",
    "l1_ratio": "regularization",
    "max_depth": "regularization",
    "min_samples_leaf": "regularization",
    "max_features": "regularization",
    "hidden_layer_sizes": "other",
    "n_estimators": "other",
    "batch_size": "other",
    "momentum": "other",
    # LightGBM
    "learning_rate": "learning_rate",
    "num_leaves": "other",
    "lambda_l1": "regularization",
    "lambda_l2": "regularization",
    "reg_alpha": "regularization",
    "min_child_samples": "regularization",
    "min_data_in_leaf": "regularization",
    "feature_fraction": "regularization",
    "bagging_fraction": "regularization",
    "bagging_freq": "other",
    # XGBoost
    "eta": "learning_rate",
    "gamma": "regularization",
    "min_child_weight": "regularization",
    "subsample": "regularization",
    "colsample_bytree": "regularization",
    "lambda": "regularization",
    # PyTorch
    "lr": "learning_rate",
    "base_lr": "learning_rate",
    "max_lr": "learning_rate",
    "lr_head": "learning_rate",
    "encoder_lr": "learning_rate",
    "baseLR": "learning_rate",
    "weight_decay": "regularization",
    "dropout": "regularization",
    "drop_rate": "regularization",
    "n_units_l1": "other",
    "hidden_l2": "other",
    "n_layers": "other",
    "optimizer": "other",
    "eps": "other",
    "width": "other",
}


@pytest.mark.parametrize("name", sorted(ROLE_TABLE))
def test_roles_by_whole_tokens(name: str) -> None:
    assert infer_role(name) == ROLE_TABLE[name], name


def test_defaults_and_unknown_roles() -> None:
    assert default_value(FloatDistribution(1e-4, 1.0, log=True)) == pytest.approx(1e-2)
    assert default_value(FloatDistribution(0.0, 0.9, step=0.3)) == pytest.approx(0.6)
    assert default_value(IntDistribution(1, 3)) == 2
    assert default_value(IntDistribution(16, 1024, log=True)) == 128
    assert default_value(CategoricalDistribution(["adam", "sgd"])) == "adam"
    with pytest.raises(ValueError, match="Unknown role 'learningrate'.*'learning_rate'"):
        StagedStudy.three_stage(optuna.create_study(), roles={"lr": "learningrate"})
    # A role that a stage names is valid.
    StagedSampler(None, [Stage(3, roles=("head",)), Stage(3)], roles={"lr_head": "head"})


def test_three_stage_holds_the_incumbent_and_keeps_user_distributions() -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    staged = StagedStudy.three_stage(
        study, n_trials=(16, 10, 8), defaults={"width": 64}, evaluator=fast_evaluator()
    )
    staged.optimize(mlp_like)
    trials = study.trials
    assert len(trials) == 34
    # A warm start of 4 full-space trials, then learning rate, regularization, fine-tune.
    assert [t.user_attrs[STAGE_KEY] for t in trials] == [0] * 4 + [1] * 12 + [2] * 10 + [3] * 8
    assert trials[0].params["width"] == 64  # the user's defaults are evaluated first
    assert len({t.params["alpha"] for t in trials[:4]}) == 4
    plans = staged.plans
    assert [p.stage for p in plans] == [0, 1, 2, 3]
    # Stage 1: only the learning rate moves; the others sit at the warm start's best values.
    best = trials[plans[1].best_trial]  # type: ignore[index]
    assert plans[1].best_trial == min(trials[:4], key=lambda t: t.value).number  # type: ignore
    assert plans[1].frozen == {"alpha": best.params["alpha"], "width": best.params["width"]}
    assert {t.params["width"] for t in trials[4:16]} == {best.params["width"]}
    assert {t.params["alpha"] for t in trials[4:16]} == {best.params["alpha"]}
    assert len({t.params["learning_rate"] for t in trials[4:16]}) == 12
    # Stage 2: width held at the incumbent's value, alpha moves, the learning rate is narrowed.
    assert plans[2].frozen == {"width": best.params["width"]}
    assert {t.params["width"] for t in trials[16:26]} == {best.params["width"]}
    assert len({t.params["alpha"] for t in trials[16:26]}) == 10
    assert "learning_rate" in plans[2].narrowed
    # The last stage moves everything again over the user's ranges.
    assert len({t.params["width"] for t in trials[26:]}) > 1
    assert plans[3].frozen == {} and plans[3].narrowed == {}
    for k in (1, 2, 3):
        for name, narrow in plans[k].narrowed.items():
            lo, hi = plans[k].start, plans[k].stop or len(trials)
            for t in trials[lo:hi]:
                assert narrow.low <= t.params[name] <= narrow.high  # type: ignore[attr-defined]
    for t in trials:
        assert t.distributions == {"learning_rate": LR, "alpha": ALPHA, "width": WIDTH}
    # Plans live in the study's user attributes as JSON and round-trip exactly.
    for k in (1, 2, 3):
        raw = study.user_attrs[PLAN_KEY + str(k)]
        assert StagePlan.from_json(raw).to_json() == raw
    assert [p.to_json() for p in load_plans(study)] == [p.to_json() for p in plans]
    # Optuna's own tools still work on the staged study.
    assert set(optuna.importance.get_param_importances(study)) == {
        "learning_rate",
        "alpha",
        "width",
    }


def test_three_stage_without_defaults_keeps_the_others_in_windows_around_the_warm_start() -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    staged = StagedStudy.three_stage(study, n_trials=(16, 10, 8), evaluator=fast_evaluator())
    staged.optimize(mlp_like)
    trials = study.trials
    plans = staged.plans
    assert [p.stage for p in plans] == [0, 1, 2, 3]
    # Stage 1: the learning rate moves over its range; the others follow in windows of 90 %
    # of their (log) range around the warm start's best values.
    best = trials[plans[1].best_trial]  # type: ignore[index]
    assert plans[1].best_trial == min(trials[:4], key=lambda t: t.value).number  # type: ignore
    assert plans[1].frozen == {} and set(plans[1].narrowed) == {"alpha", "width"}
    for name, full in (("alpha", ALPHA), ("width", WIDTH)):
        window = plans[1].narrowed[name]
        assert window.low <= best.params[name] <= window.high  # type: ignore[attr-defined]
        assert (window.low, window.high) != (full.low, full.high)  # type: ignore[attr-defined]
    assert len({t.params["learning_rate"] for t in trials[4:16]}) == 12
    assert len({t.params["alpha"] for t in trials[4:16]}) > 1
    # Stage 2: alpha joins the learning rate (either narrowed when confidently important);
    # width still follows in a window around the incumbent.
    best2 = trials[plans[2].best_trial]  # type: ignore[index]
    assert plans[2].frozen == {} and "alpha" in plans[2].free
    window = plans[2].narrowed["width"]
    assert window.low <= best2.params["width"] <= window.high  # type: ignore[attr-defined]
    assert plans[3].frozen == {} and plans[3].narrowed == {}


class SpySampler(optuna.samplers.RandomSampler):
    """Records, per call, the history of the parameter the base sampler is asked for."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[tuple[int, str, BaseDistribution, list[Any]]] = []
        self.n_complete: list[int] = []  # complete trials the base sampler was shown, per call

    def sample_independent(
        self, study: Any, trial: Any, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        history = [t.params[param_name] for t in complete if param_name in t.params]
        self.seen.append((trial.number, param_name, param_distribution, history))
        self.n_complete.append(len(complete))
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_unfrozen_param_history_shows_held_values_as_uninformative_draws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 'noise' has no effect: frozen in the focus stage, free again in the final stage. The base
    # sampler must not see the focus stage's constant values (the unfreezing trap), yet it must
    # keep those trials (a multivariate model needs them); while a parameter is narrowed it
    # must not see values outside the narrowed range.
    evaluator = FixedEvaluator({"x": 0.98, "noise": 0.0})
    local = ({"x": 1.0, "noise": 0.0}, {"x": (0.9, 1.0), "noise": (0.0, 0.01)})
    monkeypatch.setattr("optuna_hpi.staged._plan.local_effects", lambda *a, **k: local)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        noise = trial.suggest_float("noise", 0.0, 1.0)
        return (x - 0.3) ** 2 + 0.0 * noise

    spy = SpySampler()
    study = optuna.create_study(sampler=spy)
    stages = [Stage(10, narrow=False), Stage(10, freeze=True), Stage(10)]
    staged = StagedStudy(study, stages, evaluator=evaluator)
    staged.optimize(objective)
    plan = staged.plans[1]
    frozen = plan.frozen["noise"]
    assert plan.free == ("x",)
    assert plan.local == local[0]
    assert [t.params["noise"] for t in study.trials[10:20]] == [frozen] * 10
    explore = [t.params["noise"] for t in study.trials[:10]]
    final_calls = [c for c in spy.seen if c[0] >= 20 and c[1] == "noise"]
    assert len(final_calls) == 10
    for number, _, dist, history in final_calls:
        assert dist == FloatDistribution(0.0, 1.0)
        shown_focus = history[10:20]
        # Every trial is shown; the focus stage's held value is replaced by distinct draws.
        assert len(history) == number
        assert history[:10] == explore
        assert frozen not in shown_focus and len(set(shown_focus)) == 10
        assert all(0.0 <= v <= 1.0 for v in shown_focus)
        assert history[20:] == [t.params["noise"] for t in study.trials[20:number]]
    # The draws are a pure function of (trial, parameter): every call shows the same ones.
    assert len({tuple(h[10:20]) for *_, h in final_calls}) == 1
    # x is narrowed in the focus stage: the base sampler gets the narrowed copy and only the
    # history inside it; the stored distribution stays the user's.
    narrow = plan.narrowed["x"]
    assert isinstance(narrow, FloatDistribution)
    for number, _, dist, history in (c for c in spy.seen if 10 <= c[0] < 20 and c[1] == "x"):
        assert dist == narrow
        assert all(narrow.low <= v <= narrow.high for v in history)
        assert study.trials[number].distributions["x"] == FloatDistribution(-1.0, 1.0)
    # Importances were asked for the previous stage's free params only.
    assert evaluator.calls[0] == ["noise", "x"]
    assert evaluator.calls[1] == ["x"]


@pytest.mark.parametrize("preset", ["three_stage", "importance_driven"])
def test_preset_final_stage_searches_full_ranges_with_free_history(preset: str) -> None:
    # The learning rate is narrowed in a middle stage (confident importance); the last stage
    # must hand the base sampler the user's full range and every earlier value drawn while lr
    # was free, including those outside the narrowed range, so that the joint optimum stays
    # reachable.
    spy = SpySampler()
    study = optuna.create_study(sampler=spy)
    evaluator = FixedEvaluator({"learning_rate": 0.9, "alpha": 0.08, "width": 0.02})
    budgets = (10, 8, 6) if preset == "three_stage" else (8, 8, 6)
    staged = getattr(StagedStudy, preset)(
        study, n_trials=budgets, evaluator=evaluator, rules=PlanRules(min_trials=4)
    )
    staged.optimize(mlp_like)
    plans = staged.plans
    middle, last = plans[-2], plans[-1]
    narrow = middle.narrowed["learning_rate"]
    assert isinstance(narrow, FloatDistribution)
    assert last.narrowed == {}
    assert last.free == ("alpha", "learning_rate", "width")
    outside = [
        t.params["learning_rate"]
        for t in study.trials[: middle.start]
        if not narrow.low <= t.params["learning_rate"] <= narrow.high
    ]
    assert outside, "no learning rate drawn outside the narrowed range; change the seed"
    final_calls = [c for c in spy.seen if c[0] >= last.start and c[1] == "learning_rate"]
    assert len(final_calls) == 6
    for number, _, dist, history in final_calls:
        assert dist == LR
        assert set(outside) <= set(history)
        assert len(history) == number  # every earlier trial had lr free


def _trial(number: int, value: float, params: dict[str, Any], dists: dict[str, Any]) -> Any:
    t = create_trial(value=value, params=params, distributions=dists)
    t.number = number
    return t


def test_plan_rules_known_answer() -> None:
    dists = {
        "a": FloatDistribution(0.0, 10.0),
        "b": FloatDistribution(0.0, 1.0),
        "c": CategoricalDistribution(["x", "y", "z"]),
        "d": IntDistribution(1, 3),
    }
    trials = [
        _trial(
            i,
            float(abs(i - 4)),
            {"a": float(i), "b": 0.1 * i, "c": "xyz"[i % 3], "d": 1 + i % 3},
            dists,
        )
        for i in range(10)
    ]
    schedule = Schedule([Stage(10), Stage(5, freeze=True), Stage(5)])
    evaluator = FixedEvaluator({"a": 0.5, "b": 0.01, "c": 0.3, "d": 0.19})
    rules = PlanRules(freeze_below=0.05, narrow_above=0.1, top_fraction=0.2, pad=0.5)
    plan = compute_plan(
        1, schedule, 10, trials, [optuna.study.StudyDirection.MINIMIZE],
        [initial_plan(schedule)], evaluator, rules, {}, {},
    )  # fmt: skip
    # b is unimportant: frozen at the best trial's value (trial 4, b = 0.4).
    assert plan.frozen == {"b": pytest.approx(0.4)}
    # a: top 20% (>= 3 trials) are a = 3, 4, 5 -> width 2, pad max(1, 0.1 * 10) = 1 -> [2, 6].
    assert plan.narrowed["a"] == FloatDistribution(2.0, 6.0)
    # c is categorical: important but never reduced.
    assert "c" in plan.free and "c" not in plan.narrowed
    # d: best trials have d = 1 + {3,4,5} % 3 = {1, 2, 3} -> padded range is the whole range.
    assert "d" in plan.free and "d" not in plan.narrowed
    assert plan.based_on == tuple(range(10))
    again = compute_plan(
        1, schedule, 10, trials, [optuna.study.StudyDirection.MINIMIZE],
        [initial_plan(schedule)], evaluator, rules, {}, {},
    )  # fmt: skip
    assert again.to_json() == plan.to_json()


def test_narrowing_is_grid_aligned_and_never_zero_width() -> None:
    dists = {
        "s": FloatDistribution(0.0, 1.0, step=0.1),
        "k": IntDistribution(2, 20, step=3),
        "one": IntDistribution(1, 3),
    }
    trials = [
        _trial(i, float(i), {"s": round(0.1 * (i % 11), 1), "k": 2 + 3 * (i % 7), "one": 2}, dists)
        for i in range(10)
    ]
    trials[0] = _trial(0, -1.0, {"s": 0.5, "k": 11, "one": 2}, dists)
    schedule = Schedule([Stage(10), Stage(5)])
    evaluator = FixedEvaluator({"s": 0.4, "k": 0.4, "one": 0.2})
    plan = compute_plan(
        1, schedule, 10, trials, [optuna.study.StudyDirection.MINIMIZE],
        [initial_plan(schedule)], evaluator, PlanRules(), {}, {},
    )  # fmt: skip
    # Best trials 0, 1, 2: s = 0.5, 0.1, 0.2 -> [0.1, 0.5] padded by 0.2 -> [0, 0.7] on the grid.
    s = plan.narrowed["s"]
    assert isinstance(s, FloatDistribution)
    assert (s.low, s.high, s.step) == (pytest.approx(0.0), pytest.approx(0.7), 0.1)
    # k: 11, 5, 8 -> [5, 11] padded by 3 -> [2, 14], on the 2 + 3j grid.
    assert plan.narrowed["k"] == IntDistribution(2, 14, step=3)
    # 'one' only ever took 2: a one-value range is frozen instead of handed to the sampler.
    assert plan.frozen == {"one": 2}


def test_clear_error_when_a_stage_has_no_complete_trial() -> None:
    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        raise ValueError("boom")

    study = optuna.create_study()
    staged = StagedStudy(study, [Stage(3), Stage(3)], evaluator=fast_evaluator())
    with pytest.raises(ValueError, match="Stage 0 .* has no COMPLETE trial"):
        staged.optimize(objective, catch=(ValueError,))
    assert study.trials[-1].state == TrialState.FAIL
    assert len(study.trials) == 4


def test_config_mismatch_and_cmaes_are_refused() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s")
    StagedStudy(study, [Stage(3), Stage(3)], evaluator=fast_evaluator()).optimize(mlp_like)
    again = optuna.load_study(study_name="s", storage=storage)
    with pytest.raises(ValueError, match="different stages"):
        StagedStudy(again, [Stage(4), Stage(3)]).optimize(mlp_like)
    with pytest.raises(TypeError, match="CmaEsSampler"):
        StagedSampler(optuna.samplers.CmaEsSampler(), [Stage(3)])
    with pytest.raises(TypeError, match="CmaEsSampler"):
        StagedStudy(optuna.create_study(sampler=optuna.samplers.CmaEsSampler()), [Stage(3)])
    with pytest.raises(ValueError, match="lag"):
        StagedSampler(None, [Stage(3), Stage(3)], lag=3)
    with pytest.raises(TypeError, match="tuple of str"):
        Stage(3, params="lr")  # type: ignore[arg-type]


def test_unseeded_evaluator_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    # Processes would draw different seeds and could disagree on a stage's plan.
    with caplog.at_level("WARNING"):
        StagedSampler(None, [Stage(3)], evaluator=SobolImportanceEvaluator(seed=0))
    assert not caplog.records
    with caplog.at_level("WARNING"):
        StagedSampler(None, [Stage(3)], evaluator=SobolImportanceEvaluator())
    assert any("no `seed`" in r.getMessage() for r in caplog.records)


def test_pruner_threads_and_ask_and_tell() -> None:
    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
        loss = abs(math.log10(lr) + 2) + wd
        for step in range(5):
            trial.report(loss + 1.0 / (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return loss

    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    staged = StagedStudy.three_stage(study, n_trials=(6, 6, 6), evaluator=fast_evaluator())
    staged.optimize(objective, n_jobs=2)
    states = [t.state for t in study.trials]
    assert len(states) >= 18 and TrialState.PRUNED in states
    assert len(staged.plans) == 4
    # Threads -> the lag became n_jobs - 1 and plans used only trials below start - lag.
    assert staged.plans[2].cutoff == 5 and all(n < 5 for n in staged.plans[2].based_on)

    sampler = StagedSampler(
        optuna.samplers.RandomSampler(seed=0),
        [Stage(4, params=("lr",)), Stage(4)],
        evaluator=fast_evaluator(),
    )
    tell_study = optuna.create_study(sampler=sampler)
    for _ in range(8):
        trial = tell_study.ask()
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        units = trial.suggest_categorical("units", [8, 16, 32])
        tell_study.tell(trial, lr + 1.0 / units)
    assert [t.params["units"] for t in tell_study.trials[:4]] == [8] * 4
    assert [t.user_attrs[STAGE_KEY] for t in tell_study.trials] == [0] * 4 + [1] * 4
    assert json.loads(tell_study.user_attrs["optuna_hpi:staged:config"])["lag"] == 0


def _gp_sampler() -> optuna.samplers.BaseSampler:
    pytest.importorskip("torch", reason="GPSampler needs torch (.ci/run installs it)")
    return optuna.samplers.GPSampler(seed=0, n_startup_trials=4)


@pytest.mark.parametrize(
    "make_base",
    [
        lambda: optuna.samplers.TPESampler(seed=0, multivariate=True, n_startup_trials=4),
        lambda: optuna.samplers.RandomSampler(seed=0),
        lambda: optuna.samplers.QMCSampler(seed=0, warn_independent_sampling=False),
        _gp_sampler,
    ],
    ids=["tpe-multivariate", "random", "qmc", "gp"],
)
def test_any_base_sampler_obeys_the_plans(make_base: Any) -> None:
    study = optuna.create_study(sampler=make_base())
    evaluator = FixedEvaluator({"learning_rate": 0.9, "alpha": 0.08, "width": 0.02})
    staged = StagedStudy.three_stage(
        study,
        n_trials=(8, 6, 6),
        evaluator=evaluator,
        rules=PlanRules(min_trials=2),
    )
    staged.optimize(mlp_like)
    trials = study.trials
    plans = staged.plans
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 20
    assert set(plans[1].narrowed) == {"alpha", "width"}  # windows around the incumbent
    assert set(plans[2].narrowed) == {"learning_rate", "width"}
    for plan in plans[1:]:
        for t in trials[plan.start : plan.stop]:
            for name, value in plan.frozen.items():
                assert t.params[name] == value
            for name, narrow in plan.narrowed.items():
                assert narrow._contains(narrow.to_internal_repr(t.params[name])), (t.number, name)
    assert plans[3].narrowed == {} and len({t.params["width"] for t in trials[14:]}) > 1
    for t in trials:
        assert t.distributions == {"learning_rate": LR, "alpha": ALPHA, "width": WIDTH}
        for name, value in t.params.items():
            dist = t.distributions[name]
            assert dist._contains(dist.to_internal_repr(value)), (t.number, name, value)


def test_local_stage_searches_a_window_around_the_incumbent_with_full_range_fallback() -> None:
    spy = SpySampler()
    study = optuna.create_study(sampler=spy)
    stages = [Stage(8, narrow=False), Stage(8, narrow=False, local=0.2, full_every=4)]
    staged = StagedStudy(study, stages, evaluator=fast_evaluator())
    staged.optimize(mlp_like)
    plan = staged.plans[1]
    best = study.trials[plan.best_trial]  # type: ignore[index]
    window = plan.narrowed["learning_rate"]
    assert isinstance(window, FloatDistribution) and window.log
    # A fifth of the log range, centred on the incumbent (clipped to the user's range).
    span = math.log(LR.high / LR.low)
    assert math.log(window.high / window.low) == pytest.approx(0.2 * span, rel=1e-6) or (
        window.low == LR.low or window.high == LR.high
    )
    assert window.low <= best.params["learning_rate"] <= window.high
    for number, name, dist, _ in (c for c in spy.seen if c[0] >= 8):
        fallback = (number - 8) % 4 == 0
        assert dist == (
            study.trials[number].distributions[name] if fallback else plan.narrowed[name]
        )
    with pytest.raises(ValueError, match="local"):
        Stage(3, local=1.5)
    with pytest.raises(ValueError, match="full_every"):
        Stage(3, full_every=-1)


@pytest.mark.parametrize("kind", ["relief", "ablation"])
def test_plans_read_every_evaluator_as_shares(kind: str) -> None:
    # N-RReliefF weights (~0.01) and ablation improvements (objective units) are not shares:
    # compared raw with the 0.05 threshold, an N-RReliefF plan froze every Ishigami parameter.
    from optuna_hpi import AblationImportanceEvaluator
    from optuna_hpi import NRReliefFImportanceEvaluator

    from .conftest import ishigami
    from .conftest import ISHIGAMI_DISTRIBUTIONS
    from .conftest import study_from_function

    study = study_from_function(ISHIGAMI_DISTRIBUTIONS, ishigami, n_trials=300, seed=1)
    if kind == "relief":
        evaluator: BaseImportanceEvaluator = NRReliefFImportanceEvaluator(n_bootstrap=10, seed=0)
    else:
        evaluator = AblationImportanceEvaluator(n_bootstrap=10, seed=0)
    schedule = Schedule([Stage(300), Stage(10, freeze=True)])
    plan = compute_plan(
        1, schedule, 300, study.trials, study.directions, [initial_plan(schedule)],
        evaluator, PlanRules(), {}, {},
    )  # fmt: skip
    assert plan.method.endswith(" share")
    assert sum(plan.importances.values()) == pytest.approx(1.0)
    for name, (low, high) in plan.intervals.items():
        assert 0.0 <= low <= plan.importances[name] <= high <= 1.0
    assert {"x1", "x2"} <= set(plan.free), plan.reasons
    assert not {"x1", "x2"} & set(plan.frozen)


def test_plans_use_the_bootstrap_without_the_fit_widening() -> None:
    # The Sobol' evaluator widens intervals by the surrogate's unexplained variance (issue 13):
    # at a few dozen noisy trials every upper bound gains (1 - R^2) / 2, so an inert parameter
    # could never be frozen. Plans compare parameters on the refit bootstrap alone.
    from optuna_hpi import encode_study

    rng = np.random.default_rng(0)

    def noisy(p: dict[str, Any]) -> float:
        return p["x"] ** 2 + 0.0 * p["z"] + float(rng.normal(0, 0.05))

    from .conftest import study_from_function

    dists = {"x": FloatDistribution(-1, 1), "z": FloatDistribution(0, 1)}
    study = study_from_function(dists, noisy, n_trials=40, seed=0)
    data = encode_study(study)
    evaluator = fast_evaluator()
    wide = evaluator.analyze_encoded(data, diagnostics=False)
    plain = evaluator.analyze_encoded(data, diagnostics=False, widen=False)
    assert wide.total == plain.total
    assert wide.total_intervals["z"][1] > plain.total_intervals["z"][1]
    for name, (low, high) in plain.total_intervals.items():
        assert low <= plain.total[name] <= high


def test_hold_window_lets_held_numeric_parameters_follow_around_the_incumbent() -> None:
    def objective(trial: optuna.Trial) -> float:
        act = trial.suggest_categorical("act", ["relu", "tanh"])
        return mlp_like(trial) + (0.5 if act == "tanh" else 0.0)

    spy = SpySampler()
    study = optuna.create_study(sampler=spy)
    stages = [
        Stage(6, narrow=False),
        Stage(10, roles=("learning_rate",), narrow=False, hold_window=0.5),
        Stage(4, narrow=False),
    ]
    staged = StagedStudy(study, stages, evaluator=fast_evaluator())
    staged.optimize(objective)
    plan = staged.plans[1]
    best = study.trials[plan.best_trial]  # type: ignore[index]
    # The categorical is held; alpha and width move in half their (log) range around the
    # incumbent, clipped to the user's range; the learning rate has its full range.
    assert plan.frozen == {"act": best.params["act"]}
    assert set(plan.free) == {"alpha", "learning_rate", "width"}
    assert "learning_rate" not in plan.narrowed
    for name, full in (("alpha", ALPHA), ("width", WIDTH)):
        window = plan.narrowed[name]
        assert isinstance(window, type(full)) and window.log
        span = math.log(full.high / full.low)
        inner = math.log(window.high / window.low)  # type: ignore[attr-defined]
        clipped = window.low == full.low or window.high == full.high  # type: ignore[attr-defined]
        assert inner == pytest.approx(0.5 * span, rel=0.05) or (clipped and inner < 0.5 * span)
        assert window.low <= best.params[name] <= window.high  # type: ignore[attr-defined]
        values = [t.params[name] for t in study.trials[6:16]]
        assert len(set(values)) > 3
        assert all(window.low <= v <= window.high for v in values)  # type: ignore[attr-defined]
        calls = [c for c in spy.seen if 6 <= c[0] < 16 and c[1] == name]
        assert calls and all(dist == window for _, _, dist, _ in calls)
    assert {t.params["act"] for t in study.trials[6:16]} == {best.params["act"]}
    # Windowed values were searched, so the last stage sees them as they are.
    for _, _, _, history in (c for c in spy.seen if c[0] >= 16 and c[1] == "alpha"):
        assert history[6:16] == [t.params["alpha"] for t in study.trials[6:16]]
    with pytest.raises(ValueError, match="hold_window"):
        Stage(3, hold_window=1.0)


def test_three_stage_holds_exactly_from_defaults_and_in_windows_without() -> None:
    # A random warm start's best is a poor point to hold at; the user's defaults are not.
    windows = [s.hold_window for s in StagedSampler.three_stage(n_trials=(8, 6, 6)).stages]
    assert windows == [0.0, 0.9, 0.9, 0.0]
    exact = StagedSampler.three_stage(n_trials=(8, 6, 6), defaults={"lr": 0.01}).stages
    assert [s.hold_window for s in exact] == [0.0] * 4


def test_hold_window_also_replaces_freezing_of_unimportant_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evaluator = FixedEvaluator({"x": 0.98, "noise": 0.0})
    local = ({"x": 1.0, "noise": 0.0}, {"x": (0.9, 1.0), "noise": (0.0, 0.01)})
    monkeypatch.setattr("optuna_hpi.staged._plan.local_effects", lambda *a, **k: local)

    def objective(trial: optuna.Trial) -> float:
        return (trial.suggest_float("x", -1.0, 1.0) - 0.3) ** 2 + 0.0 * trial.suggest_float(
            "noise", 0.0, 1.0
        )

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    stages = [Stage(10, narrow=False), Stage(10, freeze=True, narrow=False, hold_window=0.5)]
    staged = StagedStudy(study, stages, evaluator=evaluator)
    staged.optimize(objective)
    plan = staged.plans[1]
    best = study.trials[plan.best_trial]  # type: ignore[index]
    window = plan.narrowed["noise"]
    assert plan.frozen == {} and set(plan.free) == {"noise", "x"}
    assert plan.reasons["noise"].startswith("unimportant, around")
    assert window.low <= best.params["noise"] <= window.high  # type: ignore[attr-defined]
    assert window.high - window.low == pytest.approx(0.5) or 0.0 in (window.low, 1.0 - window.high)  # type: ignore[attr-defined]
    noise = [t.params["noise"] for t in study.trials[10:]]
    assert len(set(noise)) == 10 and all(window.low <= v <= window.high for v in noise)  # type: ignore[attr-defined]
    assert "keeps near the best trial noise in [" in plan.summary()
