"""GFPGAN pane: restore every face of the photo with GFPGANv1Clean (official v1.3 / v1.4 weights).

When the weights are not installed the pane shows the :class:`~frgd.errors.MissingWeightsError` text (where to get
them and the ``frgd weights import`` hint); everything else in the editor keeps working.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QPushButton, QVBoxLayout, QWidget

from .. import backend, commands
from .common import NoticeLabel


class GFPGANPanel(QWidget):
    def __init__(self, window) -> None:
        super().__init__()
        self.w = window
        self.version = QComboBox()
        self.version.addItems(list(backend.GFPGAN_VERSIONS))
        self.weight = QDoubleSpinBox()
        self.weight.setRange(0.0, 1.0)
        self.weight.setSingleStep(0.1)
        self.weight.setValue(0.5)
        self.weight.setToolTip("Blend of the GFPGAN face with the input face (1 = GFPGAN only)")
        self.upscale = QComboBox()
        for s in (1, 2, 4):
            self.upscale.addItem(f"×{s}", s)
        self.upscale.setCurrentIndex(1)
        self.run_button = QPushButton("Restore faces with GFPGAN")
        self.notice = NoticeLabel()
        form = QFormLayout()
        form.addRow("Model", self.version)
        form.addRow("Weight", self.weight)
        form.addRow("Upscale", self.upscale)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.run_button)
        lay.addWidget(self.notice)
        lay.addStretch(1)
        self.version.currentTextChanged.connect(lambda _t: self.refresh())
        self.run_button.clicked.connect(self.run)
        window.doc.photoChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        problem = backend.gfpgan_problem(self.version.currentText())
        self.notice.show_text(problem)
        self.run_button.setEnabled(problem is None and self.w.doc.photo is not None)

    def run(self) -> None:
        if self.w.doc.photo is None:
            return
        photo = self.w.doc.photo
        faces = list(self.w.doc.faces)
        version = self.version.currentText()
        weight = float(self.weight.value())
        scale = int(self.upscale.currentData())
        name = f"GFPGAN {version} ×{scale}"
        params = {"model": f"GFPGAN{version}", "method": "gfpgan", "weight": weight, "upscale": scale}

        def job(device, progress, cancel):
            return backend.run_gfpgan(photo, faces, version, weight, scale, device, progress, cancel)

        def done(img) -> None:
            self.w.stack.push(commands.PaneResultCommand(self.w.doc, name, img, params))
            self.w.show_result(name)

        self.w.run_job(f"GFPGAN {version}", job, done)
