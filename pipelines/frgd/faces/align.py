"""Five-point face alignment, paste-back and one-click face-region masks (numpy + OpenCV, no torch).

Coordinates are OpenCV pixel coordinates: pixel ``(x, y)`` has its centre at integer ``(x, y)``; landmarks are
``(5, 2)`` float ``(x, y)`` in the order of :data:`TEMPLATE_512`: left eye, right eye, nose tip, left mouth corner,
right mouth corner ("left" = smaller x in an upright, non-mirrored image, the same order MTCNN returns).

Alignment reproduces the faces128 recipe ("estimateAffinePartial2D onto the 512 template, cubic warp to 512 with
reflected borders, area downscale to 128"): :func:`align_face` fits a similarity onto :func:`template` at a supersampled
warp size ``W = k * size``, warps with bicubic interpolation and reflected borders, then area-downscales by ``k``.
The stored :attr:`FaceCrop.affine` is the exact image->crop pixel mapping of that two-step process, so
:func:`paste_back` inverts it exactly. Because area downscaling by ``k`` maps warp pixel ``u`` to crop pixel
``(u + 0.5) / k - 0.5``, template points land at ``template(size) - 0.5 * (1 - 1/k)`` in the crop (0.375 px for
``k = 4``, as in faces128, whose ``labels.csv`` ``lm`` column uses the plain ``/4`` convention).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..errors import InputError
from ..io import from_float, to_float

logger = logging.getLogger(__name__)

TEMPLATE_512: np.ndarray = np.array(
    [
        [192.98138, 239.94708],  # left eye
        [318.90277, 240.1936],  # right eye
        [256.63416, 314.01935],  # nose tip
        [201.26117, 371.41043],  # left mouth corner
        [313.08905, 371.15118],  # right mouth corner
    ],
    dtype=np.float64,
)
"""FFHQ-style five-point template for a 512x512 crop (the faces128 template; :func:`template` scales it)."""

FACE_SIZE = 128
"""Side of FRGD's aligned face crop: the faces128 crops, the model's input, the editor's face crops and masks."""

DATASET_WARP_SIZE = 512
"""faces128 warped every face to 512x512 before area-downscaling to 128."""

MAX_SUPERSAMPLE = 8

Border = Literal["reflect", "constant"]
Interpolation = Literal["cubic", "area"]
Region = Literal["face", "eyes", "mouth", "nose", "left_eye", "right_eye", "lower_face", "outside_face"]
FACE_REGIONS: tuple[str, ...] = ("left_eye", "right_eye", "eyes", "nose", "mouth", "lower_face", "face", "outside_face")
"""Every region :func:`face_region_mask` draws (the editor offers face, eyes, mouth and nose; fusion training all)."""

_BORDERS = {"reflect": cv2.BORDER_REFLECT, "constant": cv2.BORDER_CONSTANT}

DETAIL_AGREEMENT = 0.1
"""How far (max over RGB, in [0, 1], smoothed over about a restored pixel) a restored face may differ from the photo
there and still get the photo's own detail above its resolution back on paste (:func:`paste_back`, ``keep_detail``):
full detail at no difference, none at this difference or more."""
DETAIL_SMOOTH = 1.0
"""Gaussian sigma, restored-crop pixels, of the difference :data:`DETAIL_AGREEMENT` is compared with."""


def template(size: int) -> np.ndarray:
    """The five template points for a ``size x size`` crop: ``TEMPLATE_512 * size / 512``, shape ``(5, 2)``."""
    if size <= 0:
        raise InputError(f"crop size must be positive, got {size}")
    return TEMPLATE_512 * (float(size) / 512.0)


def _check_landmarks(lm: np.ndarray, name: str = "landmarks") -> np.ndarray:
    arr = np.asarray(lm, dtype=np.float64)
    if arr.shape != (5, 2):
        raise InputError(f"{name} must have shape (5, 2), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contain NaN or infinite values")
    return arr


