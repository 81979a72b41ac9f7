from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import optuna
import pytest

from optuna_hpi import AblationImportanceEvaluator
from optuna_hpi import importance_report
from optuna_hpi import marginal_effects
from optuna_hpi import SobolImportanceEvaluator
from optuna_hpi import StagedStudy
from optuna_hpi import SurrogateConfig
from optuna_hpi import visualization as plots
from optuna_hpi.analysis import ablation_on_objective
from optuna_hpi.visualization._common import staged_timeline


pytest.importorskip("plotly")
mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from optuna_hpi.visualization import matplotlib as mplots  # noqa: E402


FAST_SURROGATE = SurrogateConfig(max_iter=60)


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    y = trial.suggest_float("y", -1.0, 1.0)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    n = trial.suggest_int("n", 0, 9)
    return 4 * x**2 + 2 * x * y + 0.5 * math.log10(lr) + 0.1 * abs(n - 3)


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    s.optimize(objective, n_trials=60)
    return s


@pytest.fixture(autouse=True)
def close_figures() -> Any:
    yield
    plt.close("all")


def test_importances_bars_and_error_bars(study: optuna.Study) -> None:
    report = importance_report(
        study,
        ("sobol", "mdi"),
        n_bootstrap=3,
        evaluator_options={
            "sobol": {"n_samples": 256, "surrogate": FAST_SURROGATE},
            "mdi": {"n_trees": 8},
        },
    )
    fig = plots.plot_importances(report)
    assert [t.name for t in fig.data] == ["sobol", "mdi"]
    order = list(reversed(report.params))  # bottom-to-top: least important first
    for trace, column in zip(fig.data, report.columns):
        assert list(trace.y) == order
        assert list(trace.x) == pytest.approx([column.importances[p] for p in order])
    sobol_trace = fig.data[0]
    for p, plus, minus, v in zip(
        order, sobol_trace.error_x.array, sobol_trace.error_x.arrayminus, sobol_trace.x
    ):
        lo, hi = report.column("sobol").intervals[p]
        assert plus == pytest.approx(max(0.0, hi - v)) and minus == pytest.approx(max(0.0, v - lo))
    assert fig.data[1].error_x.array is None  # MDI has no interval

    ax = mplots.plot_importances(report)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2
    assert [b.get_width() for b in bars[0]] == pytest.approx(list(sobol_trace.x))
    assert [t.get_text() for t in ax.get_yticklabels()] == order

    # A single evaluator's rich result draws too (normalized, clipped).
    result = SobolImportanceEvaluator(n_samples=256, surrogate=FAST_SURROGATE, seed=0).analyze(
        study, n_bootstrap=0
    )
    single = plots.plot_importances(result)
    assert sum(single.data[0].x) == pytest.approx(1.0)


def test_interaction_heatmap(study: optuna.Study) -> None:
    result = SobolImportanceEvaluator(
        pairwise=True, n_samples=512, surrogate=FAST_SURROGATE, seed=0
    ).analyze(study, n_bootstrap=0)
    fig = plots.plot_interactions(result)
    heat = fig.data[0]
    names = list(heat.x)
    z = np.asarray(heat.z)
    assert names == list(heat.y) and sorted(names) == ["lr", "n", "x", "y"]
    assert np.allclose(z, z.T)
    for i, p in enumerate(names):
        assert z[i, i] == pytest.approx(result.first[p])
    for (a, b), v in result.pairwise.items():
        assert z[names.index(a), names.index(b)] == pytest.approx(v)
    # 2xy is the only interaction: the x-y cell is the largest off-diagonal one.
    off = z - np.diag(np.diag(z))
    i, j = np.unravel_index(np.argmax(off), off.shape)
    assert {names[i], names[j]} == {"x", "y"}

    ax = mplots.plot_interactions(result)
    assert np.allclose(ax.images[0].get_array(), z)


def test_marginal_effect_curves(study: optuna.Study) -> None:
    effects = marginal_effects(study, n_points=8, n_samples=32, n_bootstrap=3)
    fig = plots.plot_marginal_effects(effects)
    by_name = {t.name: t for t in fig.data}
    x = effects.curves["x"]
    assert list(by_name["x"].x) == pytest.approx(x.values)
    assert list(by_name["x"].y) == pytest.approx(list(x.mean))
    band = by_name["x band"]
    assert list(band.y) == pytest.approx(list(x.upper) + list(x.lower[::-1]))
    assert len(by_name["x trials"].x) == 60
    # The log-scaled parameter gets a log axis.
    lr_axis = by_name["lr"].xaxis.replace("x", "xaxis")
    assert fig.layout[lr_axis].type == "log"
    # 4x^2 is lowest in the middle of [-1, 1].
    assert np.argmin(x.mean) not in (0, len(x.mean) - 1)

    ax = mplots.plot_marginal_effects(effects, params=["x", "lr"])
    assert isinstance(ax, Axes)  # one documented return type for every matplotlib plot
    axes = ax.figure.axes  # one Axes per parameter, empty grid cells removed
    assert len(axes) == 2 and axes[0] is ax and axes[1].get_xscale() == "log"
    assert list(ax.lines[0].get_ydata()) == pytest.approx(list(x.mean))
    assert len(mplots.plot_marginal_effects(effects).figure.axes) == 4


