"""``publish_to_dashboard`` / ``optuna-hpi publish``: what optuna-dashboard stores and renders.

The browser test starts the real ``optuna-dashboard`` server on a SQLite study that ``publish``
filled, opens the study page in headless Chromium (Playwright driving the system browser) and
checks that our figures and the note are rendered. It is skipped, with the reason, when
Playwright or a Chromium binary is missing (CI installs Debian's ``chromium``; see .ci/run).
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import math
import os
from pathlib import Path
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from typing import Any
import urllib.request

import optuna
import pytest

from optuna_hpi import importance_report
from optuna_hpi import publish_to_dashboard
from optuna_hpi import SobolImportanceEvaluator
from optuna_hpi import StagedStudy
from optuna_hpi import SurrogateConfig
from optuna_hpi._dashboard import GRAPH_IDS
from optuna_hpi._dashboard import NOTE_BEGIN
from optuna_hpi._dashboard import NOTE_END
from optuna_hpi._dashboard import TITLES
from optuna_hpi.cli import main
from optuna_hpi.visualization._common import stored_plans


pytest.importorskip("plotly")
dashboard = pytest.importorskip("optuna_dashboard")
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects  # noqa: E402


FAST = {"sobol": {"n_samples": 256, "surrogate": SurrogateConfig(max_iter=60)}}


def staged_objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)
    alpha = trial.suggest_float("alpha", 1e-6, 1.0, log=True)
    width = trial.suggest_int("width", 1, 10)
    return (math.log10(lr) + 2) ** 2 + 0.01 * alpha + 0.1 * width


@pytest.fixture(scope="module")
def staged_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A StagedStudy run on SQLite (in memory, then copied: SQLite commits are slow)."""
    memory = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    staged = StagedStudy.three_stage(
        memory,
        n_trials=(8, 8, 8),
        evaluator=SobolImportanceEvaluator(
            index="total", n_samples=128, n_bootstrap=5, surrogate=SurrogateConfig(max_iter=60),
            seed=0,
        ),
    )  # fmt: skip
    staged.optimize(staged_objective)
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'staged.db'}"
    target = optuna.create_study(study_name="staged", storage=url)
    for key, value in memory.user_attrs.items():  # the stage config and the plans
        target.set_user_attr(key, value)
    target.add_trials(memory.trials)
    return url


def system_attrs(study: optuna.Study) -> dict[str, Any]:
    # Exactly what optuna-dashboard's study API reads.
    return study._storage.get_study_system_attrs(study._study_id)


