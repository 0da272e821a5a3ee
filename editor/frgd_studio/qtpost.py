"""Delivers the model's job callbacks on the GUI thread: ``QtPoster.post(fn)`` may be called from any thread; ``fn``
runs on the thread the poster lives on (a queued signal)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal


class QtPoster(QObject):
    """Create it on the GUI thread; hand :meth:`post` and :meth:`pump` to :class:`~.model.jobs.JobQueue`."""

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def post(self, fn: Callable[[], None]) -> None:
        self._posted.emit(fn)

    @staticmethod
    def _run(fn: Callable[[], None]) -> None:
        fn()

    @staticmethod
    def pump() -> None:
        QCoreApplication.processEvents()
