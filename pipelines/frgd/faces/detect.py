"""Face detection with MTCNN (facenet-pytorch; its weights ship inside the wheel).

MTCNN's P-Net looks at 12x12 windows, so the smallest face it can see is 12 px at its first pyramid scale, and faces
of 12-20 px are found unreliably. :class:`FaceDetector` therefore upsamples small images (bicubic) so that the smallest
requested face (``min_face_size``) is at least :data:`UPSAMPLE_TARGET` px in the detection image (within
:data:`UPSAMPLE_MAX_PIXELS`), and downsamples
very large images (area) to at most :data:`MAX_DETECT_PIXELS` pixels; boxes and landmarks are mapped back to the
input image with the exact pixel-centre resize mapping.

**Small faces in large photos**: a 24 MP photo is searched at 0.41x, where a face under about 60 px is under
:data:`UPSAMPLE_TARGET` px and one under 29 px is under MTCNN's 12-px window. So such a photo is also searched in
overlapping tiles of at most :data:`MAX_DETECT_PIXELS` (:meth:`FaceDetector.detect_tiled`) for the faces the downscaled
pass under-resolves, at the scale where the smallest requested face is :data:`UPSAMPLE_TARGET` px, at most full
resolution (:func:`tile_scale`: 1x for the default 12 px); a face found by both passes keeps the tiled pass's
detection (:func:`merge_tiled`). Measured on synthetic 12 and 24 MP photos (``scripts/measure_big_photo_faces.py``,
README): faces of 16-32 px went from 29 of 48 found to 48 of 48, no false faces either way, for about 2.5 s (12 MP)
and 6.5 s (24 MP) more on two CPU cores.

Measured with the default settings (``min_face_size=12``: 2x upsampling of small images): faces128 val faces shrunk
to 10/12/14/16 px face width (2.1 x eye distance) in a 160x120 canvas were found 9/10, 10/10, 10/10, 10/10 times, eye
error 11/10/8/7 % of the face width; with ``min_face_size=6`` (4x) even 8 px faces were found (20/20, eye error 15 %).

Landmarks are ``(5, 2)`` ``(x, y)``: left eye, right eye, nose, left mouth corner, right mouth corner ("left" =
smaller x in the upright face, the order of :data:`frgd.faces.align.TEMPLATE_512`).

**Faces on their side or upside down** (a scan or a photo turned a quarter, with no EXIF orientation to say so, or a
person lying down): MTCNN finds upright faces only (it scores a face turned 90 degrees far below the floor).
:func:`detect_faces` with ``orientation="auto"`` (the default) therefore looks again in the image turned a quarter
either way and half a turn, from :data:`TURNED_MIN_FACE` px. When no upright face scores :data:`TURN_CHECK_SCORE` or
more, the photo itself may lie turned: it keeps the orientation whose faces (those passing the floor) have the largest
total score, upright on a tie. Otherwise the photo is upright, and a turned face scoring :data:`TURN_CHECK_SCORE` is
added where it is none of the upright faces (:data:`SAME_FACE_IOU`), or replaces those it is if it scores more
(:func:`add_turned_faces`): someone lying in a group photo, or the faces of a turned photo in which one tilted head
was found upright at 0.99 (and found better turned). The faces come back
in the image's own coordinates (:func:`turn_points`) with :attr:`DetectedFace.turn` set, and their landmarks keep the
face's own order, so alignment (a similarity transform) turns the crop upright and pasting back turns it back.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from ..devices import resolve_device
from ..errors import FRGDError, InputError
from ..io import to_uint8
from ..jobs import CancelToken, ProgressFn, check_cancel, report
from .align import template_fit_error, turn_points
from .rules import FACE_MIN_SCORE, check_min_score

logger = logging.getLogger(__name__)

MTCNN_MIN_FACE = 12
"""P-Net window size: the smallest face MTCNN can represent at its first scale."""
UPSAMPLE_TARGET = 24.0
"""Small faces are upsampled so that ``min_face_size`` becomes this many pixels in the detection image."""
MAX_UPSAMPLE = 4.0
UPSAMPLE_MAX_PIXELS = 2_000_000
"""Automatic upsampling is for small images: it stops where the detection image would exceed this many pixels
(a 640x480 photo is searched at 2x; from about 1630x1230 up, at 1x). Pass ``upsample=`` to force a factor."""
MTCNN_COORD_OFFSET = 1.0
"""MTCNN (a MATLAB/Caffe port) reports positions as 1-based pixel centres: OpenCV pixel-centre ``x = x_mtcnn - 1``.

