"""Comparison view: any two results side by side with synchronised zoom/pan, or a before/after split slider.

Images of different sizes (a 128x128 face sample next to another sample, an SR result next to the original) are
shown scaled to a common width so the same scene point is the same image point in both panes. The split view is a
zoomable view too (wheel zoom, drag pan); its line is dragged by its handle or set by the slider. It opens on
:func:`default_pair` (Original vs Result) until the user picks a pair.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QTransform
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QSlider,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .canvas import ClippedPixmapItem, SplitOverlay
from .qtimage import ShownImage

if TYPE_CHECKING:
    from .model.document import Document

logger = logging.getLogger(__name__)

COMMON_WIDTH = 1024.0


def default_pair(names: list[str], pane_names: Iterable[str] = ()) -> tuple[str, str]:
    """The two images the comparison opens on, from the names of :meth:`Document.results` (in its order).

    Right: ``Result`` when there is one, else the newest pane result (``pane_names`` in insertion order), else the
    selected face's newest sample (or result), else the last other image. Left: ``Original``, or the face's input when
    the right is a face image. The same name twice only when there is a single image; ``("", "")`` when none.
    """
    if not names:
        return "", ""
    left = "Original" if "Original" in names else names[0]
    others = [n for n in names if n != left]
    if not others:
        return left, left
    panes = [n for n in pane_names if n in others]
    faces = [n for n in others if n.startswith("Face ") and (": sample" in n or n.endswith(": result"))]
    if "Result" in others:
        right = "Result"
    elif panes:
        right = panes[-1]
    elif faces:
        samples = [n for n in faces if ": sample" in n]
        right = (samples or faces)[-1]
        face_input = right.split(":", 1)[0] + ": input"
        if face_input in names:
            left = face_input
    else:
        right = others[-1]
    return left, right


class SyncedView(QGraphicsView):
    """A zoomable view that mirrors its transform and scroll position to linked views."""

    viewMoved = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setBackgroundBrush(QColor(38, 38, 42))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.shown = ShownImage(self.item)
        """Redraws only what changed; :class:`CompareWidget` gives it the document's composite changes."""
        self._syncing = False
        self.horizontalScrollBar().valueChanged.connect(self._moved)
        self.verticalScrollBar().valueChanged.connect(self._moved)

    def set_image(self, img: np.ndarray | None) -> None:
        """Show ``img`` scaled to :data:`COMMON_WIDTH` scene units wide (the scene rect follows it)."""
        if img is None:
            self.shown.show(None)
            return
        self.shown.show(img)
        s = COMMON_WIDTH / img.shape[1]
        self.item.setScale(s)
        self.scene().setSceneRect(QRectF(0, 0, COMMON_WIDTH, img.shape[0] * s))

    def _moved(self, *_a) -> None:
        if not self._syncing:
            self.viewMoved.emit()

    def wheelEvent(self, event) -> None:  # noqa: N802
        delta = event.angleDelta().y()
        if delta:
            f = 1.25 ** (delta / 120.0)
            self.scale(f, f)
            self.viewMoved.emit()
        event.accept()

    def copy_view(self, other: SyncedView) -> None:
        """Take ``other``'s zoom and scroll position."""
        self._syncing = True
        try:
            self.setTransform(other.transform())
            self.horizontalScrollBar().setValue(other.horizontalScrollBar().value())
            self.verticalScrollBar().setValue(other.verticalScrollBar().value())
        finally:
            self._syncing = False

    def fit(self) -> None:
        if not self.scene().sceneRect().isEmpty():
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
            self.viewMoved.emit()

    def match_view(self, other: QGraphicsView) -> None:
        """Take ``other``'s zoom and centre it on the same scene point (views of different sizes)."""
        self._syncing = True
        try:
            self.setTransform(other.transform())
            self.centerOn(other.mapToScene(other.viewport().rect().center()))
        finally:
            self._syncing = False


