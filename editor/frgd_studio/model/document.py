"""Document model of the editor: the photo, its faces and everything the user made for each face.

The document holds data only (numpy arrays, dataclasses) and emits :class:`~.events.Event` s when it changes (no
Qt); widgets observe it and :mod:`.commands` changes it (every user-visible change is a command, a ``QUndoCommand`` on
the Qt side). Nothing here runs torch: heavy work happens in :mod:`.jobs` and its results are handed to the document.

Spaces: the photo is ``(H, W, 3)`` uint8 RGB. Each face has an aligned crop of ``CROP_SIZE`` x ``CROP_SIZE``
(:data:`frgd.faces.align.FACE_SIZE`) with a 2x3 ``affine`` (photo -> crop) and its ``inverse`` (crop -> photo). Each
face's *mask* lives in crop space, ``(128, 128)`` float32 in ``[0, 1]``, 1 = "let FRGD change this" (painted in photo
space and mapped through ``affine``). The photo's *damage* layer lives in photo space, ``(H, W)`` uint8 coverage
(:func:`frgd.io.marked`: above 127 = "the photo is damaged here": a scratch, a crease, a stain, on a face or not). The
result is built on the photo with its damage filled (:attr:`Document.repaired`, made by a job:
:func:`frgd.diffusion.damage.repair_image`), and each face's restorer gets the damage in its crop frame
(:meth:`Document.face_damage`: it fills the input there and FRGD ignores it, :mod:`frgd.diffusion.damage`), as
``frgd enhance --damage`` does. The result is that photo upscaled :attr:`Document.result_scale` times
(:attr:`Document.upscaled`, made by a job: :func:`frgd.restore.upscale_photo`, ``frgd enhance``'s background) with the
faces pasted at that scale, unless a pane result is chosen as its background. Faces are numbered by
their list position ("Face 1" = ``faces[0]``), the one numbering rule of :func:`frgd.restore.number_faces` (left to
right). Every applied face carries its paste mask (from
the sample, widened by patch strokes), so the result is composed by :func:`frgd.restore.paste_faces` without guessing
from pixels.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frgd.faces.align import FACE_SIZE as CROP_SIZE  # side of the aligned face crops and the per-face masks
from frgd.faces.rules import face_turn
from frgd.io import marked, to_uint8

from .events import Event

logger = logging.getLogger(__name__)

MAX_FACES = 100
"""Most faces a document (and a session file) holds: a detection that finds more keeps the largest
(:func:`largest_faces`). Sessions refuse more, so the editor never makes a session it cannot open again."""
MAX_PER_FACE = 64
"""Most references, and most gallery entries, one face holds (a session too): new samples beyond it drop the oldest
entries that are not the face's result, in the same undo step (:class:`~.commands.AddSamplesCommand`); a reference
beyond it is refused."""
MAX_PANES = 16
"""Most pane results a document (and a session) holds: a new one beyond it drops the oldest that is not the
background, in the same undo step (:func:`~.commands.pane_result`)."""

COMPOSITE_HISTORY = 16
"""How many recent changes of :meth:`Document.composite` :meth:`Document.composite_change` can tell a view about."""

_FACE_KEYS = itertools.count(1)

Box = tuple[int, int, int, int]
"""A region of the photo or of the result, ``(y0, y1, x0, x1)`` (rows ``y0:y1``, columns ``x0:x1``)."""


@dataclass
class Reference:
    """A reference photo of the person whose identity FRGD should restore.

    ``crop`` is the aligned ``(128, 128, 3)`` uint8 face found in the reference photo; ``score`` is the identity
    similarity between the reference and the input face (``None`` until measured).
    """

    path: str
    sha256: str
    crop: np.ndarray
    score: float | None = None


IMPORTED = "imported"
"""The ``method`` of a gallery entry imported from a file (File > Import Face Result: retouched, or restored by
another program). Not a restorer, so :func:`frgd.restore.identity_changed` counts it as one that may change identity:
a file can hold anyone's face."""
EDITED = "edited"
"""The ``method`` exports name for a face result that no gallery entry made as it is (:meth:`Face.result_method`: an
imported crop patched since): not a restorer either, so it counts as identity-changing."""


