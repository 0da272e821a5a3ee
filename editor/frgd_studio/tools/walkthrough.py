"""Scripted walkthrough of the editor: drive the real window through the issue's six checks, with screenshots.

Run under a virtual X server (Debian: ``apt-get install xvfb xauth``)::

    xvfb-run -a -s "-screen 0 1680x1050x24" python -m frgd_studio.tools.walkthrough --out docs/walkthrough

Steps (each checked: a failed expectation ends the run with ``SystemExit`` naming the step; the window is grabbed
after each step as ``NN_<step>.webp``, lossless, :mod:`.grabs`):

1. ``start_on_demo``: open the demo photo + reference: faces detected, reference added.
2. ``unsaved_prompt``: a mask edit, then open another photo: the unsaved-changes question is asked; Cancel keeps the
   photo; the real Save/Discard/Cancel box is shown (grabbed with the window), Discard opens the other photo.
3. ``import_ready``: the FRGD model missing (empty weights cache, the shipped folder hidden): the pane shows the
   message and Import…; the Import… button imports a model folder and the pane is ready without a restart. Download
   of GFPGAN is tried too (offline: its one-line error is recorded).
4. ``split_compare``: FRGD on the face, a sample applied, View > Compare Before/After, zoomed ~3x on the face with
   the split line across it.
5. ``export``: the Export dialog names what it saves; the export is written with provenance metadata.
6. ``esc_cancels_sr``: an SR upscale (``frgd-sr`` ×4 on a large photo) runs; a real Esc key press cancels it; the
   time from the key press to the job's ``cancelled`` state must be under 1 s.

Everything runs in temporary folders: settings (``FRGD_CONFIG_DIR``) and the weights cache (``FRGD_CACHE_DIR``)
start empty, so the user's files are untouched. ``walkthrough.json`` holds each step's checks and measured facts and
``README.md`` lists them. ``--tiny-random`` uses a tiny *untrained* FRGD model (its samples only show the workflow).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .grabs import GRAB_SUFFIX, save_grab

logger = logging.getLogger(__name__)

CANCEL_LIMIT_S = 1.0
"""Esc must bring a running SR job to ``cancelled`` within this many seconds."""
ENV_KEYS = ("FRGD_CONFIG_DIR", "FRGD_CACHE_DIR", "FRGD_OFFLINE")
MAX_GRAB_BYTES = 150_000
"""A screenshot's byte limit (:func:`.grabs.save_grab` reduces it to a palette past it): screenshots are committed,
and the repository travels to every training round within an upload limit."""


class StepFailed(Exception):
    """A step's expectation did not hold."""


