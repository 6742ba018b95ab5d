"""An append-only JSON-lines journal: one record per line, flushed and synced as written.

Every line is verifiable: it carries a sequence number (``"seq"``, from 1)
and, as its last key, a CRC-32 checksum (``"crc"``) of the line without it,
so a line that was altered, cut and glued, or copied twice is recognized.
A process killed mid-write leaves at most one partial last line; ``read``
ignores it and ``Journal`` truncates it before appending again, so a resumed
study never sees a corrupt record. Nothing else is ever removed: a damaged
complete line (a bad byte, half a line from another tool, a wrong checksum)
is reported by ``scan`` and skipped, and every line after it is read; a line
whose sequence number was already seen (a copied line) is reported and
skipped, and a jump in the numbers (lines deleted) is reported. Lines
without ``seq`` and ``crc`` (journals written before they existed) are read
as they are. A ``Journal`` holds an exclusive advisory
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
    >>> print(open(path).read(), end="")
    {"op": "create", "seq": 1, "crc": "b61160c7"}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import threading
import weakref
import zlib
from typing import Any, Iterator, NamedTuple, Optional

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


_CRC = re.compile(rb', "crc": "([0-9a-f]{8})"}$')


def _checksum(body: bytes) -> str:
    return f"{zlib.crc32(body) & 0xFFFFFFFF:08x}"


def seal(record: dict, seq: int) -> str:
    """The journal line of ``record`` (no newline): its JSON with ``seq`` and, last, ``crc``."""
    body = dumps({**record, "seq": int(seq)})
    return body[:-1] + f', "crc": "{_checksum(body.encode("utf-8"))}"' + "}"


def _unseal(line: bytes) -> tuple[Any, bool]:
    """``(record or None, checksum ok)`` of one line without its newline."""
    match = _CRC.search(line)
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, False
    if not isinstance(record, dict):
        return None, False
    if match is None:
        return record, "crc" not in record and "seq" not in record  # a journal from before checksums
    return record, _checksum(line[: match.start()] + b"}") == match.group(1).decode()


def _parse(line: bytes) -> tuple[Optional[dict], Any]:
    """``(record without its seq and crc, seq)`` of one complete line; ``(None, None)`` when it is damaged."""
    record, intact = _unseal(line.rstrip(b"\r\n"))
    if record is None or not intact:
        return None, None
    seq = record.pop("seq", None)
    record.pop("crc", None)
    return record, seq


class Contents(NamedTuple):
    """What ``scan`` found: the records with their line numbers, and the lines it could not use.

    Attributes:
        records: ``[(line number from 1, record dict), ...]`` in file order, without
            their ``seq`` and ``crc``.
        damaged: line numbers of complete lines that are not a journal record (a bad
            byte, half a line written by another tool, a checksum that does not match);
            skipped, never removed.
        end: byte length up to and including the last newline (a partial
            trailing line, left by a crash mid-write, starts there).
        repeated: line numbers of lines whose sequence number came before (a copied
            line); skipped, never removed.
        gaps: ``[(line number, first missing seq, last missing seq), ...]``: records
            missing before that line (deleted lines).
        last_seq: the highest sequence number read (0 when none).
    """

    records: list
    damaged: list
    end: int
    repeated: list = []
    gaps: list = []
    last_seq: int = 0

    def problems(self) -> str:
        """A sentence listing what was skipped or missing, or ``""`` when the journal is whole."""
        parts = []
        if self.damaged:
            parts.append(f"lines {self.damaged} could not be read (damaged or a wrong checksum)")
        if self.repeated:
            parts.append(f"lines {self.repeated} repeat records read before (copied lines)")
        parts += [f"records {a}..{b} are missing before line {line}" for line, a, b in self.gaps]
        return "; ".join(parts)


def scan(path: str) -> Contents:
    """Reads every complete line of the journal at ``path``; damaged lines are reported, not dropped."""
    records, damaged, repeated, gaps, end, last = [], [], [], [], 0, 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break  # a partial last line: the write a crash cut short
            end += len(line)
            record, seq = _parse(line)
            if record is None:
                damaged.append(number)
                continue
            if isinstance(seq, int):
                if seq <= last:
                    repeated.append(number)
                    continue
                if seq > last + 1:
                    gaps.append((number, last + 1, seq - 1))
                last = seq
            records.append((number, record))
    return Contents(records, damaged, end, repeated, gaps, last)


def head(path: str) -> Optional[dict]:
    """The first record of the journal at ``path`` (a study's ``create`` record), read without the rest.

    Returns None when the first line is not a whole, intact record.
    """
    with open(path, "rb") as f:
        line = f.readline()
    return _parse(line)[0] if line.endswith(b"\n") else None


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
        contents = scan(self.path)  # under the lock: nobody is writing a line now
        if contents.end != os.path.getsize(self.path):
            self._file.truncate(contents.end)  # only a partial last line; damaged complete lines stay as they are
        self._seq = contents.last_seq
        self._forked_copy = False
        _OPEN.add(self)

    def append(self, record: dict) -> None:
        if self._forked_copy:
            raise RuntimeError(f"Journal: {self.path!r} belongs to the process that opened it, not to this forked child")
        if self._handed_over:
            raise RuntimeError(f"Journal: {self.path!r} was opened again in this process (Study.load run again, "
                               f"say) and only the newest opening writes to it; use that Study")
        line = seal(record, self._seq + 1) + "\n"
        self._file.write(line)
        self._file.flush()
        self._seq += 1
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Holds back Ctrl-C (SIGINT) until the block ends, then raises ``KeyboardInterrupt``.

    A journaled change (a record on disk and the study in memory) runs inside
    it, so an interrupt never leaves one without the other. Outside the main
    thread, where Python cannot handle signals, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    except ValueError:  # signals unavailable here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(*caught[0])
            else:
                raise KeyboardInterrupt
