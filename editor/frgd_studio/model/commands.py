"""Undoable document changes, without Qt. Every user-visible change of a :class:`~.document.Document` is one of
these :class:`Command` objects pushed on an :class:`UndoSink` (the window's ``QUndoStack`` through
:class:`frgd_studio.undo.QtUndoSink`, which wraps each one in a ``QUndoCommand``; :class:`ListUndoSink` without Qt).
Selecting a face and measuring identity scores are not document changes (no command, no "modified" mark).

Commands store the state before and after, so ``undo``/``redo`` restore it exactly. A mask or patch stroke is applied
live while the user drags (for feedback) and pushed once on release as ONE command holding the stroke's before/after
(the stroke's dabs are merged); its first ``redo`` is therefore a no-op.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .document import (
    MAX_PANES,
    Box,
    Document,
    Face,
    PhotoState,
    Reference,
    Sample,
    gallery_after,
    largest_faces,
)


def _name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


class Command:
    """One undoable change: ``redo()`` applies it (called once when pushed), ``undo()`` restores the state before.
    ``text`` is the undo/redo menu text; ``merge_id`` >= 0 lets a sink merge consecutive commands of the same id."""

    merge_id: int = -1

    def __init__(self, text: str) -> None:
        self.text = text

    def redo(self) -> None:
        raise NotImplementedError

    def undo(self) -> None:
        raise NotImplementedError

    def merge_with(self, other: Command) -> bool:
        """Absorb ``other`` (same ``merge_id``, pushed right after); False when it cannot."""
        return False


class UndoSink(Protocol):
    """Where the model pushes its commands (``push`` calls ``redo``); the clean state marks a saved document."""

    def push(self, command: Command) -> None: ...

    def clear(self) -> None: ...

    def set_clean(self) -> None: ...

    def reset_clean(self) -> None:
        """No state is clean any more (recovered work: unsaved until it is saved)."""
        ...

    def is_clean(self) -> bool: ...

    def index(self) -> int:
        """Commands done: the position in the stack (with a push counter, it tells whether anything changed)."""
        ...


class ListUndoSink:
    """An undo stack in a list (the model's sink without Qt: tests, scripts)."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self._index = 0  # commands[:_index] are done
        self.clean_index: int | None = 0

    def push(self, command: Command) -> None:
        del self.commands[self._index :]
        if self.clean_index is not None and self.clean_index > self._index:
            self.clean_index = None
        command.redo()
        last = self.commands[-1] if self.commands else None
        mergeable = last is not None and command.merge_id >= 0 and last.merge_id == command.merge_id
        if mergeable and last.merge_with(command):
            return
        self.commands.append(command)
        self._index = len(self.commands)

    def undo(self) -> None:
        if self._index > 0:
            self._index -= 1
            self.commands[self._index].undo()

    def redo(self) -> None:
        if self._index < len(self.commands):
            self.commands[self._index].redo()
            self._index += 1

    def index(self) -> int:
        """Commands done (the position in the stack, as ``QUndoStack.index``)."""
        return self._index

    def count(self) -> int:
        return len(self.commands)

    def texts(self) -> list[str]:
        return [c.text for c in self.commands[: self._index]]

    def clear(self) -> None:
        self.commands.clear()
        self._index = 0
        self.clean_index = 0

    def set_clean(self) -> None:
        self.clean_index = self._index

    def reset_clean(self) -> None:
        self.clean_index = None

    def is_clean(self) -> bool:
        return self.clean_index == self._index


class CompositeCommand(Command):
    """Several commands as one undo step ``text`` (each built on the state the ones before it leave): ``redo`` runs
    them in order, ``undo`` in reverse."""

    def __init__(self, text: str, parts: list[Command]) -> None:
        super().__init__(text)
        self.parts = list(parts)

    def redo(self) -> None:
        for c in self.parts:
            c.redo()

    def undo(self) -> None:
        for c in reversed(self.parts):
            c.undo()


class _Cmd(Command):
    def __init__(self, doc: Document, text: str) -> None:
        super().__init__(text)
        self.doc = doc


class SetFacesCommand(_Cmd):
    """Replace the list of detected faces (face detection result)."""

    def __init__(self, doc: Document, faces: list[Face]) -> None:
        self.after = largest_faces(faces)  # a document holds at most MAX_FACES
        self.dropped = len(faces) - len(self.after)
        found = f"{len(self.after)} of {len(faces)}, the largest" if self.dropped else str(len(faces))
        super().__init__(doc, f"Detect faces ({found})")
        self.before = (list(doc.faces), doc.selected)

    def redo(self) -> None:
        self.doc.set_faces(self.after)

    def undo(self) -> None:
        faces, sel = self.before
        self.doc.set_faces(faces)
        if sel != self.doc.selected:
            self.doc.select(sel)


class _LiveCmd(_Cmd):
    """A change from ``before`` to ``after`` that may already be in the document when pushed (``applied``: a stroke,
    applied live while the user drags), so its first ``redo`` is then a no-op; :meth:`_set` puts a state."""

    def __init__(self, doc: Document, text: str, before: Any, after: Any, applied: bool) -> None:
        super().__init__(doc, text)
        self.before, self.after = before, after
        self._skip = applied

    def _set(self, state: Any) -> None:
        raise NotImplementedError

    def redo(self) -> None:
        if self._skip:
            self._skip = False
            return
        self._set(self.after)

    def undo(self) -> None:
        self._set(self.before)


class MaskCommand(_LiveCmd):
    """Set a face's mask from ``before`` to ``after`` (a whole stroke, clear or invert)."""

    def __init__(
        self, doc: Document, index: int, before: np.ndarray, after: np.ndarray, text: str, applied: bool = False
    ) -> None:
        super().__init__(doc, text, before.copy(), after.copy(), applied)
        self.index = index

    def _set(self, state: np.ndarray) -> None:
        self.doc.set_mask(self.index, state)


class DamageCommand(_LiveCmd):
    """Set the photo's damage layer inside ``box`` (:data:`~.document.Box`) from ``before`` to ``after`` (uint8
    regions: a stroke keeps only the rectangle it touched); without ``box``, the whole layer (``None`` = none)."""

    def __init__(
        self,
        doc: Document,
        box: Box | None,
        before: np.ndarray | None,
        after: np.ndarray | None,
        text: str,
        applied: bool = False,
    ) -> None:
        copy = lambda a: None if a is None else a.copy()  # noqa: E731
        super().__init__(doc, text, copy(before), copy(after), applied)
        self.box = box

    def _set(self, state: np.ndarray | None) -> None:
        self.doc.set_damage(state, self.box)


class RotateCommand(_Cmd):
    """Turn the photo with everything in it: ``before`` and ``after`` are whole :class:`~.document.PhotoState` s
    (arrays shared), so undo gives back the very faces and crops it took."""

    def __init__(self, doc: Document, before: PhotoState, after: PhotoState, text: str) -> None:
        super().__init__(doc, text)
        self.before, self.after = before, after

    def redo(self) -> None:
        self.doc.set_photo_state(self.after)

    def undo(self) -> None:
        self.doc.set_photo_state(self.before)


def clear_mask(doc: Document, index: int) -> MaskCommand:
    m = doc.faces[index].mask
    return MaskCommand(doc, index, m, np.zeros_like(m), "Clear mask")


def clear_damage(doc: Document) -> DamageCommand:
    """Remove every damage mark of the photo (one undo step)."""
    return DamageCommand(doc, None, doc.damage, None, "Clear damage")


def invert_mask(doc: Document, index: int) -> MaskCommand:
    m = doc.faces[index].mask
    return MaskCommand(doc, index, m, 1.0 - m, "Invert mask")


class ReferencesCommand(_Cmd):
    """Replace a face's reference list (add / remove / rescore)."""

    def __init__(self, doc: Document, index: int, refs: list[Reference], text: str) -> None:
        super().__init__(doc, text)
        self.index = index
        self.before = list(doc.faces[index].references)
        self.after = list(refs)

    def redo(self) -> None:
        self.doc.set_references(self.index, self.after)

    def undo(self) -> None:
        self.doc.set_references(self.index, self.before)


def add_reference(doc: Document, index: int, ref: Reference) -> ReferencesCommand:
    return ReferencesCommand(doc, index, doc.faces[index].references + [ref], f"Add reference {_name(ref.path)}")


def remove_reference(doc: Document, index: int, k: int) -> ReferencesCommand:
    refs = list(doc.faces[index].references)
    ref = refs.pop(k)
    return ReferencesCommand(doc, index, refs, f"Remove reference {_name(ref.path)}")


class AddSamplesCommand(_Cmd):
    """Append samples to a face's gallery; beyond :data:`~.document.MAX_PER_FACE` entries the oldest ones go
    (:func:`~.document.gallery_after`: never the new ones nor the result's; ``dropped`` counts them), in the same
    undo step."""

    def __init__(self, doc: Document, index: int, samples: list[Sample]) -> None:
        self.index = index
        self.before = list(doc.faces[index].samples)
        self.after = gallery_after(doc.faces[index], samples)
        self.dropped = len(self.before) + len(samples) - len(self.after)
        dropped = f", {self.dropped} oldest dropped" if self.dropped else ""
        super().__init__(doc, f"Resample face {index + 1} ({len(samples)} samples{dropped})")

    def redo(self) -> None:
        self.doc.set_samples(self.index, self.after)

    def undo(self) -> None:
        self.doc.set_samples(self.index, self.before)


AppliedState = tuple[np.ndarray | None, int | None, bool, np.ndarray | None]
"""``(image, seed, identity_changed, paste_mask)`` of a face's result (:meth:`Document.set_applied`)."""


class AppliedCommand(_LiveCmd):
    """Set a face's result image (apply a sample, revert, or a patch stroke)."""

    def __init__(
        self,
        doc: Document,
        index: int,
        after: AppliedState,
        text: str,
        before: AppliedState | None = None,
        applied: bool = False,
    ) -> None:
        super().__init__(doc, text, before if before is not None else doc.faces[index].applied_state(), after, applied)
        self.index = index

    def _set(self, state: AppliedState) -> None:
        self.doc.set_applied(self.index, *state)


def apply_sample(doc: Document, index: int, k: int) -> AppliedCommand:
    s = doc.faces[index].samples[k]
    return AppliedCommand(doc, index, sample_applied(s), f"Apply sample {k + 1} ({s.short_label()})")


def sample_applied(sample: Sample) -> AppliedState:
    """The face result ``sample`` gives when applied: its image, seed, whether it changes identity, its paste mask."""
    from frgd.restore import identity_changed

    return sample.image, sample.seed, identity_changed([sample.method]), sample.paste_mask


def revert_face(doc: Document, index: int) -> AppliedCommand:
    return AppliedCommand(doc, index, (None, None, False, None), f"Revert face {index + 1}")


class PaneResultCommand(_Cmd):
    """Store (or remove) a whole-photo result of a pane (GFPGAN, SR), optionally used as the background."""

    def __init__(self, doc: Document, name: str, image: np.ndarray | None, params: dict | None = None) -> None:
        super().__init__(doc, f"{name} result")
        self.name = name
        self.before = (doc.pane_results.get(name), doc.pane_params.get(name), doc.background)
        self.after = (image, params)
        self.order = list(doc.pane_results)

    def redo(self) -> None:
        self.doc.set_pane_result(self.name, *self.after)

    def undo(self) -> None:
        image, params, background = self.before
        self.doc.set_pane_result(self.name, image, params)
        self.doc.order_pane_results(self.order)  # a result removed comes back in its place
        if background != self.doc.background and (background is None or background in self.doc.pane_results):
            self.doc.set_background(background)


def pane_result(doc: Document, name: str, image: np.ndarray, params: dict | None = None) -> tuple[Command, str | None]:
    """Store a pane's result ``name``: ``(command, None)``, a :class:`PaneResultCommand`; or, when it is a new one
    and the document holds :data:`~.document.MAX_PANES` already, one undo step that also drops the oldest result that
    is not the background, and that one's name."""
    store = PaneResultCommand(doc, name, image, params)
    if name in doc.pane_results or len(doc.pane_results) < MAX_PANES:
        return store, None
    oldest = next(n for n in doc.pane_results if n != doc.background)
    text = f"{name} result (dropped the oldest, {oldest})"
    return CompositeCommand(text, [PaneResultCommand(doc, oldest, None), store]), oldest


class BackgroundCommand(_Cmd):
    """Choose which image the faces are pasted onto (``None`` = the original photo)."""

    def __init__(self, doc: Document, name: str | None) -> None:
        super().__init__(doc, f"Paste faces onto {name or 'original'}")
        self.before = doc.background
        self.after = name

    def redo(self) -> None:
        self.doc.set_background(self.after)

    def undo(self) -> None:
        self.doc.set_background(self.before)