Measured on 50 faces128 val crops: detecting at 2x/3x/4x and mapping back with this convention agrees with detecting
at 1x to within 0.03 px of mean bias, while assuming 0-based centres leaves a -0.5 * (1 - 1/scale) px shift.
:class:`DetectedFace` keeps MTCNN's convention because faces128 was aligned from raw MTCNN landmarks, so passing
``DetectedFace.landmarks`` to :func:`frgd.faces.align.align_face` reproduces the dataset's sub-pixel placement;
use :attr:`DetectedFace.landmarks_px` for drawing on the image."""
MAX_DETECT_PIXELS = 4_000_000
"""Detection images are kept at or below this many pixels (about 2300x1700)."""
TILE_OVERLAP = 1.25
"""Tiles overlap by this many times the largest face the tiled pass keeps (MTCNN's boxes are about the face's
size, a little more for some), which is also the largest face it keeps from a tile."""
SAME_FACE_IOU = 0.3
"""Boxes overlapping this much are the same face (the whole-image and the tiled pass; an upright and a turned pass)."""
TURNED_MIN_FACE = 40.0
"""Smallest face (input px) looked for in the turned copies of an image (faces under about 32 px wide are not found
turned): a photo on its side is usually a portrait whose faces are large, and starting there (no upsampling, a short
pyramid) keeps the three turned passes that every photo gets cheap (0.15 s per photo on the real test photos, about
2.5 s on a 24 MP photo)."""
TURN_CHECK_SCORE = 0.99
"""``orientation="auto"`` takes a photo with an upright face scoring this much as upright, and adds a face found turned
in it only from this score. MTCNN sometimes scores a face on its side just above the floor (the demo's reference
turned clockwise: 0.9504, landmarks 40 px off), while an upright face usually scores more (the real test photos:
0.994-1.0, one cropped face 0.96). In the 610 photos of T91, BSDS400, Set5, Set14 and B100 and the real test photos
upright, no turned face was added to a photo with an upright face of this score; the 18 turned faces returned there
came from photos without one (17 real: BSDS keeps portrait photos on their side; one ladybug)."""
TURNED_MAX_FIT_ERROR = 0.18
"""A face found in a turned copy of the photo counts only if its landmarks have a face's shape
(:func:`frgd.faces.align.template_fit_error` at most this). MTCNN sometimes finds an upright face again, turned, with
landmarks in the wrong places and a higher score (Set5's woman: 0.987 and 0.921 turned, fit errors 0.24 and 0.19,
against 0.962 and 0.06 upright), and would have replaced it; real faces found turned fit within 0.04-0.17
(``scripts/measure_turned_faces.py``)."""
ORIENTATIONS = ("auto", "upright")
"""``orientation`` of :func:`detect_faces`: ``auto`` also looks in the turned image (module docstring); ``upright``
only as the image is."""
TURNS = (1, 3, 2)
"""Quarter turns (counter-clockwise, ``np.rot90``) tried by ``orientation="auto"``: on its side either way, then
upside down."""


@dataclass(eq=False)
class DetectedFace:
    """One detected face in input-image pixel coordinates (compared by identity: its fields are arrays).

    Attributes:
        box: ``(4,)`` float ``x0, y0, x1, y1``.
        score: MTCNN O-Net probability in ``[0, 1]``.
        landmarks: ``(5, 2)`` float ``(x, y)`` in template order, MTCNN's 1-based convention (see
            :data:`MTCNN_COORD_OFFSET`; pass them to ``align_face`` as they are).
        index: position in the list :func:`detect_faces` returned (largest first).
        turn: quarter turns (counter-clockwise) of the image in which the face was upright and found; 0: as the
            image is. ``box`` and ``landmarks`` are always in the image's own coordinates.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    index: int = -1
    turn: int = 0

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """``sqrt(width * height)`` of the box, px."""
        return float(math.sqrt(max(self.width, 0.0) * max(self.height, 0.0)))

    @property
    def landmarks_px(self) -> np.ndarray:
        """``(5, 2)`` landmarks in OpenCV pixel-centre coordinates (``landmarks`` less :meth:`coord_offset`)."""
        return self.landmarks - self.coord_offset

    @property
    def coord_offset(self) -> np.ndarray:
        """``(2,)`` what ``landmarks`` add to the pixel-centre positions: MTCNN's 1-based convention
        (:data:`MTCNN_COORD_OFFSET` along x and y) *in the face's upright frame*, so that a face found turned is
        aligned with the same sub-pixel placement relative to the face as an upright one (as faces128 was cut):
        ``(1, 1)`` upright, ``(-1, 1)``, ``(-1, -1)``, ``(1, -1)`` for one to three quarter turns."""
        return turn_points(np.full((1, 2), MTCNN_COORD_OFFSET), self.turn, (1, 1))[0]

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    def to_json(self) -> dict:
        out = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": np.round(self.landmarks, 2).tolist(),
        }
        if self.turn:
            out["turn_degrees"] = 90 * self.turn
        return out

    def unturned(self, turn: int, shape: tuple[int, int]) -> DetectedFace:
        """This face, found upright in ``np.rot90(img, turn)``, in the coordinates of ``img`` of ``shape`` ``(H, W)``
        (``box`` in MTCNN's convention along the image's axes, ``landmarks`` along the face's: :meth:`coord_offset`)."""
        off = MTCNN_COORD_OFFSET
        x0, y0, x1, y1 = self.box - off
        corners = turn_points(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]), turn, shape) + off
        box = np.concatenate([corners.min(0), corners.max(0)])
        face = DetectedFace(box=box, score=self.score, landmarks=self.landmarks, index=self.index, turn=turn % 4)
        face.landmarks = turn_points(self.landmarks_px, turn, shape) + face.coord_offset
        return face


