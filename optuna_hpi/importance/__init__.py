from optuna_hpi.importance._relief import NRReliefFImportanceEvaluator
from optuna_hpi.importance._relief import NRReliefFResult
from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._sobol import SobolImportanceEvaluator
from optuna_hpi.importance._sobol import SobolResult


__all__ = [
    "ImportanceResult",
    "NRReliefFImportanceEvaluator",
    "NRReliefFResult",
    "SobolImportanceEvaluator",
    "SobolResult",
]
