"""FRGD controls: identity <-> content slider, steps, samples per run, seed lock, Resample, model status."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from frgd.errors import FRGDError

from .common import NoticeLabel

MAX_SEED = 2**31 - 1


class FRGDPanel(QWidget):
    def __init__(self, window) -> None:
        super().__init__()
        self.w = window
        s = window.settings
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(int(round(100 * float(s.get("identity_strength")))))
        self.slider.setToolTip(
            "0 = stay close to the input photo (content); 1 = follow the reference identity. "
            "Without a reference only content guidance is used."
        )
        self.slider_value = QLabel()
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(int(s.get("steps")))
        self.samples = QSpinBox()
        self.samples.setRange(1, 16)
        self.samples.setValue(int(s.get("samples")))
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setValue(1234)
        self.lock_seed = QCheckBox("Lock")
        self.lock_seed.setToolTip("Locked: samples use seed, seed+1, ...; unlocked: fresh random seeds each run")
        self.resample_button = QPushButton("Resample  (R)")
        self.resample_button.setToolTip("Generate new alternatives for the selected face (inside its mask if painted)")
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_button = QPushButton("Model folder…")
        self.notice = NoticeLabel()

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
        form.addRow("Samples per run", self.samples)
        form.addRow("Seed", seed_row)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_label, 1)
        model_row.addWidget(self.model_button)
        lay = QVBoxLayout(self)
        lay.addLayout(slider_row)
        lay.addLayout(form)
        lay.addWidget(self.resample_button)
        lay.addLayout(model_row)
        lay.addWidget(self.notice)
        lay.addStretch(1)

        self.slider.valueChanged.connect(self._slider_changed)
        self.steps.valueChanged.connect(lambda v: s.set("steps", int(v)))
        self.samples.valueChanged.connect(lambda v: s.set("samples", int(v)))
        self.resample_button.clicked.connect(window.resample)
        self.model_button.clicked.connect(self._choose_model)
        window.doc.selectionChanged.connect(lambda _i: self.update_enabled())
        window.doc.facesChanged.connect(self.update_enabled)
        self._slider_changed(self.slider.value())
        self.refresh_model()

    @property
    def identity_strength(self) -> float:
        return self.slider.value() / 100.0

    def _slider_changed(self, v: int) -> None:
        self.slider_value.setText(f"{v / 100:.2f}")
        self.w.settings.set("identity_strength", v / 100.0)

    def seeds_for_run(self) -> list[int] | None:
        """Locked: ``[seed, seed+1, ...]``; unlocked: ``None`` (the pipeline draws and reports random seeds)."""
        if self.lock_seed.isChecked():
            return [min(self.seed.value() + i, MAX_SEED) for i in range(self.samples.value())]
        return None

    def model_status(self) -> tuple[str | None, str | None]:
        """(model folder, problem text) without loading anything."""
        from frgd.restore import default_model_dir

        chosen = self.w.settings.get("frgd_model")
        try:
            path = Path(chosen) if chosen else default_model_dir()
        except FRGDError as err:
            return None, str(err)
        if not (path / "config.json").is_file():
            return str(path), (
                f"FRGD model weights not found: expected {path}/config.json and diffusion_pytorch_model.safetensors. "
                "Train one with `frgd train` or install a model folder with `frgd weights import`, then pick it "
                "with 'Model folder…'."
            )
        return str(path), None

    def refresh_model(self) -> None:
        path, problem = self.model_status()
        self.model_label.setText(f"Model: {Path(path).name}" if path and not problem else "Model: not installed")
        self.model_label.setToolTip(path or "")
        self.notice.show_text(problem)
        self.w.update_status_model(None if problem else Path(path).name)
        self.update_enabled()

    def update_enabled(self) -> None:
        _path, problem = self.model_status()
        self.resample_button.setEnabled(problem is None and self.w.doc.face() is not None)

    def _choose_model(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "FRGD model folder (config.json + safetensors)")
        if d:
            self.w.settings.set("frgd_model", d)
            from .. import backend

            backend.clear_caches()
            self.refresh_model()

    def set_seed_used(self, seeds: list[int]) -> None:
        """Show the first seed of the last run (so the user can lock and reproduce it)."""
        if seeds and not self.lock_seed.isChecked():
            self.seed.setValue(min(int(seeds[0]), MAX_SEED))
