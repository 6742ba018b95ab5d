"""Regression fusion: linear regression and an SVR fused with cross-validated weights, against each alone.

    python examples/04_regression_fusion.py [--quick]
"""

import sys

from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from jaxhpo.sklearn import FusionRegressor


def main(quick: bool = False) -> None:
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    members = [("linear", LinearRegression()), ("svr", make_pipeline(StandardScaler(), SVR(C=50.0, epsilon=5.0)))]
    fused = FusionRegressor(members, method="weights", cv=3 if quick else 5, random_state=0).fit(X_train, y_train)
    w = dict(zip([n for n, _ in members], fused.fusion_.weights.tolist()))
    print(f"weights fit on out-of-fold predictions: {w}, intercept {float(fused.fusion_.intercept):.2f}")
    print(f"{'model':<18} {'test RMSE':>10} {'R^2':>7}")
    for (name, model) in members:
        model.fit(X_train, y_train)
        print(f"{name:<18} {mean_squared_error(y_test, model.predict(X_test)) ** 0.5:10.2f} "
              f"{model.score(X_test, y_test):7.3f}")
    print(f"{'fused':<18} {mean_squared_error(y_test, fused.predict(X_test)) ** 0.5:10.2f} "
          f"{fused.score(X_test, y_test):7.3f}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
