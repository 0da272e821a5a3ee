"""The small Qt helper the panels get besides the model: file dialogs and changes of the window's view (tool, patch
source, comparison). It holds no document logic; panels never see the main window itself."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QFileDialog, QWidget

from .model.panes import Pane, WeightsFix

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp)"
SESSION_FILTER = "FRGD Studio sessions (*.frgd)"
WEIGHTS_FILTER = "Weights (*.pth *.pt *.safetensors *.bin *.whl *.zip);;All files (*)"


class ViewHooks:
    """Dialogs (replaceable in tests: ``open_file``/``open_folder`` are plain attributes) and view callbacks."""

    def __init__(self, parent: QWidget, set_tool: Callable[[str], None], show_compare: Callable[[str, str], None],
                 set_patch_source: Callable[[int | None], None]) -> None:  # fmt: skip
        self.parent = parent
        self.set_tool = set_tool
        self.show_compare = show_compare
        self.set_patch_source = set_patch_source
        self.open_file: Callable[[str, str], str | None] = self._open_file
        self.open_folder: Callable[[str], str | None] = self._open_folder

    def _open_file(self, title: str, filter: str = "") -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, "", filter)
        return path or None

    def _open_folder(self, title: str) -> str | None:
        return QFileDialog.getExistingDirectory(self.parent, title) or None

    def import_weights(self, pane: Pane, fix: WeightsFix) -> None:
        """Ask for the file (or folder) the user has and import it as ``fix.entry`` (a job of the pane)."""
        if fix.folder:
            path = self.open_folder(f"Folder holding {fix.entry}")
        else:
            path = self.open_file(f"Weights file of {fix.entry}", WEIGHTS_FILTER)
        if path:
            pane.import_weights(path, fix.entry)
