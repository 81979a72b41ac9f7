from __future__ import annotations

from collections.abc import Callable
import csv
import io
import json
import math
import re
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.importance import FanovaImportanceEvaluator
import pytest

from optuna_hpi import encode_study
from optuna_hpi import SurrogateConfig
from optuna_hpi.analysis import ABLATION_ATTR
from optuna_hpi.analysis import ablation_on_objective
from optuna_hpi.analysis import available_evaluators
from optuna_hpi.analysis import evaluator_class
from optuna_hpi.analysis import EVALUATOR_NAMES
from optuna_hpi.analysis import importance_report
from optuna_hpi.analysis import make_evaluator
from optuna_hpi.analysis import marginal_effects
from optuna_hpi.analysis import sensitivity_analysis
from optuna_hpi.analysis import SENSITIVITY_ATTR
from optuna_hpi.analysis._report import normalize
from optuna_hpi.analysis._report import rank_agreement
from optuna_hpi.analysis._report import unresolved_pairs
from optuna_hpi.analysis._sensitivity import perturbations


def study_from_function(
    distributions: dict[str, Any],
    function: Callable[[dict[str, Any]], float],
    n_trials: int,
    seed: int = 0,
    direction: str = "minimize",
) -> optuna.Study:
    """``n_trials`` RandomSampler draws of ``distributions``, told ``function`` of the params."""
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=seed), direction=direction
    )
    for _ in range(n_trials):
        trial = study.ask(distributions)
        study.tell(trial, function(trial.params))
    return study


FAST = {
    "sobol": {"n_samples": 256, "surrogate": SurrogateConfig(max_iter=60)},
    "ablation": {"surrogate": SurrogateConfig(max_iter=60)},
    "fanova": {"n_trees": 8},
    "mdi": {"n_trees": 16},
}

LINEAR = {
    "x": FloatDistribution(0.0, 1.0),
    "y": FloatDistribution(0.0, 1.0),
    "z": FloatDistribution(0.0, 1.0),
}


def linear(p: dict[str, Any]) -> float:
    return 5.0 * p["x"] + 0.5 * p["y"]


@pytest.fixture(scope="module")
def linear_study() -> optuna.Study:
    # Maximized, to check that the report does not depend on the orientation.
    return study_from_function(LINEAR, linear, n_trials=80, seed=1, direction="maximize")


@pytest.fixture(scope="module")
def full_report(linear_study: optuna.Study) -> Any:
    return importance_report(linear_study, EVALUATOR_NAMES, n_bootstrap=3, evaluator_options=FAST)


def test_registry_knows_all_six_and_imports_them() -> None:
    assert EVALUATOR_NAMES == ("sobol", "relief", "ablation", "fanova", "pedanova", "mdi")
    assert available_evaluators() == list(EVALUATOR_NAMES)
    assert evaluator_class("fanova") is FanovaImportanceEvaluator
    # PED-ANOVA takes no seed; the registry must not pass one.
    assert type(make_evaluator("pedanova", seed=3)).__name__ == "PedAnovaImportanceEvaluator"
    with pytest.raises(ValueError, match="Unknown evaluator 'nope'"):
        evaluator_class("nope")


def test_normalize_and_rank_agreement_hand_values() -> None:
    shares, total = normalize({"a": -1.0, "b": 1.0, "c": 3.0})
    assert shares == {"a": 0.0, "b": 0.25, "c": 0.75} and total == 4.0
    assert normalize({"a": 0.0, "b": -2.0})[0] == {"a": 0.5, "b": 0.5}
    # Pairs (p,q) and (p,r) concordant, (q,r) discordant: tau = (2 - 1) / 3.
    tau = rank_agreement({"p": 1, "q": 2, "r": 3}, {"p": 1, "q": 3, "r": 2})
    assert tau == pytest.approx(1 / 3)
    assert rank_agreement({"p": 1, "q": 2}, {"p": 2, "q": 1}) == pytest.approx(-1.0)
    assert math.isnan(rank_agreement({"p": 1, "q": 1}, {"p": 2, "q": 1}))
    assert math.isnan(rank_agreement({"p": 1}, {"p": 1}))


