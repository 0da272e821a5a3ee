"""Stroke handling: turns canvas strokes into live mask/patch edits and ONE undo command per stroke (none when the
stroke changed nothing).

Tools: ``brush`` adds to the selected face's mask, ``damage`` to the photo's damage layer (scratches, creases,
stains anywhere on the photo: filled in the result, ignored by every restorer), ``eraser`` removes from the layer the
last of those two painted (the canvas's ``erase_layer``), ``patch`` brushes pixels of the chosen gallery sample into
the face's current result (sample patchwork). The face under the first dab becomes the selected face (the damage
layer needs none). Dabs are spaced a quarter of the brush radius apart so fast strokes have no gaps; a damage stroke's
undo step keeps only the rectangle it touched. While a stroke is painted nothing else changes the document
(:meth:`EditorModel.begin_stroke`): job results wait for the release, and another edit, Undo or Redo first ends the
stroke as its own undo step (the rest of that drag paints nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication

from . import brush
from .model.commands import AppliedCommand, DamageCommand, MaskCommand
from .model.document import Box, Document

if TYPE_CHECKING:
    from .model.editor import EditorModel

PHOTO_LAYER = -2
"""The stroke's face index while a damage stroke paints the photo's own layer (-1: no stroke)."""


class StrokeController(QObject):
    """Connects a :class:`~frgd_studio.canvas.Canvas` to the document and the model (its undo steps and
    :meth:`~.model.editor.EditorModel.begin_stroke`)."""

    message = Signal(str)

    def __init__(self, doc: Document, model: EditorModel, canvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.model = model
        self.canvas = canvas
        self.held = _left_button_down
        """``held() -> bool``: whether the painting button is still down (tests replace it)."""
        self.feather = 0.5
        self.patch_source: int | None = None  # gallery index used by the patch tool
        self._face = -1
        self._before: np.ndarray | None = None
        self._before_applied: tuple | None = None
        self._last: tuple[float, float] | None = None
        self._tool = "brush"
        self._layer = "mask"
        self._damage_before: np.ndarray | None = None  # the damage layer when a damage stroke began
        self._box: Box | None = None  # the rectangle a damage stroke touched so far
        canvas.strokeBegan.connect(self.begin)
        canvas.strokeMoved.connect(self.move)
        canvas.strokeEnded.connect(self.end)

    def begin(self, x: float, y: float) -> None:
        self._tool = self.canvas.tool
        idx = self.doc.face_at(x, y)
        if idx >= 0 and idx != self.doc.selected:
            self.doc.select(idx)  # selecting is not an edit: no undo step
        self._layer = {"brush": "mask", "damage": "damage"}.get(self._tool, self.canvas.erase_layer)
        if self._tool != "patch" and self._layer == "damage":  # the photo's layer: no face needed
            self.model.begin_stroke(self._commit, self.held)
            self._face, self._box = PHOTO_LAYER, None
            self._damage_before = self.doc.damage  # replaced by every edit, never written: no copy needed
            self._last = (x, y)
            self._dab(x, y)
            return
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
            self._before = face.mask.copy()
        self.model.begin_stroke(self._commit, self.held)
        self._last = (x, y)
        self._dab(x, y)

    def move(self, x: float, y: float) -> None:
        if self._face == -1 or self._last is None:
            return
        crop_px = 1.0 if self._face < 0 else self.doc.faces[self._face].crop_scale()  # layer px per photo px
        spacing = max(self.canvas.brush_size * 0.25, 0.5 / max(crop_px, 1e-6))
        for px, py in brush.stroke_points(self._last, (x, y), spacing):
            self._dab(px, py)
        self._last = (x, y)

    def _dab(self, x: float, y: float) -> None:
        if self._face == PHOTO_LAYER:
            self._damage_dab(x, y)
            return
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
            self.doc.set_mask(self._face, brush.paint(face.mask, cov, erase=self._tool == "eraser"))

    def _damage_dab(self, x: float, y: float) -> None:
        dab = brush.photo_dab(self.doc.photo.shape[:2], x, y, self.canvas.brush_size, self.feather)
        if dab is None:
            return
        (y0, y1, x0, x1), cov = dab
        d = self.doc.damage
        region = np.zeros(cov.shape, np.uint8) if d is None else d[y0:y1, x0:x1]
        painted = brush.paint(region, cov, erase=self._tool == "eraser")
        if np.array_equal(painted, region):
            return
        self.doc.set_damage(painted, (y0, y1, x0, x1))
        b = self._box
        self._box = (y0, y1, x0, x1) if b is None else (min(b[0], y0), max(b[1], y1), min(b[2], x0), max(b[3], x1))

    def _end_damage(self) -> None:
        """One undo step for the stroke: the rectangle it touched, before and after (none when nothing changed)."""
        box, before = self._box, self._damage_before
        self._box = self._damage_before = None
        if box is None:
            return
        y0, y1, x0, x1 = box
        old = np.zeros((y1 - y0, x1 - x0), np.uint8) if before is None else before[y0:y1, x0:x1]
        new = self.doc.damage[y0:y1, x0:x1]
        if not np.array_equal(old, new):
            text = f"{'Erase' if self._tool == 'eraser' else 'Paint'} damage"
            self.model.push(DamageCommand(self.doc, box, old, new, text, applied=True))

    def end(self) -> None:
        """The button was released: the stroke's undo step (:meth:`_commit`), then the results it held."""
        self.model.end_stroke()

    def _commit(self) -> None:
        """Push the stroke's one undo step (none when it changed nothing); the rest of its drag paints nothing."""
        if self._face == PHOTO_LAYER:
            self._end_damage()
        if self._face < 0:
            self._face = -1
            self._last = None
            return
        face = self.doc.faces[self._face]
        if self._tool == "patch":
            before = self._before_applied
            if np.array_equal(face.applied, face.crop if before[0] is None else before[0]):
                self.doc.set_applied(self._face, *before)  # nothing painted (e.g. outside the face): no undo step
            else:
                after = face.applied_state()
                text = f"Patch face {self._face + 1} from sample {self.patch_source + 1}"
                self.model.push(AppliedCommand(self.doc, self._face, after, text, before=before, applied=True))
        elif not np.array_equal(face.mask, self._before):
            text = f"{'Erase' if self._tool == 'eraser' else 'Paint'} mask"
            self.model.push(MaskCommand(self.doc, self._face, self._before, face.mask, text, applied=True))
        self._face = -1
        self._last = None


def _left_button_down() -> bool:
    """Whether the left mouse button is down now (the application's own state, not the canvas's events)."""
    return bool(QGuiApplication.mouseButtons() & Qt.MouseButton.LeftButton)
