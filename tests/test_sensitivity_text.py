from __future__ import annotations

import re

import optuna
import pytest

from optuna_hpi import sensitivity_analysis


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_printed_change_has_the_sign_the_header_states(direction: str) -> None:
    # The best configuration is the optimum, so every perturbation is worse: with the
    # "positive = worse" convention every printed change must be positive, in either direction.
    sign = 1.0 if direction == "minimize" else -1.0

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -2.0, 2.0)
        n = trial.suggest_int("n", 0, 10)
        return sign * ((x - 0.5) ** 2 + 0.1 * abs(n - 5))

    study = optuna.create_study(direction=direction)
    study.enqueue_trial({"x": 0.5, "n": 5})
    study.optimize(objective, n_trials=1)
    result = sensitivity_analysis(study, objective)
    text = result.to_text()
    assert "positive = worse" in text.splitlines()[0]
    changes = [float(v) for v in re.findall(r"change ([+-][0-9.e+-]+)", text)]
    rows = [q for q in result.perturbations if q.param is not None]
    assert len(changes) == len(rows) + 2  # one row per perturbation, one "worst" per param
    assert all(c > 0 for c in changes), text
    for q in rows:
        assert result.change(q) == pytest.approx(sign * q.delta)
        assert result.change(q) > 0
