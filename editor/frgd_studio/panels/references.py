"""References panel: reference photos for the selected face with their identity similarity to the input face."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from .. import commands
from .common import NoticeLabel, thumb_icon


class ReferencesPanel(QWidget):
    def __init__(self, window) -> None:
        super().__init__()
        self.w = window
        self.list = QListWidget()
        self.list.setIconSize(QSize(64, 64))
        self.add_button = QPushButton("Add reference…")
        self.add_button.setToolTip("A photo of the same person; FRGD steers the face toward this identity")
        self.remove_button = QPushButton("Remove")
        self.rescore_button = QPushButton("Score")
        self.rescore_button.setToolTip("Measure the identity similarity of each reference to the input face")
        self.header = QLabel("References for the selected face")
        self.notice = NoticeLabel()
        self.notice.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addWidget(self.rescore_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.header)
        lay.addWidget(self.list, 1)
        lay.addLayout(row)
        lay.addWidget(self.notice)
        self.add_button.clicked.connect(lambda: window.add_reference())
        self.remove_button.clicked.connect(self._remove)
        self.rescore_button.clicked.connect(lambda: window.score_references())
        doc = window.doc
        doc.referencesChanged.connect(lambda _i: self.refresh())
        doc.selectionChanged.connect(lambda _i: self.refresh())
        doc.facesChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        face = self.w.doc.face()
        if face is None:
            self.header.setText("References: detect faces first")
        else:
            self.header.setText(f"References for face {self.w.doc.selected + 1}")
            for ref in face.references:
                score = (
                    "similarity to input: not measured"
                    if ref.score is None
                    else f"similarity to input: {ref.score:.3f}"
                )
                name = ref.path.replace("\\", "/").rsplit("/", 1)[-1]
                self.list.addItem(QListWidgetItem(thumb_icon(ref.crop, 64), f"{name}\n{score}"))
        has_face = face is not None
        self.add_button.setEnabled(has_face)
        self.remove_button.setEnabled(has_face and bool(face.references))
        self.rescore_button.setEnabled(has_face and bool(face.references))

    def _remove(self) -> None:
        row = self.list.currentRow()
        face = self.w.doc.face()
        if face is None or not face.references:
            return
        row = row if 0 <= row < len(face.references) else len(face.references) - 1
        self.w.stack.push(commands.remove_reference(self.w.doc, self.w.doc.selected, row))
