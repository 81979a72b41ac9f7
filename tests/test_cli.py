from __future__ import annotations

from importlib.metadata import entry_points
import json
from pathlib import Path
from typing import Any
import warnings

import optuna
import pytest

from optuna_hpi import importance_report
from optuna_hpi.analysis import make_evaluator
from optuna_hpi.cli import main


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    y = trial.suggest_float("y", -2.0, 2.0)
    c = trial.suggest_categorical("c", ["a", "b"])
    return x**2 + 0.3 * y + 0.1 * (c == "b")


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("cli") / "study.db"
    url = f"sqlite:///{path}"
    # Trials are made in memory and copied in one transaction each (SQLite commits are slow).
    sampler = optuna.samplers.RandomSampler(seed=0)
    memory = optuna.create_study(sampler=sampler)
    memory.optimize(objective, n_trials=30)
    optuna.create_study(study_name="demo", storage=url).add_trials(memory.trials)
    memory_mo = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    memory_mo.optimize(lambda t: (objective(t), t.params["y"]), n_trials=15)
    mo = optuna.create_study(study_name="mo", storage=url, directions=["minimize", "maximize"])
    mo.add_trials(memory_mo.trials)
    optuna.create_study(study_name="empty", storage=url)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_importance_json_matches_the_api(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.load_study(study_name="demo", storage=storage)
    for name in ("sobol", "fanova", "relief"):
        code, out, err = run(
            capsys, "importance", "--storage", storage, "--study-name", "demo",
            "--evaluator", name, "--format", "json",
        )  # fmt: skip
        assert code == 0, err
        doc = json.loads(out)
        expected = optuna.importance.get_param_importances(
            study, evaluator=make_evaluator(name, seed=0)
        )
        assert doc["evaluator"] == name and doc["n_trials"] == 30
        assert doc["importances"] == pytest.approx(expected)
        assert list(doc["importances"]) == list(expected)  # most important first
        assert f"{name} on 30 trials" in err  # progress on stderr


def test_importance_table_and_csv_with_intervals(
    storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "importance", "--storage", storage, "--quiet")
    assert code == 2  # three studies: the name is required
    args = ("importance", "--storage", storage, "--study-name", "demo", "--quiet")
    code, out, err = run(
        capsys, *args, "--evaluator", "relief", "--format", "csv", "--n-bootstrap", "4"
    )
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0] == "param,importance,low,high" and lines[1].startswith("x,")
    low, high = (float(v) for v in lines[1].split(",")[2:])
    assert 0.0 <= low <= high <= 1.0
    code, out, _ = run(capsys, *args, "--evaluator", "mdi")
    assert code == 0 and out.splitlines()[1].split()[0] == "x"


