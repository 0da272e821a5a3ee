"""The editor model without Qt (no QApplication): events, typed versioned settings, the job queue with callbacks
drained on the caller's thread, actions with a list undo sink, the unsaved-changes question, session save as a job,
export, and the panes' weights status (import/download without a restart)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from frgd.errors import InputError
from frgd.faces import TEMPLATE_512
from frgd_studio.model import backend, commands
from frgd_studio.model.document import CROP_SIZE, Reference
from frgd_studio.model.editor import EditorModel
from frgd_studio.model.events import Event
from frgd_studio.model.jobs import JobQueue
from frgd_studio.model.settings import SETTINGS_VERSION, EditorSettings, Settings

FACE_LANDMARKS = TEMPLATE_512 * (90 / 512) + np.array([60.0, 40.0])


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from frgd_studio.tools.screenshot import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("frgd_tiny_model"))


@pytest.fixture
def photo_file(tmp_path):
    from PIL import Image

    yy, xx = np.mgrid[0:200, 0:240].astype(np.float32)
    img = np.stack([xx / 240, yy / 200, 0.5 + 0.3 * np.sin(xx / 9)], -1)
    path = tmp_path / "photo.png"
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def empty_cache(tmp_path, monkeypatch, without_shipped_weights):
    """An empty weights cache of this test only, and no shipped weights."""
    monkeypatch.setenv("FRGD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def model(tmp_path):
    settings = Settings(tmp_path / "settings.json")
    settings.set("device", "cpu")
    m = EditorModel(settings)
    m.statuses = []
    m.statusMessage.connect(lambda text, _ms: m.statuses.append(text))
    yield m
    m.shutdown()


TWO_FACES = [TEMPLATE_512 * (60 / 512) + np.array([10.0, 30.0]), TEMPLATE_512 * (60 / 512) + np.array([130.0, 100.0])]
"""Two small faces in the test photo, left and right."""


def open_with_faces(model: EditorModel, path, landmarks: list[np.ndarray] | None = None) -> None:
    """Open ``path`` and align faces at ``landmarks`` (default: one face at :data:`FACE_LANDMARKS`)."""
    landmarks = [FACE_LANDMARKS] if landmarks is None else landmarks
    job = model.open_photo(path, detect=False)
    assert model.jobs.wait(30) and job.state == "done", job.error
    job = model.set_faces_from_landmarks(landmarks)
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert len(model.doc.faces) == len(landmarks)


def test_the_model_imports_no_qt():
    code = (
        "import sys\n"
        "import frgd_studio.model.editor, frgd_studio.model.panes, frgd_studio.session\n"
        "assert 'PySide6' not in sys.modules, sorted(m for m in sys.modules if m.startswith('PySide6'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_event_connect_disconnect_emit():
    ev, seen = Event("x"), []
    fn = ev.connect(lambda *a: seen.append(a))
    ev.emit(1, "a")
    ev.disconnect(fn)
    ev.emit(2)
    assert seen == [(1, "a")] and len(ev) == 0


# ------------------------------------------------------------------------------------------------------ settings
def test_settings_are_typed_validated_and_versioned(tmp_path, caplog):
    path = tmp_path / "s.json"
    s = Settings(path)
    s.set("device", "cpu")
    s.set("steps", 12)
    for k in range(12):
        s.add_recent(str(tmp_path / f"p{k}.png"))
    data = json.loads(path.read_text())
    assert data["version"] == SETTINGS_VERSION and data["device"] == "cpu" and data["steps"] == 12
    s2 = Settings(path)
    assert s2.values.device == "cpu" and s2.values.steps == 12 and isinstance(s2.values.brush_size, float)
    assert len(s2.recent_files()) == 10 and s2.recent_files()[0].endswith("p11.png")
    for key, bad in (("device", "tpu"), ("steps", 0), ("samples", "four"), ("identity_strength", 1.5)):
        with pytest.raises(ValueError, match=key):
            s2.set(key, bad)
    assert s2.values.device == "cpu", "an invalid value is not stored"

    # a damaged file: each invalid value falls back to its default with a warning, the valid ones are kept
    path.write_text(json.dumps({"version": SETTINGS_VERSION, "device": "tpu", "steps": -3, "samples": 3,
                                "brush_size": "big", "recent_files": "x", "nonsense": 1}))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        s3 = Settings(path)
    d = EditorSettings()
    assert (s3.values.device, s3.values.steps, s3.values.brush_size) == (d.device, d.steps, d.brush_size)
    assert s3.values.samples == 3 and s3.values.recent_files == []
    assert "invalid device" in caplog.text and "unknown key 'nonsense'" in caplog.text
    path.write_text("{not json")
    assert Settings(path).values == EditorSettings()


def test_settings_migrate_the_old_ini_once(tmp_path):
    ini = tmp_path / "frgd-studio.ini"
    ini.write_text(
        "[General]\ndevice=cpu\nsteps=7\nbrush_size=12.5\nidentity_strength=2.0\n"
        f"recent_files={tmp_path / 'a.png'}, {tmp_path / 'b.png'}\n"
    )
    s = Settings(tmp_path / "frgd-studio.json")
    assert (s.values.device, s.values.steps, s.values.brush_size) == ("cpu", 7, 12.5)
    assert s.values.identity_strength == EditorSettings().identity_strength, "an invalid old value: the default"
    assert s.recent_files() == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert json.loads((tmp_path / "frgd-studio.json").read_text())["version"] == SETTINGS_VERSION
    ini.write_text("[General]\ndevice=cuda\n")  # migrated once: the JSON file wins from now on
    assert Settings(tmp_path / "frgd-studio.json").values.device == "cpu"


# ------------------------------------------------------------------------------------------------------ jobs
def test_job_queue_posts_callbacks_to_the_owner_thread():
    jobs = JobQueue()  # callbacks wait until drain(): here, this thread
    main, seen = threading.get_ident(), []

    def slow(_device, progress, cancel):
        for i in range(200):
            cancel.raise_if_cancelled()
            progress(i + 1, 200, "step")
            time.sleep(0.005)
        return "finished"

    job = jobs.submit("slow", slow, "cpu")
    job.progress.connect(lambda p: seen.append((p.done, p.eta, threading.get_ident() == main)))
    t0 = time.monotonic()
    while len(seen) < 3 and time.monotonic() - t0 < 10:
        jobs.drain()
        time.sleep(0.01)
    job.cancel()
    assert jobs.wait(10) and job.state == "cancelled" and not jobs.busy
    assert seen and all(on_main for *_x, on_main in seen) and seen[-1][1] >= 0

    results = []
    job = jobs.submit("ok", lambda _d, _p, _c: 42, "cpu", on_success=results.append)
    t0 = time.monotonic()
    while job.state != "done" and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    assert results == [], "nothing is delivered before the owner drains"
    assert jobs.wait(10) and results == [42]

    failed = []
    job = jobs.submit("boom", lambda _d, _p, _c: 1 / 0, "cpu")
    job.failed.connect(lambda msg, tb: failed.append((msg, tb)))
    assert jobs.wait(10) and job.state == "failed" and "ZeroDivisionError" in failed[0][0] and failed[0][1]
    jobs.shutdown()


def test_io_lane_runs_beside_a_long_compute_job_and_each_lane_keeps_its_order():
    """An export (the "io" lane) is written while a sampling run (the "compute" lane) is still going, instead of
    after it; jobs of one lane still run one after another, in order."""
    jobs = JobQueue()
    started, release, io_done, order = threading.Event(), threading.Event(), threading.Event(), []

    def long_compute(_d, _p, cancel):
        order.append("compute 1 start")
        started.set()
        assert release.wait(20), "never released"
        order.append("compute 1 end")

    def write(_d, _p, _c):
        order.append("io")
        io_done.set()
        return "written"

    first = jobs.submit("FRGD", long_compute, "cpu")
    second = jobs.submit("SR", lambda _d, _p, _c: order.append("compute 2"), "cpu")
    assert started.wait(20), "the compute job never started"  # on a loaded machine its worker may start late
    export = jobs.submit("Export", write, "cpu", lane="io")
    assert io_done.wait(20), "the io job waited for the compute lane"
    assert first.state == "running" and second.state == "queued" and export.lane == "io"
    release.set()
    assert jobs.wait(20) and [first.state, second.state, export.state] == ["done"] * 3
    assert order == ["compute 1 start", "io", "compute 1 end", "compute 2"]
    with pytest.raises(ValueError):
        jobs.submit("x", write, "cpu", lane="gpu")
    workers = list(jobs._threads.values())
    assert len(workers) == 2
    jobs.shutdown()
    assert not any(t.is_alive() for t in workers)


def test_a_yielding_job_gives_its_lane_to_jobs_submitted_after_it():
    """A background job (``yields=True``, the result's upscale) stops at its next step when a job that does not yield
    is submitted on its lane, lets it run, then runs again from the start and delivers one outcome; a queued one goes
    behind such jobs; its own cancel still cancels it, and another lane's job does not stop it."""
    jobs, order, outcomes = JobQueue(), [], []
    running, go_on = threading.Event(), threading.Event()

    def background(_d, _p, cancel):
        order.append("bg start")
        running.set()
        while not go_on.is_set():
            cancel.raise_if_cancelled()
            time.sleep(0.002)
        order.append("bg end")
        return "upscaled"

    def wait_for(cond, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.002)
        return cond()

    bg = jobs.submit("upscale", background, "cpu", hold=False, yields=True)
    bg.succeeded.connect(outcomes.append)
    bg.cancelled.connect(lambda: outcomes.append("cancelled"))
    assert running.wait(20), "the background job never started"
    io = jobs.submit("export", lambda *_: order.append("io"), "cpu", lane="io")
    assert wait_for(lambda: io.is_finished) and bg.state == "running" and not bg.yielded
    running.clear()

    def sample(_d, _p, _c):
        order.append("sample")
        go_on.set()  # from now on the background job can finish
        return "faces"

    fg = jobs.submit("Resample", sample, "cpu")
    assert jobs.wait(20) and fg.state == "done" and bg.state == "done" and bg.yielded == 1
    assert order == ["bg start", "io", "sample", "bg start", "bg end"] and outcomes == ["upscaled"]

    # queued behind a running job: a job submitted after it still goes first
    order.clear()
    release = threading.Event()

    def first(_d, _p, _c):
        order.append("first")
        assert release.wait(20), "never released"

    a = jobs.submit("fill", first, "cpu")
    assert wait_for(lambda: a.state == "running")
    bg2 = jobs.submit("upscale", lambda *_: order.append("bg"), "cpu", yields=True)
    jobs.submit("detect", lambda *_: order.append("detect"), "cpu")
    release.set()
    assert jobs.wait(20) and order == ["first", "detect", "bg"] and bg2.state == "done" and not bg2.yielded

    # cancelled by the user (Esc): cancelled, not run again
    go_on.clear()
    running.clear()
    outcomes.clear()
    bg3 = jobs.submit("upscale", background, "cpu", yields=True)
    bg3.cancelled.connect(lambda: outcomes.append("cancelled"))
    assert running.wait(20)
    bg3.cancel()
    assert jobs.wait(20) and bg3.state == "cancelled" and outcomes == ["cancelled"] and not bg3.yielded
    jobs.shutdown()


def test_a_yielded_runs_reports_on_their_way_are_not_delivered():
    """The reports a yielding job's run posted before it gave its lane away, still waiting for the owner's thread,
    are dropped: the bar follows the job that took the lane, then the next run. Every report is delivered in order
    when nothing yields."""
    jobs, seen, runs = JobQueue(), [], []
    stopped = threading.Event()

    def background(_d, progress, cancel):
        runs.append(len(runs))
        if len(runs) == 1:
            progress(1, 10, "run 1")
            progress(2, 10, "run 1")
            try:
                while True:
                    cancel.raise_if_cancelled()
                    time.sleep(0.002)
            finally:
                stopped.set()
        progress(3, 10, "run 2")
        return "upscaled"

    bg = jobs.submit("upscale", background, "cpu", hold=False, yields=True)
    bg.progress.connect(lambda p: seen.append(("upscale", p.done, p.message)))
    deadline = time.monotonic() + 20
    while bg.last_progress is None or bg.last_progress.done < 2:  # nothing drained: the reports wait
        assert time.monotonic() < deadline, "the background job never reported"
        time.sleep(0.002)
    fg = jobs.submit("Resample", lambda _d, progress, _c: progress(1, 1, "sample"), "cpu")
    fg.progress.connect(lambda p: seen.append(("Resample", p.done, p.message)))
    assert stopped.wait(20)
    while not (bg.is_finished and fg.is_finished):
        assert time.monotonic() < deadline, "the jobs did not finish"
        time.sleep(0.002)
    jobs.drain()
    assert runs == [0, 1] and bg.yielded == 1
    assert seen == [("Resample", 1, "sample"), ("upscale", 3, "run 2")]

    seen.clear()
    plain = jobs.submit("upscale", lambda _d, progress, _c: [progress(k, 3) for k in (1, 2, 3)], "cpu", yields=True)
    plain.progress.connect(lambda p: seen.append(("upscale", p.done, p.message)))
    assert jobs.wait(20) and seen == [("upscale", 1, ""), ("upscale", 2, ""), ("upscale", 3, "")]
    jobs.shutdown()


def test_a_yielding_jobs_later_run_measures_its_eta_from_where_it_went_on(monkeypatch):
    """A yielded upscale's next run goes on at tile k (its first report says k done at once); its ETA comes from the
    tiles this run made, not from k tiles in no time (which said "almost done" for a job hardly begun). Oracle: the
    rate on a virtual clock. A first run, and any job that does not yield, measure from their start."""
    from types import SimpleNamespace

    from frgd_studio.model import jobs as jobs_module
    from frgd_studio.model.jobs import Job

    now = [0.0]
    monkeypatch.setattr(jobs_module, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    def tiles(first: int, seconds_per_tile: float):
        def fn(_device, progress, _cancel):
            if first:
                progress(first, 10, "resumed")  # what tiled_upscale reports before it goes on
            for done in range(first + 1, first + 3):
                now[0] += seconds_per_tile
                progress(done, 10, "tile")

        return fn

    etas = []
    job = Job("upscale", tiles(0, 2.0), "cpu", yields=True)
    job.progress.connect(lambda p: etas.append(p.eta))
    job.run()
    assert job.state == "done" and etas == [18.0, 16.0]  # 2 s a tile, 9 then 8 to go
    etas.clear()
    job.fn, job.yielded = tiles(4, 0.5), 1  # a run after it gave way, going on at tile 5
    job.run()
    assert etas == [-1.0, 2.5, 2.0]  # unknown until a tile is made here; then 0.5 s a tile, 5 then 4 to go


def test_cancel_job_stops_what_the_user_started_and_the_background_only_when_alone():
    """Cancel Job (Esc) while a Resample runs and the Result's upscale waits behind it: the Resample stops, the upscale
    goes on and lands; Esc while only the upscale runs stops it."""
    jobs, release = JobQueue(), threading.Event()

    def user_job(_d, _p, cancel):
        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.002)

    def background(_d, _p, cancel):
        while not release.is_set():
            cancel.raise_if_cancelled()
            time.sleep(0.002)
        return "upscaled"

    bg = jobs.submit("upscale", background, "cpu", yields=True)
    fg = jobs.submit("Resample", user_job, "cpu")
    assert jobs.cancel_started() == [fg] and not bg.token.cancelled
    release.set()
    assert jobs.wait(20) and fg.state == "cancelled" and bg.state == "done"
    release.clear()
    bg = jobs.submit("upscale", background, "cpu", yields=True)
    assert jobs.cancel_started() == [bg]
    assert jobs.wait(20) and bg.state == "cancelled" and jobs.cancel_started() == []
    jobs.shutdown()


def test_a_closed_gate_holds_outcomes_in_order_until_released():
    """While the queue's gate is closed, finished jobs' outcomes (success, failure, and ``ended`` after each) wait and
    are delivered in the order the jobs finished by ``release``; a job submitted with ``hold=False`` is delivered at
    once; an outcome arriving once the gate opened first delivers the held ones."""
    jobs, seen, closed = JobQueue(), [], [True]
    jobs.gate = lambda: not closed[0]

    def submit(name, fn, hold=True):
        job = jobs.submit(name, fn, "cpu", hold=hold)
        job.succeeded.connect(lambda r: seen.append(("ok", name, r)))
        job.failed.connect(lambda msg, _tb: seen.append(("failed", name, msg.split(":")[0])))
        job.ended.connect(lambda: seen.append(("ended", name)))
        return job

    def finished(job):
        t0 = time.monotonic()
        while not job.is_finished and time.monotonic() - t0 < 20:
            time.sleep(0.005)
        jobs.drain()
        return job.is_finished

    a = submit("a", lambda *_: 1)
    assert finished(a) and jobs.held == [a] and seen == [] and jobs.busy
    b = submit("b", lambda *_: 1 / 0)
    assert finished(b) and jobs.held == [a, b]
    fill = submit("fill", lambda *_: 3, hold=False)
    assert finished(fill) and seen == [("ok", "fill", 3), ("ended", "fill")] and jobs.held == [a, b]
    assert jobs.release() == 2 and jobs.held == [] and not jobs.busy
    assert seen[2:] == [("ok", "a", 1), ("ended", "a"), ("failed", "b", "ZeroDivisionError"), ("ended", "b")]

    seen.clear()
    c = submit("c", lambda *_: 5)
    assert finished(c) and jobs.held == [c]
    closed[0] = False  # opened without a release: the next outcome brings the held one first
    submit("d", lambda *_: 6)
    assert jobs.wait(20) and [x[1] for x in seen if x[0] == "ok"] == ["c", "d"] and jobs.held == []
    jobs.shutdown()


def test_export_runs_on_the_io_lane(model, photo_file, tmp_path, monkeypatch):
    """The editor submits exports to the io lane and everything else it computes to the compute lane."""
    lanes = []
    submit = model.jobs.submit

    def spy(name, fn, device="auto", on_success=None, cpu_fallback=True, lane="compute"):
        lanes.append((name.split()[0], lane))
        return submit(name, fn, device, on_success, cpu_fallback, lane)

    monkeypatch.setattr(model.jobs, "submit", spy)
    open_with_faces(model, photo_file)
    job = model.export(tmp_path / "out.png")
    assert model.jobs.wait(30) and job.state == "done" and (tmp_path / "out.png").is_file()
    assert ("Export", "io") in lanes and all(lane == "compute" for name, lane in lanes if name != "Export")


# ------------------------------------------------------------------------------------------------------ actions
def test_actions_undo_and_what_is_not_an_edit(model, photo_file, monkeypatch):
    import frgd.identity
    from frgd.identity import IdentityEncoder

    enc = IdentityEncoder.tiny_random(0)
    monkeypatch.setattr(frgd.identity, "get_identity_encoder", lambda backend="dlib", device="cpu": enc.to(device))
    open_with_faces(model, photo_file)
    undo: commands.ListUndoSink = model.undo
    assert model.modified and undo.texts() == ["Detect faces (1)"]
    model.region_mask("eyes")
    mask = model.doc.faces[0].mask.copy()
    assert mask.max() > 0.9 and undo.texts()[-1] == "Mask eyes"
    model.invert_mask()
    undo.undo()
    np.testing.assert_array_equal(model.doc.faces[0].mask, mask)
    undo.redo()
    np.testing.assert_allclose(model.doc.faces[0].mask, 1 - mask)

    # selecting and scoring are not edits: no undo step, the document is not marked modified
    crop = np.full((CROP_SIZE, CROP_SIZE, 3), 100, np.uint8)
    for k in range(2):
        model.push(commands.add_reference(model.doc, 0, Reference(f"/refs/r{k}.jpg", str(k), crop)))
    undo.set_clean()
    n = undo.count()
    model.select(-1)
    model.select(0)
    job = model.score_references()
    assert model.jobs.wait(60) and job.state == "done", job.error
    assert undo.count() == n and not model.modified
    refs = model.doc.faces[0].references
    assert all(r.score is not None for r in refs)
    assert model.statuses[-1] == f"Reference scores: r0.jpg {refs[0].score:.2f}, r1.jpg {refs[1].score:.2f}"


@pytest.mark.parametrize("answer", ["cancel", "discard", "save"])
def test_unsaved_changes_question_on_open(model, photo_file, tmp_path, answer):
    open_with_faces(model, photo_file)
    model.region_mask("face")  # a mask edit counts as a change
    asked = []
    model.ask_unsaved = lambda title: asked.append(title) or answer
    model.ask_session_path = lambda default: str(tmp_path / "saved.frgd")
    other = tmp_path / "other.png"
    from PIL import Image

    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(other)
    job = model.open_photo(other, detect=False)
    assert asked == ["photo.png"] and (job is None) == (answer != "discard"), "Save opens once the session is saved"
    assert model.jobs.wait(60)
    if answer == "cancel":
        assert model.doc.photo.shape == (200, 240, 3) and model.modified
        assert not (tmp_path / "saved.frgd").exists()
    else:
        assert model.doc.photo.shape == (50, 60, 3) and not model.modified
        assert (tmp_path / "saved.frgd").is_file() == (answer == "save")
    if answer == "save":
        from frgd_studio.session import load_session

        assert load_session(tmp_path / "saved.frgd").faces[0].mask.max() > 0.9, "the session holds the mask"
    asked.clear()
    model.open_photo(other, detect=False)  # asked again only while the edits are still unsaved
    assert model.jobs.wait(30) and asked == (["photo.png"] if answer == "cancel" else [])


def test_the_device_label_is_resolved_off_the_owner_thread(model, monkeypatch):
    """Resolving the device (torch, maybe CUDA start-up) runs on a helper thread; the text is posted back to the
    owner's thread like a job event, and an error becomes text instead of an exception."""
    import torch

    import frgd.devices

    threads = []

    def fake_resolve(spec):
        threads.append(threading.current_thread())
        return torch.device("cpu")

    monkeypatch.setattr(frgd.devices, "resolve_device", fake_resolve)
    got: list[tuple[str, threading.Thread]] = []
    model.request_device_text(lambda text: got.append((text, threading.current_thread()))).join(10)
    assert threads and threads[0] is not threading.main_thread()
    assert got == []  # posted, not called from the helper thread
    model.jobs.drain()
    assert len(got) == 1 and "CPU" in got[0][0] and got[0][1] is threading.main_thread()

    def broken(spec):
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(frgd.devices, "resolve_device", broken)
    model.request_device_text(lambda text: got.append((text, threading.current_thread()))).join(10)
    model.jobs.drain()
    assert got[-1][0] == "cpu: driver exploded"


def test_session_save_is_a_job_of_a_snapshot(model, photo_file, tmp_path):
    from frgd_studio.session import load_session

    open_with_faces(model, photo_file)
    job = model.save_session(tmp_path / "s.frgd")
    model.region_mask("mouth")  # edited while the worker writes: not in the file, and still unsaved
    assert model.jobs.wait(60) and job.state == "done", job.error
    assert load_session(job.result).faces[0].mask.max() == 0.0
    assert model.modified
    job = model.save_session()  # Save: the session path chosen before
    assert model.jobs.wait(60) and job.state == "done" and not model.modified
    assert model.session_path == str(job.result) and model.settings.recent_files()[0] == str(job.result)


def test_a_session_keeps_the_size_and_the_frgd_settings(model, photo_file, tmp_path, caplog):
    """The Size box's choice (a setting) is kept in the session with the FRGD pane's parameters: the work reopens at
    the size it was saved at, whatever was chosen meanwhile; a session without it (written before) leaves the Size
    as it is, and an invalid one is logged and skipped."""
    import json
    import zipfile

    open_with_faces(model, photo_file)
    chosen = []
    model.resultScaleChosen.connect(chosen.append)
    model.set_result_scale(3)
    model.frgd.set_param("identity_strength", 0.8)
    job = model.save_session(tmp_path / "s.frgd")
    assert model.jobs.wait(60) and job.state == "done", job.error
    saved = job.result
    model.set_result_scale(0)  # Auto, and another slider, before the session is opened again
    model.frgd.set_param("identity_strength", 0.2)
    assert model.doc.result_scale != 3 and chosen == [3, 0]
    model.statuses.clear()
    job = model.open_session(saved)
    assert model.jobs.wait(60) and job.state == "done", job.error
    assert model.settings.get("result_scale") == 3 and model.doc.result_scale == 3 and chosen[-1] == 3
    assert model.settings.get("identity_strength") == 0.8
    assert not any("would make" in t for t in model.statuses), "restoring says nothing about the size"

    def written(name: str, ui: dict) -> Path:
        with zipfile.ZipFile(saved) as z:
            members = {n: z.read(n) for n in z.namelist()}
        meta = json.loads(members["session.json"])
        meta["ui"] = ui
        members["session.json"] = json.dumps(meta).encode()
        out = tmp_path / name
        with zipfile.ZipFile(out, "w") as z:
            for n, b in members.items():
                z.writestr(n, b)
        return out

    model.set_result_scale(2)
    for name, ui in (("old.frgd", {"steps": 7}), ("bad.frgd", {"result_scale": 99}),
                     ("text.frgd", {"result_scale": "×4"}), ("flag.frgd", {"result_scale": True})):  # fmt: skip
        caplog.clear()
        job2 = model.open_session(written(name, ui))
        assert model.jobs.wait(60) and job2.state == "done", job2.error
        assert model.settings.get("result_scale") == 2 and model.doc.result_scale == 2, name
        assert ("invalid result_scale" in caplog.text) == (name != "old.frgd"), caplog.text
    assert model.settings.get("steps") == 7


def test_a_session_whose_photo_moved_is_found_or_located(model, photo_file, tmp_path):
    """A session whose folder moved with its photo finds the photo again (by its path relative to the session, then
    its name beside it, each by sha256) and opens unsaved until saved with the new place; a photo moved elsewhere is
    asked for (Locate…), and not being told leaves the open work as it was; a file of the photo's name that is
    another photo is not taken for it."""
    import shutil

    from frgd_studio.session import load_session

    project = tmp_path / "project"
    (project / "scans").mkdir(parents=True)
    photo = project / "scans" / "photo.png"
    shutil.copy(photo_file, photo)
    open_with_faces(model, photo)
    model.region_mask("mouth")
    mask = model.doc.faces[0].mask.copy()
    job = model.save_session(project / "work.frgd")
    assert model.jobs.wait(60) and job.state == "done", job.error
    asked = []
    model.ask_photo = lambda session, stored: asked.append((session, stored))  # answers None: not located

    def opened(path, **kw) -> None:
        job = model.open_session(path, **kw)
        assert job is not None and model.jobs.wait(60) and job.state == "done", job and job.error
        np.testing.assert_array_equal(model.doc.faces[0].mask, mask)

    moved = tmp_path / "archive" / "2026"
    moved.parent.mkdir()
    shutil.move(project, moved)  # the whole folder: found by its relative path
    opened(moved / "work.frgd")
    assert model.doc.photo_path == str((moved / "scans" / "photo.png").resolve()) and asked == []
    assert model.modified and "save the session to keep the photo's new place" in model.statuses[-1]
    job = model.save_session()
    assert model.jobs.wait(60) and not model.modified
    assert load_session(moved / "work.frgd").photo_moved_from is None, "saved with the photo's new place"

    shutil.move(moved / "scans" / "photo.png", moved / "photo.png")  # beside the session, under its name
    opened(moved / "work.frgd")
    assert model.doc.photo_path == str((moved / "photo.png").resolve()) and model.modified and asked == []
    assert model.errors == []

    elsewhere = tmp_path / "elsewhere" / "renamed.png"
    elsewhere.parent.mkdir()
    shutil.move(moved / "photo.png", elsewhere)
    from PIL import Image

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(moved / "photo.png")  # another photo of that name
    photo_now = model.doc.photo_path
    assert model.open_session(moved / "work.frgd") is None  # asked, not told: nothing changes
    assert asked == [(str(moved / "work.frgd"), str((moved / "scans" / "photo.png").resolve()))]
    assert model.doc.photo_path == photo_now and "not opened: its photo" in model.statuses[-1]
    model.ask_photo = lambda _session, _stored: str(elsewhere)  # Locate…
    opened(moved / "work.frgd")
    assert model.doc.photo_path == str(elsewhere.resolve()) and model.modified and model.errors == []
    with pytest.raises(InputError, match="photo.png is another photo"):
        load_session(moved / "work.frgd")


def test_export_names_and_writes_the_chosen_image(model, photo_file, tmp_path):
    from frgd.io import load_image, read_provenance

    open_with_faces(model, photo_file)
    face = model.doc.faces[0]
    s = commands.Sample(255 - face.crop, 5, 0.5, 2, parameters={"method": "frgd", "model": "frgd-tiny"})
    model.push(commands.AddSamplesCommand(model.doc, 0, [s]))
    model.apply_sample(0)
    up = np.zeros((400, 480, 3), np.uint8)
    model.push(commands.PaneResultCommand(model.doc, "SR bicubic ×2", up, {"model": "bicubic", "scale": 2}))
    model.push(commands.BackgroundCommand(model.doc, "SR bicubic ×2"))
    assert model.export_choices() == ["Result", "Original", "SR bicubic ×2"]
    plan = model.export_plan("Result")
    assert (
        plan.description
        == "Result: face 1 restored with FRGD, pasted on SR bicubic ×2 — 480×400, identity changed: yes"
    )
    assert model.export_plan("Original").description.endswith("240×200, identity changed: no")
    out = exported(model, tmp_path / "orig.png", "Original")
    np.testing.assert_array_equal(load_image(out).to_uint8(), model.doc.photo)
    assert read_provenance(out)["identity_changed"] is False
    out = exported(model, tmp_path / "result.png", "Result")
    assert load_image(out).to_uint8().shape == (400, 480, 3) and read_provenance(out)["identity_changed"] is True
    assert model.statuses[-1] == f"Exported Result to {out}"


def exported(model: EditorModel, path, choice: str) -> Path:
    """Export ``choice`` (a job) and wait for it; returns the written path."""
    job = model.export(path, choice)
    assert job is not None and model.jobs.wait(30) and job.state == "done", job.error
    return job.result


def test_exports_carry_the_photo_colour_profile(model, photo_file, tmp_path):
    """The editor never converts colours, so every file it writes from a tagged photo (an Adobe RGB scan, say) must
    carry the photo's ICC profile, or it looks different: Export (any format), Export Faces, and again after the
    session is saved and reopened (the profile is read from the photo, as its pixels are)."""
    from conftest import rgb_profile
    from PIL import Image

    from frgd.io import load_image

    icc = rgb_profile()
    tagged = tmp_path / "tagged.png"
    with Image.open(photo_file) as im:
        im.save(tagged, icc_profile=icc)
    open_with_faces(model, tagged, TWO_FACES)
    for name in ("out.png", "out.jpg", "out.webp", "out.tif"):
        assert load_image(exported(model, tmp_path / name, "Result")).icc_profile == icc, name
    job = model.export_faces(tmp_path / "faces")
    assert job is not None and model.jobs.wait(30) and job.state == "done", job.error
    assert load_image(tmp_path / "faces" / "tagged_face1_input.png").icc_profile == icc
    job = model.save_session(tmp_path / "s.frgd")
    assert model.jobs.wait(30) and job.state == "done", job.error
    job = model.open_session(tmp_path / "s.frgd")
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert load_image(exported(model, tmp_path / "again.png", "Result")).icc_profile == icc
    job = model.open_photo(photo_file, detect=False)  # an untagged photo: no profile left from the last one
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert load_image(exported(model, tmp_path / "plain.png", "Result")).icc_profile is None


def deep_file(photo_file, path) -> np.ndarray:
    """A 16-bit copy of ``photo_file`` at ``path`` whose pixels use the levels between the 8-bit ones; returns them."""
    from frgd.io import load_rgb, save_image

    rgb = load_rgb(photo_file).astype(np.int64) * 257 + np.arange(240)[None, :, None] % 200 - 100
    deep = np.clip(rgb, 0, 65535).astype(np.uint16)
    save_image(path, deep)
    return deep


def test_a_16_bit_photo_exports_its_result_and_original_in_16_bits(model, photo_file, tmp_path):
    """The editor shows and edits a 16-bit scan in 8 bits, and says so; Export writes its Original and its Result in
    16 bits to PNG and TIFF: the Original is the file's pixels (turned as shown), the Result is made again from them
    the way the shown one was made (damage filled, upscaled by the same model, the faces pasted), so it is the shown
    result to within rounding and has the levels between the 8-bit ones. JPEG, a pane result and a Result pasted on
    one are 8-bit, and each description says which; a photo file changed since it was opened is exported in 8 bits
    with the reason. A session on the photo says the same; an 8-bit photo says nothing."""
    import cv2

    from frgd.diffusion.damage import repair_image
    from frgd.io import load_image, read_provenance, save_image
    from frgd.restore import paste_faces, upscale_photo

    deep = deep_file(photo_file, tmp_path / "deep.png")
    note = "a 16-bit photo: the editor shows it in 8 bits; Export writes the Result and the Original in 16 bits"
    open_with_faces(model, tmp_path / "deep.png", [SMALL_FACE])
    doc = model.doc
    assert doc.photo_bits == 16 and any(note in t for t in model.statuses if t.startswith("Opened"))
    model.rotate(1)
    assert model.jobs.wait(30) and doc.turn == 1 and doc.result_scale == 3
    restored = np.round(cv2.resize(np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.float32),
                                   (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_CUBIC)).clip(0, 255)  # fmt: skip
    s = commands.Sample(restored.astype(np.uint8), 5, 0.5, 2, parameters={"method": "frgd", "model": "frgd-tiny"})
    model.push(commands.AddSamplesCommand(doc, 0, [s]))
    model.apply_sample(0)
    doc.set_damage(np.full((6, 40), 255, np.uint8), (200, 206, 20, 60))
    assert model.jobs.wait(30) and model.result_ready()
    assert model.export_plan("Result").description.endswith(
        "600×720, 16-bit as PNG or TIFF (made again from the photo file; faces are 8-bit), identity changed: yes"
    )
    assert ", 16-bit as PNG or TIFF (the photo file's pixels), identity" in model.export_plan("Original").description

    out = load_image(exported(model, tmp_path / "r.png", "Result"))
    shown = doc.composite()
    assert out.rgb.dtype == np.uint16 and out.rgb.shape == shown.shape == (720, 600, 3)
    diff = np.abs(out.to_uint8().astype(int) - shown)
    assert diff.max() <= 2 and diff.mean() < 0.4, (diff.max(), diff.mean())  # the 8-bit result to rounding (0.19)
    assert (out.rgb % 257 != 0).mean() > 0.9, "the levels between the 8-bit ones are kept"
    turned = np.rot90(deep, 1)
    face = doc.faces[0]
    expected = paste_faces(upscale_photo(repair_image(turned, doc.damage), 3)[0],
                           [(face.crop_obj, face.applied, None)], 3)  # fmt: skip
    np.testing.assert_array_equal(out.rgb, expected)
    assert read_provenance(out.path)["parameters"]["sr_model"] == "lanczos"
    original = load_image(exported(model, tmp_path / "o.tif", "Original"))
    np.testing.assert_array_equal(original.rgb, turned)
    assert load_image(exported(model, tmp_path / "r.jpg", "Result")).rgb.dtype == np.uint8

    doc.set_pane_result("SR lanczos ×2", np.zeros((480, 400, 3), np.uint8), {"model": "lanczos", "scale": 2})
    assert ", 8-bit (pane results are made in 8 bits; the photo is 16-bit), identity" in (
        model.export_plan("SR lanczos ×2").description)  # fmt: skip
    assert load_image(exported(model, tmp_path / "p.png", "SR lanczos ×2")).rgb.dtype == np.uint8
    doc.set_background("SR lanczos ×2")
    assert model.export_bits("Result") == 8 and "8-bit (pane results" in model.export_plan("Result").description
    doc.set_background(None)
    assert model.jobs.wait(30) and model.result_ready()

    job = model.save_session(tmp_path / "s.frgd")
    assert model.jobs.wait(30) and job.state == "done", job.error
    model.statuses.clear()
    job = model.open_session(tmp_path / "s.frgd")
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert model.doc.photo_bits == 16 and any(note in t for t in model.statuses)

    save_image(tmp_path / "deep.png", deep[::-1].copy(), overwrite=True)  # the file changed since it was opened
    assert model.jobs.wait(30) and model.result_ready()
    written = load_image(exported(model, tmp_path / "changed.png", "Result"))
    assert written.rgb.dtype == np.uint8 and written.rgb.shape == (720, 600, 3)
    assert "in 8 bits: the photo file" in model.statuses[-1] and "changed since it was opened" in model.statuses[-1]

    model.statuses.clear()
    job = model.open_photo(photo_file, detect=False)
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert model.doc.photo_bits == 8 and not any("8 bits" in t for t in model.statuses)
    assert "-bit" not in model.export_plan("Original").description
    assert load_image(exported(model, tmp_path / "o8.png", "Original")).rgb.dtype == np.uint8


def test_export_writes_the_document_as_it_was_when_asked(model, photo_file, tmp_path):
    """Export takes the image and provenance on the GUI thread and writes on the worker: an edit made while the
    export waits behind another job is not in the file, and the GUI thread never encodes."""
    from frgd.io import load_image, read_provenance

    open_with_faces(model, photo_file)
    before = model.doc.composite().copy()
    gate = threading.Event()
    blocker = model.run_job("busy", lambda _d, _p, _c: gate.wait(30))
    job = model.export(tmp_path / "r.png", "Result")
    assert job.state == "queued" and not (tmp_path / "r.png").exists(), "nothing is written on the GUI thread"
    face = model.doc.faces[0]
    s = commands.Sample(255 - face.crop, 5, 0.5, 2, parameters={"method": "frgd", "model": "frgd-tiny"})
    model.push(commands.AddSamplesCommand(model.doc, 0, [s]))
    model.apply_sample(0)
    assert not np.array_equal(model.doc.composite(), before)
    gate.set()
    assert model.jobs.wait(30) and blocker.state == "done" and job.state == "done", job.error
    np.testing.assert_array_equal(load_image(job.result).to_uint8(), before)
    assert read_provenance(job.result)["identity_changed"] is False


SMALL_FACE = TEMPLATE_512 * (40 / 512) + np.array([90.0, 70.0])
"""A face whose 128 crop comes from about 40 photo pixels (0.31 px per crop px): the result's auto size is ×3."""


def crop_detail(image: np.ndarray, face, scale: int) -> np.ndarray:
    """The face's crop frame read back from ``image``, the photo ``scale`` times upscaled -> ``(128, 128, 3)`` float."""
    import cv2

    from frgd.faces.align import compose_affine, resize_affine

    a = compose_affine(resize_affine(scale), face.inverse)  # crop -> image pixels (pixel centres exact)
    return cv2.warpAffine(image.astype(np.float32), a, (CROP_SIZE, CROP_SIZE),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)  # fmt: skip


def test_the_result_is_upscaled_so_a_small_face_keeps_its_restored_detail(model, photo_file, tmp_path):
    """A small face's restored 128 crop pasted into the photo at its own size lost what the restorer made (the result
    looked like the input): the result is now the photo upscaled like frgd enhance's (the same background rule and
    paste, pixel for pixel), large enough for the smallest face to map 1:1; ×1 gives the old result."""
    from frgd.io import load_image, read_provenance
    from frgd.restore import faces_scale, paste_faces, upscale_photo

    open_with_faces(model, photo_file, [SMALL_FACE])
    doc, face = model.doc, model.doc.faces[0]
    assert model.jobs.wait(30) and doc.result_scale == 3 == faces_scale([face.crop_obj.native_scale], (200, 240))
    assert doc.upscale_current() and doc.upscaled.shape == (600, 720, 3)
    import cv2

    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (CROP_SIZE // 4, CROP_SIZE // 4, 3)).astype(np.float32)
    restored = np.clip(cv2.resize(coarse, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_CUBIC), 0, 255)
    restored = np.round(restored).astype(np.uint8)  # detail at a few crop pixels, finer than the face's 40 px
    s = commands.Sample(restored, 5, 0.5, 2, parameters={"method": "frgd", "model": "frgd-tiny"})
    model.push(commands.AddSamplesCommand(doc, 0, [s]))
    model.apply_sample(0)
    background, name = upscale_photo(doc.photo, 3)
    assert name == "lanczos"
    np.testing.assert_array_equal(doc.composite(), paste_faces(background, [(face.crop_obj, restored, None)], 3))
    inner = (slice(24, 104), slice(24, 104))  # inside the paste's feather

    def error(image: np.ndarray, scale: int) -> float:
        return float(np.abs(crop_detail(image, face, scale) - restored.astype(np.float32))[inner].mean())

    at3 = error(doc.composite(), 3)
    plan = model.export_plan("Result")
    assert plan.description == ("Result: face 1 restored with FRGD, on the original photo upscaled ×3 by lanczos — "
                                "720×600, identity changed: yes")  # fmt: skip
    out = exported(model, tmp_path / "r.png", "Result")
    assert load_image(out).to_uint8().shape == (600, 720, 3)
    params = read_provenance(out)["parameters"]
    assert (params["scale"], params["sr_model"]) == (3, "lanczos")
    model.set_result_scale(1)  # the old result: the crop shrunk to the face's 40 px
    assert doc.upscale_current() and doc.composite().shape == (200, 240, 3) and model.settings.get("result_scale") == 1
    at1 = error(doc.composite(), 1)
    assert at3 < 4 and at1 > 12, (at3, at1)  # mean abs error in levels: 2.2 and 17.5 when written
    assert read_provenance(exported(model, tmp_path / "r1.png", "Result"))["parameters"]["sr_model"] == "none"
    model.set_result_scale(2)
    assert model.jobs.wait(30) and doc.composite().shape == (400, 480, 3)
    model.set_result_scale(0)
    assert model.jobs.wait(30) and doc.composite().shape == (600, 720, 3)
    open_with_faces(model, photo_file)  # a face larger than its crop: auto is the photo's size
    assert model.jobs.wait(30) and doc.result_scale == 1 and doc.composite().shape == (200, 240, 3)


def test_the_result_size_stays_within_the_pixel_budget(model, photo_file, monkeypatch):
    """A chosen Size the photo cannot take within AUTO_MAX_PIXELS (a ×8 of a 24 MP photo would need gigabytes) gives
    the largest that fits, and the status says so; Auto is capped the same way."""
    import frgd.restore.pipeline as pipeline

    monkeypatch.setattr(pipeline, "AUTO_MAX_PIXELS", 200 * 240 * 5)  # this photo fits ×2, not ×3
    open_with_faces(model, photo_file, [SMALL_FACE])
    assert model.jobs.wait(30) and model.doc.result_scale == 2, "auto wants ×3"
    model.set_result_scale(4)
    assert model.jobs.wait(30) and model.doc.result_scale == 2 and model.doc.composite().shape == (400, 480, 3)
    assert "would make a" in model.statuses[-1] and ": ×2 (frgd enhance --scale 4 makes it)" in model.statuses[-1]
    n = len(model.statuses)
    model.set_result_scale(1)
    assert model.doc.result_scale == 1 and not any("would make" in t for t in model.statuses[n:])


def test_the_upscaled_result_follows_the_damage_fill_turns_and_backgrounds(model, photo_file, tmp_path):
    """The upscale is made from the photo the result is built on (its damage filled, turned), one job at a time, a
    stale one cancelled; an export waits for it; a chosen pane result sets the size; a cancelled upscale leaves the
    result at the photo's size, and choosing the size again makes it."""
    from frgd.io import load_image

    open_with_faces(model, photo_file, [SMALL_FACE])
    doc = model.doc
    assert model.jobs.wait(30) and doc.upscale_current()
    doc.set_damage(np.full((4, 4), 255, np.uint8), (10, 14, 10, 14))
    assert not model.result_ready()
    job = model.export(tmp_path / "d.png", "Result")
    assert job is None and not (tmp_path / "d.png").exists(), "the export waits for the fill and the upscale"
    assert model.jobs.wait(30) and doc.repair_current() and doc.upscale_current() and model.result_ready()
    assert doc._upscaled_from is doc.repaired and (tmp_path / "d.png").exists()
    from frgd.restore import upscale_photo

    np.testing.assert_array_equal(load_image(tmp_path / "d.png").to_uint8(), upscale_photo(doc.repaired, 3)[0])
    model.rotate(1)
    assert model.jobs.wait(30) and doc.photo.shape == (240, 200, 3) and doc.upscale_current()
    assert doc.composite().shape == (720, 600, 3) and doc._upscaled_from is doc.repaired
    gate = threading.Event()
    model.run_job("busy", lambda _d, _p, _c: gate.wait(30))
    model.set_result_scale(2)  # queued behind the busy job ...
    first = model._upscale_job
    model.set_result_scale(4)  # ... and stale before it ran: cancelled, the ×4 one follows
    assert first.token.cancelled and model._upscale_job is first
    gate.set()
    assert model.jobs.wait(30) and first.state == "cancelled" and doc.upscaled.shape == (960, 800, 3)
    model.set_result_scale(3)
    model._upscale_job.cancel()
    assert model.jobs.wait(30) and not doc.upscale_current() and doc.composite().shape == (240, 200, 3)
    assert "was cancelled" in model.statuses[-1]
    model.set_result_scale(3)
    assert model.export(tmp_path / "u.png", "Result") is None, "the export waits for the upscale"
    assert model.jobs.wait(30) and doc.upscale_current() and doc.composite().shape == (720, 600, 3)
    assert load_image(tmp_path / "u.png").to_uint8().shape == (720, 600, 3)
    up = np.zeros((480, 400, 3), np.uint8)
    model.push(commands.PaneResultCommand(doc, "SR bicubic ×2", up, {"model": "bicubic", "scale": 2}))
    model.push(commands.BackgroundCommand(doc, "SR bicubic ×2"))
    assert doc.composite().shape == (480, 400, 3) and model.result_ready()
    model.set_result_scale(4)
    assert "sets its size" in model.statuses[-1] and doc.composite().shape == (480, 400, 3)
    model.undo.undo()  # the background off again: the chosen size
    assert model.jobs.wait(30) and doc.composite().shape == (960, 800, 3)


def test_a_changed_face_is_pasted_again_only_where_it_lies_and_the_same_as_a_whole_composite():
    """Oracle: ``paste_faces`` of every applied face on a fresh canvas. A patch dab, a revert, a mask, a face under
    another (the overlap pastes again both, in order) and a face far away: the composite is the same to the bit,
    changed only inside the box ``composite_change`` reports (which spans about one face, not the photo); a new
    background composes it whole (``None``); the last composite is never written in place."""
    from frgd.faces.align import TEMPLATE_512
    from frgd.restore import paste_faces
    from frgd_studio.model.document import Document

    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    spots = [(60.0, 50.0, 70), (110.0, 70.0, 70), (300.0, 200.0, 60)]  # faces 1 and 2 overlap, 3 is far
    faces = [backend.make_face(photo, TEMPLATE_512 * (w / 512) + np.array([x, y])) for x, y, w in spots]
    doc = Document()
    doc.set_photo(photo, "p.png")
    doc.set_faces(faces)
    upscaled = np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1)
    doc.set_result_scale(2)
    assert doc.set_upscaled(doc.base_photo(), 2, upscaled, "nearest")

    def oracle() -> np.ndarray:
        canvas, _ = doc.result_canvas()
        pastes = [(f.crop_obj, f.applied, f.applied_mask) for f in doc.faces if f.applied is not None]
        return paste_faces(canvas, pastes, canvas.shape[1] / photo.shape[1])

    def result() -> np.ndarray:
        return rng.integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)

    shown = doc.composite()
    version = doc.composite_change(None, shown)[0]
    assert version is not None and doc.composite_change(version, shown) == (version, (0, 0, 0, 0))
    mask = np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    mask[30:90, 40:100] = 1.0
    steps = [(0, result(), None), (2, result(), None), (1, result(), None), (0, result(), mask), (1, None, None)]
    for i, image, m in steps:
        before = shown.copy()
        doc.set_applied(i, image, 0, True, m)
        new = doc.composite()
        np.testing.assert_array_equal(new, oracle())
        np.testing.assert_array_equal(shown, before)  # the last composite is not written in place
        version, box = doc.composite_change(version, new)
        assert box is not None, (i, "a face's change has a box")
        y0, y1, x0, x1 = box
        outside = np.ones(new.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(new[outside], shown[outside])
        assert (y1 - y0) * (x1 - x0) < 0.5 * new.shape[0] * new.shape[1], "about one face, not the photo"
        if i == 2:  # the far face: only its own box
            assert x0 > 2 * 200 and doc.composite() is new
        if i == 0 and m is None:  # face 1 overlaps face 2 (not applied yet): its box alone
            assert x1 < 2 * 200
        shown = new
    far = doc.composite_change(version - 3, shown)
    assert far[0] == version and far[1] is not None, "changes add up for a view three versions behind"
    doc.set_pane_result("SR", upscaled[::-1].copy())
    doc.set_background("SR")
    new = doc.composite()
    np.testing.assert_array_equal(new, oracle())
    assert doc.composite_change(version, new)[1] is None, "a new background: anywhere"
    assert doc.composite_change(version, upscaled) == (None, None), "not a composite"


def test_the_results_upscale_lets_a_resample_go_first(model, photo_file, monkeypatch):
    """On a big photo the result's upscale takes seconds (a GPU) to minutes (a CPU); a Resample (any job the user
    starts) waited for it. The upscale now stops at its next step, the user's job runs, and the upscale runs again
    after it and lands."""
    go_on, started, order = threading.Event(), threading.Event(), []
    real = backend.upscaled_background

    def slow_upscale(photo, scale, device, progress, cancel, resume=None):
        if scale != 2:
            return real(photo, scale, device, progress, cancel, resume)
        order.append("upscale start")
        started.set()
        while not go_on.is_set():
            cancel.raise_if_cancelled()
            time.sleep(0.002)
        order.append("upscale end")
        return real(photo, scale, device, progress, cancel, resume)

    monkeypatch.setattr(backend, "upscaled_background", slow_upscale)
    open_with_faces(model, photo_file, [SMALL_FACE])  # Auto: ×3, not slowed down
    model.set_result_scale(2)
    assert started.wait(30), "the upscale never started"
    upscale = model._upscale_job
    assert upscale is not None and upscale.state == "running" and not model.doc.upscale_current()

    def resample(_d, _p, _c):
        order.append("resample")
        go_on.set()
        return "samples"

    job = model.run_job("Resample", resample)
    assert model.jobs.wait(30) and job.state == "done" and upscale.state == "done" and upscale.yielded == 1
    assert order == ["upscale start", "resample", "upscale start", "upscale end"]
    assert model.doc.upscale_current() and model.doc.composite().shape == (400, 480, 3)


def test_the_results_upscale_goes_on_at_its_next_tile_after_a_resample(model, photo_file, monkeypatch):
    """A Resample clicked while the result is upscaled stops the upscale after the tile it is on; once the Resample
    ran, the upscale goes on from the next tile instead of starting over (a user resampling every few seconds would
    otherwise never get it), and lands the same image as an upscale never stopped (oracle: ``upscale_photo``)."""
    from frgd.restore import upscale_photo

    reports, resumes, order = [], [], []
    at_tile = threading.Event()
    real = backend.upscaled_background

    def tiled_upscale(photo, scale, device, progress, cancel, resume=None):
        if scale != 2:
            return real(photo, scale, device, progress, cancel, resume)
        resumes.append(resume)
        order.append("upscale")

        def report(done, total, message):
            reports.append(done)
            progress(done, total, message)
            if done == 3 and not at_tile.is_set():  # hold here until the Resample takes the lane
                at_tile.set()
                deadline = time.monotonic() + 20
                while not cancel.cancelled and time.monotonic() < deadline:
                    time.sleep(0.002)

        return upscale_photo(photo, scale, "lanczos", device=device, tile=64, progress=report, cancel=cancel,
                             resume=resume)  # fmt: skip

    monkeypatch.setattr(backend, "upscaled_background", tiled_upscale)
    open_with_faces(model, photo_file, [SMALL_FACE])
    model.set_result_scale(2)
    assert at_tile.wait(30), "the upscale never reached its third tile"
    upscale = model._upscale_job
    job = model.run_job("Resample", lambda *_: order.append("resample"))
    assert model.jobs.wait(30) and job.state == "done" and upscale.state == "done" and upscale.yielded == 1
    assert order == ["upscale", "resample", "upscale"]
    assert len(resumes) == 2 and resumes[0] is resumes[1], "the job's runs share one TileResume"
    n = reports[-1]
    assert n == 16 and reports == [1, 2, 3, *range(3, n + 1)], "the second run goes on at tile 4"
    assert resumes[0].resumed == 1 and resumes[0].skipped == 3 and resumes[0].nbytes == 0
    doc = model.doc
    want = upscale_photo(doc.base_photo(), 2, "lanczos", tile=64)[0]
    assert doc.upscale_current() and np.array_equal(doc.upscaled, want)


# ------------------------------------------------------------------------------------------------------ panes
def test_frgd_pane_goes_ready_after_an_import_without_restart(model, tiny_model_dir, empty_cache):
    pane = model.frgd
    model.refresh_panes()
    st = pane.status()
    assert not st.ready and "frgd-128" in st.message and "frgd weights import" in st.message
    assert [f.kind for f in st.fixes] == ["import"] and st.fixes[0].folder, "our own model has no URL to download"
    assert "round_frgd128.json" not in st.message
    changes = []
    pane.changed.connect(lambda: changes.append(pane.status().ready))
    job = pane.import_weights(tiny_model_dir, st.fixes[0].entry)
    assert model.jobs.wait(60) and job.state == "done", job.error
    assert pane.status().ready and changes[-1] is True and pane.status().model == "frgd-128"


def test_weights_installed_outside_the_editor_are_picked_up(model, tiny_model_dir, empty_cache):
    from frgd.weights import import_model

    model.refresh_panes()
    assert not model.frgd.status().ready
    import_model(tiny_model_dir, "frgd-128")  # e.g. `frgd weights import` in a terminal while the editor runs
    model.refresh_panes()  # what the window does when activated and every few seconds
    assert model.frgd.status().ready


def test_invalid_model_folder_is_refused_and_a_stale_one_explained(model, tmp_path, tiny_model_dir):
    bad = tmp_path / "not_a_model"
    bad.mkdir()
    problem = model.frgd.set_model_folder(bad)
    assert problem and "frgd weights import" in problem and "frgd train --config round_frgd128 " in problem
    assert model.settings.get("frgd_model") == "", "an invalid choice is not stored"
    assert model.frgd.set_model_folder(tiny_model_dir) is None and model.frgd.model_dir() == str(tiny_model_dir)
    model.settings.set("frgd_model", str(bad))  # stored by an older version, or the folder was emptied since
    m2 = EditorModel(model.settings)
    msg = m2.frgd.status().message or ""
    assert str(bad) in msg and "instead" in msg
    assert m2.frgd.model_dir() != str(bad)
    m2.shutdown()


def test_download_offline_fails_with_a_clear_message(model, monkeypatch):
    monkeypatch.setenv("FRGD_OFFLINE", "1")
    pane = model.gfpgan
    model.refresh_panes()
    st = pane.status()
    assert not st.ready
    fix = next(f for f in st.fixes if f.kind == "download")
    assert fix.url and fix.url.startswith("https://") and fix.entry == "gfpgan-v1.4"
    job = pane.download(fix.entry)
    assert model.jobs.wait(30) and job.state == "failed"
    assert "offline" in model.errors[-1] and "frgd weights import" in model.errors[-1]
    assert any(f.kind == "import" for f in st.fixes)


def test_gfpgan_pane_detects_with_the_editors_score_floor(model, monkeypatch):
    """With no detected faces, the GFPGAN pane's own detection uses the "score ≥" setting, as Detect faces does."""
    import torch
    from conftest import KeepRestorer

    import frgd.faces.detect as detect_mod
    import frgd.sr.gfpgan as gfpgan_mod
    from frgd.faces.detect import DetectedFace

    floors, restored = [], []

    def fake_detect(img, *, min_score, **kw):  # one face scored 0.8: found under a floor of 0.75, not under 0.95
        floors.append(min_score)
        lm = TEMPLATE_512 * (60 / 512) + 20.0
        return [DetectedFace(box=np.array([20.0, 20, 80, 80]), score=0.8, landmarks=lm)] if min_score <= 0.8 else []

    class Counting(KeepRestorer):
        def __init__(self, **kw):
            pass

        def restore(self, *a, **kw):
            restored.append(1)
            return super().restore(*a, **kw)

    monkeypatch.setattr(detect_mod, "detect_faces", fake_detect)
    monkeypatch.setattr(gfpgan_mod, "GFPGANRestorer", Counting)
    monkeypatch.setattr(backend, "gfpgan_problem", lambda version: None)
    photo = np.full((100, 100, 3), 120, np.uint8)
    model.settings.set("face_min_score", 0.75)
    model.doc.set_photo(photo)
    assert model.gfpgan.run() is not None and model.jobs.wait(30), model.errors
    assert not model.errors and floors == [0.75] and restored == [1]
    backend.run_gfpgan(photo, [], "v1.4", 0.5, 1, torch.device("cpu"), None, None)  # the default floor: no face
    assert floors[-1] == 0.95 and restored == [1]


def test_slow_cpu_upscale_asks_first(model, photo_file, monkeypatch):
    from frgd.sr import registry

    monkeypatch.setattr(
        registry,
        "estimate_upscale_seconds",
        lambda name, scale, h, w, device: 960.0 if name == "realesrgan-x4plus" else 0.5,
        raising=False,
    )
    monkeypatch.setattr(registry, "fast_alternative", lambda name, scale, device: "bicubic", raising=False)
    monkeypatch.setattr(backend, "sr_status", lambda names: dict.fromkeys(names))
    job = model.open_photo(photo_file, detect=False)
    assert model.jobs.wait(30) and job.state == "done"
    pane = model.sr
    pane.set_model("realesrgan-x4plus")
    pane.set_scale(2)
    asked = []
    for answer in ("cancel", "fast"):
        pane.set_model("realesrgan-x4plus")
        pane.ask_slow = lambda est, a=answer: asked.append(est) or a
        pane.run()
        assert model.jobs.wait(60)
    assert [(e.name, e.seconds, e.alternative, e.alternative_seconds) for e in asked] == [
        ("realesrgan-x4plus", 960.0, "bicubic", 0.5)] * 2  # fmt: skip
    assert list(model.doc.pane_results) == ["SR bicubic ×2"], "cancel ran nothing; the fast model ran"
    assert model.errors == []


def test_the_editor_starts_at_the_slider_default_of_the_pipelines():
    from frgd.diffusion.sampling.schedulers import DEFAULT_IDENTITY_STRENGTH

    assert EditorSettings().identity_strength == DEFAULT_IDENTITY_STRENGTH


def test_detection_uses_the_score_floor_of_the_settings(model, photo_file, monkeypatch):
    """Detect faces keeps detections at the settings' floor (FACE_MIN_SCORE by default, the CLI's); lowering it finds
    the face the default leaves out, and the status of an empty result says so."""
    import frgd.faces.detect as detect_mod
    from frgd.faces.detect import DetectedFace
    from frgd.faces.rules import FACE_MIN_SCORE

    face = DetectedFace(box=np.array([60.0, 50.0, 180.0, 170.0]), score=0.9, landmarks=np.asarray(FACE_LANDMARKS))

    class OneFace:
        def detect(self, img, **kw):
            return [face]

    monkeypatch.setattr(detect_mod, "get_detector", lambda *a, **k: OneFace())
    job = model.open_photo(photo_file, detect=False)
    assert model.jobs.wait(30) and job.state == "done"
    assert model.settings.get("face_min_score") == FACE_MIN_SCORE
    job = model.detect()
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert model.doc.faces == [] and "at least 0.95" in model.statuses[-1]
    # the one candidate under the floor is named, with the score that would take it (as the CLI's --min-score)
    assert "the best candidate scored 0.90 (120 px at x=60, y=50)" in model.statuses[-1]
    assert model.statuses[-1].endswith("lower the score next to Detect faces to 0.90.")
    model.settings.set("face_min_score", 0.85)
    job = model.detect()
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert [f.score for f in model.doc.faces] == [0.9]
    with pytest.raises(ValueError, match="outside"):
        model.settings.set("face_min_score", 1.5)


# ------------------------------------------------------------------------------------------------------ damage layer
def test_damage_layer_edits_are_regions_the_fill_coalesces_and_a_failed_fill_stops(model, photo_file, monkeypatch):
    """The photo's damage layer: a region edit replaces the array (a snapshot keeps the old one), a DamageCommand
    undoes and redoes its rectangle; one fill job at a time, so ten dabs cost at most two fills and the result is
    built on the latest; a fill that fails is not retried on the same damage, and what waited for it is dropped with
    a message; a cancelled fill stops between its batches and says how to fill again (Run > Fill Damage)."""
    open_with_faces(model, photo_file)
    doc = model.doc
    snap = doc.snapshot()
    fills = []
    real, real_sr = backend.repaired_photo, backend.run_sr

    def counted(p, d, *args, **kwargs):
        if d is not None:
            fills.append(d.copy())
        return real(p, d, *args, **kwargs)

    monkeypatch.setattr(backend, "repaired_photo", counted)
    for k in range(10):  # ten dabs along a scratch, callbacks not yet delivered
        region = np.full((3, 8), 255, np.uint8)
        doc.set_damage(region, (100, 103, 10 + 8 * k, 18 + 8 * k))
    assert snap.damage is None and doc.damage_marked() and not doc.repair_current()
    assert model.jobs.wait(30) and doc.repair_current()
    assert 1 <= len(fills) <= 2 and np.array_equal(fills[-1], doc.damage)
    result = doc.composite()
    assert (result[100:103, 10:90] != doc.photo[100:103, 10:90]).any()
    assert np.array_equal(result[:100], doc.photo[:100]) and np.array_equal(result[103:], doc.photo[103:])
    assert doc.face_damage(0) is not None  # the scratch crosses the face: it reaches its crop frame
    monkeypatch.setattr(backend, "sr_status", lambda names: dict.fromkeys(names))
    model.sr.set_model("bicubic")
    model.sr.set_scale(2)
    n_fills = len(fills)
    model.sr.run()
    assert model.jobs.wait(30) and len(fills) == n_fills, "the SR pane reuses the current fill"
    np.testing.assert_array_equal(doc.pane_results["SR bicubic ×2"],
                                  real_sr(doc.photo, "bicubic", 2, "cpu", None, None, doc.damage))  # fmt: skip

    before = doc.damage.copy()
    box = (0, 10, 0, 10)
    cmd = commands.DamageCommand(doc, box, before[0:10, 0:10], np.full((10, 10), 255, np.uint8), "Paint damage")
    model.push(cmd)
    assert doc.damage[5, 5] == 255 and cmd.after.shape == (10, 10)
    model.undo.undo()
    np.testing.assert_array_equal(doc.damage, before)
    model.push(commands.clear_damage(doc))
    assert not doc.damage_marked() and doc.base_photo() is doc.photo and doc.face_damage(0) is None
    model.undo.undo()
    np.testing.assert_array_equal(doc.damage, before)
    assert model.jobs.wait(30) and doc.repair_current()

    def broken(_p, _d, *_a, **_k):
        raise RuntimeError("no memory left")

    monkeypatch.setattr(backend, "repaired_photo", broken)
    doc.set_damage(np.full((2, 2), 255, np.uint8), (150, 152, 200, 202))
    ran = []
    assert model.when_result_ready(lambda: ran.append(1)) is False
    assert model.jobs.wait(30) and not doc.repair_current() and ran == [] and model._repair_job is None
    assert any("Filling the marked damage failed" in e for e in model.errors)
    assert model.statuses[-1].startswith("The export was not written")

    # Esc during a fill stops it between batches; Run > Fill Damage fills the marks again
    from frgd.diffusion import damage as damage_mod

    started, go = threading.Event(), threading.Event()

    def gated(p, d, progress=None, cancel=None):
        def held(*args):  # the first report waits until the test has pressed "Esc"
            started.set()
            go.wait(60)

        return real(p, d, held, cancel)

    monkeypatch.setattr(backend, "repaired_photo", gated)
    monkeypatch.setattr(damage_mod, "REPAIR_BATCH", 1)  # one window per batch: a check between windows
    doc.set_damage(np.full((40, 200), 255, np.uint8), (120, 160, 20, 220))
    job = model._repair_job
    assert job is not None and started.wait(30)
    job.cancel()
    go.set()
    assert model.jobs.wait(30) and job.state == "cancelled" and not doc.repair_current()
    assert "Run > Fill Damage fills them" in model.statuses[-1]
    model.fill_damage()
    assert model._repair_job is not None and model.jobs.wait(60) and doc.repair_current()
    model.fill_damage()
    assert model.statuses[-1] == "The marked damage is filled."
    model.push(commands.clear_damage(doc))
    model.fill_damage()
    assert model.statuses[-1].startswith("No damage is marked")


def test_detect_damage_adds_the_detectors_marks_in_one_undo_step(model, photo_file, monkeypatch):
    """Run > Detect Damage: the detector's layer (a stand-in here) is added to the marks already painted as one undo
    step, the status says the share; marks already there add nothing (no step); a result that arrives after the
    photo was turned lands turned on the turned photo; one that arrives after another photo was opened is not used
    (the status says so)."""
    job = model.open_photo(photo_file, detect=False)
    assert model.jobs.wait(30) and job.state == "done", job.error
    doc = model.doc
    doc.set_damage(np.full((2, 2), 255, np.uint8), (10, 12, 10, 12))  # painted by hand
    painted = doc.damage.copy()
    found = np.zeros((200, 240), np.uint8)
    found[100:102, 20:220] = 255
    release = threading.Event()
    calls = []

    def fake(photo, device, progress, cancel):
        calls.append(photo)
        release.wait(10)
        return found

    monkeypatch.setattr(backend, "detected_damage", fake)
    release.set()
    n = len(model.undo.commands)
    job = model.detect_damage()
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert calls[0] is doc.photo and len(model.undo.commands) == n + 1
    assert model.undo.commands[-1].text == "Detect damage"
    np.testing.assert_array_equal(doc.damage, np.maximum(painted, found))
    assert any("Detect damage marked 0.83% of the photo" in t for t in model.statuses)  # 400 of 48,000 px
    job = model.detect_damage()
    assert model.jobs.wait(30) and len(model.undo.commands) == n + 1
    assert model.statuses[-1] == "Detect damage found no damage that is not marked already."
    model.undo.undo()
    np.testing.assert_array_equal(doc.damage, painted)

    release.clear()
    job = model.detect_damage()
    before = doc.photo_state()
    model.push(commands.RotateCommand(doc, before, backend.turned_state(before, 2), "Rotate 180°"))
    release.set()
    assert model.jobs.wait(30) and job.state == "done"
    np.testing.assert_array_equal(doc.damage, np.maximum(painted, found)[::-1, ::-1])
    assert model.undo.commands[-1].text == "Detect damage"

    release.clear()
    job = model.detect_damage()
    doc.set_photo(np.rot90(doc.photo).copy(), "other.png")  # another photo opened while it runs
    release.set()
    assert model.jobs.wait(30) and job.state == "done"
    assert doc.damage is None
    assert "Detect damage: not used, another photo was opened meanwhile." in model.statuses


def test_detected_damage_is_the_shipped_detectors_mask(photo_file):
    """The editor's detection is :func:`frgd.scratch.detect_damage` with the installed detector: the same mask."""
    from frgd.errors import MissingWeightsError
    from frgd.io import load_rgb
    from frgd.scratch import detect_damage, load_detector

    try:
        net = load_detector()
    except MissingWeightsError as err:
        pytest.skip(f"no damage detector installed: {err}")
    photo = load_rgb(photo_file)
    layer = backend.detected_damage(photo, "cpu", None, None)
    assert layer.dtype == np.uint8 and layer.shape == photo.shape[:2]
    np.testing.assert_array_equal(layer, detect_damage(photo, net).mask)


def test_a_session_with_face_damage_layers_loads_into_the_photos_layer(model, photo_file, tmp_path):
    """Sessions saved before the damage layer was the photo's held one per face (``f<i>_damage`` in the crop
    frame, ``"damage": true`` on the face): they load into the photo's layer where those marks lie
    (:func:`frgd.restore.photo_damage`), and a layer of another photo's size is dropped with a warning."""
    import io
    import zipfile

    from frgd.restore import photo_damage
    from frgd_studio.session import load_session

    open_with_faces(model, photo_file)
    job = model.save_session(tmp_path / "new.frgd")
    assert model.jobs.wait(60) and job.state == "done", job.error
    with zipfile.ZipFile(job.result) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(members["session.json"])
    crop_layer = np.zeros((CROP_SIZE, CROP_SIZE), np.float32)
    crop_layer[60:64, 20:108] = 1.0
    meta["faces"][0]["damage"] = True
    with zipfile.ZipFile(io.BytesIO(members["arrays.npz"])) as z:
        arrays = {n[:-4]: np.load(io.BytesIO(z.read(n))) for n in z.namelist()}
    arrays["f0_damage"] = crop_layer

    def write(path, meta, arrays) -> Path:
        npz = io.BytesIO()
        np.savez_compressed(npz, **arrays)
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("session.json", json.dumps(meta))
            z.writestr("arrays.npz", npz.getvalue())
        return path

    data = load_session(write(tmp_path / "old.frgd", meta, arrays))
    want = photo_damage(data.photo.shape[:2], [(crop_layer, data.faces[0].inverse)])
    assert data.damage is not None and data.damage.dtype == np.uint8
    np.testing.assert_array_equal(data.damage > 127, want > 0.5)

    meta2 = dict(meta, damage=True)
    meta2["faces"] = [dict(meta["faces"][0], damage=False)]
    meta2["photo"] = dict(meta["photo"], shape=[100, 120, 3])  # painted on another photo
    del arrays["f0_damage"]
    arrays["damage"] = np.full((100, 120), 255, np.uint8)
    data = load_session(write(tmp_path / "other.frgd", meta2, arrays))
    assert data.damage is None and any("damage marks were painted on a 120x100 photo" in w for w in data.warnings)


def test_rotate_turns_the_photo_with_everything_in_it_exactly(model, photo_file, tmp_path, monkeypatch):
    """Image > Rotate: the photo, its damage marks and pane results turn exactly (np.rot90); each face is aligned
    again from its turned landmarks into the same crop, so its mask and samples stay valid; faces are numbered again
    left to right with the selection kept; one undo step gives back the very same state; a session and an export
    keep the turn; an edit made while the turn was computed is kept and the turn made again after it."""
    from frgd.io import read_provenance
    from frgd_studio.session import load_session

    open_with_faces(model, photo_file, TWO_FACES)
    doc = model.doc
    photo, (left, right) = doc.photo, doc.faces
    model.select(1)
    model.region_mask("mouth")
    mask = right.mask
    damage = np.zeros(photo.shape[:2], np.uint8)
    damage[5:8, 20:200] = 255
    model.push(commands.DamageCommand(doc, None, None, damage, "Paint damage"))
    pane = np.repeat(np.repeat(photo, 2, 0), 2, 1)
    doc.set_pane_result("SR bicubic ×2", pane, {"scale": 2})
    assert model.jobs.wait(30)
    damage = doc.damage

    job = model.rotate(2)  # 180°: the right face becomes Face 1
    assert model.jobs.wait(30) and job.state == "done", job.error
    np.testing.assert_array_equal(doc.photo, np.rot90(photo, 2))
    np.testing.assert_array_equal(doc.damage, np.rot90(damage, 2))
    np.testing.assert_array_equal(
        doc.pane_results["SR bicubic ×2"], np.rot90(np.repeat(np.repeat(photo, 2, 0), 2, 1), 2)
    )
    assert doc.turn == 2 and doc.selected == 0 and doc.faces[0].mask is mask
    for new, old in ((doc.faces[0], right), (doc.faces[1], left)):
        assert np.abs(new.crop.astype(int) - old.crop.astype(int)).max() <= 1, "the same crop"
        assert new.turn == 2 and old.turn == 0  # the face now lies upside down in the photo, restored upright
    assert model.jobs.wait(30) and doc.repair_current()  # the turned marks are filled again

    job = model.save_session(tmp_path / "turned.frgd")
    assert model.jobs.wait(60) and job.state == "done", job.error
    data = load_session(job.result)
    assert data.turn == 2
    np.testing.assert_array_equal(data.photo, doc.photo)
    np.testing.assert_array_equal(data.damage, doc.damage)
    assert [np.abs(a.crop.astype(int) - b.crop.astype(int)).max() for a, b in zip(data.faces, doc.faces)] <= [1, 1]
    job = model.export(tmp_path / "turned.png", "Result")
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert read_provenance(job.result)["parameters"]["photo_turn_degrees"] == 180

    model.undo.undo()
    assert doc.photo is photo and doc.faces[0] is left and doc.faces[1] is right and doc.turn == 0
    assert doc.selected == 1 and doc.damage is damage and doc.faces[1].mask is mask

    gate = threading.Event()
    real = backend.turned_state
    monkeypatch.setattr(backend, "turned_state", lambda state, k: gate.wait(60) and real(state, k))
    job = model.rotate(-1)
    model.region_mask("eyes")  # an edit while the turned images are made: they are made again, with the edit
    eyes = doc.faces[1].mask
    gate.set()
    assert model.jobs.wait(30) and job.state == "done"
    assert doc.turn == 3 and doc.faces[doc.selected].mask is eyes and eyes is not mask
    assert [c.text for c in model.undo.commands[-2:]] == ["Mask eyes", "Rotate 90° clockwise"]
    np.testing.assert_array_equal(doc.photo, np.rot90(photo, -1))
    model.undo.undo()
    assert doc.photo is photo and doc.faces[1].mask is eyes


def test_results_of_jobs_running_while_the_photo_turns_land_turned(model, photo_file, tiny_model_dir, monkeypatch):
    """Image > Rotate while work runs loses nothing: FRGD samples (the tiny model), a reference and its score land on
    the same face in the turned photo (numbered again), detected faces arrive turned (as if found in the turned
    photo), an upscale arrives turned exactly; a turn asked while faces are being found is made once they are in
    (the turn runs on the io lane, the detection's result is turned to fit); faces detected again still drop a
    result, with a message."""
    from frgd.faces.align import turn_points

    open_with_faces(model, photo_file, TWO_FACES)
    lms = TWO_FACES
    doc = model.doc
    photo, right = doc.photo, doc.faces[1]
    assert model.frgd.set_model_folder(tiny_model_dir) is None
    model.frgd.set_param("steps", 2)
    model.frgd.set_param("samples", 1)

    def turn(k: int) -> None:  # what Rotate pushes, at once (the jobs' results are delivered later, in wait())
        before = doc.photo_state()
        model.push(commands.RotateCommand(doc, before, backend.turned_state(before, k), "Rotate"))

    model.select(1)  # the right face; after 180° it is Face 1
    ref = np.full((CROP_SIZE, CROP_SIZE, 3), 90, np.uint8)
    monkeypatch.setattr(backend, "load_reference", lambda path, device: Reference(str(path), "sha", ref))
    monkeypatch.setattr(backend, "identity_scores", lambda crop, refs, b, d: [0.5] * len(refs))
    sampling = model.frgd.run()
    referencing = model.add_reference("ref.png")
    turn(2)
    assert doc.faces[0].key == right.key and doc.faces[0] is not right
    assert model.jobs.wait(120) and sampling.state == "done" and referencing.state == "done", sampling.error
    assert len(doc.faces[0].samples) == 1 and doc.faces[1].samples == []
    assert [r.sha256 for r in doc.faces[0].references] == ["sha"] and doc.faces[0].references[0].score == 0.5
    assert not any("not used" in t or "dropped" in t for t in model.statuses)
    model.undo.undo()  # the reference, then the samples, were added after the turn: undone first
    model.undo.undo()
    assert doc.faces[0].samples == [] and doc.turn == 2
    model.undo.undo()
    assert doc.turn == 0 and doc.faces[1] is right and right.samples == []

    # an upscale and a detection running while the photo turns 90°: both arrive turned
    gate = threading.Event()
    monkeypatch.setattr(backend, "run_sr", lambda p, *a, **k: gate.wait(60) and np.repeat(np.repeat(p, 2, 0), 2, 1))
    found = [backend.make_face(photo, lm) for lm in lms]
    monkeypatch.setattr(backend, "detect", lambda p, *a, **k: gate.wait(60) and found)
    model.sr.set_model("bicubic")
    model.sr.set_scale(2)
    upscaling, detecting = model.sr.run(check_time=False), model.detect()
    model.rotate(1)  # on the io lane: done while the compute lane is still busy
    deadline = time.monotonic() + 30
    while doc.turn != 1 and time.monotonic() < deadline:
        model.jobs.drain()
        time.sleep(0.01)
    assert doc.turn == 1 and upscaling.state in ("queued", "running"), "the turn did not wait for the compute lane"
    gate.set()
    assert model.jobs.wait(60) and upscaling.state == "done" and detecting.state == "done"
    np.testing.assert_array_equal(doc.pane_results["SR bicubic ×2"], np.rot90(np.repeat(np.repeat(photo, 2, 0), 2, 1)))
    assert doc.turn == 1 and len(doc.faces) == 2 and not any("not used" in t for t in model.statuses)
    for f in doc.faces:
        old = next(g for g in found if g.key == f.key)
        np.testing.assert_allclose(f.landmarks, turn_points(old.landmarks, -1, doc.photo.shape[:2]))
        direct = backend.make_face(doc.photo, f.landmarks)
        assert np.abs(f.crop.astype(int) - direct.crop.astype(int)).max() == 0
        assert np.abs(f.crop.astype(int) - old.crop.astype(int)).max() <= 1, "the same crop"

    # faces detected again while sampling: the samples are dropped, with a message
    sampling = model.frgd.run()
    model.push(commands.SetFacesCommand(doc, [backend.make_face(doc.photo, f.landmarks) for f in doc.faces]))
    assert model.jobs.wait(120) and sampling.state == "done"
    assert all(f.samples == [] for f in doc.faces)
    assert model.statuses[-1] == "Result dropped: the faces were detected again while it was computed."


def _until(model: EditorModel, cond, timeout: float = 30.0) -> bool:
    """Deliver the model's job callbacks until ``cond()`` (or the timeout)."""
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        model.jobs.drain()
        time.sleep(0.005)
    return bool(cond())


def test_nothing_lands_under_a_brush_stroke_and_other_edits_end_it_first(model, photo_file):
    """While a stroke is painted (the canvas's coordinates and faces of its first dab), job results wait for its
    release: a turn of the photo landing mid-stroke would move the rest of it elsewhere. Another edit, Undo or Redo
    first pushes the stroke as its own step (the results it held land after the edit); a result arriving when the
    button is no longer down (a release the canvas never saw) ends the stroke and lands."""
    open_with_faces(model, photo_file, TWO_FACES)
    doc, undo = model.doc, model.undo
    down, commits = [True], []

    def stroke(value: float) -> np.ndarray:
        """A stroke on face 1's mask as the stroke controller paints it; returns the mask before it."""
        before = doc.faces[0].mask.copy()

        def commit() -> None:
            commits.append(value)
            model.push(commands.MaskCommand(doc, 0, before, doc.faces[0].mask, f"Paint {value}", applied=True))

        model.begin_stroke(commit, lambda: down[0])
        doc.set_mask(0, np.full_like(before, value))
        return before

    stroke(0.5)
    job = model.rotate(1)
    assert _until(model, lambda: job in model.jobs.held), "the finished turn is held"
    assert doc.turn == 0 and model.stroking and commits == []
    model.end_stroke()  # released: the stroke's step, then the turn (made again: the stroke was an edit)
    assert model.jobs.wait(30) and doc.turn == 1 and commits == [0.5] and not model.stroking
    assert [c.text for c in undo.commands[-2:]] == ["Paint 0.5", "Rotate 90° counter-clockwise"]
    assert sum(bool(np.all(f.mask == 0.5)) for f in doc.faces) == 1, "the stroke turned with its face"

    # another edit mid-stroke: the stroke is pushed first, the held result lands after the edit
    stroke(0.25)
    job = model.rotate(-1)
    assert _until(model, lambda: job in model.jobs.held)
    model.region_mask("mouth")
    assert commits == [0.5, 0.25] and not model.stroking
    assert undo.commands[-2].text == "Paint 0.25"
    assert model.jobs.wait(30) and doc.turn == 0 and undo.commands[-1].text == "Rotate 90° clockwise"

    # Undo mid-stroke takes the stroke back; the drag goes on painting nothing
    before = stroke(0.75)
    model.history_step(undo.undo)
    assert commits[-1] == 0.75 and not model.stroking
    np.testing.assert_array_equal(doc.faces[0].mask, before)
    model.end_stroke()  # the release: nothing left to push
    assert commits == [0.5, 0.25, 0.75]

    # a release the canvas never saw: the next result ends the stroke and lands
    stroke(0.9)
    down[0] = False
    job = model.rotate(2)
    assert model.jobs.wait(30) and job.state == "done" and doc.turn == 2
    assert commits[-1] == 0.9 and not model.stroking and undo.commands[-2].text == "Paint 0.9"


def test_resample_all_faces_is_one_undo_step_and_keeps_chosen_results(model, photo_file, tiny_model_dir, monkeypatch):
    """Resample All Faces (the tiny model): every face gets its samples, each made as Resample makes it (its own
    request: mask, result, references); the first new sample becomes the result of each face without one, a face
    with a chosen result keeps it; all of it is one undo step. A cancel keeps the faces finished before it; the
    progress runs over all faces."""
    from frgd.jobs import Cancelled, CancelToken

    open_with_faces(model, photo_file, TWO_FACES)
    doc = model.doc
    assert model.frgd.set_model_folder(tiny_model_dir) is None
    model.frgd.set_param("steps", 2)
    model.frgd.set_param("samples", 2)
    model.frgd.set_param("lock_seed", True)
    model.frgd.set_param("seed", 11)
    chosen = np.full((CROP_SIZE, CROP_SIZE, 3), 77, np.uint8)
    model.push(commands.AppliedCommand(doc, 1, (chosen, 5, True, None), "Patch"))
    seen = []
    real = backend.run_frgd
    monkeypatch.setattr(backend, "run_frgd", lambda req, *a: seen.append(req) or real(req, *a))
    n = len(model.undo.commands)
    job = model.frgd.run_all()
    assert model.jobs.wait(120) and job.state == "done", job.error
    assert len(model.undo.commands) == n + 1 and model.undo.commands[-1].text == "Resample all faces (2)"
    assert [r.number for r in seen] == [1, 2] and seen[1].base is not None and seen[0].base is None
    for f in doc.faces:
        assert [s.seed for s in f.samples] == [11, 12]
    first = doc.faces[0]
    np.testing.assert_array_equal(first.applied, first.samples[0].image)
    assert first.applied_seed == 11 and first.applied_mask is first.samples[0].paste_mask
    np.testing.assert_array_equal(doc.faces[1].applied, chosen)  # a chosen result is kept
    assert doc.faces[1].applied_seed == 5
    assert model.statuses[-1] == ("Resampled 2 of 2 faces. Applied the first new sample to face 1. Face 2 kept its "
                                  "result; the new samples are in the gallery.")  # fmt: skip
    model.undo.undo()
    assert all(f.samples == [] for f in doc.faces) and first.applied is None and doc.faces[1].applied_seed == 5
    model.undo.redo()
    assert first.applied is not None and len(doc.faces[1].samples) == 2

    # the job itself: progress over both faces; a cancel during the second face keeps the first
    token, reports = CancelToken(), []
    model.frgd.set_param("steps", 12)  # several steps per face: the cancel lands between two of them
    reqs = [model.frgd._request(i, model.frgd.params(), model.frgd.model_dir()) for i in range(2)]

    def progress(done, total, message=""):
        reports.append((done, total, message))
        if message.startswith("face 2"):
            token.cancel()

    out = backend.run_frgd_faces(reqs, "cpu", progress, token)
    assert out.cancelled and len(out.samples) == 1 and len(out.samples[0]) == 2
    assert reports[0][1] == reports[-1][1] and all(d <= t for d, t, _ in reports)
    assert any(m.startswith("face 1 (1 of 2)") for _, _, m in reports)
    with pytest.raises(Cancelled):
        backend.run_frgd_faces(reqs, "cpu", None, token)  # nothing finished: a plain cancel


def test_autosave_writes_unsaved_work_and_a_crash_leaves_it_to_recover(tmp_path, photo_file):
    """Crash recovery: unsaved work is written to the editor's autosave session when due (never when unchanged or
    saved), and goes when the work is saved or the editor closes normally. While an editor runs, its file is not
    offered to another; once it is gone without closing (its lock freed, as when the process dies), the next editor
    offers it, and Recover opens it as unsaved work that stays autosaved until it is saved."""
    from frgd_studio.session import load_session

    folder = tmp_path / "autosave"

    def editor(name: str) -> EditorModel:
        s = Settings(tmp_path / f"{name}.json")
        s.set("device", "cpu")
        m = EditorModel(s)
        m.statuses = []
        m.statusMessage.connect(lambda text, _ms: m.statuses.append(text))
        m.enable_autosave(folder)
        return m

    a = editor("a")
    assert a.autosave_tick(force=True) is None and not a.autosave.path.exists(), "no photo: nothing to keep"
    open_with_faces(a, photo_file)
    a.region_mask("eyes")
    a.push(commands.DamageCommand(a.doc, None, None, np.where(np.eye(200, 240) > 0, 255, 0).astype(np.uint8), "D"))
    assert a.autosave_tick() is None, "not due yet (5 minutes by default)"
    a._autosave_at -= 301
    job = a.autosave_tick()
    assert job is not None and a.jobs.wait(30) and job.state == "done", job.error
    saved = load_session(a.autosave.path)
    np.testing.assert_array_equal(saved.faces[0].mask, a.doc.faces[0].mask)
    np.testing.assert_array_equal(saved.damage, a.doc.damage)
    assert a.autosave_tick(force=True) is None, "unchanged since: not written again"
    assert not any("Autosave" in t for t in a.statuses), "autosave is silent"

    job = a.save_session(tmp_path / "work.frgd")
    assert a.jobs.wait(30) and job.state == "done" and not a.modified and not a.autosave.path.exists()
    a.region_mask("mouth")
    assert a.autosave_tick(force=True) is not None and a.jobs.wait(30) and a.autosave.path.exists()

    b = editor("b")
    assert b.leftovers() == [], "a is still running: its work is not offered"
    a.autosave._lock.release()  # a dies without closing: the system frees its lock, its file stays
    (left,) = b.leftovers()
    moved = tmp_path / "moved.png"
    Path(photo_file).rename(moved)  # its photo is gone and not located: it is kept for the next start
    assert b.recover(left) is None  # asked for the photo (ask_photo), not told
    assert b.jobs.wait(30) and left.path.exists() and not b.autosave.path.exists()
    assert b.doc.photo is None and not b.modified
    assert "offered again at the next start" in b.statuses[-1]
    moved.rename(photo_file)
    (left,) = b.leftovers()
    assert left.photo == "photo.png" and "photo.png, autosaved" in left.describe()
    job = b.recover(left)
    assert b.jobs.wait(30) and job.state == "done", job.error
    np.testing.assert_array_equal(b.doc.faces[0].mask, a.doc.faces[0].mask)
    np.testing.assert_array_equal(b.doc.damage, a.doc.damage)
    assert b.modified and b.session_path is None and b.statuses[-1].startswith("Recovered the unsaved work")
    assert b.autosave.path.exists() and not left.path.exists(), "it is b's autosave now, until saved"
    assert b.autosave_tick(force=True) is None
    assert str(b.autosave.path) not in b.settings.get("recent_files")
    job = b.save_session(tmp_path / "recovered.frgd")
    assert b.jobs.wait(30) and job.state == "done" and not b.modified and not b.autosave.path.exists()
    b.region_mask("face")
    assert b.autosave_tick(force=True) is not None and b.jobs.wait(30) and b.autosave.path.exists()
    b.shutdown()  # closed normally: nothing is left to recover
    assert list(folder.iterdir()) == [], sorted(p.name for p in folder.iterdir())
    stale = folder / "deadbeef0000.lock"  # an editor killed with nothing unsaved leaves only its lock
    stale.touch()
    c = editor("c")
    assert c.leftovers() == [] and not stale.exists() and c.autosave._lock.is_locked
    c.shutdown()
    a.shutdown()


def test_export_faces_then_import_a_retouched_crop(model, photo_file, tmp_path):
    """File > Export Faces writes the --save-faces layout: every face's input crop, the result of a face that has one
    (its provenance with that face's references only), and an index whose geometry pastes it back: `frgd faces
    paste` onto the photo rebuilds the editor's ×1 Result exactly. Import Face Result brings a retouched crop (256 px,
    partly transparent) back as one undo step: a gallery entry without a seed, applied with its alpha as paste mask,
    counted as identity-changing, named with its sha256 in the export's provenance and kept by a session."""
    from PIL import Image

    from frgd.cli.main import main as cli
    from frgd.io import file_sha256, load_image, read_provenance
    from frgd_studio.session import load_session

    open_with_faces(model, photo_file, TWO_FACES)
    model.set_result_scale(1, tell=False)
    doc = model.doc
    f0 = doc.faces[0]
    ref = Reference(path=str(photo_file), sha256="ab" * 32, crop=f0.crop.copy())
    model.push(commands.add_reference(doc, 0, ref))
    s = commands.Sample(255 - f0.crop, 5, 0.5, 2, parameters={"method": "frgd", "model": "frgd-tiny",
                                                              "used_reference": True})  # fmt: skip
    model.push(commands.AddSamplesCommand(doc, 0, [s]))
    model.apply_sample(0)

    out = tmp_path / "faces"
    job = model.export_faces(out)
    assert job is not None and model.jobs.wait(30) and job.state == "done", job.error
    assert sorted(p.name for p in out.iterdir()) == ["photo_face1_cmp.png", "photo_face1_input.png",
        "photo_face1_restored.png", "photo_face2_input.png", "photo_faces.json"]  # fmt: skip
    np.testing.assert_array_equal(load_image(out / "photo_face2_input.png").to_uint8(), doc.faces[1].crop)
    np.testing.assert_array_equal(load_image(out / "photo_face1_restored.png").to_uint8(), doc.faces[0].applied)
    prov = read_provenance(out / "photo_face1_restored.png")
    assert prov["identity_changed"] is True and prov["seed"] == 5
    assert prov["reference_hashes"] == {"photo.png": "ab" * 32}, "face 1's references, as its result used them"
    index = json.loads((out / "photo_faces.json").read_text())
    assert [f["files"]["restored"] for f in index["faces"]] == [["photo_face1_restored.png"], []]
    assert index["outputs"] == [] and index["photo"] == str(photo_file.resolve())
    assert model.statuses[-1].startswith("Exported 2 face(s), 1 with a result, to ")

    pasted = tmp_path / "pasted.png"
    assert cli(["faces", "paste", str(out / "photo_faces.json"), "--onto", str(photo_file), "-o", str(pasted)]) == 0
    np.testing.assert_array_equal(load_image(pasted).to_uint8(), doc.composite())  # the index pastes as the editor
    job = model.export_faces(out)  # again, without overwriting: refused, nothing replaced
    assert model.jobs.wait(30) and job.state == "failed" and "exists" in job.error
    model.revert_face()
    job = model.export_faces(out, overwrite=True)  # face 1 has no result now: its result and comparison go
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert sorted(p.name for p in out.iterdir()) == ["photo_face1_input.png", "photo_face2_input.png",
                                                     "photo_faces.json"]  # fmt: skip
    paste = ["faces", "paste", str(out / "photo_faces.json"), "--onto", str(photo_file), "-o", str(pasted)]
    paste.append("--overwrite")
    assert cli(paste) == 2, "no face has a result to paste"
    assert cli([*paste, "--face", f"2={out / 'photo_face2_input.png'}"]) == 0  # restored elsewhere: named with --face
    assert np.abs(load_image(pasted).to_uint8().astype(int) - doc.photo).max() <= 2  # its own input: the photo

    retouched = np.repeat(np.repeat(doc.faces[1].crop, 2, axis=0), 2, axis=1)  # retouched at 2x in another editor
    retouched[80:176, 80:176] = (200, 40, 40)
    alpha = np.full((256, 256), 255, np.uint8)
    alpha[:, :128] = 0  # the left half erased: the face shows through there
    Image.fromarray(np.dstack([retouched, alpha])).save(tmp_path / "face2_retouched.png")
    n = model.undo.count()
    job = model.import_face(tmp_path / "face2_retouched.png", 1)
    assert model.jobs.wait(30) and job.state == "done", job.error
    assert model.undo.count() == n + 1 and model.undo.texts()[-1] == "Import face 2 result (face2_retouched.png)"
    f1 = doc.faces[1]
    entry = f1.samples[-1]
    assert entry.imported and entry.seed is None and f1.applied_sample() is entry and f1.applied_identity
    assert np.abs(f1.applied[50:78, 50:78].astype(int) - (200, 40, 40)).max() <= 1  # resized to 128, area filter
    assert f1.applied_mask[:, :63].max() == 0.0 and f1.applied_mask[:, 65:].min() == 1.0
    assert entry.parameters["size"] == [256, 256] and "resized from 256 px" in model.statuses[-1]
    prov = model.provenance("Result")
    assert prov.identity_changed and prov.parameters["faces"][1]["file"] == "face2_retouched.png"
    assert prov.parameters["faces"][1]["sha256"] == file_sha256(tmp_path / "face2_retouched.png")
    assert prov.seed is None and "face 2 restored with an imported crop" in model.export_plan("Result").description
    job = model.save_session(tmp_path / "s.frgd")
    assert model.jobs.wait(30) and job.state == "done", job.error
    kept = load_session(job.result).faces[1]
    assert kept.samples[-1].imported and kept.samples[-1].seed is None and kept.applied_sample() is kept.samples[-1]
    patched = f1.applied.copy()
    patched[60:64, 60:64] = 0  # what a patch stroke leaves: a result no gallery entry is
    doc.set_applied(1, patched, f1.applied_seed, True, f1.applied_mask)
    assert model.provenance("Result").parameters["faces"][1]["method"] == "edited"
    assert "face 2 restored with a patchwork" in model.export_plan("Result").description
    doc.set_applied(1, entry.image, None, True, entry.paste_mask)
    model.undo.undo()
    assert f1.applied is None and not doc.faces[1].samples, "one undo step takes the entry and the result"

    Image.fromarray(retouched[:200]).save(tmp_path / "wide.png")
    job = model.import_face(tmp_path / "wide.png", 1)
    assert model.jobs.wait(30) and job.state == "failed" and "wide.png is 256x200: a face crop is square" in job.error
    assert model.undo.index() == n and not doc.faces[1].samples


def test_the_editor_holds_no_more_than_a_session_opens(model, photo_file, tmp_path, tiny_model_dir):
    """Sessions refuse more than MAX_FACES faces, MAX_PER_FACE samples or references per face and MAX_PANES pane
    results (hostile files), so the editor never holds more: a detection keeps the largest faces, new samples push the
    oldest gallery entries out (never the result's; one undo step), a reference beyond the limit is refused and a
    new pane result drops the oldest one that is not the background. Filled to every limit, the work saves and opens
    again (before, a 65th sample made a session the editor wrote but could not open)."""
    from frgd_studio.model.document import MAX_FACES, MAX_PANES, MAX_PER_FACE
    from frgd_studio.session import load_session

    sizes = [20.0 + 0.2 * k for k in range(MAX_FACES + 1)]  # face 0, the smallest, is the one too many
    marks = [TEMPLATE_512 * (s / 512) + np.array([(k % 11) * 21.0, (k // 11) * 20.0]) for k, s in enumerate(sizes)]
    open_with_faces(model, photo_file, marks[:1])
    job = model.set_faces_from_landmarks(marks)
    assert model.jobs.wait(60) and job.state == "done", job.error
    doc = model.doc
    assert len(doc.faces) == MAX_FACES and not any(np.allclose(f.landmarks, marks[0]) for f in doc.faces)
    assert model.undo.texts()[-1] == f"Detect faces ({MAX_FACES} of {MAX_FACES + 1}, the largest)"
    assert f"kept the {MAX_FACES} largest" in model.statuses[-1]

    face = doc.faces[0]

    def samples(seeds):
        return [commands.Sample(face.crop, k, 0.5, 2, parameters={"method": "frgd"}) for k in seeds]

    model.push(commands.AddSamplesCommand(doc, 0, samples(range(MAX_PER_FACE - 4))))
    model.apply_sample(0)  # the oldest entry is the result: it stays
    cmd = commands.AddSamplesCommand(doc, 0, samples(range(100, 108)))
    model.push(cmd)
    seeds = [s.seed for s in face.samples]
    assert cmd.dropped == 4 and len(seeds) == MAX_PER_FACE and seeds[:2] == [0, 5]  # 1-4 went, the result stayed
    assert seeds[-8:] == list(range(100, 108))
    assert model.undo.texts()[-1] == "Resample face 1 (8 samples, 4 oldest dropped)"
    assert face.applied_sample() is face.samples[0]
    model.undo.undo()
    assert [s.seed for s in face.samples] == list(range(MAX_PER_FACE - 4))
    model.undo.redo()
    assert model.frgd.set_model_folder(tiny_model_dir) is None
    model.frgd.set_param("steps", 1)
    model.frgd.set_param("samples", 2)
    model.select(0)
    job = model.frgd.run()  # Resample on a full gallery
    assert model.jobs.wait(120) and job.state == "done", job.error
    assert len(face.samples) == MAX_PER_FACE and [s.seed for s in face.samples[:2]] == [0, 7]
    assert any(f"A gallery holds {MAX_PER_FACE} entries: 2 oldest of face 1 went" in t for t in model.statuses[-3:])

    for k in range(MAX_PER_FACE):
        model.push(commands.add_reference(doc, 0, Reference(path=f"r{k}.png", sha256=f"{k:064x}", crop=face.crop)))
    assert model.add_reference(photo_file) is None and "the most a face holds" in model.statuses[-1]

    image = np.zeros((200, 240, 3), np.uint8)
    for k in range(MAX_PANES):
        model.push(commands.pane_result(doc, f"SR x{k}", image, {"k": k})[0])
    model.push(commands.BackgroundCommand(doc, "SR x0"))
    model.sr.set_model("bicubic")
    model.sr.set_scale(2)
    job = model.sr.run(check_time=False)  # the pane's 17th result
    assert model.jobs.wait(60) and job.state == "done", job.error
    new = model.sr.result_name()
    assert len(doc.pane_results) == MAX_PANES and "SR x1" not in doc.pane_results and doc.background == "SR x0"
    assert model.undo.texts()[-1] == f"{new} result (dropped the oldest, SR x1)"
    assert any("SR x1, the oldest, went to make room" in t for t in model.statuses[-3:])
    model.undo.undo()
    assert list(doc.pane_results)[:2] == ["SR x0", "SR x1"] and new not in doc.pane_results
    model.undo.redo()

    job = model.save_session(tmp_path / "full.frgd")
    assert model.jobs.wait(60) and job.state == "done", job.error
    data = load_session(job.result)
    assert len(data.faces) == MAX_FACES and len(data.faces[0].samples) == MAX_PER_FACE
    assert len(data.faces[0].references) == MAX_PER_FACE and len(data.panes) == MAX_PANES