def test_report_ranks_and_sobol_values_on_linear_function(full_report: Any) -> None:
    report = full_report
    assert report.evaluators == list(EVALUATOR_NAMES)
    assert report.n_trials == 80 and report.response == "objective"
    assert report.params[0] == "x"
    for column in report.columns:
        assert sum(column.importances.values()) == pytest.approx(1.0)
        assert max(column.importances, key=column.importances.__getitem__) == "x", column.name
    # 5x + 0.5y on U[0,1]^2: S_x = 25 / 25.25, S_y = 0.25 / 25.25, S_z = 0, no interactions.
    assert report.sobol_first["x"] == pytest.approx(25 / 25.25, abs=0.06)
    assert report.sobol_total["z"] < 0.03
    assert all(abs(i.value) < 0.05 for i in report.interactions)
    assert len(report.interactions) == 3  # every pair of 3 params, strongest first
    values = [i.value for i in report.interactions]
    assert values == sorted(values, reverse=True)
    # Our evaluators carry intervals on the normalized scale; Optuna's none.
    assert set(report.column("sobol").intervals) == {"x", "y", "z"}
    assert report.column("fanova").intervals == {}
    for lo, hi in report.column("relief").intervals.values():
        assert 0.0 <= lo <= hi
    for (a, b), tau in report.agreement.items():
        expected = rank_agreement(report.column(a).importances, report.column(b).importances)
        assert tau == pytest.approx(expected, nan_ok=True)
    finite = [t for t in report.agreement.values() if math.isfinite(t)]
    assert report.mean_agreement == pytest.approx(np.mean(finite))
    assert len(report.agreement) == 15


def test_report_exports_json_csv_text(full_report: Any) -> None:
    report = full_report
    doc = json.loads(report.to_json())
    assert doc["params"] == report.params
    for c in report.columns:
        assert doc["importances"][c.name] == pytest.approx(c.importances)
    assert doc["sobol"]["first"] == pytest.approx(report.sobol_first)
    assert doc["agreement"]["mean"] == pytest.approx(report.mean_agreement)
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["param"] for r in rows] == report.params
    assert sum(float(r["sobol"]) for r in rows) == pytest.approx(1.0)
    assert rows[0]["fanova_low"] == ""  # no interval, empty cell
    assert float(rows[0]["sobol_total"]) == pytest.approx(report.sobol_total[rows[0]["param"]])
    text = report.to_text()
    assert "Agreement of the rankings" in text and "Strongest interactions" in text
    assert all(p in text for p in report.params)
    assert "(ablation starts from the center configuration)" in text
    assert "(time: sobol " in text


def test_report_matches_optuna_for_optuna_evaluators(linear_study: optuna.Study) -> None:
    report = importance_report(
        linear_study, ("fanova",), n_bootstrap=0, seed=5, evaluator_options=FAST
    )
    expected = optuna.importance.get_param_importances(
        linear_study, evaluator=FanovaImportanceEvaluator(n_trees=8, seed=5)
    )
    assert report.column("fanova").importances == pytest.approx(expected)
    assert report.sobol_first == {} and report.interactions == []


def test_report_argument_errors(linear_study: optuna.Study) -> None:
    with pytest.raises(ValueError, match="Unknown evaluator"):
        importance_report(linear_study, ("sobol", "shap"))
    with pytest.raises(ValueError, match="twice"):
        importance_report(linear_study, ("mdi", "mdi"))
    with pytest.raises(ValueError, match="empty"):
        importance_report(linear_study, ())
    mo = optuna.create_study(directions=["minimize", "maximize"])
    mo.optimize(lambda t: (t.suggest_float("a", 0, 1), t.suggest_float("b", 0, 1)), n_trials=8)
    with pytest.raises(ValueError, match="need `target`"):
        importance_report(mo, ("sobol", "fanova"))
    # Our evaluators explain the Pareto rank without a target.
    report = importance_report(mo, ("relief",), n_bootstrap=0)
    assert report.response == "pareto_rank"


class Broken(optuna.importance.BaseImportanceEvaluator):
    def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict[str, float]:
        raise RuntimeError("boom")


def test_a_failing_evaluator_costs_only_its_column(linear_study: optuna.Study) -> None:
    with pytest.warns(UserWarning, match="'Broken' failed and is left out.*boom"):
        report = importance_report(linear_study, ("mdi", Broken()), n_bootstrap=0)
    assert report.evaluators == ["mdi"]
    assert report.failed == {"Broken": "RuntimeError: boom"}
    alone = importance_report(linear_study, ("mdi",), n_bootstrap=0)
    assert report.column("mdi").importances == alone.column("mdi").importances
    assert alone.failed == {}
    assert "Broken failed and is left out: RuntimeError: boom" in report.to_text()
    assert json.loads(report.to_json())["failed"] == {"Broken": "RuntimeError: boom"}
    # When nothing is left, the error itself reaches the user.
    with pytest.raises(RuntimeError, match="boom"):
        importance_report(linear_study, (Broken(),), n_bootstrap=0)


