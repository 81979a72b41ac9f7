"""Main job: a staged search of a scikit-learn MLP with SQLite storage, then the importance report.

Run ``python examples/main.py``. It creates ``hpi_example.db`` in the working directory; run it
again (or after killing it) and it resumes the same study from the storage. Logs each stage as
it starts (what it moves, holds and narrows), prints each stage's plan (and the importances
behind it), then every evaluator side by side.
"""

from __future__ import annotations

import os


# One BLAS/OpenMP thread: on small machines multi-threaded BLAS made one MLP fit 100x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import warnings  # noqa: E402

import optuna  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from optuna_hpi import importance_report  # noqa: E402
from optuna_hpi import StagedStudy  # noqa: E402


X, y = load_digits(return_X_y=True)
X = X / 16.0


def objective(trial: optuna.Trial) -> float:
    model = MLPClassifier(
        hidden_layer_sizes=(trial.suggest_int("width", 8, 128, log=True),),
        learning_rate_init=trial.suggest_float("learning_rate_init", 1e-5, 1e-1, log=True),
        alpha=trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
        batch_size=trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        max_iter=20,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(cross_val_score(model, X, y, cv=3, n_jobs=1).mean())


def main() -> None:
    # Optuna's default INFO level: one line per trial, and one per stage change (what the stage
    # moves, holds and narrows) from the staged sampler.
    study = optuna.create_study(
        study_name="mlp-digits",
        storage="sqlite:///hpi_example.db",
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    # Learning rate -> regularization (alpha) -> fine-tune everything, starting from
    # scikit-learn's own defaults (the first trial evaluates them; until a trial beats them,
    # the learning-rate stage holds the others there).
    defaults = {"width": 100, "learning_rate_init": 1e-3, "alpha": 1e-4}
    staged = StagedStudy.three_stage(study, n_trials=(10, 15, 25), defaults=defaults)
    print(staged.describe(), "\n")
    staged.optimize(objective)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"best accuracy {study.best_value:.4f} with {study.best_params}\n")
    for plan in staged.plans:
        print(plan)
    print()
    report = importance_report(study, n_bootstrap=10, progress=print)
    print(report.to_text())


if __name__ == "__main__":
    main()