def estimate_similarity(src: np.ndarray, dst: np.ndarray, method: Literal["lstsq", "lmeds"] = "lstsq") -> np.ndarray:
    """Similarity transform (rotation, uniform scale, translation; no reflection) mapping ``src`` onto ``dst``.

    Args:
        src: ``(N, 2)`` points (N >= 2), e.g. detected landmarks in the photo.
        dst: ``(N, 2)`` target points, e.g. :func:`template`.
        method: ``"lstsq"`` (default here): closed-form least squares (Umeyama 1991), the optimum of the sum of
            squared residuals over all five points. ``"lmeds"``: ``cv2.estimateAffinePartial2D(method=cv2.LMEDS)``,
            the call faces128 used: it picks the 2-point model with the least median residual, then refines it
            (Levenberg-Marquardt) on the points within its inlier band, so it often fits 3-4 of the five points and
            ignores the worst one. Both are exact for consistent points and deterministic (OpenCV seeds its sampler
            with a fixed value). They differ on real landmarks: re-fitting the faces128 ``lm`` labels (already
            aligned, so the dataset's own method must give the identity) moves the template by p90 0.05 px / max
            3.2 px with LMEDS versus p90 0.98 px / max 5.6 px with least squares (1,975 labels, every 10th row), so
            :func:`align_face` defaults to ``"lmeds"`` to reproduce the dataset. Falls back to ``lstsq`` when OpenCV
            finds no model.

    Returns:
        ``(2, 3)`` float64 matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or src.shape[0] < 2:
        raise InputError(f"need matching (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    if method == "lmeds":
        m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        if m is not None:
            return m.astype(np.float64)
        logger.debug("cv2.estimateAffinePartial2D found no model; using least squares")
    elif method != "lstsq":
        raise InputError(f"unknown similarity method {method!r}; use 'lstsq' or 'lmeds'")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s <= 1e-12:
        raise InputError("landmarks are degenerate (all points coincide)")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64)).astype(np.float64)


def compose_affine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine applying ``b`` first, then ``a``."""
    a3 = np.vstack([a, [0.0, 0.0, 1.0]])
    b3 = np.vstack([b, [0.0, 0.0, 1.0]])
    return (a3 @ b3)[:2]


def template_fit_error(landmarks: np.ndarray) -> float:
    """How far five landmarks ``(5, 2)`` are from the shape of a face: the RMS distance, in template eye distances,
    between :func:`template` and the landmarks mapped onto it by the least-squares similarity (0: exactly the
    template's shape, whatever the face's place, size and roll). Real faces: 0.04-0.17 (the real test photos
    upright and turned, faces128 val crops up to 0.17); landmarks MTCNN misplaced on a face turned the wrong way:
    about 0.2-0.3 (``frgd.faces.detect.TURNED_MAX_FIT_ERROR``)."""
    t = template(FACE_SIZE)
    pts = transform_points(estimate_similarity(landmarks, t, "lstsq"), landmarks)
    return float(np.sqrt(((pts - t) ** 2).sum(1).mean()) / np.linalg.norm(t[1] - t[0]))


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to ``(N, 2)`` points."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]


def resize_affine(scale: float) -> np.ndarray:
    """Pixel-centre-exact affine of resizing an image by ``scale`` (``x' = (x + 0.5) * scale - 0.5``)."""
    off = 0.5 * scale - 0.5
    return np.array([[scale, 0.0, off], [0.0, scale, off]], dtype=np.float64)