def test_report_json_and_csv(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("report", "--storage", storage, "--study-name", "demo", "--n-bootstrap", "0")
    code, out, err = run(capsys, *args, "--evaluators", "sobol,mdi", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    study = optuna.load_study(study_name="demo", storage=storage)
    api = importance_report(study, ("sobol", "mdi"), n_bootstrap=0).to_dict()
    assert doc["evaluators"] == ["sobol", "mdi"] and doc["params"][0] == "x"
    for name in ("sobol", "mdi"):
        assert doc["importances"][name] == pytest.approx(api["importances"][name])
    assert doc["sobol"]["total"] == pytest.approx(api["sobol"]["total"])
    assert [i["params"] for i in doc["interactions"]] == [i["params"] for i in api["interactions"]]
    assert doc["agreement"]["mean"] == pytest.approx(api["agreement"]["mean"])
    code, out, _ = run(capsys, *args, "--evaluators", "pedanova", "--format", "csv", "--quiet")
    assert code == 0
    assert out.splitlines()[0] == "param,pedanova,pedanova_low,pedanova_high"
    code, out, _ = run(capsys, *args, "--evaluators", "mdi,pedanova", "--quiet")
    assert code == 0 and "Importance report: 30 trials" in out and "mdi ~ pedanova" in out


def test_multi_objective_with_target_index(
    storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "importance", "--storage", storage, "--study-name", "mo", "--target-index", "1",
        "--evaluator", "relief", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    study = optuna.load_study(study_name="mo", storage=storage)
    # Objective 1 (maximized, = y) is negated so that lower is better, like a minimized one.
    expected = optuna.importance.get_param_importances(
        study, evaluator=make_evaluator("relief", seed=0), target=lambda t: -t.values[1]
    )
    assert doc["response"] == "target"
    assert doc["importances"] == pytest.approx(expected)
    assert max(doc["importances"], key=doc["importances"].get) == "y"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--storage", "sqlite:///{tmp}/missing.db", "--study-name", "demo"],
            "no SQLite database",
        ),
        (["--storage", "not-a-url", "--study-name", "demo"], "invalid --storage"),
        (["--storage", "nosuchdb://x/y", "--study-name", "demo"], "cannot open storage"),
        (["--storage", "{url}", "--study-name", "nope"], "no study named 'nope'"),
        (["--storage", "{url}", "--study-name", "empty"], "has no completed trials"),
        (["--storage", "{url}", "--study-name", "mo"], "pass --target-index"),
        (["--storage", "{url}", "--study-name", "demo", "--target-index", "3"], "out of range"),
        (["--storage", "{url}", "--study-name", "demo", "--params", "q"], "['q'] do not appear"),
    ],
)
def test_errors_exit_2_with_one_line(
    storage: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    argv = [a.format(tmp=tmp_path, url=storage) for a in argv]
    code, out, err = run(capsys, "importance", "--quiet", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("optuna-hpi: error: ") and message in err
    assert not (tmp_path / "missing.db").exists()  # no empty database created by mistake


def test_plot_writes_html_and_png(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("plotly")
    pytest.importorskip("matplotlib")
    base = ("--storage", storage, "--study-name", "demo", "--quiet", "--n-bootstrap", "2")
    html = tmp_path / "marginal.html"
    code, out, err = run(capsys, "plot", "marginal", *base, "--output", str(html))
    assert code == 0, err
    assert out.strip() == f"wrote {html}" and "plotly" in html.read_text()[:5000].lower()
    png = tmp_path / "importances.png"
    code, _, err = run(
        capsys, "plot", "importances", *base, "--evaluators", "mdi", "--output", str(png)
    )
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(capsys, "plot", "importances", *base, "--output", str(tmp_path / "a.txt"))
    assert code == 2 and "use .html" in err
    code, _, err = run(capsys, "plot", "timeline", *base, "--output", str(html))
    assert code == 2 and "not run by a StagedStudy" in err


def test_console_script_entry_point() -> None:
    # The installed `optuna-hpi` script is this main (a subprocess would only re-import it).
    (script,) = entry_points(group="console_scripts", name="optuna-hpi")
    assert script.value == "optuna_hpi.cli:main"
    assert script.load() is main


# -- rough edges of a first use (issue 14) ---------------------------------------------------


def test_plot_output_folder_is_created_or_refused_before_any_work(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    base = ("--storage", storage, "--study-name", "demo", "--quiet", "--n-bootstrap", "0")
    png = tmp_path / "missing" / "dir" / "x.png"
    code, out, err = run(capsys, "plot", "importances", *base, "--evaluators", "mdi",
                         "--output", str(png))  # fmt: skip
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A folder that cannot be created: one line, exit 2, and checked before the storage is
    # even opened (the storage here does not exist, yet the output is what is reported).
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    missing_db = f"sqlite:///{tmp_path}/nope.db"
    code, out, err = run(capsys, "plot", "importances", "--storage", missing_db,
                         "--output", str(blocker / "x.png"))  # fmt: skip
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "cannot create its folder" in err


def test_bare_sqlite_path_is_accepted(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    path = storage[len("sqlite:///") :]
    monkeypatch.chdir(Path(path).parent)
    code, out, err = run(capsys, "importance", "--storage", Path(path).name, "--study-name",
                         "demo", "--evaluator", "mdi", "--format", "json", "--quiet")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["n_trials"] == 30
    code, out, err = run(capsys, "studies", "--storage", "other.db")
    assert code == 2 and err.count("\n") == 1 and "no SQLite file at that path" in err
    # A journal file is still read as one.
    journal = tmp_path / "journal.log"
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal import JournalStorage

    study = optuna.create_study(
        study_name="j", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    study.optimize(objective, n_trials=3)
    code, out, err = run(capsys, "studies", "--storage", str(journal), "--format", "json")
    assert code == 0, err
    assert [s["name"] for s in json.loads(out)] == ["j"]


def test_studies_lists_names_trial_counts_and_directions(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "studies", "--storage", storage, "--format", "json")
    assert code == 0, err
    assert json.loads(out) == [
        {"name": "demo", "n_trials": 30, "n_complete": 30, "states": {"complete": 30},
         "directions": ["minimize"]},
        {"name": "empty", "n_trials": 0, "n_complete": 0, "states": {},
         "directions": ["minimize"]},
        {"name": "mo", "n_trials": 15, "n_complete": 15, "states": {"complete": 15},
         "directions": ["minimize", "maximize"]},
    ]  # fmt: skip
    code, out, _ = run(capsys, "studies", "--storage", storage)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["study", "trials", "complete", "directions"]
    assert lines[4].split() == ["mo", "15", "15", "minimize,maximize"]
    code, _, err = run(capsys, "studies", "--storage", f"sqlite:///{tmp_path}/none.db")
    assert code == 2 and "no SQLite database" in err


def test_quiet_silences_python_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Importances of a single trial are all 0 and the evaluators warn about it: a guardrail
    # warning, shown without --quiet and silenced with it.
    url = f"sqlite:///{tmp_path}/one.db"
    optuna.create_study(study_name="one", storage=url).optimize(objective, n_trials=1)
    args = ("importance", "--storage", url, "--evaluator", "sobol")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run(capsys, *args)
    assert code == 0, err
    assert any("At most one usable trial" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run(capsys, *args, "--quiet")
    assert code == 0 and err == "" and "sobol importances (1 trials" in out
    assert [str(w.message) for w in caught] == []


def test_html_plots_are_small_by_default(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("plotly")
    base = ("plot", "importances", "--storage", storage, "--study-name", "demo", "--quiet",
            "--n-bootstrap", "0", "--evaluators", "mdi")  # fmt: skip
    sizes = {}
    for mode in ("cdn", "directory", "inline"):
        html = tmp_path / mode / "importances.html"
        extra = () if mode == "cdn" else ("--plotlyjs", mode)
        code, _, err = run(capsys, *base, *extra, "--output", str(html))
        assert code == 0, err
        sizes[mode] = html.stat().st_size
    assert sizes["cdn"] < 100_000 and sizes["directory"] < 100_000
    assert "cdn.plot.ly" in (tmp_path / "cdn" / "importances.html").read_text()
    assert (tmp_path / "directory" / "plotly.min.js").stat().st_size > 1_000_000
    assert sizes["inline"] > 1_000_000  # self-contained: plotly.js inside
