"""facenet-pytorch ``InceptionResnetV1`` (VGGFace2, 512-d) as the second identity backend, same API as dlib's.

Weights: the torch-hub checkpoint ``20180402-114759-vggface2.pt`` that ``InceptionResnetV1(pretrained="vggface2")``
downloads (``frgd.weights`` id ``facenet-vggface2``). We never let facenet-pytorch download: the network is built with
``pretrained=None`` and the file is loaded with ``frgd.weights.load_state_dict`` (``torch.load(weights_only=True)``);
the 8631-way ``logits`` layer is dropped. Missing file -> :class:`frgd.errors.MissingWeightsError` with the URL and
the expected path.

Alignment: facenet was trained on MTCNN *bounding-box* crops (facenet-pytorch ``extract_face``: the box, margin 0,
area-resized to 160x160, not landmark-aligned), normalised with ``fixed_image_standardization``
(``(255 x - 127.5) / 128``). Our crop mapping is the mean facenet-pytorch MTCNN box of faces128 crops, measured
(:data:`FFHQ_MTCNN_BOX_512`, see ``docs/identity.md``), expressed in the 512 template frame: chip pixel ``c`` maps to
``x1 - 0.5 + (c + 0.5) (x2 - x1) / 160`` (and likewise in ``y``), a fixed (slightly anisotropic) affine.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingWeightsError
from .encoder import IdentityEncoder

logger = logging.getLogger(__name__)

FACENET_WEIGHTS_ID = "facenet-vggface2"
FACENET_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
FACENET_CHIP = 160

FFHQ_MTCNN_BOX_512 = np.array([118.97, 97.25, 386.58, 457.04])
"""Mean facenet-pytorch MTCNN box ``(x1, y1, x2, y2)`` of faces128 crops in the 512 template frame (measured).

facenet-pytorch ``MTCNN.detect`` on 4x bicubic upscales of 300 random faces128 *train* crops (an upscale's pixel
coordinates equal the 512 template frame exactly); mean of the 234 boxes within 40 px of the per-coordinate median
(the rest were partial detections on the reflected borders); per-coordinate std 10-18 px. Box 267.6 x 359.8: MTCNN
boxes are taller than wide, so the 160x160 chip is stretched horizontally by 1.34, as in facenet's own training crops.
"""


def mtcnn_box_chip_to_template(box: np.ndarray = FFHQ_MTCNN_BOX_512, size: int = FACENET_CHIP) -> np.ndarray:
    """``(2, 3)`` facenet chip pixel -> 512 template frame for the MTCNN ``box`` (``extract_face`` geometry)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    sx, sy = (x2 - x1) / size, (y2 - y1) / size
    return np.array([[sx, 0.0, x1 - 0.5 + 0.5 * sx], [0.0, sy, y1 - 0.5 + 0.5 * sy]], dtype=np.float64)


def facenet_weights_file() -> Path:
    """The VGGFace2 checkpoint (``frgd.weights`` entry ``facenet-vggface2``, which also searches the torch-hub cache).

    facenet-pytorch itself caches the file in ``$TORCH_HOME/checkpoints`` (not ``hub/checkpoints``); that folder is
    searched too. Raises :class:`frgd.errors.MissingWeightsError` with the URL and the expected path.
    """
    from ..weights import weights_path

    try:
        return Path(weights_path(FACENET_WEIGHTS_ID))
    except MissingWeightsError:
        own = _facenet_pytorch_cache() / Path(FACENET_URL).name
        if own.is_file():
            return own
        raise


def _facenet_pytorch_cache() -> Path:
    """facenet-pytorch's download folder: ``$TORCH_HOME`` (default ``$XDG_CACHE_HOME/torch``) ``/checkpoints``."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "checkpoints"


class FacenetIdentityEncoder(IdentityEncoder):
    """InceptionResnetV1 VGGFace2 (512-d unit embeddings) on 160x160 MTCNN-box chips."""

    backend = "facenet"

    def __init__(self, net: torch.nn.Module, padding_mode: str = "reflection") -> None:
        super().__init__(
            net,
            embedding_dim=512,
            chip_size=FACENET_CHIP,
            chip_to_template=mtcnn_box_chip_to_template(),
            padding_mode=padding_mode,
        )

    def features(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips * 255.0 - 127.5) / 128.0  # fixed_image_standardization
        return self.net(x)

    @staticmethod
    def _build() -> torch.nn.Module:
        from facenet_pytorch import InceptionResnetV1

        return InceptionResnetV1(pretrained=None, classify=False)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> FacenetIdentityEncoder:
        """Load the VGGFace2 checkpoint (``path`` or :func:`facenet_weights_file`)."""
        from ..weights import load_state_dict

        p = Path(path) if path is not None else facenet_weights_file()
        sd = load_state_dict(p)
        sd = {k: v for k, v in sd.items() if not k.startswith("logits.")}
        net = cls._build()
        net.load_state_dict(sd, strict=True)
        return cls(net)

    @classmethod
    def tiny_random(cls, seed: int = 0) -> FacenetIdentityEncoder:
        """The facenet architecture with seeded random weights (no tiny variant exists; ~23M parameters)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = cls._build()
        return cls(net)
