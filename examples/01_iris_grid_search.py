"""Iris, logistic regression: grid search over C and the penalty (L2 or L1) with SearchCV.

    python examples/01_iris_grid_search.py [--quick]
"""

import sys
import warnings

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jaxhpo
from jaxhpo.sklearn import SearchCV

warnings.filterwarnings("ignore", category=UserWarning)  # saga convergence on tiny C


def main(quick: bool = False) -> None:
    X, y = load_iris(return_X_y=True)
    space = {
        "logisticregression__C": jaxhpo.Float(1e-3, 1e3, log=True),
        "logisticregression__l1_ratio": jaxhpo.Categorical([0.0, 1.0]),  # 0: L2 penalty, 1: L1 penalty
    }
    resolution = 3 if quick else 7
    model = make_pipeline(StandardScaler(), LogisticRegression(solver="saga", max_iter=5000))
    search = SearchCV(model, space, strategy=jaxhpo.strategies.grid(resolution=resolution),
                      n_trials=resolution * 2, cv=5).fit(X, y)
    print(f"grid of {len(search.cv_results_['params'])} settings, 5-fold accuracy")
    for params, score in sorted(zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]),
                                key=lambda t: -t[1])[:5]:
        penalty = "L1" if params["logisticregression__l1_ratio"] == 1.0 else "L2"
        print(f"  C={params['logisticregression__C']:10.4g}  penalty={penalty}  accuracy={score:.4f}")
    print(f"best: {search.best_params_}  accuracy {search.best_score_:.4f}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