@dataclass
class Sample:
    """One alternative for a face (a gallery entry): an FRGD or GFPGAN sample (``seed``, ``identity_strength`` and
    ``steps`` set), or a crop imported from a file (:data:`IMPORTED`: the three are ``None``; ``parameters`` name the
    file and its sha256)."""

    image: np.ndarray  # (128, 128, 3) uint8
    seed: int | None
    identity_strength: float | None
    steps: int | None
    identity_score: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    paste_mask: np.ndarray | None = None  # (128, 128) float32 where it may be pasted; None = the whole crop

    @property
    def method(self) -> str:
        """The restoration method that made it (``frgd``, ``gfpgan``) or :data:`IMPORTED`."""
        return str(self.parameters.get("method", "frgd"))

    @property
    def imported(self) -> bool:
        return self.method == IMPORTED

    def short_label(self) -> str:
        """``seed 7`` or ``imported face1.png``: what names it in menus, the comparison and undo steps."""
        return f"imported {self.parameters.get('file', '')}".strip() if self.imported else f"seed {self.seed}"

    def label(self) -> str:
        if self.imported:
            return self.short_label()
        score = "–" if self.identity_score is None else f"{self.identity_score:.2f}"
        return f"seed {self.seed} · id {self.identity_strength:.2f} · sim {score}"


@dataclass
class Face:
    """One detected face and the user's work on it."""

    box: np.ndarray  # (4,) x0, y0, x1, y1 in photo pixels
    score: float
    landmarks: np.ndarray  # (5, 2) photo pixels
    affine: np.ndarray  # (2, 3) photo -> crop
    inverse: np.ndarray  # (2, 3) crop -> photo
    crop: np.ndarray  # (128, 128, 3) uint8 aligned input face
    crop_obj: Any = None  # the frgd.faces.FaceCrop (for paste_back), when available
    mask: np.ndarray = field(default_factory=lambda: np.zeros((CROP_SIZE, CROP_SIZE), np.float32))
    references: list[Reference] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    applied: np.ndarray | None = None  # (128, 128, 3) uint8 current result for this face, None = unchanged
    applied_seed: int | None = None
    applied_identity: bool = False  # the result came from a generative restorer (frgd.restore.identity_changed)
    applied_mask: np.ndarray | None = None  # (128, 128) float32 paste mask of ``applied``; None = the whole crop
    key: int = field(default_factory=lambda: next(_FACE_KEYS), compare=False)
    """Which face this is across turns of the photo: a turn makes a new :class:`Face` (turned landmarks, the same
    crop) with the same key (``dataclasses.replace``); detecting faces again makes new keys
    (:meth:`Document.find_face`)."""

    def applied_state(self) -> tuple[np.ndarray | None, int | None, bool, np.ndarray | None]:
        """``(applied, applied_seed, applied_identity, applied_mask)``, what :meth:`Document.set_applied` takes."""
        return self.applied, self.applied_seed, self.applied_identity, self.applied_mask

    @property
    def turn(self) -> int:
        """Quarter turns the face lies at in the photo (0 upright; :func:`frgd.faces.rules.face_turn`)."""
        return face_turn(self.landmarks)

    def result(self) -> np.ndarray:
        """The face as it currently looks in the result, ``(128, 128, 3)`` uint8."""
        return self.crop if self.applied is None else self.applied

    def applied_sample(self) -> Sample | None:
        """The gallery sample the result came from: the one whose image it is, else (after a patch) the latest with
        ``applied_seed`` (a locked seed can be sampled again with other settings); a result without a seed comes
        from an imported crop only when it is that crop's image."""
        if self.applied is None:
            return None
        same_seed = [s for s in self.samples if s.seed == self.applied_seed]
        exact = [s for s in same_seed if np.array_equal(s.image, self.applied)]
        return (exact or ([] if self.applied_seed is None else same_seed) or [None])[-1]

    def used_reference_hashes(self) -> dict[str, str]:
        """``{file name: sha256}`` of the references the face's result was sampled with (empty when it used none)."""
        s = self.applied_sample()
        if self.applied is None or s is None or not s.parameters.get("used_reference"):
            return {}
        return {Path(r.path).name: r.sha256 for r in self.references}

    def result_method(self) -> str | None:
        """The method of the face's result: its gallery entry's (:meth:`applied_sample`), :data:`EDITED` when none
        made it, ``None`` without a result."""
        if self.applied is None:
            return None
        s = self.applied_sample()
        return EDITED if s is None else s.method

    def polygon(self) -> np.ndarray:
        """Corners of the aligned crop in photo pixels, ``(4, 2)``."""
        s = float(CROP_SIZE)
        corners = np.array([[0, 0, 1], [s, 0, 1], [s, s, 1], [0, s, 1]], np.float64)
        return corners @ np.asarray(self.inverse, np.float64).T

    def crop_scale(self) -> float:
        """Crop pixels per photo pixel (isotropic scale of ``affine``)."""
        a = np.asarray(self.affine, np.float64)[:, :2]
        return float(np.sqrt(abs(np.linalg.det(a))))

    def to_crop(self, x: float, y: float) -> tuple[float, float]:
        """Map a photo point to crop coordinates."""
        a = np.asarray(self.affine, np.float64)
        return float(a[0, 0] * x + a[0, 1] * y + a[0, 2]), float(a[1, 0] * x + a[1, 1] * y + a[1, 2])

    def contains(self, x: float, y: float) -> bool:
        """True when the photo point lies inside the aligned crop."""
        u, v = self.to_crop(x, y)
        return 0 <= u < CROP_SIZE and 0 <= v < CROP_SIZE


