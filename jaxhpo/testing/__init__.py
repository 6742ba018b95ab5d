"""Helpers for tests and comparisons: standard test functions (``jaxhpo.testing.functions``)."""
