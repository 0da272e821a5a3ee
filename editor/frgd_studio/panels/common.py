"""Small widgets shared by the panels."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QLabel

from ..qtimage import to_pixmap


def thumb_icon(img: np.ndarray, size: int = 96) -> QIcon:
    """Icon of an image scaled to ``size`` px (longest side)."""
    pix = to_pixmap(img).scaled(
        QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    return QIcon(pix)


class NoticeLabel(QLabel):
    """Word-wrapped, selectable text for explanations such as missing weights (the MissingWeightsError text)."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet("QLabel { color: #e0b050; }")

    def show_text(self, text: str | None) -> None:
        self.setText(text or "")
        self.setVisible(bool(text))
