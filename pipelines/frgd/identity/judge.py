"""Evaluation-only identity judge and face-verification helpers.

**The judge never enters training or guidance.** It is an independent face-recognition network (MobileFaceNet,
192-d, run through onnxruntime, no gradients) used only to *measure* identity preservation of restored faces, so that
improvements obtained by guiding with one network (dlib / facenet) are checked by another one that the sampler never
saw. Training and guidance code must never import this module (evaluation code such as
:mod:`frgd.eval.faces` does).

Model: ``mobilefacenet192.onnx`` (``../shared/weights/judge/``, research data, not shipped): input ``N x 3 x 112 x 112``
RGB aligned on the ArcFace 112 template (:data:`frgd.identity.chips.ARCFACE_112`), normalised ``(x - 127.5) / 128``
with ``x`` in ``[0, 255]``; output ``N x 192`` (L2-normalised here). Our aligned crops (FFHQ template, any size) are
mapped onto the ArcFace template by the fixed similarity between the two templates
(:func:`frgd.identity.chips.crop_to_arcface_affine`).

Also here: balanced same/different-person pairs and verification accuracy (fixed threshold and 10-fold
cross-validated best threshold, the LFW protocol), used by ``frgd eval identity``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MissingWeightsError
from . import chips as C

logger = logging.getLogger(__name__)

JUDGE_FILE = "mobilefacenet192.onnx"
REPO_ROOT = Path(__file__).resolve().parents[3]


def find_judge(path: str | Path | None = None) -> Path:
    """The judge ONNX file: ``path``, else env ``FRGD_JUDGE`` (file or folder), else ``../shared/weights/judge``."""
    cands: list[Path] = []
    if path is not None:
        cands.append(Path(path))
    elif os.environ.get("FRGD_JUDGE"):
        cands.append(Path(os.environ["FRGD_JUDGE"]))
    else:
        cands.append(REPO_ROOT.parent / "shared" / "weights" / "judge")
    for c in cands:
        if c.is_dir():
            c = c / JUDGE_FILE
        if c.is_file():
            return c
    raise MissingWeightsError(
        f"identity judge not found (looked for {cands[0]}{'/' + JUDGE_FILE if cands[0].suffix != '.onnx' else ''}); "
        f"it is evaluation-only research data: set FRGD_JUDGE to the {JUDGE_FILE} file or its folder"
    )


class Judge:
    """MobileFaceNet judge. ``embed(crops (B,3,S,S) in [0,1], our template) -> (B, 192)`` unit float32 (no grad)."""

    embedding_dim = 192
    input_size = 112

    def __init__(self, path: str | Path | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = find_judge(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        logger.info("identity judge %s", self.path)

    def aligned(self, images: torch.Tensor) -> torch.Tensor:
        """Our aligned crops ``(B,3,S,S)`` -> ``(B,3,112,112)`` on the ArcFace template, ``[0,1]``."""
        aff = C.crop_to_arcface_affine(images.shape[-1], self.input_size)
        return C.warp_chips(images.float(), aff, self.input_size, padding_mode="zeros")

    def embed_aligned(self, faces112: torch.Tensor | np.ndarray, batch: int = 64) -> torch.Tensor:
        """ArcFace-aligned ``(B,3,112,112)`` in ``[0,1]`` -> ``(B,192)`` unit embeddings."""
        x = torch.as_tensor(faces112).detach().float().cpu()
        outs = []
        for i in range(0, x.shape[0], batch):
            inp = ((x[i : i + batch] * 255.0 - 127.5) / 128.0).numpy().astype(np.float32)
            outs.append(torch.from_numpy(self.session.run(None, {self.input_name: inp})[0]))
        out = torch.cat(outs) if outs else torch.zeros(0, self.embedding_dim)
        return F.normalize(out.float(), dim=1)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Unit embeddings ``(B, 192)`` of our aligned crops ``(B,3,S,S)`` in ``[0,1]``."""
        return self.embed_aligned(self.aligned(images.detach().cpu()), batch)

    @staticmethod
    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``(B,)``; ``b`` may be ``(D,)``."""
        from .encoder import similarity

        return similarity(a, b)


# ------------------------------------------------------------------------------------------------- verification


def balanced_pairs(identities: list[str], seed: int = 0, max_positive: int | None = None) -> np.ndarray:
    """``(P, 3)`` int rows ``(i, j, same)``: every same-identity pair (at most ``max_positive``, sampled) and as many
    random different-identity pairs, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(identities)
    pos = [(i, j) for i in range(len(ids)) for j in range(i + 1, len(ids)) if ids[i] == ids[j]]
    if max_positive is not None and len(pos) > max_positive:
        pos = [pos[k] for k in sorted(rng.choice(len(pos), max_positive, replace=False))]
    neg: set[tuple[int, int]] = set()
    if len(set(ids.tolist())) < 2:
        raise ValueError("need at least two identities for different-person pairs")
    while len(neg) < len(pos):
        i, j = (int(v) for v in rng.integers(0, len(ids), 2))
        if ids[i] != ids[j]:
            neg.add((min(i, j), max(i, j)))
    rows = [(i, j, 1) for i, j in pos] + [(i, j, 0) for i, j in sorted(neg)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float, higher_is_same: bool = True) -> float:
    """Fraction of pairs classified correctly by ``score >= threshold`` (``<`` when ``higher_is_same`` is False)."""
    pred = scores >= threshold if higher_is_same else scores < threshold
    return float((pred == same.astype(bool)).mean())


def best_threshold(scores: np.ndarray, same: np.ndarray, higher_is_same: bool = True) -> tuple[float, float]:
    """``(threshold, accuracy)`` maximising accuracy on these pairs (midpoints between sorted scores)."""
    s = np.sort(np.unique(scores))
    cands = np.concatenate([[s[0] - 1e-6], (s[1:] + s[:-1]) / 2, [s[-1] + 1e-6]]) if len(s) > 1 else s
    accs = np.array([accuracy_at(scores, same, t, higher_is_same) for t in cands])
    k = int(np.argmax(accs))
    return float(cands[k]), float(accs[k])


def cv_accuracy(scores: np.ndarray, same: np.ndarray, higher_is_same: bool = True, folds: int = 10, seed: int = 0):
    """10-fold cross-validated accuracy (threshold chosen on 9 folds, tested on the 10th): ``(mean, std)``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(scores))
    folds = max(2, min(folds, len(scores)))
    parts = np.array_split(order, folds)
    accs = []
    for k in range(folds):
        test = parts[k]
        train = np.concatenate([parts[m] for m in range(folds) if m != k])
        t, _ = best_threshold(scores[train], same[train], higher_is_same)
        accs.append(accuracy_at(scores[test], same[test], t, higher_is_same))
    return float(np.mean(accs)), float(np.std(accs))


def verification_report(
    scores: np.ndarray, same: np.ndarray, higher_is_same: bool = True, threshold: float | None = None
) -> dict:
    """Accuracy figures for pair ``scores`` (similarity, or distance with ``higher_is_same=False``)."""
    same = np.asarray(same).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    t, acc = best_threshold(scores, same, higher_is_same)
    cv_mean, cv_std = cv_accuracy(scores, same, higher_is_same)
    out = {
        "pairs": int(len(scores)),
        "positive_pairs": int(same.sum()),
        "best_threshold": t,
        "accuracy_best_threshold": acc,
        "accuracy_10fold": cv_mean,
        "accuracy_10fold_std": cv_std,
    }
    if threshold is not None:
        out["threshold"] = float(threshold)
        out["accuracy_at_threshold"] = accuracy_at(scores, same, threshold, higher_is_same)
    return out
