"""The photo canvas: a ``QGraphicsView`` showing the result with face outlines, labels and the mask overlay.

Scene coordinates are Qt image coordinates of the ORIGINAL photo (pixel ``(x, y)`` covers ``[x, x+1)``); the canvas
emits photo coordinates in the OpenCV convention used by :mod:`frgd.faces` (pixel centre at the integer), i.e.
``scene - 0.5``. A displayed image of another size (an SR result) is scaled to cover the photo.

Navigation: mouse wheel zooms around the cursor; drag with the middle button, or with the left button while Space is
held (or in the Select tool), pans; :meth:`fit` and :meth:`actual_size` reset the zoom.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPolygonF, QTransform
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsPolygonItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from .document import Document
from .qtimage import mask_overlay, to_pixmap

TOOLS = ("select", "brush", "eraser", "patch")
FACE_COLOR = QColor(60, 200, 255)
SELECTED_COLOR = QColor(255, 200, 40)


def crop_to_scene_transform(inverse: np.ndarray) -> QTransform:
    """QTransform mapping Qt crop-pixmap coordinates to scene coordinates (both ``opencv + 0.5``)."""
    m = np.asarray(inverse, np.float64)
    dx = m[0, 2] + 0.5 - 0.5 * (m[0, 0] + m[0, 1])
    dy = m[1, 2] + 0.5 - 0.5 * (m[1, 0] + m[1, 1])
    return QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], dx, dy)


class Canvas(QGraphicsView):
    """Interactive photo view. Paint tools emit ``stroke*`` signals in photo (OpenCV) coordinates."""

    strokeBegan = Signal(float, float)
    strokeMoved = Signal(float, float)
    strokeEnded = Signal()
    faceClicked = Signal(int)
    zoomChanged = Signal(float)
    toolChanged = Signal(str)
    brushSizeChanged = Signal(float)

    def __init__(self, doc: Document, parent=None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setMouseTracking(True)
        self.setBackgroundBrush(QBrush(QColor(38, 38, 42)))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)  # the main window handles file drops

        self.image_item = QGraphicsPixmapItem()
        self.image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.image_item.setZValue(0)
        self.scene().addItem(self.image_item)
        self.face_items: list[tuple[QGraphicsPolygonItem, QGraphicsSimpleTextItem, QGraphicsPixmapItem]] = []
        self.cursor_item = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 255), 1.5)
        pen.setCosmetic(True)
        self.cursor_item.setPen(pen)
        self.cursor_item.setZValue(10)
        self.cursor_item.setVisible(False)
        self.scene().addItem(self.cursor_item)

        self.tool = "select"
        self.brush_size = 24.0  # radius in photo pixels
        self.show_mask = True
        self.show_faces = True
        self._painting = False
        self._panning = False
        self._space = False
        self._pan_last = QPointF()
        self._image_shape: tuple[int, int] | None = None

        doc.photoChanged.connect(self._on_photo)
        doc.facesChanged.connect(self.refresh_faces)
        doc.selectionChanged.connect(lambda _i: self.refresh_faces())
        doc.maskChanged.connect(self.refresh_mask)

    # ----- content ---------------------------------------------------------------------------------------------
    def _on_photo(self) -> None:
        self.set_image(self.doc.photo)
        self.refresh_faces()
        self.fit()

    def set_image(self, img: np.ndarray | None) -> None:
        """Show ``img`` (``(h, w, 3)``), scaled to cover the original photo's scene rectangle."""
        if img is None:
            self.image_item.setPixmap(to_pixmap(np.zeros((1, 1, 3), np.uint8)))
            self._image_shape = None
            return
        self.image_item.setPixmap(to_pixmap(img))
        self._image_shape = img.shape[:2]
        photo = self.doc.photo if self.doc.photo is not None else img
        self.image_item.setScale(photo.shape[1] / img.shape[1])
        self.scene().setSceneRect(QRectF(0, 0, photo.shape[1], photo.shape[0]))

    def refresh_faces(self) -> None:
        for poly, label, overlay in self.face_items:
            for item in (poly, label, overlay):
                self.scene().removeItem(item)
        self.face_items = []
        for i, face in enumerate(self.doc.faces):
            color = SELECTED_COLOR if i == self.doc.selected else FACE_COLOR
            pts = face.polygon() + 0.5
            poly = QGraphicsPolygonItem(QPolygonF([QPointF(float(x), float(y)) for x, y in pts]))
            pen = QPen(color, 2.0 if i == self.doc.selected else 1.4)
            pen.setCosmetic(True)
            poly.setPen(pen)
            poly.setZValue(3)
            label = QGraphicsSimpleTextItem(f"{i + 1}")
            label.setBrush(QBrush(color))
            f = label.font()
            f.setBold(True)
            f.setPointSize(11)
            label.setFont(f)
            label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            label.setPos(QPointF(float(pts[:, 0].min()), float(pts[:, 1].min())))
            label.setZValue(4)
            overlay = QGraphicsPixmapItem(mask_overlay(face.mask))
            overlay.setTransform(crop_to_scene_transform(face.inverse))
            overlay.setZValue(2)
            overlay.setVisible(self.show_mask)
            poly.setVisible(self.show_faces)
            label.setVisible(self.show_faces)
            for item in (poly, label, overlay):
                self.scene().addItem(item)
            self.face_items.append((poly, label, overlay))

    def refresh_mask(self, index: int) -> None:
        if 0 <= index < len(self.face_items):
            self.face_items[index][2].setPixmap(mask_overlay(self.doc.faces[index].mask))

    def set_show_mask(self, on: bool) -> None:
        self.show_mask = bool(on)
        for _p, _l, overlay in self.face_items:
            overlay.setVisible(self.show_mask)

    def set_show_faces(self, on: bool) -> None:
        self.show_faces = bool(on)
        for poly, label, _o in self.face_items:
            poly.setVisible(self.show_faces)
            label.setVisible(self.show_faces)

    # ----- tools -----------------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        painting = tool != "select"
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if painting else Qt.CursorShape.ArrowCursor)
        self.cursor_item.setVisible(painting and self.underMouse())
        self.toolChanged.emit(tool)

    def set_brush_size(self, radius: float) -> None:
        self.brush_size = float(min(max(radius, 1.0), 2000.0))
        self._update_cursor_item(self.cursor_item.rect().center())
        self.brushSizeChanged.emit(self.brush_size)

    def _update_cursor_item(self, center: QPointF) -> None:
        r = self.brush_size
        self.cursor_item.setRect(QRectF(center.x() - r, center.y() - r, 2 * r, 2 * r))

    # ----- zoom / pan ------------------------------------------------------------------------------------------
    def zoom(self) -> float:
        return float(self.transform().m11())

    def fit(self) -> None:
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self.zoomChanged.emit(self.zoom())

    def actual_size(self) -> None:
        self.setTransform(QTransform())
        self.zoomChanged.emit(1.0)

    def zoom_by(self, factor: float) -> None:
        z = self.zoom()
        factor = min(max(factor, 0.02 / z), 64.0 / z)
        self.scale(factor, factor)
        self.zoomChanged.emit(self.zoom())

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(1.25 ** (delta / 120.0))
        event.accept()

    # ----- mouse -----------------------------------------------------------------------------------------------
    def photo_point(self, pos) -> tuple[float, float]:
        """Widget position -> photo pixel coordinates (OpenCV convention)."""
        p = self.mapToScene(pos)
        return float(p.x()) - 0.5, float(p.y()) - 0.5

    def _start_pan(self, pos) -> None:
        self._panning = True
        self._pan_last = QPointF(pos)
        self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        if event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and (self._space or self.tool == "select")
        ):
            if self.tool == "select" and not self._space and event.button() == Qt.MouseButton.LeftButton:
                x, y = self.photo_point(pos.toPoint())
                idx = self.doc.face_at(x, y)
                if idx >= 0:
                    self.faceClicked.emit(idx)
                    event.accept()
                    return
            self._start_pan(pos)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self.doc.photo is not None:
            self._painting = True
            x, y = self.photo_point(pos.toPoint())
            self.strokeBegan.emit(x, y)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        if self._panning:
            d = pos - self._pan_last
            self._pan_last = QPointF(pos)
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(round(d.x())))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(round(d.y())))
            event.accept()
            return
        scene = self.mapToScene(pos.toPoint())
        if self.tool != "select":
            self.cursor_item.setVisible(True)
            self._update_cursor_item(scene)
        if self._painting:
            x, y = self.photo_point(pos.toPoint())
            self.strokeMoved.emit(x, y)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._panning and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = False
            self.set_tool(self.tool)
            event.accept()
            return
        if self._painting and event.button() == Qt.MouseButton.LeftButton:
            self._painting = False
            self.strokeEnded.emit()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.cursor_item.setVisible(False)
        super().leaveEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.set_tool(self.tool)
            event.accept()
            return
        super().keyReleaseEvent(event)