def test_report_progress_messages(linear_study: optuna.Study) -> None:
    messages: list[str] = []
    importance_report(linear_study, ("mdi", "pedanova"), n_bootstrap=0, progress=messages.append)
    assert messages == ["[1/2] mdi on 80 trials", "[2/2] pedanova on 80 trials"]


# -- marginal effects -------------------------------------------------------------------------

MIXED = {
    "x": FloatDistribution(0.0, 1.0),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "c": CategoricalDistribution(["a", "b"]),
}


def mixed(p: dict[str, Any]) -> float:
    return 4.0 * p["x"] + math.log10(p["lr"]) + 2.0 * (p["c"] == "b")


def test_marginal_effects_recover_additive_effects_in_user_orientation() -> None:
    study = study_from_function(MIXED, mixed, n_trials=120, seed=2, direction="maximize")
    effects = marginal_effects(study, n_points=8, n_samples=64, n_bootstrap=4)
    assert effects.response_label == "objective value" and effects.n_trials == 120
    x = effects.curves["x"]
    assert x.values[0] == 0.0 and x.values[-1] == 1.0
    # Slope 4 over [0, 1], shown as maximized (not negated by the encoding).
    assert x.mean[-1] - x.mean[0] == pytest.approx(4.0, abs=1.0)
    lr = effects.curves["lr"]
    assert lr.log and lr.values[0] == pytest.approx(1e-4) and lr.values[-1] == pytest.approx(1.0)
    ratios = np.diff(np.log(lr.values))
    assert np.allclose(ratios, ratios[0])  # evenly spaced in log units
    assert lr.mean[-1] - lr.mean[0] == pytest.approx(4.0, abs=1.0)
    c = effects.curves["c"]
    assert c.values == ["a", "b"]
    assert c.mean[1] - c.mean[0] == pytest.approx(2.0, abs=0.6)
    for curve in effects.curves.values():
        assert np.all(curve.lower <= curve.mean + 1e-12)
        assert np.all(curve.mean <= curve.upper + 1e-12)
        assert len(curve.observed) == 120


def test_marginal_effects_without_bootstrap_and_errors() -> None:
    study = study_from_function(MIXED, mixed, n_trials=30, seed=0)
    effects = marginal_effects(study, ["x"], n_points=5, n_samples=16, n_bootstrap=0)
    curve = effects.curves["x"]
    assert list(effects.curves) == ["x"] and len(curve.values) == 5
    assert np.array_equal(curve.lower, curve.mean) and np.array_equal(curve.upper, curve.mean)
    with pytest.raises(ValueError, match="n_points"):
        marginal_effects(study, n_points=1)
    empty = optuna.create_study()
    with pytest.raises(ValueError, match="at least 2 usable trials"):
        marginal_effects(empty)


# -- sensitivity ------------------------------------------------------------------------------


def _spec(dist: Any) -> Any:
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            params={"p": dist.to_external_repr(getattr(dist, "low", 0))},
            distributions={"p": dist},
            value=0.0,
        )
    )
    return encode_study(study).specs[0]


def test_perturbations_hand_cases() -> None:
    ints = _spec(IntDistribution(0, 10))
    assert perturbations(ints, 5) == [("x0.8", 4), ("x1.2", 6)]
    # 1 * 0.8 and 1 * 1.2 both round back to 1: take the neighbouring grid values.
    assert perturbations(ints, 1) == [("grid -1", 0), ("grid +1", 2)]
    assert perturbations(ints, 10) == [("x0.8", 8)]  # x1.2 is clipped back onto 10
    signed = _spec(FloatDistribution(-1.0, 1.0))
    moves = perturbations(signed, 0.0)
    assert [m[0] for m in moves] == ["-20% range", "+20% range"]
    assert [m[1] for m in moves] == pytest.approx([-0.4, 0.4])
    log = _spec(FloatDistribution(1e-3, 1.0, log=True))
    assert perturbations(log, 1e-3) == [("x1.2", pytest.approx(1.2e-3))]
    cat = _spec(CategoricalDistribution(["a", "b", "c"]))
    assert perturbations(cat, "b") == [("choice='a'", "a"), ("choice='c'", "c")]


