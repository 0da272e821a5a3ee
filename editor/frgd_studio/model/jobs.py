"""The job queue without Qt: torch work runs on a worker thread, never on the GUI thread.

A job is a function ``fn(device, progress, cancel) -> result``. :class:`JobQueue` runs the jobs of each **lane** one
after another on that lane's worker thread:

* ``"compute"``: torch work, which shares the CPU/GPU, and everything whose order with it matters (opening photos and
  sessions, saving a session, importing weights into a folder a job may be reading);
* ``"io"``: exports and weight downloads (no torch; a download lands by an atomic rename), so an export is written at
  once instead of after a sampling run of minutes.

It turns ``progress(done, total, message)`` into :class:`Progress` with an ETA, cancels through
:class:`frgd.jobs.CancelToken` (the job stops at its next step), and on a GPU out-of-memory error posts a notice and
retries once on the CPU. Every callback (the :class:`Job` events) is delivered through the injected
``post(callable)``: the Qt shell posts to the GUI thread (:mod:`frgd_studio.qtpost`); without one, callbacks wait in
a queue until :meth:`JobQueue.drain` (tests, scripts). A job's outcome (``succeeded`` / ``failed`` / ``cancelled``,
then ``ended``) waits while the queue's :attr:`JobQueue.gate` says no (the editor: while a brush stroke is painted)
and is delivered, in order, by :meth:`JobQueue.release`; a job submitted with ``hold=False`` is never held.

A job submitted with ``yields=True`` (background work nobody waits for at once, e.g. the editor's upscale of the
result's background) gives its lane to every job submitted without it: a queued one goes behind them, a running one
is stopped at its next step and queued again behind them, its outcome not delivered (it runs again: from the start,
or where it stopped when its function keeps its work, as the upscale's :class:`frgd.sr.tiling.TileResume` does), nor
the stopped run's progress reports still on their way. Its own cancel still cancels it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from frgd.errors import Cancelled, FRGDError
from frgd.jobs import CancelToken, ProgressFn

from .events import Event

logger = logging.getLogger(__name__)

JobFn = Callable[[Any, ProgressFn, CancelToken], Any]
"""``fn(device: torch.device, progress, cancel) -> result``."""
TurnFn = Callable[[Any, int], Any]
"""``on_turn(result, k) -> result``: a job's result made for the photo as it was, fitted to the photo turned ``k``
quarter turns counter-clockwise since (``np.rot90``'s ``k``; e.g. :func:`.backend.turned_image`)."""
Post = Callable[[Callable[[], None]], None]
"""``post(fn)``: run ``fn()`` later on the thread that owns the model (thread-safe)."""

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
LANES = ("compute", "io")
"""Worker lanes (module docstring): jobs of one lane run in order, the lanes run side by side."""


@dataclass(frozen=True)
class Progress:
    """A job's progress: ``done`` of ``total`` steps, a message and the seconds left (``eta`` -1 = unknown)."""

    done: int
    total: int
    message: str = ""
    eta: float = -1.0


class Job:
    """One background job. Its events (``progress(Progress)``, ``succeeded(result)``, ``failed(message, traceback)``
    (traceback "" for an :class:`FRGDError`), ``cancelled()``, ``notice(message)``, ``ended()``) are posted."""

    def __init__(
        self, name: str, fn: JobFn, device: str = "auto", cpu_fallback: bool = True, lane: str = "compute",
        hold: bool = True, yields: bool = False,
    ) -> None:  # fmt: skip
        if lane not in LANES:
            raise ValueError(f"unknown job lane {lane!r}; choose from {LANES}")
        self.name = name
        self.lane = lane
        self.fn = fn
        self.device_spec = device
        self.cpu_fallback = cpu_fallback
        self.hold = hold
        """Whether the outcome waits while the queue's :attr:`JobQueue.gate` is closed (module docstring)."""
        self.yields = yields
        """Whether the job gives its lane to jobs submitted without ``yields`` (module docstring)."""
        self.token = CancelToken()
        self._attempt = self.token
        """The token ``fn`` checks: :attr:`token`, or for a yielding job one per run, also set by :meth:`_yield`."""
        self.yielded = 0
        """How many times the job gave its lane away while it ran."""
        self.state = "queued"
        self.result: Any = None
        self.error: str | None = None
        self.traceback = ""
        self.device_used: str | None = None
        self.last_progress: Progress | None = None
        self.progress = Event("progress")
        self.succeeded = Event("succeeded")
        self.failed = Event("failed")
        self.cancelled = Event("cancelled")
        self.notice = Event("notice")
        self.ended = Event("ended")
        self._t0 = 0.0
        self._eta_from: tuple[int, float] | None = (0, 0.0)
        """``(done, seconds)`` the ETA's rate is measured from: the run's start, or for a yielding job's later runs
        (which may go on where the last one stopped) its first report."""
        self._post: Post = lambda fn: fn()

    def cancel(self) -> None:
        """Ask the job to stop at its next step (thread-safe)."""
        self.token.cancel()
        self._attempt.cancel()

    def _yield(self) -> None:
        """Stop this run at its next step to run again later (a yielding job; thread-safe)."""
        self._attempt.cancel()

    @property
    def is_finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    # runs on the worker thread ------------------------------------------------------------------------------------
    def _report(self, done: int, total: int, message: str = "") -> None:
        elapsed = time.perf_counter() - self._t0
        if self._eta_from is None:
            self._eta_from = (int(done), elapsed)
        d0, e0 = self._eta_from
        eta = (elapsed - e0) / (done - d0) * (total - done) if done > d0 and total > 0 else -1.0
        p = Progress(int(done), int(total), str(message), float(eta))
        self.last_progress = p
        run = self.yielded
        self._post(lambda: self._emit_progress(p, run))

    def _emit_progress(self, p: Progress, run: int) -> None:
        """Deliver a report of run number ``run`` (owner's thread), unless that run has given its lane away since: its
        reports still on their way would show the stopped run over the job that now has the lane."""
        if run == self.yielded:
            self.progress.emit(p)

    def run(self) -> None:
        """Run ``fn`` (worker thread); the outcome is posted as events."""
        from frgd.devices import is_oom, resolve_device

        self.state = "running"
        self._t0 = time.perf_counter()
        self._eta_from = None if self.yielded else (0, 0.0)
        if self.yields:
            self._attempt = attempt = CancelToken()
            if self.token.cancelled:  # cancelled while the new token was made
                attempt.cancel()
        else:
            attempt = self.token
        try:
            self.token.raise_if_cancelled()
            device = resolve_device(self.device_spec)
            self.device_used = str(device)
            try:
                self.result = self.fn(device, self._report, attempt)
            except Exception as err:
                if not (self.cpu_fallback and getattr(device, "type", "cpu") != "cpu" and is_oom(err)):
                    raise
                logger.warning("%s: out of memory on %s, retrying on the CPU", self.name, device)
                msg = f"{self.name}: GPU out of memory on {device}; retrying on the CPU (slower)."
                self._post(lambda: self.notice.emit(msg))
                _free_gpu_memory()
                self._t0, self._eta_from = time.perf_counter(), (0, 0.0)
                self.device_used = "cpu"
                import torch

                self.result = self.fn(torch.device("cpu"), self._report, attempt)
            self.state = "done"
        except Cancelled:
            if self.yields and not self.token.cancelled:  # gave its lane away: it runs again (JobQueue._work)
                self.state = "queued"
                self.yielded += 1
            else:
                self.state = "cancelled"
        except FRGDError as err:
            self.state = "failed"
            self.error = str(err)
        except Exception as err:  # unexpected: keep the traceback for the details pane
            logger.exception("job %s failed", self.name)
            self.state = "failed"
            self.error = f"{type(err).__name__}: {err}"
            self.traceback = traceback.format_exc()

    def _emit_outcome(self) -> None:
        if self.state == "done":
            self.succeeded.emit(self.result)
        elif self.state == "cancelled":
            self.cancelled.emit()
        elif self.state == "failed":
            self.failed.emit(self.error or "failed", self.traceback)
        self.ended.emit()


def _free_gpu_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        logger.debug("could not empty the CUDA cache", exc_info=True)


class JobQueue:
    """Runs the jobs of each lane (:data:`LANES`) one at a time on that lane's worker thread; tracks the unfinished
    ones (``jobs``, ``busy``).

    ``post``: how callbacks reach the owner's thread (default: kept until :meth:`drain`). ``pump``: what
    :meth:`wait` calls while it waits (default :meth:`drain`; the Qt shell processes events).
    """

    def __init__(self, post: Post | None = None, pump: Callable[[], None] | None = None) -> None:
        self._pending: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.post: Post = post or self._pending.put
        self.pump = pump or self.drain
        self.jobs: list[Job] = []
        self.started = Event("started")  # (job)
        self.ended = Event("ended")  # (job)
        self.busyChanged = Event("busyChanged")  # (busy)
        self.gate: Callable[[], bool] = lambda: True
        """``gate() -> bool``, asked on the owner's thread when a job's outcome arrives: ``False`` holds it until
        :meth:`release`. The editor closes it while a brush stroke is painted (``EditorModel.begin_stroke``)."""
        self._held: list[Job] = []
        self._queues: dict[str, queue.SimpleQueue[Job | None]] = {lane: queue.SimpleQueue() for lane in LANES}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._waiting: dict[str, int] = dict.fromkeys(LANES, 0)
        """Per lane, the queued jobs that do not yield (a yielding job taken from the queue goes behind them)."""
        self._running: dict[str, Job | None] = dict.fromkeys(LANES)

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
        lane: str = "compute",
        hold: bool = True,
        yields: bool = False,
    ) -> Job:
        """Queue ``fn`` on ``lane`` and return its :class:`Job`; ``on_success(result)`` is posted like every event.
        ``hold=False``: the outcome is delivered even while the :attr:`gate` is closed (a result that changes no
        document, e.g. a cache that checks its own version). ``yields=True``: the job gives its lane to the jobs
        submitted without it (module docstring); one that does not yield stops a running yielding job."""
        job = Job(name, fn, device, cpu_fallback, lane, hold, yields)
        job._post = self.post
        if on_success is not None:
            job.succeeded.connect(on_success)
        job.ended.connect(lambda j=job: self._ended(j))
        was_busy = self.busy
        self.jobs.append(job)
        self.started.emit(job)
        if not was_busy:
            self.busyChanged.emit(True)
        self._ensure_worker(lane)
        with self._lock:
            if not yields:
                self._waiting[lane] += 1
                running = self._running.get(lane)
                if running is not None and running.yields:
                    running._yield()
            self._queues[lane].put(job)
        return job

    def _ensure_worker(self, lane: str) -> None:
        with self._lock:
            thread = self._threads.get(lane)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._work, args=(lane,), name=f"frgd-jobs-{lane}", daemon=True)
                self._threads[lane] = thread
                thread.start()

    def _work(self, lane: str) -> None:
        jobs = self._queues[lane]
        while True:
            job = jobs.get()
            if job is None:
                return
            with self._lock:
                if job.yields and self._waiting[lane] and not job.token.cancelled:
                    jobs.put(job)  # behind the jobs that do not yield
                    continue
                if not job.yields:
                    self._waiting[lane] -= 1
                self._running[lane] = job
            job.run()
            with self._lock:
                self._running[lane] = None
                if job.state == "queued":  # it yielded: behind the job that stopped it
                    jobs.put(job)
                    continue
            self.post(lambda j=job: self._outcome(j))

    def _outcome(self, job: Job) -> None:
        """A finished job's outcome on the owner's thread: held while the :attr:`gate` is closed, else delivered after
        the outcomes held before it."""
        if not job.hold:
            job._emit_outcome()
            return
        if not self.gate():
            self._held.append(job)
            return
        self.release()
        job._emit_outcome()

    @property
    def held(self) -> list[Job]:
        """Finished jobs whose outcome waits for :meth:`release` (oldest first)."""
        return list(self._held)

    def release(self) -> int:
        """Deliver the held outcomes in the order they arrived (the :attr:`gate` opened); returns how many."""
        n = 0
        while self._held:
            self._held.pop(0)._emit_outcome()
            n += 1
        return n

    def _ended(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self.ended.emit(job)
        if not self.jobs:
            self.busyChanged.emit(False)

    def drain(self) -> int:
        """Run the callbacks posted to the default queue (the owner's thread); returns how many ran."""
        n = 0
        while True:
            try:
                fn = self._pending.get_nowait()
            except queue.Empty:
                return n
            fn()
            n += 1

    def cancel_all(self) -> None:
        for job in list(self.jobs):
            job.cancel()

    def cancel_started(self) -> list[Job]:
        """Cancel Job (Esc): cancel the unfinished jobs that do not yield (what the user started), or the yielding
        ones when nothing else is left (background work the user now wants stopped); returns the cancelled jobs."""
        jobs = [j for j in self.jobs if not j.is_finished]
        started = [j for j in jobs if not j.yields] or jobs
        for job in started:
            job.cancel()
        return started

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Deliver callbacks until every job has ended (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.jobs and time.monotonic() < deadline:
            self.pump()
            if self.jobs:
                time.sleep(0.005)
        self.pump()
        return not self.jobs

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Cancel every job and stop the worker threads (waits up to ``timeout_s`` in all)."""
        self.cancel_all()
        deadline = time.monotonic() + timeout_s
        for lane, thread in list(self._threads.items()):
            if thread.is_alive():
                self._queues[lane].put(None)
                thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = {}
