from optuna_hpi.importance._result import ImportanceResult
from optuna_hpi.importance._sobol import SobolImportanceEvaluator
from optuna_hpi.importance._sobol import SobolResult


__all__ = ["ImportanceResult", "SobolImportanceEvaluator", "SobolResult"]
