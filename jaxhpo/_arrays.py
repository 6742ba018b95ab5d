"""Host arrays onto the device without a program per shape.

In JAX 0.10, ``jnp.asarray`` of a NumPy array (with or without a dtype)
compiles a small program for every new shape; ``jax.device_put`` compiles
none. jaxhpo's entry points take host data and use this instead.

Example:
    >>> import numpy as np
    >>> device_array(np.arange(3.0), np.float32).dtype
    dtype('float32')
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np


def device_array(a: Any, dtype: Optional[Any] = None) -> jax.Array:
    """``a`` as a JAX array (of ``dtype`` when given).

    A JAX array or tracer stays where it is (converted there when ``dtype``
    differs); anything else is converted by NumPy and put on the device as it
    is (``jnp.asarray`` of a host array would compile a program per shape).
    """
    if isinstance(a, jax.Array):
        return a if dtype is None else jnp.asarray(a, dtype)
    return jax.device_put(np.asarray(a, dtype))
