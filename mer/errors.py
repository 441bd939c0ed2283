"""One exception type for every user-facing failure.

A :class:`MerError` is a message a person can act on: it names the file (and clip) at fault and
says what to do.  The CLI prints it on one line without a traceback and exits with status 2.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator


class MerError(Exception):
    """A user-facing error: ``what`` went wrong with ``where`` (a file or clip), and the ``fix``."""

    def __init__(self, what: str, where: str | Path | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        parts = [f"{where}: {what}" if where is not None else what]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))

    def __reduce__(self):  # survive the trip back from a worker process intact
        return (type(self), (self.what, self.where, self.fix))


@contextlib.contextmanager
def about(where: str | Path) -> Iterator[None]:
    """Name ``where`` in any MerError raised inside (kernels do not know which clip they see)."""
    try:
        yield
    except MerError as exc:  # same type, so callers can still tell e.g. a missing face apart
        raise type(exc)(exc.what, where if exc.where is None else f"{where}: {exc.where}",
                        exc.fix) from None
