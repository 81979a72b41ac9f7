"""Range advice: known answers for keep / narrow / expand / log / freeze, and its formats."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_hpi import suggest_ranges
from optuna_hpi import SurrogateConfig
from optuna_hpi.analysis._ranges import _expanded
from optuna_hpi.cli import main
from optuna_hpi.staged import narrow_distribution
from optuna_hpi.staged._plan import PlanRules


FAST: dict[str, Any] = {
    "n_bootstrap": 10, "n_samples": 256, "surrogate": SurrogateConfig(max_iter=60)
}  # fmt: skip


def mixed(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)  # optimum 1.5: beyond the upper bound
    lr = trial.suggest_float("lr", 1e-5, 1e-1)  # optimum 1e-4 on a linear range
    trial.suggest_float("noise", 0.0, 1.0)  # no effect
    trial.suggest_int("n", 1, 64)  # no effect
    return (x - 1.5) ** 2 + 0.3 * (math.log10(lr) + 4) ** 2


def interior(trial: optuna.Trial) -> float:
    u = trial.suggest_float("u", -5.0, 5.0)  # interior optimum at 1, dominant
    y = trial.suggest_float("y", 0.0, 1.0)
    return (u - 1.0) ** 2 + 0.5 * y


def study_of(objective: Any, n_trials: int, direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=n_trials)
    return study


@pytest.fixture(scope="module")
def mixed_study() -> optuna.Study:
    return study_of(mixed, 150)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_expand_log_and_freeze(mixed_study: optuna.Study, direction: str) -> None:
    study = mixed_study
    if direction == "maximize":  # the same landscape, maximized: the same advice
        study = optuna.create_study(direction="maximize")
        study.add_trials(
            [
                optuna.trial.create_trial(
                    params=t.params, distributions=t.distributions, value=-t.value
                )
                for t in mixed_study.trials
            ]
        )
    ranges = suggest_ranges(study, **FAST)
    actions = {a.param: a.action for a in ranges.advice}
    assert actions == {"x": "expand", "lr": "log", "noise": "freeze", "n": "freeze"}
    x = ranges["x"]
    assert (x.low, x.high, x.log) == (0.0, 1.5, False)  # half the range beyond 1
    assert "upper bound 1" in x.reason and "total-order Sobol' index" in x.reason
    lr = ranges["lr"]
    assert (lr.low, lr.high, lr.log) == (1e-5, 1e-1, True)
    assert "lowest 10% of a linear range spanning 4.0 decades" in lr.reason
    best = min(study.trials, key=lambda t: t.value * (1 if direction == "minimize" else -1))
    for name in ("noise", "n"):
        frozen = ranges[name]
        assert frozen.value == best.params[name] and frozen.low is None
        assert frozen.interval is not None and frozen.interval[1] < 0.05
        assert "no detectable effect" in frozen.reason


def test_interior_optimum_of_an_important_parameter_is_narrowed() -> None:
    study = study_of(interior, 100)
    ranges = suggest_ranges(study, **FAST)
    u = ranges["u"]
    assert u.action == "narrow"
    assert -5.0 < u.low < 1.0 < u.high < 5.0  # strictly inside, around the optimum
    # The planner's narrowing rule, applied to the same trials: not written twice.
    rows = study.trials
    values, losses = [t.params["u"] for t in rows], [t.value for t in rows]
    planned = narrow_distribution(FloatDistribution(-5, 5), values, losses, PlanRules())
    assert planned is not None
    assert u.low == pytest.approx(planned.low, rel=1e-3) and u.low <= planned.low
    assert u.high == pytest.approx(planned.high, rel=1e-3) and u.high >= planned.high
    assert ranges["y"].action in ("keep", "freeze")


def test_too_few_trials_keep_everything_with_the_reason(mixed_study: optuna.Study) -> None:
    study = optuna.create_study()
    study.add_trials(mixed_study.trials[:12])
    ranges = suggest_ranges(study, **FAST)
    assert [a.action for a in ranges.advice] == ["keep"] * 4
    reason = "only 12 usable trials (fewer than min_trials=20)"
    assert all(reason in a.reason for a in ranges.advice)
    x = ranges["x"]
    assert (x.low, x.high, x.log) == (0.0, 1.0, False)  # the current range
    with pytest.raises(ValueError, match="min_trials"):
        suggest_ranges(study, min_trials=1)
    mo = optuna.create_study(directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match="target"):
        suggest_ranges(mo)


def test_python_lines_compile_and_define_the_advised_search_space(
    mixed_study: optuna.Study,
) -> None:
    ranges = suggest_ranges(mixed_study, **FAST)
    code = ranges.to_python()
    body = "\n".join("    " + line for line in code.splitlines())
    source = f"def objective(trial):\n{body}\n    return x + lr + noise + n\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<ranges>", "exec"), namespace)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(namespace["objective"], n_trials=3)
    assert study.trials[0].distributions == {
        "x": FloatDistribution(0.0, 1.5),
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
    }
    assert "noise = " in code and "n = " in code  # frozen: constants, not suggestions


def test_json_and_table_formats(mixed_study: optuna.Study) -> None:
    ranges = suggest_ranges(mixed_study, **FAST)
    lines = ranges.to_text().splitlines()
    assert lines[0].startswith("Range advice for the next study (150 trials, surrogate CV R^2")
    assert max(len(line) for line in lines) <= 100
    assert [line.split()[:2] for line in lines[1:] if not line.startswith(" ")] == [
        ["param", "action"], ["lr", "log"], ["n", "freeze"], ["noise", "freeze"], ["x", "expand"]
    ]  # fmt: skip
    doc = json.loads(ranges.to_json())
    assert [d["param"] for d in doc] == ["lr", "n", "noise", "x"]
    for d in doc:
        assert {"param", "action", "low", "high", "log", "value", "reason"} <= set(d)
    by = {d["param"]: d for d in doc}
    assert by["x"]["action"] == "expand" and by["x"]["high"] == 1.5
    assert by["n"]["action"] == "freeze" and isinstance(by["n"]["value"], int)
    assert by["n"]["low"] is None and by["n"]["type"] == "int"


def test_expanded_bounds_respect_grids_and_hard_limits() -> None:
    assert _expanded(IntDistribution(1, 64), "upper") == 96
    assert _expanded(IntDistribution(0, 60, step=4), "upper") == 92  # on the step grid
    assert _expanded(IntDistribution(1, 64, log=True), "lower") is None  # 1 is a hard limit
    assert _expanded(FloatDistribution(0.0, 1.0), "lower") is None  # never across 0
    assert _expanded(FloatDistribution(0.2, 1.0), "lower") == 0.0
    assert _expanded(FloatDistribution(1e-4, 1e-2, log=True), "upper") == pytest.approx(0.1)
    assert _expanded(FloatDistribution(0.0, 1.0, step=0.25), "upper") == 1.5


def test_cli_ranges(tmp_path: Path, mixed_study: optuna.Study, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path}/ranges.db"
    optuna.create_study(study_name="mixed", storage=url).add_trials(mixed_study.trials)
    base = ["ranges", "--storage", url, "--n-bootstrap", "0", "--quiet"]
    assert main([*base, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {d["param"]: d["action"] for d in doc}["x"] == "expand"
    assert main([*base, "--format", "python"]) == 0
    out = capsys.readouterr().out
    compile(out, "<cli>", "exec")
    assert "x = trial.suggest_float('x', 0.0, 1.5)" in out
    assert main([*base, "--min-trials", "1000"]) == 0  # the table format, cheaply
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Range advice for the next study (150 trials)"
    assert lines[1].split() == ["param", "action", "next", "range"]
    assert lines[2].split() == ["lr", "keep", "[1e-05,", "0.1]"]
    assert "fewer than min_trials=1000" in lines[3]
    assert main([*base, "--params", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