@dataclass(frozen=True)
class FaceCrop:
    """An aligned face and everything needed to paste a restored version back (stateless).

    Attributes:
        image: ``(S, S, 3)`` aligned crop, same dtype as the source image.
        affine: ``(2, 3)`` source-image pixel -> crop pixel.
        inverse: ``(2, 3)`` crop pixel -> source-image pixel.
        size: ``S``.
        landmarks: ``(5, 2)`` landmarks in the source image.
        crop_landmarks: ``(5, 2)`` the same landmarks in the crop.
        source_shape: ``(H, W)`` of the source image.
        supersample: the warp was done at ``supersample * size`` and area-downscaled (see :func:`supersample_factor`).
    """

    image: np.ndarray
    affine: np.ndarray
    inverse: np.ndarray
    size: int
    landmarks: np.ndarray
    crop_landmarks: np.ndarray
    source_shape: tuple[int, int]
    supersample: int = 1

    @property
    def template_points(self) -> np.ndarray:
        """``(5, 2)`` where the template points lie in this crop (exact pixel centres): ``template(size)`` shifted by
        ``-0.5 * (1 - 1 / supersample)`` (-0.375 px for faces128's 512 -> 128)."""
        k = self.supersample
        return template(self.size * k) / k + (0.5 / k - 0.5)

    @property
    def native_scale(self) -> float:
        """Source pixels per crop pixel (> 1: the crop was downscaled from a larger face)."""
        return float(math.sqrt(abs(np.linalg.det(self.inverse[:, :2]))))

    def to_json(self) -> dict:
        """JSON-serialisable description (no pixels)."""
        return {
            "size": self.size,
            "affine": np.round(self.affine, 8).tolist(),
            "inverse": np.round(self.inverse, 8).tolist(),
            "landmarks": np.round(self.landmarks, 4).tolist(),
            "crop_landmarks": np.round(self.crop_landmarks, 4).tolist(),
            "source_shape": list(self.source_shape),
            "native_scale": round(self.native_scale, 6),
            "supersample": self.supersample,
        }

    @classmethod
    def from_json(cls, data: dict, image: np.ndarray | None = None) -> FaceCrop:
        """The crop :meth:`to_json` described (its matrices as rounded there), with ``image`` (``None``: a black
        ``(S, S, 3)`` uint8 crop; pasting needs only the geometry). :class:`InputError` for a malformed description."""
        try:
            size = int(data["size"])
            arrays = [np.asarray(data[k], np.float64) for k in ("affine", "inverse", "landmarks", "crop_landmarks")]
            h, w = (int(v) for v in data["source_shape"])
            supersample = int(data.get("supersample", 1))
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"not a face crop description ({type(err).__name__}: {err})") from None
        if size < 2 or [a.shape for a in arrays] != [(2, 3), (2, 3), (5, 2), (5, 2)] or h < 1 or w < 1:
            raise InputError(f"not a face crop description (size {size}, shapes {[a.shape for a in arrays]})")
        if not all(np.isfinite(a).all() for a in arrays) or abs(np.linalg.det(arrays[1][:, :2])) < 1e-12:
            raise InputError("not a face crop description (its matrices are not finite and invertible)")
        img = np.zeros((size, size, 3), np.uint8) if image is None else image
        return cls(img, arrays[0], arrays[1], size, arrays[2], arrays[3], (h, w), max(supersample, 1))