class Walkthrough:
    """Runs the steps on one window: checks, facts, screenshots and the JSON record."""

    def __init__(self, app: Any, window: Any, out: Path, tmp: Path, size: tuple[int, int] | None = None) -> None:
        self.app, self.window, self.out, self.tmp = app, window, out, tmp
        self.size = size
        self.steps: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------------ plumbing
    def pump(self, seconds: float = 0.0) -> None:
        """Process events for ``seconds`` (at least once)."""
        end = time.monotonic() + seconds
        while True:
            self.app.processEvents()
            if time.monotonic() >= end:
                return
            time.sleep(0.01)

    def settle(self, timeout: float = 600.0) -> None:
        """Wait until no job runs and none was started by the last callbacks (chains: open -> detect -> reference)."""
        t0 = time.monotonic()
        quiet = 0
        while quiet < 3:
            self.app.processEvents()
            quiet = quiet + 1 if not self.window.jobs.busy else 0
            if time.monotonic() - t0 > timeout:
                raise StepFailed(f"jobs still running after {timeout:.0f} s: {[j.name for j in self.window.jobs.jobs]}")
            time.sleep(0.03)

    def wait_until(self, cond: Callable[[], bool], timeout: float, what: str) -> float:
        """Pump events until ``cond()``; returns the seconds it took; :class:`StepFailed` after ``timeout``."""
        t0 = time.perf_counter()
        while not cond():
            if time.perf_counter() - t0 > timeout:
                raise StepFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            self.app.processEvents()
            time.sleep(0.005)
        return time.perf_counter() - t0

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        """Record the expectation ``what``; :class:`StepFailed` when it does not hold."""
        assert self.current is not None
        if not ok:
            raise StepFailed(f"{what}{': ' + detail if detail else ''}")
        self.current["checks"].append(what)

    def fact(self, **facts: Any) -> None:
        assert self.current is not None
        self.current["facts"].update(facts)

    def grab(self, *overlays: Any) -> None:
        """Save the window (with ``overlays``: dialogs drawn where they are shown) as the step's screenshot
        ``NN_<step>.webp``, recorded under ``screenshot``."""
        from PySide6.QtGui import QPainter

        assert self.current is not None
        if self.size is not None:  # back to the chosen size (a pane's message may have grown the window)
            self.window.resize(*self.size)
        self.pump(0.15)
        size = self.window.size()
        self.current.setdefault("window_sizes", []).append([size.width(), size.height()])
        pix = self.window.grab()
        if overlays:
            painter = QPainter(pix)
            for w in overlays:
                top_left = self.window.mapFromGlobal(w.frameGeometry().topLeft())
                if not pix.rect().contains(top_left):  # offscreen: no window manager placed it; centre it
                    top_left.setX((pix.width() - w.width()) // 2)
                    top_left.setY((pix.height() - w.height()) // 3)
                painter.drawPixmap(top_left, w.grab())
            painter.end()
        name = f"{len(self.steps):02d}_{self.current['name']}{GRAB_SUFFIX}"
        try:
            save_grab(pix, self.out / name, MAX_GRAB_BYTES)
        except OSError as err:
            raise StepFailed(f"could not write {self.out / name}: {err}") from err
        self.current["screenshot"] = name

    @contextlib.contextmanager
    def step(self, name: str, title: str, errors_expected: bool = False) -> Iterator[dict[str, Any]]:
        """One step: its record is kept whatever happens; a failure is re-raised as :class:`StepFailed`. An error
        the editor reports fails the step unless ``errors_expected``."""
        rec: dict[str, Any] = {"step": len(self.steps) + 1, "name": name, "title": title, "passed": False,
                               "checks": [], "facts": {}, "screenshot": None}  # fmt: skip
        self.steps.append(rec)
        self.current = rec
        logger.info("step %d: %s", rec["step"], title)
        t0 = time.perf_counter()
        try:
            yield rec
            if self.window.errors and not errors_expected:
                raise StepFailed(f"the editor reported: {' | '.join(self.window.errors)}")
        except StepFailed as err:
            rec["error"] = str(err)
            raise
        except Exception as err:
            rec["error"] = f"{type(err).__name__}: {err}"
            raise StepFailed(rec["error"]) from err
        finally:
            rec["seconds"] = round(time.perf_counter() - t0, 2)
            rec["errors_shown"] = list(self.window.errors)
            self.window.errors.clear()
        rec["passed"] = True


# ---------------------------------------------------------------------------------------------------------- steps
def step_start_on_demo(wt: Walkthrough) -> None:
    from frgd_studio.app import demo_paths

    w = wt.window
    with wt.step("start_on_demo", "Start on the demo photo and reference"):
        photo, ref = demo_paths()
        wt.check(ref is not None, "the demo reference is installed")
        w.model.open_photo(photo, reference=str(ref))
        wt.settle()
        wt.check(w.doc.photo_path is not None and Path(w.doc.photo_path).name == photo.name,
                 f"the demo photo {photo.name} is open", str(w.doc.photo_path))  # fmt: skip
        wt.check(len(w.doc.faces) >= 1, "a face is detected", f"errors: {w.errors}")
        wt.check(len(w.canvas.face_items) == len(w.doc.faces), "every face is outlined on the canvas")
        refs = w.doc.faces[0].references
        wt.check(len(refs) == 1 and Path(refs[0].path).name == ref.name, "the demo reference is added to face 1")
        score = refs[0].score
        wt.fact(photo=photo.name, size=list(w.doc.photo.shape[1::-1]), faces=len(w.doc.faces), reference=ref.name,
                reference_score=None if score is None else round(float(score), 3))  # fmt: skip
        w.canvas.fit()
        screen = w.screen().availableGeometry()
        wt.fact(screen=[screen.width(), screen.height()], window=[w.width(), w.height()],
                window_minimum=[w.minimumSizeHint().width(), w.minimumSizeHint().height()],
                window_fits_screen=w.width() <= screen.width() and w.height() <= screen.height())  # fmt: skip
        wt.grab()


def _find_box(app: Any, cls: type) -> Any:
    return next((b for b in app.topLevelWidgets() if isinstance(b, cls) and b.isVisible()), None)


def step_unsaved_prompt(wt: Walkthrough) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from frgd_studio import dialogs
    from frgd_studio.app import demo_paths

    w, m = wt.window, wt.window.model
    with wt.step("unsaved_prompt", "Unsaved changes, then open another photo: the question is asked"):
        photo, ref = demo_paths()
        m.region_mask("eyes")
        wt.check(m.modified and w.doc.faces[0].mask.max() > 0.5, "the eye mask is an unsaved edit")
        wt.check(w.windowTitle().startswith(f"{photo.name} *"), "the title marks the unsaved edit", w.windowTitle())
        asked: list[str] = []
        m.ask_unsaved = lambda title: asked.append(title) or "cancel"
        job = m.open_photo(ref)
        wt.settle()
        wt.check(asked == [w.doc.title()], "opening another photo asks about the unsaved edits", repr(asked))
        wt.check(job is None and Path(w.doc.photo_path).name == photo.name and w.doc.faces[0].mask.max() > 0.5,
                 "Cancel keeps the photo and its mask")  # fmt: skip

        # the real question box (dialogs.ask_unsaved runs it modally): grabbed with the window, then Discard
        seen: dict[str, Any] = {}

        def answer() -> None:
            box = _find_box(wt.app, QMessageBox)
            if box is None:
                return
            seen["ticks"] = seen.get("ticks", 0) + 1
            if seen["ticks"] < 3:  # let it lay out and paint
                return
            timer.stop()
            try:
                seen["text"] = f"{box.text()} {box.informativeText()}"
                seen["buttons"] = [b.text().replace("&", "") for b in box.buttons()]
                wt.grab(box)
            except Exception as err:  # raised after the modal box is closed (a slot must not leave it open)
                seen["error"] = err
            finally:
                box.button(QMessageBox.StandardButton.Discard).click()

        timer = QTimer()
        timer.timeout.connect(answer)
        timer.start(50)
        m.ask_unsaved = lambda title: asked.append(title) or dialogs.ask_unsaved(w, title)
        job = m.open_photo(ref, detect=False)
        timer.stop()
        if "error" in seen:
            raise seen["error"]
        wt.settle()
        wt.check("unsaved changes" in seen.get("text", ""), "the real dialog asks about unsaved changes",
                 repr(seen))  # fmt: skip
        wt.check({"Save", "Discard", "Cancel"} <= set(seen["buttons"]), "it offers Save, Discard and Cancel",
                 repr(seen["buttons"]))  # fmt: skip
        wt.check(job is not None and job.state == "done" and Path(w.doc.photo_path).name == ref.name,
                 "Discard opens the other photo", f"{job and job.state}, {w.doc.photo_path}")  # fmt: skip
        wt.check(not m.modified, "the new photo has no unsaved edits")
        wt.fact(question=seen["text"], buttons=seen["buttons"], answers=["cancel", "discard"], opened=ref.name)
        # back to the demo for the next steps (nothing unsaved: no question)
        n = len(asked)
        m.ask_unsaved = lambda title: asked.append(title) or "discard"
        m.open_photo(photo, reference=str(ref))
        wt.settle()
        wt.check(len(asked) == n and len(w.doc.faces) >= 1, "the demo reopens without a question")


def step_import_ready(wt: Walkthrough, model_folder: Path, offline: bool) -> None:
    import frgd.weights.paths as wpaths
    from frgd_studio.model.panes import FRGD_ENTRY

    w, m = wt.window, wt.window.model
    with wt.step("import_ready", "FRGD model missing: Import… makes the pane ready without a restart",
                 errors_expected=True):  # fmt: skip
        real = wpaths._resource_dir
        wpaths._resource_dir = lambda entry: None if entry.name == FRGD_ENTRY else real(entry)
        try:
            wt.check(w.settings.get("frgd_model") == "", "no model folder is chosen")
            m.refresh_panes()
            st = m.frgd.status()
            wt.check(not st.ready and FRGD_ENTRY in (st.message or ""), "the FRGD pane says the model is missing",
                     str(st.message))  # fmt: skip
            box = w.frgd_panel.weights
            key = f"import:{FRGD_ENTRY}"
            wt.check(key in box.buttons and box.notice.isVisible(), "it shows the message and Import…",
                     repr(list(box.buttons)))  # fmt: skip
            wt.check(not w.frgd_panel.resample_button.isEnabled(), "Resample is disabled")
            wt.check(w.model_label.text() == "FRGD model: not installed", "the status bar says not installed")
            gfp = w.gfpgan_panel.weights.buttons
            dl = next((k for k in gfp if k.startswith("download:")), None)
            wt.check(dl is not None and any(k.startswith("import:") for k in gfp),
                     "the GFPGAN pane offers Download and Import…", repr(list(gfp)))  # fmt: skip
            wt.fact(missing_message=st.message, frgd_buttons=[b.text() for b in box.buttons.values()],
                    gfpgan_buttons=[b.text() for b in gfp.values()])  # fmt: skip
            w.docks["FRGD"].raise_()
            w.docks["GFPGAN"].raise_()
            wt.grab()  # the missing state and its buttons (the ready state is checked, not shown)

            # Download (GFPGAN): offline here, it fails at once with a one-line message
            jobs: list[Any] = []
            w.jobs.started.connect(jobs.append)
            gfp[dl].click()
            t0 = time.perf_counter()
            job = jobs[-1]
            try:
                wt.wait_until(lambda: job.is_finished, 20.0, "the download to end")
            except StepFailed:
                job.cancel()  # online: a real download started; stop it (cancel is checked per chunk)
                wt.wait_until(lambda: job.is_finished, 60.0, "the download to stop")
            wt.settle()
            message = job.error or job.state
            wt.check(job.state in ("failed", "cancelled", "done"), "Download ends (offline: with an error)", job.state)
            if job.state == "failed":
                wt.check("cannot download" in message and "frgd weights import" in message,
                         "the download error names the import alternative", message)  # fmt: skip
            wt.fact(download_entry=dl.split(":", 1)[1], download_state=job.state, download_message=message,
                    download_seconds=round(time.perf_counter() - t0, 2), offline_mode=offline)  # fmt: skip

            # Import…: the button asks for the folder (answered here) and imports it as frgd-128
            asked: list[str] = []
            w.ui.open_folder = lambda title: asked.append(title) or str(model_folder)
            changes: list[bool] = []
            m.frgd.changed.connect(lambda: changes.append(m.frgd.status().ready))
            box.buttons[key].click()
            wt.settle()
            st = m.frgd.status()
            wt.check(len(asked) == 1, "Import… asks for the model folder", repr(asked))
            wt.check(st.ready and st.model == FRGD_ENTRY, "the FRGD pane is ready after the import", str(st))
            wt.check(changes and changes[-1] is True, "the pane turned ready in the running window (no restart)")
            wt.check(box.buttons == {} and not box.notice.isVisible(), "the message and buttons are gone")
            wt.check(w.frgd_panel.resample_button.isEnabled(), "Resample is enabled")
            wt.check(w.model_label.text() == f"FRGD model: {FRGD_ENTRY}", "the status bar names the model",
                     w.model_label.text())  # fmt: skip
            installed = Path(m.frgd.model_dir() or "")
            wt.check(installed.is_relative_to(Path(os.environ["FRGD_CACHE_DIR"])),
                     "the pane uses the imported copy in the weights cache", str(installed))  # fmt: skip
            wt.fact(imported_from=str(model_folder.name), installed_at=str(Path(m.frgd.model_dir() or "").name),
                    folder_question=asked[0])  # fmt: skip
        finally:
            wpaths._resource_dir = real
            m.refresh_panes()


def step_split_compare(wt: Walkthrough, steps: int, samples: int, seed: int) -> None:
    from PySide6.QtCore import QPointF

    w, m = wt.window, wt.window.model
    with wt.step("split_compare", "FRGD sample applied; canvas split compare zoomed in on the face"):
        for key, value in (("steps", steps), ("samples", samples), ("seed", seed), ("lock_seed", True),
                           ("identity_strength", 0.6)):  # fmt: skip
            m.frgd.set_param(key, value)
        m.region_mask("eyes")
        t0 = time.perf_counter()
        job = m.frgd.run()
        wt.check(job is not None, "Resample starts an FRGD job", repr(w.errors))
        wt.settle()
        face = w.doc.faces[0]
        wt.check(job.state == "done" and len(face.samples) == samples, f"FRGD made {samples} sample(s)",
                 f"{job.state}: {job.error}")  # fmt: skip
        w.gallery_panel.list.setCurrentRow(len(face.samples) - 1)  # the last sample
        w.gallery_panel.apply_button.click()
        wt.check(face.applied is not None, "a sample is applied to the face")
        w.a_mask.setChecked(False)  # View > Show Mask off: the result itself on both sides of the line
        w.canvas.fit()
        w.a_split.trigger()  # View > Compare Before/After
        c = w.canvas
        wt.check(w.a_split.isChecked() and c.compare_active, "View > Compare Before/After splits the canvas")
        x0, y0, x1, y1 = (float(v) for v in face.box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        c.set_split(cx / w.doc.photo.shape[1])
        z0 = c.zoom()
        c.zoom_by(3.0)
        c.centerOn(QPointF(cx + 0.5, cy + 0.5))
        wt.pump(0.1)
        zoom = c.zoom() / z0
        wt.check(2.5 <= zoom <= 3.5, "zoomed in about 3x from fit", f"{zoom:.2f}x")
        line = c.mapFromScene(QPointF(c.split_fraction * w.doc.photo.shape[1], cy))
        wt.check(c.viewport().rect().contains(line), "the split line crosses the face in view")
        wt.check(c.compare_active and abs(c.split_fraction - cx / w.doc.photo.shape[1]) < 1e-6,
                 "the split stays on when zoomed")  # fmt: skip
        sample = face.applied_sample()
        seed = None if sample is None or sample.seed is None else int(sample.seed)
        wt.fact(frgd_seconds=round(time.perf_counter() - t0, 1), steps=steps, samples=samples,
                applied_seed=seed, zoom_from_fit=round(zoom, 2),
                zoom_percent=round(100 * c.zoom()), split_fraction=round(c.split_fraction, 3),
                labels=[c.split.before_name, c.split.after_name])  # fmt: skip
        wt.grab()


def step_export(wt: Walkthrough) -> None:
    from frgd.io import read_provenance
    from frgd_studio import dialogs

    w, m = wt.window, wt.window.model
    with wt.step("export", "Export names what it saves; the file carries provenance"):
        dlg = dialogs.ExportDialog(m, w)
        dlg.show()
        wt.pump(0.2)
        text = dlg.description.text()
        h, wd = w.doc.composite().shape[:2]  # the result's size: the photo's times Size (Auto: the face's 1:1)
        scale = w.doc.result_scale
        wt.check((h, wd) == (w.doc.photo.shape[0] * scale, w.doc.photo.shape[1] * scale),
                 "the result is Size times the photo", f"{wd}×{h}, ×{scale}")  # fmt: skip
        wt.check(dlg.choice() == "Result", "Export offers the Result first", dlg.choice())
        wt.check(text.startswith("Result:") and "restored with FRGD" in text, "the dialog names the result", text)
        wt.check(f"{wd}×{h}" in text and "identity changed: yes" in text, "it names the size and the identity flag",
                 text)  # fmt: skip
        wt.grab(dlg)
        choice = dlg.choice()
        dlg.close()
        dlg.deleteLater()
        job = m.export(wt.tmp / "export" / "astronaut_frgd.png", choice)
        if job is not None:
            wt.settle(60.0)
        out = None if job is None else job.result
        wt.check(out is not None and Path(out).is_file(), "the export is written (a job)", repr(w.errors))
        prov = read_provenance(out) or {}
        wt.check(prov.get("identity_changed") is True, "its provenance says identity_changed", repr(prov))
        wt.check(prov.get("source_hash") == w.doc.photo_sha256, "its provenance names the source photo")
        wt.check(bool(prov.get("model")), "its provenance names the model", repr(prov.get("model")))
        params = prov.get("parameters") or {}
        wt.check(params.get("scale") == scale, "its provenance names the result's scale", repr(params.get("scale")))
        wt.fact(description=text, status=w.statusBar().currentMessage(), result_scale=scale,
                provenance={k: prov.get(k) for k in ("model", "seed", "identity_changed", "source_hash")},
                background=params.get("sr_model"))  # fmt: skip


def step_esc_cancels_sr(wt: Walkthrough, size: int) -> None:
    from PIL import Image
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from frgd_studio.app import demo_paths

    w, m = wt.window, wt.window.model
    with wt.step("esc_cancels_sr", "Esc cancels a running super-resolution job within 1 s"):
        photo, _ref = demo_paths()
        big = wt.tmp / f"astronaut_{size}.png"
        with Image.open(photo) as im:
            im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS).save(big)
        asked: list[str] = []
        m.ask_unsaved = lambda title: asked.append(title) or "discard"
        m.open_photo(big, detect=False)
        wt.settle()
        wt.check(w.doc.photo.shape[:2] == (size, size), f"a {size}×{size} photo is open")
        slow: list[float] = []
        m.sr.ask_slow = lambda est: slow.append(round(est.seconds, 1)) or "run"
        p = w.docks["Super-resolution"]
        p.raise_()
        sr = w.sr_panel
        sr.model.setCurrentIndex(sr.model.findData("frgd-sr"))
        sr.scale.setCurrentIndex(sr.scale.findData(4))
        wt.check(m.sr.model == "frgd-sr" and m.sr.scale == 4 and sr.run_button.isEnabled(),
                 "the SR pane is set to frgd-sr ×4 and ready", m.sr.status().message or "")  # fmt: skip
        jobs: list[Any] = []
        w.jobs.started.connect(jobs.append)
        sr.run_button.click()
        upscale = lambda: next((j for j in jobs if j.name.startswith("Upscale")), None)  # noqa: E731
        wt.wait_until(lambda: upscale() is not None, 120.0, "the upscale job (after its time estimate)")
        job = upscale()
        wt.wait_until(lambda: job.state != "queued", 60.0, "the upscale job to start")
        t_run = time.perf_counter()
        wt.wait_until(lambda: time.perf_counter() - t_run >= 1.0 or job.is_finished, 5.0, "1 s of upscaling")
        with contextlib.suppress(StepFailed):  # show a progress value when a tile is done soon
            wt.wait_until(lambda: job.last_progress is not None or job.is_finished, 4.0, "a progress report")
        wt.check(job.state == "running", "the upscale job is still running after 1 s",
                 f"{job.state}: make the photo larger (--sr-size)")  # fmt: skip
        wt.check(w.progress.isVisible() and w.a_cancel.isEnabled(), "the progress bar and Cancel Job are shown")
        progress = job.last_progress
        triggered: list[float] = []
        w.a_cancel.triggered.connect(lambda _c=False: triggered.append(time.perf_counter()))
        w.activateWindow()
        w.canvas.setFocus()
        wt.pump(0.05)
        wt.check(job.state == "running", "still running before Esc")
        ran = time.perf_counter() - t_run
        t0 = time.perf_counter()
        QTest.keyClick(w, Qt.Key.Key_Escape)
        wt.wait_until(lambda: job.state != "running", 30.0, "the job to stop")  # events pumped meanwhile
        latency = time.perf_counter() - t0  # from the key press to the job's state
        wt.check(bool(triggered), "Esc triggered Run > Cancel Job", f"focus: {type(wt.app.focusWidget()).__name__}")
        wt.check(job.state == "cancelled", "the job is cancelled", f"{job.state}: {job.error}")
        wt.wait_until(lambda: not w.jobs.busy, 10.0, "the queue to be idle")
        t_event = time.perf_counter() - t0  # the cancelled event delivered on the GUI thread
        wt.pump(0.05)
        wt.check(not w.progress.isVisible(), "the progress bar is hidden again")
        wt.check(not any(n.startswith("SR ") for n in w.doc.pane_results), "no SR result is stored")
        wt.check(latency < CANCEL_LIMIT_S, f"cancelled within {CANCEL_LIMIT_S:.0f} s of the key press",
                 f"{latency:.3f} s")  # fmt: skip
        wt.fact(photo=big.name, model="frgd-sr", scale=4, slow_question_seconds=slow or None,
                ran_before_esc_s=round(ran, 2), progress_before_esc=None if progress is None else
                [progress.done, progress.total, progress.message], esc_to_cancelled_s=round(latency, 3),
                esc_to_idle_s=round(t_event, 3), status=w.statusBar().currentMessage(),
                focus=type(wt.app.focusWidget()).__name__ if wt.app.focusWidget() else None)  # fmt: skip
        wt.grab()


# ------------------------------------------------------------------------------------------------------- records
def write_record(out: Path, meta: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """``walkthrough.json`` and ``README.md`` in ``out``; returns the record."""
    record = {**meta, "all_passed": bool(steps) and all(s["passed"] for s in steps) and len(steps) == 6,
              "steps": steps}  # fmt: skip
    (out / "walkthrough.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(readme_text(record), encoding="utf-8")
    return record


def _shots(s: dict[str, Any]) -> str:
    return f"[`{s['screenshot']}`]({s['screenshot']})" if s.get("screenshot") else "—"


def readme_text(record: dict[str, Any]) -> str:
    """The walkthrough's README: the command and one line per step with its screenshots and measured facts."""
    lines = [
        "# Editor walkthrough",
        "",
        "Generated by `frgd_studio.tools.walkthrough` (do not edit by hand): the real editor window driven through the",
        "checks of the editor issue, each step checked and grabbed. Reproduce with:",
        "",
        "```",
        record["command"],
        "```",
        "",
        f"Model: {record['model']}; device: {record['device']}; Qt platform: {record['qt_platform']}; "
        f"{'all steps passed' if record['all_passed'] else 'NOT all steps passed'} "
        f"({record['total_seconds']:.0f} s). Facts: [`walkthrough.json`](walkthrough.json).",
        "",
    ]
    for s in record["steps"]:
        f = s["facts"]
        mark = "passed" if s["passed"] else f"FAILED: {s.get('error')}"
        if s["name"] == "start_on_demo":
            extra = f"{f.get('faces')} face(s) detected, reference `{f.get('reference')}` added"
            if f.get("reference_score") is not None:
                extra += f" (similarity {f['reference_score']:.2f})"
        elif s["name"] == "unsaved_prompt":
            extra = f'asked "{f.get("question")}" ({" / ".join(f.get("buttons", []))}); Cancel kept the photo, '
            extra += f"Discard opened `{f.get('opened')}`"
        elif s["name"] == "import_ready":
            extra = f"Import… of `{f.get('imported_from')}` made the pane ready without a restart; Download of "
            extra += f"`{f.get('download_entry')}`: {f.get('download_state')} in {f.get('download_seconds')} s"
            extra += f' ("{f.get("download_message")}")'
        elif s["name"] == "split_compare":
            extra = f"FRGD {f.get('samples')} sample(s) × {f.get('steps')} steps in {f.get('frgd_seconds')} s; "
            extra += f"zoom {f.get('zoom_from_fit')}× from fit, split at {f.get('split_fraction')}"
        elif s["name"] == "export":
            extra = f'"{f.get("description")}"; provenance identity_changed='
            extra += f"{(f.get('provenance') or {}).get('identity_changed')}, scale {f.get('result_scale')} "
            extra += f"({f.get('background')})"
        elif s["name"] == "esc_cancels_sr":
            extra = f"{f.get('model')} ×{f.get('scale')} on `{f.get('photo')}` ran {f.get('ran_before_esc_s')} s; "
            extra += f"Esc → cancelled in **{f.get('esc_to_cancelled_s')} s** (queue idle after "
            extra += f"{f.get('esc_to_idle_s')} s)"
        else:
            extra = ""
        lines.append(f"{s['step']}. **{s['title']}** — {mark}. {extra}. Screenshot: {_shots(s)}")
    first = record["steps"][0]["facts"] if record["steps"] else {}
    if first.get("window_fits_screen") is False:
        lines += ["", f"Note: the window's minimum size is {first['window_minimum'][0]}×{first['window_minimum'][1]} "
                  f"on a {first['screen'][0]}×{first['screen'][1]} screen (it grows further while the FRGD pane's "
                  "missing-model message is shown: see `window_sizes` in the JSON), so the screenshots are taller "
                  "than the screen."]  # fmt: skip
    lines += ["", "The FRGD model, settings and weights cache live in temporary folders during the run; the "
              "download is refused offline (`--offline`) or, without internet, fails at once.", ""]  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/walkthrough", help="folder for the screenshots, walkthrough.json, README.md")
    p.add_argument("--tiny-random", action="store_true", help="import a tiny untrained random model (workflow only)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=None, help="FRGD steps (default: the editor's default)")
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--size", default="1680x1050", help="window size WxH")
    p.add_argument("--sr-size", type=int, default=1024, help="side of the photo upscaled in the cancel step")
    p.add_argument("--offline", action="store_true", help="set FRGD_OFFLINE=1 (Download is refused at once)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("[0-9][0-9]_*.png"), *out.glob(f"[0-9][0-9]_*{GRAB_SUFFIX}")]:
        old.unlink()
    saved_env = {k: os.environ.get(k) for k in ENV_KEYS}
    tmp_dir = tempfile.TemporaryDirectory(prefix="frgd-walkthrough-")
    tmp = Path(tmp_dir.name)
    os.environ["FRGD_CONFIG_DIR"] = str(tmp / "config")
    os.environ["FRGD_CACHE_DIR"] = str(tmp / "cache")
    if args.offline:
        os.environ["FRGD_OFFLINE"] = "1"
    window = None
    wt: Walkthrough | None = None
    meta: dict[str, Any] = {}
    t_start = time.perf_counter()
    try:
        from PySide6.QtWidgets import QApplication

        from frgd.diffusion.sampling.schedulers import DEFAULT_STEPS
        from frgd_studio.main_window import MainWindow
        from frgd_studio.model.settings import Settings

        app = QApplication.instance() or QApplication(sys.argv[:1])
        if args.tiny_random:
            from .screenshot import make_tiny_model

            folder, model_name = make_tiny_model(tmp), "tiny random (untrained) FRGD model"
        else:
            from frgd.restore import default_model_dir

            folder = Path(default_model_dir())  # the shipped frgd-128 (the cache is empty)
            model_name = f"shipped {folder.name}"
        cmd = ["python -m frgd_studio.tools.walkthrough", "--out", args.out] + (["--tiny-random"] * args.tiny_random)
        cmd += ["--offline"] * args.offline
        meta = {"command": 'xvfb-run -a -s "-screen 0 1680x1050x24" ' + " ".join(cmd), "model": model_name,
                "device": args.device, "qt_platform": app.platformName(), "window_size": args.size,
                "total_seconds": 0.0}  # fmt: skip
        settings = Settings()
        settings.set("device", args.device)
        window = MainWindow(settings, interactive=False)
        wd, ht = (int(v) for v in args.size.split("x"))
        window.resize(wd, ht)
        window.show()
        wt = Walkthrough(app, window, out, tmp, (wd, ht))
        wt.settle()
        step_start_on_demo(wt)
        step_unsaved_prompt(wt)
        step_import_ready(wt, folder, offline=args.offline)
        step_split_compare(wt, args.steps or DEFAULT_STEPS, args.samples, args.seed)
        step_export(wt)
        step_esc_cancels_sr(wt, args.sr_size)
    except StepFailed as err:
        step = wt.steps[-1] if wt and wt.steps else {"step": 0, "name": "setup"}
        raise SystemExit(f"walkthrough step {step['step']} ({step['name']}) failed: {err}") from None
    finally:
        meta["total_seconds"] = round(time.perf_counter() - t_start, 1)
        if wt is not None:
            record = write_record(out, meta, wt.steps)
            logger.info("walkthrough %s: %s", "passed" if record["all_passed"] else "FAILED", out / "walkthrough.json")
        if window is not None:
            window.model.ask_unsaved = lambda _t: "discard"
            window.jobs.shutdown()
            window.close()
            window.deleteLater()
        from frgd_studio.model import backend

        backend.clear_caches()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        tmp_dir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
