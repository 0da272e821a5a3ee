"""The editor's questions as Qt dialogs: unsaved changes (Save / Discard / Cancel), Export (what is written, named),
and the slow-upscale question. The model asks through plain callables, so tests answer without dialogs."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from .model.backend import SREstimate
from .model.editor import EditorModel
from .session import file_name


def ask_unsaved(parent: QWidget, title: str) -> str:
    """``"save"``, ``"discard"`` or ``"cancel"`` for the unsaved edits of ``title``."""
    box = QMessageBox(QMessageBox.Icon.Question, "FRGD Studio", f"{title} has unsaved changes.", parent=parent)
    box.setInformativeText("Save the session before continuing?")
    box.setStandardButtons(
        QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
    )
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    answer = box.exec()
    return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
        QMessageBox.StandardButton(answer), "cancel"
    )


RECOVER_ANSWERS = ("recover", "discard", "later")


def ask_recover(parent: QWidget, what: str) -> str:
    """``"recover"``, ``"discard"`` or ``"later"`` for an autosaved session ``what`` (:meth:`Leftover.describe`)
    left by an editor that did not close normally."""
    text = f"FRGD Studio did not close normally. Recover the unsaved work on {what}?"
    box = QMessageBox(QMessageBox.Icon.Question, "FRGD Studio", text, parent=parent)
    box.setInformativeText("Recover opens it as unsaved work; Discard deletes it; Later asks again next time.")
    recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(recover)
    box.exec()
    clicked = box.clickedButton()
    return "recover" if clicked is recover else "discard" if clicked is discard else "later"


def ask_locate_photo(parent: QWidget, session: str, photo: str) -> bool:
    """Whether to look for the photo of ``session``, gone from ``photo`` (Locate… / Cancel)."""
    text = f"The photo of {file_name(session)} is missing: {file_name(photo)}"
    box = QMessageBox(QMessageBox.Icon.Warning, "FRGD Studio", text, parent=parent)
    box.setInformativeText(f"It was at {photo}, and it is not beside the session either. Locate it to open the "
                           "session (a photo that changed since is opened with a warning).")  # fmt: skip
    locate = box.addButton("Locate…", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(locate)
    box.exec()
    return box.clickedButton() is locate


def duration(seconds: float) -> str:
    """``"about 40 s"``, ``"about 16 min"``, ``"about 1.5 h"``."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def slow_sr_text(est: SREstimate) -> str:
    """e.g. ``realesrgan-x4plus on CPU: about 16 min. realesr-animevideov3: about 40 s.``"""
    text = f"{est.name} on CPU: {duration(est.seconds)}."
    if est.alternative and est.alternative_seconds is not None:
        text += f" {est.alternative}: {duration(est.alternative_seconds)}."
    return text


def ask_slow_sr(parent: QWidget, est: SREstimate) -> str:
    """``"fast"`` (use the suggested model), ``"run"`` (anyway) or ``"cancel"``."""
    box = QMessageBox(QMessageBox.Icon.Question, "FRGD Studio", slow_sr_text(est), parent=parent)
    fast = box.addButton("Use the fast model", QMessageBox.ButtonRole.AcceptRole) if est.alternative else None
    run = box.addButton("Run anyway", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    clicked = box.clickedButton()
    return "fast" if fast is not None and clicked is fast else "run" if clicked is run else "cancel"


class ExportDialog(QDialog):
    """Choose what to export (Result / Original / a pane result; not what "Show:" displays) and read what it is."""

    def __init__(self, model: EditorModel, parent: QWidget | None = None, choice: str = "Result") -> None:
        super().__init__(parent)
        self.model = model
        self.setWindowTitle("Export")
        self.combo = QComboBox()
        self.combo.addItems(model.export_choices())
        self.combo.setCurrentText(choice)
        self.description = QLabel()
        self.description.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export…")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Export", self.combo)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.description)
        lay.addWidget(buttons)
        self.combo.currentTextChanged.connect(self._describe)
        self._describe(self.combo.currentText())

    def choice(self) -> str:
        return self.combo.currentText()

    def _describe(self, choice: str) -> None:
        self.description.setText(self.model.export_plan(choice).description if choice else "")
