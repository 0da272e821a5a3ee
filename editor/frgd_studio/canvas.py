"""The photo canvas: a ``QGraphicsView`` showing the result with face outlines, labels and the mask overlay.

Scene coordinates are Qt image coordinates of the ORIGINAL photo (pixel ``(x, y)`` covers ``[x, x+1)``); the canvas
emits photo coordinates in the OpenCV convention used by :mod:`frgd.faces` (pixel centre at the integer), i.e.
``scene - 0.5``. A displayed image of another size (an SR result) is scaled to cover the photo.

Navigation: mouse wheel zooms around the cursor; drag with the middle button, or with the left button while Space is
held (or in the Select tool), pans; :meth:`fit` and :meth:`actual_size` reset the zoom.

Painting: a left-button drag is one stroke. Shift+click paints a straight line from where the last stroke ended (any
paint tool, as in Photoshop and Krita: a long scratch is marked with a few clicks); the line and any drag that
follows are one stroke, so one undo step.

Before/after split (:meth:`Canvas.set_compare`): a *before* image is drawn over the shown (*after*) image, clipped to
the part left of a vertical line at :attr:`Canvas.split_fraction` of the photo width. Both images live in the same
scene rectangle, so zoom and pan move them together; the line, its handle and the two labels are drawn in viewport
pixels (not scaled by zoom). Dragging the handle (in any tool) moves the split; painting elsewhere still paints.
:class:`SplitOverlay` and :class:`ClippedPixmapItem` are shared with the comparison view (:mod:`frgd_studio.compare`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QTransform,
)
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsPolygonItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from .qtimage import DAMAGE_COLOR, ShownImage, layer_overlay, to_pixmap

if TYPE_CHECKING:
    from .model.document import Document

logger = logging.getLogger(__name__)

TOOLS = ("select", "brush", "damage", "eraser", "patch")
DAMAGE_TILE = 256
"""Side of the tiles the damage layer's overlay is drawn in: a dab redraws the tiles it touches, not the photo."""
FACE_COLOR = QColor(60, 200, 255)
SELECTED_COLOR = QColor(255, 200, 40)


def crop_to_scene_transform(inverse: np.ndarray) -> QTransform:
    """QTransform mapping Qt crop-pixmap coordinates to scene coordinates (both ``opencv + 0.5``)."""
    m = np.asarray(inverse, np.float64)
    dx = m[0, 2] + 0.5 - 0.5 * (m[0, 0] + m[0, 1])
    dy = m[1, 2] + 0.5 - 0.5 * (m[1, 0] + m[1, 1])
    return QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], dx, dy)


class ClippedPixmapItem(QGraphicsPixmapItem):
    """A pixmap item painted only left of a scene x (:attr:`clip_x`): the *before* side of a split."""

    def __init__(self) -> None:
        super().__init__()
        self.clip_x = float("inf")
        self.setTransformationMode(Qt.TransformationMode.SmoothTransformation)

    def set_clip_x(self, x: float) -> None:
        """Paint only the part of the pixmap left of scene x ``x``."""
        if x != self.clip_x:
            self.clip_x = float(x)
            self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self.clip_x == float("inf"):
            super().paint(painter, option, widget)
            return
        right = self.mapFromScene(QPointF(self.clip_x, 0.0)).x()
        br = self.boundingRect()
        if right <= br.left():
            return
        painter.save()
        painter.setClipRect(
            QRectF(br.left(), br.top(), min(right, br.right()) - br.left(), br.height()), Qt.ClipOperation.IntersectClip
        )
        super().paint(painter, option, widget)
        painter.restore()


