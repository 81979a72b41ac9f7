"""Analysis a user reads: the side-by-side report, marginal effects and sensitivity."""

from optuna_hpi.analysis._marginal import marginal_effects
from optuna_hpi.analysis._marginal import MarginalEffect
from optuna_hpi.analysis._marginal import MarginalEffects
from optuna_hpi.analysis._ranges import RangeAdvice
from optuna_hpi.analysis._ranges import RangeSuggestions
from optuna_hpi.analysis._ranges import suggest_ranges
from optuna_hpi.analysis._registry import available_evaluators
from optuna_hpi.analysis._registry import evaluator_class
from optuna_hpi.analysis._registry import EVALUATOR_NAMES
from optuna_hpi.analysis._registry import make_evaluator
from optuna_hpi.analysis._report import EvaluatorColumn
from optuna_hpi.analysis._report import importance_report
from optuna_hpi.analysis._report import ImportanceReport
from optuna_hpi.analysis._report import Interaction
from optuna_hpi.analysis._sensitivity import ABLATION_ATTR
from optuna_hpi.analysis._sensitivity import ablation_on_objective
from optuna_hpi.analysis._sensitivity import MeasuredAblation
from optuna_hpi.analysis._sensitivity import MeasuredStep
from optuna_hpi.analysis._sensitivity import Perturbation
from optuna_hpi.analysis._sensitivity import sensitivity_analysis
from optuna_hpi.analysis._sensitivity import SENSITIVITY_ATTR
from optuna_hpi.analysis._sensitivity import SensitivityResult


__all__ = [
    "ABLATION_ATTR",
    "MeasuredAblation",
    "MeasuredStep",
    "ablation_on_objective",
    "EVALUATOR_NAMES",
    "EvaluatorColumn",
    "ImportanceReport",
    "Interaction",
    "MarginalEffect",
    "MarginalEffects",
    "Perturbation",
    "RangeAdvice",
    "RangeSuggestions",
    "SENSITIVITY_ATTR",
    "SensitivityResult",
    "available_evaluators",
    "evaluator_class",
    "importance_report",
    "make_evaluator",
    "marginal_effects",
    "sensitivity_analysis",
    "suggest_ranges",
]
