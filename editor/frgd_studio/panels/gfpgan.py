"""GFPGAN pane: restore every face of the photo with GFPGANv1Clean (official v1.3 / v1.4 weights).

When the weights are not installed the pane shows the :class:`~frgd.errors.MissingWeightsError` text with Download
and Import… buttons; everything else in the editor keeps working.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QPushButton, QVBoxLayout, QWidget

from ..model.editor import EditorModel
from ..ui import ViewHooks
from .common import WeightsBox


class GFPGANPanel(QWidget):
    def __init__(self, model: EditorModel, ui: ViewHooks) -> None:
        super().__init__()
        self.model = model
        self.pane = pane = model.gfpgan
        self.version = QComboBox()
        self.version.addItems(list(pane.VERSIONS))
        self.version.setCurrentText(pane.version)
        self.weight = QDoubleSpinBox()
        self.weight.setRange(0.0, 1.0)
        self.weight.setSingleStep(0.1)
        self.weight.setValue(pane.weight)
        self.weight.setToolTip("Blend of the GFPGAN face with the input face (1 = GFPGAN only)")
        self.upscale = QComboBox()
        for s in pane.SCALES:
            self.upscale.addItem(f"×{s}", s)
        self.upscale.setCurrentIndex(self.upscale.findData(pane.scale))
        self.run_button = QPushButton("Restore faces with GFPGAN")
        self.weights = WeightsBox(pane, ui.import_weights)
        self.notice = self.weights.notice
        form = QFormLayout()
        form.addRow("Model", self.version)
        form.addRow("Weight", self.weight)
        form.addRow("Upscale", self.upscale)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.run_button)
        lay.addWidget(self.weights)
        lay.addStretch(1)
        self.version.currentTextChanged.connect(pane.set_version)
        self.weight.valueChanged.connect(lambda v: setattr(pane, "weight", float(v)))
        self.upscale.currentIndexChanged.connect(lambda _i: setattr(pane, "scale", int(self.upscale.currentData())))
        self.run_button.clicked.connect(self.run)
        pane.changed.connect(self.refresh)
        model.doc.photoChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.run_button.setEnabled(self.pane.can_run())

    def run(self) -> None:
        self.pane.run()
