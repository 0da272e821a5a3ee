"""The main window's actions, menus and toolbar (declarations only: every action calls the model or the window)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMainWindow

from .model.settings import AUTOSAVE_CHOICES, DEVICE_CHOICES, RESULT_SCALE_AUTO, RESULT_SCALE_CHOICES


def icon(name: str) -> QIcon:
    """An icon from ``frgd_resources/icons`` (an empty icon when the file is missing)."""
    try:
        from frgd_resources import resource_path

        p = resource_path("icons", f"{name}.svg")
        return QIcon(str(p)) if p.is_file() else QIcon()
    except Exception:  # pragma: no cover - resources package missing
        return QIcon()


def act(
    w: QMainWindow, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False, ico: str = ""
) -> QAction:
    a = QAction(text, w)
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
    w.addAction(a)
    return a


def history_action(w: QMainWindow, redo: bool) -> QAction:
    """Undo (or Redo) on the window's ``QUndoStack`` through :meth:`EditorModel.history_step` (a stroke being painted
    becomes its own step first), enabled and labelled ("Undo Paint mask") as the stack says."""
    stack, label = w.stack, "&Redo" if redo else "&Undo"
    a = QAction(label, w)
    step = stack.redo if redo else stack.undo
    a.triggered.connect(lambda _c=False: w.model.history_step(step))

    def relabel(text: str) -> None:
        a.setText(f"{label} {text}" if text else label)

    (stack.canRedoChanged if redo else stack.canUndoChanged).connect(a.setEnabled)
    (stack.redoTextChanged if redo else stack.undoTextChanged).connect(relabel)
    a.setEnabled(stack.canRedo() if redo else stack.canUndo())
    relabel(stack.redoText() if redo else stack.undoText())
    return a


def build_actions(w: QMainWindow) -> None:
    m, c = w.model, w.canvas
    w.a_open = act(w, "&Open Photo…", w.open_photo_dialog, QKeySequence.StandardKey.Open, "Open a photo",
                            ico="open")  # fmt: skip
    w.a_open_session = act(w, "Open &Session…", w.open_session_dialog, "Ctrl+Shift+O")
    w.a_save_session = act(w, "&Save Session", lambda: m.save_session(m.session_path),
                                    QKeySequence.StandardKey.Save, "Save the session", ico="save")  # fmt: skip
    w.a_save_session_as = act(w, "Save Session &As…", lambda: m.save_session(), "Ctrl+Shift+S")
    tip = "Export an image you choose, with provenance metadata (never over the original)"
    w.a_export = act(w, "&Export…", w.export_dialog, "Ctrl+E", tip)
    w.a_import_damage = act(w, "Import &Damage Mask…", w.import_damage_dialog, None,
                            "Add the white pixels of a photo-sized mask image to the damage marks")  # fmt: skip
    w.a_export_damage = act(w, "Export Damage &Mask…", w.export_damage_dialog, None,
                            "Write the damage marks as a mask image (frgd enhance --damage)")  # fmt: skip
    w.a_export_faces = act(w, "Export &Faces…", w.export_faces_dialog, None,
                           "Write every face into a folder: its aligned input, its result with provenance, and an "
                           "index to paste retouched crops back (frgd faces paste)")  # fmt: skip
    w.a_import_face = act(w, "Import Face &Result…", w.import_face_dialog, None,
                          "Make a square image (a face crop retouched or restored elsewhere) the selected face's "
                          "result and a gallery entry (one undo step; counted as identity changed)")  # fmt: skip
    w.a_rotate = {k: act(w, text, lambda k=k: m.rotate(k), None,
                         f"{text}: the photo with its faces, marks and pane results (one undo step)")
                  for k, text in m.ROTATIONS.items()}  # fmt: skip
    w.a_quit = act(w, "&Quit", w.close, QKeySequence.StandardKey.Quit)
    w.a_undo = history_action(w, redo=False)
    w.a_undo.setShortcut(QKeySequence("Ctrl+Z"))
    w.a_undo.setIcon(icon("undo"))
    w.a_redo = history_action(w, redo=True)
    w.a_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    w.a_redo.setIcon(icon("redo"))
    w.addAction(w.a_undo)
    w.addAction(w.a_redo)
    w.a_clear_mask = act(w, "Clear Mask", m.clear_mask, "Ctrl+Shift+M")
    w.a_invert_mask = act(w, "Invert Mask", m.invert_mask, "Ctrl+I")
    w.a_clear_damage = act(w, "Clear Damage", m.clear_damage, "Ctrl+Shift+D", "Remove every damage mark of the photo")
    tip = "Mark the scratches, cracks, spots and tears the damage detector finds (check them)"
    w.a_detect_damage = act(w, "Detect D&amage", m.detect_damage, "Ctrl+Shift+F", tip)
    w.a_fill_damage = act(w, "&Fill Damage", m.fill_damage, None,
                          "Fill the marked damage again (after a cancelled or failed fill)")  # fmt: skip
    w.a_fit = act(w, "&Fit", c.fit, "F", "Fit the photo in the window", ico="fit")
    w.a_100 = act(w, "&100%", c.actual_size, "1", "Actual pixels")
    w.a_zoom_in = act(w, "Zoom In", lambda: c.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn)
    w.a_zoom_out = act(w, "Zoom Out", lambda: c.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut)
    w.a_mask = act(w, "Show &Mask", c.set_show_mask, "M", "Show the mask overlay", checkable=True)
    w.a_mask.setChecked(True)
    w.a_faces = act(w, "Show Face &Outlines", c.set_show_faces, "O", checkable=True)
    w.a_faces.setChecked(True)
    w.a_compare = act(w, "&Compare", w.toggle_compare, "C", "Show or hide the comparison", ico="compare")
    w.a_split = act(
        w,
        "Compare &Before/After",
        w.set_before_after,
        "\\",
        "Split the canvas: the original left of the line, the shown image right of it",
        checkable=True,
        ico="split",
    )
    w.a_split_reset = act(w, "Reset Split", lambda: c.set_split(0.5), "Shift+\\")
    w.tool_group = QActionGroup(w)
    w.tool_actions: dict[str, QAction] = {}
    tools = (("select", "&Select / Pan", "V", "Select faces, drag to pan"),
             ("brush", "&Brush", "B", "Paint the region FRGD may change"),
             ("damage", "&Damage", "D", "Mark scratches and stains anywhere: filled, read by no restorer"),
             ("eraser", "&Eraser", "E", "Erase from the layer last painted (the mask, or the damage)"),
             ("patch", "&Patch", "P", "Brush the chosen gallery sample into the result"))  # fmt: skip
    for tool, text, key, tip in tools:
        a = act(w, text, lambda t=tool: w.set_tool(t), key, f"{tip} ({key})", ico=tool)
        a.setCheckable(True)
        w.tool_group.addAction(a)
        w.tool_actions[tool] = a
    w.a_smaller = act(w, "Smaller Brush", lambda: w.set_brush_size(c.brush_size / 1.25), "[")
    w.a_bigger = act(w, "Bigger Brush", lambda: w.set_brush_size(c.brush_size * 1.25), "]")
    w.a_detect = act(w, "&Detect Faces", m.detect, "Ctrl+D", "Detect faces", ico="detect")
    w.a_resample = act(w, "&Resample", m.frgd.run, "R", "Generate FRGD samples for the face", ico="resample")
    w.a_resample_all = act(w, "Resample &All Faces", m.frgd.run_all, "Shift+R",
                           "Sample every face and apply the first new sample to each face without a result "
                           "(one undo step)")  # fmt: skip
    w.a_add_ref = act(w, "Add &Reference…", w.references_panel.add, "Ctrl+R")
    w.a_cancel = act(w, "&Cancel Job", w.cancel_jobs, "Esc")


def build_menus(w: QMainWindow) -> None:
    mb = w.menuBar()
    m = mb.addMenu("&File")
    m.addAction(w.a_open)
    w.recent_menu = m.addMenu("Open &Recent")
    for a in (w.a_open_session, None, w.a_save_session, w.a_save_session_as, w.a_export, None, w.a_export_faces,
              w.a_import_face, None, w.a_import_damage, w.a_export_damage, None, w.a_quit):  # fmt: skip
        m.addAction(a) if a else m.addSeparator()
    w.refresh_recent()
    m = mb.addMenu("&Edit")
    for a in (w.a_undo, w.a_redo, None, w.a_clear_mask, w.a_invert_mask, w.a_clear_damage):
        m.addAction(a) if a else m.addSeparator()
    m = mb.addMenu("&Image")
    for a in w.a_rotate.values():
        m.addAction(a)
    m = mb.addMenu("&View")
    for a in (w.a_fit, w.a_100, w.a_zoom_in, w.a_zoom_out, w.a_mask, w.a_faces, w.a_compare, w.a_split,
              w.a_split_reset):  # fmt: skip
        m.addAction(a)
    m.addSeparator()
    for dock in w.docks.values():
        m.addAction(dock.toggleViewAction())
    m = mb.addMenu("&Tools")
    for a in (*w.tool_actions.values(), w.a_smaller, w.a_bigger):
        m.addAction(a)
    m = mb.addMenu("&Run")
    for a in (w.a_detect, w.a_detect_damage, w.a_fill_damage, w.a_add_ref, w.a_resample, w.a_resample_all,
              w.a_cancel):  # fmt: skip
        m.addAction(a)
    m = mb.addMenu("&Settings")
    dm = m.addMenu("&Device")
    w.device_group = QActionGroup(w)
    for d in DEVICE_CHOICES:
        a = QAction(d, w, checkable=True)
        a.setChecked(d == w.settings.get("device"))
        a.triggered.connect(lambda _c=False, dev=d: w.model.set_device(dev))
        w.device_group.addAction(a)
        dm.addAction(a)
    am = m.addMenu("&Autosave")
    w.autosave_group = QActionGroup(w)
    for minutes in AUTOSAVE_CHOICES:
        a = QAction("Off" if minutes == 0 else f"Every {minutes} min", w, checkable=True)
        a.setChecked(minutes == w.settings.get("autosave_minutes"))
        a.triggered.connect(lambda _c=False, n=minutes: w.set_autosave_minutes(n))
        w.autosave_group.addAction(a)
        am.addAction(a)
    m.addAction("FRGD Model Folder…", w.frgd_panel.choose_model)
    m.addAction("Brush Feather…", w.ask_feather)
    mb.addMenu("&Help").addAction("&About FRGD Studio", w.about)


def build_toolbar(w: QMainWindow) -> None:
    tb = w.addToolBar("Main")
    tb.setObjectName("toolbar_main")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    for a in (w.a_open, w.a_save_session, None, w.a_undo, w.a_redo, None, *w.tool_actions.values(),
              None, w.a_detect, w.a_resample, w.a_fit, w.a_compare, w.a_split, None):  # fmt: skip
        tb.addAction(a) if a else tb.addSeparator()
    tb.addWidget(QLabel(" Show: "))
    w.view_combo = QComboBox()
    w.view_combo.setMinimumContentsLength(18)
    w.view_combo.currentTextChanged.connect(lambda _t: w.refresh_view())
    tb.addWidget(w.view_combo)
    tb.addWidget(QLabel("  Size: "))
    w.size_combo = QComboBox()
    w.size_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # "Auto (×3)" comes later
    for scale in RESULT_SCALE_CHOICES:
        w.size_combo.addItem("Auto" if scale == RESULT_SCALE_AUTO else f"×{scale}", scale)
    show_result_scale(w.size_combo, int(w.settings.get("result_scale")))
    w.model.resultScaleChosen.connect(lambda scale: show_result_scale(w.size_combo, scale))  # a session's Size too
    w.size_combo.activated.connect(lambda i: w.model.set_result_scale(w.size_combo.itemData(i)))
    tb.addWidget(w.size_combo)
    w.brush_label = QLabel(f"  brush {w.canvas.brush_size:.0f} px")
    tb.addWidget(w.brush_label)
    w.canvas.brushSizeChanged.connect(lambda r: w.brush_label.setText(f"  brush {r:.0f} px"))


def show_result_scale(box: QComboBox, scale: int) -> None:
    """Select ``scale`` in the Size box (a valid one outside :data:`RESULT_SCALE_CHOICES`, from the settings file or
    a session, is added in order); selecting does not choose (only ``activated`` calls the model)."""
    k = box.findData(scale)
    if k < 0:
        k = sum(1 for i in range(box.count()) if box.itemData(i) < scale)
        box.insertItem(k, f"×{scale}", scale)
    box.setCurrentIndex(k)