def test_publish_stores_replaceable_figures_and_a_note(
    staged_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    study = optuna.load_study(study_name="staged", storage=staged_url)
    dashboard.save_note(study, "My own words about this study.")
    argv = ["publish", "--storage", staged_url, "--study-name", "staged", "--n-bootstrap", "3",
            "--evaluators", "sobol,relief", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "optuna-hpi-importances" in out and f"optuna-dashboard {staged_url}" in out
    graphs = get_plotly_graph_objects(system_attrs(study))
    assert set(graphs) == set(GRAPH_IDS.values())
    importances = json.loads(graphs[GRAPH_IDS["importances"]])
    assert [t["name"] for t in importances["data"]] == ["sobol", "relief"]
    assert importances["layout"]["title"]["text"].startswith(TITLES["importances"])
    report = importance_report(study, ("sobol", "relief"), n_bootstrap=3)
    for trace, column in zip(importances["data"], report.columns):
        assert dict(zip(trace["y"], trace["x"])) == pytest.approx(column.importances)
    heat = json.loads(graphs[GRAPH_IDS["interactions"]])["data"][0]
    assert heat["type"] == "heatmap" and sorted(heat["x"]) == ["alpha", "learning_rate", "width"]
    timeline = json.loads(graphs[GRAPH_IDS["timeline"]])
    assert [t["name"] for t in timeline["data"][:4]] == [
        "warm_start", "learning_rate", "regularization", "fine_tune"
    ]  # fmt: skip

    note = dashboard.get_note(study)
    assert note.startswith("My own words about this study.")  # the user's text is kept
    section = note[note.index(NOTE_BEGIN) : note.index(NOTE_END)]
    for p in ("learning_rate", "alpha", "width"):
        assert f"| `{p}` | {report.column('sobol').importances[p]:.3f} [" in section
    assert f"cross-validated R²: **{report.surrogate_r2:.2f}**" in section
    assert "### Staged plans" in section and "#### Stage 2 'regularization'" in section
    plans = stored_plans(study)
    assert sorted(plans) == [1, 2, 3]
    for name, reason in plans[3].reasons.items():
        assert f"| `{name}` | {reason.replace('|', chr(92) + '|')} |" in section

    # Publishing again with other evaluators replaces the figures and our section only.
    size_before = len(system_attrs(study))
    publish_to_dashboard(study, ("sobol",), n_bootstrap=0, evaluator_options=FAST)
    graphs = get_plotly_graph_objects(system_attrs(study))
    assert set(graphs) == set(GRAPH_IDS.values())
    importances = json.loads(graphs[GRAPH_IDS["importances"]])
    assert [t["name"] for t in importances["data"]] == ["sobol"]
    note = dashboard.get_note(study)
    assert note.count(NOTE_BEGIN) == note.count(NOTE_END) == 1
    assert note.startswith("My own words about this study.") and "relief" not in note
    assert len(system_attrs(study)) <= size_before  # nothing piles up


def test_guardrail_warnings_reach_the_note() -> None:
    # "z" was stored as a float in some trials and an int in others (add_trial does not check
    # compatibility): the encoding leaves it out with a warning. The objective is pure noise:
    # the surrogate's R^2 is low.
    from optuna.distributions import FloatDistribution
    from optuna.distributions import IntDistribution

    study = optuna.create_study()
    rng = random.Random(0)
    for k in range(30):
        z = FloatDistribution(0, 3) if k % 2 else IntDistribution(0, 3)
        study.add_trial(
            optuna.create_trial(
                params={"x": rng.random(), "y": rng.random(), "z": 1},
                distributions={"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1), "z": z},
                value=rng.random(),
            )
        )
    with pytest.warns(UserWarning, match="Leaving 'z' out"):
        published = publish_to_dashboard(study, ("sobol",), n_bootstrap=0, evaluator_options=FAST)
    assert any("Leaving 'z' out" in w for w in published.warnings)
    assert "timeline" not in published.graph_ids  # not a staged study
    note = dashboard.get_note(study)
    assert "### Guardrail warnings" in note and "Leaving 'z' out of the assessment" in note
    r2 = published.report.surrogate_r2
    assert r2 < 0.5 and f"The surrogate's R² {r2:.2f} is below 0.5" in note


def test_missing_dashboard_package_is_one_clear_error(
    staged_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)
    study = optuna.load_study(study_name="staged", storage=staged_url)
    with pytest.raises(ImportError, match=r"optuna-hpi\[dashboard\]"):
        publish_to_dashboard(study)
    start = time.perf_counter()
    code = main(["publish", "--storage", staged_url, "--study-name", "staged"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "optuna-hpi[dashboard]" in err
    assert time.perf_counter() - start < 5  # refused before computing anything


# -- the real dashboard in a real browser ------------------------------------------------------


def _chromium() -> str | None:
    found = os.environ.get("OPTUNA_HPI_CHROMIUM")
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = found or shutil.which(name)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dashboard_server(staged_url: str, tmp_path: Path) -> Iterator[str]:
    script = Path(sysconfig.get_path("scripts")) / "optuna-dashboard"
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from optuna_dashboard._cli import main; main()"]
    )
    port = _free_port()
    log = (tmp_path / "dashboard.log").open("w")
    server = subprocess.Popen(
        [*command, staged_url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                output = (tmp_path / "dashboard.log").read_text()
                pytest.fail(f"optuna-dashboard did not start: {output}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def chromium() -> str:
    """The browser binary; checked before the dashboard server is started."""
    pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    found = _chromium()
    if found is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set OPTUNA_HPI_CHROMIUM)")
    return found


def test_published_figures_and_note_render_in_the_browser(
    chromium: str,
    staged_url: str,
    dashboard_server: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from playwright import sync_api as playwright

    argv = ["publish", "--storage", staged_url, "--study-name", "staged", "--n-bootstrap", "3",
            "--evaluators", "sobol,relief", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    study = optuna.load_study(study_name="staged", storage=staged_url)
    section = dashboard.get_note(study).split(NOTE_BEGIN)[1]
    start = time.perf_counter()
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=chromium,
            headless=True,
            viewport={"width": 1400, "height": 1000},
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        try:
            page = browser.new_page()
            study_id = study._study_id
            page.goto(f"{dashboard_server}/dashboard/studies/{study_id}")
            for kind in ("importances", "interactions", "timeline"):
                # Plotly draws the title as SVG text once the figure is rendered.
                page.locator("text.gtitle", has_text=TITLES[kind]).first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "dashboard_study.png"), full_page=True)
            docs = os.environ.get("OPTUNA_HPI_SCREENSHOT_DIR")
            if docs:  # how docs/dashboard.png was made: our three figures, cropped
                boxes = [
                    page.locator(f'[id="user-defined-plot:{GRAPH_IDS[k]}"]').bounding_box()
                    for k in ("importances", "interactions", "timeline")
                ]
                x0 = min(b["x"] for b in boxes if b) - 16
                y0 = min(b["y"] for b in boxes if b) - 16
                x1 = max(b["x"] + b["width"] for b in boxes if b) + 16
                y1 = max(b["y"] + b["height"] for b in boxes if b) + 16
                page.screenshot(
                    path=str(Path(docs) / "dashboard.png"),
                    full_page=True,
                    clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0},
                )
            ours = page.locator(f'[id="user-defined-plot:{GRAPH_IDS["importances"]}"]')
            assert ours.locator("g.trace.bars").count() == 2  # sobol and relief, side by side
            legend = ours.locator("g.legend text.legendtext").all_text_contents()
            assert legend == ["sobol", "relief"]
            assert ours.locator("g.errorbar").count() > 0  # the bootstrap intervals are drawn

            page.goto(f"{dashboard_server}/dashboard/studies/{study_id}/note")
            page.get_by_text("optuna-hpi: hyperparameter importance").wait_for(timeout=30_000)
            body = page.inner_text("body")
            for text in ("Guardrail warnings", "Staged plans", "Stage 3 'fine_tune'", "alpha"):
                assert text in body, text
            r2_line = next(line for line in section.splitlines() if "cross-validated R²" in line)
            # Markdown rendered, not shown raw: no bullet dash, no asterisks.
            assert r2_line[2:].replace("**", "") in body and "**" not in body
            assert "[//]: #" not in body  # the section markers stay invisible
            page.screenshot(path=str(tmp_path / "dashboard_note.png"), full_page=True)
            if docs:
                shutil.copy(tmp_path / "dashboard_note.png", Path(docs) / "dashboard_note.png")
        finally:
            browser.close()
    assert (tmp_path / "dashboard_study.png").stat().st_size > 10_000
    print(f"browser part took {time.perf_counter() - start:.1f} s")
