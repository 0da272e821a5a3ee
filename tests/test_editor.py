"""FRGD Studio editor tests (pytest-qt, offscreen): document, commands, jobs, canvas painting, FRGD gallery with a
tiny random model, cancel, undo/redo, session round trip, provenance, comparison view, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from frgd.diffusion.sampling.schedulers import CANDIDATES_MAX, RESAMPLE_MAX  # noqa: E402
from frgd.faces import TEMPLATE_512  # noqa: E402
from frgd_studio.main_window import MainWindow  # noqa: E402
from frgd_studio.model import backend, commands  # noqa: E402
from frgd_studio.model.document import CROP_SIZE, Reference  # noqa: E402
from frgd_studio.model.settings import Settings  # noqa: E402
from tests.test_editor_model import exported  # noqa: E402

FACE_LANDMARKS = TEMPLATE_512 * (90 / 512) + np.array([60.0, 40.0])  # a ~90 px face at a known place


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
    from frgd.diffusion.model import make_train_scheduler, save_model_dir

    torch.manual_seed(0)
    model = FRGDUNet(**tiny_config())
    sched = make_train_scheduler(prediction_type=model.config.prediction_type)
    return save_model_dir(tmp_path_factory.mktemp("frgd_tiny"), model, sched)


@pytest.fixture
def photo_file(tmp_path):
    """A synthetic 240x200 photo (smooth gradients + a face-like blob) saved as PNG."""
    from PIL import Image

    yy, xx = np.mgrid[0:200, 0:240].astype(np.float32)
    img = np.stack([xx / 240, yy / 200, 0.5 + 0.3 * np.sin(xx / 9) * np.cos(yy / 13)], -1)
    blob = np.exp(-(((xx - 105) / 35) ** 2 + ((yy - 90) / 45) ** 2))[..., None]
    img = img * (1 - blob) + np.array([0.85, 0.65, 0.55]) * blob
    path = tmp_path / "photo.png"
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def window(qtbot, tmp_path, tiny_model_dir, tiny_identity):
    settings = Settings(tmp_path / "settings.json")
    settings.set("device", "cpu")
    settings.set("frgd_model", str(tiny_model_dir))
    w = MainWindow(settings, interactive=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    w.model.refresh_panes()
    assert w.jobs.wait(60)
    yield w
    w.jobs.shutdown()
    backend.clear_caches()


def open_with_faces(window, path) -> None:
    job = window.model.open_photo(path, detect=False)
    assert window.jobs.wait(30), "opening the photo did not finish"
    assert job.state == "done", job.error
    job = window.model.set_faces_from_landmarks([FACE_LANDMARKS])  # aligned in a job, off the GUI thread
    assert window.jobs.wait(30) and job.state == "done", job.error
    assert len(window.doc.faces) == 1


def view_point(canvas, x: float, y: float) -> QPoint:
    """Viewport position of photo point (x, y) (OpenCV convention)."""
    return canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


def stroke(canvas, points) -> None:
    vp = canvas.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(canvas, *points[0]))
    for p in points[1:]:
        QTest.mouseMove(vp, view_point(canvas, *p))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(canvas, *points[-1]))


def black_photo_drop(path: Path) -> tuple[QMimeData, QDropEvent]:
    """Write a black 50x60 photo to ``path`` and build the event of dropping it on a window (the mime data is
    returned too: the event does not own it, so the caller keeps it alive)."""
    from PIL import Image

    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)  # fmt: skip
    return mime, event


def resample(window, steps=2, samples=2, seed=7):
    p = window.frgd_panel
    p.steps.setValue(steps)
    p.samples.setValue(samples)
    p.seed.setValue(seed)
    p.lock_seed.setChecked(True)
    job = window.model.frgd.run()
    assert job is not None, window.errors
    assert window.jobs.wait(90), "FRGD job did not finish"
    return job


# ------------------------------------------------------------------------------------------------------ unit level
def test_settings_persist_and_recent(tmp_path):
    s = Settings(tmp_path / "s.json")
    s.set("device", "cpu")
    s.set("steps", 12)
    s.set("brush_size", 7.5)
    for k in range(12):
        s.add_recent(str(tmp_path / f"p{k}.png"))
    s2 = Settings(tmp_path / "s.json")
    assert s2.get("device") == "cpu" and s2.get("steps") == 12 and s2.get("brush_size") == 7.5
    recent = s2.recent_files()
    assert len(recent) == 10 and recent[0].endswith("p11.png")
    with pytest.raises(ValueError):
        s2.set("device", "tpu")


def test_job_progress_cancel_and_oom_fallback(qtbot, monkeypatch):
    """The model's job queue with the Qt poster: progress arrives on the GUI thread with an ETA, cancel stops at the
    next step, a GPU OOM retries on the CPU with a notice, an unexpected error keeps its traceback."""
    import threading
    import time

    from frgd import devices
    from frgd_studio.model.jobs import JobQueue
    from frgd_studio.qtpost import QtPoster

    poster = QtPoster()
    mgr = JobQueue(poster.post, poster.pump)
    main = threading.get_ident()
    seen = []

    def slow(device, progress, cancel):
        for i in range(500):
            cancel.raise_if_cancelled()
            progress(i + 1, 500, "step")
            time.sleep(0.01)
        return "finished"

    job = mgr.submit("slow", slow, "cpu")
    job.progress.connect(lambda p: seen.append((p.done, p.eta, threading.get_ident() == main)))
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=10000)
    job.cancel()
    assert mgr.wait(10)
    assert job.state == "cancelled" and job.result is None
    assert all(on_main for _d, _e, on_main in seen), "progress must arrive on the GUI thread"
    assert seen[-1][1] >= 0, "ETA is known after the first step"

    # GPU out of memory -> notice + retry on the CPU
    monkeypatch.setattr(devices, "resolve_device", lambda spec: torch.device("cuda"))
    used = []

    def oom(device, progress, cancel):
        used.append(device.type)
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "cpu result"

    notices = []
    job = mgr.submit("oom", oom, "cuda")
    job.notice.connect(notices.append)
    assert mgr.wait(10)
    assert job.state == "done" and job.result == "cpu result" and used == ["cuda", "cpu"]
    assert notices and "out of memory" in notices[0]

    def boom(device, progress, cancel):
        raise ValueError("bad thing")

    errors = []
    job = mgr.submit("boom", boom, "cpu")
    job.failed.connect(lambda msg, tb: errors.append((msg, tb)))
    assert mgr.wait(10)
    assert job.state == "failed" and errors and "bad thing" in errors[0][0] and "Traceback" in errors[0][1]
    mgr.shutdown()


# ------------------------------------------------------------------------------------------------------ window level
def test_progress_bar_follows_the_compute_job(window, qtbot):
    """A download (the io lane) reporting beside a running sampling job does not take the progress bar over."""
    import threading

    release = threading.Event()

    def compute(_d, progress, _c):
        progress(3, 10, "step")
        assert release.wait(20)

    job = window.jobs.submit("FRGD", compute, "cpu")
    qtbot.waitUntil(lambda: window.progress.maximum() == 10, timeout=10000)
    io = window.jobs.submit("Download", lambda _d, progress, _c: progress(999, 1000, "bytes"), "cpu", lane="io")
    qtbot.waitUntil(lambda: io not in window.jobs.jobs, timeout=10000)  # its progress was delivered before its end
    assert (window.progress.maximum(), window.progress.value()) == (10, 3)
    release.set()
    qtbot.waitUntil(lambda: job.is_finished and not window.jobs.busy, timeout=10000)
    io2 = window.jobs.submit("Download", lambda _d, progress, _c: progress(5, 8, "bytes"), "cpu", lane="io")
    qtbot.waitUntil(lambda: io2 not in window.jobs.jobs, timeout=10000)
    assert window.progress.maximum() == 8  # alone, an io job shows its own progress


def test_missing_weights_pane_explains_and_rest_works(qtbot, tmp_path, photo_file, without_shipped_weights):
    settings = Settings(tmp_path / "settings.json")
    settings.set("device", "cpu")
    w = MainWindow(settings, interactive=False)
    qtbot.addWidget(w)
    w.model.refresh_panes()
    text = w.frgd_panel.notice.text()
    assert "frgd-128" in text and "frgd weights import" in text
    assert not w.frgd_panel.resample_button.isEnabled()
    assert "not installed" in w.model_label.text()
    open_with_faces(w, photo_file)
    assert not w.frgd_panel.resample_button.isEnabled()
    assert w.model.frgd.run() is None and "frgd weights import" in w.errors[-1]
    assert "round_frgd128.json" not in w.errors[-1], "R names real commands, not a config file"
    w.model.region_mask("face")  # masks still work without weights
    assert w.doc.faces[0].mask.max() > 0.9
    w.jobs.shutdown()


def test_paint_mask_is_one_undo_step(window, photo_file):
    open_with_faces(window, photo_file)
    face = window.doc.faces[0]
    canvas = window.canvas
    window.set_tool("brush")
    window.set_brush_size(6.0)
    cx, cy = FACE_LANDMARKS[2]  # nose tip
    n0 = window.stack.count()
    stroke(canvas, [(cx - 20, cy), (cx - 10, cy), (cx, cy), (cx + 10, cy), (cx + 20, cy)])
    assert window.stack.count() == n0 + 1, "a stroke must be ONE undo step"
    mask = face.mask.copy()
    u, v = face.to_crop(cx, cy)
    assert mask[int(round(v)), int(round(u))] > 0.9
    u0, v0 = face.to_crop(cx - 20, cy)
    assert mask[int(round(v0)), int(round(u0))] > 0.9, "the stroke covers its whole path"
    assert mask[5, 5] == 0.0, "far from the stroke nothing is painted"
    # the overlay on the canvas follows the mask
    assert canvas.face_items[0][2].pixmap().width() == CROP_SIZE

    window.set_tool("eraser")
    stroke(canvas, [(cx, cy)])
    assert window.doc.faces[0].mask[int(round(v)), int(round(u))] < 0.1
    assert window.stack.count() == n0 + 2
    window.stack.undo()
    np.testing.assert_array_equal(window.doc.faces[0].mask, mask)
    window.stack.undo()
    assert window.doc.faces[0].mask.max() == 0.0
    window.stack.redo()
    np.testing.assert_array_equal(window.doc.faces[0].mask, mask)

    window.model.invert_mask()
    np.testing.assert_allclose(window.doc.faces[0].mask, 1 - mask)
    window.model.clear_mask()
    assert window.doc.faces[0].mask.max() == 0.0
    window.stack.undo()
    window.stack.undo()
    np.testing.assert_array_equal(window.doc.faces[0].mask, mask)


def test_canvas_zoom_pan_and_fit(window, photo_file):
    open_with_faces(window, photo_file)
    c = window.canvas
    c.fit()
    z0 = c.zoom()
    c.zoom_by(2.0)
    assert c.zoom() == pytest.approx(2 * z0)
    c.actual_size()
    assert c.zoom() == 1.0
    c.zoom_by(4.0)
    h0 = c.horizontalScrollBar().value()
    vp = c.viewport()
    start = QPoint(300, 300)
    QTest.mousePress(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(vp, QPoint(200, 300))
    QTest.mouseRelease(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(200, 300))
    assert c.horizontalScrollBar().value() == h0 + 100, "middle drag pans"
    window.a_mask.setChecked(False)
    assert not c.face_items[0][2].isVisible()
    window.a_mask.setChecked(True)
    assert c.face_items[0][2].isVisible()


def same_colours_when_selected(icon, size: int) -> bool:
    """Whether ``icon`` draws the same pixels selected as unselected (the style's selection tint would differ)."""
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QIcon

    normal = icon.pixmap(QSize(size, size), QIcon.Mode.Normal).toImage()
    return not normal.isNull() and icon.pixmap(QSize(size, size), QIcon.Mode.Selected).toImage() == normal


def test_thumbnails_keep_their_colours_when_selected(qapp):
    """Fusion tints a selected icon with the highlight colour unless the icon brings its own selected pixmap: a
    thumbnail must not look bluer because it is the chosen one."""
    from PySide6.QtGui import QIcon, QPixmap

    from frgd_studio.panels.common import thumb_icon

    img = (np.random.default_rng(0).random((64, 48, 3)) * 255).astype(np.uint8)
    assert same_colours_when_selected(thumb_icon(img, 64), 64)
    if qapp.style().name().lower() == "fusion":  # the offscreen default: what the check catches is its tint
        plain = QIcon(QPixmap.fromImage(thumb_icon(img, 64).pixmap(64, 64).toImage()))
        assert not same_colours_when_selected(plain, 64)


def test_frgd_gallery_apply_patch_undo_redo(window, photo_file):
    open_with_faces(window, photo_file)
    photo = window.doc.photo.copy()
    job = resample(window, steps=2, samples=2, seed=7)
    assert job.state == "done", (job.error, window.errors)
    face = window.doc.faces[0]
    assert [s.seed for s in face.samples] == [7, 8]
    assert window.gallery_panel.list.count() == 2
    assert all(s.image.shape == (CROP_SIZE, CROP_SIZE, 3) and s.image.dtype == np.uint8 for s in face.samples)
    assert not np.array_equal(face.samples[0].image, face.samples[1].image), "different seeds differ"
    assert face.samples[0].parameters["steps"] == 2

    window.gallery_panel.list.setCurrentRow(1)
    chosen = window.gallery_panel.list.item(1)
    assert chosen.isSelected()
    assert same_colours_when_selected(chosen.icon(), 96)  # the selected sample is shown in its own colours
    window.gallery_panel.apply_current()
    np.testing.assert_array_equal(face.applied, face.samples[1].image)
    result = window.doc.composite()
    assert result.shape == photo.shape
    x0, y0, x1, y1 = [int(v) for v in face.box]
    changed = np.abs(result.astype(int) - photo.astype(int)).sum(-1) > 0
    assert changed[y0:y1, x0:x1].any(), "the applied face is pasted into the result"
    assert not changed[:, 230:].any(), "far from the face the photo is untouched"

    # patchwork: brush sample 1 into the result near the nose
    window.gallery_panel.list.setCurrentRow(0)
    window.gallery_panel.patch_button.click()
    assert window.canvas.tool == "patch"
    window.set_brush_size(5.0)
    n = window.stack.count()
    cx, cy = FACE_LANDMARKS[2]
    before = face.applied.copy()
    stroke(window.canvas, [(cx, cy), (cx + 4, cy)])
    assert window.stack.count() == n + 1
    u, v = (int(round(t)) for t in face.to_crop(cx, cy))
    np.testing.assert_array_equal(face.applied[v, u], face.samples[0].image[v, u])
    np.testing.assert_array_equal(face.applied[:10, :10], before[:10, :10])

    window.stack.undo()  # patch
    np.testing.assert_array_equal(face.applied, before)
    window.stack.undo()  # apply
    assert face.applied is None
    np.testing.assert_array_equal(window.doc.composite(), photo)
    window.stack.undo()  # samples
    assert face.samples == [] and window.gallery_panel.list.count() == 0
    window.stack.redo()
    window.stack.redo()
    np.testing.assert_array_equal(face.applied, face.samples[1].image)
    assert window.gallery_panel.list.count() == 2


def test_resample_all_faces_from_the_panel_and_the_menu(window, photo_file):
    """Resample all faces: disabled without faces; the panel's button restores the face (gallery filled, first new
    sample applied and pasted) as one step on the Qt undo stack; Shift+R's action is the same command."""
    p = window.frgd_panel
    assert not p.resample_all_button.isEnabled() and not window.a_resample_all.isEnabled()
    open_with_faces(window, photo_file)
    photo = window.doc.photo.copy()
    assert p.resample_all_button.isEnabled() and window.a_resample_all.isEnabled()
    p.steps.setValue(2)
    p.samples.setValue(2)
    n = window.stack.count()
    p.resample_all_button.click()
    assert window.jobs.wait(90)
    face = window.doc.faces[0]
    assert window.stack.count() == n + 1 and window.stack.undoText() == "Resample all faces (1)"
    assert window.gallery_panel.list.count() == 2
    np.testing.assert_array_equal(face.applied, face.samples[0].image)
    assert not np.array_equal(window.doc.composite(), photo)
    window.stack.undo()
    assert face.applied is None and face.samples == [] and window.gallery_panel.list.count() == 0
    window.a_resample_all.trigger()
    assert window.jobs.wait(90) and window.stack.undoText() == "Resample all faces (1)" and face.applied is not None


def test_recovery_is_offered_at_start_and_a_normal_close_leaves_nothing(window, photo_file, tmp_path):
    """The start's recovery question for an autosave left by an editor that did not close normally: Later keeps it,
    Discard deletes it, Recover opens it as unsaved work; Settings > Autosave sets the interval; closing the window
    normally removes the editor's own autosave and lock."""
    from frgd_studio.session import save_session

    folder = tmp_path / "autosave"
    m = window.model
    m.enable_autosave(folder)
    open_with_faces(window, photo_file)
    m.region_mask("eyes")
    left = folder / "0123456789ab.frgd"  # an editor that died: no lock held
    save_session(window.doc.snapshot(), left)
    m.undo.set_clean()
    asked = []
    for answer in ("later", "discard"):
        window.ask_recover = lambda what, a=answer: asked.append(what) or a
        assert window.offer_recovery() is False
        assert left.exists() == (answer == "later")
    assert asked[0].startswith("photo.png, autosaved ")
    save_session(window.doc.snapshot(), left)
    job = m.open_photo(photo_file, detect=False)  # another document meanwhile
    assert window.jobs.wait(30) and job.state == "done" and window.doc.faces == []
    window.ask_recover = lambda what: "recover"
    assert window.offer_recovery() is True
    assert window.jobs.wait(30) and len(window.doc.faces) == 1 and m.modified and window.doc.faces[0].mask.max() > 0
    assert not left.exists() and m.autosave.path.exists()
    texts = [a.text() for a in window.autosave_group.actions()]
    assert texts[0] == "Off" and "Every 5 min" in texts
    window.autosave_group.actions()[texts.index("Every 10 min")].trigger()
    assert window.settings.get("autosave_minutes") == 10
    m.ask_unsaved = lambda _title: "discard"
    window.close()
    assert list(folder.iterdir()) == []


def test_recovering_work_whose_photo_moved_asks_to_locate_it(window, photo_file, tmp_path, monkeypatch):
    """An autosave whose photo was moved since: the recovery asks where the photo is (a message box with Locate… and
    Cancel, then a file dialog in the session's folder with the photo's name); Cancel keeps the autosave for the next
    start, Locate… recovers the work on the photo at its new place."""
    import shutil

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

    from frgd_studio.session import save_session

    folder, m = tmp_path / "autosave", window.model
    m.enable_autosave(folder)
    photo = tmp_path / "card" / "scan.png"
    photo.parent.mkdir()
    shutil.copy(photo_file, photo)
    open_with_faces(window, photo)
    m.region_mask("eyes")
    left = folder / "0123456789ab.frgd"  # left by an editor that died
    save_session(window.doc.snapshot(), left)
    m.undo.set_clean()
    job = m.open_photo(photo_file, detect=False)
    assert window.jobs.wait(30) and job.state == "done"
    moved = tmp_path / "pictures" / "scan.png"
    moved.parent.mkdir()
    shutil.move(photo, moved)  # the card was copied to the disk and taken out
    dialogs_seen, chosen = [], []

    def answer(button: str) -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox), box
        dialogs_seen.append(box.text())
        for b in box.buttons():
            if b.text().replace("&", "") == button:
                b.click()

    def get_open(_parent, title, start, _filter):
        chosen.append((title, start))
        return str(moved), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", get_open)
    m.ask_photo = window._ask_photo
    window.ask_recover = lambda _what: "recover"
    for button in ("Cancel", "Locate…"):
        QTimer.singleShot(50, lambda b=button: answer(b))
        window.offer_recovery()
        assert window.jobs.wait(30)
    assert dialogs_seen == ["The photo of 0123456789ab.frgd is missing: scan.png"] * 2
    assert chosen == [("Locate scan.png", str(folder / "scan.png"))]
    assert window.doc.photo_path == str(moved.resolve()) and len(window.doc.faces) == 1 and m.modified
    assert window.doc.faces[0].mask.max() > 0 and not left.exists() and m.autosave.path.exists()


