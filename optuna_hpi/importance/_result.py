from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field


Interval = tuple[float, float]


@dataclass(frozen=True)
class ImportanceResult:
    """What an evaluator's ``analyze()`` returns; ``evaluate()`` is its :attr:`importances`.

    Attributes:
        method: Name of the estimate in :attr:`values` (e.g. ``"sobol_total"``).
        values: Raw estimate per assessed parameter, in assessment order. May be negative
            (estimation noise, or a harmful parameter in ablation / N-RReliefF).
        intervals: Interval of each value at level :attr:`confidence`: the union of the
            percentile and basic bootstrap intervals over refits on resampled trials, widened
            by the surrogate's cross-validated error where there is one, always containing the
            value (coverage measured in ``benchmarks/RESULTS.md``); empty when no bootstrap
            was run.
        confidence: Level of :attr:`intervals`.
        n_trials: Number of usable trials behind the estimate.
        response: What was explained: ``"objective"``, ``"target"`` or ``"pareto_rank"``.

    Example:

        .. code-block:: python

            from optuna_hpi import ImportanceResult

            result = ImportanceResult(method="demo", values={"a": -0.1, "b": 0.4})
            assert result.importances == {"b": 0.4, "a": 0.0}
    """

    method: str
    values: dict[str, float]
    intervals: dict[str, Interval] = field(default_factory=dict)
    confidence: float = 0.95
    n_trials: int = 0
    response: str = "objective"

    @property
    def importances(self) -> dict[str, float]:
        """Values clipped at 0 and sorted descending: what ``evaluate()`` returns.

        Clipping is needed because Optuna's contract requires non-negative importances; a
        negative raw value means "no detectable effect" (or, for ablation, a harmful step)
        and stays visible in :attr:`values`.
        """
        clipped = {k: max(0.0, float(v)) for k, v in self.values.items()}
        return dict(sorted(clipped.items(), key=lambda kv: kv[1], reverse=True))
