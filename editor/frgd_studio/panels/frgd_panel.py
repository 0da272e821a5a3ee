"""FRGD controls: identity <-> content slider, steps, samples per run, seed lock, Resample, the model and its status
(missing weights: the message with Download/Import, "Model folder…" validated before it is stored)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..model.editor import EditorModel
from ..model.settings import IDENTITY_GRADIENT, IDENTITY_GRADIENT_FAST, INPUT_QUALITIES, RANGES
from ..ui import ViewHooks
from .common import WeightsBox


class FRGDPanel(QWidget):
    def __init__(self, model: EditorModel, ui: ViewHooks) -> None:
        super().__init__()
        self.model = model
        self.pane = pane = model.frgd
        self.ui = ui
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setToolTip(
            "0 = stay close to the input photo (content); 1 = follow the reference identity. "
            "Without a reference only content guidance is used."
        )
        self.slider_value = QLabel()
        self.steps = QSpinBox()
        self.steps.setRange(*(int(v) for v in RANGES["steps"]))
        self.harmonise = QSpinBox()
        self.harmonise.setRange(*(int(v) for v in RANGES["harmonise"]))
        self.harmonise.setToolTip(
            "Harmonising passes per step: the model re-reads what the guidance did before the next step (fewer "
            "cracks and smears toward the identity end; each pass costs one more model call per step)"
        )
        self.candidates = QSpinBox()
        self.candidates.setRange(*(int(v) for v in RANGES["candidates"]))
        self.candidates.setToolTip(
            "With a reference: draw this many candidates for each sample and keep the one the identity encoder finds "
            "most like the reference (each candidate costs one more sample's time)"
        )
        self.fast_guidance = QCheckBox("Fast identity guidance")
        self.fast_guidance.setToolTip(
            "Push toward the reference at the model's estimate only, without a pass back through the model: about "
            "1.6x faster and less than half the memory on a CPU, but more cracked faces toward the identity end"
        )
        self.input_quality = QComboBox()
        labels = {"auto": "Detect", "clean": "Clean: keep its pixels", "degraded": "Noisy / JPEG: use the cleaned face"}
        for key in INPUT_QUALITIES:
            self.input_quality.addItem(labels.get(key, key), key)
        self.input_quality.setToolTip(
            "What a face, or the masked part of it, is held to at the photo's own resolution: a clean input's "
            "pixels, or (for a noisy, blurred or JPEG photo, whose noise and blocks must not come back) the cleaned "
            "estimate shown as the preview. Detect estimates it for each face."
        )
        self.samples = QSpinBox()
        self.samples.setRange(*(int(v) for v in RANGES["samples"]))
        self.seed = QSpinBox()
        self.seed.setRange(*(int(v) for v in RANGES["seed"]))
        self.lock_seed = QCheckBox("Lock")
        self.lock_seed.setToolTip("Locked: samples use seed, seed+1, ...; unlocked: fresh random seeds each run")
        self.resample_button = QPushButton("Resample  (R)")
        self.resample_button.setToolTip("Generate new alternatives for the selected face (inside its mask if painted)")
        self.resample_all_button = QPushButton("Resample all faces  (Shift+R)")
        self.resample_all_button.setToolTip(
            "Sample every face (each inside its mask if painted, with its references) and apply the first new sample "
            "to each face that has no result yet; one undo step"
        )
        self.model_label = QLabel()
        self.model_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.model_button = QPushButton("Model folder…")
        self.weights = WeightsBox(pane, ui.import_weights)
        self.notice = self.weights.notice

        slider_row = QHBoxLayout()
        slider_row.addWidget(QLabel("Content"))
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(QLabel("Identity"))
        slider_row.addWidget(self.slider_value)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.lock_seed)
        form = QFormLayout()
        form.addRow("Steps", self.steps)
        form.addRow("Harmonise", self.harmonise)
        form.addRow("Candidates", self.candidates)
        form.addRow("", self.fast_guidance)
        form.addRow("Input", self.input_quality)
        form.addRow("Samples per run", self.samples)
        form.addRow("Seed", seed_row)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_label, 1)
        model_row.addWidget(self.model_button)
        lay = QVBoxLayout(self)
        lay.addLayout(slider_row)
        lay.addLayout(form)
        lay.addWidget(self.resample_button)
        lay.addWidget(self.resample_all_button)
        lay.addLayout(model_row)
        lay.addWidget(self.weights)
        lay.addStretch(1)

        self.slider.valueChanged.connect(lambda v: pane.set_param("identity_strength", v / 100.0))
        self.steps.valueChanged.connect(lambda v: pane.set_param("steps", int(v)))
        self.harmonise.valueChanged.connect(lambda v: pane.set_param("harmonise", int(v)))
        self.candidates.valueChanged.connect(lambda v: pane.set_param("candidates", int(v)))
        self.samples.valueChanged.connect(lambda v: pane.set_param("samples", int(v)))
        self.seed.valueChanged.connect(lambda v: pane.set_param("seed", int(v)))
        self.lock_seed.toggled.connect(lambda on: pane.set_param("lock_seed", bool(on)))
        self.fast_guidance.toggled.connect(
            lambda on: pane.set_param("identity_gradient", IDENTITY_GRADIENT_FAST if on else IDENTITY_GRADIENT)
        )
        self.input_quality.currentIndexChanged.connect(
            lambda i: pane.set_param("input_quality", self.input_quality.itemData(i))
        )
        self.resample_button.clicked.connect(lambda: pane.run())
        self.resample_all_button.clicked.connect(lambda: pane.run_all())
        self.model_button.clicked.connect(self.choose_model)
        pane.changed.connect(self.refresh)
        model.doc.selectionChanged.connect(lambda _i: self.update_enabled())
        model.doc.facesChanged.connect(self.update_enabled)
        model.doc.photoChanged.connect(self.update_enabled)
        self.refresh()

    @property
    def identity_strength(self) -> float:
        return self.slider.value() / 100.0

    def refresh(self) -> None:
        """Show the pane's parameters and status."""
        p = self.pane.params()
        for widget, value in ((self.slider, int(round(100 * p.identity_strength))), (self.steps, p.steps),
                              (self.harmonise, p.harmonise), (self.candidates, p.candidates),
                              (self.samples, p.samples),
                              (self.seed, p.seed)):  # fmt: skip
            if widget.value() != value:
                widget.setValue(value)
        if self.lock_seed.isChecked() != p.lock_seed:
            self.lock_seed.setChecked(p.lock_seed)
        fast = p.identity_gradient == IDENTITY_GRADIENT_FAST
        if self.fast_guidance.isChecked() != fast:
            self.fast_guidance.setChecked(fast)
        i = self.input_quality.findData(p.input_quality)
        if i >= 0 and self.input_quality.currentIndex() != i:
            self.input_quality.setCurrentIndex(i)
        self.slider_value.setText(f"{p.identity_strength:.2f}")
        status = self.pane.status()
        self.model_label.setText(f"Model: {status.model}" if status.ready else "Model: not installed")
        self.model_label.setToolTip(self.pane.model_dir() or "")
        self.update_enabled()

    def update_enabled(self) -> None:
        ready = self.pane.status().ready
        self.resample_button.setEnabled(ready and self.model.doc.face() is not None)
        self.resample_all_button.setEnabled(ready and bool(self.model.doc.faces))

    def choose_model(self) -> None:
        folder = self.ui.open_folder("FRGD model folder (config.json + safetensors)")
        if folder:
            problem = self.pane.set_model_folder(folder)
            if problem:
                self.model.error(f"Not an FRGD model folder (the choice is not kept): {problem}")
