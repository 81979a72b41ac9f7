"""optuna-hpi: hyperparameter importance you can trust, and staged search that uses it."""

from optuna_hpi._encoding import encode_study
from optuna_hpi._encoding import EncodedTrials
from optuna_hpi._encoding import ParamSpec
from optuna_hpi._surrogate import SurrogateConfig
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
from optuna_hpi.staged import Stage
from optuna_hpi.staged import StagedSampler
from optuna_hpi.staged import StagedStudy
from optuna_hpi.staged import StagePlan


__version__ = "0.1.0"

__all__ = [
    "AblationImportanceEvaluator",
    "AblationResult",
    "AblationStep",
    "EncodedTrials",
    "ImportanceResult",
    "NRReliefFImportanceEvaluator",
    "NRReliefFResult",
    "ParamSpec",
    "SobolImportanceEvaluator",
    "SobolResult",
    "StabilityResult",
    "Stage",
    "StagePlan",
    "StagedSampler",
    "StagedStudy",
    "SurrogateConfig",
    "encode_study",
    "importance_stability",
]
