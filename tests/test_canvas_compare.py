"""Before/after comparison on the canvas (split line over the photo) and in the comparison view, checked on rendered
pixels (pytest-qt, offscreen). A stand-in document supplies only what the two widgets read, so these tests do not
depend on the document's implementation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QImage, QWheelEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QGraphicsView  # noqa: E402

from frgd_studio.canvas import Canvas  # noqa: E402
from frgd_studio.compare import CompareWidget, default_pair  # noqa: E402

W, H = 200, 100  # photo size
BLACK = np.zeros((H, W, 3), np.uint8)
WHITE = np.full((H, W, 3), 255, np.uint8)
BACKGROUND = (38, 38, 42)  # the views' background brush


class StandInEvent:
    """``connect``/``emit``, as the document's events."""

    def __init__(self) -> None:
        self.handlers: list[Callable[..., Any]] = []

    def connect(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.handlers.append(fn)
        return fn

    def emit(self, *args: Any) -> None:
        for fn in list(self.handlers):
            fn(*args)


class StandInDocument:
    """The attributes, events and queries of the document that the canvas and the comparison view use."""

    EVENTS = (
        "photoChanged",
        "facesChanged",
        "selectionChanged",
        "maskChanged",
        "damageChanged",
        "samplesChanged",
        "appliedChanged",
        "paneResultsChanged",
        "repairedChanged",
        "upscaledChanged",
    )

    def __init__(self) -> None:
        for name in self.EVENTS:
            setattr(self, name, StandInEvent())
        self.photo: np.ndarray | None = None
        self.damage: np.ndarray | None = None  # the photo's damage layer (none painted)
        self.faces: list = []
        self.selected = -1
        self.pane_results: dict[str, np.ndarray] = {}
        self.extra: dict[str, np.ndarray] = {}  # "Result" and face images, in results() order after the panes

    def open(self, photo: np.ndarray) -> None:
        self.photo = photo
        self.pane_results, self.extra = {}, {}
        self.photoChanged.emit()
        self.facesChanged.emit()
        self.selectionChanged.emit(-1)
        self.paneResultsChanged.emit()

    def face_at(self, x: float, y: float) -> int:
        return -1

    def face(self, index: int | None = None) -> None:
        return None

    def composite_change(self, since: int | None, image: np.ndarray) -> tuple[None, None]:
        return None, None  # no composite of its own: every new image is shown whole

    def results(self) -> dict[str, np.ndarray]:
        if self.photo is None:
            return {}
        out = {"Original": self.photo}
        if "Result" in self.extra:
            out["Result"] = self.extra["Result"]
        out.update(self.pane_results)
        out.update({k: v for k, v in self.extra.items() if k != "Result"})
        return out


def rgb(img: QImage, x: float, y: float) -> tuple[int, int, int]:
    """Colour of the grabbed image at viewport position (x, y) (logical pixels)."""
    r = img.devicePixelRatio()
    c = QColor(img.pixel(int(round(x * r)), int(round(y * r))))
    return c.red(), c.green(), c.blue()


def grab(view: QGraphicsView) -> QImage:
    QApplication.processEvents()
    return view.viewport().grab().toImage()


def view_pos(view: QGraphicsView, x: float, y: float) -> QPointF:
    """Viewport position (float) of scene point (x, y)."""
    return view.viewportTransform().map(QPointF(x, y))


def wheel(view: QGraphicsView, pos: QPoint, steps: float) -> None:
    """Send a wheel event of ``steps`` notches to the view's viewport at ``pos``."""
    ev = QWheelEvent(
        QPointF(pos),
        QPointF(view.viewport().mapToGlobal(pos)),
        QPoint(),
        QPoint(0, int(round(120 * steps))),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), ev)


def near(color: tuple[int, int, int], expected: tuple[int, int, int], tol: int = 12) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(color, expected))


@pytest.fixture
def doc() -> StandInDocument:
    return StandInDocument()


@pytest.fixture
def canvas(qtbot, doc) -> Canvas:
    c = Canvas(doc)
    qtbot.addWidget(c)
    c.resize(520, 340)
    c.show()
    qtbot.waitExposed(c)
    doc.open(WHITE)  # the canvas shows the photo: the "after" image is white
    c.fit()
    return c


def split_x(c: Canvas) -> float:
    return view_pos(c, c.split_fraction * W, 0).x()