def _build_mtcnn(device: Any, **settings: Any) -> Any:
    """facenet-pytorch's ``MTCNN`` with ``settings`` (its ``__init__`` keywords, except ``device``) whose P-, R- and
    O-Net weights are loaded by :func:`frgd.weights.load_state_dict` (``torch.load(weights_only=True)``, files checked
    against the manifest entry ``mtcnn``) instead of by facenet-pytorch's own ``torch.load`` without ``weights_only``.
    """
    try:
        from facenet_pytorch import MTCNN
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
    except ImportError as err:  # pragma: no cover - a hard dependency
        raise FRGDError(
            "face detection needs facenet-pytorch (pip install 'facenet-pytorch>=2.5.3,<2.6'); "
            f"it could not be imported: {err}"
        ) from err
    from torch import nn

    from ..weights import load_state_dict, weights_files

    files = {p.name: p for p in weights_files("mtcnn")}
    mtcnn = MTCNN.__new__(MTCNN)
    nn.Module.__init__(mtcnn)
    # the attributes MTCNN.__init__ (facenet-pytorch 2.5.x) sets, from its defaults and ``settings``
    params = {"image_size": 160, "margin": 0, "min_face_size": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709,
              "post_process": True, "select_largest": True, "selection_method": None, "keep_all": False}  # fmt: skip
    unknown = set(settings) - set(params)
    if unknown:
        raise TypeError(f"unknown MTCNN settings {sorted(unknown)}")
    params.update(settings)
    for key, value in params.items():
        setattr(mtcnn, key, value)
    if not mtcnn.selection_method:
        mtcnn.selection_method = "largest" if mtcnn.select_largest else "probability"
    for attr, cls, fname in (("pnet", PNet, "pnet.pt"), ("rnet", RNet, "rnet.pt"), ("onet", ONet, "onet.pt")):
        net = cls(pretrained=False)
        net.load_state_dict(load_state_dict(files[fname]))
        setattr(mtcnn, attr, net)
    mtcnn.device = device
    return mtcnn.to(device).eval()