def test_sensitivity_runs_real_trials_in_the_study() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.1, 10.0, log=True)
        n = trial.suggest_int("n", 0, 10)
        c = trial.suggest_categorical("c", ["a", "b"])
        return -((x - 1.0) ** 2) - 0.1 * n - (c == "b")

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(objective, n_trials=15)
    best = study.best_trial
    result = sensitivity_analysis(study, objective)
    tagged = [t for t in study.trials if SENSITIVITY_ATTR in t.user_attrs]
    assert len(tagged) == len(result.perturbations) == len(study.trials) - 15
    assert result.base_trial == best.number and result.direction == "maximize"
    assert result.reference == pytest.approx(best.value)  # deterministic re-evaluation
    bx, bn, bc = best.params["x"], best.params["n"], best.params["c"]

    def f(x: float, n: int, c: str) -> float:
        return -((x - 1.0) ** 2) - 0.1 * n - (c == "b")

    for q in result.perturbations:
        trial = study.trials[q.trial_number]
        assert trial.user_attrs[SENSITIVITY_ATTR]["label"] == q.label
        params = {"x": bx, "n": bn, "c": bc}
        if q.param is not None:
            params[q.param] = q.value
        assert trial.params == pytest.approx(params)
        assert q.delta == pytest.approx(f(**params) - best.value)
    x_moves = [q.value for q in result.perturbations if q.param == "x"]
    assert x_moves == pytest.approx([max(0.1, bx * 0.8), min(10.0, bx * 1.2)])
    c_move = [q for q in result.perturbations if q.param == "c"]
    assert len(c_move) == 1 and c_move[0].value == ("a" if bc == "b" else "b")
    # Worst change: largest loss (maximize: best minus perturbed value) per parameter.
    expected = max(-q.delta for q in c_move)
    assert result.worst_change["c"] == pytest.approx(expected)
    assert "worst change" in result.to_text()


def test_sensitivity_needs_a_single_response() -> None:
    mo = optuna.create_study(directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match="multi-objective"):
        sensitivity_analysis(mo, lambda t: (0.0, 0.0))
    with pytest.raises(ValueError, match="no completed trial"):
        sensitivity_analysis(optuna.create_study(), lambda t: 0.0)


def test_measured_ablation_hand_oracle() -> None:
    # DESIGN.md section 5: minimize -(3a + b + 2ac) from (0,0,0) to (1,1,1): a 0.5, c 1/3, b 1/6.
    def objective(trial: optuna.Trial) -> float:
        a = trial.suggest_int("a", 0, 1)
        b = trial.suggest_int("b", 0, 1)
        c = trial.suggest_int("c", 0, 1)
        return -(3 * a + b + 2 * a * c)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"a": 1, "b": 1, "c": 1})
    study.optimize(objective, n_trials=1)
    result = ablation_on_objective(study, objective, {"a": 0, "b": 0, "c": 0})
    assert [s.param for s in result.path] == ["a", "c", "b"]
    assert [s.share for s in result.path] == pytest.approx([0.5, 1 / 3, 1 / 6])
    assert [s.objective for s in result.path] == [-3.0, -5.0, -6.0]
    assert result.source_value == 0.0 and result.n_evaluations == 1 + 3 + 2 + 1
    tagged = [t for t in study.trials if ABLATION_ATTR in t.user_attrs]
    assert len(tagged) == result.n_evaluations == len(study.trials) - 1
    assert study.trials[result.path[1].trial_number].params == {"a": 1, "b": 0, "c": 1}
    with pytest.raises(ValueError, match="does not have"):
        ablation_on_objective(study, objective, {"d": 0})


# --- Issue 13/14: a report that fits, and says when its numbers cannot be trusted --------------


LONG = {
    "learning_rate_init": FloatDistribution(1e-5, 1e-1, log=True),
    "hidden_layer_width": IntDistribution(8, 256),
    "weight_decay_alpha": FloatDistribution(1e-6, 1e-2, log=True),
    "batch_size_exponent": IntDistribution(4, 9),
    "activation_function": CategoricalDistribution(["relu", "tanh", "logistic"]),
}


def test_text_fits_100_columns_and_summarises_agreement_in_one_line() -> None:
    study = study_from_function(
        LONG, lambda p: math.log(p["learning_rate_init"]) ** 2 + p["hidden_layer_width"] / 50, 60
    )
    report = importance_report(study, EVALUATOR_NAMES, n_bootstrap=3, evaluator_options=FAST)
    text = report.to_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert len(report.agreement) == 15
    # One summary line (wrapped at most once), no line per pair unless asked.
    assert sum(" ~ " in line for line in text.splitlines()) <= 1
    detailed = report.to_text(details=True)
    assert sum(line.startswith("  ") and " ~ " in line for line in detailed.splitlines()) == 15
    assert max(len(line) for line in detailed.splitlines()) <= 100


