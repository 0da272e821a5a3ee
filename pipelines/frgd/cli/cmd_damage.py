"""``frgd damage detect``: the damage detector's marks of a photo as a mask image (white = damaged), the
``--damage`` image of ``frgd enhance`` and ``frgd restore`` and the editor's File > Import Damage Mask."""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path
from typing import Any

from ..devices import DEVICE_HELP, device_arg
from ..errors import InputError
from .cmd_enhance import add_batch_flags
from .cmd_sr import _BATCH_HELP, _run_single_or_batch, _single_or_batch
from .main import add_json_flags, emit


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["damage"].add_parser(
        "detect",
        help="mark the scratches, cracks, spots and tears of a photo (a mask image, white = damaged)",
        description=(
            "Find the damage of IMAGE with the damage detector (a small network trained on synthetic damage; "
            "photos over 2 MP are searched downscaled) and write it as a grey mask of the photo's size, white = "
            "damaged: the --damage image of `frgd enhance` and `frgd restore` (which also take --damage auto), and "
            "the editor's File > Import Damage Mask. The marks are a proposal: look at them, erase the wrong ones "
            "and add the missed ones before restoring, since a restorer ignores the photo under a mark. " + _BATCH_HELP
        ),
    )
    p.add_argument("image", metavar="IMAGE", nargs="+", help="input photo(s) or folder(s)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output mask image, or folder")
    p.add_argument(
        "--threshold", type=float, default=None, metavar="T",
        help="mark pixels whose damage probability exceeds T in (0, 1) (default: the detector's, tuned for "
             "precision); lower finds more and marks more that is not damage",
    )  # fmt: skip
    p.add_argument("--model", default=None, metavar="DIR", help="detector folder (default: the installed one)")
    p.add_argument("--device", default="auto", type=device_arg, metavar="DEV", help=DEVICE_HELP)
    add_batch_flags(p)
    p.set_defaults(func=_cmd_detect)
    register_eval(groups)


def _detect_one(args: argparse.Namespace, net: Any, src: Path, out: Path, overwrite: bool, progress=None) -> dict:
    """Detect the damage of one photo file and write its mask to ``out``; returns its JSON record."""
    import numpy as np

    from ..io import Provenance, file_sha256, load_image, save_image
    from ..scratch import DAMAGE_WEIGHTS, detect_damage

    t0 = time.perf_counter()
    loaded = load_image(src)
    found = detect_damage(loaded.to_uint8(), net, args.threshold, progress=progress)
    prov = Provenance(
        model=f"frgd:{Path(args.model).name if args.model else DAMAGE_WEIGHTS}",
        parameters={"command": "damage detect", "threshold": found.threshold, "marked": round(found.share, 5)},
        source_hash=file_sha256(src),
    )
    grey = np.repeat(found.mask[..., None], 3, axis=2)  # the grey mask image of --damage
    saved = save_image(out, grey, provenance=prov, overwrite=overwrite, protect=[src])
    return {
        "input": str(src),
        "output": str(saved),
        "marked": round(found.share, 5),
        "threshold": found.threshold,
        "work_scale": round(found.work_scale, 3),
        "size": [loaded.width, loaded.height],
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _cmd_detect(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..io import load_image
    from ..scratch import load_detector

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise InputError(f"--threshold must be in (0, 1), got {args.threshold}")
    items, single = _single_or_batch(args, args.image)
    if single:
        load_image(single[0])  # an unreadable photo is a usage error before the model loads
    net = load_detector(args.model, device=resolve_device(args.device))
    return _run_single_or_batch(
        args, items, single, functools.partial(_detect_one, args, net), "damage detect",
        lambda d: f"wrote {d['output']}: {100 * d['marked']:.2f}% of the photo marked (threshold {d['threshold']:.2f})",
    )  # fmt: skip


def register_eval(groups: dict[str, argparse._SubParsersAction]) -> None:
    e = groups["eval"].add_parser(
        "damage",
        help="how well the damage detector finds drawn damage and how little it marks on clean faces (JSON)",
        description=(
            "Evaluate the damage detector (frgd.eval.damage): pixel precision, recall, F1 and IoU on synthetic damage "
            "drawn on held-out scenes (--photos) and faces128 val faces (--data), the share it marks on clean aged "
            "faces (overall and in the eyes and mouth), and the share it marks on each real photo of --real."
        ),
    )
    e.add_argument("--data", required=True, metavar="DIR", help="faces128 root (labels.csv, val/)")
    e.add_argument("--photos", nargs="+", required=True, metavar="DIR", help="folders of held-out clean scenes")
    e.add_argument("--real", nargs="*", default=[], metavar="DIR", help="folders of real photos (no ground truth)")
    e.add_argument("--model", default=None, metavar="DIR", help="detector folder (default: the installed one)")
    e.add_argument("--limit", type=int, default=64, metavar="N", help="examples per source (default 64)")
    e.add_argument("--seed", type=int, default=2026, help="seed of the drawn damage (default 2026)")
    add_json_flags(e)
    e.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    import shlex

    from ..eval.damage import evaluate_damage

    if args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    data = evaluate_damage(args.data, args.photos, args.model, n=args.limit, seed=args.seed, real=args.real)
    parts = ["frgd", "eval", "damage", "--data", args.data, "--photos", *args.photos]
    if args.real:
        parts += ["--real", *args.real]
    if args.model:
        parts += ["--model", args.model]
    parts += ["--limit", str(args.limit), "--seed", str(args.seed)]
    data = {"command": shlex.join(parts), **data}
    s, c, g = data["synthetic"]["all"], data["clean_faces"], data["glasses"]
    emit(args, data, f"synthetic: precision {s['precision']:.3f} recall {s['recall']:.3f} F1 {s['f1']:.3f} "
                     f"(threshold {data['threshold']:.2f}); clean faces: {100 * c['marked']:.3f}% marked, "
                     f"{100 * c['marked_eyes_mouth']:.3f}% in the eyes and mouth; glasses: "
                     f"{100 * g['frame_marked']:.2f}% of the frames marked on {g['faces_with_frame_marks']} of "
                     f"{g['faces']} faces")  # fmt: skip
    return 0
