"""make_classification, random forest: random search over n_estimators, max_depth, min_samples_split.

    python examples/02_random_forest_random_search.py [--quick]
"""

import sys

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import jaxhpo
from jaxhpo.sklearn import SearchCV


def main(quick: bool = False) -> None:
    X, y = make_classification(n_samples=600, n_features=20, n_informative=8, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    space = jaxhpo.Space({
        "n_estimators": jaxhpo.Int(10, 300, log=True),
        "max_depth": jaxhpo.Int(2, 20),
        "min_samples_split": jaxhpo.Int(2, 20),
    })
    search = SearchCV(RandomForestClassifier(random_state=0, n_jobs=1), space,
                      strategy=jaxhpo.strategies.random(), n_trials=2 if quick else 20, cv=3, random_state=0,
                      progress=False).fit(X_train, y_train)
    default = RandomForestClassifier(random_state=0).fit(X_train, y_train)
    print(f"random search, {len(search.trials_)} trials, 3-fold CV accuracy {search.best_score_:.4f}")
    print(f"best: {search.best_params_}")
    print(f"test accuracy: tuned {search.score(X_test, y_test):.4f}, default forest {default.score(X_test, y_test):.4f}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
