"""Background jobs: torch work runs on a worker thread, never on the GUI thread.

A job is a function ``fn(device, progress, cancel) -> result``. :class:`JobManager` runs it on its own
``QThreadPool`` (one worker: the jobs share the CPU/GPU), forwards ``progress(done, total, message)`` as a Qt signal
with an ETA, cancels through :class:`frgd.jobs.CancelToken`, and on a GPU out-of-memory error tells the user and
retries once on the CPU. Results and errors come back to the GUI thread as queued signals.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QRunnable, QThreadPool, QTimer, Signal

from frgd.errors import Cancelled, FRGDError
from frgd.jobs import CancelToken, ProgressFn

logger = logging.getLogger(__name__)

JobFn = Callable[[Any, ProgressFn, CancelToken], Any]
"""``fn(device: torch.device, progress, cancel) -> result``."""


class Job(QObject):
    """One background job. Its public signals are emitted on the GUI thread (the job object lives there): the worker
    emits private ``_w_*`` signals that are queued to this object's slots, which re-emit the public ones, so plain
    lambdas connected to the public signals are safe."""

    progress = Signal(int, int, str, float)  # done, total, message, eta seconds (-1 = unknown)
    succeeded = Signal(object)
    failed = Signal(str, str)  # one-line message, traceback ("" for FRGDError)
    cancelled = Signal()
    notice = Signal(str)  # e.g. "GPU out of memory, retrying on the CPU"
    ended = Signal()

    _w_progress = Signal(int, int, str, float)
    _w_notice = Signal(str)
    _w_ended = Signal()

    def __init__(self, name: str, fn: JobFn, device: str = "auto", cpu_fallback: bool = True) -> None:
        super().__init__()
        self.name = name
        self.fn = fn
        self.device_spec = device
        self.cpu_fallback = cpu_fallback
        self.token = CancelToken()
        self.result: Any = None
        self.error: str | None = None
        self.state = "queued"  # queued | running | done | failed | cancelled
        self.device_used: str | None = None
        self.traceback = ""
        self._t0 = 0.0
        self._w_progress.connect(self._on_progress)
        self._w_notice.connect(self._on_notice)
        self._w_ended.connect(self._on_ended)

    def _on_progress(self, done: int, total: int, message: str, eta: float) -> None:
        self.progress.emit(done, total, message, eta)

    def _on_notice(self, message: str) -> None:
        self.notice.emit(message)

    def _on_ended(self) -> None:
        if self.state == "done":
            self.succeeded.emit(self.result)
        elif self.state == "cancelled":
            self.cancelled.emit()
        elif self.state == "failed":
            self.failed.emit(self.error or "failed", self.traceback)
        self.ended.emit()

    def cancel(self) -> None:
        """Ask the job to stop at its next step (thread-safe)."""
        self.token.cancel()

    @property
    def is_finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    # runs on the worker thread ------------------------------------------------------------------------------------
    def _progress(self, done: int, total: int, message: str = "") -> None:
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / done * (total - done) if done > 0 and total > 0 else -1.0
        self._w_progress.emit(int(done), int(total), str(message), float(eta))

    def run(self) -> None:
        from frgd.devices import is_oom, resolve_device

        self.state = "running"
        self._t0 = time.perf_counter()
        try:
            self.token.raise_if_cancelled()
            device = resolve_device(self.device_spec)
            self.device_used = str(device)
            try:
                self.result = self.fn(device, self._progress, self.token)
            except Exception as err:
                if not (self.cpu_fallback and device.type != "cpu" and is_oom(err)):
                    raise
                logger.warning("%s: out of memory on %s, retrying on the CPU", self.name, device)
                self._w_notice.emit(f"{self.name}: GPU out of memory on {device}; retrying on the CPU (slower).")
                _free_gpu_memory()
                self._t0 = time.perf_counter()
                self.device_used = "cpu"
                import torch

                self.result = self.fn(torch.device("cpu"), self._progress, self.token)
            self.state = "done"
        except Cancelled:
            self.state = "cancelled"
        except FRGDError as err:
            self.state = "failed"
            self.error = str(err)
        except Exception as err:  # unexpected: keep the traceback for the details pane
            logger.exception("job %s failed", self.name)
            self.state = "failed"
            self.error = f"{type(err).__name__}: {err}"
            self.traceback = traceback.format_exc()
        finally:
            self._w_ended.emit()


def _free_gpu_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        logger.debug("could not empty the CUDA cache", exc_info=True)


class _Runnable(QRunnable):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self.setAutoDelete(True)

    def run(self) -> None:
        self.job.run()


class JobManager(QObject):
    """Queues jobs on a single worker thread and tracks the running ones."""

    started = Signal(object)  # Job
    ended = Signal(object)  # Job
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.jobs: list[Job] = []

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def submit(
        self,
        name: str,
        fn: JobFn,
        device: str = "auto",
        on_success: Callable[[Any], None] | None = None,
        cpu_fallback: bool = True,
    ) -> Job:
        """Queue ``fn`` and return its :class:`Job`; ``on_success(result)`` runs on the GUI thread."""
        job = Job(name, fn, device, cpu_fallback)
        if on_success is not None:
            job.succeeded.connect(on_success)
        job.ended.connect(lambda j=job: self._ended(j))  # job.ended is emitted on the GUI thread
        was_busy = self.busy
        self.jobs.append(job)
        self.started.emit(job)
        if not was_busy:
            self.busyChanged.emit(True)
        self.pool.start(_Runnable(job))
        return job

    def _ended(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self.ended.emit(job)
        if not self.jobs:
            self.busyChanged.emit(False)

    def cancel_all(self) -> None:
        for job in list(self.jobs):
            job.cancel()

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Process events until every job has ended (for tests and shutdown); False on timeout."""
        deadline = time.monotonic() + timeout_s
        loop = QEventLoop()
        while self.jobs and time.monotonic() < deadline:
            QTimer.singleShot(10, loop.quit)
            loop.exec()
            QCoreApplication.processEvents()
        return not self.jobs

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self.cancel_all()
        self.pool.waitForDone(int(timeout_s * 1000))
