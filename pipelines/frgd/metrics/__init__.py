"""Image-quality metrics: MATLAB-compatible ``imresize``, PSNR/SSIM on Y with shave, no-reference NIQE, and the
fine-detail energy relative to the ground truth (``detail``), and the seam of a masked edit (``seams``).

Note: ``frgd.metrics.niqe`` is the function; its module is ``frgd.metrics.niqe`` in ``sys.modules``
(import helpers from it with ``from frgd.metrics.niqe import niqe_features``).
"""

from .detail import DETAIL_BAND, detail_ratio, detail_score
from .imresize import imresize, imresize_torch, modcrop
from .niqe import niqe
from .psnr_ssim import psnr, psnr_y, rgb2ycbcr_y, ssim, ssim_y, to_y
from .seams import seam_excess

__all__ = [
    "imresize",
    "imresize_torch",
    "modcrop",
    "psnr",
    "psnr_y",
    "rgb2ycbcr_y",
    "ssim",
    "ssim_y",
    "to_y",
    "niqe",
    "DETAIL_BAND",
    "detail_ratio",
    "detail_score",
    "seam_excess",
]
