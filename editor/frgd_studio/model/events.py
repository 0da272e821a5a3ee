"""A tiny pure-Python observer: ``Event.connect(fn)``, ``disconnect(fn)``, ``emit(*args)``.

It replaces Qt signals in the model so observers keep writing ``doc.photoChanged.connect(...)``. Handlers run
synchronously on the thread that emits (the model emits only on the GUI thread; job callbacks are posted there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class Event:
    """A list of handlers called in connection order by :meth:`emit`."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._handlers: list[Callable[..., Any]] = []

    def connect(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn(*args)`` on every :meth:`emit`; returns ``fn``."""
        self._handlers.append(fn)
        return fn

    def disconnect(self, fn: Callable[..., Any] | None = None) -> None:
        """Remove ``fn`` (every handler when ``None``); a handler that is not connected is ignored."""
        if fn is None:
            self._handlers.clear()
        elif fn in self._handlers:
            self._handlers.remove(fn)

    def emit(self, *args: Any) -> None:
        """Call every handler with ``args``; an error propagates, except a handler of a deleted Qt widget (dropped)."""
        for fn in list(self._handlers):
            try:
                fn(*args)
            except RuntimeError as err:  # a Qt handler whose widget was deleted
                if "already deleted" not in str(err):
                    raise
                logger.debug("event %s: dropped a handler of a deleted widget", self.name)
                self.disconnect(fn)

    def __len__(self) -> int:
        return len(self._handlers)
