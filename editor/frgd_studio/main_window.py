"""Main window: menus, toolbar, status bar (device, model, job progress), canvas/compare tabs and dock panels."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolButton,
    QWidget,
)

from frgd.errors import FRGDError, InputError

from . import backend, commands
from .canvas import Canvas
from .compare import CompareWidget
from .document import Document
from .jobs import Job, JobManager
from .painting import StrokeController
from .panels import FacesPanel, FRGDPanel, GalleryPanel, GFPGANPanel, ReferencesPanel, SRPanel
from .settings import DEVICE_CHOICES, Settings

logger = logging.getLogger(__name__)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp)"
SESSION_FILTER = "FRGD Studio sessions (*.frgd)"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}


def icon(name: str) -> QIcon:
    """An icon from ``frgd_resources/icons`` (an empty icon when the file is missing)."""
    try:
        from frgd_resources import resource_path

        p = resource_path("icons", f"{name}.svg")
        return QIcon(str(p)) if p.is_file() else QIcon()
    except Exception:  # pragma: no cover - resources package missing
        return QIcon()


class MainWindow(QMainWindow):
    """The FRGD Studio editor window.

    ``interactive=False`` (tests, scripted screenshots) shows errors in the status bar and :attr:`errors` instead of
    modal dialogs.
    """

    def __init__(self, settings: Settings | None = None, interactive: bool = True) -> None:
        super().__init__()
        self.interactive = interactive
        self.errors: list[str] = []
        self.settings = settings or Settings()
        self.doc = Document(self)
        self.stack = QUndoStack(self)
        self.jobs = JobManager(self)
        self.session_path: str | None = None
        self.setWindowTitle("FRGD Studio")
        self.setWindowIcon(icon("frgd-studio"))
        self.setAcceptDrops(True)
        self.resize(1440, 900)

        self.canvas = Canvas(self.doc)
        self.canvas.set_brush_size(float(self.settings.get("brush_size")))
        self.strokes = StrokeController(self.doc, self.stack, self.canvas, self)
        self.strokes.feather = float(self.settings.get("brush_feather"))
        self.strokes.message.connect(self.status)
        self.compare = CompareWidget(self.doc)
        self.setCentralWidget(self.canvas)

        self._build_status_bar()
        self.faces_panel = FacesPanel(self)
        self.references_panel = ReferencesPanel(self)
        self.frgd_panel = FRGDPanel(self)
        self.gallery_panel = GalleryPanel(self)
        self.gfpgan_panel = GFPGANPanel(self)
        self.sr_panel = SRPanel(self)
        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("Faces", self.faces_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._add_dock("References", self.references_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._add_dock("FRGD", self.frgd_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("Gallery", self.gallery_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("GFPGAN", self.gfpgan_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("Super-resolution", self.sr_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["GFPGAN"], self.docks["Super-resolution"])
        self.docks["GFPGAN"].raise_()
        # side columns run the full height; the comparison sits under the canvas only
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("Compare", self.compare, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.docks["Compare"].setVisible(False)
        self._build_actions()
        self._build_menus()
        self._build_toolbar()

        self.doc.photoChanged.connect(self._photo_changed)
        # a patch stroke changes the result at every dab: redraw the whole photo once per event-loop turn, not per dab
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.timeout.connect(self.refresh_view)
        self.doc.appliedChanged.connect(lambda _i: self._view_timer.start(0))
        self.doc.paneResultsChanged.connect(self._panes_changed)
        self.doc.facesChanged.connect(self._update_actions)
        self.doc.selectionChanged.connect(lambda _i: self._update_actions())
        self.stack.cleanChanged.connect(lambda _c: self._update_title())
        self.jobs.busyChanged.connect(self._busy_changed)
        self.canvas.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.canvas.faceClicked.connect(lambda i: self.stack.push(commands.SelectFaceCommand(self.doc, i)))
        self.set_tool("select")
        self._update_actions()
        self._update_title()

    # ----------------------------------------------------------------------------------------------- construction
    def _add_dock(self, title: str, widget: QWidget, area) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.device_label = QLabel()
        self.model_label = QLabel()
        self.zoom_label = QLabel("100%")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setVisible(False)
        self.progress.setFormat("%p%")
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_jobs)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.zoom_label)
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.device_label)
        self.update_status_device()

    def _act(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False, ico: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(f"{tip} ({a.shortcut().toString()})" if shortcut is not None else tip)
        if ico:
            a.setIcon(icon(ico))
        a.setCheckable(checkable)
        if checkable:
            a.toggled.connect(slot)
        else:
            a.triggered.connect(lambda _c=False: slot())
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        self.a_open = self._act(
            "&Open Photo…", self.open_photo_dialog, QKeySequence.StandardKey.Open, "Open a photo", ico="open"
        )
        self.a_open_session = self._act("Open &Session…", self.open_session_dialog, "Ctrl+Shift+O")
        tip = "Save the result with provenance metadata (never over the original)"
        self.a_save = self._act(
            "&Save Result As…", self.save_result_dialog, QKeySequence.StandardKey.Save, tip, ico="save"
        )
        self.a_save_session = self._act("Save Session…", self.save_session_dialog, "Ctrl+Shift+S")
        self.a_quit = self._act("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.a_undo = self.stack.createUndoAction(self, "&Undo")
        self.a_undo.setShortcut(QKeySequence("Ctrl+Z"))
        self.a_undo.setIcon(icon("undo"))
        self.a_redo = self.stack.createRedoAction(self, "&Redo")
        self.a_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.a_redo.setIcon(icon("redo"))
        self.addAction(self.a_undo)
        self.addAction(self.a_redo)
        self.a_clear_mask = self._act("Clear Mask", self.clear_mask, "Ctrl+Shift+M")
        self.a_invert_mask = self._act("Invert Mask", self.invert_mask, "Ctrl+I")
        self.a_fit = self._act("&Fit", self.canvas.fit, "F", "Fit the photo in the window", ico="fit")
        self.a_100 = self._act("&100%", self.canvas.actual_size, "1", "Actual pixels")
        self.a_zoom_in = self._act("Zoom In", lambda: self.canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn)
        self.a_zoom_out = self._act("Zoom Out", lambda: self.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut)
        self.a_mask = self._act("Show &Mask", self.canvas.set_show_mask, "M", "Show the mask overlay", checkable=True)
        self.a_mask.setChecked(True)
        self.a_faces = self._act("Show Face &Outlines", self.canvas.set_show_faces, "O", checkable=True)
        self.a_faces.setChecked(True)
        self.a_compare = self._act("&Compare", self.toggle_compare, "C", "Show or hide the comparison", ico="compare")
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool, text, key, tip in (
            ("select", "&Select / Pan", "V", "Select faces, drag to pan"),
            ("brush", "&Brush", "B", "Paint the region FRGD may change"),
            ("eraser", "&Eraser", "E", "Erase from the mask"),
            ("patch", "&Patch", "P", "Brush the chosen gallery sample into the result"),
        ):
            a = QAction(icon(tool), text, self)
            a.setShortcut(QKeySequence(key))
            a.setCheckable(True)
            a.setToolTip(f"{tip} ({key})")
            a.triggered.connect(lambda _c=False, t=tool: self.set_tool(t))
            self.tool_group.addAction(a)
            self.addAction(a)
            self.tool_actions[tool] = a
        self.a_smaller = self._act("Smaller Brush", lambda: self.set_brush_size(self.canvas.brush_size / 1.25), "[")
        self.a_bigger = self._act("Bigger Brush", lambda: self.set_brush_size(self.canvas.brush_size * 1.25), "]")
        self.a_detect = self._act("&Detect Faces", self.detect_faces, "Ctrl+D", "Detect faces", ico="detect")
        self.a_resample = self._act(
            "&Resample", self.resample, "R", "Generate FRGD samples for the face", ico="resample"
        )
        self.a_add_ref = self._act("Add &Reference…", self.add_reference, "Ctrl+R")
        self.a_cancel = self._act("&Cancel Job", self.cancel_jobs, "Esc")

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.a_open)
        self.recent_menu = m.addMenu("Open &Recent")
        m.addAction(self.a_open_session)
        m.addSeparator()
        m.addAction(self.a_save)
        m.addAction(self.a_save_session)
        m.addSeparator()
        m.addAction(self.a_quit)
        self._refresh_recent()
        m = mb.addMenu("&Edit")
        m.addAction(self.a_undo)
        m.addAction(self.a_redo)
        m.addSeparator()
        m.addAction(self.a_clear_mask)
        m.addAction(self.a_invert_mask)
        m = mb.addMenu("&View")
        for a in (self.a_fit, self.a_100, self.a_zoom_in, self.a_zoom_out, self.a_mask, self.a_faces, self.a_compare):
            m.addAction(a)
        m.addSeparator()
        for dock in self.docks.values():
            m.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Tools")
        for a in self.tool_actions.values():
            m.addAction(a)
        m.addAction(self.a_smaller)
        m.addAction(self.a_bigger)
        m = mb.addMenu("&Run")
        for a in (self.a_detect, self.a_add_ref, self.a_resample, self.a_cancel):
            m.addAction(a)
        m = mb.addMenu("&Settings")
        dm = m.addMenu("&Device")
        self.device_group = QActionGroup(self)
        for d in DEVICE_CHOICES:
            a = QAction(d, self, checkable=True)
            a.setChecked(d == self.settings.get("device"))
            a.triggered.connect(lambda _c=False, dev=d: self.set_device(dev))
            self.device_group.addAction(a)
            dm.addAction(a)
        m.addAction("FRGD Model Folder…", self.frgd_panel._choose_model)
        m.addAction("Brush Feather…", self._ask_feather)
        m = mb.addMenu("&Help")
        m.addAction("&About FRGD Studio", self._about)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        tb.addAction(self.a_open)
        tb.addAction(self.a_save)
        tb.addSeparator()
        tb.addAction(self.a_undo)
        tb.addAction(self.a_redo)
        tb.addSeparator()
        for a in self.tool_actions.values():
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.a_detect)
        tb.addAction(self.a_resample)
        tb.addAction(self.a_fit)
        tb.addAction(self.a_compare)
        tb.addSeparator()
        tb.addWidget(QLabel(" Show: "))
        self.view_combo = QComboBox()
        self.view_combo.setMinimumContentsLength(18)
        self.view_combo.currentTextChanged.connect(lambda _t: self.refresh_view())
        tb.addWidget(self.view_combo)
        self.brush_label = QLabel()
        tb.addWidget(self.brush_label)
        self.canvas.brushSizeChanged.connect(lambda r: self.brush_label.setText(f"  brush {r:.0f} px"))
        self.brush_label.setText(f"  brush {self.canvas.brush_size:.0f} px")

    # ------------------------------------------------------------------------------------------------ messages
    def status(self, text: str, ms: int = 6000) -> None:
        self.statusBar().showMessage(text, ms)

    def error(self, message: str, details: str = "") -> None:
        """Show an error (modal dialog when interactive; always logged and kept in :attr:`errors`)."""
        logger.warning("%s", message)
        self.errors.append(message)
        self.status(message, 15000)
        if self.interactive:
            box = QMessageBox(QMessageBox.Icon.Warning, "FRGD Studio", message, parent=self)
            if details:
                box.setDetailedText(details)
            box.exec()

    def update_status_device(self) -> None:
        spec = self.settings.get("device")
        try:
            from frgd.devices import describe_device, resolve_device

            text = describe_device(resolve_device(spec))
        except FRGDError as err:
            text = f"{spec}: {err}"
        self.device_label.setText(f"Device: {text}")

    def update_status_model(self, name: str | None) -> None:
        self.model_label.setText(f"FRGD model: {name}" if name else "FRGD model: not installed")

    def _update_title(self) -> None:
        try:
            mark = "" if self.stack.isClean() else " *"
        except RuntimeError:  # the window is being destroyed
            return
        self.setWindowTitle(f"{self.doc.title()}{mark} — FRGD Studio" if self.doc.photo is not None else "FRGD Studio")

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "FRGD Studio",
            "FRGD Studio: face-recognition-guided diffusion face restoration, GFPGAN and super-resolution.\n"
            "Results with faces from a generative restorer (FRGD, GFPGAN) are marked identity_changed in the saved "
            "file.",
        )

    # ---------------------------------------------------------------------------------------------------- jobs
    def run_job(self, name: str, fn, on_success=None, same_photo: bool = True) -> Job:
        """Run ``fn(device, progress, cancel)`` in the background with progress in the status bar.

        With ``same_photo`` the result is dropped when another photo was opened meanwhile.
        """
        gen = self.doc.generation

        def deliver(result) -> None:
            if same_photo and gen != self.doc.generation:
                logger.info("%s: result dropped (another photo was opened)", name)
                return
            on_success(result)

        job = self.jobs.submit(name, fn, str(self.settings.get("device")), deliver if on_success else None)
        job.progress.connect(lambda d, t, m, eta, j=job: self._job_progress(j, d, t, m, eta))
        job.failed.connect(lambda msg, tb, j=job: self.error(f"{j.name} failed: {msg}", tb))
        job.cancelled.connect(lambda j=job: self.status(f"{j.name}: cancelled"))
        job.notice.connect(lambda msg: self.status(msg, 15000))
        job.succeeded.connect(lambda _r, j=job: self.status(f"{j.name}: done"))
        self.status(f"{name}…", 0)
        return job

    def _job_progress(self, job: Job, done: int, total: int, message: str, eta: float) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        eta_text = f", {eta:.0f} s left" if eta >= 0 else ""
        self.status(f"{job.name}: {message}{eta_text}", 0)

    def _busy_changed(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setMaximum(0)  # indeterminate until the first progress report
            self.progress.setValue(0)
        self._update_actions()

    def cancel_jobs(self) -> None:
        if self.jobs.busy:
            self.jobs.cancel_all()
            self.status("Cancelling…")

    def set_device(self, device: str) -> None:
        self.settings.set("device", device)
        backend.clear_caches()
        self.update_status_device()

    # ---------------------------------------------------------------------------------------------- open / save
    def open_photo_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", "", IMAGE_FILTER)
        if path:
            self.open_photo(path)

    def open_photo(self, path: str | Path, detect: bool = True, reference: str | None = None) -> Job:
        """Load a photo in the background; then detect faces (and add ``reference`` to the first face)."""
        path = str(path)

        def done(photo: backend.Photo) -> None:
            self.stack.clear()
            self.session_path = None
            self.doc.set_photo(photo.rgb, photo.path, photo.sha256, photo.alpha)
            self._refresh_recent(self.settings.add_recent(photo.path))
            self.status(f"Opened {photo.path} ({photo.rgb.shape[1]}x{photo.rgb.shape[0]})")
            if detect:
                job = self.detect_faces()
                if reference and job is not None:
                    job.succeeded.connect(lambda _r: self.doc.faces and self.add_reference(reference))

        return self.run_job(f"Open {Path(path).name}", lambda _d, _p, _c: backend.load_photo(path), done, False)

    def _refresh_recent(self, items: list[str] | None = None) -> None:
        items = self.settings.recent_files() if items is None else items
        self.recent_menu.clear()
        for p in items:
            self.recent_menu.addAction(p, lambda p=p: self.open_any(p))
        self.recent_menu.setEnabled(bool(items))
        if items:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", lambda: (self.settings.clear_recent(), self._refresh_recent([])))

    def open_any(self, path: str) -> None:
        if Path(path).suffix.lower() == ".frgd":
            self.open_session(path)
        else:
            self.open_photo(path)

    def default_result_path(self) -> Path:
        src = Path(self.doc.photo_path or "result.png")
        base = src.with_name(f"{src.stem}_frgd.png")
        k = 2
        while base.exists():
            base = src.with_name(f"{src.stem}_frgd_{k}.png")
            k += 1
        return base

    def save_result_dialog(self) -> None:
        if self.doc.photo is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save result", str(self.default_result_path()), IMAGE_FILTER)
        if path:
            self.save_result(path, overwrite=Path(path).exists())

    def current_view_name(self) -> str:
        return self.view_combo.currentText() or "Result"

    def result_image(self) -> np.ndarray | None:
        """The image shown on the canvas (the result by default)."""
        name = self.current_view_name()
        if name == "Result":
            return self.doc.composite()
        return self.doc.results().get(name, self.doc.composite())

    def provenance(self) -> Any:
        from frgd.io import Provenance

        doc = self.doc
        params: dict[str, Any] = {"view": self.current_view_name(), "faces": []}
        seeds = []
        refs: dict[str, str] = {}
        models = set()
        for i, f in enumerate(doc.faces):
            entry: dict[str, Any] = {"number": i + 1, "changed": f.applied is not None, "seed": f.applied_seed}
            sample = f.applied_sample()
            if f.applied is not None and sample is not None:
                entry.update(sample.parameters)
                models.add(str(sample.parameters.get("model", "frgd")))
                seeds.append(sample.seed)
                if sample.parameters.get("used_reference"):
                    refs.update({Path(r.path).name: r.sha256 for r in f.references})
            params["faces"].append(entry)
        view = self.current_view_name()
        if view in doc.pane_params:
            params["pane"] = doc.pane_params[view]
            models.add(str(doc.pane_params[view].get("model")))
        if doc.background:
            params["background"] = {"name": doc.background, **doc.pane_params.get(doc.background, {})}
        return Provenance(
            model=", ".join(sorted(models)) or None,
            seed=seeds[0] if len(seeds) == 1 else None,
            parameters=params,
            reference_hashes=refs,
            identity_changed=doc.identity_changed(view),
            source_hash=doc.photo_sha256,
        )

    def save_result(self, path: str | Path, overwrite: bool = False) -> Path | None:
        """Save the shown result with provenance; refuses to write over the original photo."""
        from frgd.io import save_image

        img = self.result_image()
        if img is None:
            return None
        alpha = self.doc.alpha  # the photo's transparency is kept (resized for an upscaled result)
        if alpha is not None and alpha.shape != img.shape[:2]:
            import cv2

            alpha = cv2.resize(alpha, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
        try:
            out = save_image(path, img, alpha=alpha, provenance=self.provenance(), overwrite=overwrite,
                             protect=[self.doc.photo_path] if self.doc.photo_path else [])  # fmt: skip
        except FRGDError as err:
            self.error(str(err))
            return None
        self.status(f"Saved {out}")
        return out

    def save_session_dialog(self) -> None:
        if self.doc.photo is None:
            return
        default = self.session_path or str(Path(self.doc.photo_path or "session").with_suffix(".frgd"))
        path, _ = QFileDialog.getSaveFileName(self, "Save session", default, SESSION_FILTER)
        if path:
            self.save_session(path)

    def ui_state(self) -> dict[str, Any]:
        p = self.frgd_panel
        return {"identity_strength": p.identity_strength, "steps": p.steps.value(), "samples": p.samples.value(),
                "seed": p.seed.value(), "lock_seed": p.lock_seed.isChecked()}  # fmt: skip

    def save_session(self, path: str | Path) -> Path | None:
        from .session import save_session

        try:
            out = save_session(self.doc, path, self.ui_state())
        except FRGDError as err:
            self.error(str(err))
            return None
        self.session_path = str(out)
        self.stack.setClean()
        self.settings.add_recent(str(out))
        self._refresh_recent()
        self.status(f"Saved session {out}")
        return out

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> Job:
        from .session import apply_session, load_session

        path = str(path)

        def done(data) -> None:
            self.stack.clear()
            apply_session(self.doc, data)
            ui = data.ui
            p = self.frgd_panel
            if ui:
                p.slider.setValue(int(round(100 * float(ui.get("identity_strength", p.identity_strength)))))
                p.steps.setValue(int(ui.get("steps", p.steps.value())))
                p.samples.setValue(int(ui.get("samples", p.samples.value())))
                p.seed.setValue(int(ui.get("seed", p.seed.value())))
                p.lock_seed.setChecked(bool(ui.get("lock_seed", False)))
            self.session_path = path
            self.settings.add_recent(path)
            self._refresh_recent()
            for w in data.warnings:
                self.error(w)
            self.status(f"Opened session {path}")

        return self.run_job(f"Open session {Path(path).name}", lambda _d, _p, _c: load_session(path), done, False)

    # drag and drop ------------------------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if urls and Path(urls[0].toLocalFile()).suffix.lower() in IMAGE_SUFFIXES | {".frgd"}:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if urls:
            self.open_any(urls[0].toLocalFile())
            event.acceptProposedAction()

    # ---------------------------------------------------------------------------------------------- face actions
    def detect_faces(self) -> Job | None:
        photo = self.doc.photo
        if photo is None:
            return None

        def done(faces) -> None:
            if not faces:
                self.status("No face found. Try a larger photo, or open another one.", 15000)
            self.stack.push(commands.SetFacesCommand(self.doc, faces))

        return self.run_job("Detect faces", lambda d, p, c: backend.detect(photo, d, p, c), done)

    def set_faces_from_landmarks(self, landmarks: list[np.ndarray]) -> None:
        """Use known landmarks instead of detection (scripting, tests); one undo step. Numbered like detected faces."""
        from frgd.restore import number_faces

        faces = number_faces([backend.make_face(self.doc.photo, lm) for lm in landmarks])
        self.stack.push(commands.SetFacesCommand(self.doc, faces))

    def add_reference(self, path: str | None = None) -> Job | None:
        if self.doc.face() is None:
            self.status("Detect faces first, then add a reference for the selected face.")
            return None
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Reference photo of the same person", "", IMAGE_FILTER)
            if not path:
                return None
        index = self.doc.selected
        face = self.doc.faces[index]
        crop = face.crop
        ident = self.identity_backend()

        def job(device, progress, cancel):
            ref = backend.load_reference(path, device)
            try:
                ref.score = backend.identity_scores(crop, [ref.crop], ident, device)[0]
            except (FRGDError, ImportError) as err:  # the reference is still usable for FRGD
                logger.warning("identity score unavailable: %s", err)
            return ref

        def done(ref) -> None:
            if self._same_face(index, face):
                self.stack.push(commands.add_reference(self.doc, index, ref))

        return self.run_job(f"Add reference {Path(path).name}", job, done)

    def _same_face(self, index: int, face) -> bool:
        """True when ``face`` is still the document's face ``index``; else (faces detected again while a job ran)
        the job's result is dropped with a status message."""
        if self.doc.face(index) is face:
            return True
        self.status("Result dropped: the faces were detected again while it was computed.", 15000)
        return False

    def identity_backend(self) -> str:
        """The identity encoder used for reference scores: the FRGD model's (``identity.json``) or the setting."""
        import json

        path, problem = self.frgd_panel.model_status()
        if path and not problem:
            f = Path(path) / "identity.json"
            try:
                return str(json.loads(f.read_text()).get("backend", "dlib"))
            except (OSError, ValueError):
                pass
        return str(self.settings.get("identity_backend"))

    def score_references(self) -> Job | None:
        face = self.doc.face()
        if face is None or not face.references:
            return None
        index = self.doc.selected
        crop, refs = face.crop, list(face.references)
        ident = self.identity_backend()

        def done(scores) -> None:
            from dataclasses import replace

            if not self._same_face(index, face):
                return
            # the list may have changed while scoring: rescore the references that are still there, keep the others
            by_id = {id(r): s for r, s in zip(refs, scores)}
            new = [replace(r, score=by_id[id(r)]) if id(r) in by_id else r for r in face.references]
            self.stack.push(commands.ReferencesCommand(self.doc, index, new, "Score references"))

        return self.run_job(
            "Identity scores", lambda d, _p, _c: backend.identity_scores(crop, [r.crop for r in refs], ident, d), done
        )

    def resample(self) -> Job | None:
        face = self.doc.face()
        if face is None:
            self.status("Detect faces first.")
            return None
        path, problem = self.frgd_panel.model_status()
        if problem:
            self.error(problem)
            return None
        p = self.frgd_panel
        index = self.doc.selected
        req = backend.FRGDRequest(
            photo=self.doc.photo,
            face=face,
            number=index + 1,
            mask=face.mask.copy() if float(face.mask.max()) > 0.5 else None,  # an empty mask: the whole face
            base=None if face.applied is None else face.applied.copy(),
            base_mask=face.applied_mask,
            references=[r.crop for r in face.references],
            identity_strength=p.identity_strength,
            num_samples=p.samples.value(),
            seeds=p.seeds_for_run(),
            steps=p.steps.value(),
            model_dir=path,
        )

        def done(samples) -> None:
            if self._same_face(index, face):
                self.stack.push(commands.AddSamplesCommand(self.doc, index, samples))
                p.set_seed_used([s.seed for s in samples])

        return self.run_job(f"FRGD face {index + 1}", lambda d, pr, c: backend.run_frgd(req, d, pr, c), done)

    def clear_mask(self) -> None:
        if self.doc.face() is not None:
            self.stack.push(commands.clear_mask(self.doc, self.doc.selected))

    def invert_mask(self) -> None:
        if self.doc.face() is not None:
            self.stack.push(commands.invert_mask(self.doc, self.doc.selected))

    def region_mask(self, region: str) -> None:
        from frgd.faces import face_region_mask, transform_points

        from .document import CROP_SIZE

        face = self.doc.face()
        if face is None:
            return
        lm = transform_points(face.affine, face.landmarks)
        try:
            mask = face_region_mask(CROP_SIZE, lm, region)
        except InputError as err:
            self.error(str(err))
            return
        self.stack.push(commands.MaskCommand(self.doc, self.doc.selected, face.mask, mask, f"Mask {region}"))

    # ---------------------------------------------------------------------------------------------------- tools
    def set_tool(self, tool: str) -> None:
        self.canvas.set_tool(tool)
        self.tool_actions[tool].setChecked(True)

    def set_brush_size(self, radius: float) -> None:
        self.canvas.set_brush_size(radius)
        self.settings.set("brush_size", self.canvas.brush_size)

    def _ask_feather(self) -> None:
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
        self.gfpgan_panel.refresh()
        self.frgd_panel.update_enabled()
        self.faces_panel.refresh()

    def _panes_changed(self) -> None:
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

    def refresh_view(self) -> None:
        if self.doc.photo is None:
            return
        name = self.view_combo.currentText() or "Result"
        if name == "Original":
            img = self.doc.photo
        elif name == "Result":
            img = self.doc.composite()
        else:
            img = self.doc.pane_results.get(name, self.doc.composite())
        self.canvas.set_image(img)

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
        has_photo = self.doc.photo is not None
        has_face = self.doc.face() is not None
        self.a_save.setEnabled(has_photo)
        self.a_save_session.setEnabled(has_photo)
        self.a_detect.setEnabled(has_photo)
        self.a_resample.setEnabled(has_face)
        self.a_add_ref.setEnabled(has_face)
        self.a_clear_mask.setEnabled(has_face)
        self.a_invert_mask.setEnabled(has_face)
        self.a_cancel.setEnabled(self.jobs.busy)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.interactive and not self.stack.isClean() and self.doc.photo is not None:
            answer = QMessageBox.question(self, "FRGD Studio", "Quit without saving the session?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.jobs.shutdown()
        super().closeEvent(event)