class SplitView(SyncedView):
    """Before/after in one zoomable view: ``before`` left of a vertical line at :attr:`position` (0..1 of the image
    width), ``after`` right of it, in one scene rect so wheel zoom and drag pan move both. Dragging the line's handle
    moves it (``positionChanged``); dragging elsewhere pans."""

    positionChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.before_item = ClippedPixmapItem()
        self.before_item.setZValue(1)
        self.scene().addItem(self.before_item)
        self.before_shown = ShownImage(self.before_item)
        self.overlay = SplitOverlay(self, self.before_item)
        self._dragging = False
        self._grab_dx = 0.0
        self.setMouseTracking(True)
        self.setMinimumSize(160, 120)

    @property
    def position(self) -> float:
        """The split as a fraction of the image width."""
        return self.overlay.fraction

    def set_images(
        self, before: np.ndarray | None, after: np.ndarray | None, before_name: str = "", after_name: str = ""
    ) -> None:
        """Show ``before`` left and ``after`` right of the line; ``after`` (else ``before``) sets the scene rect."""
        self.set_image(after)
        ref = after if after is not None else before
        if ref is not None and after is None:
            self.scene().setSceneRect(QRectF(0, 0, COMMON_WIDTH, ref.shape[0] * COMMON_WIDTH / ref.shape[1]))
        self.before_shown.show(before)
        if before is not None:
            self.before_item.setScale(COMMON_WIDTH / before.shape[1])
        self.overlay.before_name, self.overlay.after_name = before_name, after_name
        self.overlay.update_clip()

    def set_position(self, pos: float) -> None:
        """Move the line to ``pos`` (clamped to 0..1) of the image width."""
        if self.overlay.set_fraction(pos):
            self.positionChanged.emit(self.overlay.fraction)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt override
        super().drawForeground(painter, rect)
        if self.item.pixmap().isNull() and self.before_item.pixmap().isNull():
            return
        self.overlay.paint(painter)

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 - Qt override
        super().scrollContentsBy(dx, dy)
        self.viewport().update()  # the handle and the labels stay put in the viewport

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self.overlay.hit(event.position()):
            self._dragging = True
            self._grab_dx = event.position().x() - self.overlay.line_x()
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._dragging:
            self.set_position(self.overlay.fraction_at(event.position().x() - self._grab_dx))
            event.accept()
            return
        super().mouseMoveEvent(event)
        if not event.buttons():
            near = self.overlay.hit(event.position())
            self.viewport().setCursor(Qt.CursorShape.SplitHCursor if near else Qt.CursorShape.OpenHandCursor)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._dragging and event.button() == Qt.MouseButton.LeftButton:
            self._dragging = False
            event.accept()
            return
        super().mouseReleaseEvent(event)