def test_ablation_path(study: optuna.Study) -> None:
    evaluator = AblationImportanceEvaluator(
        default_params={"x": 1.0, "y": 1.0, "lr": 1.0, "n": 9}, surrogate=FAST_SURROGATE, seed=0
    )
    result = evaluator.analyze(study, n_bootstrap=0)
    fig = plots.plot_ablation_path(result)
    line = next(t for t in fig.data if t.name == "predicted")
    share = next(t for t in fig.data if t.name == "share")
    expected = [result.predicted_source] + [s.predicted for s in result.path]
    assert list(line.y) == pytest.approx(expected)
    assert list(line.x)[0] == "source (default_params)"
    assert list(line.x)[1:] == [s.params[0] for s in result.path]
    assert sum(share.y) == pytest.approx(1.0)  # shares of a path telescope to 1
    ax = mplots.plot_ablation_path(result)
    assert list(ax.lines[0].get_ydata()) == pytest.approx(expected)

    # The same plot for a path measured on the real objective (trials added to a copy).
    copy = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    copy.add_trials(study.trials)
    measured = ablation_on_objective(copy, objective, {"x": 1.0, "y": 1.0, "lr": 1.0, "n": 9})
    fig = plots.plot_ablation_path(measured)
    line = next(t for t in fig.data if t.name == "predicted")
    assert list(line.y) == pytest.approx(
        [measured.source_value] + [s.objective for s in measured.path]
    )
    assert fig.layout.title.text == "Ablation path (measured on the objective)"
    # Flipping x, y, lr, n one at a time reaches the best trial's own value.
    assert measured.path[-1].objective == pytest.approx(study.best_value)


def test_staged_timeline() -> None:
    def staged_objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)
        alpha = trial.suggest_float("alpha", 1e-6, 1.0, log=True)
        width = trial.suggest_int("width", 1, 10)
        return (math.log10(lr) + 2) ** 2 + 0.01 * alpha + 0.1 * width

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    staged = StagedStudy.three_stage(
        study,
        n_trials=(8, 8, 8),
        evaluator=SobolImportanceEvaluator(
            index="total", n_samples=128, n_bootstrap=5, surrogate=FAST_SURROGATE, seed=0
        ),
    )
    staged.optimize(staged_objective)
    fig = plots.plot_staged_timeline(staged)
    heat = next(t for t in fig.data if t.type == "heatmap")
    params = list(heat.y)
    assert list(heat.x) == ["warm_start", "learning_rate", "regularization", "fine_tune"]
    plans = {p.stage: p for p in staged.plans}
    for i, name in enumerate(params):
        for k in (1, 2, 3):
            plan = plans[k]
            expected = 2 if name in plan.frozen else 1 if name in plan.narrowed else 0
            assert heat.z[i][k] == expected, (name, k)
    # The warm start moves everything; stage 1 the learning rate over its range, the others in
    # windows around the incumbent (shown as narrowed).
    assert [heat.z[params.index(p)][0] for p in ("learning_rate", "alpha", "width")] == [0, 0, 0]
    assert [heat.z[params.index(p)][1] for p in ("learning_rate", "alpha", "width")] == [0, 1, 1]
    timeline = staged_timeline(study)
    alpha = timeline.params.index("alpha")
    assert timeline.labels[alpha][1].startswith("near best [")
    best = next(t for t in fig.data if t.name == "best so far")
    values = [t.value for t in study.trials]
    assert list(best.y) == pytest.approx(list(np.minimum.accumulate(values)))
    stage_traces = [t for t in fig.data if t.name in heat.x]
    assert [len(t.x) for t in stage_traces] == [4, 4, 8, 8]

    top = mplots.plot_staged_timeline(study)  # a plain study works (plans in storage)
    assert isinstance(top, Axes)
    bottom = top.figure.axes[1]
    assert np.array_equal(bottom.images[0].get_array(), np.asarray(heat.z))
    assert list(top.lines[0].get_ydata()) == pytest.approx(list(best.y))


def test_plotting_backends_are_imported_lazily() -> None:
    code = (
        "import sys, optuna_hpi, optuna_hpi.visualization, optuna_hpi.cli; "
        "print('plotly' in sys.modules, 'matplotlib' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["False", "False"], done.stderr
