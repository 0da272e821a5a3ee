"""Differentiable face-chip extraction: dlib's ``get_face_chip`` geometry (and other networks' crops) as fixed affines.

Every chip is a ``(2, 3)`` affine ``M`` mapping **chip pixel -> source pixel** (pixel centres at integer coordinates,
OpenCV/dlib convention) applied with :func:`warp_chips` (``F.grid_sample``, bilinear), so gradients flow to the pixels.

dlib geometry (measured against dlib-bin 20.0, see ``docs/identity.md``): for 5-point landmarks ``lm`` in dlib's
5-point order, ``get_face_chip_details(det, size, padding)`` fits the least-squares similarity ``T`` mapping the chip
template ``size * (padding + DLIB_5PT_TEMPLATE) / (1 + 2 * padding)`` onto ``lm``, and ``extract_image_chip`` samples
the rectangle of width ``size * scale(T)`` (dlib: ``right - left = size * scale - 1``) centred at ``T(size/2, size/2)``
and rotated by ``angle(T)``, so chip pixel ``p`` maps to ``T(size/2) + R (p - (size-1)/2) (size*scale - 1)/(size-1)``.
:func:`dlib_chip_affine` reproduces that to float precision (residual 0 on dlib's own ``chip_details``).

Landmark conventions: dlib's 5-point shape predictor returns **eye corners and the nose base**: 0/1 = outer/inner
corner of the eye on the image's right, 2/3 = outer/inner corner of the eye on the image's left, 4 = bottom of the
nose. MTCNN (our :data:`frgd.faces.align.TEMPLATE_512` order) returns eye centres, nose tip and mouth corners. There is
no exact conversion between the two, so the mapping from our aligned crops to dlib's chip is **measured**:
:data:`FFHQ_DLIB_LANDMARKS_512` are the mean dlib 5-point landmarks of 592 faces128 *train* crops (dlib HOG detector +
``shape_predictor_5_face_landmarks`` on 4x bicubic upscales, mapped back to the crop), expressed in the 512 template
frame. :func:`crop_to_dlib_chip_affine` is dlib's chip geometry for those landmarks, a fixed affine per crop size
(computed in the crop's own pixels: dlib's ``size * scale - 1`` term makes its geometry slightly scale-dependent).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

DLIB_5PT_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)
"""dlib's mean face for 5-point shapes (``get_face_chip_details``), normalised to the unpadded chip ``[0, 1]^2``."""

DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25

FFHQ_CROP_MEASURED_SIZE = 128
FFHQ_DLIB_LANDMARKS_128 = np.array(
    [[83.747, 59.815], [71.864, 60.381], [42.217, 60.096], [54.022, 60.512], [62.911, 82.881]], dtype=np.float64
)
"""Mean dlib 5-point landmarks (dlib order) in faces128 crops, crop pixel coordinates; std 1.2-2.3 px per coordinate.

Measured on 592 of 600 random faces128 train crops (8 had no HOG detection), procedure in ``docs/identity.md``;
``frgd eval identity`` re-measures it on val (``dlib_native_pipeline.landmarks_mean_128``: within 0.3 px).
"""

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
"""The standard ArcFace 112x112 five-point template (MTCNN order: eyes, nose tip, mouth corners)."""


def _ffhq_template_512() -> np.ndarray:
    from ..faces.align import TEMPLATE_512

    return np.asarray(TEMPLATE_512, dtype=np.float64)


def crop_offset(size: int) -> float:
    """Pixel offset of template points in an aligned crop of ``size``: ``x_crop = u * size / 512 + offset``.

    Our crops are warped at ``k * size`` onto ``template(k * size)`` and area-downscaled by ``k``
    (:func:`frgd.faces.align.align_face`, faces128), which moves every point by ``0.5 / k - 0.5``;
    ``k = max(1, ceil(512 / size))`` is the minimum supersampling (4 for 128, as faces128).
    """
    k = max(1, math.ceil(512 / size - 1e-9))
    return 0.5 / k - 0.5


def template_frame_to_crop(size: int) -> np.ndarray:
    """``(2, 3)`` affine from the 512 template frame ``u`` to crop pixels of a ``size`` crop."""
    s = size / 512.0
    off = crop_offset(size)
    return np.array([[s, 0.0, off], [0.0, s, off]], dtype=np.float64)


