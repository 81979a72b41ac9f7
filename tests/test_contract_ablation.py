from __future__ import annotations

from collections.abc import Callable

from optuna.testing.pytest_importance import BasicImportanceEvaluatorTestCase
from optuna.testing.pytest_importance import ConditionalImportanceEvaluatorTestCase
from optuna.testing.pytest_importance import MultiObjectiveImportanceEvaluatorTestCase
from optuna.testing.pytest_importance import NonConditionalImportanceEvaluatorTestCase
import pytest

from optuna_hpi import AblationImportanceEvaluator
from optuna_hpi import SurrogateConfig


class _Fixture:
    @pytest.fixture
    def evaluator(self) -> Callable[..., AblationImportanceEvaluator]:
        # A light surrogate: the contract is about argument handling and edge cases.
        config = SurrogateConfig(max_iter=50)
        return lambda **kw: AblationImportanceEvaluator(seed=0, surrogate=config, **kw)


class TestBasic(_Fixture, BasicImportanceEvaluatorTestCase):
    pass


class TestNonConditional(_Fixture, NonConditionalImportanceEvaluatorTestCase):
    pass


class TestConditional(_Fixture, ConditionalImportanceEvaluatorTestCase):
    pass


class TestMultiObjective(_Fixture, MultiObjectiveImportanceEvaluatorTestCase):
    pass
