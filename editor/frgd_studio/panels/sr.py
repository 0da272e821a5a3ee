"""Super-resolution pane: upscale the whole photo with a chosen model and scale; the result can become the
background the restored faces are pasted onto."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QPushButton, QVBoxLayout, QWidget

from .. import backend, commands
from .common import NoticeLabel


class SRPanel(QWidget):
    name_prefix = "SR"

    def __init__(self, window) -> None:
        super().__init__()
        self.w = window
        self.model = QComboBox()
        self.scale = QComboBox()
        self.run_button = QPushButton("Upscale photo")
        self.background = QCheckBox("Paste restored faces onto the upscaled photo")
        self.notice = NoticeLabel()
        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow("Scale", self.scale)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.run_button)
        lay.addWidget(self.background)
        lay.addWidget(self.notice)
        lay.addStretch(1)
        self.model.currentTextChanged.connect(self._model_changed)
        self.run_button.clicked.connect(self.run)
        self.background.toggled.connect(self._background_toggled)
        window.doc.paneResultsChanged.connect(self._sync_background)
        window.doc.photoChanged.connect(self._sync_background)
        self.reload()

    def reload(self) -> None:
        """List the upscalers the pipelines offer; explain when the SR backend is missing."""
        self.model.blockSignals(True)
        self.model.clear()
        try:
            models = backend.sr_models()
        except Exception as err:  # ImportError while the SR module is absent, FRGDError otherwise
            models = []
            self.notice.show_text(f"Super-resolution is not available: {err}")
        else:
            self.notice.show_text(None)
        for m in models:
            self.model.addItem(m.label, m)
        saved = self.w.settings.get("sr_model")
        idx = max(0, self.model.findText(saved)) if saved else 0
        self.model.setCurrentIndex(idx if models else -1)
        self.model.blockSignals(False)
        self._model_changed(self.model.currentText())
        if models:
            self.check_status()

    def check_status(self) -> None:
        """Find out in the background which upscalers have their weights (this may load them)."""
        infos = [self.model.itemData(i) for i in range(self.model.count())]
        for info in infos:
            if info.problem is None and info.name not in backend.SR_SCALES:
                info.problem = "checking the weights…"

        def done(status: dict) -> None:
            for info in infos:
                info.problem = status.get(info.name)
            self._model_changed(self.model.currentText())

        self.w.run_job("Check upscalers", lambda _d, _p, _c: backend.sr_status([i.name for i in infos]), done)

    def _model_changed(self, _text: str) -> None:
        info = self.model.currentData()
        self.scale.clear()
        if info is None:
            self.run_button.setEnabled(False)
            return
        for s in info.scales:
            self.scale.addItem(f"×{s}", s)
        want = int(self.w.settings.get("sr_scale"))
        k = self.scale.findData(want)
        self.scale.setCurrentIndex(k if k >= 0 else 0)
        self.w.settings.set("sr_model", self.model.currentText())
        self.notice.show_text(info.problem)
        self.run_button.setEnabled(info.problem is None and self.w.doc.photo is not None)

    def result_name(self) -> str:
        return f"{self.name_prefix} {self.model.currentText()} ×{self.scale.currentData()}"

    def run(self) -> None:
        info = self.model.currentData()
        if info is None or self.w.doc.photo is None:
            return
        scale = int(self.scale.currentData())
        self.w.settings.set("sr_scale", scale)
        photo = self.w.doc.photo
        name = self.result_name()
        params = {"model": info.name, "scale": scale}

        def job(device, progress, cancel):
            return backend.run_sr(photo, info.name, scale, device, progress, cancel)

        def done(img) -> None:
            self.w.stack.push(commands.PaneResultCommand(self.w.doc, name, img, params))
            self.w.show_result(name)

        self.w.run_job(f"Upscale ×{scale} ({info.name})", job, done)

    def _background_toggled(self, on: bool) -> None:
        doc = self.w.doc
        names = [n for n in doc.pane_results if n.startswith(self.name_prefix + " ")]
        target = (names[-1] if names else None) if on else None
        if target != doc.background and (on or (doc.background or "").startswith(self.name_prefix + " ")):
            self.w.stack.push(commands.BackgroundCommand(doc, target))

    def _sync_background(self) -> None:
        bg = self.w.doc.background
        self.background.blockSignals(True)
        self.background.setChecked(bool(bg) and bg.startswith(self.name_prefix + " "))
        self.background.blockSignals(False)
        has = any(n.startswith(self.name_prefix + " ") for n in self.w.doc.pane_results)
        self.background.setEnabled(has)
        info = self.model.currentData()
        self.run_button.setEnabled(info is not None and info.problem is None and self.w.doc.photo is not None)
