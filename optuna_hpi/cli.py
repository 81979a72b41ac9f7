"""The ``optuna-hpi`` command: importances, the side-by-side report and plots of a stored study,
publishing them to optuna-dashboard, range advice for the next study, and listing studies.

Every error a user can cause (bad storage URL, unknown study, empty study, multi-objective study
without ``--target-index``, unavailable evaluator) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Sequence
import json
import os
import sys
from typing import Any
from typing import NoReturn
from typing import TYPE_CHECKING
import warnings

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_hpi.analysis._registry import EVALUATOR_NAMES
from optuna_hpi.analysis._report import importance_report
from optuna_hpi.analysis._report import ImportanceReport


if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study
    from optuna.trial import FrozenTrial

#: Plots ``optuna-hpi plot`` can draw.
PLOT_KINDS = ("importances", "interactions", "marginal", "ablation", "timeline")

_PLOTLY_SUFFIXES = (".html", ".htm")
_MATPLOTLIB_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def _fail(message: str) -> NoReturn:
    raise CliError(message)


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if args.quiet:
        return None
    return lambda message: print(f"optuna-hpi: {message}", file=sys.stderr, flush=True)


_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")


def _is_sqlite_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def storage_url(url: str) -> str:
    """The URL ``--storage`` means: a bare path of an SQLite file becomes ``sqlite:///path``.

    Journal files and database URLs are returned unchanged; a bare path that does not exist
    fails with one line instead of a journal decode error.
    """
    if "://" in url:
        return url
    if os.path.isfile(url):
        # Recognised by content, not by name: journal logs are often called *.db too.
        return f"sqlite:///{url}" if _is_sqlite_file(url) else url
    if url.lower().endswith(_SQLITE_SUFFIXES):
        _fail(f"invalid --storage {url!r}: no SQLite file at that path (check the path)")
    _fail(
        f"invalid --storage {url!r}: no such file, and not a database URL such as "
        "sqlite:///study.db"
    )


def _storage(url: str) -> BaseStorage:
    url = storage_url(url)
    if "://" not in url:
        # A plain file that is not SQLite: a JournalStorage log (`optuna.storages.journal`).
        from optuna.storages.journal import JournalFileBackend
        from optuna.storages.journal import JournalStorage

        try:
            return JournalStorage(JournalFileBackend(url))
        except Exception as err:
            _fail(f"cannot read {url!r} as an SQLite database or a journal file: {_one_line(err)}")
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        # SQLAlchemy would silently create an empty database for a mistyped path.
        if path and path != ":memory:" and not os.path.isfile(path):
            _fail(f"no SQLite database at {path!r} (from --storage {url!r})")
    try:
        return optuna.storages.get_storage(url)
    except Exception as err:
        _fail(f"cannot open storage {url!r}: {_one_line(err)}")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_study(url: str, name: str | None) -> Study:
    """Open a study for the CLI; :class:`CliError` with a one-line reason on failure."""
    storage = _storage(url)
    try:
        names = [s.study_name for s in storage.get_all_studies()]
    except Exception as err:
        _fail(f"cannot read studies from {url!r}: {_one_line(err)}")
    if name is None:
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            _fail(f"--study-name is required: the storage has {len(names)} studies ({listed})")
        name = names[0]
    if name not in names:
        listed = ", ".join(names) if names else "none"
        _fail(f"no study named {name!r} in {url!r} (studies: {listed})")
    study = optuna.load_study(study_name=name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        _fail(f"study {name!r} has no completed trials; nothing to analyse")
    return study


def target_of(
    study: Study, index: int | None, oriented: bool = True
) -> Callable[[FrozenTrial], float] | None:
    """The response for ``--target-index`` (``None``: the study's single objective).

    With ``oriented`` a maximized objective is negated, so that the target is lower-is-better
    like the objectives of a minimized study (what PED-ANOVA and ablation assume).
    """
    n = len(study.directions)
    if index is None:
        if n > 1:
            _fail(
                f"study {study.study_name!r} has {n} objectives; pass --target-index 0..{n - 1} "
                "to choose the one to explain"
            )
        return None
    if not 0 <= index < n:
        _fail(f"--target-index {index} is out of range: the study has {n} objective(s)")
    if n == 1:
        return None
    sign = -1.0 if oriented and study.directions[index] == StudyDirection.MAXIMIZE else 1.0
    return lambda t: sign * t.values[index]


def _report(args: argparse.Namespace, evaluators: Sequence[str]) -> ImportanceReport:
    study = load_study(args.storage, args.study_name)
    target = target_of(study, args.target_index)
    return importance_report(
        study,
        evaluators,
        args.params,
        target=target,
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
        evaluator_options=_options(args),
        progress=_progress(args),
    )


def _options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    if args.default_params is None:
        return {}
    return {"ablation": {"default_params": args.default_params}}


def _cmd_importance(args: argparse.Namespace) -> str:
    report = _report(args, (args.evaluator,))
    column = report.columns[0]
    order = sorted(column.importances, key=lambda p: -column.importances[p])
    if args.format == "json":
        payload: dict[str, Any] = {
            "evaluator": column.name,
            "n_trials": report.n_trials,
            "response": report.response,
            "importances": {p: column.importances[p] for p in order},
            "intervals": {p: list(column.intervals[p]) for p in order if p in column.intervals},
        }
        return json.dumps(payload, indent=2)
    if args.format == "csv":
        lines = ["param,importance,low,high"]
        for p in order:
            lo, hi = column.intervals.get(p, (None, None))
            cells = [p, repr(column.importances[p])] + [
                "" if v is None else repr(v) for v in (lo, hi)
            ]
            lines.append(",".join(cells))
        return "\n".join(lines)
    width = max([len(p) for p in order] + [5])
    lines = [f"{column.name} importances ({report.n_trials} trials, normalized)"]
    for p in order:
        cell = f"{column.importances[p]:.4f}"
        if p in column.intervals:
            lo, hi = column.intervals[p]
            cell += f"  [{lo:.4f}, {hi:.4f}]"
        lines.append(f"{p.ljust(width)}  {cell}")
    return "\n".join(lines)


def _cmd_report(args: argparse.Namespace) -> str:
    report = _report(args, args.evaluators)
    if args.format == "json":
        return report.to_json()
    if args.format == "csv":
        return report.to_csv().rstrip("\n")
    return report.to_text()


def _cmd_plot(args: argparse.Namespace) -> str:
    output: str = args.output
    suffix = os.path.splitext(output)[1].lower()
    if suffix not in _PLOTLY_SUFFIXES + _MATPLOTLIB_SUFFIXES:
        _fail(
            f"--output {output!r}: use .html (plotly) or one of "
            f"{', '.join(_MATPLOTLIB_SUFFIXES)} (matplotlib)"
        )
    _prepare_output(output)
    study = load_study(args.storage, args.study_name)
    progress = _progress(args)
    if suffix in _PLOTLY_SUFFIXES:
        from optuna_hpi import visualization as backend
    else:
        from optuna_hpi.visualization import matplotlib as backend  # type: ignore[no-redef]
    kind = args.kind
    if progress is not None:
        progress(f"computing the {kind} plot of {study.study_name!r}")
    figure: Any
    if kind == "importances":
        report = importance_report(
            study,
            args.evaluators,
            args.params,
            target=target_of(study, args.target_index),
            n_bootstrap=args.n_bootstrap,
            seed=args.seed,
            evaluator_options=_options(args),
            progress=progress,
        )
        figure = backend.plot_importances(report)
    elif kind == "interactions":
        figure = backend.plot_interactions(
            study, params=args.params, target=target_of(study, args.target_index), seed=args.seed
        )
    elif kind == "ablation":
        figure = backend.plot_ablation_path(
            study,
            params=args.params,
            target=target_of(study, args.target_index),
            default_params=args.default_params,
            seed=args.seed,
        )
    elif kind == "timeline":
        figure = backend.plot_staged_timeline(study)
    else:
        figure = backend.plot_marginal_effects(
            study,
            params=args.params,
            # Curves are drawn in the objective's own units and direction.
            target=target_of(study, args.target_index, oriented=False),
            n_bootstrap=min(args.n_bootstrap, 10),
            seed=args.seed,
        )
    if suffix in _PLOTLY_SUFFIXES:
        figure.write_html(output, include_plotlyjs=_PLOTLYJS[args.plotlyjs])
    else:
        figure.figure.savefig(output, dpi=120)  # every matplotlib plot returns an Axes
    return f"wrote {output}"


#: ``--plotlyjs`` choice -> plotly's ``include_plotlyjs``.
_PLOTLYJS: dict[str, str | bool] = {"cdn": "cdn", "directory": "directory", "inline": True}


def _prepare_output(output: str) -> None:
    """Create the output's folder (and check it is writable) before any computation."""
    folder = os.path.dirname(os.path.abspath(output))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        _fail(f"--output {output!r}: cannot create its folder {folder!r}: {err.strerror or err}")
    if os.path.isdir(output):
        _fail(f"--output {output!r} is a folder; give a file name such as {output}/plot.png")
    if not os.access(folder, os.W_OK):
        _fail(f"--output {output!r}: the folder {folder!r} is not writable")


def _cmd_publish(args: argparse.Namespace) -> str:
    from optuna_hpi._dashboard import _dashboard
    from optuna_hpi._dashboard import publish_to_dashboard

    _dashboard()  # fail with the install hint before any computation
    study = load_study(args.storage, args.study_name)
    published = publish_to_dashboard(
        study,
        args.evaluators,
        args.params,
        target=target_of(study, args.target_index),
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
        evaluator_options=_options(args),
        progress=_progress(args),
    )
    url = storage_url(args.storage)
    lines = [
        f"published to study {study.study_name!r}: figures "
        + ", ".join(published.graph_ids.values())
        + " and the optuna-hpi section of the study's note",
    ]
    if published.warnings:
        # The warnings themselves went to stderr (unless --quiet) and into the note.
        lines.append(f"{len(published.warnings)} guardrail warning(s) are listed in the note")
    lines.append(f"view it with: optuna-dashboard {url}")
    return "\n".join(lines)


def _cmd_ranges(args: argparse.Namespace) -> str:
    from optuna_hpi.analysis._ranges import suggest_ranges

    study = load_study(args.storage, args.study_name)
    progress = _progress(args)
    if progress is not None:
        progress(f"range advice for {study.study_name!r} (Sobol' importances, marginal effects)")
    ranges = suggest_ranges(
        study,
        args.params,
        target=target_of(study, args.target_index),
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
        min_trials=args.min_trials,
    )
    if args.format == "json":
        return ranges.to_json()
    if args.format == "python":
        return ranges.to_python()
    return ranges.to_text()


def _cmd_studies(args: argparse.Namespace) -> str:
    storage = _storage(args.storage)
    try:
        studies = storage.get_all_studies()
    except Exception as err:
        _fail(f"cannot read studies from {args.storage!r}: {_one_line(err)}")
    rows: list[dict[str, Any]] = []
    for s in sorted(studies, key=lambda s: s.study_name):
        trials = optuna.load_study(study_name=s.study_name, storage=storage).get_trials(
            deepcopy=False
        )
        counts = {state.name.lower(): 0 for state in TrialState}
        for t in trials:
            counts[t.state.name.lower()] += 1
        rows.append(
            {
                "name": s.study_name,
                "n_trials": len(trials),
                "n_complete": counts["complete"],
                "states": {k: v for k, v in counts.items() if v},
                "directions": [d.name.lower() for d in s.directions],
            }
        )
    if args.format == "json":
        return json.dumps(rows, indent=2)
    if not rows:
        return f"no studies in {args.storage!r}"
    table = [("study", "trials", "complete", "directions")] + [
        (r["name"], str(r["n_trials"]), str(r["n_complete"]), ",".join(r["directions"]))
        for r in rows
    ]
    widths = [max(len(row[k]) for row in table) for k in range(4)]
    lines = []
    for i, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:3], widths[1:3])]
        lines.append("  ".join(cells + [row[3]]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-hpi",
        description="Hyperparameter importance of an Optuna study in any storage.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    storage_help = (
        "storage URL (e.g. sqlite:///study.db), or the path of an SQLite file or a journal file"
    )

    def common(p: argparse.ArgumentParser, n_bootstrap: int) -> None:
        p.add_argument("--storage", required=True, help=storage_help)
        p.add_argument(
            "--study-name", default=None, help="study to read (optional if it is the only one)"
        )
        p.add_argument(
            "--target-index",
            type=int,
            default=None,
            help="objective to explain in a multi-objective study (0-based)",
        )
        p.add_argument("--params", nargs="+", default=None, help="parameters to assess")
        p.add_argument(
            "--n-bootstrap",
            type=int,
            default=n_bootstrap,
            help=f"bootstrap resamples for intervals (default {n_bootstrap}; 0: none)",
        )
        p.add_argument("--seed", type=int, default=0, help="seed of the evaluators")
        p.add_argument(
            "--default-params",
            type=json_object,
            default=None,
            help="source configuration of ablation as JSON, e.g. '{\"lr\": 0.001}'",
        )
        p.add_argument(
            "--quiet",
            action="store_true",
            help="nothing on stderr but errors: no progress messages, no warnings",
        )

    def json_object(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from err
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError("expected a JSON object of parameter -> value")
        return value

    def evaluator_list(text: str) -> list[str]:
        names = [s.strip() for s in text.split(",") if s.strip()]
        unknown = [n for n in names if n not in EVALUATOR_NAMES]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown evaluator(s) {unknown or text!r}; "
                f"choose from {','.join(EVALUATOR_NAMES)}"
            )
        return names

    p_imp = sub.add_parser("importance", help="one evaluator's normalized importances")
    common(p_imp, 0)
    p_imp.add_argument("--evaluator", choices=EVALUATOR_NAMES, default="sobol")
    p_imp.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p_imp.set_defaults(run=_cmd_importance)

    p_rep = sub.add_parser("report", help="several evaluators side by side, with agreement")
    common(p_rep, 20)
    p_rep.add_argument(
        "--evaluators",
        type=evaluator_list,
        default=list(EVALUATOR_NAMES),
        help=f"comma-separated (default: {','.join(EVALUATOR_NAMES)})",
    )
    p_rep.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p_rep.set_defaults(run=_cmd_report)

    p_plot = sub.add_parser("plot", help="write a plot to a file (.html plotly, .png matplotlib)")
    p_plot.add_argument("kind", choices=PLOT_KINDS, help="which plot")
    common(p_plot, 10)
    p_plot.add_argument("--output", required=True, help="file to write (.html, .png, .pdf, .svg)")
    p_plot.add_argument(
        "--evaluators",
        type=evaluator_list,
        default=["sobol"],
        help="comma-separated evaluators of the importances plot (default: sobol)",
    )
    p_plot.add_argument(
        "--plotlyjs",
        choices=tuple(_PLOTLYJS),
        default="cdn",
        help="how an .html file gets plotly.js: 'cdn' (default, ~10 KB file, loads plotly.js "
        "from the web), 'directory' (a shared plotly.min.js written beside the file, works "
        "offline) or 'inline' (self-contained, ~4.8 MB)",
    )
    p_plot.set_defaults(run=_cmd_plot)

    p_pub = sub.add_parser(
        "publish", help="store importance figures and a note where optuna-dashboard shows them"
    )
    common(p_pub, 20)
    p_pub.add_argument(
        "--evaluators",
        type=evaluator_list,
        default=["sobol", "relief", "ablation"],
        help="comma-separated evaluators side by side (default: sobol,relief,ablation)",
    )
    p_pub.set_defaults(run=_cmd_publish)

    p_ranges = sub.add_parser(
        "ranges", help="advise each parameter's range for the next study (keep/narrow/...)"
    )
    common(p_ranges, 20)
    p_ranges.add_argument(
        "--format",
        choices=("table", "json", "python"),
        default="table",
        help="table (default), json (a list of objects) or python (trial.suggest_* lines)",
    )
    p_ranges.add_argument(
        "--min-trials",
        type=int,
        default=20,
        help="below this many usable trials every range is kept (default 20)",
    )
    p_ranges.set_defaults(run=_cmd_ranges)

    p_studies = sub.add_parser("studies", help="list the studies of a storage")
    p_studies.add_argument("--storage", required=True, help=storage_help)
    p_studies.add_argument("--format", choices=("table", "json"), default="table")
    p_studies.add_argument("--quiet", action="store_true", help="no warnings on stderr")
    p_studies.set_defaults(run=_cmd_studies)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optuna-hpi`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    quiet = bool(getattr(args, "quiet", False))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR if quiet else optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            if quiet:
                # Python warnings (guardrails of the evaluators, Optuna's experimental
                # warnings) go to stderr by default; --quiet promises errors only.
                warnings.simplefilter("ignore")
            output = args.run(args)
    except CliError as err:
        print(f"optuna-hpi: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, KeyError, ImportError) as err:
        # Argument errors of the analysis layer carry a message meant for the user.
        print(f"optuna-hpi: error: {_one_line(err)}", file=sys.stderr)
        return 2
    finally:
        optuna.logging.set_verbosity(verbosity)
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