def row(c: QGraphicsView) -> float:
    """A viewport row inside the photo, away from the labels (top) and the handle (middle)."""
    visible = c.viewportTransform().mapRect(c.sceneRect()) & c.viewport().rect().toRectF()
    return visible.top() + 0.8 * visible.height()


# ------------------------------------------------------------------------------------------------- canvas: split
def test_split_shows_before_left_and_after_right(canvas, qtbot):
    assert not canvas.compare_active and canvas.split_fraction == 0.5
    with qtbot.waitSignal(canvas.compareChanged) as sig:
        canvas.set_compare(BLACK, "Original", "Result")
    assert sig.args == [True] and canvas.compare_active
    img, x, y = grab(canvas), split_x(canvas), row(canvas)
    assert x == pytest.approx(canvas.viewport().width() / 2, abs=3), "fit centres the photo: the line is mid-view"
    assert rgb(img, x - 8, y) == (0, 0, 0), "before (black) left of the line"
    assert rgb(img, x + 8, y) == (255, 255, 255), "after (white) right of the line"
    assert near(rgb(img, x, y), (255, 255, 255), 60), "the line is drawn"

    with qtbot.waitSignal(canvas.splitChanged) as sig:
        canvas.set_split(0.25)
    assert sig.args == [0.25]
    img, x2 = grab(canvas), split_x(canvas)
    assert x2 == pytest.approx(view_pos(canvas, 0.25 * W, 0).x()) and x2 < x - 50
    assert rgb(img, x2 - 8, y) == (0, 0, 0)
    assert rgb(img, x2 + 8, y) == (255, 255, 255)
    assert rgb(img, view_pos(canvas, 0.4 * W, 0).x(), y) == (255, 255, 255), "photo x 0.4 W is now on the after side"
    canvas.set_split(7.0)
    assert canvas.split_fraction == 1.0, "clamped to the photo"
    assert rgb(grab(canvas), view_pos(canvas, 0.95 * W, 0).x(), y) == (0, 0, 0)


def test_split_labels_are_drawn_at_screen_size(canvas):
    canvas.set_compare(BLACK, "Original", "Result")
    y0 = view_pos(canvas, 0, 0).y()

    def label_rows(img: QImage) -> int:
        """Rows (from the photo's top) whose strip just left of the line is not plain black: the Before label."""
        x = split_x(canvas)
        lit = [
            yy for yy in range(int(y0) + 1, int(y0) + 60) if any(rgb(img, x - dx, yy) != (0, 0, 0) for dx in (20, 30))
        ]
        return len(lit)

    canvas.centerOn(QPointF(W / 2, 0))
    n_fit = label_rows(grab(canvas))
    assert 8 <= n_fit <= 40, "a small label at the top of the before side"
    canvas.zoom_by(4.0)
    canvas.centerOn(QPointF(W / 2, H / 2))
    y0 = max(0.0, view_pos(canvas, 0, 0).y())
    assert label_rows(grab(canvas)) == n_fit, "labels are not scaled by the zoom"


def test_split_stays_on_the_photo_column_when_zooming_and_panning(canvas):
    canvas.set_compare(BLACK, "Original", "Result")
    canvas.set_split(0.5)
    x_fit = split_x(canvas)
    z0 = canvas.zoom()
    canvas.zoom_by(4.0)
    canvas.centerOn(QPointF(0.4 * W, H / 2))  # zoomed 4x around a point left of the split
    assert canvas.zoom() == pytest.approx(4 * z0)
    assert canvas.split_fraction == 0.5
    img, x, y = grab(canvas), split_x(canvas), row(canvas)
    centre = canvas.viewport().width() / 2
    assert x == pytest.approx(centre + 0.1 * W * canvas.zoom(), abs=2), "the line moved with the scene"
    assert abs(x - x_fit) > 20
    assert rgb(img, x - 8, y) == (0, 0, 0) and rgb(img, x + 8, y) == (255, 255, 255)
    assert rgb(img, centre, y) == (0, 0, 0), "photo x 0.4 W (view centre) is before"

    h0 = canvas.horizontalScrollBar().value()
    canvas.horizontalScrollBar().setValue(h0 + 40)  # pan
    img, x_pan = grab(canvas), split_x(canvas)
    assert x_pan == pytest.approx(x - 40, abs=1)
    assert rgb(img, x_pan - 8, y) == (0, 0, 0) and rgb(img, x_pan + 8, y) == (255, 255, 255)
    assert canvas.split_fraction == 0.5


