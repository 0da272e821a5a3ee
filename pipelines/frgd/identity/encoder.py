"""Identity encoders: a frozen face-recognition network behind one differentiable API.

:class:`IdentityEncoder` takes our aligned crops (FFHQ-style template, :func:`frgd.faces.align.template`, any square
size), cuts the backend's own face chip with a fixed affine (:mod:`frgd.identity.chips`, ``F.grid_sample``) and returns
unit embeddings. Gradients flow to the pixels; the network's parameters are frozen (``requires_grad=False``) and it
always runs in eval mode. Backends:

* ``"dlib"`` (:class:`DlibIdentityEncoder`): PyTorch port of dlib's ``dlib_face_recognition_resnet_model_v1``
  (128-d; 150x150 chips with padding 0.25; raw descriptors via :meth:`DlibIdentityEncoder.descriptor`, where dlib
  calls a pair the same person below Euclidean distance 0.6).
* ``"facenet"`` (:class:`frgd.identity.facenet.FacenetIdentityEncoder`): facenet-pytorch InceptionResnetV1 VGGFace2
  (512-d; 160x160 MTCNN-box crops).

bf16: run ``embed`` under ``torch.autocast``; chip sampling always runs in float32, embeddings are returned float32.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..archs.dlib_resnet_arch import Affine, DlibFaceResNet, DlibResNetConfig
from ..errors import InputError
from . import chips as C

logger = logging.getLogger(__name__)

BACKENDS = ("dlib", "facenet")
DLIB_WEIGHTS_ID = "dlib-resnet-v1"
DLIB_SAME_PERSON_THRESHOLD = 0.6
"""dlib's decision threshold on the Euclidean distance of raw descriptors."""


