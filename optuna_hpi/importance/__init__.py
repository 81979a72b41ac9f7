from optuna_hpi.importance._ablation import AblationImportanceEvaluator
from optuna_hpi.importance._ablation import AblationResult
from optuna_hpi.importance._ablation import AblationStep
from optuna_hpi.importance._relief import NRReliefFImportanceEvaluator
from optuna_hpi.importance._relief import NRReliefFResult
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._sobol import SobolImportanceEvaluator
from optuna_hpi.importance._sobol import SobolResult
from optuna_hpi.importance._stability import importance_stability
from optuna_hpi.importance._stability import StabilityResult


__all__ = [
    "AblationImportanceEvaluator",
    "AblationResult",
    "AblationStep",
    "ImportanceResult",
    "NRReliefFImportanceEvaluator",
    "NRReliefFResult",
    "SobolImportanceEvaluator",
    "SobolResult",
    "StabilityResult",
    "importance_stability",
]
