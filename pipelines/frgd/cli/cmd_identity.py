"""``frgd bench identity`` (crops per second) and ``frgd eval identity`` (dlib parity, verification, judge)."""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch loads lazily so building the CLI parser stays fast
    import torch

from ..errors import InputError
from .main import add_json_flags, emit

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_FACES = REPO_ROOT.parent / "shared" / "data" / "faces128"


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["bench"].add_parser(
        "identity",
        help="identity encoder speed: aligned crops per second (fp32/bf16, batch 1 and 16)",
        description="Time IdentityEncoder.embed on random 128x128 aligned crops (chip extraction included), "
        "forward only and forward+backward to the pixels (what identity guidance costs). Reports the median and the "
        "best per-iteration time (the best is the least affected by other load on the machine).",
    )
    p.add_argument("--backend", default="dlib", choices=["dlib", "facenet"], help="encoder backend (default dlib)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default cpu)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], metavar="N", help="default: 1 16")
    p.add_argument("--crop-size", type=int, default=128, help="aligned crop size (default 128)")
    p.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per setting (default 3)")
    p.add_argument("--no-backward", action="store_true", help="skip the forward+backward timings")
    add_json_flags(p)
    p.set_defaults(func=_cmd_bench)

    p = groups["eval"].add_parser(
        "identity",
        help="dlib port parity with dlib-bin, same/different-person verification, judge",
        description="On faces128 val crops: parity of the PyTorch dlib port with dlib-bin's compute_face_descriptor "
        "on the same 150x150 chips (needs dlib-bin), verification accuracy on balanced same/different-person pairs "
        "(dlib threshold 0.6, best threshold, 10-fold CV) for the port, dlib-bin, dlib's own landmark pipeline and "
        "the evaluation judge.",
    )
    p.add_argument("--data", default=str(DEFAULT_FACES), help="faces128 folder with labels.csv (default ../shared)")
    p.add_argument("--split", default="val")
    p.add_argument("--identities", type=int, default=150, help="identities to use (default 150 = all of val)")
    p.add_argument("--per-identity", type=int, default=4, help="images per identity (default 4)")
    p.add_argument("--no-dlib", action="store_true", help="skip dlib-bin (parity and dlib's own pipeline)")
    p.add_argument("--no-native", action="store_true", help="skip dlib's own detector+landmark chip pipeline")
    p.add_argument("--no-judge", action="store_true", help="skip the evaluation judge")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    add_json_flags(p)
    p.set_defaults(func=_cmd_eval)


# ---------------------------------------------------------------------------------------------------------- bench


def _time(fn, seconds: float) -> list[float]:
    """Per-iteration wall times (s) of ``fn`` after one warm-up, for at least ``seconds`` and 3 iterations."""
    fn()  # warm-up
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from ..devices import describe_device, resolve_device
    from ..identity import get_identity_encoder

    dev = resolve_device(args.device)
    enc = get_identity_encoder(args.backend, dev)
    rows: list[dict[str, Any]] = []
    g = torch.Generator().manual_seed(0)
    for bs in args.batch_sizes:
        if bs < 1:
            raise InputError("batch sizes must be >= 1")
        x = torch.rand(bs, 3, args.crop_size, args.crop_size, generator=g).to(dev)
        for dtype in ("fp32", "bf16"):
            amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bf16")

            def fwd(x=x, amp=amp):
                with torch.no_grad(), amp:
                    enc.embed(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)

            def fwd_bwd(x=x, amp=amp):
                xi = x.clone().requires_grad_(True)
                with amp:
                    e = enc.embed(xi)
                e.sum().backward()
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)

            modes = [("embed", fwd)] + ([] if args.no_backward else [("embed+grad", fwd_bwd)])
            for mode, fn in modes:
                times = _time(fn, args.seconds)
                med, best = float(np.median(times)), min(times)
                rows.append(
                    {
                        "mode": mode,
                        "dtype": dtype,
                        "batch": bs,
                        "crops_per_s": round(bs / med, 2),
                        "crops_per_s_best": round(bs / best, 2),
                        "ms_per_batch_median": round(1000 * med, 2),
                        "ms_per_batch_best": round(1000 * best, 2),
                        "iterations": len(times),
                    }
                )
                logger.info("%s %s batch %d: %.2f crops/s (median)", mode, dtype, bs, bs / med)
    data = {
        "backend": args.backend,
        "device": describe_device(dev),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "crop_size": args.crop_size,
        "chip_size": enc.chip_size,
        "results": rows,
    }
    lines = [f"identity encoder {args.backend} on {data['device']} ({args.crop_size}px crops):"]
    lines += [
        f"  {r['mode']:<10} {r['dtype']} batch {r['batch']:>3}: {r['crops_per_s']:8.2f} crops/s median, "
        f"{r['crops_per_s_best']:.2f} best"
        for r in rows
    ]
    emit(args, data, "\n".join(lines))
    return 0


