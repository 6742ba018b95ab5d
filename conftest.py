"""Test-session set-up (tests and doctests): one throwaway persistent compilation cache for the whole run.

The suite and the processes it starts share it (through ``JAXHPO_CACHE_DIR``),
so a program compiled once is loaded by later processes, as on a user's
machine, while nothing is written to the user's own cache directory.
"""

import atexit
import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="jaxhpo-test-cache-")
os.environ.setdefault("JAXHPO_CACHE_DIR", _CACHE)

# at exit, after the interpreter has joined background compiles (which may still write to the cache)
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