def _check_image(img: np.ndarray, name: str = "image") -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", None)
        raise InputError(f"{name} must be an (H, W, 3) RGB array, got shape {shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise InputError(f"{name} is too small: {img.shape[1]}x{img.shape[0]}")
    return img


def supersample_factor(landmarks: np.ndarray, size: int, interpolation: Interpolation = "area") -> int:
    """Integer ``k``: :func:`align_face` warps at ``k * size`` and area-downscales by ``k``.

    ``"area"`` (the faces128 recipe): at least ``ceil(512 / size)`` (so 4 for 128 crops, 1 for 512) and at least the
    face's native scale (source eye distance / template eye distance, so large faces are not aliased), at most 8.
    ``"cubic"``: 1 (direct bicubic warp) unless the face is more than 1.5x larger than the crop, then as ``"area"``
    but without the 512 floor.
    """
    lm = _check_landmarks(landmarks)
    t = template(size)
    native = float(np.linalg.norm(lm[1] - lm[0]) / np.linalg.norm(t[1] - t[0]))
    if interpolation == "area":
        k = max(math.ceil(DATASET_WARP_SIZE / size - 1e-9), math.ceil(native - 0.05), 1)
    elif interpolation == "cubic":
        k = 1 if native <= 1.5 else math.ceil(native - 0.05)
    else:
        raise InputError(f"unknown interpolation {interpolation!r}; use 'cubic' or 'area'")
    return int(min(max(k, 1), MAX_SUPERSAMPLE))


def align_face(
    img: np.ndarray,
    landmarks: np.ndarray,
    size: int = FACE_SIZE,
    *,
    border: Border = "reflect",
    interpolation: Interpolation = "area",
    method: Literal["lstsq", "lmeds"] = "lmeds",
) -> FaceCrop:
    """Align one face onto the five-point template.

    Args:
        img: ``(H, W, 3)`` RGB image (uint8, uint16 or float).
        landmarks: ``(5, 2)`` landmarks in ``img`` (template order).
        size: output crop size ``S`` (128 for FRGD, 512 for GFPGAN).
        border: ``"reflect"`` (faces128) or ``"constant"`` (black) outside the image.
        interpolation: ``"area"``: bicubic warp at ``k * S`` then area downscale (faces128 recipe, see
            :func:`supersample_factor`); ``"cubic"``: direct bicubic warp (supersampled only for much larger faces).
        method: similarity fit, see :func:`estimate_similarity` (``"lmeds"`` reproduces faces128).

    Returns:
        :class:`FaceCrop` with ``image`` ``(S, S, 3)`` of ``img.dtype``.
    """
    img = _check_image(img)
    lm = _check_landmarks(landmarks)
    size = _check_size(size)
    k = supersample_factor(lm, size, interpolation)
    m_big = estimate_similarity(lm, template(size * k), method=method)
    return _warp_crop(img, lm, m_big, size, k, border)


def resample_crop(img: np.ndarray, crop: FaceCrop, size: int, *, border: Border = "reflect") -> FaceCrop:
    """The face of ``crop`` warped again from ``img`` at another crop ``size``, with the SAME geometry (no new fit).

    ``img`` is the photo ``crop`` was aligned from; the new affine is ``crop.affine`` followed by the pixel-centre
    exact resize by ``size / crop.size``, supersampled like :func:`align_face` (``"area"``). FRGD uses it for the
    native-resolution input of a small face, so its input, mask and paste-back share one alignment.
    """
    img = _check_image(img)
    size = _check_size(size)
    k = supersample_factor(crop.landmarks, size, "area")
    m_big = compose_affine(resize_affine(size * k / crop.size), crop.affine)
    return _warp_crop(img, crop.landmarks, m_big, size, k, border)


def _check_size(size: int) -> int:
    if int(size) < 8:
        raise InputError(f"crop size must be at least 8, got {size}")
    return int(size)


def _warp_crop(img: np.ndarray, lm: np.ndarray, m_big: np.ndarray, size: int, k: int, border: Border) -> FaceCrop:
    """Warp ``img`` with ``m_big`` (photo -> ``k * size`` px) bicubically, area-downscale by ``k``: a FaceCrop."""
    if border not in _BORDERS:
        raise InputError(f"unknown border {border!r}; use 'reflect' or 'constant'")
    warp_size = size * k
    src = img if img.dtype in (np.uint8, np.uint16, np.float32) else img.astype(np.float32)
    big = cv2.warpAffine(
        src, m_big, (warp_size, warp_size), flags=cv2.INTER_CUBIC, borderMode=_BORDERS[border], borderValue=0
    )
    if k > 1:
        crop = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
        affine = compose_affine(resize_affine(1.0 / k), m_big)
    else:
        crop = big
        affine = m_big
    if crop.dtype != img.dtype:
        crop = crop.astype(img.dtype)
    inverse = invert_affine(affine)
    return FaceCrop(
        image=crop,
        affine=affine,
        inverse=inverse,
        size=size,
        landmarks=lm.copy(),
        crop_landmarks=transform_points(affine, lm),
        source_shape=(int(img.shape[0]), int(img.shape[1])),
        supersample=k,
    )


# ----------------------------------------------------------------------------------------------------------- masks


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def feather_mask(size: int, feather: float = 0.1) -> np.ndarray:
    """``(S, S)`` float32 paste mask: 1 in the middle, 0 on the crop border, smooth ramp in between.

    An eroded, smoothed square (the GFPGAN/facexlib paste-back idea): every side first loses a margin of
    ``feather * S / 2`` pixels (exactly 0 there, so nothing outside the warped crop, e.g. reflected or black padding,
    can leak in), then rises with a smoothstep over the next ``feather * S`` pixels; the 2-D mask is the product of
    the row and column ramps (like a Gaussian-blurred eroded square, but exactly zero at the edge).
    """
    if size <= 0:
        raise InputError(f"mask size must be positive, got {size}")
    if not 0.0 <= feather <= 0.5:
        raise InputError(f"feather must be in [0, 0.5] (fraction of the crop size), got {feather}")
    if feather == 0.0:
        return np.ones((size, size), np.float32)
    x = np.arange(size, dtype=np.float64) + 0.5
    dist = np.minimum(x, size - x)  # distance of each pixel centre to the nearest edge
    margin = 0.5 * feather * size
    ramp = _smoothstep((dist - margin) / (feather * size))
    return np.outer(ramp, ramp).astype(np.float32)


def face_region_mask(
    size: int | tuple[int, int],
    landmarks_crop: np.ndarray,
    region: Region = "face",
    feather: float = 0.1,
    scale: float = 1.0,
) -> np.ndarray:
    """Mask of a named face region from five landmarks, ``(H, W)`` float32 in ``[0, 1]``: the editor's one-click masks
    and the face-region masks of FRGD's fusion training (:mod:`frgd.diffusion.training.fusion`), one geometry.

    Geometry, from the five landmarks in crop pixels (``d`` = eye distance, ``e`` = eye midpoint, ``m`` = mouth-corner
    midpoint, ``h = |m - e|``; ellipses are rotated so their vertical axis runs along ``e -> m``; at the 512 template
    ``d ~= 126``, ``h ~= 131`` px):

    - ``"face"``: one ellipse centred at ``e + 0.35 (m - e)``, semi-axes ``1.0 d`` across and ``1.35 h`` along,
      covering the brows to the chin and cheek to cheek; ``"outside_face"``: its complement;
    - ``"eyes"``: one ellipse per eye, centred on the eye moved ``0.08 h`` up (to take in the lids), semi-axes
      ``0.33 d`` x ``0.22 d``, rotated with the eye line; ``"left_eye"`` / ``"right_eye"``: one of them;
    - ``"nose"``: an ellipse from just below the eye line to just below the nose tip ``n``: centre
      ``e + 0.6 (n - e)``, semi-axes ``0.28 d`` across and ``0.6 |n - e|`` along;
    - ``"mouth"``: an ellipse centred at ``m``, semi-axes ``0.5 |mouth right - mouth left| + 0.15 d`` along the
      mouth line and ``0.3 d`` across it;
    - ``"lower_face"``: an ellipse centred at ``(n + m) / 2 + 0.25 (m - e)``, semi-axes ``0.95 d`` across and
      ``0.75 d`` along.

    ``size``: ``S`` (square) or ``(H, W)``. ``scale`` multiplies every semi-axis (fusion training draws 0.8-1.4).
    The hard region is blurred with a Gaussian of sigma ``feather * d`` (``feather = 0`` gives a hard mask with
    antialiased edges).
    """
    lm = _check_landmarks(landmarks_crop, "landmarks_crop")
    h_px, w_px = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if h_px <= 0 or w_px <= 0:
        raise InputError(f"mask size must be positive, got {size}")
    if feather < 0 or scale <= 0:
        raise InputError(f"feather must be >= 0 and scale > 0, got {feather} and {scale}")
    if region not in FACE_REGIONS:
        raise InputError(f"unknown region {region!r}; use one of {', '.join(FACE_REGIONS)}")
    le, re_, nose, ml, mr = lm
    eye_c = 0.5 * (le + re_)
    mouth_c = 0.5 * (ml + mr)
    d = float(np.linalg.norm(re_ - le))
    down = mouth_c - eye_c
    h = float(np.linalg.norm(down))
    if d < 1e-6 or h < 1e-6:
        raise InputError("landmarks are degenerate (zero eye distance or eye-mouth distance)")
    # angle of the face's vertical axis, expressed as the rotation of the ellipse's x (across) axis
    face_angle = math.degrees(math.atan2(down[1], down[0])) - 90.0
    eye_angle = math.degrees(math.atan2(re_[1] - le[1], re_[0] - le[0]))
    mouth_angle = math.degrees(math.atan2(mr[1] - ml[1], mr[0] - ml[0]))
    up_unit = -down / h

    ellipses: list[tuple[np.ndarray, float, float, float]] = []  # centre, semi-axis x, semi-axis y, angle (deg)
    if region in ("face", "outside_face"):
        ellipses.append((eye_c + 0.35 * down, 1.0 * d, 1.35 * h, face_angle))
    elif region in ("eyes", "left_eye", "right_eye"):
        eyes = {"eyes": (le, re_), "left_eye": (le,), "right_eye": (re_,)}[region]
        for eye in eyes:
            ellipses.append((eye + 0.08 * h * up_unit, 0.33 * d, 0.22 * d, eye_angle))
    elif region == "nose":
        nv = nose - eye_c
        ln = float(np.linalg.norm(nv))
        ang = math.degrees(math.atan2(nv[1], nv[0])) - 90.0 if ln > 1e-6 else face_angle
        ellipses.append((eye_c + 0.6 * nv, 0.28 * d, max(0.6 * ln, 0.1 * d), ang))
    elif region == "mouth":
        ellipses.append((mouth_c, 0.5 * float(np.linalg.norm(mr - ml)) + 0.15 * d, 0.3 * d, mouth_angle))
    else:  # lower_face
        ellipses.append((0.5 * (nose + mouth_c) + 0.25 * down, 0.95 * d, 0.75 * d, face_angle))

    shift = 4  # sub-pixel precision for cv2.ellipse (1/16 px)
    mask = np.zeros((h_px, w_px), np.float32)
    for centre, ax, ay, ang in ellipses:
        c = (int(round(centre[0] * (1 << shift))), int(round(centre[1] * (1 << shift))))
        axes = (max(1, int(round(ax * scale * (1 << shift)))), max(1, int(round(ay * scale * (1 << shift)))))
        cv2.ellipse(mask, c, axes, ang, 0, 360, 1.0, thickness=-1, lineType=cv2.LINE_AA, shift=shift)
    sigma = feather * d
    if sigma > 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
    mask = np.clip(mask, 0.0, 1.0).astype(np.float32)
    return 1.0 - mask if region == "outside_face" else mask


# ----------------------------------------------------------------------------------------------------- paste back


def match_color_lab(restored: np.ndarray, reference: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Shift/scale each LAB channel of ``restored`` to the weighted mean/std of ``reference``.

    Args:
        restored, reference: ``(S, S, 3)`` float32 RGB in [0, 1] of the same size.
        weight: optional ``(S, S)`` weights (e.g. the face-region mask) for the statistics.

    Returns:
        ``(S, S, 3)`` float32 RGB in [0, 1].
    """
    w = np.ones(restored.shape[:2], np.float64) if weight is None else np.asarray(weight, np.float64)
    if w.sum() < 1e-6:
        return restored
    lab_r = cv2.cvtColor(np.clip(restored, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB).astype(np.float64)
    lab_o = cv2.cvtColor(np.clip(reference, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB).astype(np.float64)
    wn = w / w.sum()
    out = np.empty_like(lab_r)
    for c in range(3):
        mr = float((lab_r[..., c] * wn).sum())
        mo = float((lab_o[..., c] * wn).sum())
        sr = math.sqrt(max(float(((lab_r[..., c] - mr) ** 2 * wn).sum()), 1e-8))
        so = math.sqrt(max(float(((lab_o[..., c] - mo) ** 2 * wn).sum()), 1e-8))
        gain = min(so / sr, 3.0) if sr > 1e-3 else 1.0
        out[..., c] = (lab_r[..., c] - mr) * gain + mo
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb, 0.0, 1.0)


def _restored_to_canvas(crop: FaceCrop, size: int, canvas_scale: float) -> np.ndarray:
    """``(2, 3)`` affine: pixel of a restored crop of ``size`` px -> canvas pixel (restored -> crop -> source ->
    canvas, all pixel-centre exact)."""
    return compose_affine(resize_affine(canvas_scale), compose_affine(crop.inverse, resize_affine(crop.size / size)))


def paste_box(
    crop: FaceCrop, size: int, canvas_scale: float, canvas_hw: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """The canvas pixels :func:`paste_back` may change for a restored crop of ``size`` px: ``(y0, y1, x0, x1)`` on a
    canvas of ``canvas_hw`` ``(H, W)``, or ``None`` when the face lies outside it. The one rule of :func:`paste_back`
    (which reads and writes only there) and of callers that paste into a window of the canvas."""
    m = _restored_to_canvas(crop, int(size), float(canvas_scale))
    corners = transform_points(m, np.array([[-1, -1], [size, -1], [-1, size], [size, size]], np.float64))
    hc, wc = int(canvas_hw[0]), int(canvas_hw[1])
    x0 = max(int(math.floor(corners[:, 0].min())) - 1, 0)
    y0 = max(int(math.floor(corners[:, 1].min())) - 1, 0)
    x1 = min(int(math.ceil(corners[:, 0].max())) + 2, wc)
    y1 = min(int(math.ceil(corners[:, 1].max())) + 2, hc)
    return None if x1 <= x0 or y1 <= y0 else (y0, y1, x0, x1)


def paste_back(
    canvas: np.ndarray,
    crop: FaceCrop,
    restored: np.ndarray,
    *,
    canvas_scale: float = 1.0,
    feather: float = 0.1,
    mask: np.ndarray | None = None,
    color_match: bool = False,
    keep_detail: bool = True,
    origin: tuple[int, int] = (0, 0),
    full_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Blend a restored aligned face back into the (upscaled) photo.

    A restored face that is magnified onto the canvas (the face covers more canvas pixels than the restored crop has,
    e.g. a 300 px face restored at 128) carries nothing above the crop's resolution, so a plain paste would put a soft
    face on a sharp photo. With ``keep_detail`` the pasted face is ``up(R) + g * (C - up(down(C)))``: the restored
    face ``R`` warped up, plus the canvas ``C``'s own detail above the crop's resolution (``C`` minus ``C`` taken down
    to the crop grid like :func:`align_face` does and warped up like ``R``), where ``R`` agrees with ``down(C)``
    (``g`` = 1 at no difference, 0 at :data:`DETAIL_AGREEMENT`; so scratches, noise or features the restorer removed
    or moved do not come back). A restorer that changes nothing changes no pixel; faces at or below the crop's
    resolution paste as before.

    Args:
        canvas: ``(H', W', 3)`` uint8/uint16/float image: the source photo of ``crop`` upscaled by ``canvas_scale``
            (``H' ~= H * canvas_scale``).
        crop: the :class:`FaceCrop` the restored face was made from.
        restored: ``(S', S', 3)`` restored face, any crop size (the affine is rescaled); uint8/uint16 or float [0, 1].
        canvas_scale: canvas pixels per source pixel.
        feather: width of the soft edge as a fraction of the crop size (see :func:`feather_mask`).
        mask: optional ``(S', S')`` float [0, 1] (or bool) restricting the pasted region, in restored-crop pixels.
        color_match: match the restored face's LAB mean/std to the original crop (weighted by the paste mask).
        keep_detail: keep the canvas's detail above the restored crop's resolution where the face is magnified (above).
        origin, full_size: ``canvas`` is the window of a larger canvas of ``full_size`` ``(H, W)`` whose top-left
            pixel is at ``origin`` ``(y, x)``; the window must hold the face's :func:`paste_box` on that canvas, and
            its pixels then come out exactly as pasting into the whole canvas makes them.

    Returns:
        A new array like ``canvas`` (same shape and dtype) with the face blended in.
    """
    _check_image(canvas, "canvas")
    _check_image(restored, "restored")
    if restored.shape[0] != restored.shape[1]:
        raise InputError(f"restored face must be square, got {restored.shape[1]}x{restored.shape[0]}")
    if canvas_scale <= 0:
        raise InputError(f"canvas_scale must be positive, got {canvas_scale}")
    sr = int(restored.shape[0])
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != (sr, sr):
            raise InputError(f"mask must have shape {(sr, sr)} (the restored crop), got {mask.shape}")
    m_r2c = _restored_to_canvas(crop, sr, canvas_scale)

    alpha = feather_mask(sr, feather)
    if mask is not None:
        alpha = alpha * np.clip(mask, 0.0, 1.0)
    face = to_float(restored)
    if color_match:
        ref = to_float(crop.image)
        if ref.shape[0] != sr:
            interp = cv2.INTER_AREA if ref.shape[0] > sr else cv2.INTER_CUBIC
            ref = cv2.resize(ref, (sr, sr), interpolation=interp)
        lm_r = (crop.crop_landmarks + 0.5) * (sr / crop.size) - 0.5
        face = match_color_lab(face, ref, weight=face_region_mask(sr, lm_r, "face"))

    # Only warp into the canvas region the crop covers.
    oy, ox = int(origin[0]), int(origin[1])
    full = canvas.shape[:2] if full_size is None else (int(full_size[0]), int(full_size[1]))
    box = paste_box(crop, sr, canvas_scale, full)
    out = canvas.copy()
    if box is None:
        logger.debug("face lies outside the canvas; nothing pasted")
        return out
    y0, y1, x0, x1 = box
    if y0 < oy or x0 < ox or y1 > oy + canvas.shape[0] or x1 > ox + canvas.shape[1]:
        raise InputError(f"the canvas window at {origin} of {canvas.shape[1]}x{canvas.shape[0]} does not hold the "
                         f"face's paste box {box}")  # fmt: skip
    m_roi = m_r2c.copy()
    m_roi[:, 2] -= (x0, y0)
    # Downscaling by a large factor (restored much bigger than the face on the canvas) aliases with a plain warp:
    # pre-shrink the restored face with area interpolation first.
    scale = math.sqrt(abs(np.linalg.det(m_roi[:, :2])))
    if scale < 0.5:
        small = max(8, int(round(sr * scale * 2)))
        f = small / sr
        face = cv2.resize(face, (small, small), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (small, small), interpolation=cv2.INTER_AREA)
        m_roi = compose_affine(m_roi, resize_affine(1.0 / f))
    size_roi = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(face, m_roi, size_roi, flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    walpha = cv2.warpAffine(alpha, m_roi, size_roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    walpha = np.clip(walpha, 0.0, 1.0)[..., None]
    roi = to_float(canvas[y0 - oy : y1 - oy, x0 - ox : x1 - ox])
    if keep_detail and scale > 1.0:
        warped = warped + _canvas_detail(roi, face, m_roi, scale)
    blended = roi * (1.0 - walpha) + np.clip(warped, 0.0, 1.0) * walpha
    if canvas.dtype.kind == "f":
        # keep untouched pixels bit-exact for float canvases
        blended = np.where(walpha > 0, blended, roi)
    out[y0 - oy : y1 - oy, x0 - ox : x1 - ox] = from_float(blended, canvas.dtype)
    return out


def _canvas_detail(roi: np.ndarray, face: np.ndarray, m_roi: np.ndarray, scale: float) -> np.ndarray:
    """The canvas's own detail above the restored crop's resolution, where the restored face agrees with the canvas.

    Args:
        roi: ``(h, w, 3)`` float canvas region.
        face: ``(S, S, 3)`` float restored face.
        m_roi: ``(2, 3)`` restored-crop pixel -> ``roi`` pixel.
        scale: its magnification ``sqrt(det)`` (> 1).

    Returns:
        ``(h, w, 3)`` float32 ``g * (roi - up(down(roi)))`` (see :func:`paste_back`).
    """
    sr = int(face.shape[0])
    size_roi = (roi.shape[1], roi.shape[0])
    k = min(max(math.ceil(scale - 1e-9), 1), MAX_SUPERSAMPLE)
    # down: the canvas on the restored grid, warped at k x and area-downscaled (the align_face recipe)
    m_down = compose_affine(resize_affine(k), invert_affine(m_roi))
    big = cv2.warpAffine(roi, m_down, (sr * k, sr * k), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    down = cv2.resize(big, (sr, sr), interpolation=cv2.INTER_AREA) if k > 1 else big
    low = cv2.warpAffine(down, m_roi, size_roi, flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    diff = cv2.GaussianBlur(np.abs(face - down).max(axis=2), (0, 0), DETAIL_SMOOTH)
    agree = np.clip(1.0 - diff / DETAIL_AGREEMENT, 0.0, 1.0).astype(np.float32)
    gate = cv2.warpAffine(agree, m_roi, size_roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return (np.clip(gate, 0.0, 1.0)[..., None] * (roi - low)).astype(np.float32)


def turn_points(pts: np.ndarray, turn: int, shape: tuple[int, int]) -> np.ndarray:
    """Points ``(N, 2)`` ``(x, y)`` (pixel centres, 0-based) of ``np.rot90(img, turn)`` in ``img`` of ``shape``
    ``(H, W)``; exact (the pixel grid maps onto itself). The other way, points of ``img`` in ``np.rot90(img, turn)``
    of shape ``(H', W')``: ``turn_points(pts, -turn, (H', W'))``."""
    h, w = int(shape[0]), int(shape[1])
    pts = np.asarray(pts, np.float64)
    x, y = pts[:, 0], pts[:, 1]
    k = int(turn) % 4
    if k == 1:
        return np.stack([w - 1 - y, x], 1)
    if k == 2:
        return np.stack([w - 1 - x, h - 1 - y], 1)
    if k == 3:
        return np.stack([y, h - 1 - x], 1)
    return pts.copy()
