"""Progress bars for the Python shell (``Study.optimize``, ``population.search``): tqdm when it is there.

Example:
    >>> from jaxhpo.progress import progress_bar
    >>> progress_bar(10, progress=False) is None
    True
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Optional

logger = logging.getLogger("jaxhpo")


def progress_bar(total: int, progress: Optional[bool], desc: str = "trials") -> Any:
    """A tqdm bar of ``total`` steps, or None.

    Args:
        total: steps the bar counts to.
        progress: ``True`` shows one (a warning when tqdm is missing),
            ``False`` never, ``None`` when tqdm is installed and stderr is a terminal.
        desc: the bar's label.
    """
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            logger.warning("progress=True needs tqdm: pip install tqdm")
        return None
    if progress is None and not sys.stderr.isatty():
        return None
    return tqdm(total=total, desc=desc, leave=False)
