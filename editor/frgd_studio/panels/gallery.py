"""Gallery of FRGD alternatives for the selected face: seed, slider, identity score (the tooltip: the meter's verdict
and what the sample made of its input); apply, patch, compare."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QHBoxLayout, QListView, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ..model.editor import EditorModel
from ..ui import ViewHooks
from .common import thumb_icon


def _meter_label(sample) -> str:
    """The identity meter's verdict line for a sample (``""`` without a reference or meter data)."""
    meter = (getattr(sample, "parameters", None) or {}).get("identity_meter")
    if sample.identity_score is None or not meter:
        return ""
    from frgd.identity.meter import label_from_params  # torch is loaded once FRGD has produced samples

    return label_from_params(sample.identity_score, meter)


def _input_notes(sample) -> list[str]:
    """What the sample made of its input, for the tooltip: the prior's share of its content target (how far a whole
    face was held to the cleaned estimate rather than the photo's pixels) and the share of the face marked damaged."""
    params = getattr(sample, "parameters", None) or {}
    notes = []
    share = params.get("prior_share")
    if isinstance(share, dict) and share.get("values"):
        a = float(share["values"][0])
        how = "estimated" if share.get("source") == "estimated" else "set by Input"
        notes.append(f"held to {100 * (1 - a):.0f} % photo, {100 * a:.0f} % cleaned estimate ({how})")
    if params.get("damage"):
        notes.append(f"{100 * float(params['damage']):.1f} % of the face marked damaged: ignored and filled")
    return notes


def _entry_text(sample, applied: str) -> tuple[str, list[str]]:
    """The text under a gallery thumbnail (``applied``: " ✓" for the face's result, else "") and its tooltip lines."""
    if sample.imported:  # a crop from a file: its name; its size and hash in the tooltip
        p = sample.parameters
        size = "x".join(map(str, p.get("size", []))) or "?"
        return f"imported{applied}\n{p.get('file', '')}", [
            f"{sample.label()} ({size} px, sha256 {str(p.get('sha256', ''))[:12]}…)",
            "counted as identity changed in exports (the file can hold anyone's face)",
        ]
    sim = "–" if sample.identity_score is None else f"{sample.identity_score:.2f}"
    text = f"seed {sample.seed}{applied}\nid {sample.identity_strength:.2f} · sim {sim}"
    meter = _meter_label(sample)
    if meter:  # the verdict under the thumbnail; the full line (encoder, optimistic) in the tooltip
        text += "\nsame: " + meter.split(" (")[0].removeprefix("same person: ")
    return text, [sample.label() + f" · {sample.steps} steps", *([meter] if meter else []), *_input_notes(sample)]


class GalleryPanel(QWidget):
    def __init__(self, model: EditorModel, ui: ViewHooks) -> None:
        super().__init__()
        self.model = model
        self.ui = ui
        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(96, 96))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setWordWrap(True)
        self.list.setSpacing(4)
        self.list.setGridSize(QSize(122, 150))
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Use this sample as the face's result (double-click does the same)")
        self.patch_button = QPushButton("Patch brush")
        self.patch_button.setToolTip("Brush regions of this sample into the current result (sample patchwork)")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Compare this sample with the face's current result")
        row = QHBoxLayout()
        row.addWidget(self.apply_button)
        row.addWidget(self.patch_button)
        row.addWidget(self.compare_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.list, 1)
        lay.addLayout(row)
        self.apply_button.clicked.connect(self.apply_current)
        self.list.itemDoubleClicked.connect(lambda _it: self.apply_current())
        self.patch_button.clicked.connect(self._patch)
        self.compare_button.clicked.connect(self._compare)
        self.list.currentRowChanged.connect(self._row_changed)
        # choosing a sample takes the FRGD preview away (refresh() blocks these: only the user's choice counts)
        self.list.currentRowChanged.connect(lambda _r: model.show_preview(None))
        self.list.itemClicked.connect(lambda _it: model.show_preview(None))
        doc = model.doc
        doc.samplesChanged.connect(lambda _i: self.refresh())
        doc.selectionChanged.connect(lambda _i: self.refresh())
        doc.facesChanged.connect(self.refresh)
        doc.appliedChanged.connect(lambda _i: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        row = self.list.currentRow()
        self.list.blockSignals(True)
        self.list.clear()
        face = self.model.doc.face()
        if face is not None:
            chosen = face.applied_sample()
            for s in face.samples:
                text, tip = _entry_text(s, " ✓" if s is chosen else "")
                item = QListWidgetItem(thumb_icon(s.image, 96), text)
                item.setToolTip("\n".join(tip))
                self.list.addItem(item)
            if face.samples:
                self.list.setCurrentRow(min(max(row, 0), len(face.samples) - 1))
        self.list.blockSignals(False)
        self._row_changed(self.list.currentRow())

    def _row_changed(self, row: int) -> None:
        ok = row >= 0
        for b in (self.apply_button, self.patch_button, self.compare_button):
            b.setEnabled(ok)
        self.ui.set_patch_source(row if ok else None)

    def apply_current(self) -> None:
        self.model.apply_sample(self.list.currentRow())

    def _patch(self) -> None:
        self.ui.set_patch_source(self.list.currentRow())
        self.ui.set_tool("patch")

    def _compare(self) -> None:
        row = self.list.currentRow()
        face = self.model.doc.face()
        if face is None or row < 0:
            return
        n = self.model.doc.selected + 1
        left = f"Face {n}: result" if face.applied is not None else f"Face {n}: input"
        self.ui.show_compare(left, f"Face {n}: sample {row + 1} ({face.samples[row].short_label()})")