def test_dragging_the_handle_moves_the_split_in_a_paint_tool(canvas, qtbot):
    canvas.set_compare(BLACK, "Original", "Result")
    canvas.set_tool("brush")
    strokes: list[tuple[float, float]] = []
    moved: list[float] = []
    canvas.strokeBegan.connect(lambda x, y: strokes.append((x, y)))
    canvas.splitChanged.connect(moved.append)
    vp = canvas.viewport()
    handle = canvas.split.handle_center().toPoint()
    target = handle + QPoint(60, 0)
    QTest.mouseMove(vp, handle)
    assert vp.cursor().shape() == Qt.CursorShape.SplitHCursor and not canvas.cursor_item.isVisible()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, handle)
    QTest.mouseMove(vp, handle + QPoint(30, 0))
    QTest.mouseMove(vp, target)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, target)
    expected = 0.5 + 60 / (canvas.zoom() * W)
    assert canvas.split_fraction == pytest.approx(expected, abs=0.01)
    assert moved and moved[-1] == canvas.split_fraction
    assert strokes == [], "the handle drag does not paint"
    img, y = grab(canvas), row(canvas)
    assert rgb(img, target.x() - 8, y) == (0, 0, 0) and rgb(img, target.x() + 8, y) == (255, 255, 255)

    # away from the handle the brush paints (on the after side)
    p = view_pos(canvas, 0.9 * W, 0.5 * H).toPoint()
    QTest.mouseMove(vp, p)
    assert vp.cursor().shape() == Qt.CursorShape.CrossCursor and canvas.cursor_item.isVisible()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    assert len(strokes) == 1 and strokes[0][0] == pytest.approx(0.9 * W, abs=1.5)
    assert canvas.split_fraction == pytest.approx(expected, abs=0.01)


def test_compare_off_shows_only_the_after_image(canvas, qtbot):
    canvas.set_compare(BLACK, "Original", "Result")
    x, y = split_x(canvas), row(canvas)
    assert rgb(grab(canvas), x - 30, y) == (0, 0, 0)
    with qtbot.waitSignal(canvas.compareChanged) as sig:
        canvas.set_compare(None)
    assert sig.args == [False] and not canvas.compare_active
    img = grab(canvas)
    for px in (x - 30, x - 8, x, x + 8):
        assert rgb(img, px, y) == (255, 255, 255)


def test_a_new_photo_turns_the_split_off(canvas, doc, qtbot):
    canvas.set_compare(BLACK)
    with qtbot.waitSignal(canvas.compareChanged) as sig:
        doc.open(np.full((50, 80, 3), 255, np.uint8))
    assert sig.args == [False] and not canvas.compare_active


def test_images_of_other_sizes_cover_the_photo(canvas):
    after = np.full((2 * H, 2 * W, 3), 255, np.uint8)  # an x2 SR result
    before = np.zeros((4 * H, 4 * W, 3), np.uint8)  # an x4 one
    canvas.set_image(after)
    canvas.set_compare(before, "SR x4", "SR x2")
    canvas.set_split(0.5)
    canvas.zoom_by(0.6)  # background all around the photo
    assert canvas.image_item.scale() == pytest.approx(0.5) and canvas.before_item.scale() == pytest.approx(0.25)
    assert canvas.sceneRect().width() == W and canvas.sceneRect().height() == H
    img, x, y = grab(canvas), split_x(canvas), row(canvas)
    assert rgb(img, x - 8, y) == (0, 0, 0) and rgb(img, x + 8, y) == (255, 255, 255)
    left, right = view_pos(canvas, 0, 0).x(), view_pos(canvas, W, 0).x()
    assert rgb(img, left + 2, y) == (0, 0, 0) and rgb(img, left - 3, y) == BACKGROUND, "before ends at the photo edge"
    assert rgb(img, right - 2, y) == (255, 255, 255) and rgb(img, right + 3, y) == BACKGROUND
    top, bottom = view_pos(canvas, 0, 0).y(), view_pos(canvas, 0, H).y()
    for px in (x - 20, x + 20):
        assert rgb(img, px, top - 3) == BACKGROUND and rgb(img, px, bottom + 3) == BACKGROUND
    canvas.set_image(WHITE)  # the shown image changes: the split stays
    assert canvas.compare_active and canvas.split_fraction == 0.5


