"""Face identity: dlib ResNet port, differentiable chip extraction, similarity, facenet backend, evaluation judge.

Public API::

    enc = get_identity_encoder("dlib", device="cpu")      # cached; "facenet" for the 512-d backend
    e = enc.embed(crops)                                   # crops (B,3,S,S) in [0,1] on our template -> (B,D) unit
    e = enc.embed_image(img, landmarks)                    # unaligned (B,3,H,W) + (B,5,2) MTCNN-order landmarks
    s = similarity(e, ref)                                 # (B,) cosine; ref (B,D) or (D,)
    enc = IdentityEncoder.tiny_random(seed)                # tiny random weights, same API, for fast tests

Backends are subclasses of :class:`IdentityEncoder` (:class:`DlibIdentityEncoder`, :class:`FacenetIdentityEncoder`),
known by name once their module is imported (this package imports both).
:class:`ReferenceEmbeddingCache` caches reference embeddings by file hash; :class:`frgd.identity.judge.Judge` is an
independent network for evaluation only (never for training or guidance).
"""

from .cache import ReferenceEmbeddingCache
from .encoder import (
    BACKENDS,
    DLIB_SAME_PERSON_THRESHOLD,
    DlibIdentityEncoder,
    IdentityEncoder,
    get_identity_encoder,
    similarity,
)
from .facenet import FacenetIdentityEncoder  # registers the "facenet" backend with IdentityEncoder

__all__ = [
    "BACKENDS",
    "DLIB_SAME_PERSON_THRESHOLD",
    "DlibIdentityEncoder",
    "FacenetIdentityEncoder",
    "IdentityEncoder",
    "ReferenceEmbeddingCache",
    "get_identity_encoder",
    "similarity",
]
