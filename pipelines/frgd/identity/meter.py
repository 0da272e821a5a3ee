"""Identity meter: a calibrated "same person: likely / unsure / unlikely" verdict for a result vs its reference.

The cosine similarity of two unit embeddings means little on its own (a stranger can score 0.89 with dlib). The meter
compares it with two thresholds measured on **real** faces128 validation pairs (same identity vs different
identities, all pairs of the val split), stored with their measured error rates in one committed JSON of numbers
(:data:`CALIBRATION_FILE`, written by ``python -m frgd.identity.meter --data FACES128``):

* ``likely``   when ``sim >= likely_threshold``  (chosen so that at most 0.1 % of different-person pairs reach it),
* ``unlikely`` when ``sim <  unlikely_threshold`` (chosen so that at most 1 % of same-person pairs fall below it),
* ``unsure``   in between.

Which encoder scores: one the guidance did **not** optimise when its weights and a calibration exist (e.g. facenet for
a dlib-guided model); otherwise the guidance encoder itself, and the meter says so (``independent = False``): guided
samples then look more similar than they are (optimistic). Never the evaluation judge.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "identity_meter.json"
"""In ``frgd_resources`` (the package's resource folder)."""
MAX_FALSE_ACCEPT = 0.001
"""``likely`` threshold: at most this share of different-person pairs reach it."""
MAX_FALSE_REJECT = 0.01
"""``unlikely`` threshold: at most this share of same-person pairs fall below it."""
VERDICTS = ("likely", "unsure", "unlikely")
OPTIMISTIC_NOTE = "scored with the guidance encoder the sampler optimised: optimistic for guided samples"


@dataclass(frozen=True)
class MeterCalibration:
    """Thresholds (cosine similarity of unit embeddings) and their measured rates for one encoder backend."""

    backend: str
    likely_threshold: float
    unlikely_threshold: float
    false_accept_at_likely: float
    true_accept_at_likely: float
    false_reject_at_unlikely: float
    true_reject_at_unlikely: float
    same_pairs: int
    different_pairs: int
    data: str

    def verdict(self, sim: float) -> str:
        """``"likely"``, ``"unsure"`` or ``"unlikely"`` for a cosine similarity."""
        if sim >= self.likely_threshold:
            return "likely"
        if sim < self.unlikely_threshold:
            return "unlikely"
        return "unsure"


@dataclass(frozen=True)
class MeterReading:
    """What the product shows: per-sample similarity and verdict, the encoder, and whether it is independent."""

    scores: list[float]
    verdicts: list[str]
    backend: str
    independent: bool
    calibration: MeterCalibration | None

    def label(self, i: int) -> str:
        """One-line text for sample ``i``, e.g. ``same person: likely (0.95, dlib, guidance encoder: optimistic)``."""
        return _label(self.verdicts[i], self.scores[i], self.backend, self.independent)

    def as_dict(self) -> dict[str, Any]:
        """For provenance/JSON: scores, verdicts, encoder, independence, thresholds and their rates."""
        return {
            "scores": [round(s, 4) for s in self.scores],
            "verdicts": self.verdicts,
            "encoder": self.backend,
            "independent": self.independent,
            "note": None if self.independent else OPTIMISTIC_NOTE,
            "calibration": None if self.calibration is None else asdict(self.calibration),
        }


def _label(verdict: str, score: float, backend: str, independent: bool) -> str:
    who = "independent encoder" if independent else "guidance encoder: optimistic"
    return f"same person: {verdict} ({score:.2f}, {backend}, {who})"


def label_from_params(score: float, meter: dict[str, Any]) -> str:
    """The one-line verdict for a stored ``score`` and the ``identity_meter`` dict of a run's parameters
    (:meth:`MeterReading.as_dict`), e.g. for a gallery tooltip or restored session."""
    cal = meter.get("calibration")
    verdict = MeterCalibration(**cal).verdict(float(score)) if cal else "unsure"
    return _label(verdict, float(score), str(meter.get("encoder")), bool(meter.get("independent")))


def calibration_path() -> Path:
    from frgd_resources import resource_path

    return resource_path(CALIBRATION_FILE)


@functools.lru_cache(maxsize=4)
def load_calibrations(path: str | Path | None = None) -> dict[str, MeterCalibration]:
    """Backend -> calibration from the committed JSON (empty when the file is missing); cached, do not mutate."""
    p = Path(path) if path is not None else calibration_path()
    if not p.is_file():
        logger.warning("identity meter calibration %s missing: verdicts unavailable", p)
        return {}
    raw = json.loads(p.read_text())
    return {k: MeterCalibration(**v) for k, v in raw.get("backends", {}).items()}


def choose_meter_backend(guidance_backend: str, calibrations: dict[str, MeterCalibration]) -> tuple[str, bool]:
    """``(backend, independent)``: a calibrated backend other than the guidance one whose weights are installed,
    else the guidance backend (not independent)."""
    from ..errors import MissingWeightsError
    from ..weights import weights_path

    weight_names = {"facenet": "facenet-vggface2", "dlib": "dlib-resnet-v1"}
    for backend in calibrations:
        if backend == guidance_backend or backend not in weight_names:
            continue
        try:
            if Path(weights_path(weight_names[backend])).is_file():
                return backend, True
        except (MissingWeightsError, OSError, KeyError):
            continue
    return guidance_backend, False


def read_meter(
    scores: list[float], backend: str, independent: bool, calibrations: dict[str, MeterCalibration] | None = None
) -> MeterReading:
    """Verdicts for ``scores`` (cosine similarities computed with ``backend``)."""
    cal = (calibrations if calibrations is not None else load_calibrations()).get(backend)
    verdicts = [cal.verdict(s) if cal is not None else "unsure" for s in scores]
    return MeterReading([float(s) for s in scores], verdicts, backend, independent, cal)


# ----------------------------------------------------------------------------------------------- calibration
def pair_similarities(emb: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All same-identity and all different-identity cosine similarities of unit embeddings ``emb`` ``(N,D)``."""
    e = emb.astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    iu = np.triu_indices(len(e), k=1)
    same = ids[iu[0]] == ids[iu[1]]
    vals = sim[iu]
    return vals[same], vals[~same]


def calibrate(same: np.ndarray, diff: np.ndarray, backend: str, data: str) -> MeterCalibration:
    """Thresholds at :data:`MAX_FALSE_ACCEPT` / :data:`MAX_FALSE_REJECT` and the rates they give on these pairs."""
    hi = float(np.quantile(diff, 1.0 - MAX_FALSE_ACCEPT, method="higher"))
    hi = float(np.nextafter(hi, np.inf))  # strictly above that share of different pairs
    lo = float(np.quantile(same, MAX_FALSE_REJECT, method="lower"))
    lo = min(lo, hi)
    return MeterCalibration(
        backend=backend,
        likely_threshold=round(hi, 4),
        unlikely_threshold=round(lo, 4),
        false_accept_at_likely=round(float((diff >= round(hi, 4)).mean()), 4),
        true_accept_at_likely=round(float((same >= round(hi, 4)).mean()), 4),
        false_reject_at_unlikely=round(float((same < round(lo, 4)).mean()), 4),
        true_reject_at_unlikely=round(float((diff < round(lo, 4)).mean()), 4),
        same_pairs=int(len(same)),
        different_pairs=int(len(diff)),
        data=data,
    )


def _val_embeddings(data: Path, backend: str, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and identity labels of the val split (the dataset's precomputed dlib file when it matches)."""
    import csv

    rows = [r for r in csv.DictReader((data / "labels.csv").open()) if r["split"] == "val"]
    files = [r["file"] for r in rows]
    ids = np.array([r["identity"] for r in rows])
    pre = data / f"embeddings_{backend}_fp16.npz"
    if pre.is_file():
        z = np.load(pre)
        index = {str(f): i for i, f in enumerate(z["files"])}
        if all(f in index for f in files):
            logger.info("using precomputed %s embeddings from %s", backend, pre)
            return z["emb"][[index[f] for f in files]].astype(np.float32), ids
    import torch
    from PIL import Image

    from . import get_identity_encoder

    enc = get_identity_encoder(backend, device)
    out = []
    for i in range(0, len(files), 64):
        batch = [np.asarray(Image.open(data / f).convert("RGB")) for f in files[i : i + 64]]
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            out.append(enc.embed(x.to(device)).float().cpu().numpy())
    return np.concatenate(out), ids


def main(argv: list[str] | None = None) -> int:
    """``python -m frgd.identity.meter --data FACES128 [--backend dlib] [--out F]``: (re)write the calibration."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="faces128 folder (labels.csv, val/)")
    ap.add_argument("--backend", action="append", default=None, help="encoder backend(s) (default dlib)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help=f"output JSON (default: frgd_resources/{CALIBRATION_FILE})")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = Path(args.data)
    out = Path(args.out) if args.out else calibration_path()
    result: dict[str, Any] = {
        "what": "identity meter thresholds (cosine similarity) and their error rates on faces128 val pairs",
        "command": "python -m frgd.identity.meter --data FACES128",
        "max_false_accept": MAX_FALSE_ACCEPT,
        "max_false_reject": MAX_FALSE_REJECT,
        "backends": {},
    }
    for backend in args.backend or ["dlib"]:
        emb, ids = _val_embeddings(data, backend, args.device)
        same, diff = pair_similarities(emb, ids)
        cal = calibrate(same, diff, backend, f"faces128 val: {len(ids)} images, {len(set(ids))} identities, all pairs")
        result["backends"][backend] = asdict(cal)
        logger.info("%s: %s", backend, asdict(cal))
    out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


__all__ = [
    "CALIBRATION_FILE",
    "MAX_FALSE_ACCEPT",
    "MAX_FALSE_REJECT",
    "VERDICTS",
    "MeterCalibration",
    "MeterReading",
    "calibrate",
    "choose_meter_backend",
    "label_from_params",
    "load_calibrations",
    "pair_similarities",
    "read_meter",
]