class SplitOverlay:
    """Geometry, hit test and painting of a vertical before/after split over a ``QGraphicsView``'s scene rect.

    The split sits at :attr:`fraction` (0..1) of the scene rect's width, so zooming and panning keep it on the same
    image column; the line, the round handle and the ``Before:``/``After:`` labels are painted in viewport pixels from
    the view's ``drawForeground`` (:meth:`paint`). ``before_item`` is clipped to the left of the line.
    """

    HANDLE_RADIUS = 13.0
    GRAB_DISTANCE = 6.0  # viewport pixels either side of the line that grab it as well as the handle
    LABEL_MARGIN = 8.0

    def __init__(self, view: QGraphicsView, before_item: ClippedPixmapItem) -> None:
        self.view = view
        self.before_item = before_item
        self.fraction = 0.5
        self.before_name = ""
        self.after_name = ""

    def scene_x(self) -> float:
        """Scene x of the split line."""
        r = self.view.sceneRect()
        return float(r.left() + self.fraction * r.width())

    def set_fraction(self, fraction: float) -> bool:
        """Move the split (clamped to 0..1); True when it moved."""
        f = float(min(max(fraction, 0.0), 1.0)) if np.isfinite(fraction) else self.fraction
        changed = f != self.fraction
        self.fraction = f
        self.update_clip()
        return changed

    def update_clip(self) -> None:
        """Re-clip the before image at the line (after the split or the scene rect changed) and repaint."""
        self.before_item.set_clip_x(self.scene_x())
        self.view.viewport().update()

    def photo_rect(self) -> QRectF:
        """The scene rect in viewport pixels."""
        return self.view.viewportTransform().mapRect(self.view.sceneRect())

    def line_x(self) -> float:
        """Viewport x of the split line."""
        return float(self.view.viewportTransform().map(QPointF(self.scene_x(), 0.0)).x())

    def handle_center(self) -> QPointF:
        """Viewport position of the handle: on the line, halfway down the visible part of the image."""
        visible = self.photo_rect() & QRectF(self.view.viewport().rect())
        y = visible.center().y() if not visible.isEmpty() else self.view.viewport().height() / 2
        return QPointF(self.line_x(), y)

    def hit(self, pos: QPointF) -> bool:
        """True when viewport position ``pos`` grabs the split (on the handle or within a few pixels of the line)."""
        c = self.handle_center()
        dx, dy = pos.x() - c.x(), pos.y() - c.y()
        if dx * dx + dy * dy <= (self.HANDLE_RADIUS + 3.0) ** 2:
            return True
        r = self.photo_rect()
        return abs(dx) <= self.GRAB_DISTANCE and r.top() <= pos.y() <= r.bottom()

    def fraction_at(self, x: float) -> float:
        """The split fraction that puts the line at viewport x ``x`` (not clamped)."""
        r = self.view.sceneRect()
        if r.width() <= 0:
            return self.fraction
        inverse, _ok = self.view.viewportTransform().inverted()
        return float((inverse.map(QPointF(x, 0.0)).x() - r.left()) / r.width())

    def paint(self, painter: QPainter) -> None:
        """Draw the line, its handle and the labels (call from ``drawForeground``; works in viewport pixels)."""
        visible = self.photo_rect() & QRectF(self.view.viewport().rect())
        if visible.isEmpty():
            return
        x = self.line_x()
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if visible.left() - 2 <= x <= visible.right() + 2:
            top, bottom = QPointF(x, visible.top()), QPointF(x, visible.bottom())
            painter.setPen(QPen(QColor(0, 0, 0, 150), 4.0))
            painter.drawLine(top, bottom)
            painter.setPen(QPen(QColor(255, 255, 255), 2.0))
            painter.drawLine(top, bottom)
            self._paint_handle(painter, self.handle_center())
        font = QFont(painter.font())
        font.setPointSizeF(9.0)
        painter.setFont(font)
        fm = QFontMetricsF(font)
        left_side = QRectF(
            visible.left(), visible.top(), max(0.0, min(x, visible.right()) - visible.left()), visible.height()
        )
        right_side = QRectF(
            max(x, visible.left()), visible.top(), max(0.0, visible.right() - max(x, visible.left())), visible.height()
        )
        for text, side, before in (
            (f"Before: {self.before_name}" if self.before_name else "Before", left_side, True),
            (f"After: {self.after_name}" if self.after_name else "After", right_side, False),
        ):
            if side.width() <= 0:
                continue
            w, h = fm.horizontalAdvance(text) + 10.0, fm.height() + 6.0
            left = side.right() - self.LABEL_MARGIN - w if before else side.left() + self.LABEL_MARGIN
            box = QRectF(left, side.top() + self.LABEL_MARGIN, w, h)
            painter.save()
            painter.setClipRect(side)
            painter.setPen(QPen(QColor(255, 255, 255, 70), 1.0))
            painter.setBrush(QColor(20, 20, 24, 190))
            painter.drawRoundedRect(box, 4.0, 4.0)
            painter.setPen(QColor(235, 235, 235))
            painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), text)
            painter.restore()
        painter.restore()

    def _paint_handle(self, painter: QPainter, c: QPointF) -> None:
        r = self.HANDLE_RADIUS
        painter.setPen(QPen(QColor(255, 255, 255), 2.0))
        painter.setBrush(QColor(30, 30, 34, 210))
        painter.drawEllipse(c, r, r)
        arrows = QPainterPath()
        for sign in (-1.0, 1.0):
            tip = QPointF(c.x() + sign * r * 0.65, c.y())
            arrows.addPolygon(
                QPolygonF(
                    [
                        tip,
                        QPointF(c.x() + sign * r * 0.2, c.y() - r * 0.35),
                        QPointF(c.x() + sign * r * 0.2, c.y() + r * 0.35),
                    ]
                )
            )
            arrows.closeSubpath()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255))
        painter.drawPath(arrows)