# ----------------------------------------------------------------------------------------------------------- eval


def _load_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def select_faces(data: Path, split: str, identities: int, per_identity: int) -> tuple[list[Path], list[str]]:
    """The first ``per_identity`` files (sorted) of the first ``identities`` identities (sorted) with >= 2 images."""
    if identities < 2 or per_identity < 2:
        raise InputError(
            f"verification needs same- and different-person pairs: --identities and --per-identity must be >= 2, "
            f"got {identities} and {per_identity}"
        )
    labels = data / "labels.csv"
    if not labels.is_file():
        raise InputError(f"no labels.csv in {data} (pass --data pointing at faces128)")
    by_id: dict[str, list[str]] = {}
    with open(labels, newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] == split:
                by_id.setdefault(row["identity"], []).append(row["file"])
    ids = sorted(i for i, fs in by_id.items() if len(fs) >= 2)[:identities]
    files, names = [], []
    for i in ids:
        for fn in sorted(by_id[i])[:per_identity]:
            files.append(data / fn)
            names.append(i)
    if len(set(names)) < 2:
        raise InputError(f"need at least two identities with two images in split {split!r}")
    return files, names


def _pair_scores(emb: np.ndarray, pairs: np.ndarray, kind: str) -> np.ndarray:
    a, b = emb[pairs[:, 0]], emb[pairs[:, 1]]
    if kind == "distance":
        return np.linalg.norm(a - b, axis=1)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def _batched(fn, x: torch.Tensor, bs: int = 32) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.cat([fn(x[i : i + bs]).float().cpu() for i in range(0, len(x), bs)]).numpy()


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from ..devices import resolve_device
    from ..identity import get_identity_encoder
    from ..identity.encoder import DLIB_SAME_PERSON_THRESHOLD, dlib_weights_file
    from ..identity.judge import balanced_pairs, verification_report

    data = Path(args.data)
    files, names = select_faces(data, args.split, args.identities, args.per_identity)
    pairs = balanced_pairs(names, seed=args.seed)
    same = pairs[:, 2].astype(bool)
    dev = resolve_device(args.device)
    crops = torch.stack([torch.from_numpy(_load_rgb(f)).permute(2, 0, 1) for f in files]).float() / 255.0
    out: dict[str, Any] = {
        "data": f"faces128/{args.split}",
        "images": len(files),
        "identities": len(set(names)),
        "pairs": int(len(pairs)),
        "positive_pairs": int(same.sum()),
        "seed": args.seed,
    }
    t0 = time.perf_counter()
    enc = get_identity_encoder("dlib", dev)
    chips = _batched(lambda x: enc.chips(x.to(dev)), crops)
    chips_u8 = np.clip(np.round(chips * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    port_u8 = _batched(lambda x: enc.net(x.to(dev)), torch.from_numpy(chips_u8).permute(0, 3, 1, 2).float() / 255.0)
    port_float = _batched(lambda x: enc.descriptor(x.to(dev)), crops)
    out["port_seconds"] = round(time.perf_counter() - t0, 1)
    dist = "distance"
    thr = DLIB_SAME_PERSON_THRESHOLD
    out["port_uint8_chips"] = verification_report(_pair_scores(port_u8, pairs, dist), same, False, thr)
    out["port_embed"] = verification_report(_pair_scores(port_float, pairs, dist), same, False, thr)
    out["port_embed"]["note"] = "IdentityEncoder path: float crops -> grid_sample chip -> port (no uint8 rounding)"
    if not args.no_dlib:
        try:
            import dlib
        except ImportError:
            dlib = None
            out["dlib"] = "dlib-bin not importable (pip install dlib-bin): parity skipped"
        if dlib is not None:
            t0 = time.perf_counter()
            rec = dlib.face_recognition_model_v1(str(dlib_weights_file()))
            ref = np.stack([np.asarray(rec.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips_u8])
            diff = np.abs(port_u8 - ref)
            out["dlib_version"] = dlib.__version__
            out["parity"] = {
                "chips": int(len(ref)),
                "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
                "max_l2_diff": float(np.linalg.norm(port_u8 - ref, axis=1).max()),
                "same_decisions_at_0.6": float(
                    ((_pair_scores(port_u8, pairs, dist) < thr) == (_pair_scores(ref, pairs, dist) < thr)).mean()
                ),
            }
            out["dlib_bin_same_chips"] = verification_report(_pair_scores(ref, pairs, dist), same, False, thr)
            out["accuracy_gap_port_vs_dlib_at_0.6"] = abs(
                out["port_uint8_chips"]["accuracy_at_threshold"] - out["dlib_bin_same_chips"]["accuracy_at_threshold"]
            )
            out["dlib_seconds"] = round(time.perf_counter() - t0, 1)
            if not args.no_native:
                out["dlib_native_pipeline"] = _dlib_native(dlib, rec, files, pairs, same, thr)
    if not args.no_judge:
        from ..identity.judge import Judge

        t0 = time.perf_counter()
        judge = Judge()
        je = judge.embed(crops).numpy()
        out["judge"] = verification_report(_pair_scores(je, pairs, "cosine"), same, True)
        out["judge"]["model"] = judge.path.name
        out["judge_seconds"] = round(time.perf_counter() - t0, 1)
    try:
        fenc = get_identity_encoder("facenet", dev)
        fe = _batched(lambda x: fenc.embed(x.to(dev)), crops)
        out["facenet"] = verification_report(_pair_scores(fe, pairs, "cosine"), same, True)
    except Exception as err:  # noqa: BLE001 - report why the optional backend is absent
        out["facenet"] = f"not evaluated: {type(err).__name__}: {err}"
    lines = [f"{out['images']} images, {out['identities']} identities, {out['pairs']} balanced pairs"]
    if "parity" in out:
        lines.append(f"parity vs dlib-bin on the same chips: max |diff| {out['parity']['max_abs_diff']:.3g}")
    for k in ("port_uint8_chips", "port_embed", "dlib_bin_same_chips", "dlib_native_pipeline", "judge", "facenet"):
        v = out.get(k)
        if isinstance(v, dict) and "accuracy_10fold" in v:
            at = f", at {v['threshold']}: {v['accuracy_at_threshold']:.4f}" if "threshold" in v else ""
            lines.append(f"  {k:<22} 10-fold {v['accuracy_10fold']:.4f}{at}")
    emit(args, out, "\n".join(lines))
    return 0


def _dlib_native(dlib, rec, files: list[Path], pairs: np.ndarray, same: np.ndarray, thr: float) -> dict[str, Any]:
    """dlib's own pipeline on 4x upscaled crops: HOG detector, 5-point landmarks, get_face_chip, descriptor."""
    import cv2

    from ..identity.judge import verification_report
    from ..weights import weights_path

    sp_path = Path(weights_path("dlib-resnet-v1")).parent / "shape_predictor_5_face_landmarks.dat"
    det, sp = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(sp_path))
    from ..identity.chips import FFHQ_DLIB_LANDMARKS_128

    descs, found, lms = [], 0, []
    for f in files:
        img = cv2.resize(_load_rgb(f), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        dets = det(img, 0)
        if dets:
            box = max(dets, key=lambda r: r.area())
            found += 1
        else:  # fall back to the box that the template implies (the centre of the crop)
            box = dlib.rectangle(100, 130, 420, 450)
        shape = sp(img, box)
        if dets:
            pts = np.array([[shape.part(k).x, shape.part(k).y] for k in range(5)], dtype=np.float64)
            lms.append((pts + 0.5) / 4.0 - 0.5)  # 4x upscale -> 128 crop pixels
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        descs.append(np.asarray(rec.compute_face_descriptor(chip)))
    rep = verification_report(_pair_scores(np.stack(descs), pairs, "distance"), same, False, thr)
    rep["detected"] = found
    if lms:
        dev = np.linalg.norm(np.stack(lms) - FFHQ_DLIB_LANDMARKS_128, axis=2)
        rep["landmarks_mean_128"] = np.stack(lms).mean(0).round(3).tolist()
        rep["landmark_deviation_from_fixed_px128"] = {
            "mean": float(dev.mean()),
            "median": float(np.median(dev)),
            "p95": float(np.percentile(dev, 95)),
        }
    rep["note"] = "dlib HOG detector + shape_predictor_5_face_landmarks on 4x bicubic upscales, dlib.get_face_chip"
    return rep
