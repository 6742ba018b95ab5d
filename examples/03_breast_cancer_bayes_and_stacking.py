"""Breast cancer: Bayesian optimization of a random forest (5-fold CV), then stacking it with an SVC.

The tuned forest and an SVC are fused by a learned meta-learner on
out-of-fold probabilities (FusionClassifier, method="stacking") and
compared with each model alone on a held-out test split.

    python examples/03_breast_cancer_bayes_and_stacking.py [--quick]
"""

import sys
import warnings

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import jaxhpo
from jaxhpo.sklearn import FusionClassifier, SearchCV


warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn 1.9: SVC(probability=True)

def main(quick: bool = False) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    space = jaxhpo.Space({
        "n_estimators": jaxhpo.Int(20, 250, log=True),
        "max_depth": jaxhpo.Int(2, 16),
        "min_samples_leaf": jaxhpo.Int(1, 10),
        "max_features": jaxhpo.Float(0.1, 1.0),
    })
    strategy = jaxhpo.strategies.sobol() if quick else jaxhpo.strategies.bayes()
    search = SearchCV(RandomForestClassifier(random_state=0, n_jobs=1), space, strategy=strategy,
                      n_trials=2 if quick else 16, cv=3 if quick else 5, random_state=0).fit(X_train, y_train)
    forest = search.best_estimator_
    svc = make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(X_train, y_train)
    fused = FusionClassifier([("forest", forest), ("svc", svc)], method="stacking", cv=5,
                             random_state=0).fit(X_train, y_train)
    print(f"tuned forest ({'sobol' if quick else 'bayes'}, {len(search.trials_)} trials): {search.best_params_}")
    print(f"{'model':<22} {'test accuracy':>14} {'log loss':>9}")
    for name, model in (("random forest (tuned)", forest), ("SVC", svc), ("stacked fusion", fused)):
        proba = model.predict_proba(X_test)
        print(f"{name:<22} {model.score(X_test, y_test):14.4f} {log_loss(y_test, proba):9.4f}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