FFHQ_DLIB_LANDMARKS_512 = (FFHQ_DLIB_LANDMARKS_128 - crop_offset(FFHQ_CROP_MEASURED_SIZE)) * (
    512.0 / FFHQ_CROP_MEASURED_SIZE
)
"""The measured dlib landmarks in the 512 template frame (see :func:`crop_offset`)."""


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) ``(2, 3)`` mapping ``src`` ``(N,2)`` onto ``dst``."""
    from ..faces.align import estimate_similarity

    return estimate_similarity(np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64), method="lstsq")


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine applying ``b`` first, then ``a``."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


def dlib_chip_affine(
    landmarks: np.ndarray, size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING
) -> np.ndarray:
    """dlib ``get_face_chip(img, det, size, padding)`` geometry: ``(2, 3)`` chip pixel -> image pixel.

    ``landmarks``: ``(5, 2)`` in dlib's 5-point order (eye corners, nose base; see module docstring).
    """
    chip_pts = size * (padding + DLIB_5PT_TEMPLATE) / (1.0 + 2.0 * padding)
    t = similarity_lstsq(chip_pts, np.asarray(landmarks, dtype=np.float64))
    scale = math.hypot(t[0, 0], t[1, 0])
    rot = t[:, :2] / scale
    centre = t[:, :2] @ np.array([size / 2.0, size / 2.0]) + t[:, 2]
    step = (size * scale - 1.0) / (size - 1.0)
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = rot * step
    m[:, 2] = centre - m[:, :2] @ np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    return m


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(N, 2)`` points mapped by a ``(2, 3)`` affine."""
    return points @ affine[:, :2].T + affine[:, 2]


def dlib_chip_affine_in(
    frame_to_image: np.ndarray, size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING
) -> np.ndarray:
    """``(2, 3)`` dlib-chip pixel -> image pixel for a face whose 512 template frame maps to the image by
    ``frame_to_image``: dlib's geometry applied in the target image (its ``size*scale - 1`` term is not
    scale-invariant, so it cannot be composed in the template frame)."""
    return dlib_chip_affine(_apply(frame_to_image, FFHQ_DLIB_LANDMARKS_512), size, padding)


def crop_to_dlib_chip_affine(crop_size: int, size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING):
    """Fixed ``(2, 3)`` dlib-chip pixel -> crop pixel affine for our aligned crops of ``crop_size``."""
    return dlib_chip_affine_in(template_frame_to_crop(crop_size), size, padding)


def landmarks_to_template_frame(landmarks: np.ndarray) -> np.ndarray:
    """``(2, 3)`` 512 template frame -> image pixel for a face with ``landmarks`` (``(5,2)``, MTCNN order).

    The inverse of the LMEDS similarity fit of ``landmarks`` onto the template, exactly as
    :func:`frgd.faces.align.align_face` fits it by default, so the landmarks must be what ``align_face`` takes
    (``DetectedFace.landmarks``).
    """
    from ..faces.align import estimate_similarity

    m = estimate_similarity(np.asarray(landmarks, dtype=np.float64), _ffhq_template_512(), method="lmeds")
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]


def crop_to_arcface_affine(crop_size: int, out_size: int = 112) -> np.ndarray:
    """``(2, 3)`` ArcFace-112 pixel -> our crop pixel: the similarity between the two five-point templates."""
    tpl = _apply(template_frame_to_crop(crop_size), _ffhq_template_512())
    return similarity_lstsq(ARCFACE_112 * (out_size / 112.0), tpl)


def warp_chips(
    images: torch.Tensor,
    affines: torch.Tensor | np.ndarray,
    size: int | tuple[int, int],
    padding_mode: str = "reflection",
    antialias: bool = True,
) -> torch.Tensor:
    """Sample chips: ``images`` ``(B,C,H,W)``, ``affines`` ``(2,3)`` or ``(B,2,3)`` chip px -> image px.

    Returns ``(B, C, h, w)`` (``size`` int or ``(h, w)``), bilinear, differentiable w.r.t. ``images`` (and the affines
    when they are tensors that require grad). When a chip pixel covers more than ~1.5 source pixels the image is first
    downscaled with an antialiased bilinear resize (like dlib's pyramid), so large crops do not alias.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    h, w = (size, size) if isinstance(size, int) else size
    b, _, ih, iw = images.shape
    dev = images.device
    a = torch.as_tensor(affines, dtype=torch.float32, device=dev)
    if a.ndim == 2:
        a = a.unsqueeze(0).expand(b, 2, 3)
    if a.shape != (b, 2, 3):
        raise ValueError(f"affines must be (2, 3) or ({b}, 2, 3), got {tuple(a.shape)}")
    x = images.float()
    if antialias:
        scale = float(torch.linalg.det(a[:, :, :2].detach()).abs().sqrt().min())
        if scale > 1.5:
            nh, nw = max(1, round(ih / scale)), max(1, round(iw / scale))
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
            sy, sx = nh / ih, nw / iw
            res = torch.tensor([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]], device=dev)
            a = torch.cat([res[:, :2] @ a[:, :, :2], (res[:, :2] @ a[:, :, 2:]) + res[:, 2:]], dim=2)
            ih, iw = nh, nw
    ys, xs = torch.meshgrid(
        torch.arange(h, device=dev, dtype=torch.float32),
        torch.arange(w, device=dev, dtype=torch.float32),
        indexing="ij",
    )
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)  # (1, h*w, 3)
    src = pts @ a.transpose(1, 2)  # (B, h*w, 2) in source pixels
    grid = torch.stack([(2.0 * src[..., 0] + 1.0) / iw - 1.0, (2.0 * src[..., 1] + 1.0) / ih - 1.0], dim=-1)
    out = F.grid_sample(x, grid.reshape(b, h, w, 2), mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.to(images.dtype) if images.dtype in (torch.float16, torch.bfloat16, torch.float64) else out
