"""Publish the analysis to optuna-dashboard (``pip install 'optuna-hpi[dashboard]'``).

optuna-dashboard stores custom plotly figures and the study's markdown note as study system
attributes (``dashboard:plot_data:<id>:<chunk>`` and ``dashboard:note_str:<chunk>``) through
its public ``save_plotly_graph_object`` and ``save_note``; it renders the figures on the study's
page and the note on its "Note" page. Figures are saved under fixed ids, so publishing again
replaces them; the note keeps the user's own text and replaces only the section between two
invisible markdown markers.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import datetime
import importlib
import math
from typing import Any
from typing import TYPE_CHECKING
import warnings

import optuna.logging

from optuna_hpi.analysis._report import importance_report
from optuna_hpi.analysis._report import ImportanceReport


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

    from optuna_hpi.staged._plan import StagePlan

_logger = optuna.logging.get_logger(__name__)

#: Graph object ids in optuna-dashboard; fixed, so that publishing again replaces the figures.
GRAPH_IDS: dict[str, str] = {
    "importances": "optuna-hpi-importances",
    "interactions": "optuna-hpi-interactions",
    "timeline": "optuna-hpi-staged-timeline",
}

#: Link reference definitions: CommonMark renders nothing for them (HTML comments are shown
#: as text by optuna-dashboard), so they delimit our section of the note invisibly.
NOTE_BEGIN = "[//]: # (optuna-hpi:begin)"
NOTE_END = "[//]: # (optuna-hpi:end)"

#: Height of optuna-dashboard's box for a custom figure (its frontend fixes it), in pixels.
DASHBOARD_HEIGHT = 450

#: Below this cross-validated R^2 the note warns that the surrogate explains little.
LOW_R2 = 0.5

#: Titles of the published figures (what the dashboard shows above each plot).
TITLES: dict[str, str] = {
    "importances": "optuna-hpi: importances with bootstrap intervals",
    "interactions": "optuna-hpi: Sobol' interactions (diagonal S_i, off-diagonal S_ij)",
    "timeline": "optuna-hpi: staged study timeline",
}


def _dashboard() -> Any:
    try:
        return importlib.import_module("optuna_dashboard")
    except ImportError as err:
        raise ImportError(
            "Publishing to optuna-dashboard needs the optuna-dashboard package; install it "
            "with `pip install 'optuna-hpi[dashboard]'`."
        ) from err


@dataclass(frozen=True)
class DashboardPublication:
    """What :func:`publish_to_dashboard` stored in the study.

    Attributes:
        graph_ids: The optuna-dashboard graph object id of each published figure, by kind
            (``"importances"``, ``"interactions"``, ``"timeline"``).
        note: The markdown section written into the study's note (between the markers).
        report: The importance report behind the figures and the note.
        warnings: Warnings raised while computing (also re-issued as Python warnings), and the
            figures that could not be drawn.

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import publish_to_dashboard

            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=20)
            published = publish_to_dashboard(study, evaluators=("sobol",), n_bootstrap=0)
            print(published.graph_ids["importances"], published.warnings)
            print(published.note)
    """

    graph_ids: dict[str, str]
    note: str
    report: ImportanceReport
    warnings: list[str] = field(default_factory=list)


def publish_to_dashboard(
    study: Study,
    evaluators: Sequence[str] = ("sobol", "relief", "ablation"),
    params: list[str] | None = None,
    *,
    target: Callable[[FrozenTrial], float] | None = None,
    n_bootstrap: int = 20,
    seed: int = 0,
    evaluator_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> DashboardPublication:
    """Store the importance analysis of ``study`` where optuna-dashboard shows it.

    Stores, in the study's own storage (so ``optuna-dashboard STORAGE_URL`` shows them):

    * the importances of ``evaluators`` side by side with their bootstrap intervals;
    * the heatmap of Sobol' first-order and pairwise indices;
    * for a study run by :class:`~optuna_hpi.StagedStudy`, the stage timeline;
    * a markdown section of the study's note: the report table, the surrogate's CV R^2, the
      warnings raised while computing, and the staged plans with their reasons.

    Publishing again replaces the figures (fixed graph ids) and our note section; the rest of
    the note (what a user wrote in the dashboard) is kept.

    Args:
        study: The study, loaded from the storage the dashboard reads.
        evaluators: Evaluators of the importance figure and the note's table.
        params: Parameters to assess (default: all).
        target: Response to explain instead of the objective (needed for multi-objective
            studies); it is minimized.
        n_bootstrap: Bootstrap resamples for the intervals.
        seed: Seed of the evaluators.
        evaluator_options: Extra constructor arguments per evaluator name.
        progress: Called with a short message before each step.

    Returns:
        What was stored.

    Raises:
        ImportError: optuna-dashboard or plotly is not installed.
        ValueError: as :func:`~optuna_hpi.importance_report` (e.g. a multi-objective study
            without ``target`` and an Optuna evaluator).

    Example:

        .. code-block:: python

            import optuna
            from optuna_hpi import publish_to_dashboard


            def objective(trial):
                x = trial.suggest_float("x", -1, 1)
                y = trial.suggest_float("y", -1, 1)
                return x**2 + 0.1 * y


            study = optuna.create_study(
                storage="sqlite:///hpo.db", sampler=optuna.samplers.RandomSampler(seed=0)
            )
            study.optimize(objective, n_trials=40)
            published = publish_to_dashboard(study, evaluators=("sobol", "relief"), n_bootstrap=5)
            print(published.graph_ids)  # then: optuna-dashboard sqlite:///hpo.db
    """
    dashboard = _dashboard()
    from optuna_hpi.visualization import _plotly as plots
    from optuna_hpi.visualization._common import staged_config

    def say(message: str) -> None:
        if progress is not None:
            progress(message)
        _logger.info(message)

    problems: list[str] = []
    figures: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = importance_report(
            study,
            evaluators,
            params,
            target=target,
            n_bootstrap=n_bootstrap,
            seed=seed,
            evaluator_options=evaluator_options,
            progress=progress,
        )
        say("drawing the figures")
        figures["importances"] = plots.plot_importances(report)
        try:
            interactions: Any = report if report.sobol_first else study
            figures["interactions"] = plots.plot_interactions(
                interactions, params=params, target=target, seed=seed
            )
        except ValueError as err:
            problems.append(f"interaction heatmap not drawn: {err}")
        if staged_config(study) is not None:
            try:
                figures["timeline"] = plots.plot_staged_timeline(study)
            except ValueError as err:
                problems.append(f"staged timeline not drawn: {err}")
    messages: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)
            # The caller still sees them (the CLI prints them unless --quiet).
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    messages += problems

    level = int(round(100 * report.confidence))
    names = ", ".join(report.evaluators)
    titles = dict(TITLES, importances=f"{TITLES['importances']} ({names}; {level}% intervals)")
    for kind, fig in figures.items():
        # optuna-dashboard draws each custom figure in a box 450 px high.
        fig.update_layout(title=titles[kind], height=DASHBOARD_HEIGHT)
    if "timeline" in figures:
        # At that height the top panel's axis title runs into the bottom panel's title.
        figures["timeline"].update_xaxes(title_text=None, row=1, col=1)

    graph_ids: dict[str, str] = {}
    for kind, fig in figures.items():
        say(f"saving the {kind} figure")
        graph_ids[kind] = dashboard.save_plotly_graph_object(
            study, fig, graph_object_id=GRAPH_IDS[kind]
        )
    section = note_markdown(study, report, messages)
    say("saving the note")
    dashboard.save_note(study, merge_note(dashboard.get_note(study), section))
    return DashboardPublication(graph_ids, section, report, messages)


def merge_note(existing: str, section: str) -> str:
    """``existing`` with our marked section replaced by ``section`` (appended if absent)."""
    block = f"{NOTE_BEGIN}\n\n{section.strip()}\n\n{NOTE_END}"
    start = existing.find(NOTE_BEGIN)
    end = existing.find(NOTE_END, start + 1) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return existing[:start] + block + existing[end + len(NOTE_END) :]
    if not existing.strip():
        return block + "\n"
    return existing.rstrip() + "\n\n" + block + "\n"


def _md(text: Any) -> str:
    """A table cell: pipes escaped, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cell(v: float | None, interval: tuple[float, float] | None = None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    s = f"{v:.3f}"
    if interval is not None:
        s += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return s


def note_markdown(study: Study, report: ImportanceReport, messages: Sequence[str]) -> str:
    """Our section of the study's note (markdown)."""
    from optuna_hpi import __version__
    from optuna_hpi.visualization._common import stored_plans

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    level = int(round(100 * report.confidence))
    lines = [
        "## optuna-hpi: hyperparameter importance",
        "",
        f"Published {now} by optuna-hpi {__version__} from {report.n_trials} trials "
        f"(response: {report.response}). Publishing again replaces this section and the "
        "optuna-hpi figures on the study page.",
        "",
        f"### Importances (normalized; [{level}% bootstrap interval])",
        "",
    ]
    header = ["parameter"] + report.evaluators
    if report.sobol_first:
        header += ["Sobol' S1 (raw)", "Sobol' ST (raw)"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for p in report.params:
        row = [f"`{_md(p)}`"]
        for c in report.columns:
            row.append(_cell(c.importances.get(p), c.intervals.get(p)))
        if report.sobol_first:
            row.append(_cell(report.sobol_first.get(p), report.sobol_first_intervals.get(p)))
            row.append(_cell(report.sobol_total.get(p), report.sobol_total_intervals.get(p)))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    r2 = report.surrogate_r2
    if math.isnan(r2):
        lines.append("- Surrogate R²: not computed (no Sobol' column, or fewer than 10 trials).")
    else:
        lines.append(
            f"- Surrogate (gradient-boosted trees) 5-fold cross-validated R²: **{r2:.2f}**."
        )
    if report.interactions:
        strongest = ", ".join(
            f"{a} × {b} {_cell(i.value, i.interval)}"
            for i in report.interactions[:3]
            for a, b in [i.params]
        )
        lines.append(f"- Strongest interactions (Sobol' S_ij): {strongest}.")
    if not math.isnan(report.mean_agreement):
        lines.append(
            "- Agreement of the evaluators' rankings (mean Kendall's tau-b): "
            f"{report.mean_agreement:.2f}."
        )
    lines += ["", "### Guardrail warnings", ""]
    guard = []
    if not math.isnan(r2) and r2 < LOW_R2:
        guard.append(
            f"The surrogate's R² {r2:.2f} is below {LOW_R2}: it explains little of the "
            "objective, so its importances say little. Run more trials."
        )
    guard += [f"{name} failed and is left out: {error}" for name, error in report.failed.items()]
    guard += list(messages)
    lines += [f"- {_md(g)}" for g in guard] or ["None."]

    plans = stored_plans(study)
    if plans:
        lines += ["", "### Staged plans", ""]
        for k in sorted(plans):
            lines += _plan_markdown(plans[k])
    return "\n".join(lines) + "\n"


def _plan_markdown(plan: StagePlan) -> list[str]:
    stop = "end" if plan.stop is None else plan.stop - 1
    lines = [
        f"#### Stage {plan.stage} '{_md(plan.name)}' (trials {plan.start}..{stop})",
        "",
        f"Planned from {len(plan.based_on)} trials of the previous stage"
        + (f" with {plan.method}" if plan.method else "")
        + ("" if plan.best_trial is None else f"; best trial {plan.best_trial}")
        + ".",
        "",
        "| parameter | decision | importance [interval] |",
        "|---|---|---:|",
    ]
    for name in sorted(plan.reasons):
        imp = plan.importances.get(name)
        lines.append(
            f"| `{_md(name)}` | {_md(plan.reasons[name])} | "
            f"{_cell(imp, plan.intervals.get(name))} |"
        )
    lines.append("")
    return lines
