"""Optuna's own evaluator contract (``optuna.testing.pytest_importance``) for our evaluators."""

from __future__ import annotations

from collections.abc import Callable

from optuna.importance import BaseImportanceEvaluator
from optuna.testing.pytest_importance import BasicImportanceEvaluatorTestCase
from optuna.testing.pytest_importance import ConditionalImportanceEvaluatorTestCase
from optuna.testing.pytest_importance import MultiObjectiveImportanceEvaluatorTestCase
from optuna.testing.pytest_importance import NonConditionalImportanceEvaluatorTestCase
import pytest

from optuna_hpi import AblationImportanceEvaluator
from optuna_hpi import NRReliefFImportanceEvaluator
from optuna_hpi import SobolImportanceEvaluator
from optuna_hpi import SurrogateConfig


# Light surrogates and designs: the contract is about argument handling and edge cases.
_LIGHT = SurrogateConfig(max_iter=50)
FACTORIES: dict[str, Callable[..., BaseImportanceEvaluator]] = {
    "sobol": lambda **kw: SobolImportanceEvaluator(seed=0, n_samples=256, **kw),
    "relief": lambda **kw: NRReliefFImportanceEvaluator(seed=0, **kw),
    "ablation": lambda **kw: AblationImportanceEvaluator(seed=0, surrogate=_LIGHT, **kw),
}


class _Fixture:
    @pytest.fixture(params=list(FACTORIES))
    def evaluator(self, request: pytest.FixtureRequest) -> Callable[..., BaseImportanceEvaluator]:
        return FACTORIES[request.param]


class TestBasic(_Fixture, BasicImportanceEvaluatorTestCase):
    pass


class TestNonConditional(_Fixture, NonConditionalImportanceEvaluatorTestCase):
    pass


class TestConditional(_Fixture, ConditionalImportanceEvaluatorTestCase):
    pass


class TestMultiObjective(_Fixture, MultiObjectiveImportanceEvaluatorTestCase):
    pass
