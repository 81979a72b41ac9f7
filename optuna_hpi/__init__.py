"""optuna-hpi: hyperparameter importance you can trust, and staged search that uses it."""

from optuna_hpi._dashboard import DashboardPublication
from optuna_hpi._dashboard import publish_to_dashboard
from optuna_hpi._encoding import encode_study
from optuna_hpi._encoding import EncodedTrials
from optuna_hpi._encoding import ParamSpec
from optuna_hpi._surrogate import SurrogateConfig
from optuna_hpi.analysis import importance_report
from optuna_hpi.analysis import ImportanceReport
from optuna_hpi.analysis import marginal_effects
from optuna_hpi.analysis import MarginalEffects
from optuna_hpi.analysis import RangeAdvice
from optuna_hpi.analysis import RangeSuggestions
from optuna_hpi.analysis import sensitivity_analysis
from optuna_hpi.analysis import SensitivityResult
from optuna_hpi.analysis import suggest_ranges
from optuna_hpi.importance import AblationImportanceEvaluator
from optuna_hpi.importance import AblationResult
from optuna_hpi.importance import AblationStep
from optuna_hpi.importance import importance_stability
from optuna_hpi.importance import ImportanceResult
from optuna_hpi.importance import NRReliefFImportanceEvaluator
from optuna_hpi.importance import NRReliefFResult
from optuna_hpi.importance import SobolImportanceEvaluator
from optuna_hpi.importance import SobolResult
from optuna_hpi.importance import StabilityResult
from optuna_hpi.staged import load_plans
from optuna_hpi.staged import Stage
from optuna_hpi.staged import StagedSampler
from optuna_hpi.staged import StagedStudy
from optuna_hpi.staged import StagePlan


__version__ = "0.1.0"

__all__ = [
    "AblationImportanceEvaluator",
    "AblationResult",
    "AblationStep",
    "DashboardPublication",
    "EncodedTrials",
    "ImportanceReport",
    "ImportanceResult",
    "MarginalEffects",
    "NRReliefFImportanceEvaluator",
    "NRReliefFResult",
    "ParamSpec",
    "RangeAdvice",
    "RangeSuggestions",
    "SensitivityResult",
    "SobolImportanceEvaluator",
    "SobolResult",
    "StabilityResult",
    "Stage",
    "StagePlan",
    "StagedSampler",
    "StagedStudy",
    "SurrogateConfig",
    "encode_study",
    "importance_report",
    "importance_stability",
    "load_plans",
    "marginal_effects",
    "publish_to_dashboard",
    "sensitivity_analysis",
    "suggest_ranges",
]
