"""Faces panel: detected faces with thumbnails, detection, and per-face mask shortcuts."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..model.editor import EditorModel
from ..model.settings import RANGES
from .common import thumb_icon


class FacesPanel(QWidget):
    def __init__(self, model: EditorModel) -> None:
        super().__init__()
        self.model = model
        doc = model.doc
        self.list = QListWidget()
        self.list.setIconSize(QSize(64, 64))
        self.detect_button = QPushButton("Detect faces")
        self.detect_button.setToolTip("Find faces with MTCNN (runs in the background)")
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(*RANGES["face_min_score"])
        self.min_score.setDecimals(2)
        self.min_score.setSingleStep(0.01)
        self.min_score.setPrefix("score ≥ ")
        self.min_score.setValue(float(model.settings.get("face_min_score")))
        self.min_score.setToolTip(
            "Smallest detection score of a face. Lower it for a small or damaged face that is not found; raise it "
            "if flowers or patterns are taken for faces. Used by the next Detect faces."
        )
        self.revert_button = QPushButton("Revert face")
        self.clear_damage_button = QPushButton("Clear damage")
        self.clear_damage_button.setToolTip(
            "Remove every damage mark of the photo (painted with the Damage tool, D: scratches, creases and stains, "
            "filled in the result and read by no restorer)"
        )
        self.detect_damage_button = QPushButton("Detect damage")
        self.detect_damage_button.setToolTip(
            "Mark the scratches, cracks, spots and tears the damage detector finds (runs in the background; one "
            "undo step). Check the cyan marks: erase wrong ones with the Eraser (E), add missed ones with the "
            "Damage tool (D)"
        )
        self.clear_button = QPushButton("Clear mask")
        self.invert_button = QPushButton("Invert mask")
        self.region_buttons = {}
        grid = QGridLayout()
        grid.addWidget(self.detect_button, 0, 0)
        grid.addWidget(self.min_score, 0, 1)
        grid.addWidget(self.clear_button, 1, 0)
        grid.addWidget(self.invert_button, 1, 1)
        for k, region in enumerate(("face", "eyes", "mouth")):
            b = QPushButton(f"Mask {region}")
            b.setToolTip(f"Set the mask of the selected face to its {region} region (one undo step)")
            b.clicked.connect(lambda _=False, r=region: model.region_mask(r))
            self.region_buttons[region] = b
            grid.addWidget(b, 2 + k // 2, k % 2)
        grid.addWidget(self.revert_button, 3, 1)
        grid.addWidget(self.detect_damage_button, 4, 0)
        grid.addWidget(self.clear_damage_button, 4, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.list, 1)
        lay.addLayout(grid)

        self.detect_button.clicked.connect(lambda: model.detect())
        self.min_score.valueChanged.connect(lambda v: model.settings.set("face_min_score", round(float(v), 2)))
        self.clear_button.clicked.connect(model.clear_mask)
        self.invert_button.clicked.connect(model.invert_mask)
        self.revert_button.clicked.connect(model.revert_face)
        self.clear_damage_button.clicked.connect(model.clear_damage)
        self.detect_damage_button.clicked.connect(lambda: model.detect_damage())
        self.list.currentRowChanged.connect(self._row_changed)
        doc.photoChanged.connect(self.refresh)
        doc.facesChanged.connect(self.refresh)
        doc.appliedChanged.connect(lambda _i: self.refresh())
        doc.selectionChanged.connect(self._sync_selection)
        self._updating = False
        self.refresh()

    def refresh(self) -> None:
        doc = self.model.doc
        self._updating = True
        self.list.clear()
        for i, face in enumerate(doc.faces):
            state = "restored" if face.applied is not None else "input"
            if face.turn:  # found in the photo turned (on its side or upside down); its crop is upright
                state += f", turned {90 * face.turn}°"
            self.list.addItem(
                QListWidgetItem(thumb_icon(face.result(), 64), f"Face {i + 1}  ({state}, p={face.score:.2f})")
            )
        self.list.setCurrentRow(doc.selected)
        self._updating = False
        has = bool(doc.faces)
        for b in (self.revert_button, self.clear_button, self.invert_button, *self.region_buttons.values()):
            b.setEnabled(has)
        self.detect_button.setEnabled(doc.photo is not None)
        self.detect_damage_button.setEnabled(doc.photo is not None)

    def _sync_selection(self, index: int) -> None:
        self._updating = True
        self.list.setCurrentRow(index)
        self._updating = False

    def _row_changed(self, row: int) -> None:
        if not self._updating and row >= 0:
            self.model.select(row)
