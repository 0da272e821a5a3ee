"""Progress and cancellation for long jobs (sampling, tiling, training, batch CLI).

Every long job takes ``progress: ProgressFn | None`` and ``cancel: CancelToken | None``. It calls
``report(progress, done, total, message)`` after each step and ``cancel.raise_if_cancelled()`` before each step,
so a cancel request stops the job at the next step boundary with :class:`frgd.errors.Cancelled`.
The editor runs jobs on a worker thread and sets the token from the GUI thread (``threading.Event`` is thread-safe).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import Cancelled

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, message)``: ``done`` steps of ``total`` finished."""


class CancelToken:
    """Thread-safe cancellation flag checked by jobs between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Request cancellation; the job stops before its next step."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def check_cancel(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set (no-op for ``None``)."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def report(progress: ProgressFn | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if given."""
    if progress is not None:
        progress(done, total, message)
