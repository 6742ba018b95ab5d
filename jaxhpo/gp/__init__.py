"""Gaussian-process surrogates: kernels, exact GP with Optax-fit hyperparameters, acquisitions."""

from jaxhpo.gp import acquisition, gp, kernels
from jaxhpo.gp.blas import limit_blas_threads

__all__ = ["acquisition", "gp", "kernels", "limit_blas_threads"]