class CompareWidget(QWidget):
    """Pick two results by name; show them side by side (synchronised) or as a split before/after.

    Opens on :func:`default_pair` and follows it as results appear, until the user picks a pair (a combo box or
    :meth:`set_pair`); a new photo goes back to the default.
    """

    def __init__(self, doc: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.left_combo = QComboBox()
        self.right_combo = QComboBox()
        self.left_combo.setMinimumContentsLength(16)
        self.right_combo.setMinimumContentsLength(16)
        self.mode_button = QToolButton()
        self.mode_button.setText("Split")
        self.mode_button.setCheckable(True)
        self.mode_button.setToolTip("Toggle between side by side and a before/after split slider")
        self.fit_button = QToolButton()
        self.fit_button.setText("Fit")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 1000)
        self.slider.setValue(500)
        self.slider.setVisible(False)

        self.left = SyncedView()
        self.right = SyncedView()
        self.left.viewMoved.connect(lambda: self.right.copy_view(self.left))
        self.right.viewMoved.connect(lambda: self.left.copy_view(self.right))
        pair = QWidget()
        pl = QHBoxLayout(pair)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.left)
        pl.addWidget(self.right)
        self.split = SplitView()
        for view in (self.left, self.right, self.split):
            view.shown.changes = doc.composite_change  # a patch dab redraws its box, not the whole result
        self.stack = QStackedWidget()
        self.stack.addWidget(pair)
        self.stack.addWidget(self.split)

        top = QHBoxLayout()
        top.addWidget(QLabel("Left / before:"))
        top.addWidget(self.left_combo, 1)
        top.addWidget(QLabel("Right / after:"))
        top.addWidget(self.right_combo, 1)
        top.addWidget(self.mode_button)
        top.addWidget(self.fit_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.stack, 1)
        lay.addWidget(self.slider)

        self._pair = None
        self._stale = False
        self._auto_pair = True  # follow default_pair until the user picks
        self.left_combo.currentTextChanged.connect(self._update_images)
        self.right_combo.currentTextChanged.connect(self._update_images)
        self.left_combo.activated.connect(self._user_picked)
        self.right_combo.activated.connect(self._user_picked)
        self.mode_button.toggled.connect(self.set_split_mode)
        self.slider.valueChanged.connect(lambda v: self.split.set_position(v / 1000.0))
        self.split.positionChanged.connect(self._split_moved)
        self.fit_button.clicked.connect(self.fit)
        # document changes (a patch stroke: one per dab) refresh the views once per event-loop turn
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self.refresh)
        for sig in (doc.photoChanged, doc.appliedChanged, doc.samplesChanged, doc.paneResultsChanged,
                    doc.repairedChanged, doc.upscaledChanged):  # fmt: skip
            sig.connect(lambda *_a: self._refresh_timer.start(0))
        doc.selectionChanged.connect(lambda *_a: self._refresh_timer.start(0))
        doc.photoChanged.connect(self._new_photo)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(900, 380)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(320, 260)

    def names(self) -> list[str]:
        return list(self.doc.results())

    def _new_photo(self) -> None:
        self._auto_pair = True

    def _user_picked(self, *_a) -> None:
        self._auto_pair = False

    def refresh(self, *_args) -> None:
        """Re-list the results; keep the shown pair (the default pair until the user picks one) and redraw."""
        names = self.names()
        current = (self.left_combo.currentText(), self.right_combo.currentText())
        if self._auto_pair or not set(current) <= set(names):
            current = default_pair(names, getattr(self.doc, "pane_results", {}))
        for combo, name in zip((self.left_combo, self.right_combo), current):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.setCurrentText(name)
            combo.blockSignals(False)
        self._update_images()

    def set_pair(self, left: str, right: str) -> None:
        """Choose the two results to compare by name (see :meth:`Document.results`); kept until the user picks."""
        self._auto_pair = False
        self.left_combo.setCurrentText(left)
        self.right_combo.setCurrentText(right)
        self._update_images()

    def pair(self) -> tuple[str, str]:
        """The names shown left (before) and right (after)."""
        return self.left_combo.currentText(), self.right_combo.currentText()

    @property
    def split_mode(self) -> bool:
        """True while the before/after split is shown instead of the side-by-side panes."""
        return self.stack.currentIndex() == 1

    def _update_images(self, *_a) -> None:
        if not self.isVisible() and self._pair is not None:
            self._stale = True  # refreshed when shown (avoid work while painting with the view hidden)
            return
        self._stale = False
        results = self.doc.results()
        pair = (self.left_combo.currentText(), self.right_combo.currentText())
        a, b = results.get(pair[0]), results.get(pair[1])
        shapes = (None if a is None else a.shape, None if b is None else b.shape)
        if self.split_mode:  # only the shown mode is redrawn; the other is redrawn when it is shown
            self.split.set_images(a, b, *pair)
        else:
            self.left.set_image(a)
            self.right.set_image(b)
        if (pair, shapes) != self._pair:  # keep the user's zoom while the same pair just updates
            self._pair = (pair, shapes)
            self.fit()
        elif not self.split_mode:
            self.right.copy_view(self.left)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            self._update_images()

    def set_split_mode(self, on: bool) -> None:
        """Show the before/after split (True) or the side-by-side panes (False), at the same zoom and centre."""
        on = bool(on)
        if on != self.split_mode:
            shown = self.split if self.split_mode else self.left
            self.stack.setCurrentIndex(1 if on else 0)
            if self._pair is not None:
                self._update_images()
            if on:
                self.split.match_view(shown)
            else:
                self.left.match_view(shown)
                self.right.copy_view(self.left)
        self.slider.setVisible(on)
        if self.mode_button.isChecked() != on:
            self.mode_button.setChecked(on)

    def _split_moved(self, fraction: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(fraction * 1000))
        self.slider.blockSignals(False)

    def fit(self) -> None:
        """Fit the images in the views (both modes)."""
        self.left.fit()
        self.right.copy_view(self.left)
        self.split.fit()

    def synced(self) -> bool:
        """True when both side-by-side panes show the same zoom and scroll position."""
        t1, t2 = self.left.transform(), self.right.transform()
        return (
            QTransform(t1) == QTransform(t2)
            and self.left.horizontalScrollBar().value() == self.right.horizontalScrollBar().value()
            and self.left.verticalScrollBar().value() == self.right.verticalScrollBar().value()
        )