class Canvas(QGraphicsView):
    """Interactive photo view. Paint tools emit ``stroke*`` signals in photo (OpenCV) coordinates.

    ``compareChanged(bool)`` fires when the before/after split is turned on or off, ``splitChanged(float)`` when its
    position (a fraction of the photo width) moves.
    """

    strokeBegan = Signal(float, float)
    strokeMoved = Signal(float, float)
    strokeEnded = Signal()
    faceClicked = Signal(int)
    zoomChanged = Signal(float)
    toolChanged = Signal(str)
    brushSizeChanged = Signal(float)
    compareChanged = Signal(bool)
    splitChanged = Signal(float)

    def __init__(self, doc: Document, parent: QWidget | None = None) -> None:
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
        self.shown = ShownImage(self.image_item, doc.composite_change)
        self.before_item = ClippedPixmapItem()  # the "before" image of the split, above the result, below the faces
        self.before_item.setZValue(1)
        self.before_item.setVisible(False)
        self.scene().addItem(self.before_item)
        self.split = SplitOverlay(self, self.before_item)
        self.face_items: list[tuple[QGraphicsPolygonItem, QGraphicsSimpleTextItem, QGraphicsPixmapItem]] = []
        self.damage_items: dict[tuple[int, int], QGraphicsPixmapItem] = {}  # (tile row, tile column) -> overlay
        self.cursor_item = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 255), 1.5)
        pen.setCosmetic(True)
        self.cursor_item.setPen(pen)
        self.cursor_item.setZValue(10)
        self.cursor_item.setVisible(False)
        self.scene().addItem(self.cursor_item)

        self.tool = "select"
        self.erase_layer = "mask"  # what the eraser erases: the layer of the last painting tool (brush / damage)
        self.brush_size = 24.0  # radius in photo pixels
        self.show_mask = True
        self.show_faces = True
        self._painting = False
        self.stroke_end: tuple[float, float] | None = None  # photo point where the last stroke ended (Shift+click)
        self._panning = False
        self._space = False
        self._pan_last = QPointF()
        self._image_shape: tuple[int, int] | None = None
        self._before_width = 0
        self._split_drag = False
        self._split_grab_dx = 0.0
        self._split_hover = False
        self.badge = ""  # a note drawn at the bottom left of the viewport (the FRGD preview's label); "" = none

        doc.photoChanged.connect(self._on_photo)
        doc.facesChanged.connect(self.refresh_faces)
        doc.selectionChanged.connect(lambda _i: self.refresh_faces())
        doc.maskChanged.connect(self.refresh_mask)
        doc.damageChanged.connect(self.refresh_damage)

    # ----- content ---------------------------------------------------------------------------------------------
    def _on_photo(self) -> None:
        self.set_compare(None)  # the before image belonged to the previous photo
        self.stroke_end = None
        self.set_image(self.doc.photo)
        self.refresh_faces()
        self.refresh_damage(None)
        self.fit()

    def set_image(self, img: np.ndarray | None) -> None:
        """Show ``img`` (``(h, w, 3)``), scaled to cover the original photo's scene rectangle."""
        if img is None:
            self.shown.show(np.zeros((1, 1, 3), np.uint8))
            self._image_shape = None
            return
        self.shown.show(img)  # only what changed is converted (ShownImage)
        self._image_shape = img.shape[:2]
        photo = self.doc.photo if self.doc.photo is not None else img
        scale = photo.shape[1] / img.shape[1]
        if scale != self.image_item.scale():
            self.image_item.setScale(scale)
            self.zoomChanged.emit(self.pixel_zoom())
        self.scene().setSceneRect(QRectF(0, 0, photo.shape[1], photo.shape[0]))
        if self.compare_active:
            self._place_before()

    # ----- before/after split ----------------------------------------------------------------------------------
    @property
    def compare_active(self) -> bool:
        """True while the before/after split is shown."""
        return self.before_item.isVisible()

    @property
    def split_fraction(self) -> float:
        """Position of the split line as a fraction (0..1) of the photo width."""
        return self.split.fraction

    def set_compare(self, before: np.ndarray | None, before_name: str = "", after_name: str = "") -> None:
        """Show ``before`` (``(h, w, 3)``, any size: scaled to cover the photo's scene rect) left of the split line and
        the shown image (:meth:`set_image`, the *after*) right of it; ``None`` turns the split off. The names label the
        two sides. The split position, the zoom and the shown image are kept."""
        was = self.compare_active
        if before is None:
            self.before_item.setVisible(False)
            self.before_item.setPixmap(QPixmap())
            self._before_width = 0
            self._set_split_hover(False)
        else:
            self.before_item.setPixmap(to_pixmap(before))
            self._before_width = int(before.shape[1])
            if self.scene().sceneRect().isEmpty():
                self.scene().setSceneRect(QRectF(0, 0, before.shape[1], before.shape[0]))
            self.before_item.setVisible(True)
            self._place_before()
            self.set_compare_labels(before_name, after_name)
        self.viewport().update()
        if was != self.compare_active:
            logger.debug("before/after split %s", "on" if self.compare_active else "off")
            self.compareChanged.emit(self.compare_active)

    def set_compare_labels(self, before_name: str, after_name: str) -> None:
        """Rename the two sides of the split (e.g. after the shown image changed)."""
        self.split.before_name, self.split.after_name = str(before_name), str(after_name)
        self.viewport().update()

    def set_split(self, fraction: float) -> None:
        """Move the split line to ``fraction`` (clamped to 0..1) of the photo width."""
        if self.split.set_fraction(fraction):
            self.splitChanged.emit(self.split.fraction)

    def _place_before(self) -> None:
        if self._before_width > 0:
            self.before_item.setScale(self.scene().sceneRect().width() / self._before_width)
        self.split.update_clip()

    def _set_split_hover(self, on: bool) -> None:
        if on == self._split_hover:
            return
        self._split_hover = on
        if on:
            self.cursor_item.setVisible(False)
            self.viewport().setCursor(Qt.CursorShape.SplitHCursor)
        elif not self._panning:
            self._restore_cursor()

    def _restore_cursor(self) -> None:
        painting = self.tool != "select"
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if painting else Qt.CursorShape.ArrowCursor)

    def set_badge(self, text: str) -> None:
        """Label what the canvas shows with ``text`` at the bottom left of the viewport (``""``: no label)."""
        if text != self.badge:
            self.badge = str(text)
            self.viewport().update()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt override
        super().drawForeground(painter, rect)
        if self.compare_active:
            self.split.paint(painter)
        if self.badge:
            self._paint_badge(painter)

    def _paint_badge(self, painter: QPainter) -> None:
        """The :attr:`badge` in a rounded box at the bottom left, in viewport pixels (not scaled by zoom)."""
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(painter.font())
        font.setPointSizeF(9.0)
        painter.setFont(font)
        fm = QFontMetricsF(font)
        m, h = SplitOverlay.LABEL_MARGIN, fm.height() + 6.0
        box = QRectF(m, self.viewport().height() - m - h, fm.horizontalAdvance(self.badge) + 10.0, h)
        painter.setPen(QPen(QColor(255, 200, 40, 160), 1.0))
        painter.setBrush(QColor(20, 20, 24, 190))
        painter.drawRoundedRect(box, 4.0, 4.0)
        painter.setPen(QColor(235, 235, 235))
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), self.badge)
        painter.restore()

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 - Qt override
        super().scrollContentsBy(dx, dy)
        if self.compare_active or self.badge:
            self.viewport().update()  # the handle and the labels stay put in the viewport: no scrolled copy

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
            overlay = QGraphicsPixmapItem(layer_overlay(face.mask))
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
            self.face_items[index][2].setPixmap(layer_overlay(self.doc.faces[index].mask))

    def refresh_damage(self, box: tuple[int, int, int, int] | None) -> None:
        """Redraw the damage overlay's tiles that meet ``box`` ``(y0, y1, x0, x1)`` (``None``: all of them)."""
        d = self.doc.damage
        if d is None:
            for item in self.damage_items.values():
                self.scene().removeItem(item)
            self.damage_items.clear()
            return
        t = DAMAGE_TILE
        y0, y1, x0, x1 = box if box is not None else (0, d.shape[0], 0, d.shape[1])
        for ty in range(y0 // t, (max(y1, y0 + 1) - 1) // t + 1):
            for tx in range(x0 // t, (max(x1, x0 + 1) - 1) // t + 1):
                tile = d[ty * t : (ty + 1) * t, tx * t : (tx + 1) * t]
                item = self.damage_items.get((ty, tx))
                if not tile.any():
                    if item is not None:
                        self.scene().removeItem(self.damage_items.pop((ty, tx)))
                    continue
                if item is None:
                    item = QGraphicsPixmapItem()
                    item.setPos(QPointF(tx * t, ty * t))
                    item.setZValue(2.5)  # over the faces' masks, under their outlines
                    item.setVisible(self.show_mask)
                    self.scene().addItem(item)
                    self.damage_items[(ty, tx)] = item
                item.setPixmap(layer_overlay(tile, DAMAGE_COLOR))

    def damage_overlay_color(self, x: int, y: int) -> tuple[int, int, int, int]:
        """The damage overlay's RGBA at photo pixel ``(x, y)`` (``(0, 0, 0, 0)`` where no tile is drawn)."""
        item = self.damage_items.get((y // DAMAGE_TILE, x // DAMAGE_TILE))
        if item is None:
            return 0, 0, 0, 0
        c = item.pixmap().toImage().pixelColor(x % DAMAGE_TILE, y % DAMAGE_TILE)
        return c.red(), c.green(), c.blue(), c.alpha()

    def set_show_mask(self, on: bool) -> None:
        self.show_mask = bool(on)
        for _p, _l, overlay in self.face_items:
            overlay.setVisible(self.show_mask)
        for item in self.damage_items.values():
            item.setVisible(self.show_mask)

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
        if tool in ("brush", "damage"):
            self.erase_layer = "mask" if tool == "brush" else "damage"
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
        """Screen pixels per photo pixel."""
        return float(self.transform().m11())

    def pixel_zoom(self) -> float:
        """Screen pixels per pixel of the shown image (the status bar's zoom; a result 3 times the photo's size is
        at 100 % when a photo pixel spans 3 screen pixels)."""
        return self.zoom() * float(self.image_item.scale())

    def fit(self) -> None:
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self.zoomChanged.emit(self.pixel_zoom())

    def actual_size(self) -> None:
        """100 %: one screen pixel per pixel of the shown image."""
        k = 1.0 / float(self.image_item.scale())
        self.setTransform(QTransform.fromScale(k, k))
        self.zoomChanged.emit(self.pixel_zoom())

    def zoom_by(self, factor: float) -> None:
        z = self.zoom()
        factor = min(max(factor, 0.02 / z), 64.0 / z)
        self.scale(factor, factor)
        self.zoomChanged.emit(self.pixel_zoom())

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
        if self.compare_active and event.button() == Qt.MouseButton.LeftButton and self.split.hit(pos):
            self._split_drag = True
            self._split_grab_dx = pos.x() - self.split.line_x()
            self._set_split_hover(True)
            event.accept()
            return
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
            start = self.stroke_end if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else None
            if start is not None:  # a straight line from the last stroke's end, then the drag goes on from here
                self.strokeBegan.emit(*start)
                self.strokeMoved.emit(x, y)
            else:
                self.strokeBegan.emit(x, y)
            self.stroke_end = (x, y)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        if self._split_drag:
            self.set_split(self.split.fraction_at(pos.x() - self._split_grab_dx))
            event.accept()
            return
        if self._panning:
            d = pos - self._pan_last
            self._pan_last = QPointF(pos)
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(round(d.x())))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(round(d.y())))
            event.accept()
            return
        if self.compare_active and not self._painting:
            self._set_split_hover(self.split.hit(pos))
            if self._split_hover:
                super().mouseMoveEvent(event)
                return
        scene = self.mapToScene(pos.toPoint())
        if self.tool != "select":
            self.cursor_item.setVisible(True)
            self._update_cursor_item(scene)
        if self._painting and not event.buttons() & Qt.MouseButton.LeftButton:
            self._end_stroke()  # its release went elsewhere (a dialog, another window)
        if self._painting:
            x, y = self.photo_point(pos.toPoint())
            self.strokeMoved.emit(x, y)
            self.stroke_end = (x, y)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._split_drag and event.button() == Qt.MouseButton.LeftButton:
            self._split_drag = False
            self._set_split_hover(self.split.hit(event.position()))
            event.accept()
            return
        if self._panning and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = False
            self.set_tool(self.tool)
            event.accept()
            return
        if self._painting and event.button() == Qt.MouseButton.LeftButton:
            self._end_stroke()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def _end_stroke(self) -> None:
        self._painting = False
        self.strokeEnded.emit()

    def focusOutEvent(self, event) -> None:  # noqa: N802
        """A dialog or another window took the focus: the stroke ends here (its release would not come here)."""
        if self._painting:
            self._end_stroke()
        super().focusOutEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.cursor_item.setVisible(False)
        self._set_split_hover(False)
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
