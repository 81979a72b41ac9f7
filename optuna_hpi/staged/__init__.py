"""Importance-guided staged search: stage specs, plans, the sampler wrapper, the orchestrator."""

from optuna_hpi.staged._plan import load_plans
from optuna_hpi.staged._plan import narrow_distribution
from optuna_hpi.staged._plan import PlanRules
from optuna_hpi.staged._plan import StagePlan
from optuna_hpi.staged._sampler import default_evaluator
from optuna_hpi.staged._sampler import StagedSampler
from optuna_hpi.staged._stage import default_value
from optuna_hpi.staged._stage import infer_role
from optuna_hpi.staged._stage import Stage
from optuna_hpi.staged._study import StagedStudy


__all__ = [
    "PlanRules",
    "Stage",
    "StagePlan",
    "StagedSampler",
    "StagedStudy",
    "default_evaluator",
    "default_value",
    "infer_role",
    "load_plans",
    "narrow_distribution",
]