def test_masked_resample_keeps_outside(window, photo_file):
    open_with_faces(window, photo_file)
    window.model.region_mask("eyes")
    face = window.doc.faces[0]
    resample(window, steps=2, samples=1, seed=3)
    s = face.samples[0]
    outside = face.mask <= 0.5
    np.testing.assert_array_equal(s.image[outside], face.crop[outside])
    assert s.parameters["masked"] is True


def test_harmonise_box_reaches_the_sampler_and_the_sample(window, photo_file):
    """The FRGD panel's Harmonise box is a persisted setting; a Resample with it runs the harmonising passes (the
    sample's parameters record them, so a session keeps how each alternative was made)."""
    open_with_faces(window, photo_file)
    p = window.frgd_panel
    assert p.harmonise.value() == 0 and p.harmonise.maximum() == RESAMPLE_MAX
    p.harmonise.setValue(1)
    assert window.model.settings.get("harmonise") == 1
    resample(window, steps=3, samples=1, seed=5)
    face = window.doc.faces[0]
    assert face.samples[-1].parameters["weights"]["resample"] == 1


def test_fast_guidance_box_reaches_the_sampler(window, photo_file, tmp_path, tiny_identity):
    """The "Fast identity guidance" box is the persisted ``identity_gradient`` setting (x0 when ticked); with a
    reference a Resample samples with it, recorded in the sample's weights."""
    from frgd.diffusion.sampling.schedulers import IDENTITY_GRADIENT

    open_with_faces(window, photo_file)
    p, doc = window.frgd_panel, window.doc
    assert not p.fast_guidance.isChecked() and window.model.settings.get("identity_gradient") == IDENTITY_GRADIENT
    ref_crop = np.full((CROP_SIZE, CROP_SIZE, 3), 120, np.uint8)
    window.model.push(commands.add_reference(doc, 0, Reference(str(tmp_path / "ref.jpg"), "ab" * 32, ref_crop, 0.5)))
    p.slider.setValue(100)
    resample(window, steps=2, samples=1, seed=5)
    assert doc.faces[0].samples[-1].parameters["weights"]["identity_gradient"] == IDENTITY_GRADIENT
    p.fast_guidance.setChecked(True)
    assert window.model.settings.get("identity_gradient") == "x0"
    resample(window, steps=2, samples=1, seed=5)
    assert doc.faces[0].samples[-1].parameters["weights"]["identity_gradient"] == "x0"
    window.model.frgd.set_param("identity_gradient", IDENTITY_GRADIENT)
    assert not p.fast_guidance.isChecked()  # the box follows the setting