def _resize_map(scale: float) -> tuple[float, float]:
    """Coefficients ``(a, b)`` mapping a detection-image coordinate back: ``x = a * x_det + b``.

    MTCNN coordinates are 1-based pixel centres (:data:`MTCNN_COORD_OFFSET`); the exact pixel-centre resize mapping
    in that convention is ``x = (x_det - 1 + 0.5) / scale - 0.5 + 1``.
    """
    off = MTCNN_COORD_OFFSET
    return 1.0 / scale, (0.5 - off) / scale + off - 0.5


class FaceDetector:
    """MTCNN face detector that reaches small (~12 px) and very large faces.

    Args:
        device: ``auto|cpu|cuda|mps`` (MTCNN is small; CPU is fine).
        min_face_size: smallest face to look for, in input-image pixels (box side).
        thresholds: P-Net, R-Net, O-Net score thresholds.
        factor: image-pyramid scale step.
        max_pixels: detection-image pixel budget: larger images are downscaled for the whole-image pass, and their
            smaller faces are looked for in tiles of this size, at up to full resolution (``detect(tiles=True)``).
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        min_face_size: float = 12,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        *,
        factor: float = 0.709,
        max_pixels: int = MAX_DETECT_PIXELS,
    ) -> None:
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise InputError(f"thresholds must be three values in [0, 1], got {tuple(thresholds)}")
        self.device = resolve_device(device)
        self.min_face_size = self._min_face(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.max_pixels = int(max_pixels)
        self._mtcnn = _build_mtcnn(
            self.device,
            keep_all=True,
            min_face_size=MTCNN_MIN_FACE,
            thresholds=list(self.thresholds),
            factor=self.factor,
            post_process=False,
            select_largest=False,
        )
        self._lock = threading.Lock()

    def _min_face(self, min_face_size: float | None) -> float:
        """``min_face_size`` checked (at least 4 px), or the detector's own when ``None``."""
        if min_face_size is None:
            return self.min_face_size
        if not min_face_size >= 4:
            raise InputError(f"the smallest face size must be at least 4 px, got {min_face_size}")
        return float(min_face_size)

    def detection_scale(
        self, shape: tuple[int, int], *, upsample_small: bool = True, min_face_size: float | None = None
    ) -> float:
        """Resize factor applied before MTCNN for an image of ``shape`` ``(H, W)``."""
        h, w = int(shape[0]), int(shape[1])
        m = self._min_face(min_face_size)
        budget = math.sqrt(self.max_pixels / float(h * w))
        if upsample_small and m < UPSAMPLE_TARGET:
            room = min(UPSAMPLE_MAX_PIXELS, self.max_pixels)  # never past the detector's own budget
            up = min(UPSAMPLE_TARGET / m, MAX_UPSAMPLE, math.sqrt(room / float(h * w)))
            if up > 1.0:
                return float(up)
        return float(min(1.0, budget))

    def check_inputs(self, img: np.ndarray) -> np.ndarray:
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] not in (3, 4):
            raise InputError(f"expected an (H, W, 3) RGB image, got shape {getattr(img, 'shape', None)}")
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if img.dtype == np.uint16 or img.dtype.kind == "f":
            img = to_uint8(img)
        elif img.dtype != np.uint8:
            raise InputError(f"unsupported image dtype {img.dtype}")
        if min(img.shape[:2]) < 12:
            raise InputError(f"image too small for face detection: {img.shape[1]}x{img.shape[0]}")
        return np.ascontiguousarray(img)

    def detect(
        self,
        img: np.ndarray,
        *,
        upsample_small: bool = True,
        upsample: float | None = None,
        min_face_size: float | None = None,
        tiles: bool = True,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[DetectedFace]:
        """Detect every face.

        Args:
            img: ``(H, W, 3)`` RGB uint8 (uint16/float [0, 1] are converted).
            upsample_small: upsample so faces of ``min_face_size`` px become ``UPSAMPLE_TARGET`` px (up to 4x,
                while the detection image stays within ``UPSAMPLE_MAX_PIXELS``).
            upsample: force this detection resize factor instead (e.g. 2.0 or 4.0; < 1 downsamples).
            min_face_size: override the detector's ``min_face_size`` for this call (input pixels).
            tiles: in a photo over ``max_pixels``, whose whole-image pass is downscaled, also look for the faces that
                pass under-resolves in tiles, at up to full resolution (:meth:`detect_tiled`); off with ``upsample``.
            progress, cancel: the tiled pass reports each tile and stops before the next when cancelled
                (:mod:`frgd.jobs`).

        Returns:
            Faces sorted by box size, largest first, in input-image coordinates.
        """
        img = self.check_inputs(img)
        h, w = img.shape[:2]
        m = self._min_face(min_face_size)
        s = (
            float(upsample)
            if upsample
            else self.detection_scale((h, w), upsample_small=upsample_small, min_face_size=m)
        )
        if s <= 0:
            raise InputError(f"upsample factor must be positive, got {upsample}")
        faces = self._detect_at(img, s, m)
        tiled = tiles and not upsample and m * s < UPSAMPLE_TARGET and s < 1.0
        if tiled:
            faces = merge_tiled(faces, self.detect_tiled(img, m, tile_faces_below(s), progress, cancel))
        smallest = MTCNN_MIN_FACE / (tile_scale(m) if tiled else s)
        if m < smallest:
            logger.info("detecting at %.3gx: faces smaller than %.0f px cannot be found", s, smallest)
        faces.sort(key=lambda f: f.size, reverse=True)
        for i, f in enumerate(faces):
            f.index = i
        return faces

    def detect_tiled(
        self,
        img: np.ndarray,
        min_face_size: float,
        max_face_size: float,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[DetectedFace]:
        """Faces of ``min_face_size`` to ``max_face_size`` input px, found in overlapping tiles of at most
        ``max_pixels`` each (:func:`tile_grid`) at the scale where the smallest becomes :data:`UPSAMPLE_TARGET` px,
        at most full resolution (:func:`tile_scale`): each face is kept from the one tile whose core holds its box
        centre, where it lies whole, so no face is cut by a tile's edge or found twice. ``img`` as :meth:`detect`
        takes it (checked here too); ``progress`` is told of each tile, ``cancel`` is checked before each."""
        img = self.check_inputs(img)
        h, w = img.shape[:2]
        s = tile_scale(min_face_size)
        overlap = int(math.ceil(TILE_OVERLAP * max_face_size))
        side = max(overlap + 2, int(math.isqrt(self.max_pixels) / s))  # tile_grid: room for a core
        out = []
        grid = tile_grid((h, w), side, overlap)
        for i, ((x0, y0, x1, y1), (cx0, cy0, cx1, cy1)) in enumerate(grid):
            check_cancel(cancel)
            report(progress, i, len(grid), f"looking for small faces: tile {i + 1} of {len(grid)}")
            for f in self._detect_at(np.ascontiguousarray(img[y0:y1, x0:x1]), s, min_face_size):
                f.box[[0, 2]] += x0
                f.box[[1, 3]] += y0
                f.landmarks += (x0, y0)
                cx, cy = (f.box[0] + f.box[2]) / 2 - MTCNN_COORD_OFFSET, (f.box[1] + f.box[3]) / 2 - MTCNN_COORD_OFFSET
                if f.size <= overlap and cx0 <= cx < cx1 and cy0 <= cy < cy1:
                    out.append(f)
        report(progress, len(grid), len(grid), f"looked for small faces in {len(grid)} tiles")
        logger.debug("tiled pass: %d face(s) of %.0f-%.0f px", len(out), min_face_size, max_face_size)
        return out

    def _detect_at(self, img: np.ndarray, s: float, m: float) -> list[DetectedFace]:
        """One MTCNN pass over ``img`` (checked) resized by ``s``: faces of at least ``0.8 * m`` input px, in input
        coordinates, unsorted."""
        h, w = img.shape[:2]
        if abs(s - 1.0) > 1e-6:
            size = (max(12, int(round(w * s))), max(12, int(round(h * s))))
            interp = cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA
            det_img = cv2.resize(img, size, interpolation=interp)
            sx, sy = size[0] / w, size[1] / h
        else:
            det_img, sx, sy = img, 1.0, 1.0
        mtcnn_min = max(float(MTCNN_MIN_FACE), m * min(sx, sy))
        logger.debug("MTCNN on %dx%d (scale %.3g), min face %.1f px", det_img.shape[1], det_img.shape[0], s, mtcnn_min)
        if mtcnn_min > min(det_img.shape[:2]):  # no face that large fits (MTCNN's image pyramid would be empty)
            return []
        with self._lock:
            self._mtcnn.min_face_size = mtcnn_min
            with torch.inference_mode():
                boxes, probs, points = self._mtcnn.detect(det_img, landmarks=True)
        if boxes is None or len(boxes) == 0:
            return []
        ax, bx = _resize_map(sx)
        ay, by = _resize_map(sy)
        faces = []
        for box, prob, pts in zip(boxes, probs, points):
            box = np.asarray(box, np.float64).copy()
            pts = np.asarray(pts, np.float64).reshape(5, 2).copy()
            box[[0, 2]] = box[[0, 2]] * ax + bx
            box[[1, 3]] = box[[1, 3]] * ay + by
            pts[:, 0] = pts[:, 0] * ax + bx
            pts[:, 1] = pts[:, 1] * ay + by
            faces.append(DetectedFace(box=box, score=float(prob), landmarks=pts))
        return [f for f in faces if f.size >= 0.8 * m]

    __call__ = detect


def tile_scale(min_face_size: float) -> float:
    """The tiled pass's resize factor: the smallest face becomes :data:`UPSAMPLE_TARGET` px, at most full resolution
    (large photos are not upsampled: a 12-px face is searched at 1x, where MTCNN still finds most, README)."""
    return min(1.0, UPSAMPLE_TARGET / float(min_face_size))


def tile_faces_below(scale: float) -> float:
    """The face size (input px) under which a whole-image pass at ``scale`` < 1 under-resolves a face (it is under
    :data:`UPSAMPLE_TARGET` px there), so the tiled pass looks for faces up to it."""
    return UPSAMPLE_TARGET / scale


def tile_grid(
    shape: tuple[int, int], side: int, overlap: int
) -> list[tuple[tuple[int, int, int, int], tuple[float, float, float, float]]]:
    """Tiles of at most ``side`` x ``side`` px covering an image of ``shape`` ``(H, W)`` in the upscalers' tile layout
    (:mod:`frgd.sr.tiling`): near-equal cores partition each axis (``tile_bounds``), and each tile is its core grown
    by ``ceil(overlap / 2)`` context pixels on every side, clipped at the border (``padded_span``). Returns
    ``((x0, y0, x1, y1), core)`` with the core ``(cx0, cy0, cx1, cy1)`` in pixel-centre coordinates (open towards the
    image border), so a box of side at most ``overlap`` centred in a tile's core lies whole inside that tile."""
    from ..sr.tiling import padded_span, tile_bounds

    h, w = int(shape[0]), int(shape[1])
    side, margin = int(side), math.ceil(overlap / 2)
    if overlap < 0 or side - 2 * margin < 1:
        raise InputError(f"tile overlap must be in [0, {side - 1}) to leave the {side}-px tiles a core, got {overlap}")

    def spans(n: int) -> tuple[list[tuple[int, int]], list[tuple[float, float]]]:
        if n <= side:
            return [(0, n)], [(-math.inf, math.inf)]
        cores = tile_bounds(n, side - 2 * margin)
        cuts = [-math.inf] + [lo - 0.5 for lo, _ in cores[1:]] + [math.inf]
        return [padded_span(lo, hi, n, margin) for lo, hi in cores], list(zip(cuts[:-1], cuts[1:]))

    xs, xcores = spans(w)
    ys, ycores = spans(h)
    return [((x0, y0, x1, y1), (cx0, cy0, cx1, cy1))
            for (y0, y1), (cy0, cy1) in zip(ys, ycores) for (x0, x1), (cx0, cx1) in zip(xs, xcores)]  # fmt: skip


def merge_tiled(whole: list[DetectedFace], tiled: list[DetectedFace]) -> list[DetectedFace]:
    """The whole-image pass's faces with the tiled pass's: a face found by both (boxes overlapping by
    :data:`SAME_FACE_IOU`) keeps the tiled detection, which saw it at full resolution (finer landmarks)."""
    keep = [f for f in whole if not any(box_iou(f.box, g.box) >= SAME_FACE_IOU for g in tiled)]
    return keep + list(tiled)


def add_turned_faces(faces: list[DetectedFace], turned: list[DetectedFace]) -> list[DetectedFace]:
    """``faces`` of an upright photo with the faces of one turned pass that score :data:`TURN_CHECK_SCORE`: one that is
    none of ``faces`` (:data:`SAME_FACE_IOU`) is added; one that is, and scores more than every face it overlaps,
    replaces them (a head tilted far enough to be found both ways keeps the surer detection and its landmarks)."""
    out = list(faces)
    for f in turned:
        if f.score < TURN_CHECK_SCORE:
            continue
        same = [g for g in out if box_iou(f.box, g.box) >= SAME_FACE_IOU]
        if all(f.score > g.score for g in same):
            out = [g for g in out if g not in same] + [f]
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(4,)`` ``x0, y0, x1, y1`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def select(
    faces: Sequence[DetectedFace],
    which: str | int | Sequence[int] = "all",
    image_shape: tuple[int, int] | None = None,
) -> list[DetectedFace]:
    """Pick faces: ``"all"``, ``"largest"``, ``"center"`` (closest box centre to the image centre; needs
    ``image_shape`` ``(H, W)``), an index, a list of indices, or a string like ``"0,2"``.

    Raises:
        InputError: an index is out of range, or ``"center"`` without ``image_shape``.
    """
    faces = list(faces)
    if isinstance(which, str):
        key = which.strip().lower()
        if key == "all":
            return faces
        if not faces:
            return []
        if key == "largest":
            return [max(faces, key=lambda f: f.size)]
        if key in ("center", "centre"):
            if image_shape is None:
                raise InputError("selecting the centre face needs the image shape")
            cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0

            def dist(f: DetectedFace) -> float:
                return math.hypot((f.box[0] + f.box[2]) / 2 - cx, (f.box[1] + f.box[3]) / 2 - cy)

            return [min(faces, key=dist)]
        try:
            idx = [int(t) for t in key.split(",") if t.strip()]
        except ValueError:
            raise InputError(
                f"unknown face selection {which!r}; use all, largest, center or indices like 0,2"
            ) from None
    elif isinstance(which, (int, np.integer)):
        idx = [int(which)]
    else:
        idx = [int(i) for i in which]
    bad = [i for i in idx if not -len(faces) <= i < len(faces)]
    if bad:
        raise InputError(f"face index {bad[0]} out of range: {len(faces)} face(s) detected")
    return [faces[i] for i in idx]


_CACHE: dict[tuple, FaceDetector] = {}
_CACHE_LOCK = threading.Lock()


def get_detector(device: str | torch.device = "cpu", thresholds: Sequence[float] = (0.6, 0.7, 0.7)) -> FaceDetector:
    """A cached :class:`FaceDetector` per (device, thresholds)."""
    dev = resolve_device(device)
    key = (str(dev), tuple(float(t) for t in thresholds))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = FaceDetector(device=dev, thresholds=thresholds)
        return _CACHE[key]


def detect_faces(
    img: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    thresholds: Sequence[float] = (0.6, 0.7, 0.7),
    min_face_size: float = 12,
    upsample_small: bool = True,
    upsample: float | None = None,
    min_score: float = FACE_MIN_SCORE,
    orientation: str = "auto",
    tiles: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    rejected: list[DetectedFace] | None = None,
) -> list[DetectedFace]:
    """Detect faces with a cached detector per device; see :meth:`FaceDetector.detect` (``tiles``: its tiled pass
    over large photos, which reports to ``progress`` and stops at ``cancel``; the turned retries below go without it,
    looking for large faces only).

    ``min_score`` drops faces below that O-Net probability (default :data:`FACE_MIN_SCORE`; 0 keeps every one); the
    upright pass's dropped candidates are appended to ``rejected`` when it is given (to say why nothing was found,
    without detecting again).
    ``orientation``: ``"auto"`` (default) also looks in the image turned by each of :data:`TURNS`, for a photo lying
    turned or a face lying in an upright photo (module docstring); ``"upright"`` only as the image is.
    """
    min_score = check_min_score(min_score)
    if orientation not in ORIENTATIONS:
        raise InputError(f"orientation must be one of {', '.join(ORIENTATIONS)}, got {orientation!r}")
    det = get_detector(device, thresholds)
    faces = det.detect(
        img,
        upsample_small=upsample_small,
        upsample=upsample,
        min_face_size=min_face_size,
        tiles=tiles,
        progress=progress,
        cancel=cancel,
    )
    if rejected is not None:
        rejected.extend(f for f in faces if f.score < min_score)
    faces = [f for f in faces if f.score >= min_score]
    if orientation == "auto":
        upright_photo = any(f.score >= TURN_CHECK_SCORE for f in faces)
        for turn in TURNS:
            check_cancel(cancel)
            turned = np.ascontiguousarray(np.rot90(img, turn))
            found = det.detect(
                turned, upsample_small=False, min_face_size=max(float(min_face_size), TURNED_MIN_FACE), tiles=False
            )
            found = [f.unturned(turn, np.shape(img)[:2]) for f in found
                     if f.score >= min_score and template_fit_error(f.landmarks) <= TURNED_MAX_FIT_ERROR]  # fmt: skip
            if upright_photo:  # an upright photo: add the sure faces lying turned in it
                faces = add_turned_faces(faces, found)
            elif sum(f.score for f in found) > sum(f.score for f in faces):  # the photo lies turned
                faces = found
        turned_faces = [f for f in faces if f.turn]
        if turned_faces:
            logger.info("%d face(s) found lying turned (%s degrees)", len(turned_faces),
                        ", ".join(sorted({str(90 * f.turn) for f in turned_faces})))  # fmt: skip
        faces.sort(key=lambda f: f.size, reverse=True)  # largest first, as FaceDetector.detect
    for i, f in enumerate(faces):
        f.index = i
    return faces