# ------------------------------------------------------------------------------------------------ comparison view
def test_default_pair():
    assert default_pair([]) == ("", "")
    assert default_pair(["Original"]) == ("Original", "Original")
    assert default_pair(["Original", "Result", "SR x2"], ["SR x2"]) == ("Original", "Result")
    assert default_pair(["Original", "SR a", "SR b"], ["SR a", "SR b"]) == ("Original", "SR b")
    faces = ["Original", "Face 1: input", "Face 1: sample 1 (seed 5)", "Face 1: sample 2 (seed 6)"]
    assert default_pair(faces) == ("Face 1: input", "Face 1: sample 2 (seed 6)")
    assert default_pair(["Original", "Face 2: input"]) == ("Original", "Face 2: input")


@pytest.fixture
def compare(qtbot, doc) -> CompareWidget:
    w = CompareWidget(doc)
    qtbot.addWidget(w)
    w.resize(700, 420)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_compare_opens_on_original_vs_result_not_original_twice(compare, doc, qtbot):
    doc.open(BLACK)
    compare.refresh()
    assert compare.pair() == ("Original", "Original"), "a single image"
    doc.extra["Result"] = WHITE
    doc.appliedChanged.emit(0)
    qtbot.waitUntil(lambda: compare.pair() == ("Original", "Result"))
    doc.pane_results["SR x2"] = np.full((2 * H, 2 * W, 3), 128, np.uint8)
    doc.paneResultsChanged.emit()
    qtbot.wait(10)
    assert compare.pair() == ("Original", "Result")
    compare.set_pair("SR x2", "Result")  # the user's pair is kept while results change
    doc.paneResultsChanged.emit()
    qtbot.wait(10)
    assert compare.pair() == ("SR x2", "Result")
    doc.open(WHITE)  # a new photo: back to the default
    doc.extra["Result"] = BLACK
    compare.refresh()
    assert compare.pair() == ("Original", "Result")


def test_compare_split_view_zooms_pans_and_drags(compare, doc, qtbot):
    doc.open(BLACK)
    doc.extra["Result"] = WHITE
    compare.refresh()
    compare.set_split_mode(True)
    assert compare.split_mode and compare.slider.isVisible()
    view = compare.split
    qtbot.waitUntil(lambda: view.viewport().width() > 300)
    compare.fit()
    scale = view.sceneRect().width() / W  # scene units per photo pixel (common width)
    img, y = grab(view), row(view)
    x = view.overlay.line_x()
    assert rgb(img, x - 8, y) == (0, 0, 0) and rgb(img, x + 8, y) == (255, 255, 255)

    z0 = view.transform().m11()
    centre = view.viewport().rect().center()
    wheel(view, centre, 2)
    assert view.transform().m11() == pytest.approx(z0 * 1.25**2), "wheel zooms the split view"
    view.centerOn(QPointF(0.4 * W * scale, view.sceneRect().height() / 2))
    img, y, x = grab(view), row(view), view.overlay.line_x()
    assert x == pytest.approx(view_pos(view, 0.5 * W * scale, 0).x()), "the line stays on the image column"
    assert x > view.viewport().width() / 2 + 20
    assert rgb(img, x - 8, y) == (0, 0, 0) and rgb(img, x + 8, y) == (255, 255, 255)

    vp = view.viewport()
    h0 = view.horizontalScrollBar().value()
    start = QPoint(int(x) - 100, int(y))
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(vp, start + QPoint(-40, 0))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(-40, 0))
    assert view.horizontalScrollBar().value() == h0 + 40, "dragging away from the handle pans"
    assert compare.split.position == 0.5

    handle = view.overlay.handle_center().toPoint()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, handle)
    QTest.mouseMove(vp, handle + QPoint(-50, 0))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, handle + QPoint(-50, 0))
    expected = 0.5 - 50 / (view.transform().m11() * scale * W)
    assert compare.split.position == pytest.approx(expected, abs=0.01)
    assert compare.slider.value() == round(compare.split.position * 1000), "the slider follows the drag"
    assert view.horizontalScrollBar().value() == h0 + 40, "the handle drag does not pan"

    compare.set_split_mode(False)  # back to side by side at the same zoom
    assert compare.left.transform().m11() == pytest.approx(view.transform().m11()) and compare.synced()
    assert not math.isnan(compare.left.transform().m11())
