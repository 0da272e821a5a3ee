"""Stroke handling: turns canvas strokes into live mask/patch edits and ONE undo command per stroke (none when the
stroke changed nothing).

Tools: ``brush`` adds to the selected face's mask, ``damage`` to its damage layer (scratches, stains: the input is
ignored there), ``eraser`` removes from the layer the last of those two painted (the canvas's ``erase_layer``),
``patch`` brushes pixels of the chosen gallery sample into the face's current result (sample patchwork). The face
under the first dab becomes the selected face. Dabs are spaced a quarter of the brush radius apart so fast strokes
have no gaps.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from . import brush
from .model.commands import AppliedCommand, MaskCommand, UndoSink
from .model.document import Document


class StrokeController(QObject):
    """Connects a :class:`~frgd_studio.canvas.Canvas` to the document and the model's undo sink (``undo.push``)."""

    message = Signal(str)

    def __init__(self, doc: Document, undo: UndoSink, canvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.undo = undo
        self.canvas = canvas
        self.feather = 0.5
        self.patch_source: int | None = None  # gallery index used by the patch tool
        self._face = -1
        self._before: np.ndarray | None = None
        self._before_applied: tuple | None = None
        self._last: tuple[float, float] | None = None
        self._tool = "brush"
        self._layer = "mask"
        canvas.strokeBegan.connect(self.begin)
        canvas.strokeMoved.connect(self.move)
        canvas.strokeEnded.connect(self.end)

    def begin(self, x: float, y: float) -> None:
        self._tool = self.canvas.tool
        idx = self.doc.face_at(x, y)
        if idx >= 0 and idx != self.doc.selected:
            self.doc.select(idx)  # selecting is not an edit: no undo step
        face = self.doc.face()
        if face is None:
            self.message.emit("Detect faces first: the mask is painted on a face.")
            self._face = -1
            return
        self._face = self.doc.selected
        if self._tool == "patch":
            if self.patch_source is None or not 0 <= self.patch_source < len(face.samples):
                self.message.emit("Patch tool: select a gallery sample to brush from first.")
                self._face = -1
                return
            self._before_applied = face.applied_state()
        else:
            self._layer = {"brush": "mask", "damage": "damage"}.get(self._tool, self.canvas.erase_layer)
            self._before = getattr(face, self._layer).copy()
        self._last = (x, y)
        self._dab(x, y)

    def move(self, x: float, y: float) -> None:
        if self._face < 0 or self._last is None:
            return
        face = self.doc.faces[self._face]
        spacing = max(self.canvas.brush_size * 0.25, 0.5 / max(face.crop_scale(), 1e-6))
        for px, py in brush.stroke_points(self._last, (x, y), spacing):
            self._dab(px, py)
        self._last = (x, y)

    def _dab(self, x: float, y: float) -> None:
        face = self.doc.faces[self._face]
        cov = brush.face_dab(face, x, y, self.canvas.brush_size, self.feather)
        if self._tool == "patch":
            from frgd.restore import identity_changed, union_paste_mask

            sample = face.samples[self.patch_source]
            img = brush.blend(face.result(), sample.image, cov)
            identity = face.applied_identity or identity_changed([sample.method])
            # the result may now differ from the input where it did before and where the stroke brushed a sample in
            current = np.zeros_like(cov) if face.applied is None else face.applied_mask
            brushed = cov if sample.paste_mask is None else cov * sample.paste_mask
            mask = union_paste_mask(current, brushed)
            self.doc.set_applied(self._face, img, face.applied_seed, identity, mask)
        else:
            layer = getattr(face, self._layer)
            self.doc.set_layer(self._face, self._layer, brush.paint(layer, cov, erase=self._tool == "eraser"))

    def end(self) -> None:
        if self._face < 0:
            return
        face = self.doc.faces[self._face]
        if self._tool == "patch":
            before = self._before_applied
            if np.array_equal(face.applied, face.crop if before[0] is None else before[0]):
                self.doc.set_applied(self._face, *before)  # nothing painted (e.g. outside the face): no undo step
            else:
                after = face.applied_state()
                text = f"Patch face {self._face + 1} from sample {self.patch_source + 1}"
                self.undo.push(AppliedCommand(self.doc, self._face, after, text, before=before, applied=True))
        elif not np.array_equal(getattr(face, self._layer), self._before):
            text = f"{'Erase' if self._tool == 'eraser' else 'Paint'} {self._layer}"
            after = getattr(face, self._layer)
            cmd = MaskCommand(self.doc, self._face, self._before, after, text, applied=True, layer=self._layer)
            self.undo.push(cmd)
        self._face = -1
        self._last = None
