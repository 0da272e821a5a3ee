"""References panel: reference photos for the selected face with their identity similarity to the input face."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ..model.editor import EditorModel
from ..ui import IMAGE_FILTER, ViewHooks
from .common import thumb_icon


class ReferencesPanel(QWidget):
    def __init__(self, model: EditorModel, ui: ViewHooks) -> None:
        super().__init__()
        self.model = model
        self.ui = ui
        self.list = QListWidget()
        self.list.setIconSize(QSize(64, 64))
        self.add_button = QPushButton("Add reference…")
        self.add_button.setToolTip("A photo of the same person; FRGD steers the face toward this identity")
        self.remove_button = QPushButton("Remove")
        self.rescore_button = QPushButton("Score")
        self.rescore_button.setToolTip("Measure and report the identity similarity of each reference to the input face")
        self.header = QLabel("References for the selected face")
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addWidget(self.rescore_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.header)
        lay.addWidget(self.list, 1)
        lay.addLayout(row)
        self.add_button.clicked.connect(self.add)
        self.remove_button.clicked.connect(lambda: model.remove_reference(self.list.currentRow()))
        self.rescore_button.clicked.connect(lambda: model.score_references())
        doc = model.doc
        doc.referencesChanged.connect(lambda _i: self.refresh())
        doc.selectionChanged.connect(lambda _i: self.refresh())
        doc.facesChanged.connect(self.refresh)
        self.refresh()

    def add(self) -> None:
        if self.model.doc.face() is None:
            return
        path = self.ui.open_file("Reference photo of the same person", IMAGE_FILTER)
        if path:
            self.model.add_reference(path)

    def refresh(self) -> None:
        self.list.clear()
        doc = self.model.doc
        face = doc.face()
        if face is None:
            self.header.setText("References: detect faces first")
        else:
            self.header.setText(f"References for face {doc.selected + 1}")
            for ref in face.references:
                score = "not measured" if ref.score is None else f"{ref.score:.3f}"
                name = ref.path.replace("\\", "/").rsplit("/", 1)[-1]
                self.list.addItem(QListWidgetItem(thumb_icon(ref.crop, 64), f"{name}\nsimilarity to input: {score}"))
        has_refs = face is not None and bool(face.references)
        self.add_button.setEnabled(face is not None)
        self.remove_button.setEnabled(has_refs)
        self.rescore_button.setEnabled(has_refs)
