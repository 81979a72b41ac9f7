"""Real-model tasks of the staged benchmark: LightGBM (12 hyperparameters) and SGD (10).

Both are evaluated for real (no lookup table) on a bundled scikit-learn dataset with 3-fold
cross-validation and fixed seeds, so a trial costs a real fit. Their optimum is unknown: the
benchmark measures regret against the best value any run of any method found.
"""

from __future__ import annotations

import math
from typing import Any
import warnings

import numpy as np


LGBM = "lgbm_breast_cancer"
SGD = "sgd_digits"
REAL_TASKS = [LGBM, SGD]


class LightGBMTask:
    """LightGBM (binary log loss, 3-fold ``lgb.cv``) on load_breast_cancer, 12 parameters.

    Parameters carry LightGBM's own names. The value to maximize is minus the mean CV log loss
    after the last boosting round, the same score ``LightGBMTunerCV`` reports for its trials.
    """

    best = math.nan
    # LightGBM's own defaults, where they lie in the search space (a zero penalty or gain at
    # the range's "off" end; max_depth's default, no limit, is not in the range): what a
    # user passes as ``defaults=`` and where LightGBMTunerCV starts.
    defaults: dict[str, Any] = {
        "learning_rate": 0.1,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "min_sum_hessian_in_leaf": 1e-3,
        "bagging_fraction": 1.0,
        "bagging_freq": 0,
        "feature_fraction": 1.0,
        "lambda_l1": 1e-8,
        "lambda_l2": 1e-8,
        "min_gain_to_split": 1e-8,
        "num_iterations": 100,
    }

    def __init__(self) -> None:
        import lightgbm as lgb
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import StratifiedKFold

        self.name = LGBM
        X, y = load_breast_cancer(return_X_y=True)
        self.lgb = lgb
        self.X, self.y = X, y
        self.folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
        self.fixed = {
            "objective": "binary",
            "metric": "binary_logloss",
            "verbosity": -1,
            "num_threads": 1,
            "seed": 0,
            "deterministic": True,
            "force_col_wise": True,
        }

    def dataset(self) -> Any:
        return self.lgb.Dataset(self.X, self.y, free_raw_data=False)

    def cv_loss(self, params: dict[str, Any], rounds: int) -> float:
        result = self.lgb.cv(
            {**self.fixed, **params}, self.dataset(), num_boost_round=rounds, folds=self.folds
        )
        return float(result["valid binary_logloss-mean"][-1])

    def objective(self, trial: Any) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.5, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 2, 256, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 12),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 2, 100, log=True),
            "min_sum_hessian_in_leaf": trial.suggest_float(
                "min_sum_hessian_in_leaf", 1e-4, 10.0, log=True
            ),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.4, 1.0),
            "bagging_freq": trial.suggest_int("bagging_freq", 0, 7),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
            "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
            "min_gain_to_split": trial.suggest_float("min_gain_to_split", 1e-8, 1.0, log=True),
        }
        rounds = trial.suggest_int("num_iterations", 20, 500, log=True)
        return -self.cv_loss(params, rounds)

    def run_tuner(self, seed: int) -> list[float]:
        """Values (to maximize) of ``LightGBMTunerCV``'s trials, at its own trial count."""
        import optuna
        from optuna_integration.lightgbm import LightGBMTunerCV

        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        tuner = LightGBMTunerCV(
            {**self.fixed, "learning_rate": 0.1},
            self.dataset(),
            num_boost_round=100,
            folds=self.folds,
            study=study,
            optuna_seed=seed,
            show_progress_bar=False,
        )
        tuner.run()
        return [-float(t.value) for t in study.trials if t.value is not None]


class SGDTask:
    """scikit-learn's SGDClassifier on load_digits (3-fold CV accuracy), 10 parameters.

    Names are scikit-learn's own: ``eta0`` is the learning rate, ``learning_rate`` the
    schedule (a categorical, so the learning-rate stage tunes both).
    """

    best = math.nan
    # SGDClassifier's defaults (eta0 0.01, max_iter at the range's top end).
    defaults: dict[str, Any] = {
        "eta0": 0.01,
        "learning_rate": "optimal",
        "power_t": 0.5,
        "alpha": 1e-4,
        "penalty": "l2",
        "l1_ratio": 0.15,
        "loss": "hinge",
        "max_iter": 50,
        "tol": 1e-3,
        "average": False,
    }

    def __init__(self) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import StratifiedKFold

        self.name = SGD
        X, y = load_digits(return_X_y=True)
        self.X, self.y = X / 16.0, y
        self.folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))

    def objective(self, trial: Any) -> float:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDClassifier

        params = {
            "eta0": trial.suggest_float("eta0", 1e-5, 1.0, log=True),
            "learning_rate": trial.suggest_categorical(
                "learning_rate", ["constant", "optimal", "invscaling", "adaptive"]
            ),
            "power_t": trial.suggest_float("power_t", 0.1, 1.0),
            "alpha": trial.suggest_float("alpha", 1e-7, 1e-1, log=True),
            "penalty": trial.suggest_categorical("penalty", ["l2", "l1", "elasticnet"]),
            "l1_ratio": trial.suggest_float("l1_ratio", 0.0, 1.0),
            "loss": trial.suggest_categorical(
                "loss", ["hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"]
            ),
            "max_iter": trial.suggest_int("max_iter", 5, 50, log=True),
            "tol": trial.suggest_float("tol", 1e-5, 1e-1, log=True),
            "average": trial.suggest_categorical("average", [False, True]),
        }
        scores = []
        for train, test in self.folds:
            model = SGDClassifier(random_state=0, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(self.X[train], self.y[train])
            scores.append(model.score(self.X[test], self.y[test]))
        return float(np.mean(scores))


def make_real_task(name: str) -> LightGBMTask | SGDTask:
    return LightGBMTask() if name == LGBM else SGDTask()