@dataclass
class PhotoState:
    """What turning the photo changes (:meth:`Document.photo_state`, :meth:`Document.set_photo_state`): the photo,
    its transparency, its quarter turns from the file, the faces in it, the selection, the pane results and the
    damage layer with its latest fill."""

    photo: np.ndarray
    alpha: np.ndarray | None
    turn: int
    faces: list[Face]
    selected: int
    pane_results: dict[str, np.ndarray]
    damage: np.ndarray | None
    repaired: np.ndarray | None


class Document:
    """The open photo and all per-face state. Events carry the face index where it applies."""

    def __init__(self) -> None:
        self.photoChanged = Event("photoChanged")
        self.facesChanged = Event("facesChanged")
        self.selectionChanged = Event("selectionChanged")  # (index)
        self.maskChanged = Event("maskChanged")  # (index): the face's mask
        self.damageChanged = Event("damageChanged")  # (box): the photo's damage layer changed inside ``box``
        self.repairedChanged = Event("repairedChanged")  # (): the photo the result is built on (:meth:`base_photo`)
        self.upscaledChanged = Event("upscaledChanged")  # (): the result's size or its upscaled background changed
        self.referencesChanged = Event("referencesChanged")  # (index)
        self.samplesChanged = Event("samplesChanged")  # (index)
        self.appliedChanged = Event("appliedChanged")  # (index)
        self.paneResultsChanged = Event("paneResultsChanged")
        self.photo: np.ndarray | None = None
        self.alpha: np.ndarray | None = None
        self.icc_profile: bytes | None = None
        """The photo file's colour profile (ICC), carried into every export (the pixels are never converted)."""
        self.photo_bits = 8
        """The photo file's bits per channel (8 or 16). The editor shows and edits in 8 bits; a 16-bit photo's Result
        and Original are exported in 16 bits, made again from the file (``EditorModel.export_bits``)."""
        self.photo_path: str | None = None
        self.photo_sha256: str | None = None
        self.turn = 0
        """Quarter turns counter-clockwise (``np.rot90``'s ``k``, 0..3) of :attr:`photo` from the file as loaded."""
        self.faces: list[Face] = []
        self.selected: int = -1
        self.pane_results: dict[str, np.ndarray] = {}
        self.pane_params: dict[str, dict[str, Any]] = {}
        self.background: str | None = None  # name of a pane result used as the canvas the faces are pasted onto
        self.damage: np.ndarray | None = None
        """The photo's damage layer ``(H, W)`` uint8 (above 127 = damaged), ``None`` = never painted. Replaced, never
        written in place, so a snapshot or a job may hold it."""
        self.damage_version = 0
        """Incremented at every change of :attr:`damage` (a repair is current when made from this version)."""
        self.repaired: np.ndarray | None = None
        """The photo with its damage filled, from :attr:`repaired_version` of the damage (a job makes it)."""
        self.repaired_version = -1
        self.result_scale = 1
        """The result's size in photo sizes when no pane result is its background (``EditorModel`` keeps it: the
        toolbar's Size box, Auto by default: the rule of ``frgd enhance --scale auto``)."""
        self.upscaled: np.ndarray | None = None
        """:meth:`base_photo` upscaled :attr:`upscaled_scale` times ``(sH, sW, 3)`` uint8 by :attr:`upscaled_model`
        (a job makes it), the background of a result larger than the photo; current when made from the base photo
        of now (:meth:`upscale_current`)."""
        self.upscaled_scale = 1
        self.upscaled_model = ""
        self._upscaled_from: np.ndarray | None = None  # the base photo it was made from (held: compared by identity)
        self._marked: tuple[int, bool] = (0, False)
        self._composite_cache: np.ndarray | None = None
        self._composite_key: tuple | None = None  # what the cache was made from (compared by identity)
        self.composite_version = 0
        """Incremented at every new :meth:`composite` (:meth:`composite_change`)."""
        self._composite_changes: dict[int, Box | None] = {}  # version -> the box it changed (None: anywhere)
        self._composite_refs: list[tuple[weakref.ref, int]] = []  # recent composites and their versions
        self.generation = 0
        """Incremented whenever the photo is replaced or turned (:attr:`photo_serial`: replaced only)."""
        self.photo_serial = 0
        """Incremented whenever another photo is opened (not when it is turned): a job's result made for an earlier
        photo is not used; one made before a turn is turned to fit (``EditorModel.run_job``)."""

    # ----- photo and faces -------------------------------------------------------------------------------------
    def set_photo(
        self,
        photo: np.ndarray,
        path: str | None = None,
        sha256: str | None = None,
        alpha: np.ndarray | None = None,
        turn: int = 0,
        icc_profile: bytes | None = None,
        bits: int = 8,
    ) -> None:
        """Replace the photo; clears faces and pane results. ``photo``: ``(H, W, 3)`` uint8 RGB, ``turn`` quarter
        turns counter-clockwise from the file at ``path`` (:attr:`turn`), ``icc_profile`` the file's colour profile
        (:attr:`icc_profile`), ``bits`` the file's bits per channel (:attr:`photo_bits`)."""
        if photo.ndim != 3 or photo.shape[2] != 3:
            raise ValueError(f"photo must be (H, W, 3), got {photo.shape}")
        if photo.dtype != np.uint8:
            photo = to_uint8(photo)
        self.photo = np.ascontiguousarray(photo)
        self.generation += 1
        self.photo_serial += 1
        self.alpha = alpha
        self.icc_profile = icc_profile
        self.photo_bits = int(bits)
        self.photo_path = path
        self.photo_sha256 = sha256
        self.turn = int(turn) % 4
        self.faces = []
        self.selected = -1
        self.pane_results = {}
        self.pane_params = {}
        self.background = None
        self.damage, self.repaired, self.repaired_version = None, None, -1
        self.damage_version += 1
        self._drop_upscaled()
        self.invalidate()
        self.photoChanged.emit()
        self.facesChanged.emit()
        self.selectionChanged.emit(-1)
        self.paneResultsChanged.emit()

    def set_faces(self, faces: list[Face]) -> None:
        self.faces = list(faces)
        self.selected = 0 if faces else -1
        self.invalidate()
        self.facesChanged.emit()
        self.selectionChanged.emit(self.selected)

    def select(self, index: int) -> None:
        if index == self.selected:
            return
        if not -1 <= index < len(self.faces):
            raise IndexError(index)
        self.selected = index
        self.selectionChanged.emit(index)

    def find_face(self, face: Face, index: int = -1) -> int:
        """The index of ``face`` in :attr:`faces` (``index`` is tried first), or of the face it became when the photo
        was turned (the same :attr:`Face.key`); -1 when it is gone (faces detected again, another photo)."""
        if 0 <= index < len(self.faces) and self.faces[index] is face:
            return index
        return next((i for i, f in enumerate(self.faces) if f.key == face.key), -1)  # the same object: the same key

    def face(self, index: int | None = None) -> Face | None:
        i = self.selected if index is None else index
        return self.faces[i] if 0 <= i < len(self.faces) else None

    def face_at(self, x: float, y: float) -> int:
        """Index of the face whose crop contains the photo point (nearest centre wins), or -1."""
        best, best_d = -1, float("inf")
        for i, f in enumerate(self.faces):
            if f.contains(x, y):
                cx, cy = f.polygon().mean(axis=0)
                d = (cx - x) ** 2 + (cy - y) ** 2
                if d < best_d:
                    best, best_d = i, d
        return best

    def photo_state(self) -> PhotoState:
        """The state a turn of the photo replaces (arrays shared: edits replace them, never write them)."""
        return PhotoState(self.photo, self.alpha, self.turn, list(self.faces), self.selected, dict(self.pane_results),
                          self.damage, self.repaired)  # fmt: skip

    def set_photo_state(self, state: PhotoState) -> None:
        """Replace the photo by a turned one with everything in it (a command: Image > Rotate). The results of jobs
        started before are turned to fit when they arrive (``EditorModel.run_job``), and the damage is filled again
        for the turned photo (its earlier fill, turned, is shown meanwhile)."""
        self.photo, self.alpha, self.turn = state.photo, state.alpha, state.turn % 4
        self.faces, self.selected = list(state.faces), state.selected
        self.pane_results = dict(state.pane_results)
        self.damage, self.repaired, self.repaired_version = state.damage, state.repaired, -1
        self.damage_version += 1
        self.generation += 1
        self._drop_upscaled()
        self.invalidate()
        self.photoChanged.emit()
        self.facesChanged.emit()
        self.selectionChanged.emit(self.selected)
        self.paneResultsChanged.emit()
        self.damageChanged.emit(None)
        self.repairedChanged.emit()

    # ----- per-face state (called by commands) -----------------------------------------------------------------
    def set_mask(self, index: int, mask: np.ndarray) -> None:
        """Set a face's mask to ``mask`` ``(128, 128)`` in ``[0, 1]``."""
        self.faces[index].mask = np.asarray(mask, np.float32).copy()
        self.maskChanged.emit(index)

    # ----- the photo's damage (called by commands and the repair job) -------------------------------------------
    def set_damage(self, values: np.ndarray | None, box: Box | None = None) -> None:
        """Set the damage layer: with ``box``, its region ``box`` to ``values`` (uint8, the region's shape); without,
        the whole layer to ``values`` ``(H, W)`` (uint8 0..255, or float in ``[0, 1]``; ``None`` = no damage)."""
        if self.photo is None:
            raise ValueError("no photo: the damage layer is the photo's")
        h, w = self.photo.shape[:2]
        if box is None:
            new = None
            if values is not None:
                v = np.asarray(values)
                if v.shape != (h, w):
                    raise ValueError(f"damage must be the photo's size {(h, w)}, got {v.shape}")
                new = v.copy() if v.dtype == np.uint8 else to_uint8(v)
            box = (0, h, 0, w)
        else:
            y0, y1, x0, x1 = box
            new = np.zeros((h, w), np.uint8) if self.damage is None else self.damage.copy()
            new[y0:y1, x0:x1] = values
        was = self.damage_marked()
        self.damage = new
        self.damage_version += 1
        if values is not None and new is not None and marked(np.asarray(values)).any():  # no scan of the photo
            self._marked = (self.damage_version, True)
        self.damageChanged.emit(box)
        if self.damage_marked() != was:  # the result is built on the photo again, or on its repair
            self.invalidate()
            self.repairedChanged.emit()

    def damage_marked(self) -> bool:
        """True when some pixel of the photo is marked damaged (:func:`frgd.io.marked`)."""
        if self._marked[0] != self.damage_version:
            self._marked = (self.damage_version, self.damage is not None and bool(marked(self.damage).any()))
        return self._marked[1]

    def damage_share(self) -> float:
        """The share of the photo's pixels marked damaged (0 without damage)."""
        return float(marked(self.damage).mean()) if self.damage_marked() else 0.0

    def face_damage(self, index: int) -> np.ndarray | None:
        """The damage in face ``index``'s crop frame, ``(128, 128)`` ``{0, 1}`` float32
        (:func:`frgd.restore.frame_damage`, the rule of ``frgd enhance --damage``); ``None`` when none lies there."""
        if not self.damage_marked():
            return None
        from frgd.restore import frame_damage

        d = frame_damage(self.damage, self.faces[index].affine, (CROP_SIZE, CROP_SIZE))
        return d if d.any() else None

    def repair_current(self) -> bool:
        """True when the result's base needs no repair job: no damage, or :attr:`repaired` is of the current one."""
        return not self.damage_marked() or self.repaired_version == self.damage_version

    def set_repaired(self, image: np.ndarray, version: int) -> bool:
        """Store the photo repaired from damage ``version``; dropped (``False``) when the damage changed since."""
        if version != self.damage_version or self.photo is None or image.shape != self.photo.shape:
            return False
        self.repaired, self.repaired_version = image, version
        self.invalidate()
        self.repairedChanged.emit()
        return True

    def base_photo(self) -> np.ndarray | None:
        """The photo the result is built on: the latest repair while damage is marked (the one of an earlier stroke
        until the job of the last one ends; :meth:`repair_current` says which), else the photo."""
        if self.repaired is not None and self.damage_marked():
            return self.repaired
        return self.photo

    # ----- the result's size (called by the editor model and the upscale job) ---------------------------------
    def set_result_scale(self, scale: int) -> None:
        """Make the result ``scale`` times the photo's size (an integer >= 1); the upscaled background of another
        scale is no longer current."""
        scale = int(scale)
        if scale < 1:
            raise ValueError(f"result scale must be at least 1, got {scale}")
        if scale != self.result_scale:
            self.result_scale = scale
            self.invalidate()
            self.upscaledChanged.emit()

    def upscale_current(self) -> bool:
        """True when the result's background needs no upscale job: a pane result is the background, the result is the
        photo's size, or :attr:`upscaled` was made from the base photo of now at :attr:`result_scale`."""
        if self.background or self.result_scale == 1:
            return True
        made = self._upscaled_from
        return made is not None and made is self.base_photo() and self.upscaled_scale == self.result_scale

    def set_upscaled(self, base: np.ndarray, scale: int, image: np.ndarray, model: str) -> bool:
        """Store ``image``, the base photo ``base`` upscaled ``scale`` times by ``model``; dropped (``False``) when
        the base photo or the result's scale changed since."""
        if base is not self.base_photo() or int(scale) != self.result_scale:  # (no photo: no base photo either)
            return False
        h, w = self.photo.shape[:2]
        if image.shape != (h * self.result_scale, w * self.result_scale, 3):
            return False
        self.upscaled, self.upscaled_scale, self.upscaled_model = image, int(scale), str(model)
        self._upscaled_from = base
        self.invalidate()
        self.upscaledChanged.emit()
        return True

    def _drop_upscaled(self) -> None:
        self.upscaled, self.upscaled_scale, self.upscaled_model, self._upscaled_from = None, 1, "", None

    def upscale_used(self) -> bool:
        """True when the result is built on :attr:`upscaled` (no pane result as its background, a size above the
        photo's and its upscale current)."""
        return not self.background and self.result_scale > 1 and self.upscale_current()

    def result_canvas(self) -> tuple[np.ndarray, str]:
        """What the faces are pasted onto and its name: the chosen pane result, else the base photo upscaled to the
        result's size (``upscaled ×3 by lanczos``, :meth:`upscale_used`), else the base photo itself (``photo``: the
        result is the photo's size, or its upscale is still being made)."""
        if self.background and self.background in self.pane_results:
            return self.pane_results[self.background], self.background
        if self.upscale_used():
            return self.upscaled, f"upscaled ×{self.upscaled_scale} by {self.upscaled_model}"
        return self.base_photo(), "photo"

    def set_references(self, index: int, refs: list[Reference]) -> None:
        self.faces[index].references = list(refs)
        self.referencesChanged.emit(index)

    def set_reference_scores(self, index: int, scores: dict[int, float]) -> None:
        """Store measured identity scores ``{id(reference): score}`` in place: a measurement, not an edit (no undo
        step; every undo snapshot holding the same :class:`Reference` sees it)."""
        for ref in self.faces[index].references:
            if id(ref) in scores:
                ref.score = float(scores[id(ref)])
        self.referencesChanged.emit(index)

    def set_samples(self, index: int, samples: list[Sample]) -> None:
        self.faces[index].samples = list(samples)
        self.samplesChanged.emit(index)

    def set_applied(
        self,
        index: int,
        image: np.ndarray | None,
        seed: int | None = None,
        identity: bool = False,
        mask: np.ndarray | None = None,
    ) -> None:
        """Set face ``index``'s result: ``image`` ``(128, 128, 3)`` (None = revert), its seed, whether it came from a
        generative restorer and its paste mask ``(128, 128)`` (None = the whole crop)."""
        face = self.faces[index]
        face.applied = None if image is None else np.ascontiguousarray(image, np.uint8).copy()
        face.applied_seed = seed
        face.applied_identity = bool(identity) and image is not None
        face.applied_mask = None if image is None or mask is None else np.asarray(mask, np.float32).copy()
        # no invalidate(): :meth:`composite` sees the new arrays and pastes again only where this face lies
        self.appliedChanged.emit(index)

    def set_pane_result(self, name: str, image: np.ndarray | None, params: dict[str, Any] | None = None) -> None:
        if image is None:
            self.pane_results.pop(name, None)
            self.pane_params.pop(name, None)
            if self.background == name:
                self.background = None
        else:
            self.pane_results[name] = image
            self.pane_params[name] = dict(params or {})
        self.invalidate()
        self.paneResultsChanged.emit()

    def order_pane_results(self, names: list[str]) -> None:
        """Put the pane results in the order of ``names`` (the ones it lists first; an undo restores the order, which
        the views list and :func:`~.commands.pane_result` drops the oldest by)."""
        order = [n for n in names if n in self.pane_results] + [n for n in self.pane_results if n not in names]
        if order != list(self.pane_results):
            self.pane_results = {n: self.pane_results[n] for n in order}
            self.pane_params = {n: self.pane_params[n] for n in order if n in self.pane_params}
            self.paneResultsChanged.emit()

    def set_background(self, name: str | None) -> None:
        if name is not None and name not in self.pane_results:
            raise KeyError(name)
        self.background = name
        self.invalidate()
        self.paneResultsChanged.emit()

    # ----- derived images -------------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Make :meth:`composite` compose the whole result again (what it is built on changed)."""
        self._composite_cache = self._composite_key = None

    def has_changes(self) -> bool:
        """True when the result differs from the photo: a face applied, or damage marked (filled in the result)."""
        return any(f.applied is not None for f in self.faces) or self.damage_marked()

    def composite(self) -> np.ndarray | None:
        """The result photo: its background (:meth:`result_canvas`), every applied face pasted back at its scale.

        A new array whenever it changes (never written in place: an export may hold the last one). When only faces'
        results changed since the last one (:meth:`set_applied`, e.g. a patch stroke's dab), only the box they and
        the faces overlapping them cover is pasted again (:func:`frgd.faces.align.paste_box`; the same pixels as a
        whole new paste), and :meth:`composite_change` tells views that box."""
        if self.photo is None:
            return None
        canvas, _name = self.result_canvas()
        scale = canvas.shape[1] / self.photo.shape[1]
        key = (canvas, scale, tuple((f.crop_obj, f.applied, f.applied_mask) for f in self.faces))
        old, old_key = self._composite_cache, self._composite_key
        if old is not None and _same_key(old_key, key):
            return old
        from frgd.errors import FRGDError
        from frgd.restore import paste_faces

        applied = [f for f in self.faces if f.applied is not None]
        if any(f.crop_obj is None for f in applied):
            raise FRGDError("face has no alignment; detect faces again")
        box = boxes = None
        if old is not None:  # each face's paste box now (None: not pasted), for the box that changed
            boxes = [_face_box(f.crop_obj, f.applied, scale, canvas.shape[:2]) for f in self.faces]
            box = _changed_box(old_key, key, boxes)
        if box is not None and (box[1] <= box[0] or box[3] <= box[2]):  # e.g. a face reverted that was not pasted
            self._composite_key = key
            return old
        if box is None:
            new = paste_faces(canvas, [(f.crop_obj, f.applied, f.applied_mask) for f in applied], scale)
        else:
            y0, y1, x0, x1 = box
            inside = [(f.crop_obj, f.applied, f.applied_mask) for f, fb in zip(self.faces, boxes, strict=True)
                      if _overlaps(fb, box)]  # fmt: skip
            new = old.copy()
            new[y0:y1, x0:x1] = paste_faces(canvas[y0:y1, x0:x1], inside, scale, origin=(y0, x0),
                                            full_size=canvas.shape[:2])  # fmt: skip
        self._composite_cache, self._composite_key = new, key
        self.composite_version += 1
        v = self.composite_version
        self._composite_changes[v] = box
        self._composite_changes.pop(v - COMPOSITE_HISTORY, None)
        refs = [(ref, ver) for ref, ver in self._composite_refs if ref() is not None and ver > v - COMPOSITE_HISTORY]
        self._composite_refs = [(weakref.ref(new), v), *refs]
        return new

    def composite_change(self, since: int | None, image: np.ndarray) -> tuple[int | None, Box | None]:
        """For a view that showed composite version ``since`` and is given ``image``: ``image``'s version when it is
        a recent :meth:`composite` (else ``None``) and the box outside which it equals composite ``since``
        (``None``: it may differ anywhere, or that is not known; an empty box: nowhere)."""
        version = next((v for ref, v in self._composite_refs if ref() is image), None)
        if version is None or since is None or not version - COMPOSITE_HISTORY < since <= version:
            return version, None
        box: Box = (0, 0, 0, 0)
        for v in range(since + 1, version + 1):
            changed = self._composite_changes.get(v)
            if changed is None:
                return version, None
            box = _union(box, changed)
        return version, box

    def results(self) -> dict[str, np.ndarray]:
        """Every image that can be shown in the comparison view, by name."""
        out: dict[str, np.ndarray] = {}
        if self.photo is None:
            return out
        out["Original"] = self.photo
        if self.has_changes() or self.background or self.result_scale > 1:
            out["Result"] = self.composite()
        out.update(self.pane_results)
        face = self.face()
        if face is not None:
            out[f"Face {self.selected + 1}: input"] = face.crop
            if face.applied is not None:
                out[f"Face {self.selected + 1}: result"] = face.applied
            for k, s in enumerate(face.samples):
                out[f"Face {self.selected + 1}: sample {k + 1} ({s.short_label()})"] = s.image
        return out

    def identity_changed(self, view: str = "Result") -> bool:
        """The ``identity_changed`` flag of the image shown as ``view`` (:func:`frgd.restore.identity_changed`): the
        result with a face from a generative restorer or over a generative pane (GFPGAN), or such a pane itself."""
        from frgd.restore import identity_changed

        def pane(name: str | None) -> list[str | None]:
            return [self.pane_params.get(name, {}).get("method")] if name else []

        if view == "Result":
            faces = any(f.applied is not None and f.applied_identity for f in self.faces)
            return faces or identity_changed(pane(self.background))
        return identity_changed(pane(view) if view in self.pane_results else [])

    def snapshot(self) -> Document:
        """A copy that later edits do not change (faces and lists copied; arrays are replaced by edits, never written
        in place, so they are shared), e.g. what a session save job writes while the user keeps editing."""
        from dataclasses import replace

        snap = Document()
        snap.photo, snap.alpha, snap.icc_profile = self.photo, self.alpha, self.icc_profile
        snap.photo_bits = self.photo_bits
        snap.photo_path, snap.photo_sha256, snap.turn = self.photo_path, self.photo_sha256, self.turn
        snap.faces = [
            replace(f, references=[replace(r) for r in f.references], samples=list(f.samples)) for f in self.faces
        ]
        snap.selected = self.selected
        snap.pane_results = dict(self.pane_results)
        snap.pane_params = {k: dict(v) for k, v in self.pane_params.items()}
        snap.background = self.background
        snap.damage, snap.damage_version = self.damage, self.damage_version
        snap.repaired, snap.repaired_version = self.repaired, self.repaired_version
        snap.result_scale, snap.upscaled, snap.upscaled_scale = self.result_scale, self.upscaled, self.upscaled_scale
        snap.upscaled_model, snap._upscaled_from = self.upscaled_model, self._upscaled_from
        snap.generation = self.generation
        return snap

    def title(self) -> str:
        return Path(self.photo_path).name if self.photo_path else "untitled"


