"""facenet-pytorch ``InceptionResnetV1`` (VGGFace2, 512-d) as the second identity backend, same API as dlib's.

Weights: the torch-hub checkpoint ``20180402-114759-vggface2.pt`` that ``InceptionResnetV1(pretrained="vggface2")``
downloads (``frgd.weights`` id ``facenet-vggface2``). We never let facenet-pytorch download: the network is built with
``pretrained=None`` and the file is loaded with ``torch.load(weights_only=True)``; the 8631-way ``logits`` layer is
dropped. Missing file -> :class:`frgd.errors.MissingWeightsError` with the URL and the expected path.

Alignment: facenet was trained on MTCNN *bounding-box* crops (facenet-pytorch ``extract_face``: the box, margin 0,
area-resized to 160x160, not landmark-aligned), normalised with ``fixed_image_standardization``
(``(255 x - 127.5) / 128``). Our crop mapping is the mean facenet-pytorch MTCNN box of faces128 crops, measured
(:data:`FFHQ_MTCNN_BOX_512`, see ``docs/identity.md``), expressed in the 512 template frame: chip pixel ``c`` maps to
``x1 - 0.5 + (c + 0.5) (x2 - x1) / 160`` (and likewise in ``y``), a fixed (slightly anisotropic) affine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingWeightsError
from .encoder import IdentityEncoder

logger = logging.getLogger(__name__)

FACENET_WEIGHTS_ID = "facenet-vggface2"
FACENET_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
FACENET_CHIP = 160

FFHQ_MTCNN_BOX_512 = np.array([0.0, 0.0, 0.0, 0.0])
"""Mean facenet-pytorch MTCNN box ``(x1, y1, x2, y2)`` of faces128 crops in the 512 template frame (measured)."""


def mtcnn_box_chip_to_template(box: np.ndarray = FFHQ_MTCNN_BOX_512, size: int = FACENET_CHIP) -> np.ndarray:
    """``(2, 3)`` facenet chip pixel -> 512 template frame for the MTCNN ``box`` (``extract_face`` geometry)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    sx, sy = (x2 - x1) / size, (y2 - y1) / size
    return np.array([[sx, 0.0, x1 - 0.5 + 0.5 * sx], [0.0, sy, y1 - 0.5 + 0.5 * sy]], dtype=np.float64)


def facenet_weights_file() -> Path:
    """The VGGFace2 checkpoint path (``frgd.weights`` entry ``facenet-vggface2``); raises if it is not on disk."""
    try:
        from ..weights import weights_path
    except ImportError:
        weights_path = None
    if weights_path is not None:
        return Path(weights_path(FACENET_WEIGHTS_ID))
    p = Path(torch.hub.get_dir()) / "checkpoints" / Path(FACENET_URL).name
    if not p.is_file():
        raise MissingWeightsError(
            f"facenet VGGFace2 weights not found at {p}; download {FACENET_URL} to that path "
            f"(or run: frgd weights import {FACENET_WEIGHTS_ID} FILE)"
        )
    return p


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
        p = Path(path) if path is not None else facenet_weights_file()
        if not p.is_file():
            raise MissingWeightsError(f"facenet weights not found at {p}; download {FACENET_URL}")
        sd = torch.load(p, map_location="cpu", weights_only=True)
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