def test_json_orders_every_evaluator_like_the_report(full_report: Any) -> None:
    doc = json.loads(full_report.to_json())
    for name in full_report.evaluators:
        assert list(doc["importances"][name]) == full_report.params
        if doc["intervals"][name]:
            assert list(doc["intervals"][name]) == full_report.params
    assert list(doc["sobol"]["first"]) == full_report.params


def test_shares_print_within_0_and_1_raw_values_stay() -> None:
    # An inert parameter's S1 is estimated slightly below 0 and an interval can pass 1.
    study = study_from_function(LINEAR, lambda p: 5 * p["x"], 60, seed=3)
    report = importance_report(study, ("sobol",), n_bootstrap=3, evaluator_options=FAST)
    text = report.to_text()
    numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", text.split("(time:")[0])]
    assert all(0.0 <= v <= 1.0 for v in numbers[1:]), numbers  # [0] is the header's R^2
    assert "-0.00" not in text
    raw = list(report.sobol_first.values()) + [
        hi for _, hi in report.sobol_total_intervals.values()
    ]
    assert min(raw) < 0.0 or max(raw) > 1.0  # the raw values are not clipped


def test_disagreement_is_explained_and_low_r2_is_flagged() -> None:
    # Pure noise: no evaluator has evidence, the rankings are chance and the surrogate fits
    # nothing.
    rng = np.random.default_rng(0)
    study = study_from_function(LINEAR, lambda p: float(rng.normal()), 60, seed=0)
    with pytest.warns(UserWarning, match="explains only R"):
        report = importance_report(
            study, ("sobol", "relief", "pedanova", "mdi"), n_bootstrap=3, evaluator_options=FAST
        )
    assert report.low_r2 and report.disagree
    text = report.to_text()
    assert "LOW R^2" in text
    assert "They answer different questions:" in text
    assert "pedanova: how it differs between the best trials" in text
    assert "Too little evidence:" in text and "sobol: its surrogate explains only" in text
    assert json.loads(report.to_json())["surrogate_r2_low"] is True


def test_overlapping_intervals_say_the_pair_cannot_be_ranked() -> None:
    assert unresolved_pairs(
        {"a": 0.5, "b": 0.4, "c": 0.1}, {"a": (0.4, 0.6), "b": (0.3, 0.45), "c": (0.0, 0.2)}
    ) == [("a", "b")]
    assert unresolved_pairs({"a": 0.6, "b": 0.4}, {"a": (0.5, 0.7), "b": (0.3, 0.45)}) == []
    study = study_from_function(LINEAR, linear, 30, seed=2)
    report = importance_report(study, ("sobol",), n_bootstrap=3, evaluator_options=FAST)
    pairs = unresolved_pairs(report.column("sobol").importances, report.column("sobol").intervals)
    for a, b in pairs:
        assert f"not enough trials to rank {a} and {b}" in report.to_text()


def test_constant_objective_gives_zeros_not_a_uniform_split() -> None:
    study = study_from_function(LINEAR, lambda p: 1.0, 20)
    with pytest.warns(UserWarning, match="same in all 20 usable trials"):
        report = importance_report(study, ("sobol", "relief", "mdi"), n_bootstrap=0)
    assert report.constant_response
    for column in report.columns:
        assert set(column.importances.values()) == {0.0}, column.name
    assert "no parameter has any effect" in report.to_text()
    assert "0.33" not in report.to_text()


def test_report_ablation_starts_from_a_staged_studys_defaults() -> None:
    from optuna_hpi import StagedStudy

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
        return (math.log10(lr) + 2) ** 2 + 10 * wd

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    defaults = {"lr": 1e-3, "weight_decay": 1e-4}
    StagedStudy.three_stage(study, n_trials=(8, 6, 6), defaults=defaults).optimize(objective)
    report = importance_report(study, ("ablation",), n_bootstrap=0)
    result = report.columns[0].result
    assert result.source_kind == "default_params"  # type: ignore[union-attr]
    assert "ablation starts from the default params configuration" in report.to_text()
    # Explicit options win over the stored defaults.
    report = importance_report(
        study, ("ablation",), n_bootstrap=0, evaluator_options={"ablation": {"source_trial": 3}}
    )
    assert report.columns[0].result.source_kind == "source_trial"  # type: ignore[union-attr]