def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``(B,)`` of ``a`` ``(B, D)`` with ``b`` ``(B, D)`` or ``(D,)`` (inputs need not be unit)."""
    if a.ndim != 2:
        raise InputError(f"similarity: a must be (B, D), got {tuple(a.shape)}")
    if b.ndim == 1:
        b = b.unsqueeze(0)
    if b.ndim != 2 or b.shape[-1] != a.shape[-1] or b.shape[0] not in (1, a.shape[0]):
        raise InputError(f"similarity: b must be (D,) or (B, D) matching a {tuple(a.shape)}, got {tuple(b.shape)}")
    a = F.normalize(a.float(), dim=1)
    b = F.normalize(b.float().to(a.device), dim=1)
    return (a * b).sum(dim=1)


class IdentityEncoder(nn.Module):
    """Base class: ``embed(images (B,3,S,S) in [0,1], aligned on our template) -> (B, D)`` unit vectors.

    Subclasses set ``backend``, ``embedding_dim``, ``chip_size``, ``chip_to_template`` (``(2, 3)`` chip pixel -> 512
    template frame) and implement :meth:`features` on ``(B, 3, chip, chip)`` chips in ``[0, 1]``.
    """

    backend: str = ""
    input_template: str = "ffhq"
    _backends: ClassVar[dict[str, type[IdentityEncoder]]] = {}
    """Each subclass that declares a ``backend``, by that name (filled by :meth:`__init_subclass__`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "backend" in cls.__dict__:
            IdentityEncoder._backends[cls.backend] = cls

    def __init__(
        self,
        net: nn.Module,
        *,
        embedding_dim: int,
        chip_size: int,
        chip_to_template: np.ndarray,
        padding_mode: str = "reflection",
    ) -> None:
        super().__init__()
        self.net = net
        self.embedding_dim = int(embedding_dim)
        self.chip_size = int(chip_size)
        self.chip_to_template = np.asarray(chip_to_template, dtype=np.float64)
        self.padding_mode = padding_mode
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    # -- module behaviour -------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> IdentityEncoder:
        """The encoder is frozen: always stays in eval mode (batch norm / dropout off)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(iter(self.net.parameters())).device

    # -- geometry -----------------------------------------------------------------------------------------------
    def chip_affine(self, crop_size: int) -> np.ndarray:
        """``(2, 3)`` chip pixel -> crop pixel for our aligned crops of ``crop_size``."""
        return self.chip_affine_in(C.template_frame_to_crop(int(crop_size)))

    def chip_affine_in(self, frame_to_image: np.ndarray) -> np.ndarray:
        """``(2, 3)`` chip pixel -> image pixel, given the 512 template frame -> image pixel affine of a face."""
        return C.compose(frame_to_image, self.chip_to_template)

    def chips(self, images: torch.Tensor) -> torch.Tensor:
        """``(B,3,S,S)`` aligned crops in ``[0,1]`` -> ``(B,3,chip,chip)`` float32 backend chips (differentiable)."""
        self._check_images(images)
        with torch.autocast(device_type=images.device.type, enabled=False):
            return C.warp_chips(
                images.float(), self.chip_affine(images.shape[-1]), self.chip_size, padding_mode=self.padding_mode
            )

    def image_chips(self, image: torch.Tensor, landmarks, landmark_format: str = "mtcnn") -> torch.Tensor:
        """Chips from unaligned ``image`` ``(B,3,H,W)``/``(3,H,W)`` and ``(B,5,2)``/``(5,2)`` landmarks (pixels).

        One image with ``(N,5,2)`` landmarks gives the chips of its ``N`` faces.

        ``landmark_format="mtcnn"`` (our order: eye centres, nose tip, mouth corners; the values that
        :func:`frgd.faces.align.align_face` takes, i.e. ``DetectedFace.landmarks``) maps through our template;
        ``"dlib"`` (dlib's 5-point predictor order) is only meaningful for the dlib backend (exact dlib chip).
        """
        if image.ndim == 3:
            image = image.unsqueeze(0)
        if image.ndim != 4 or image.shape[1] != 3 or not image.is_floating_point():
            raise InputError(f"image must be float (B, 3, H, W) or (3, H, W) in [0, 1], got {tuple(image.shape)}")
        lm = np.asarray(landmarks.detach().cpu() if isinstance(landmarks, torch.Tensor) else landmarks, np.float64)
        if lm.ndim == 2:
            lm = lm[None]
        if image.shape[0] == 1 and lm.ndim == 3 and lm.shape[0] > 1:  # several faces of one photo
            image = image.expand(lm.shape[0], -1, -1, -1)
        if lm.shape != (image.shape[0], 5, 2):
            raise InputError(f"landmarks must be ({image.shape[0]}, 5, 2) or (5, 2), got {lm.shape}")
        if landmark_format == "mtcnn":
            aff = np.stack([self.chip_affine_in(C.landmarks_to_template_frame(p)) for p in lm])
        elif landmark_format == "dlib":
            aff = np.stack([self._dlib_landmark_affine(p) for p in lm])
        else:
            raise InputError(f"unknown landmark_format {landmark_format!r}; use 'mtcnn' or 'dlib'")
        with torch.autocast(device_type=image.device.type, enabled=False):
            return C.warp_chips(image.float(), aff, self.chip_size, padding_mode=self.padding_mode)

    def _dlib_landmark_affine(self, lm: np.ndarray) -> np.ndarray:
        raise InputError(f"landmark_format='dlib' is not supported by the {self.backend} backend")

    # -- embeddings ---------------------------------------------------------------------------------------------
    def features(self, chips: torch.Tensor) -> torch.Tensor:
        """Raw network output ``(B, D)`` for ``(B, 3, chip, chip)`` chips in ``[0, 1]``."""
        raise NotImplementedError

    def embed_chips(self, chips: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``(B, D)`` float32 of backend chips."""
        return F.normalize(self.features(chips).float(), dim=1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``(B, D)`` float32 of aligned crops ``(B, 3, S, S)`` in ``[0, 1]`` (any ``S``)."""
        return self.embed_chips(self.chips(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)

    def embed_image(self, image: torch.Tensor, landmarks, landmark_format: str = "mtcnn") -> torch.Tensor:
        """Unit embeddings of unaligned ``image`` given five landmarks per image (see :meth:`image_chips`)."""
        return self.embed_chips(self.image_chips(image, landmarks, landmark_format))

    @staticmethod
    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarity, see :func:`frgd.identity.encoder.similarity`."""
        return similarity(a, b)

    def _check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InputError(f"images must be a (B, 3, S, S) tensor, got {shape}")
        if not images.is_floating_point():
            raise InputError(f"images must be float in [0, 1], got {images.dtype}")
        if images.shape[-1] != images.shape[-2]:
            raise InputError(f"aligned crops must be square, got {tuple(images.shape[-2:])}")
        if images.shape[-1] < 16:
            raise InputError(f"aligned crops must be at least 16 px, got {images.shape[-1]}")

    # -- constructors -------------------------------------------------------------------------------------------
    @staticmethod
    def backend_class(backend: str) -> type[IdentityEncoder]:
        """The encoder class of ``backend`` (``"dlib"``, ``"facenet"``); :class:`InputError` for an unknown one.

        The ``facenet`` class registers when :mod:`frgd.identity.facenet` is imported, which :mod:`frgd.identity`
        does, so both are always known.
        """
        cls = IdentityEncoder._backends.get(backend)
        if cls is None:
            raise InputError(f"unknown identity backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        return cls

    @staticmethod
    def tiny_random(seed: int = 0, backend: str = "dlib") -> IdentityEncoder:
        """A tiny random-weights encoder with the real API (same geometry and ``embedding_dim``) for fast tests."""
        return IdentityEncoder.backend_class(backend).tiny_random(seed)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> IdentityEncoder:
        """The pretrained network of this backend (``path`` or its installed weights file)."""
        raise NotImplementedError


TINY_DLIB_CONFIG = DlibResNetConfig(
    stem_channels=4, stages=[(4, 1, False), (8, 1, True), (8, 1, True), (16, 1, True), (16, 1, True)]
)


class DlibIdentityEncoder(IdentityEncoder):
    """dlib metric ResNet port (128-d). :meth:`descriptor` gives dlib's raw (non-unit) descriptors."""

    backend = "dlib"

    def __init__(self, net: DlibFaceResNet, padding_mode: str = "reflection") -> None:
        size = net.config.input_size
        chip_to_template = C.dlib_chip_affine(C.FFHQ_DLIB_LANDMARKS_512, size, C.DLIB_CHIP_PADDING)
        super().__init__(
            net,
            embedding_dim=net.config.embedding_dim,
            chip_size=size,
            chip_to_template=chip_to_template,
            padding_mode=padding_mode,
        )

    def features(self, chips: torch.Tensor) -> torch.Tensor:
        return self.net(chips)

    def chip_affine_in(self, frame_to_image: np.ndarray) -> np.ndarray:
        """dlib's geometry applied in the target image (its ``size*scale - 1`` term is not scale-invariant)."""
        return C.dlib_chip_affine_in(frame_to_image, self.chip_size, C.DLIB_CHIP_PADDING)

    def descriptor(self, images: torch.Tensor) -> torch.Tensor:
        """dlib's raw 128-d descriptors ``(B, 128)`` float32 of aligned crops (same person if distance < 0.6)."""
        return self.features(self.chips(images)).float()

    def _dlib_landmark_affine(self, lm: np.ndarray) -> np.ndarray:
        return C.dlib_chip_affine(lm, self.chip_size, C.DLIB_CHIP_PADDING)

    @classmethod
    def from_dat(cls, path: str | Path) -> DlibIdentityEncoder:
        """Load dlib's ``.dat`` network file with :mod:`frgd.identity.dlib_format` (dlib itself is not needed)."""
        from .dlib_format import metric_resnet_state_dict, read_dlib_net

        cfg, sd = metric_resnet_state_dict(read_dlib_net(path))
        net = DlibFaceResNet(DlibResNetConfig.from_dict(cfg))
        net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
        return cls(net)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> DlibIdentityEncoder:
        """dlib's network from ``path`` or the installed ``dlib-resnet-v1`` file (:func:`dlib_weights_file`)."""
        return cls.from_dat(path if path is not None else dlib_weights_file())

    @classmethod
    def tiny_random(cls, seed: int = 0) -> DlibIdentityEncoder:
        """Tiny random dlib-layout network (4-16 channels, 128-d, 150 chips), deterministic for ``seed``.

        A random ReLU network maps every input close to one mean feature direction, so the fc weights are projected
        orthogonally to the mean pooled feature of 16 seeded smooth probe images: different smooth images then get
        clearly different embeddings (cosine spread over [-1, 1]) and identity-guidance tests are meaningful.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = DlibFaceResNet(TINY_DLIB_CONFIG)
            for m in net.modules():  # non-trivial affines so every layer matters
                if isinstance(m, Affine):
                    nn.init.uniform_(m.weight, 0.5, 1.5)
                    nn.init.uniform_(m.bias, -0.1, 0.1)
            probe = torch.rand(16, 3, 8, 8)
        probe = F.interpolate(probe, size=net.config.input_size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            u = F.normalize(net.forward_features(probe).mean(0), dim=0)
            net.fc.weight.sub_(net.fc.weight @ u[:, None] @ u[None, :])
        return cls(net)


def dlib_weights_file() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` (``frgd.weights`` id ``dlib-resnet-v1``, a file of the
    face-recognition-models package); raises :class:`frgd.errors.MissingWeightsError` when it is not installed."""
    from ..weights import weights_path

    return Path(weights_path(DLIB_WEIGHTS_ID))


_CACHE: dict[tuple[str, str], IdentityEncoder] = {}
_LOCK = threading.Lock()


def get_identity_encoder(backend: str = "dlib", device: str | torch.device = "cpu") -> IdentityEncoder:
    """The pretrained encoder for ``backend`` on ``device``, built once per (backend, device) and cached.

    Raises :class:`frgd.errors.MissingWeightsError` when the weights are not on disk.
    """
    from ..devices import resolve_device

    cls = IdentityEncoder.backend_class(backend)
    dev = resolve_device(device)
    key = (backend, str(dev))
    with _LOCK:
        enc = _CACHE.get(key)
        if enc is None:
            enc = cls.from_pretrained().to(dev)
            _CACHE[key] = enc
            logger.info("loaded identity encoder %s on %s", backend, dev)
        return enc
