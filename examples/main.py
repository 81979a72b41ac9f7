"""Main job: tune a scikit-learn model with SQLite storage and print every evaluator side by side.

Run: ``python examples/main.py`` (creates ``hpi_example.db`` in the working directory; rerunning
resumes the same study).
"""

from __future__ import annotations

import os


os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import optuna  # noqa: E402
from optuna.importance import FanovaImportanceEvaluator  # noqa: E402
from optuna.importance import MeanDecreaseImpurityImportanceEvaluator  # noqa: E402
from optuna.importance import PedAnovaImportanceEvaluator  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from optuna_hpi import SobolImportanceEvaluator  # noqa: E402


X, y = load_digits(return_X_y=True)
X = X / 16.0


def objective(trial: optuna.Trial) -> float:
    model = MLPClassifier(
        hidden_layer_sizes=(trial.suggest_int("width", 8, 128, log=True),),
        learning_rate_init=trial.suggest_float("learning_rate_init", 1e-5, 1e-1, log=True),
        alpha=trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
        batch_size=trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        max_iter=30,
        random_state=0,
    )
    return float(cross_val_score(model, X, y, cv=3, n_jobs=1).mean())


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="mlp-digits",
        storage="sqlite:///hpi_example.db",
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    remaining = 40 - len(study.trials)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining)
    print(f"best accuracy {study.best_value:.4f} with {study.best_params}")

    evaluators = {
        "sobol": SobolImportanceEvaluator(seed=0),
        "fanova": FanovaImportanceEvaluator(seed=0),
        "mdi": MeanDecreaseImpurityImportanceEvaluator(seed=0),
        "pedanova": PedAnovaImportanceEvaluator(),
    }
    table = {
        name: optuna.importance.get_param_importances(study, evaluator=ev)
        for name, ev in evaluators.items()
    }
    params = list(table["sobol"])
    print(f"{'param':<20}" + "".join(f"{n:>10}" for n in table))
    for p in params:
        print(f"{p:<20}" + "".join(f"{table[n].get(p, 0.0):>10.3f}" for n in table))


if __name__ == "__main__":
    main()
