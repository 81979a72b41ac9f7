"""Evaluators by name, imported lazily so that optional or not-yet-installed ones cost nothing."""

from __future__ import annotations

from collections.abc import Callable
import importlib
from typing import Any

from optuna.importance import BaseImportanceEvaluator


#: Name -> (module candidates, class name, accepts ``seed``). Candidates are tried in order: the
#: public package first, then the private module the class is defined in.
_EVALUATORS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "sobol": (
        ("optuna_hpi.importance", "optuna_hpi.importance._sobol"),
        "SobolImportanceEvaluator",
        True,
    ),
    "relief": (
        ("optuna_hpi.importance", "optuna_hpi.importance._relief"),
        "NRReliefFImportanceEvaluator",
        True,
    ),
    "ablation": (
        ("optuna_hpi.importance", "optuna_hpi.importance._ablation"),
        "AblationImportanceEvaluator",
        True,
    ),
    "fanova": (("optuna.importance",), "FanovaImportanceEvaluator", True),
    "pedanova": (("optuna.importance",), "PedAnovaImportanceEvaluator", False),
    "mdi": (("optuna.importance",), "MeanDecreaseImpurityImportanceEvaluator", True),
}

#: Every evaluator name the report and the CLI understand, in display order.
EVALUATOR_NAMES: tuple[str, ...] = tuple(_EVALUATORS)


def evaluator_class(name: str) -> Callable[..., BaseImportanceEvaluator]:
    """The evaluator class registered under ``name``, imported on first use.

    Raises:
        ValueError: ``name`` is not a registered evaluator.
        ImportError: the evaluator is registered but not available in this installation.
    """
    if name not in _EVALUATORS:
        raise ValueError(
            f"Unknown evaluator {name!r}; choose one of {', '.join(EVALUATOR_NAMES)}."
        )
    modules, class_name, _ = _EVALUATORS[name]
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        if cls is not None:
            return cls
    raise ImportError(
        f"Evaluator {name!r} ({class_name}) is not available in this installation of "
        "optuna-hpi; upgrade the package or choose another evaluator."
    )


def available_evaluators() -> list[str]:
    """Names of the registered evaluators that can be imported here."""
    out = []
    for name in EVALUATOR_NAMES:
        try:
            evaluator_class(name)
        except ImportError:
            continue
        out.append(name)
    return out


def make_evaluator(name: str, seed: int | None = 0, **kwargs: Any) -> BaseImportanceEvaluator:
    """Construct the evaluator registered under ``name``.

    Args:
        name: One of :data:`EVALUATOR_NAMES`.
        seed: Seed passed to evaluators that take one (PED-ANOVA is deterministic).
        kwargs: Further constructor arguments of that evaluator.
    """
    cls = evaluator_class(name)
    if _EVALUATORS[name][2]:
        kwargs = {"seed": seed, **kwargs}
    return cls(**kwargs)
