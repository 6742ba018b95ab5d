"""An append-only JSON-lines journal: one record per line, flushed and synced as written.

A process killed mid-write leaves at most one partial last line; ``read``
ignores it and ``Journal`` truncates it before appending again, so a resumed
study never sees a corrupt record. Nothing else is ever removed: a damaged
complete line (a bad byte, half a line from another tool) is reported by
``scan`` and skipped, and every line after it is read. A ``Journal`` holds an exclusive advisory
lock (``flock``) on its file while open, so a second writer (a study resumed
while the first process still runs) gets a clear error instead of
truncating a line the first one is writing; the operating system releases
the lock when the process dies, so a crash never leaves it stale. A child
process forked while the journal is open (a process-pool worker) does not
keep the lock alive: its copy of the file descriptor is pointed at
``/dev/null`` right after the fork. (No lock where ``fcntl`` is missing, on
Windows.) Within one process, opening a journal again (a notebook cell
with ``Study.load`` run twice) hands the file over to the new opening; the
older one refuses to write, with an error that says so.

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
import weakref
from typing import Any, NamedTuple

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


class Contents(NamedTuple):
    """What ``scan`` found: the records with their line numbers, and the lines it could not read.

    Attributes:
        records: ``[(line number from 1, record dict), ...]`` in file order.
        damaged: line numbers of complete lines that are not a JSON object
            (a bad byte, half a line written by another tool); skipped, never removed.
        end: byte length up to and including the last newline (a partial
            trailing line, left by a crash mid-write, starts there).
    """

    records: list
    damaged: list
    end: int


def scan(path: str) -> Contents:
    """Reads every complete line of the journal at ``path``; damaged lines are reported, not dropped."""
    records, damaged, end = [], [], 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break  # a partial last line: the write a crash cut short
            end += len(line)
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if isinstance(record, dict):
                records.append((number, record))
            else:
                damaged.append(number)
    return Contents(records, damaged, end)


def read(path: str) -> list[dict]:
    """All readable complete records in the journal at ``path`` (see ``scan`` for the rest)."""
    return [record for _, record in scan(path).records]


_OPEN: "weakref.WeakSet[Journal]" = weakref.WeakSet()  # journals open in this process


def _release_in_child() -> None:
    """After a fork: the child's descriptors of open journals point at /dev/null, so that the lock
    (held by the open file, shared with the parent) dies with the parent, not with its last worker."""
    for journal in list(_OPEN):
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, journal._file.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass
        journal._forked_copy = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_release_in_child)


class Journal:
    """Appends records to ``path``; truncates a partial trailing line left by a crash."""

    def __init__(self, path: str, fsync: bool = True) -> None:
        self.path = os.fspath(path)
        self.fsync = fsync
        self._handed_over = False
        for older in list(_OPEN):  # the same file, open in this process (a notebook cell run again)
            if not older._file.closed and os.path.realpath(older.path) == os.path.realpath(self.path):
                older._file.close()
                older._handed_over = True
        self._file = open(self.path, "a", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._file.close()
                raise RuntimeError(f"Journal: {self.path!r} is open for writing elsewhere (another Study or "
                                   f"process holds its lock); close that one first") from None
        end = scan(self.path).end  # under the lock: nobody is writing a line now
        if end != os.path.getsize(self.path):
            self._file.truncate(end)  # only a partial last line; damaged complete lines stay as they are
        self._forked_copy = False
        _OPEN.add(self)

    def append(self, record: dict) -> None:
        if self._forked_copy:
            raise RuntimeError(f"Journal: {self.path!r} belongs to the process that opened it, not to this forked child")
        if self._handed_over:
            raise RuntimeError(f"Journal: {self.path!r} was opened again in this process (Study.load run again, "
                               f"say) and only the newest opening writes to it; use that Study")
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
