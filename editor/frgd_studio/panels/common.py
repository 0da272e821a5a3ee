"""Small widgets shared by the panels: thumbnails, the wrapped notice and the weights box of every pane."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..model.panes import Pane, PaneStatus, WeightsFix
from ..qtimage import to_pixmap

NOTICE_STYLE = (
    "QLabel { color: #1f1f1f; background: #fff3cd; border: 1px solid #d9a21b; border-radius: 3px; padding: 4px; }"
)
"""Dark text on light amber (contrast about 15:1), not orange on grey."""
ZWSP = "\u200b"
NOTICE_MIN_WRAP_WIDTH = 120
"""The width a notice's height is computed for before it is laid out (px)."""


def thumb_icon(img: np.ndarray, size: int = 96) -> QIcon:
    """Icon of an image scaled to ``size`` px (longest side), with its true colours in every mode.

    A plain ``QIcon(pixmap)`` lets the style generate the *selected* pixmap, and Fusion tints it with the highlight
    colour: the selected sample of the gallery looked bluer than it is (the "colour shift" of one seed in the
    screenshot), which misleads anyone choosing a sample by its colour. The selection shows in the item's frame and
    text instead."""
    pix = to_pixmap(img).scaled(
        QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    icon = QIcon()
    for mode in (QIcon.Mode.Normal, QIcon.Mode.Active, QIcon.Mode.Selected):
        icon.addPixmap(pix, mode)
    return icon


def breakable(text: str, longest: int = 24) -> str:
    """``text`` with zero-width break chances after ``/ _ - .`` inside words longer than ``longest`` (paths, URLs),
    so a word-wrapped label can wrap them instead of growing."""
    return re.sub(rf"\S{{{longest},}}", lambda m: re.sub(r"([/_\-.\\])", r"\1" + ZWSP, m.group(0)), text)


class NoticeLabel(QLabel):
    """Word-wrapped, selectable, readable text such as the missing-weights message. Its width never widens the dock:
    the layout ignores its size hint horizontally and it wraps (no elision) at whatever width the dock has."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet(NOTICE_STYLE)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.setMinimumWidth(10)
        self.full_text = ""
        self.show_text(text)

    def show_text(self, text: str | None) -> None:
        self.full_text = text or ""
        self.setText(breakable(self.full_text))
        self.setToolTip(self.full_text)
        self.setVisible(bool(text))

    # A word-wrapped QLabel reports its height for a width of a few pixels (one word per line: a 150 px message asked
    # for 934 px), which the dock and the window then take as their minimum. Its height is the one it needs at the
    # width it has, recomputed when that width changes.
    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return False

    def _needed_height(self) -> int:
        if not self.full_text:
            return 0
        return max(super().heightForWidth(max(self.width(), NOTICE_MIN_WRAP_WIDTH)), 0)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(10, self._needed_height())

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(10, self._needed_height())

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # the layout asks again: the height follows the new width


class WeightsBox(QWidget):
    """A pane's status message and, while weights are missing, its fixes: Download (a job with progress and cancel)
    and Import… (a file or folder the user has)."""

    def __init__(self, pane: Pane, on_import: Callable[[Pane, WeightsFix], None]) -> None:
        super().__init__()
        self.pane = pane
        self.on_import = on_import
        self.notice = NoticeLabel()
        self.buttons: dict[str, QPushButton] = {}
        self._row = QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.notice)
        lay.addLayout(self._row)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        pane.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        status: PaneStatus = self.pane.status()
        self.notice.show_text(status.message)
        for b in self.buttons.values():
            self._row.removeWidget(b)
            b.deleteLater()
        self.buttons = {}
        if status.ready:
            return
        for fix in status.fixes:
            b = QPushButton(fix.label)
            if fix.kind == "download":
                b.setToolTip(f"Download {fix.entry} from {fix.url}\n"
                             f"sha256 {fix.sha256 or 'not known: the file is not verified'}")  # fmt: skip
                b.clicked.connect(lambda _=False, f=fix: self.pane.download(f.entry))
            else:
                b.setToolTip(f"Choose the {'folder' if fix.folder else 'file'} of {fix.entry} you already have; it "
                             "is checked and copied into the weights cache")  # fmt: skip
                b.clicked.connect(lambda _=False, f=fix: self.on_import(self.pane, f))
            b.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            self._row.addWidget(b)
            self.buttons[f"{fix.kind}:{fix.entry}"] = b
