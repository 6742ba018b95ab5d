"""An append-only JSON-lines journal: one record per line, flushed and synced as written.

A process killed mid-write leaves at most one partial last line; ``read``
ignores it and ``Journal`` truncates it before appending again, so a resumed
study never sees a corrupt record. A ``Journal`` holds an exclusive advisory
lock (``flock``) on its file while open, so a second writer (a study resumed
while the first process still runs) gets a clear error instead of
truncating a line the first one is writing; the operating system releases
the lock when the process dies, so a crash never leaves it stale. (No lock
where ``fcntl`` is missing, on Windows.)

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "j.jsonl")
    >>> with Journal(path) as j:
    ...     j.append({"op": "create"})
    >>> read(path)
    [{'op': 'create'}]
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)


def dumps(record: dict) -> str:
    """One JSON line; non-finite floats become ``None`` so any JSON reader can load it."""
    return json.dumps(_finite(record), default=_default, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _scan(path: str) -> tuple[list[dict], int]:
    """Records and the byte length of the well-formed prefix of the file."""
    records, good = [], 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good += len(line)
    return records, good


def read(path: str) -> list[dict]:
    """All complete records in the journal at ``path``."""
    return _scan(path)[0]


class Journal:
    """Appends records to ``path``; truncates a partial trailing line left by a crash."""

    def __init__(self, path: str, fsync: bool = True) -> None:
        self.path = os.fspath(path)
        self.fsync = fsync
        self._file = open(self.path, "a", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._file.close()
                raise RuntimeError(f"Journal: {self.path!r} is open for writing elsewhere (another Study or "
                                   f"process holds its lock); close that one first") from None
        _, good = _scan(self.path)  # under the lock: nobody is writing a line now
        if good != os.path.getsize(self.path):
            self._file.truncate(good)

    def append(self, record: dict) -> None:
        self._file.write(dumps(record) + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