def depth_note(bits: int) -> str:
    """What the editor tells of a photo of ``bits`` per channel: nothing for 8; for more, that it shows and edits in 8
    bits and what Export keeps (the open status; :meth:`EditorModel.export_plan` says it of each export)."""
    if bits <= 8:
        return ""
    return (f"; a {bits}-bit photo: the editor shows it in 8 bits; Export writes the Result and the Original in "
            f"{bits} bits as PNG or TIFF")  # fmt: skip


# ------------------------------------------------------------------------------------------- the composite's boxes
def largest_faces(faces: list[Face], limit: int = MAX_FACES) -> list[Face]:
    """``faces`` less all but the ``limit`` largest (box area; equal ones: the first), in their order (numbering)."""
    if len(faces) <= limit:
        return list(faces)
    area = [max(0.0, float(f.box[2] - f.box[0])) * max(0.0, float(f.box[3] - f.box[1])) for f in faces]
    keep = set(sorted(range(len(faces)), key=lambda i: (-area[i], i))[:limit])
    return [f for i, f in enumerate(faces) if i in keep]


def gallery_after(face: Face, samples: list[Sample], limit: int = MAX_PER_FACE) -> list[Sample]:
    """The gallery of ``face`` once ``samples`` are added: at most ``limit`` entries, the oldest going first, never
    the new ones nor the entry the face's result came from (:meth:`Face.applied_sample`)."""
    after = list(face.samples) + list(samples)
    keep = face.applied_sample()
    excess = len(after) - limit
    out = []
    for k, s in enumerate(after):
        if excess > 0 and k < len(face.samples) and s is not keep:
            excess -= 1
            continue
        out.append(s)
    return out


