from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_hpi import encode_study
from optuna_hpi._encoding import non_domination_rank


def _study(rows: list[tuple[dict, dict, float]], direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    for params, dists, value in rows:
        study.add_trial(optuna.create_trial(params=params, distributions=dists, value=value))
    return study


def test_measure_of_int_step_and_log_params() -> None:
    dists = {
        "i": IntDistribution(1, 4),
        "li": IntDistribution(1, 4, log=True),
        "s": FloatDistribution(0.0, 1.0, step=0.5),
        "lf": FloatDistribution(1e-4, 1.0, log=True),
    }
    study = _study([({"i": 2, "li": 2, "s": 0.5, "lf": 0.01}, dists, 1.0)])
    specs = {s.name: s for s in encode_study(study).specs}
    np.testing.assert_allclose(specs["i"].weights, [0.25] * 4)
    # RandomSampler: log-uniform on [0.5, 4.5], rounded -> mass log((k+.5)/(k-.5)) / log(9).
    expected = [math.log((k + 0.5) / (k - 0.5)) / math.log(9) for k in range(1, 5)]
    np.testing.assert_allclose(specs["li"].weights, expected)
    np.testing.assert_allclose(specs["li"].grid, np.log([1, 2, 3, 4]))
    np.testing.assert_allclose(specs["s"].grid, [0.0, 0.5, 1.0])
    assert specs["lf"].low == pytest.approx(math.log(1e-4))
    # The measure: log-float draws are uniform in log space, grid draws hit each value by mass.
    u = np.linspace(0, 1, 10000, endpoint=False)
    draws = specs["li"].from_unit(u)
    freq = [np.mean(np.isclose(draws, math.log(k))) for k in range(1, 5)]
    np.testing.assert_allclose(freq, expected, atol=1e-3)
    assert specs["lf"].decode(specs["lf"].encode(0.01)) == pytest.approx(0.01)
    assert specs["i"].decode(2.4) == 2


def test_response_orientation_and_filtering() -> None:
    dists = {"x": FloatDistribution(0, 1)}
    rows = [({"x": 0.1}, dists, 1.0), ({"x": 0.2}, dists, float("inf")), ({"x": 0.3}, dists, 3.0)]
    up = encode_study(_study(rows, "maximize"))
    assert up.n_trials == 2
    np.testing.assert_allclose(up.y, [-1.0, -3.0])  # lower is better
    down = encode_study(_study(rows))
    np.testing.assert_allclose(down.y, [1.0, 3.0])
    target = encode_study(_study(rows), target=lambda t: t.params["x"] * 10)
    np.testing.assert_allclose(target.y, [1.0, 2.0, 3.0])
    assert target.response == "target"


def test_union_of_dynamic_ranges_and_incompatible_ones() -> None:
    rows = [
        ({"x": 0.5}, {"x": FloatDistribution(0, 1)}, 1.0),
        ({"x": 1.5}, {"x": FloatDistribution(1, 3)}, 2.0),
    ]
    spec = encode_study(_study(rows)).specs[0]
    assert (spec.low, spec.high) == (0.0, 3.0)
    bad = rows + [({"x": 2}, {"x": IntDistribution(0, 3)}, 3.0)]
    with pytest.raises(ValueError, match="'x'.*different distribution types"):
        encode_study(_study(bad), params=["x"])
    with pytest.warns(UserWarning, match="Leaving 'x' out"):
        assert encode_study(_study(bad)).params == []


def test_conditional_params_default_inclusion() -> None:
    a, b = (
        {"c": FloatDistribution(0, 1)},
        {"c": FloatDistribution(0, 1), "z": FloatDistribution(0, 1)},
    )
    rows = [({"c": 0.1}, a, 1.0)] * 3 + [({"c": 0.2, "z": 0.5}, b, 2.0)] * 2
    data = encode_study(_study(rows))
    assert data.params == ["c"]  # z active in only 2 usable trials
    data = encode_study(_study(rows + [({"c": 0.3, "z": 0.1}, b, 0.0)]))
    assert data.params == ["c", "z"]
    assert data.specs[1].conditional
    assert np.isnan(data.X[:3, 1]).all()
    filled = data.filled()
    assert (filled[:3, 1] == data.specs[1].inactive_code).all()
    assert data.specs[1].inactive_code < data.specs[1].low


def test_params_argument_errors() -> None:
    study = _study([({"x": 0.5}, {"x": FloatDistribution(0, 1)}, 1.0)])
    with pytest.raises(TypeError, match="list or tuple"):
        encode_study(study, params="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        encode_study(study, params=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="more than once"):
        encode_study(study, params=["x", "x"])
    with pytest.raises(ValueError, match=r"\['nope'\]"):
        encode_study(study, params=["x", "nope"])


def test_categorical_codes_keep_types_apart() -> None:
    dist = CategoricalDistribution([1, True, "1", None])
    rows = [({"c": v}, {"c": dist}, float(i)) for i, v in enumerate([1, True, "1", None])]
    data = encode_study(_study(rows))
    np.testing.assert_array_equal(data.X[:, 0], [0, 1, 2, 3])
    assert [data.specs[0].decode(c) for c in range(4)] == [1, True, "1", None]


def test_non_domination_rank() -> None:
    loss = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [5, 5], [2, 2]], dtype=float)
    np.testing.assert_array_equal(non_domination_rank(loss), [0, 0, 0, 1, 2, 0])


def test_nan_categorical_choice_merges_across_trials() -> None:
    rows = [
        ({"c": v}, {"c": CategoricalDistribution([1.0, float("nan")])}, float(i))
        for i, v in enumerate([1.0, float("nan"), 1.0])
    ]
    data = encode_study(_study(rows))
    assert data.params == ["c"]
    np.testing.assert_array_equal(data.X[:, 0], [0, 1, 0])
