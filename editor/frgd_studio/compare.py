"""Comparison view: any two results side by side with synchronised zoom/pan, or a before/after split slider.

Images of different sizes (a 128x128 face sample next to another sample, an SR result next to the original) are
shown scaled to a common width so the same scene point is the same image point in both panes.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap, QTransform
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

from .document import Document
from .qtimage import to_pixmap

COMMON_WIDTH = 1024.0


class SyncedView(QGraphicsView):
    """A zoomable view that mirrors its transform and scroll position to linked views."""

    viewMoved = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setBackgroundBrush(QColor(38, 38, 42))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self._syncing = False
        self.horizontalScrollBar().valueChanged.connect(self._moved)
        self.verticalScrollBar().valueChanged.connect(self._moved)

    def set_image(self, img: np.ndarray | None) -> None:
        if img is None:
            self.item.setPixmap(QPixmap())
            return
        self.item.setPixmap(to_pixmap(img))
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


class SplitView(QWidget):
    """Before/after: the left part of the widget shows ``before``, the right part ``after``; the split follows
    :attr:`position` in ``[0, 1]`` (set by a slider or by dragging)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.before: QPixmap | None = None
        self.after: QPixmap | None = None
        self.position = 0.5
        self.setMinimumSize(160, 120)

    def set_images(self, before: np.ndarray | None, after: np.ndarray | None) -> None:
        self.before = to_pixmap(before) if before is not None else None
        self.after = to_pixmap(after) if after is not None else None
        self.update()

    def set_position(self, pos: float) -> None:
        self.position = float(min(max(pos, 0.0), 1.0))
        self.update()

    def _target(self) -> QRectF:
        ref = self.after or self.before
        if ref is None:
            return QRectF()
        w, h = self.width(), self.height()
        s = min(w / ref.width(), h / ref.height())
        tw, th = ref.width() * s, ref.height() * s
        return QRectF((w - tw) / 2, (h - th) / 2, tw, th)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(38, 38, 42))
        target = self._target()
        if target.isEmpty():
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        split = target.left() + target.width() * self.position
        for pix, clip in (
            (self.before, QRectF(target.left(), target.top(), split - target.left(), target.height())),
            (self.after, QRectF(split, target.top(), target.right() - split, target.height())),
        ):
            if pix is None or clip.width() <= 0:
                continue
            p.save()
            p.setClipRect(clip)
            p.drawPixmap(target, pix, QRectF(pix.rect()))
            p.restore()
        pen = QPen(QColor(255, 255, 255), 2)
        p.setPen(pen)
        p.drawLine(QPointF(split, target.top()), QPointF(split, target.bottom()))
        p.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self._drag(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._drag(event)

    def _drag(self, event) -> None:
        t = self._target()
        if t.width() > 0:
            self.set_position((event.position().x() - t.left()) / t.width())


class CompareWidget(QWidget):
    """Pick two results by name; show them side by side (synchronised) or as a split before/after."""

    def __init__(self, doc: Document, parent=None) -> None:
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
        self.left_combo.currentTextChanged.connect(self._update_images)
        self.right_combo.currentTextChanged.connect(self._update_images)
        self.mode_button.toggled.connect(self.set_split_mode)
        self.slider.valueChanged.connect(lambda v: self.split.set_position(v / 1000.0))
        self.fit_button.clicked.connect(self.fit)
        # document changes (a patch stroke: one per dab) refresh the views once per event-loop turn
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self.refresh)
        for sig in (doc.photoChanged, doc.appliedChanged, doc.samplesChanged, doc.paneResultsChanged):
            sig.connect(lambda *_a: self._refresh_timer.start(0))
        doc.selectionChanged.connect(lambda *_a: self._refresh_timer.start(0))

    def names(self) -> list[str]:
        return list(self.doc.results())

    def refresh(self, *_args) -> None:
        names = self.names()
        for combo, default in ((self.left_combo, 0), (self.right_combo, 1)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            elif names:
                combo.setCurrentIndex(min(default, len(names) - 1) if combo is self.left_combo else len(names) - 1)
            combo.blockSignals(False)
        self._update_images()

    def set_pair(self, left: str, right: str) -> None:
        """Choose the two results to compare by name (see :meth:`Document.results`)."""
        self.left_combo.setCurrentText(left)
        self.right_combo.setCurrentText(right)
        self._update_images()

    def _update_images(self, *_a) -> None:
        if not self.isVisible() and self._pair is not None:
            self._stale = True  # refreshed when shown (avoid work while painting with the view hidden)
            return
        self._stale = False
        results = self.doc.results()
        pair = (self.left_combo.currentText(), self.right_combo.currentText())
        a, b = results.get(pair[0]), results.get(pair[1])
        shapes = (None if a is None else a.shape, None if b is None else b.shape)
        self.left.set_image(a)
        self.right.set_image(b)
        self.split.set_images(a, b)
        if (pair, shapes) != self._pair:  # keep the user's zoom while the same pair just updates
            self._pair = (pair, shapes)
            self.fit()
        else:
            self.right.copy_view(self.left)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            self._update_images()

    def set_split_mode(self, on: bool) -> None:
        self.stack.setCurrentIndex(1 if on else 0)
        self.slider.setVisible(bool(on))
        if self.mode_button.isChecked() != bool(on):
            self.mode_button.setChecked(bool(on))

    def fit(self) -> None:
        self.left.fit()
        self.right.copy_view(self.left)

    def synced(self) -> bool:
        """True when both side-by-side panes show the same zoom and scroll position."""
        t1, t2 = self.left.transform(), self.right.transform()
        return (
            QTransform(t1) == QTransform(t2)
            and self.left.horizontalScrollBar().value() == self.right.horizontalScrollBar().value()
            and self.left.verticalScrollBar().value() == self.right.verticalScrollBar().value()
        )
