"""Small, dependency-free examples: the default config tree trains these in seconds on CPU."""

from glmx.examples.toy import MLPRegressor, ToyRegressionData

__all__ = ["MLPRegressor", "ToyRegressionData"]
