"""Super-resolution pane: upscale the whole photo with a chosen model and scale; the result can become the
background the restored faces are pasted onto. A slow learned model on the CPU first shows its expected time and
offers the fast model (:meth:`~frgd_studio.model.panes.SRPane.run`)."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QPushButton, QVBoxLayout, QWidget

from ..model.editor import EditorModel
from ..ui import ViewHooks
from .common import WeightsBox


class SRPanel(QWidget):
    def __init__(self, model: EditorModel, ui: ViewHooks) -> None:
        super().__init__()
        self.editor = model
        self.pane = pane = model.sr
        self.model = QComboBox()
        for m in pane.models:
            self.model.addItem(m.label, m.name)
        self.scale = QComboBox()
        self.run_button = QPushButton("Upscale photo")
        self.background = QCheckBox("Paste restored faces onto the upscaled photo")
        self.weights = WeightsBox(pane, ui.import_weights)
        self.notice = self.weights.notice
        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow("Scale", self.scale)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.run_button)
        lay.addWidget(self.background)
        lay.addWidget(self.weights)
        lay.addStretch(1)
        self.model.currentIndexChanged.connect(self._model_chosen)
        self.scale.currentIndexChanged.connect(self._scale_chosen)
        self.run_button.clicked.connect(self.run)
        self.background.toggled.connect(pane.use_as_background)
        pane.changed.connect(self.refresh)
        model.doc.paneResultsChanged.connect(self.refresh)
        model.doc.photoChanged.connect(self.refresh)
        self.refresh()

    def _model_chosen(self, _index: int) -> None:
        name = self.model.currentData()
        if name and name != self.pane.model:
            self.pane.set_model(name)

    def _scale_chosen(self, _index: int) -> None:
        scale = self.scale.currentData()
        if scale is not None and scale != self.pane.scale:
            self.pane.set_scale(int(scale))

    def refresh(self) -> None:
        pane = self.pane
        for combo, data, items in ((self.model, pane.model, None),
                                   (self.scale, pane.scale, pane.info().scales if pane.info() else ())):  # fmt: skip
            combo.blockSignals(True)
            if items is not None:
                combo.clear()
                for s in items:
                    combo.addItem(f"×{s}", s)
            combo.setCurrentIndex(combo.findData(data))
            combo.blockSignals(False)
        bg = self.editor.doc.background
        self.background.blockSignals(True)
        self.background.setChecked(bool(bg) and bg.startswith(pane.prefix + " "))
        self.background.blockSignals(False)
        self.background.setEnabled(bool(pane.results()))
        self.run_button.setEnabled(pane.can_run())

    def result_name(self) -> str:
        return self.pane.result_name()

    def run(self) -> None:
        self.pane.run()
