"""Main window: the thin Qt shell over :class:`~frgd_studio.model.editor.EditorModel` (menus, toolbar, docks, status
bar with device, model and job progress, dialogs). The logic lives in the model; the window renders it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QToolButton,
    QWidget,
)

from frgd.restore.pipeline import AUTO_MAX_PIXELS

from . import dialogs, menus
from .canvas import Canvas
from .compare import CompareWidget
from .model.editor import EditorModel
from .model.jobs import Job, JobQueue, Progress
from .model.settings import RESULT_SCALE_AUTO, Settings
from .painting import StrokeController
from .panels import FacesPanel, FRGDPanel, GalleryPanel, GFPGANPanel, ReferencesPanel, SRPanel
from .qtpost import QtPoster
from .session import file_name
from .ui import IMAGE_FILTER, SESSION_FILTER, ViewHooks
from .undo import QtUndoSink

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
STATUS_POLL_MS = 3000
"""How often the panes re-check their weights (cheap file checks): a CLI download shows up without a restart."""


class MainWindow(QMainWindow):
    """The FRGD Studio editor window. ``interactive=False`` (tests, scripted screenshots): no modal dialogs; errors go
    to the status bar and :attr:`errors`, and the model's questions keep their injectable defaults."""

    def __init__(self, settings: Settings | None = None, interactive: bool = True) -> None:
        super().__init__()
        self.interactive = interactive
        self.stack = QUndoStack(self)
        self.poster = QtPoster(self)
        self.jobs = JobQueue(self.poster.post, self.poster.pump)
        self.model = m = EditorModel(settings or Settings(), QtUndoSink(self.stack), self.jobs)
        self.doc, self.settings = m.doc, m.settings
        self.ask_recover: Callable[[str], str] = lambda _what: "later"
        """``ask_recover(what) -> "recover" | "discard" | "later"`` for a leftover autosave (a dialog when
        interactive)."""
        if interactive:
            m.enable_autosave()  # crash recovery (model.autosave); scripts and tests turn it on themselves
            self.ask_recover = lambda what: dialogs.ask_recover(self, what)
            m.ask_unsaved = lambda title: dialogs.ask_unsaved(self, title)
            m.ask_session_path = self._ask_session_path
            m.ask_photo = self._ask_photo
            m.sr.ask_slow = lambda est: dialogs.ask_slow_sr(self, est)
        self.setWindowTitle("FRGD Studio")
        self.setWindowIcon(menus.icon("frgd-studio"))
        self.setAcceptDrops(True)
        self.resize(1440, 900)

        self.canvas = Canvas(self.doc)
        self.canvas.set_brush_size(float(self.settings.get("brush_size")))
        self.strokes = StrokeController(self.doc, m, self.canvas, self)
        self.strokes.feather = float(self.settings.get("brush_feather"))
        self.strokes.message.connect(self.status)
        self.compare = CompareWidget(self.doc)
        self.setCentralWidget(self.canvas)
        self.ui = ViewHooks(self, self.set_tool, self.show_compare, lambda k: setattr(self.strokes, "patch_source", k))

        self._build_status_bar()
        self.faces_panel = FacesPanel(m)
        self.references_panel = ReferencesPanel(m, self.ui)
        self.frgd_panel = FRGDPanel(m, self.ui)
        self.gallery_panel = GalleryPanel(m, self.ui)
        self.gfpgan_panel = GFPGANPanel(m, self.ui)
        self.sr_panel = SRPanel(m, self.ui)
        self.docks: dict[str, QDockWidget] = {}
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        for title, panel, area in (("Faces", self.faces_panel, left), ("References", self.references_panel, left),
                                   ("FRGD", self.frgd_panel, right), ("Gallery", self.gallery_panel, right),
                                   ("GFPGAN", self.gfpgan_panel, right), ("Super-resolution", self.sr_panel, right),
                                   ("Compare", self.compare, Qt.DockWidgetArea.BottomDockWidgetArea)):  # fmt: skip
            self._add_dock(title, panel, area)
        self.tabifyDockWidget(self.docks["GFPGAN"], self.docks["Super-resolution"])
        self.docks["GFPGAN"].raise_()
        # side columns run the full height; the comparison sits under the canvas only
        self.setCorner(Qt.Corner.BottomLeftCorner, left)
        self.setCorner(Qt.Corner.BottomRightCorner, right)
        self.docks["Compare"].setVisible(False)
        right_column = [self.docks[t] for t in ("FRGD", "Gallery", "GFPGAN")]  # each as tall as its panel wants
        self.resizeDocks(right_column, [d.widget().widget().sizeHint().height() for d in right_column],
                         Qt.Orientation.Vertical)  # fmt: skip
        menus.build_actions(self)
        menus.build_menus(self)
        menus.build_toolbar(self)

        m.statusMessage.connect(self.status)
        m.errorRaised.connect(self._show_error)
        m.resultShown.connect(self.show_result)
        m.recentChanged.connect(self.refresh_recent)
        m.deviceChanged.connect(self.update_status_device)
        m.previewChanged.connect(self._preview_changed)
        m.frgd.changed.connect(self.update_status_model)
        self.doc.photoChanged.connect(self._photo_changed)
        # a patch stroke changes the result at every dab: redraw the whole photo once per event-loop turn, not per dab
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.timeout.connect(self.refresh_view)
        self.doc.appliedChanged.connect(lambda _i: self._view_timer.start(0))
        self.doc.repairedChanged.connect(lambda: self._view_timer.start(0))  # the damage fill of the latest marks
        self.doc.repairedChanged.connect(self._update_actions)  # Clear Damage: only with damage marked
        self.doc.upscaledChanged.connect(lambda: self._view_timer.start(0))  # the result's size or its background
        self.doc.upscaledChanged.connect(self._update_size_box)
        self.doc.paneResultsChanged.connect(self._panes_changed)
        self.doc.facesChanged.connect(self._update_actions)
        self.doc.selectionChanged.connect(lambda _i: self._update_actions())
        self.stack.cleanChanged.connect(lambda _c: self._update_title())
        self.jobs.busyChanged.connect(self._busy_changed)
        self.jobs.started.connect(self._job_started)
        self.canvas.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.canvas.faceClicked.connect(m.select)
        self.canvas.compareChanged.connect(self.a_split.setChecked)  # a new photo turns the split off
        self._poll = QTimer(self)
        self._poll.timeout.connect(m.refresh_panes)
        self._poll.timeout.connect(m.autosave_tick)  # writes only when due (Settings > Autosave) and changed
        self._poll.start(STATUS_POLL_MS)
        self.set_tool("select")
        self.update_status_model()
        self._update_actions()
        self._update_title()

    @property
    def errors(self) -> list[str]:
        return self.model.errors

    # ----------------------------------------------------------------------------------------------- construction
    def _add_dock(self, title: str, widget: QWidget, area) -> None:
        """A dock for ``widget``; side panels scroll vertically instead of making the window taller than the screen
        (their width follows the dock: text wraps, nothing scrolls sideways)."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title}")
        if area == Qt.DockWidgetArea.BottomDockWidgetArea:
            dock.setWidget(widget)
        else:
            scroll = QScrollArea()
            scroll.setObjectName(f"scroll_{title}")
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setWidget(widget)
            scroll.setMinimumWidth(widget.minimumSizeHint().width())
            dock.setWidget(scroll)
        self.addDockWidget(area, dock)
        self.docks[title] = dock

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.device_label, self.model_label, self.zoom_label = QLabel(), QLabel(), QLabel("100%")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setVisible(False)
        self.progress.setFormat("%p%")
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_jobs)
        for w in (self.progress, self.cancel_button, self.zoom_label, self.model_label, self.device_label):
            sb.addPermanentWidget(w)
        self.update_status_device()

    # ------------------------------------------------------------------------------------------------ messages
    def status(self, text: str, ms: int = 6000) -> None:
        self.statusBar().showMessage(text, ms)

    def error(self, message: str, details: str = "") -> None:
        self.model.error(message, details)

    def _show_error(self, message: str, details: str) -> None:
        self.status(message, 15000)
        if self.interactive:
            box = QMessageBox(QMessageBox.Icon.Warning, "FRGD Studio", message, parent=self)
            if details:
                box.setDetailedText(details)
            box.exec()

    def update_status_device(self) -> None:
        """Show the chosen device; it is resolved off the GUI thread (starting CUDA can take seconds)."""
        spec = self.model.settings.get("device")
        self.device_label.setText(f"Device: {spec} …")
        self.model.request_device_text(self._show_device_text)

    def _show_device_text(self, text: str) -> None:
        try:
            self.device_label.setText(f"Device: {text}")
        except RuntimeError:  # the window was closed before the device was resolved
            pass

    def update_status_model(self) -> None:
        s = self.model.frgd.status()
        self.model_label.setText(f"FRGD model: {s.model}" if s.ready else "FRGD model: not installed")

    def _update_title(self) -> None:
        try:
            mark = "" if self.stack.isClean() else " *"
        except RuntimeError:  # the window is being destroyed
            return
        self.setWindowTitle(f"{self.doc.title()}{mark} — FRGD Studio" if self.doc.photo is not None else "FRGD Studio")

    def about(self) -> None:
        QMessageBox.about(self, "FRGD Studio", "FRGD Studio: face-recognition-guided diffusion face restoration, "
                          "GFPGAN and super-resolution.\nResults with faces from a generative restorer (FRGD, GFPGAN) "
                          "are marked identity_changed in the exported file.")  # fmt: skip

    # ---------------------------------------------------------------------------------------------------- jobs
    def _job_started(self, job: Job) -> None:
        job.progress.connect(lambda p, j=job: self._job_progress(j, p))

    def _job_progress(self, job: Job, p: Progress) -> None:
        if job.lane != "compute" and any(j.lane == "compute" and j.state == "running" for j in self.jobs.jobs):
            return  # the bar follows the compute job while an io job (a download) runs beside it
        self.progress.setMaximum(max(p.total, 1))
        self.progress.setValue(p.done)
        self.status(f"{job.name}: {p.message}" + (f", {p.eta:.0f} s left" if p.eta >= 0 else ""), 0)

    def _busy_changed(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setMaximum(0)  # indeterminate until the first progress report
            self.progress.setValue(0)
        self._update_actions()

    def cancel_jobs(self) -> None:
        """Run > Cancel Job (Esc): the jobs the user started stop at their next step; the Result's upscale, which
        gives way to them, goes on, and is cancelled when it is all that runs (:meth:`JobQueue.cancel_started`)."""
        if self.jobs.busy and self.jobs.cancel_started():
            self.status("Cancelling…")

    # ---------------------------------------------------------------------------------------------- open / save
    def open_photo_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", "", IMAGE_FILTER)
        if path:
            self.model.open_photo(path)

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", SESSION_FILTER)
        if path:
            self.model.open_session(path)

    def _ask_session_path(self, default: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", default, SESSION_FILTER)
        return path or None

    def _ask_photo(self, session: str, photo: str) -> str | None:
        """Locate…: where the photo of ``session`` is now (it is gone from ``photo``); ``None`` to leave it."""
        if not dialogs.ask_locate_photo(self, session, photo):
            return None
        name = file_name(photo)
        start = str(Path(session).parent / name)
        path, _ = QFileDialog.getOpenFileName(self, f"Locate {name}", start, f"{IMAGE_FILTER};;All files (*)")
        return path or None

    def refresh_recent(self, items: list[str] | None = None) -> None:
        items = self.settings.recent_files() if items is None else items
        self.recent_menu.clear()
        for p in items:
            self.recent_menu.addAction(p, lambda p=p: self.model.open_any(p))
        self.recent_menu.setEnabled(bool(items))
        if items:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", lambda: (self.settings.clear_recent(), self.refresh_recent([])))

    def export_dialog(self) -> None:
        if self.doc.photo is None:
            return
        dlg = dialogs.ExportDialog(self.model, self)
        if dlg.exec() != dialogs.QDialog.DialogCode.Accepted:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export", str(self.model.default_export_path()), IMAGE_FILTER)
        if path:
            self.model.export(path, dlg.choice(), overwrite=Path(path).exists())

    def export_faces_dialog(self) -> None:
        """File > Export Faces: choose a folder; one that holds this photo's face files asks before replacing them."""
        from frgd.restore.face_files import existing_face_files

        if not self.doc.faces:
            return
        start = str(Path(self.doc.photo_path).parent) if self.doc.photo_path else ""
        folder = QFileDialog.getExistingDirectory(self, "Export faces to folder", start)
        if not folder:
            return
        stem = self.model.faces_stem()
        found = existing_face_files(folder, stem)
        if found:
            answer = QMessageBox.question(
                self, "Replace face files?",
                f"{folder} already holds {len(found)} face file(s) of {stem} ({found[0].name}, …). Replace them?",
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.model.export_faces(folder, overwrite=bool(found))

    def import_face_dialog(self) -> None:
        """File > Import Face Result: choose a square image for the selected face."""
        if self.doc.face() is None:
            return
        start = str(Path(self.doc.photo_path).parent) if self.doc.photo_path else ""
        title = f"Import result for face {self.doc.selected + 1} (a square face crop)"
        path, _ = QFileDialog.getOpenFileName(self, title, start, IMAGE_FILTER)
        if path:
            self.model.import_face(path)

    def import_damage_dialog(self) -> None:
        if self.doc.photo is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import damage mask (white = damaged)", "", IMAGE_FILTER)
        if path:
            self.model.import_damage(path)

    def export_damage_dialog(self) -> None:
        if not self.doc.damage_marked():
            return
        src = Path(self.doc.photo_path or "photo.png")
        default = str(src.with_name(f"{src.stem}_damage.png"))
        path, _ = QFileDialog.getSaveFileName(self, "Export damage mask", default, IMAGE_FILTER)
        if path:
            self.model.export_damage(path, overwrite=Path(path).exists())

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if urls and Path(urls[0].toLocalFile()).suffix.lower() in IMAGE_SUFFIXES | {".frgd"}:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if urls:
            self.model.open_any(urls[0].toLocalFile())
            event.acceptProposedAction()

    # ---------------------------------------------------------------------------------------------------- tools
    def set_tool(self, tool: str) -> None:
        self.canvas.set_tool(tool)
        self.tool_actions[tool].setChecked(True)

    def set_brush_size(self, radius: float) -> None:
        self.canvas.set_brush_size(radius)
        self.settings.set("brush_size", self.canvas.brush_size)

    def ask_feather(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        v, ok = QInputDialog.getDouble(self, "Brush feather", "Soft edge (fraction of the radius):",
                                       self.strokes.feather, 0.0, 1.0, 2)  # fmt: skip
        if ok:
            self.strokes.feather = float(v)
            self.settings.set("brush_feather", float(v))

    # ----------------------------------------------------------------------------------------------------- view
    def _photo_changed(self) -> None:
        self._panes_changed()
        self._update_title()

    def _update_size_box(self) -> None:
        """The Size box: Auto names the scale it chose; the tooltip gives the result's size in pixels and what it is
        pasted on (a chosen pane result sets the size: the box is off then)."""
        doc, box = self.doc, self.size_combo
        auto = box.findData(RESULT_SCALE_AUTO)
        box.setItemText(auto, "Auto" if doc.photo is None else f"Auto (×{self.model.auto_result_scale()})")
        box.setEnabled(doc.photo is not None and not doc.background)
        tip = ("Size of the Result and of its export: Auto makes every face's restored crop map 1:1, like frgd "
               f"enhance; ×N is N times the photo's size; either within {AUTO_MAX_PIXELS // 1_000_000} MP. The photo "
               "is upscaled with Lanczos (Real-ESRGAN on a GPU when installed) and the faces are pasted at that "
               "size.")  # fmt: skip
        if doc.photo is not None:
            canvas, name = doc.result_canvas()
            h, w = doc.photo.shape[0] * doc.result_scale, doc.photo.shape[1] * doc.result_scale
            if doc.background:
                h, w = canvas.shape[:2]
                tip += f"\nNow: {w}×{h}, pasted on {name} (which sets the size)."
            elif doc.upscale_used() or doc.result_scale == 1:
                tip += f"\nNow: {w}×{h}" + ("." if doc.result_scale == 1 else f", the photo {name}.")
            else:
                tip += f"\nNow: {w}×{h} once upscaled (shown at the photo's size until then)."
        box.setToolTip(tip)

    def _panes_changed(self) -> None:
        self._update_size_box()
        names = ["Result", "Original", *self.doc.pane_results]
        cur = self.view_combo.currentText()
        self.view_combo.blockSignals(True)
        self.view_combo.clear()
        self.view_combo.addItems(names)
        self.view_combo.setCurrentText(cur if cur in names else "Result")
        self.view_combo.blockSignals(False)
        self.refresh_view()

    def show_result(self, name: str) -> None:
        """Show a named result (``Result``, ``Original`` or a pane result) on the canvas."""
        self.view_combo.setCurrentText(name)
        self.refresh_view()

    def shown_name(self) -> str:
        """The name of the image the canvas shows (the "Show:" choice; ``Result`` when that is gone)."""
        name = self.view_combo.currentText() or "Result"
        return name if name in self.model.export_choices() else "Result"

    def refresh_view(self) -> None:
        if self.doc.photo is not None:
            name = self.shown_name()
            img = self.model.export_image(name)
            p = self.model.preview if name == "Result" else None  # the preview stands in for samples: only there
            self.canvas.set_image(img if p is None else self.model.with_preview(img))
            self.canvas.set_badge("" if p is None else f"Face {p.index + 1}: preview (prior estimate); samples follow")
            if self.canvas.compare_active:
                self.canvas.set_compare_labels("Original", name)
        else:
            self.canvas.set_badge("")

    def _preview_changed(self) -> None:
        """Show or take away the FRGD preview (drawn over the Result view, labelled on the canvas)."""
        self.refresh_view()

    def set_before_after(self, on: bool) -> None:
        """Split the canvas: the original photo left of the line, the shown image right of it (zooms and pans with
        the canvas; drag the line to move it)."""
        on = bool(on and self.doc.photo is not None)
        self.canvas.set_compare(self.doc.photo if on else None, "Original", self.shown_name())
        self.a_split.setChecked(on)

    def show_compare(self, left: str, right: str) -> None:
        """Open the comparison view on two named results (see :meth:`Document.results`)."""
        dock = self.docks["Compare"]
        dock.setVisible(True)
        dock.raise_()
        self.compare.refresh()
        self.compare.set_pair(left, right)

    def toggle_compare(self) -> None:
        dock = self.docks["Compare"]
        dock.setVisible(not dock.isVisible())
        if dock.isVisible():
            self.compare.refresh()

    def _update_actions(self) -> None:
        has_photo, has_face = self.doc.photo is not None, self.doc.face() is not None
        for a in (self.a_save_session, self.a_save_session_as, self.a_export, self.a_detect, self.a_import_damage,
                  self.a_detect_damage,
                  *self.a_rotate.values()):  # fmt: skip
            a.setEnabled(has_photo)
        for a in (self.a_resample, self.a_add_ref, self.a_clear_mask, self.a_invert_mask, self.a_import_face):
            a.setEnabled(has_face)
        for a in (self.a_resample_all, self.a_export_faces):
            a.setEnabled(bool(self.doc.faces))
        self.a_clear_damage.setEnabled(self.doc.damage_marked())
        self.a_export_damage.setEnabled(self.doc.damage_marked())
        self.a_fill_damage.setEnabled(self.doc.damage_marked())
        self.a_cancel.setEnabled(self.jobs.busy)

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == event.Type.ActivationChange and self.isActiveWindow():
            self.model.refresh_panes()  # weights installed while the editor was in the background
        super().changeEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.model.confirm_discard(self.close):
            event.ignore()
            return
        self._poll.stop()
        self.model.shutdown()  # the jobs stop; closed normally, the autosave goes
        super().closeEvent(event)

    def offer_recovery(self) -> bool:
        """At start: offer the autosaved work of editors that did not close normally, newest first (Recover /
        Discard / Later, :attr:`ask_recover`); at most one is recovered. True when one is being recovered."""
        for leftover in self.model.leftovers():
            answer = self.ask_recover(leftover.describe())
            if answer == "recover":
                return self.model.recover(leftover) is not None
            if answer == "discard":
                self.model.discard_leftover(leftover)
        return False

    def set_autosave_minutes(self, minutes: int) -> None:
        self.settings.set("autosave_minutes", int(minutes))
        self.status("Autosave off." if minutes <= 0 else f"Autosave every {minutes} min of unsaved work.")