def _same_key(a: tuple | None, b: tuple) -> bool:
    """Whether two :meth:`Document.composite` keys hold the same objects (identity: arrays are replaced, never
    written in place)."""
    return (
        a is not None
        and a[0] is b[0]
        and a[1] == b[1]
        and len(a[2]) == len(b[2])
        and all(x is y for fa, fb in zip(a[2], b[2]) for x, y in zip(fa, fb))
    )


def _face_box(crop: Any, applied: np.ndarray | None, scale: float, hw: tuple[int, int]) -> Box | None:
    """The canvas box a face's paste may change (:func:`frgd.faces.align.paste_box`); ``None`` when not pasted."""
    if applied is None or crop is None:
        return None
    from frgd.faces.align import paste_box

    return paste_box(crop, int(applied.shape[0]), scale, hw)


def _overlaps(a: Box | None, b: Box) -> bool:
    return a is not None and a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _union(a: Box, b: Box) -> Box:
    if a[1] <= a[0] or a[3] <= a[2]:
        return b
    if b[1] <= b[0] or b[3] <= b[2]:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _changed_box(old: tuple | None, new: tuple, boxes: list[Box | None]) -> Box | None:
    """Where a composite made from key ``new`` can differ from one made from ``old`` when only faces' results changed
    (same canvas, scale and faces): the boxes of the changed faces' old and new pastes, grown by every pasted face
    that overlaps it until none does (a face is pasted over what the faces before it left, so each one touching the
    box is pasted again whole). ``boxes``: each face's paste box under ``new`` (:func:`_face_box`). ``None``:
    anything else changed (compose it all again)."""
    if old is None or old[0] is not new[0] or old[1] != new[1] or len(old[2]) != len(new[2]):
        return None
    if any(a[0] is not b[0] for a, b in zip(old[2], new[2])):
        return None
    canvas, scale = new[0], new[1]
    box: Box = (0, 0, 0, 0)
    for a, b, now in zip(old[2], new[2], boxes, strict=True):
        if a[1] is not b[1] or a[2] is not b[2]:
            for found in (_face_box(a[0], a[1], scale, canvas.shape[:2]), now):
                if found is not None:
                    box = _union(box, found)
    if box[1] <= box[0] or box[3] <= box[2]:
        return box  # nothing pasted before or now: nothing changes
    pasted = [fb for fb in boxes if fb is not None]
    grown = True
    while grown:
        grown = False
        for fb in pasted:
            if _overlaps(fb, box) and _union(box, fb) != box:
                box, grown = _union(box, fb), True
    return box