def test_input_box_reaches_the_sampler(window, photo_file, monkeypatch):
    """The FRGD panel's Input box is the persisted ``input_quality`` setting; a Resample hands the sampler the prior's
    share it names (Detect: estimated, ``None``; Clean: 0, the input's pixels; Noisy / JPEG: 1, the cleaned face)."""
    import frgd.restore

    shares = []

    class Spy(frgd.restore.FRGDRestorer):
        def __init__(self, *args, **kwargs) -> None:
            shares.append(kwargs.get("prior_share"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(frgd.restore, "FRGDRestorer", Spy)
    open_with_faces(window, photo_file)
    p = window.frgd_panel
    assert p.input_quality.currentData() == "auto" and window.model.settings.get("input_quality") == "auto"
    resample(window, steps=2, samples=1, seed=5)
    for key in ("degraded", "clean"):
        p.input_quality.setCurrentIndex(p.input_quality.findData(key))
        assert window.model.settings.get("input_quality") == key
        resample(window, steps=2, samples=1, seed=5)
    assert shares == [None, 1.0, 0.0]
    window.model.frgd.set_param("input_quality", "degraded")
    assert p.input_quality.currentData() == "degraded"  # the box follows the setting
    with pytest.raises(ValueError, match="input_quality"):
        window.model.frgd.set_param("input_quality", "sharp")


def test_candidates_box_reaches_the_sampler_with_a_reference(window, photo_file, tmp_path, tiny_identity):
    """The Candidates box is a persisted setting; with a reference a Resample keeps the most reference-like of that
    many candidates per sample (recorded in the sample's parameters); without one there is nothing to choose by."""
    open_with_faces(window, photo_file)
    p, doc = window.frgd_panel, window.doc
    assert p.candidates.value() == 1 and p.candidates.maximum() == CANDIDATES_MAX
    p.candidates.setValue(3)
    assert window.model.settings.get("candidates") == 3
    p.slider.setValue(100)
    resample(window, steps=2, samples=1, seed=5)
    assert doc.faces[0].samples[-1].parameters["candidates"] is None  # no reference yet
    ref_crop = np.full((CROP_SIZE, CROP_SIZE, 3), 120, np.uint8)
    window.model.push(commands.add_reference(doc, 0, Reference(str(tmp_path / "ref.jpg"), "ab" * 32, ref_crop, 0.5)))
    resample(window, steps=2, samples=1, seed=5)
    rec = doc.faces[0].samples[-1].parameters["candidates"]
    assert rec["count"] == 3 and len(rec["seeds"][0]) == 3 and rec["seeds"][0][0] == 5


def test_cancel_frgd_job(window, photo_file, qtbot):
    open_with_faces(window, photo_file)
    p = window.frgd_panel
    p.steps.setValue(400)
    p.samples.setValue(1)
    p.slider.setValue(100)  # the identity end samples the most of the 400 steps (img2img strength STRENGTH_MAX)
    job = window.model.frgd.run()
    qtbot.waitUntil(lambda: job.state == "running", timeout=30000)
    qtbot.waitUntil(lambda: window.progress.maximum() > 100 or job.is_finished, timeout=60000)  # sampling has begun
    window.cancel_jobs()
    assert window.jobs.wait(60)
    assert job.state == "cancelled"
    assert window.doc.faces[0].samples == []
    assert not window.progress.isVisible()


def test_esc_during_a_resample_keeps_the_results_upscale(window, photo_file, qtbot, monkeypatch):
    """Esc (Run > Cancel Job) while a Resample runs ahead of the Result's upscale stops the Resample only: the upscale,
    which gave way to it, goes on and lands; Esc while only the upscale runs stops it (the status says so)."""
    import threading
    import time

    from frgd_studio.model import backend
    from tests.test_editor_model import SMALL_FACE

    release, real = threading.Event(), backend.upscaled_background

    def slow_upscale(photo, scale, device, progress, cancel, resume=None):
        while not release.is_set():
            cancel.raise_if_cancelled()
            time.sleep(0.002)
        return real(photo, scale, device, progress, cancel, resume)

    monkeypatch.setattr(backend, "upscaled_background", slow_upscale)
    window.model.open_photo(photo_file, detect=False)
    qtbot.waitUntil(lambda: window.doc.photo is not None, timeout=30000)
    window.model.set_faces_from_landmarks([SMALL_FACE])
    qtbot.waitUntil(lambda: window.model._upscale_job is not None, timeout=30000)
    upscale = window.model._upscale_job
    window.frgd_panel.steps.setValue(400)
    job = window.model.frgd.run()
    qtbot.waitUntil(lambda: job.state == "running" and upscale.yielded == 1, timeout=30000)
    window.a_cancel.trigger()
    qtbot.waitUntil(lambda: job.is_finished, timeout=60000)
    assert job.state == "cancelled" and not upscale.token.cancelled and not window.doc.upscale_current()
    release.set()
    assert window.jobs.wait(60) and upscale.state == "done" and window.doc.upscale_current()
    release.clear()
    window.model.set_result_scale(2)
    qtbot.waitUntil(lambda: window.model._upscale_job is not None, timeout=30000)
    window.a_cancel.trigger()
    assert window.jobs.wait(60) and not window.doc.upscale_current()
    assert "was cancelled" in window.statusBar().currentMessage()


def test_session_round_trip_and_provenance(window, photo_file, qtbot, tmp_path, tiny_identity):
    from frgd.io import read_provenance

    open_with_faces(window, photo_file)
    doc = window.doc
    ref_crop = np.full((CROP_SIZE, CROP_SIZE, 3), 120, np.uint8)
    window.model.push(commands.add_reference(doc, 0, Reference(str(tmp_path / "ref.jpg"), "ab" * 32, ref_crop, 0.5)))
    window.model.region_mask("mouth")
    window.frgd_panel.slider.setValue(80)
    resample(window, steps=2, samples=2, seed=11)
    face = doc.faces[0]
    assert face.samples[0].identity_score is not None, "identity scores with a reference"
    # the identity meter's verdict, naming the encoder and flagging it optimistic (it is the guidance encoder)
    tip = window.gallery_panel.list.item(0).toolTip()
    assert "same person: " in tip and "guidance encoder: optimistic" in tip, tip
    assert "same: " in window.gallery_panel.list.item(0).text()
    assert face.samples[0].parameters["identity_meter"]["independent"] is False
    window.gallery_panel.list.setCurrentRow(0)
    window.gallery_panel.apply_current()
    assert doc.identity_changed()

    window.show_result("Original")  # what is exported does not depend on "Show:"
    out = exported(window.model, tmp_path / "out.png", "Result")
    prov = read_provenance(out)
    assert prov["identity_changed"] is True and prov["seed"] == 11
    assert prov["source_hash"] == doc.photo_sha256 and prov["reference_hashes"] == {"ref.jpg": "ab" * 32}
    job = window.model.export(photo_file, "Result", overwrite=True)
    assert window.jobs.wait(30) and job.state == "failed", "never over the original"
    assert "input image" in window.errors[-1] and job.traceback == "", "a one-line error, not a crash"

    window.size_combo.activated.emit(window.size_combo.findData(2))  # Size ×2: kept in the session
    job = window.model.save_session(tmp_path / "s.frgd")
    assert window.jobs.wait(60) and job.state == "done", job.error
    path = job.result
    assert path is not None and window.stack.isClean()
    window.frgd_panel.slider.setValue(10)  # the settings (shared with the next window) move on after the save
    window.size_combo.activated.emit(window.size_combo.findData(0))
    assert window.jobs.wait(30) and window.settings.get("result_scale") == 0

    w2 = MainWindow(window.settings, interactive=False)
    assert w2.size_combo.currentData() == 0 and w2.frgd_panel.slider.value() == 10
    qtbot.addWidget(w2)
    job = w2.model.open_session(path)
    assert w2.jobs.wait(60) and job.state == "done", job.error
    d2 = w2.doc
    assert d2.photo_sha256 == doc.photo_sha256 and d2.selected == doc.selected
    f2 = d2.faces[0]
    np.testing.assert_allclose(f2.affine, face.affine, atol=1e-9)
    np.testing.assert_array_equal(f2.mask, face.mask)
    np.testing.assert_array_equal(f2.applied, face.applied)
    assert face.applied_mask is not None and face.samples[0].paste_mask is not None  # the mouth mask
    np.testing.assert_array_equal(f2.applied_mask, face.applied_mask)
    np.testing.assert_array_equal(f2.samples[0].paste_mask, face.samples[0].paste_mask)
    assert [s.seed for s in f2.samples] == [s.seed for s in face.samples]
    for a, b in zip(f2.samples, face.samples):
        np.testing.assert_array_equal(a.image, b.image)
        assert a.parameters == b.parameters and a.identity_score == pytest.approx(b.identity_score)
    assert [r.sha256 for r in f2.references] == [r.sha256 for r in face.references]
    window.model.set_result_scale(2)  # the first window at the session's Size again
    assert window.jobs.wait(30) and w2.jobs.wait(30) and d2.upscale_current() and doc.upscale_current()
    np.testing.assert_array_equal(d2.composite(), doc.composite())
    assert w2.frgd_panel.slider.value() == 80 and w2.frgd_panel.lock_seed.isChecked()
    assert w2.size_combo.currentText() == "×2" and d2.result_scale == 2, "the session's Size, shown in the box"
    w2.model.set_result_scale(5)  # a valid size outside the box's choices (a session's, or the settings file's)
    assert [w2.size_combo.itemData(i) for i in range(w2.size_combo.count())] == [0, 1, 2, 3, 4, 5, 6, 8]
    assert w2.size_combo.currentText() == "×5"
    w2.jobs.shutdown()


def test_compare_side_by_side_sync_and_split(window, photo_file):
    open_with_faces(window, photo_file)
    resample(window, steps=2, samples=1, seed=5)
    window.gallery_panel.compare_button.click()
    cmp = window.compare
    assert window.docks["Compare"].isVisible()
    assert cmp.left_combo.currentText() == "Face 1: input"
    assert cmp.right_combo.currentText() == "Face 1: sample 1 (seed 5)"
    cmp.left.scale(3.0, 3.0)
    cmp.left.viewMoved.emit()
    assert cmp.synced()
    cmp.left.horizontalScrollBar().setValue(cmp.left.horizontalScrollBar().maximum())
    assert cmp.synced(), "panning one side pans the other"
    cmp.set_split_mode(True)
    assert cmp.stack.currentIndex() == 1 and cmp.slider.isVisible()
    cmp.slider.setValue(250)
    assert cmp.split.position == pytest.approx(0.25)
    img = cmp.split.grab().toImage()
    assert img.width() > 0


def test_open_demo_detect_and_reference(window, tiny_identity):
    """Real MTCNN on the shipped public-domain demo photo, with the demo reference scored by the identity encoder."""
    from frgd_studio.app import demo_paths

    try:
        photo, ref = demo_paths()
    except Exception as err:  # pragma: no cover - demo not shipped in this tree
        pytest.skip(str(err))
    window.model.open_photo(photo, reference=str(ref) if ref else None)
    for _ in range(3):  # open -> detect -> add reference
        assert window.jobs.wait(120)
    assert not window.errors, window.errors
    assert len(window.doc.faces) >= 1
    assert len(window.canvas.face_items) == len(window.doc.faces)
    if ref:
        r = window.doc.faces[0].references[0]
        assert r.crop.shape == (CROP_SIZE, CROP_SIZE, 3) and r.score is not None
        assert "similarity to input" in window.references_panel.list.item(0).text()


def test_app_parser():
    from frgd_studio.app import build_parser

    args = build_parser().parse_args(["--demo", "--reference", "r.jpg", "--device", "cpu"])
    assert args.demo and args.reference == "r.jpg" and args.device == "cpu" and args.photo is None


def test_shortcuts_and_stale_results(window, photo_file, qtbot):
    open_with_faces(window, photo_file)
    window.canvas.setFocus()
    for key, tool in ((Qt.Key.Key_B, "brush"), (Qt.Key.Key_E, "eraser"), (Qt.Key.Key_V, "select")):
        QTest.keyClick(window, key)
        assert window.canvas.tool == tool
    r = window.canvas.brush_size
    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert window.canvas.brush_size == pytest.approx(r * 1.25)
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    assert window.canvas.brush_size == pytest.approx(r)
    assert window.settings.get("brush_size") == pytest.approx(r)
    assert window.a_undo.shortcut().toString() == "Ctrl+Z"
    assert "Ctrl+Shift+Z" in [s.toString() for s in window.a_redo.shortcuts()]
    assert window.a_resample.shortcut().toString() == "R"

    # a result that arrives after another photo was opened is dropped, not applied to the new photo
    window.frgd_panel.steps.setValue(3)
    n = window.stack.count()
    job = window.model.frgd.run()
    window.doc.set_photo(window.doc.photo.copy(), str(photo_file))  # another photo opened while FRGD runs
    window.model.set_faces_from_landmarks([FACE_LANDMARKS])
    assert window.jobs.wait(60)
    assert job.state == "done" and len(job.result) == window.frgd_panel.samples.value()
    assert window.doc.faces[0].samples == [] and window.stack.count() == n + 1


def test_main_entry_opens_photo(qtbot, photo_file):
    """``frgd-studio PHOTO`` starts the window, loads the photo in the background and exits cleanly."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from frgd_studio.app import main

    seen = {}

    def check_and_quit() -> None:
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        win = wins[-1]
        if win.doc.photo is None or win.jobs.busy or win.device_label.text().endswith("…"):
            QTimer.singleShot(100, check_and_quit)
            return
        seen["shape"] = win.doc.photo.shape
        seen["title"] = win.windowTitle()
        seen["device"] = win.device_label.text()
        win.model.ask_unsaved = lambda _title: "discard"  # the "unsaved changes" question, answered
        win.close()
        QApplication.instance().quit()

    # closing the last window would post a second Quit event that outlives app.exec() and makes every later
    # QEventLoop.exec() (qtbot.wait) return at once
    app = QApplication.instance()
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    QTimer.singleShot(200, check_and_quit)
    try:
        assert main(["--device", "cpu", str(photo_file)]) == 0
    finally:
        app.setQuitOnLastWindowClosed(quit_on_close)
    assert seen["shape"] == (200, 240, 3)
    assert seen["title"].startswith("photo.png") and "CPU" in seen["device"]


def test_sr_pane_background_and_drop(window, photo_file, tmp_path):
    """SR pane (bicubic needs no weights): result listed, shown, used as the canvas faces are pasted onto."""

    open_with_faces(window, photo_file)
    sr = window.sr_panel
    assert window.jobs.wait(30)
    sr.model.setCurrentText("bicubic")
    sr.scale.setCurrentIndex(sr.scale.findData(2))
    assert sr.run_button.isEnabled(), sr.notice.text()
    sr.run()
    assert window.jobs.wait(60), window.errors
    name = "SR bicubic ×2"
    up = window.doc.pane_results[name]
    assert up.shape == (400, 480, 3)
    assert window.view_combo.currentText() == name
    assert window.canvas.image_item.scale() == pytest.approx(0.5), "a 2x result covers the photo's scene rect"

    resample(window, steps=2, samples=1, seed=1)
    window.gallery_panel.apply_current()
    sr.background.setChecked(True)
    assert window.doc.background == name
    result = window.doc.composite()
    assert result.shape == up.shape, "faces are pasted onto the upscaled photo"
    assert not np.array_equal(result, up)
    window.stack.undo()  # background choice
    assert window.doc.background is None and window.doc.composite().shape == window.doc.photo.shape
    # GFPGAN without weights explains how to get them
    assert "frgd weights" in window.gfpgan_panel.notice.text() or "not available" in window.gfpgan_panel.notice.text()

    # drag and drop a photo onto the window opens it
    _mime, ev = black_photo_drop(tmp_path / "other.png")
    window.dropEvent(ev)
    for _ in range(2):
        assert window.jobs.wait(60)
    assert window.doc.photo.shape == (50, 60, 3) and window.doc.pane_results == {}
    assert window.settings.recent_files()[0].endswith("other.png")


def test_size_box_sets_the_results_size_and_says_what_it_is(window, photo_file):
    """The toolbar's Size box: Auto names the scale it chose for the smallest face (the result, shown on the canvas
    over the photo's scene rect, is that many times larger), ×1 is the photo's size; a chosen SR background sets the
    size and turns the box off."""
    from tests.test_editor_model import SMALL_FACE

    job = window.model.open_photo(photo_file, detect=False)
    assert window.jobs.wait(30) and job.state == "done"
    window.model.set_faces_from_landmarks([SMALL_FACE])
    assert window.jobs.wait(30)
    box = window.size_combo
    assert box.currentText() == "Auto (×3)" and box.isEnabled()
    assert "Now: 720×600, the photo upscaled ×3 by lanczos." in box.toolTip()
    window.show_result("Result")
    assert window.canvas._image_shape == (600, 720)
    assert window.canvas.image_item.scale() == pytest.approx(1 / 3), "the result covers the photo's scene rect"
    window.a_100.trigger()  # 100 %: the shown image's pixels, not the photo's
    assert window.canvas.zoom() == pytest.approx(3) and window.zoom_label.text() == "100%"
    box.activated.emit(box.findData(1))
    assert window.jobs.wait(30)  # the view is redrawn once per event-loop turn
    assert window.settings.get("result_scale") == 1 and window.canvas._image_shape == (200, 240)
    assert "Now: 240×200." in box.toolTip()
    assert window.zoom_label.text() == "300%", "the same view of the photo, in pixels of the image shown now"
    assert box.itemText(box.findData(0)) == "Auto (×3)", "Auto names its own scale while another is chosen"
    box.activated.emit(box.findData(2))
    assert window.jobs.wait(30) and window.canvas._image_shape == (400, 480)
    up = np.zeros((800, 960, 3), np.uint8)
    window.model.push(commands.PaneResultCommand(window.doc, "SR bicubic ×4", up, {"model": "bicubic"}))
    window.sr_panel.background.setChecked(True)
    assert not box.isEnabled() and "pasted on SR bicubic ×4" in box.toolTip()
    window.show_result("Result")
    assert window.canvas._image_shape == (800, 960)


def test_gfpgan_pane_with_tiny_model(window, photo_file, monkeypatch, tmp_path):
    """The GFPGAN pane runs the real GFPGAN restorer (tiny random GFPGANv1Clean instead of the official weights)."""
    from frgd.archs.gfpganv1_clean_arch import GFPGANv1Clean
    from frgd.sr import gfpgan

    torch.manual_seed(0)
    tiny = GFPGANv1Clean(out_size=64, num_style_feat=16, channel_multiplier=1, num_mlp=2, input_is_latent=True,
                         different_w=True, narrow=1 / 16, sft_half=True, fix_decoder=False)  # fmt: skip
    monkeypatch.setattr(gfpgan, "gfpgan_weights_path", lambda version="1.4", weights=None: tmp_path / "w.pth")
    monkeypatch.setattr(gfpgan, "load_gfpgan", lambda version="1.4", weights=None, device="cpu": tiny)
    open_with_faces(window, photo_file)
    pane = window.gfpgan_panel
    window.model.gfpgan.refresh_status()
    assert pane.run_button.isEnabled() and not pane.notice.isVisible()
    pane.upscale.setCurrentIndex(pane.upscale.findData(2))
    pane.run()
    assert window.jobs.wait(60), window.errors
    assert not window.errors, window.errors
    name = "GFPGAN v1.4 ×2"
    img = window.doc.pane_results[name]
    assert img.shape == (400, 480, 3) and window.view_combo.currentText() == name
    assert window.doc.pane_params[name]["model"] == "GFPGANv1.4"
    window.stack.undo()
    assert name not in window.doc.pane_results and window.view_combo.currentText() == "Result"


def test_masked_apply_pastes_only_the_paste_mask():
    """An eyes-only edit of a large face (its paste mask: the eyes) leaves the rest of the photo bit-exact (the 128 px
    crop is not pasted over the whole face, which would blur it); the paste mask is the face's, never guessed from
    pixels."""
    import cv2

    from frgd.faces import face_region_mask, transform_points
    from frgd_studio.model.document import Document

    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur((rng.random((520, 520, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    lm = TEMPLATE_512 * (360 / 512) + 80.0  # a 360 px face: its 128 crop is a 3x downscale
    doc = Document()
    doc.set_photo(photo)
    doc.set_faces([backend.make_face(photo, lm)])
    face = doc.faces[0]
    eyes = face_region_mask(CROP_SIZE, transform_points(face.affine, face.landmarks), "eyes")
    doc.set_applied(0, np.where(eyes[..., None] > 0.5, 255 - face.crop, face.crop).astype(np.uint8), 1, True, eyes)
    changed = np.abs(doc.composite().astype(int) - photo.astype(int)).sum(-1) > 0
    mx, my = lm[3:].mean(axis=0).astype(int)  # the mouth, far from the eyes
    assert not changed[my - 30 : my + 30, mx - 60 : mx + 60].any(), "outside the edit the photo is untouched"
    for ex, ey in lm[:2].astype(int):
        assert changed[ey, ex], "the edited eyes are pasted"
    doc.set_applied(0, face.crop.copy(), 1, True, np.zeros_like(eyes))  # an empty paste mask: nothing changes
    np.testing.assert_array_equal(doc.composite(), photo)
    assert doc.identity_changed() and not doc.identity_changed("Original")


def test_session_io_errors_are_one_line(window, photo_file, tmp_path):
    open_with_faces(window, photo_file)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    job = window.model.save_session(blocker / "s.frgd")
    assert window.jobs.wait(30) and job.state == "failed", "an unwritable session path is an error, not a crash"
    assert "cannot write" in window.errors[-1] and not window.stack.isClean()
    folder = tmp_path / "folder.frgd"
    folder.mkdir()
    job = window.model.open_session(folder)
    assert window.jobs.wait(30)
    assert job.state == "failed" and job.traceback == "", job.error
    assert "cannot read" in window.errors[-1]

    import json
    import zipfile

    job = window.model.save_session(tmp_path / "good.frgd")
    assert window.jobs.wait(30) and job.state == "done", job.error
    good = job.result
    with zipfile.ZipFile(good) as z:
        meta, arrays = json.loads(z.read("session.json")), z.read("arrays.npz")
    del meta["faces"][0]["landmarks"]  # a damaged / hand-edited session
    with zipfile.ZipFile(tmp_path / "damaged.frgd", "w") as z:
        z.writestr("session.json", json.dumps(meta))
        z.writestr("arrays.npz", arrays)
    job = window.model.open_session(tmp_path / "damaged.frgd")
    assert window.jobs.wait(30)
    assert job.state == "failed" and job.traceback == "", job.error
    assert "damaged FRGD Studio session" in window.errors[-1]


def test_results_for_replaced_faces_are_dropped(window, photo_file, tmp_path):
    """A job's result goes to the face it was computed for: dropped when the faces were detected again meanwhile;
    scores only update the references still there."""
    open_with_faces(window, photo_file)
    doc = window.doc
    window.frgd_panel.steps.setValue(3)
    job = window.model.frgd.run()
    new_faces = [backend.make_face(doc.photo, FACE_LANDMARKS)]
    window.model.push(commands.SetFacesCommand(doc, new_faces))  # detect again while FRGD runs (same photo)
    n = window.stack.count()
    assert window.jobs.wait(60) and job.state == "done"
    assert doc.faces[0].samples == [] and window.stack.count() == n

    crop = np.full((CROP_SIZE, CROP_SIZE, 3), 100, np.uint8)
    for k in range(2):
        window.model.push(commands.add_reference(doc, 0, Reference(str(tmp_path / f"r{k}.jpg"), str(k), crop)))
    job = window.model.score_references()
    window.model.push(commands.remove_reference(doc, 0, 0))  # removed while the scores are computed
    assert window.jobs.wait(60) and job.state == "done"
    refs = doc.faces[0].references
    assert [r.sha256 for r in refs] == ["1"] and refs[0].score is not None


def test_stroke_that_changes_nothing_is_no_undo_step(window, photo_file):
    """A brush or patch stroke outside every face changes nothing: no undo step, the face is not marked restored and
    the saved result does not claim a changed identity."""
    from frgd_studio.model.document import Sample

    open_with_faces(window, photo_file)
    doc = window.doc
    face = doc.faces[0]
    sample = Sample(255 - face.crop, 3, 0.8, 2, parameters={"used_reference": True})
    window.model.push(commands.AddSamplesCommand(doc, 0, [sample]))
    window.set_brush_size(6.0)
    n = window.stack.count()
    for tool in ("brush", "eraser", "patch"):
        if tool == "patch":
            window.gallery_panel.patch_button.click()
        else:
            window.set_tool(tool)
        stroke(window.canvas, [(225.0, 190.0), (230.0, 190.0)])
        assert window.stack.count() == n, f"{tool}: a stroke outside the face is not an undo step"
    assert face.mask.max() == 0.0 and face.applied is None and not doc.has_changes() and not doc.identity_changed()
    stroke(window.canvas, [tuple(FACE_LANDMARKS[2])])  # inside the face it still patches, as one step
    assert window.stack.count() == n + 1 and face.applied is not None and doc.identity_changed()


def test_provenance_of_a_locked_seed_sampled_twice(window, photo_file, tmp_path):
    """Same locked seed, other slider: the saved provenance and the gallery mark name the sample really applied."""
    from frgd.io import read_provenance

    open_with_faces(window, photo_file)
    window.frgd_panel.slider.setValue(20)
    resample(window, steps=2, samples=1, seed=7)
    window.frgd_panel.slider.setValue(90)
    resample(window, steps=2, samples=1, seed=7)
    face = window.doc.faces[0]
    assert [s.seed for s in face.samples] == [7, 7]
    window.gallery_panel.list.setCurrentRow(1)
    window.gallery_panel.apply_current()  # the second run (slider 0.9)
    prov = read_provenance(exported(window.model, tmp_path / "out.png", "Result"))
    assert prov["parameters"]["faces"][0]["identity_strength"] == pytest.approx(0.9)
    marks = [window.gallery_panel.list.item(k).text().split("\n")[0] for k in range(2)]
    assert marks == ["seed 7", "seed 7 ✓"]


def test_patch_stroke_redraws_the_photo_once_per_event_loop_turn(window, photo_file, qtbot, monkeypatch):
    """The patch brush changes the result at every dab; the whole-photo redraw (composite + pixmap, ~0.1 s for a
    12 MP photo) happens once per event-loop turn, not once per dab."""
    from frgd_studio.model.document import Sample

    open_with_faces(window, photo_file)
    face = window.doc.faces[0]
    window.model.push(commands.AddSamplesCommand(window.doc, 0, [Sample(255 - face.crop, 3, 0.0, 2)]))
    window.gallery_panel.patch_button.click()
    window.set_brush_size(2.0)
    qtbot.wait(20)
    window.show_compare("Original", "Result")
    qtbot.wait(20)
    shown, compared = [], []
    monkeypatch.setattr(window.canvas, "set_image", shown.append)
    monkeypatch.setattr(window.compare.left, "set_image", compared.append)
    cx, cy = FACE_LANDMARKS[2]
    window.strokes.begin(cx - 20, cy)
    window.strokes.move(cx + 20, cy)  # one fast mouse move: ~80 dabs
    window.strokes.end()
    assert len(shown) == 0 and len(compared) == 0
    qtbot.waitUntil(lambda: len(shown) >= 1)
    qtbot.wait(20)
    assert (len(shown), len(compared)) == (1, 1), "the canvas and the comparison view are redrawn once"
    np.testing.assert_array_equal(shown[0], window.doc.composite())


def test_a_patch_stroke_redraws_only_its_box_and_shows_the_composite(window, photo_file, qtbot):
    """Once a result is shown, a dab changes one face's box of it: the canvas and the comparison view repaint that box
    into the pixmaps they show (``ShownImage``: "box", never "whole"), and what they show is the composite, pixel for
    pixel (the oracle); an unchanged image is not converted again ("same"); a new background is shown whole."""
    from frgd_studio.model.document import Sample
    from frgd_studio.qtimage import from_qimage

    open_with_faces(window, photo_file)
    face = window.doc.faces[0]
    window.model.push(commands.AddSamplesCommand(window.doc, 0, [Sample(255 - face.crop, 3, 0.0, 2)]))
    window.gallery_panel.patch_button.click()
    window.set_brush_size(3.0)
    views = {"canvas": window.canvas}
    cx, cy = FACE_LANDMARKS[2]

    def dab(dx: float) -> None:
        window.strokes.begin(cx + dx, cy)
        window.strokes.move(cx + dx + 3, cy + 2)
        window.strokes.end()
        result = window.doc.composite()
        for name, view in views.items():
            qtbot.waitUntil(lambda v=view: v.shown._shown is not None and v.shown._shown() is result)
            np.testing.assert_array_equal(from_qimage(view.shown.item.pixmap().toImage()), result, err_msg=name)

    dab(-6)  # the first result: shown whole
    window.show_compare("Original", "Result")
    views["compare"] = window.compare.right
    qtbot.waitUntil(lambda: window.compare.right.shown._shown() is window.doc.composite())
    counts = {name: dict(v.shown.counts) for name, v in views.items()}
    for dx in (0, 6, 12):
        dab(dx)
    for name, view in views.items():
        assert view.shown.counts["whole"] == counts[name]["whole"], name
        assert view.shown.counts["box"] >= counts[name]["box"] + 3, name
    window.compare.left.set_image(window.doc.photo)
    assert window.compare.left.shown.last == "same", "the Original was not converted again"
    window.doc.set_pane_result("SR", np.ascontiguousarray(window.doc.photo[::-1]))
    window.doc.set_background("SR")
    result = window.doc.composite()
    qtbot.waitUntil(lambda: window.canvas.shown._shown() is result)
    assert window.canvas.shown.last == "whole"
    np.testing.assert_array_equal(from_qimage(window.canvas.image_item.pixmap().toImage()), result)


def test_save_result_keeps_the_photo_transparency(window, tmp_path):
    from PIL import Image

    rgba = np.zeros((60, 80, 4), np.uint8)
    rgba[..., :3] = 128
    rgba[..., 3] = np.tile(np.linspace(0, 255, 80).astype(np.uint8), (60, 1))
    rgba[:, 40:, 3] = 255  # an edge, where upscaling rules differ
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    job = window.model.open_photo(tmp_path / "cutout.png", detect=False)
    assert window.jobs.wait(30) and job.state == "done", job.error
    for name, scale in (("Result", 1), ("SR bicubic ×2", 2)):
        if scale > 1:
            window.model.push(commands.PaneResultCommand(window.doc, name, np.zeros((120, 160, 3), np.uint8)))
        window.show_result("Original")  # Export writes the chosen image, not the shown one
        out = exported(window.model, tmp_path / f"out{scale}.png", name)
        with Image.open(out) as im:
            assert im.mode == "RGBA" and im.size == (80 * scale, 60 * scale)
            alpha = np.asarray(im)[..., 3]
        if scale == 1:
            np.testing.assert_array_equal(alpha, rgba[..., 3])
        else:  # upscaled as frgd enhance and frgd upscale upscale it (one rule)
            from frgd.sr.upscale import upscale_alpha

            want = np.round(upscale_alpha(rgba[..., 3], scale) * 255)
            assert np.abs(alpha.astype(float) - want).max() <= 1


# ------------------------------------------------------------------------------------------- issue 13: the model layer
@pytest.mark.parametrize("answer", ["cancel", "discard", "save"])
def test_unsaved_prompt_on_open_session_drop_and_quit(window, photo_file, tmp_path, qtbot, answer):
    """Open photo, open session, drop, a recent file and quit ask Save / Discard / Cancel about unsaved edits (a mask
    edit counts); Save saves the session first, Cancel keeps everything."""

    open_with_faces(window, photo_file)
    session = tmp_path / "first.frgd"
    job = window.model.save_session(session)
    assert window.jobs.wait(30) and job.state == "done" and window.stack.isClean()
    asked = []
    window.model.ask_unsaved = lambda title: asked.append(title) or answer
    window.model.ask_session_path = lambda default: str(tmp_path / "saved.frgd")

    def edit() -> None:
        window.model.region_mask("face")
        assert not window.stack.isClean()

    other = tmp_path / "other.png"
    _mime, drop = black_photo_drop(other)
    actions = {
        "open photo": lambda: window.model.open_photo(other, detect=False),
        "open session": lambda: window.model.open_session(session),
        "drop": lambda: window.dropEvent(drop),
        "recent file": lambda: window.recent_menu.actions()[0].trigger(),
    }
    for what, act in actions.items():
        if window.doc.photo.shape != (200, 240, 3) or not window.doc.faces:
            window.stack.setClean()  # (the detection of the dropped photo is an edit)
            open_with_faces(window, photo_file)
        edit()
        asked.clear()
        act()
        assert window.jobs.wait(60) and window.jobs.wait(5)
        assert asked == [window.doc.title()] or asked == ["photo.png"], f"{what}: asked {asked}"
        if answer == "cancel":
            assert not window.stack.isClean() and window.doc.faces[0].mask.max() > 0.9, what
        else:  # the other document replaced the edited one
            assert all(f.mask.max() == 0.0 for f in window.doc.faces), what
        if answer == "save":
            assert (tmp_path / "saved.frgd").is_file(), what
    edit()
    asked.clear()
    window.close()
    qtbot.wait(10)
    assert window.jobs.wait(30)
    assert asked, "quit asks too"
    assert window.isVisible() == (answer == "cancel"), "Cancel keeps the window open; Save saves, then quits"


def test_export_names_what_it_saves_regardless_of_show(window, photo_file, tmp_path):
    from frgd.io import load_image, read_provenance
    from frgd_studio.dialogs import ExportDialog

    open_with_faces(window, photo_file)
    resample(window, steps=2, samples=1, seed=4)
    window.gallery_panel.apply_current()
    window.model.push(commands.PaneResultCommand(window.doc, "SR bicubic ×2", np.zeros((400, 480, 3), np.uint8),
                                                 {"model": "bicubic", "scale": 2}))  # fmt: skip
    window.stack.undo()
    window.stack.redo()  # undo/redo switched "Show:" back and forth before; Export does not read it
    window.show_result("Original")
    assert window.a_export.shortcut().toString() == "Ctrl+E"
    assert window.a_save_session.shortcut().toString() == "Ctrl+S"
    dlg = ExportDialog(window.model, window)
    assert dlg.choice() == "Result"
    assert (
        dlg.description.text()
        == "Result: face 1 restored with FRGD, on the original photo — 240×200, identity changed: yes"
    )
    dlg.combo.setCurrentText("SR bicubic ×2")
    assert dlg.description.text().startswith("SR bicubic ×2: whole-photo pane result of bicubic — 480×400")
    out = exported(window.model, tmp_path / "r.png", "Result")
    np.testing.assert_array_equal(load_image(out).to_uint8(), window.doc.composite())
    assert read_provenance(out)["identity_changed"] is True and window.view_combo.currentText() == "Original"


def test_selection_and_scores_are_no_undo_steps(window, photo_file, tmp_path):
    open_with_faces(window, photo_file)
    doc = window.doc
    crop = np.full((CROP_SIZE, CROP_SIZE, 3), 100, np.uint8)
    window.model.push(commands.add_reference(doc, 0, Reference(str(tmp_path / "ref.jpg"), "0", crop)))
    window.stack.setClean()
    n = window.stack.count()
    window.faces_panel.list.setCurrentRow(-1)
    doc.select(-1)
    window.faces_panel.list.setCurrentRow(0)
    assert doc.selected == 0
    job = window.model.score_references()
    assert window.jobs.wait(60) and job.state == "done", job.error
    assert window.stack.count() == n and window.stack.isClean()
    score = doc.faces[0].references[0].score
    assert window.statusBar().currentMessage() == f"Reference scores: ref.jpg {score:.2f}"
    assert f"{score:.3f}" in window.references_panel.list.item(0).text()


def test_long_messages_wrap_without_widening_the_dock(window, qtbot):
    from frgd_studio.panels.common import NOTICE_STYLE

    qtbot.wait(50)
    dock = window.docks["FRGD"]
    canvas_w, dock_w = window.canvas.width(), dock.width()
    hint = (window.frgd_panel.sizeHint().width(), dock.sizeHint().width())
    text = "missing weights 'frgd-128': expected at /a/very/long/path/" + "x" * 120 + "/frgd-128; " + "word " * 120
    window.frgd_panel.notice.show_text(text)
    window.gfpgan_panel.notice.show_text(text)
    qtbot.wait(50)
    assert (window.frgd_panel.sizeHint().width(), dock.sizeHint().width()) == hint
    assert window.canvas.width() == canvas_w and dock.width() == dock_w
    notice = window.frgd_panel.notice
    assert notice.wordWrap() and notice.full_text == text and notice.text().replace("\u200b", "") == text
    assert notice.height() > 3 * notice.fontMetrics().height(), "the whole text is shown, wrapped"
    assert "#1f1f1f" in NOTICE_STYLE and "e0b050" not in notice.styleSheet()


def test_long_messages_do_not_make_the_window_taller_than_a_screen(window, qtbot):
    """A wrapped notice asks for the height its text needs at the width it has, not at a few pixels (one word per
    line), so the docks and the window keep a small minimum height; the whole text still fits."""
    from PySide6.QtWidgets import QLabel

    text = "missing weights 'gfpgan-v1.4': expected at /home/user/.cache/frgd-studio/weights/gfpgan-v1.4; " + (
        "run `frgd weights download gfpgan-v1.4`, or import the file you have. " * 4
    )
    for panel in (window.frgd_panel, window.gfpgan_panel, window.sr_panel):
        panel.notice.show_text(text)
    window.resize(1200, 800)
    qtbot.wait(100)
    assert window.minimumSizeHint().height() < 600 and window.height() <= 800  # the side panels scroll
    notice = window.gfpgan_panel.notice
    window.docks["GFPGAN"].raise_()
    qtbot.wait(100)
    plain = QLabel(notice.text())  # the text's own height at the notice's width, with the notice's style
    plain.setWordWrap(True)
    plain.setStyleSheet(notice.styleSheet())
    assert notice.height() >= plain.heightForWidth(notice.width()), "no line is cut off"
    narrow = notice.width() // 2
    window.docks["GFPGAN"].setMaximumWidth(window.docks["GFPGAN"].width() - narrow)  # a narrower dock: more lines
    qtbot.wait(100)
    assert notice.height() >= plain.heightForWidth(notice.width())


def test_session_save_runs_as_a_job(window, photo_file, tmp_path, qtbot, monkeypatch):
    import threading

    from frgd_studio import session

    open_with_faces(window, photo_file)
    threads, real, release = [], session.save_session, threading.Event()

    def slow_save(doc, path, ui=None):
        threads.append(threading.current_thread() is threading.main_thread())
        assert release.wait(30), "never released"  # the file is written only once the test says so
        return real(doc, path, ui)

    monkeypatch.setattr(session, "save_session", slow_save)
    job = window.model.save_session(tmp_path / "s.frgd")
    assert not job.is_finished and not (tmp_path / "s.frgd").exists(), "the GUI thread does not wait for the file"
    qtbot.waitUntil(lambda: window.progress.isVisible())
    window.model.region_mask("eyes")  # editing during the save is safe: the snapshot is written
    release.set()
    assert window.jobs.wait(30) and job.state == "done" and threads == [False]
    assert not window.stack.isClean(), "the edit made during the save is still unsaved"
    assert window.statusBar().currentMessage().startswith("Saved session")


def test_weights_buttons_import_and_download(qtbot, tmp_path, tiny_model_dir, monkeypatch, without_shipped_weights):
    """Missing weights: each pane shows Download (URL + sha256) and Import…; an import makes the FRGD pane ready without
    a restart; offline, Download fails with a message naming the import alternative."""
    monkeypatch.setenv("FRGD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FRGD_OFFLINE", "1")
    settings = Settings(tmp_path / "settings.json")
    settings.set("device", "cpu")
    w = MainWindow(settings, interactive=False)
    qtbot.addWidget(w)
    box = w.frgd_panel.weights
    assert list(box.buttons) == ["import:frgd-128"] and not w.frgd_panel.resample_button.isEnabled()
    assert "not installed" in w.model_label.text()
    gfp = w.gfpgan_panel.weights
    assert set(gfp.buttons) == {"download:gfpgan-v1.4", "import:gfpgan-v1.4"}
    assert "https://" in gfp.buttons["download:gfpgan-v1.4"].toolTip()
    gfp.buttons["download:gfpgan-v1.4"].click()
    assert w.jobs.wait(30)
    assert "offline" in w.errors[-1] and "frgd weights import" in w.errors[-1]
    asked = []
    w.ui.open_folder = lambda title: asked.append(title) or str(tiny_model_dir)
    box.buttons["import:frgd-128"].click()
    assert w.jobs.wait(60), w.errors
    assert asked and w.model.frgd.status().ready and box.buttons == {} and not w.frgd_panel.notice.isVisible()
    assert w.model_label.text() == "FRGD model: frgd-128"
    w.jobs.shutdown()


def test_weights_installed_by_the_cli_show_up_without_restart(qtbot, tmp_path, tiny_model_dir, photo_file, monkeypatch,
                                                               without_shipped_weights):  # fmt: skip
    """`frgd weights import` in a terminal while the editor runs: the periodic check makes the FRGD pane ready."""
    from frgd.weights import import_model

    monkeypatch.setenv("FRGD_CACHE_DIR", str(tmp_path / "cache"))
    settings = Settings(tmp_path / "settings.json")
    settings.set("device", "cpu")
    w = MainWindow(settings, interactive=False)
    qtbot.addWidget(w)
    w.model.refresh_panes()
    open_with_faces(w, photo_file)
    assert not w.frgd_panel.resample_button.isEnabled()
    import_model(tiny_model_dir, "frgd-128")
    qtbot.waitUntil(lambda: w.frgd_panel.resample_button.isEnabled(), timeout=10000)
    assert not w.frgd_panel.notice.isVisible() and w.model_label.text() == "FRGD model: frgd-128"
    w.jobs.shutdown()


def test_before_after_split_on_the_canvas(window, photo_file):
    """View > Compare Before/After splits the main canvas (original left, shown image right); the split stays on the
    same photo column when zoomed in; a new photo turns it off and unchecks the action."""
    open_with_faces(window, photo_file)
    c = window.canvas
    window.a_split.trigger()
    assert window.a_split.isChecked() and c.compare_active
    c.set_split(0.3)
    c.zoom_by(4.0)
    c.centerOn(QPointF(0.3 * window.doc.photo.shape[1], 100.0))
    assert c.compare_active and c.split_fraction == pytest.approx(0.3)
    window.a_split.trigger()
    assert not c.compare_active and not window.a_split.isChecked()
    window.a_split.trigger()
    job = window.model.open_photo(photo_file, detect=False)  # the same file again: nothing unsaved, no question
    assert window.jobs.wait(30) and job.state == "done", job.error
    assert not c.compare_active and not window.a_split.isChecked()


# ------------------------------------------------------------------------------------------------ FRGD preview
def tiny_prior_pipeline(model_dir, with_prior: bool = True):
    """The cached CPU FRGD pipeline of ``model_dir`` (the one the editor's jobs use) with a tiny prior whose estimate
    differs from its input (a non-zero tail), or with none."""
    from frgd.archs.face_prior_arch import FacePriorNet

    pipe = backend.frgd_pipeline(model_dir, torch.device("cpu"))
    pipe.prior, pipe.prior_name = None, None
    if with_prior:
        torch.manual_seed(1)
        prior = FacePriorNet(channels=(8, 12), blocks=0, mid_blocks=0)
        with torch.no_grad():
            prior.tail.weight.normal_(0, 0.2)
            prior.tail.bias.fill_(0.1)
        pipe.prior, pipe.prior_name = prior.eval(), "tiny-prior"
    return pipe


def shown_image(window) -> np.ndarray:
    from frgd_studio.qtimage import from_qimage

    return from_qimage(window.canvas.image_item.pixmap().toImage())


def test_frgd_preview_shows_the_prior_estimate_until_the_samples_arrive(window, photo_file, tiny_model_dir):
    """Resample on a face without a mask: the prior's estimate is pasted in the face's place (the samples' paste
    path) before the samples arrive, labelled; it goes when they arrive and was never a document change."""
    from frgd.restore import paste_faces

    open_with_faces(window, photo_file)
    tiny_prior_pipeline(tiny_model_dir)
    m, doc, face = window.model, window.doc, window.doc.faces[0]
    photo = doc.photo.copy()
    statuses, seen = [], []
    m.statusMessage.connect(lambda text, _ms: statuses.append(text))
    m.previewChanged.connect(lambda: seen.append((m.preview, len(face.samples), shown_image(window),
                                                  window.canvas.badge)))  # fmt: skip
    np.testing.assert_array_equal(shown_image(window), photo)
    n = window.stack.count()
    job = resample(window, steps=2, samples=1, seed=3)
    assert job.state == "done", (job.error, window.errors)

    assert len(seen) == 2, "shown once, taken away once"
    preview, n_samples, shown, badge = seen[0]
    assert preview is not None and preview.index == 0 and preview.face is face
    assert n_samples == 0, "the preview comes before the samples"
    assert preview.image.shape == (CROP_SIZE, CROP_SIZE, 3) and preview.image.dtype == np.uint8
    assert not np.array_equal(preview.image, face.crop), "the prior's estimate, not the input"
    np.testing.assert_array_equal(shown, paste_faces(photo, [(face.crop_obj, preview.image, None)]))
    changed = np.abs(shown.astype(int) - photo.astype(int)).sum(-1) > 0
    x0, y0, x1, y1 = [int(v) for v in face.box]
    assert changed[y0:y1, x0:x1].any() and not changed[:, 230:].any(), "pasted in the face's place only"
    assert "preview" in badge and "FRGD face 1: preview (prior estimate); samples follow" in statuses

    gone, n_samples, shown, badge = seen[1]
    assert gone is None and n_samples == 1 and badge == "" and m.preview is None
    np.testing.assert_array_equal(shown, photo)
    np.testing.assert_array_equal(shown_image(window), photo)
    assert face.samples[0].parameters["base"] == "tiny-prior", "the samples started from the same estimate"
    assert window.stack.count() == n + 1, "only the samples are an undo step"
    assert face.applied is None and not doc.has_changes()
    np.testing.assert_array_equal(m.export_image("Result"), photo)


def test_frgd_preview_only_with_a_prior_and_without_a_mask(window, photo_file, tiny_model_dir):
    """No prior: no preview (a first Resample asks the loading job, later ones submit no preview job at all); a mask
    painted: the samples keep the input outside it, so no preview either."""
    open_with_faces(window, photo_file)
    m, face = window.model, window.doc.faces[0]
    names, seen = [], []
    window.jobs.started.connect(lambda j: names.append(j.name))
    m.previewChanged.connect(lambda: seen.append(m.preview))
    assert backend.frgd_has_prior(window.model.frgd.model_dir()) is None  # nothing loaded yet
    resample(window, steps=2, samples=1, seed=3)  # the tiny model has no prior of its size
    assert names == ["FRGD face 1 preview", "FRGD face 1"] and seen == [] and len(face.samples) == 1
    assert backend.frgd_has_prior(window.model.frgd.model_dir()) is False
    resample(window, steps=2, samples=1, seed=4)
    assert names[2:] == ["FRGD face 1"] and seen == []
    assert face.samples[-1].parameters["base"] == "bicubic"

    tiny_prior_pipeline(tiny_model_dir)
    m.region_mask("eyes")
    resample(window, steps=2, samples=1, seed=5)
    assert names[3:] == ["FRGD face 1"] and seen == [] and m.preview is None


def test_frgd_preview_goes_on_cancel_and_on_another_face(window, photo_file, tiny_model_dir, qtbot):
    open_with_faces(window, photo_file)
    tiny_prior_pipeline(tiny_model_dir)
    m, photo = window.model, window.doc.photo.copy()
    p = window.frgd_panel
    p.steps.setValue(400)
    p.samples.setValue(1)
    p.slider.setValue(100)  # the identity end samples all 400 steps
    for leave in ("cancel", "select"):
        job = m.frgd.run()
        qtbot.waitUntil(lambda: m.preview is not None, timeout=30000)
        assert not np.array_equal(shown_image(window), photo) and window.canvas.badge
        if leave == "select":
            m.select(-1)  # another (here: no) face
            assert m.preview is None and window.canvas.badge == ""
            np.testing.assert_array_equal(shown_image(window), photo)
        window.cancel_jobs()
        assert window.jobs.wait(60) and job.state == "cancelled"
        assert m.preview is None and window.canvas.badge == "" and window.doc.faces[0].samples == []
        np.testing.assert_array_equal(shown_image(window), photo)
        m.select(0)


def test_frgd_preview_is_a_view_state(window, photo_file, tmp_path):
    """A preview is never part of the document (not exported, not in the comparison list, no undo step) and goes when
    a sample is chosen or applied, the samples change, or another photo is opened."""
    from frgd_studio.model.document import Sample
    from frgd_studio.model.panes import FacePreview

    open_with_faces(window, photo_file)
    m, doc, face = window.model, window.doc, window.doc.faces[0]
    photo = doc.photo.copy()
    n, clean = window.stack.count(), window.stack.cleanIndex()

    def show() -> None:
        m.show_preview(FacePreview(0, face, 255 - face.crop))
        assert m.preview is not None and not np.array_equal(shown_image(window), photo)

    show()
    assert window.stack.count() == n and window.stack.cleanIndex() == clean
    np.testing.assert_array_equal(m.export_image("Result"), photo)
    assert m.export_choices() == ["Result", "Original"] and "Result" not in doc.results()
    samples = [Sample(face.crop // 2, 1, 0.5, 2), Sample(face.crop // 3, 2, 0.5, 2)]
    m.push(commands.AddSamplesCommand(doc, 0, samples))  # samples arrive
    assert m.preview is None
    show()
    window.gallery_panel.list.setCurrentRow(1)  # the user picks a sample
    assert m.preview is None
    show()
    m.apply_sample(0)
    assert m.preview is None
    show()
    job = m.open_photo(photo_file, detect=False)
    assert window.jobs.wait(30) and job.state == "done", job.error
    assert m.preview is None
    np.testing.assert_array_equal(shown_image(window), photo)


def test_the_faces_list_says_when_a_face_lies_turned(window, photo_file):
    """A face lying on its side (its landmarks turned a quarter about their centre) is listed as turned, an upright
    one is not; the label follows the landmarks, so a session reopened from them says the same."""
    job = window.model.open_photo(photo_file, detect=False)
    assert window.jobs.wait(30) and job.state == "done", job.error
    lm = np.asarray(FACE_LANDMARKS, np.float64)
    c = lm.mean(0)
    on_side = np.stack([c[0] - (lm[:, 1] - c[1]), c[1] + (lm[:, 0] - c[0])], 1)  # turned 90 degrees, as seen
    job = window.model.set_faces_from_landmarks([FACE_LANDMARKS, on_side + (60, 0)])
    assert window.jobs.wait(30) and job.state == "done", job.error
    labels = [window.faces_panel.list.item(i).text() for i in range(window.faces_panel.list.count())]
    assert len(labels) == 2 and sum("turned 90°" in t for t in labels) == 1
    assert [f.turn for f in window.doc.faces] in ([0, 1], [1, 0])
    faces = window.model.provenance().parameters["faces"]  # what an export's metadata says of each face
    assert [e.get("turn_degrees") for e in faces] == [90 if f.turn else None for f in window.doc.faces]


def test_damage_tool_paints_the_photo_and_reaches_the_result_and_the_sampler(window, photo_file, qtbot, tmp_path):
    """The Damage tool (D) paints the photo's damage layer, on a face or not (no face needed), not a mask: one undo
    step per stroke holding the rectangle it touched, a cyan overlay; a job fills the marks and the result is built
    on the fill (the photo elsewhere); the eraser then erases damage (after the Brush it erases the mask again);
    Clear Damage is one undo step; a Resample samples with the damage in the face's crop frame; a session keeps it;
    an export made before the fill ended waits for it and says so in its metadata."""
    from frgd.io import read_provenance
    from frgd_studio.qtimage import DAMAGE_COLOR

    job = window.model.open_photo(photo_file, detect=False)
    assert window.jobs.wait(30) and job.state == "done", job.error
    canvas, doc = window.canvas, window.doc
    photo = doc.photo
    window.set_tool("damage")
    window.set_brush_size(3.0)
    stroke(canvas, [(200, 170), (225, 170)])  # the background, before any face is found
    assert window.stack.count() == 1 and window.stack.text(0) == "Paint damage", window.errors
    assert doc.damage[170, 212] > 200 and doc.damage[150, 212] == 0
    assert canvas.damage_overlay_color(212, 170)[:3] == DAMAGE_COLOR and canvas.damage_overlay_color(212, 170)[3] > 100
    assert canvas.damage_overlay_color(212, 150)[3] == 0
    assert window.jobs.wait(30) and doc.repair_current()
    result = window.model.export_image("Result")
    marked = doc.damage > 127
    assert (result[marked] != photo[marked]).any() and np.array_equal(result[~marked], photo[~marked])

    open_with_faces(window, photo_file)  # a new photo: the damage went with the old one
    assert doc.damage is None and not canvas.damage_items
    face = doc.faces[0]
    cx, cy = FACE_LANDMARKS[2]
    n0 = window.stack.count()
    stroke(canvas, [(cx - 15, cy), (cx, cy), (cx + 15, cy), (235, cy)])  # across the face and out of it
    assert window.stack.count() == n0 + 1 and window.stack.text(n0) == "Paint damage"
    assert doc.damage[int(cy), int(cx)] > 200 and doc.damage[int(cy), 230] > 200 and face.mask.max() == 0.0
    crop = doc.face_damage(0)
    u, v = (int(round(t)) for t in face.to_crop(cx, cy))
    assert crop is not None and crop[v, u] == 1.0 and crop[0, 0] == 0.0
    damage = doc.damage.copy()
    cmd = window.stack.command(n0).command  # the undo step holds the stroke's rectangle, not the photo
    assert cmd.box[0] <= int(cy) < cmd.box[1] and cmd.after.size < damage.size / 4

    window.set_tool("eraser")
    stroke(canvas, [(cx, cy)])
    assert doc.damage[int(cy), int(cx)] < 50 and window.stack.text(n0 + 1) == "Erase damage"
    window.stack.undo()
    np.testing.assert_array_equal(doc.damage, damage)
    window.set_tool("brush")
    stroke(canvas, [(cx, cy - 30)])
    window.set_tool("eraser")
    stroke(canvas, [(cx, cy - 30)])
    assert window.stack.text(window.stack.index() - 1) == "Erase mask"
    np.testing.assert_array_equal(doc.damage, damage)

    window.model.clear_damage()
    assert not doc.damage_marked() and not canvas.damage_items
    window.stack.undo()
    np.testing.assert_array_equal(doc.damage, damage)
    assert window.a_clear_damage.isEnabled()
    window.model.clear_mask()
    resample(window, steps=2, samples=1, seed=3)
    params = doc.faces[0].samples[-1].parameters
    assert params["damage"] >= float(doc.face_damage(0).mean()) * 0.5 > 0  # at the tiny model's size
    tip = window.gallery_panel.list.item(window.gallery_panel.list.count() - 1).toolTip()
    assert f"{100 * params['damage']:.1f} % of the face marked damaged" in tip, tip

    assert window.jobs.wait(30) and doc.repair_current()
    job = window.model.save_session(tmp_path / "d.frgd")
    assert window.jobs.wait(60) and job.state == "done", job.error
    w2 = MainWindow(window.settings, interactive=False)
    qtbot.addWidget(w2)
    job = w2.model.open_session(job.result)
    assert w2.jobs.wait(60) and job.state == "done", job.error
    np.testing.assert_array_equal(w2.doc.damage, damage)
    assert w2.doc.repair_current() and w2.doc.repaired is not None  # the fill ran after the load
    np.testing.assert_array_equal(w2.doc.repaired, doc.repaired)
    w2.jobs.shutdown()

    window.set_tool("damage")
    stroke(canvas, [(10, 190), (60, 190)])  # new marks: the export waits for their fill
    assert not doc.repair_current()
    out = tmp_path / "exported.png"
    assert window.model.export(out, "Result") is None and "export follows" in window.statusBar().currentMessage()
    assert window.jobs.wait(60) and out.is_file(), window.errors
    from frgd.io import load_rgb

    exported, marked = load_rgb(out), doc.damage > 127
    assert doc.repair_current() and marked[190, 30]
    np.testing.assert_array_equal(exported, window.model.export_image("Result"))
    assert (exported[marked] != photo[marked]).any()
    assert read_provenance(out)["parameters"]["damage_filled"] == round(doc.damage_share(), 6) > 0


def test_shift_click_paints_a_straight_line_and_damage_masks_import_and_export(window, photo_file, tmp_path):
    """Shift+click paints a straight line from where the last stroke ended (one undo step); a damage mask image
    (photo-sized, white = damaged) adds to the marks in one undo step, a mask of another size is refused with both
    sizes, and Export Damage Mask writes the marks back as the ``--damage`` image of the CLI."""
    from PIL import Image

    from frgd.io import load_mask

    job = window.model.open_photo(photo_file, detect=False)
    assert window.jobs.wait(30) and job.state == "done", job.error
    canvas, doc, vp = window.canvas, window.doc, window.canvas.viewport()
    window.set_tool("damage")
    window.set_brush_size(2.0)
    stroke(canvas, [(20, 20)])
    assert doc.damage[20, 20] > 127 and doc.damage[20, 120] == 0
    n = window.stack.count()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, view_point(canvas, 220, 20))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, view_point(canvas, 220, 20))
    assert window.stack.count() == n + 1 and window.stack.text(n) == "Paint damage"
    assert (doc.damage[20, 20:221] > 127).all() and doc.damage[30, 120] == 0  # the whole line, and only it
    window.stack.undo()
    assert doc.damage[20, 120] == 0 and doc.damage[20, 20] > 127
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(canvas, 100, 150))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(canvas, 100, 150))
    assert doc.damage[20, 120] == 0 and doc.damage[100, 60] == 0  # a plain click is a dab, not a line

    mask = np.zeros((200, 240), np.uint8)
    mask[150:153, 10:200] = 255
    Image.fromarray(mask).save(tmp_path / "scratch.png")
    n = window.stack.count()
    job = window.model.import_damage(tmp_path / "scratch.png")
    assert window.jobs.wait(30) and job.state == "done", job.error
    assert window.stack.count() == n + 1 and window.stack.text(n) == "Import damage (scratch.png)"
    assert (doc.damage[150:153, 10:200] == 255).all() and doc.damage[20, 20] > 127  # added to what was painted
    Image.fromarray(mask[:100]).save(tmp_path / "small.png")
    job = window.model.import_damage(tmp_path / "small.png")
    assert window.jobs.wait(30) and job.state == "failed"
    assert "small.png is 240x100; a damage mask is the photo's size, 240x200" in window.errors[-1]
    assert window.stack.count() == n + 1

    job = window.model.export_damage(tmp_path / "marks.png")
    assert window.jobs.wait(30) and job.state == "done", job.error
    np.testing.assert_array_equal(load_mask(job.result) > 0.5, doc.damage > 127)
    window.model.clear_damage()
    assert window.model.export_damage(tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_detect_damage_button_marks_a_drawn_crack_with_the_shipped_detector(window, tmp_path):
    """The Faces panel's Detect damage (Run > Detect Damage) with the shipped detector: on a photo with a paper-white
    crack drawn across it, most of the crack is marked (cyan) as one undo step, little else is, and Undo takes the
    marks away."""
    import cv2
    from PIL import Image

    from frgd.errors import MissingWeightsError
    from frgd.scratch import load_detector

    try:
        load_detector()
    except MissingWeightsError as err:
        pytest.skip(f"no damage detector installed: {err}")
    yy, xx = np.mgrid[0:200, 0:240].astype(np.float32)
    img = np.stack([0.45 + 0.1 * np.sin(xx / 11), 0.35 + 0.1 * np.cos(yy / 9), 0.3 + 0.0005 * xx], -1)
    img = np.round(img * 255).astype(np.uint8)
    crack = np.zeros((200, 240), np.uint8)
    pts = np.array([[10, 40], [60, 52], [95, 47], [140, 90], [180, 96], [230, 150]], np.int32)
    cv2.polylines(crack, [pts.reshape(-1, 1, 2)], False, 255, 2)
    img[crack > 0] = (236, 228, 205)
    Image.fromarray(img).save(tmp_path / "cracked.png")
    job = window.model.open_photo(tmp_path / "cracked.png", detect=False)
    assert window.jobs.wait(30) and job.state == "done", job.error
    assert window.a_detect_damage.isEnabled() and window.faces_panel.detect_damage_button.isEnabled()
    n = window.stack.count()
    window.faces_panel.detect_damage_button.click()
    assert window.jobs.wait(60)
    doc = window.doc
    assert window.stack.count() == n + 1 and window.stack.text(n) == "Detect damage"
    marks = doc.damage > 127
    assert marks[crack > 0].mean() > 0.7, marks[crack > 0].mean()
    far = cv2.dilate(crack, np.ones((9, 9), np.uint8)) == 0
    assert marks[far].mean() < 0.01
    window.stack.undo()
    assert not doc.damage_marked()


def test_gallery_tooltip_says_what_the_sample_made_of_its_input():
    """The prior's share of the content target and the damaged share, as the sample's parameters record them."""
    from frgd_studio.model.document import Sample
    from frgd_studio.panels.gallery import _input_notes

    img = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
    s = Sample(img, 1, 0.5, 15, parameters={"prior_share": {"source": "estimated", "values": [0.42]}, "damage": 0.031})
    assert _input_notes(s) == [
        "held to 58 % photo, 42 % cleaned estimate (estimated)",
        "3.1 % of the face marked damaged: ignored and filled",
    ]
    given = Sample(img, 1, 0.5, 15, parameters={"prior_share": {"source": "given", "values": [1.0]}, "damage": None})
    assert _input_notes(given) == ["held to 0 % photo, 100 % cleaned estimate (set by Input)"]
    assert _input_notes(Sample(img, 1, 0.5, 15)) == []


def test_a_turn_arriving_mid_stroke_waits_for_the_release(window, photo_file, qtbot):
    """Image > Rotate clicked while a damage stroke is painted (the turn is made on the io lane and is ready
    mid-drag): the stroke is painted where it was drawn, the turn lands at the release, and each of the two undo steps
    undoes exactly. Undo during a drag takes the stroke back; a move with no button down (its release went to a
    dialog) ends a stroke, and so does the canvas losing the focus."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QFocusEvent, QMouseEvent
    from PySide6.QtWidgets import QApplication

    open_with_faces(window, photo_file)
    canvas, doc, vp, model = window.canvas, window.doc, window.canvas.viewport(), window.model
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    window.set_tool("damage")
    window.set_brush_size(2.0)
    assert window.jobs.wait(30)
    n = window.stack.count()
    QTest.mousePress(vp, left, none, view_point(canvas, 20, 150))
    window.a_rotate[-1].trigger()
    qtbot.waitUntil(lambda: bool(window.jobs.held), timeout=30000)
    assert doc.turn == 0 and model.stroking
    QTest.mouseMove(vp, view_point(canvas, 60, 150))
    QTest.mouseRelease(vp, left, none, view_point(canvas, 60, 150))
    assert window.jobs.wait(30) and doc.turn == 3 and not model.stroking
    assert [window.stack.text(i) for i in range(n, window.stack.count())] == ["Paint damage", "Rotate 90° clockwise"]
    drawn = np.rot90(doc.damage, 1)  # the marks in the photo as it was drawn on
    assert drawn.shape == (200, 240) and drawn[150, 20:61].min() > 0 and drawn[:140].max() == 0
    window.a_undo.trigger()
    assert doc.turn == 0 and doc.damage[150, 20:61].min() > 0
    window.a_undo.trigger()
    assert window.stack.count() == n + 2 and not doc.damage_marked()

    QTest.mousePress(vp, left, none, view_point(canvas, 30, 100))
    QTest.mouseMove(vp, view_point(canvas, 50, 100))
    assert model.stroking and doc.damage_marked()
    window.a_undo.trigger()  # Ctrl+Z during the drag
    assert not model.stroking and not doc.damage_marked() and window.stack.text(window.stack.index()) == "Paint damage"
    QTest.mouseMove(vp, view_point(canvas, 80, 100))
    QTest.mouseRelease(vp, left, none, view_point(canvas, 80, 100))
    assert not doc.damage_marked(), "the rest of the drag painted nothing"

    for lose in ("move", "focus"):
        QTest.mousePress(vp, left, none, view_point(canvas, 30, 60))
        assert model.stroking
        if lose == "move":
            pos = QPointF(view_point(canvas, 40, 60))
            event = QMouseEvent(QEvent.Type.MouseMove, pos, canvas.mapToGlobal(pos), Qt.MouseButton.NoButton,
                                Qt.MouseButton.NoButton, none)  # fmt: skip
            QApplication.sendEvent(vp, event)
        else:
            QApplication.sendEvent(canvas, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.ActiveWindowFocusReason))
        assert not model.stroking, lose
        QTest.mouseRelease(vp, left, none, view_point(canvas, 40, 60))
        assert window.stack.text(window.stack.index() - 1) == "Paint damage"


def test_image_rotate_in_the_window(window, photo_file):
    """Image > Rotate 90° clockwise turns what the canvas shows (its scene is the turned photo's, the face outline
    and the damage overlay follow) as one undo step, and Undo turns it back."""
    open_with_faces(window, photo_file)
    canvas, doc = window.canvas, window.doc
    window.set_tool("damage")
    window.set_brush_size(2.0)
    stroke(canvas, [(230, 10)])  # the top right corner
    assert canvas.damage_overlay_color(230, 10)[3] > 0
    n = window.stack.count()
    window.a_rotate[-1].trigger()
    assert window.jobs.wait(30) and window.stack.count() == n + 1 and window.stack.text(n) == "Rotate 90° clockwise"
    assert doc.photo.shape[:2] == (240, 200) and canvas.sceneRect().width() == 200
    assert canvas.damage_overlay_color(189, 230)[3] > 0 and canvas.damage_overlay_color(10, 230)[3] == 0
    poly = canvas.face_items[0][0].polygon()
    xs = [poly.at(i).x() for i in range(poly.count())]
    assert max(xs) <= 200.5  # the outline lies in the turned photo
    window.stack.undo()
    assert doc.photo.shape[:2] == (200, 240) and canvas.sceneRect().width() == 240 and doc.turn == 0
    assert canvas.damage_overlay_color(230, 10)[3] > 0


def test_file_menu_exports_faces_and_imports_a_result(window, photo_file, tmp_path, monkeypatch):
    """File > Export Faces asks for a folder and, where this photo's face files are already, whether to replace
    them; File > Import Face Result makes the chosen crop the selected face's result and a gallery entry (a patch
    source like any sample), one undo step on the window's stack."""
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    assert not window.a_export_faces.isEnabled() and not window.a_import_face.isEnabled()  # no photo yet
    open_with_faces(window, photo_file)
    assert window.a_export_faces.isEnabled() and window.a_import_face.isEnabled()
    file_menu = window.menuBar().actions()[0].menu()
    assert {window.a_export_faces, window.a_import_face} <= set(file_menu.actions())
    folder = tmp_path / "faces"
    folder.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    window.export_faces_dialog()
    assert window.jobs.wait(30) and (folder / "photo_faces.json").is_file(), window.errors
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    stamp = (folder / "photo_faces.json").stat().st_mtime_ns
    window.export_faces_dialog()  # No: nothing written
    assert window.jobs.wait(30) and (folder / "photo_faces.json").stat().st_mtime_ns == stamp
    assert len(asked) == 1 and "already holds 2 face file(s) of photo" in asked[0]

    crop = window.doc.faces[0].crop.copy()
    crop[40:90, 40:90] = (10, 200, 30)  # retouched
    from PIL import Image

    Image.fromarray(crop).save(tmp_path / "mine.png")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(tmp_path / "mine.png"), ""))
    n = window.stack.count()
    window.import_face_dialog()
    assert window.jobs.wait(30) and window.stack.count() == n + 1, window.errors
    assert window.stack.text(n) == "Import face 1 result (mine.png)"
    np.testing.assert_array_equal(window.doc.faces[0].applied, crop)
    item = window.gallery_panel.list.item(0)
    assert item.text() == "imported ✓\nmine.png" and "sha256" in item.toolTip()
    window.stack.undo()
    assert window.doc.faces[0].applied is None and window.gallery_panel.list.count() == 0
