"""``frgd faces detect`` and ``frgd faces align``: MTCNN detection and five-point alignment from the command line."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..devices import DEVICE_CHOICES
from ..errors import InputError
from .cmd_enhance import add_min_score_flag
from .main import add_json_flags, emit

logger = logging.getLogger(__name__)

ALIGN_SIZES = (128, 256, 512)


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    faces = groups["faces"]

    p = faces.add_parser(
        "detect",
        help="detect faces (box, score, five landmarks)",
        description="Detect faces with MTCNN. Small faces (down to about 12 px) are found by upsampling the image.",
    )
    p.add_argument("image", metavar="IMG", help="input photo")
    p.add_argument("--min-size", type=float, default=12.0, metavar="N", help="smallest face in pixels (default 12)")
    add_min_score_flag(p)
    p.add_argument("--no-upsample", action="store_true", help="do not upsample small images/faces")
    p.add_argument("--device", default="cpu", choices=DEVICE_CHOICES, help="device for MTCNN (default cpu)")
    add_json_flags(p)
    p.set_defaults(func=_cmd_detect)

    p = faces.add_parser(
        "align",
        help="align detected faces onto the five-point template and save them",
        description=(
            "Detect faces and write each aligned crop as DIR/<name>_face<i>.png plus DIR/<name>_face<i>.json "
            "(affine image->crop, inverse, landmarks) for pasting back."
        ),
    )
    p.add_argument("image", metavar="IMG", help="input photo")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--size", type=int, default=128, choices=ALIGN_SIZES, help="crop size (default 128)")
    p.add_argument(
        "--faces",
        default="all",
        metavar="SEL",
        help="all | largest | center | face numbers like 1,3 (1-based, left to right; default all)",
    )
    p.add_argument("--min-size", type=float, default=12.0, metavar="N", help="smallest face in pixels (default 12)")
    add_min_score_flag(p)
    p.add_argument("--border", default="reflect", choices=("reflect", "constant"), help="padding outside the photo")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="cpu", choices=DEVICE_CHOICES, help="device for MTCNN (default cpu)")
    add_json_flags(p)
    p.set_defaults(func=_cmd_align)

    p = faces.add_parser(
        "paste",
        help="paste face crops (retouched, or restored elsewhere) back into the photo",
        description=(
            "Paste aligned face crops back with the restorers' own seamless paste. INDEX is a face index "
            "(DIR/<name>_faces.json of --save-faces or of the editor's File > Export Faces: onto the output photo, "
            "each face's restored crop as it is now, e.g. retouched in place; an editor's index names no output "
            "photo: give --onto) or the sidecars of `frgd faces align` (DIR/<name>_face<i>.json: onto the photo, "
            "each face's aligned crop as it is now, e.g. restored by another program). --face N=FILE pastes FILE as "
            "face N instead, and only the faces given; a crop may be any square size (a crop retouched at 4x pastes "
            "at full detail). The output is flagged identity-changed in its metadata."
        ),
    )
    p.add_argument("index", metavar="INDEX", nargs="+", help="face index (--save-faces) or frgd faces align sidecar(s)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output image")
    p.add_argument(
        "--face", action="append", default=[], type=_face_file, metavar="N=FILE",
        help="paste FILE as face N (repeatable; default: every face's own crop file)",
    )  # fmt: skip
    p.add_argument(
        "--onto", metavar="IMAGE",
        help="paste onto IMAGE (the photo, or the photo upscaled: the scale is read from its size) instead of the "
        "index's output photo or the sidecars' photo",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="an index's sample, by its seed (default: its first)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (never an input)")
    add_json_flags(p)
    p.set_defaults(func=_cmd_paste)


def _detect(args: argparse.Namespace):
    from ..faces.detect import detect_faces
    from ..io import load_image
    from ..restore.faces import number_faces

    loaded = load_image(args.image)
    img = loaded.to_uint8()
    faces = detect_faces(
        img,
        device=args.device,
        min_face_size=args.min_size,
        upsample_small=not getattr(args, "no_upsample", False),
        min_score=args.min_score,
    )
    # the one numbering: "face k" is faces[k - 1], left to right; the colour profile for the crops of the photo
    return img, number_faces(faces), loaded.icc_profile


def _cmd_detect(args: argparse.Namespace) -> int:
    img, faces, _icc = _detect(args)
    data = {
        "image": str(args.image),
        "width": int(img.shape[1]),
        "height": int(img.shape[0]),
        "faces": [{"number": k, **f.to_json()} for k, f in enumerate(faces, start=1)],
    }
    lines = [f"{args.image}: {img.shape[1]}x{img.shape[0]}, {len(faces)} face(s)"]
    for i, f in enumerate(faces, start=1):
        x0, y0, x1, y1 = f.box
        lines.append(
            f"  face {i}: box ({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}) score {f.score:.3f} eye distance "
            f"{f.eye_distance:.1f} px" + (f", turned {90 * f.turn}°" if f.turn else "")
        )
    emit(args, data, "\n".join(lines))
    return 0


def _cmd_align(args: argparse.Namespace) -> int:
    from ..faces.align import align_face
    from ..io import Provenance, check_output, file_sha256, save_bytes, save_image
    from ..restore.faces import choose_faces

    img, faces, icc = _detect(args)
    if not faces:
        raise InputError(f"no face found in {args.image} (try --min-size with a smaller value)")
    numbers = {id(f): k for k, f in enumerate(faces, start=1)}
    chosen = [(numbers[id(f)], f) for f in choose_faces(faces, args.faces, image_shape=img.shape[:2])]
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(args.image).stem
    try:
        source_hash = file_sha256(args.image)
    except Exception:  # noqa: BLE001 - provenance is best effort
        source_hash = None
    protect = [args.image] + ([args.json_out] if args.json_out else [])
    for i, _ in chosen:  # every output checked before the first is written
        for ext in ("png", "json"):
            check_output(out_dir / f"{stem}_face{i}.{ext}", overwrite=args.overwrite, protect=protect)
    results = []
    for i, f in chosen:
        crop = align_face(img, f.landmarks, args.size, border=args.border)
        png = out_dir / f"{stem}_face{i}.png"
        sidecar = out_dir / f"{stem}_face{i}.json"
        prov = Provenance(
            model="mtcnn+five-point-alignment",
            parameters={"size": args.size, "face": i, "border": args.border},
            source_hash=source_hash,
        )
        save_image(png, crop.image, provenance=prov, overwrite=args.overwrite, protect=protect, icc_profile=icc)
        meta = {
            "image": str(args.image),
            "face": i,
            "crop": png.name,
            "box": [round(float(v), 2) for v in f.box],
            "score": round(float(f.score), 5),
            **crop.to_json(),
        }
        save_bytes(sidecar, (json.dumps(meta, indent=2) + "\n").encode(), overwrite=args.overwrite, protect=protect)
        results.append({**meta, "crop": str(png), "sidecar": str(sidecar)})
    data = {"image": str(args.image), "width": int(img.shape[1]), "height": int(img.shape[0]), "faces": results}
    text = "\n".join(
        f"face {r['face']}: {r['crop']} (native scale {r['native_scale']:.2f}, score {r['score']:.3f})" for r in results
    )
    emit(args, data, text)
    return 0


def _face_file(text: str) -> tuple[int, str]:
    """``N=FILE`` of ``--face``."""
    number, sep, file = text.partition("=")
    if not sep or not number.strip().isdigit() or int(number) < 1 or not file:
        raise argparse.ArgumentTypeError(f"expected N=FILE with a face number N >= 1, got {text!r}")
    return int(number), file


def _cmd_paste(args: argparse.Namespace) -> int:
    from ..io import Provenance, check_output, file_sha256, load_image, save_image
    from ..restore import paste_faces
    from ..restore.face_files import read_paste_plan

    plan = read_paste_plan(args.index, args.seed)
    numbers = [f.number for f in plan.faces]
    if len(set(numbers)) != len(numbers):
        raise InputError(f"face numbers given twice in {', '.join(args.index)}")
    given = dict(args.face)
    if len(given) != len(args.face):
        raise InputError("--face names a face twice")
    unknown = sorted(set(given) - set(numbers))
    if unknown:
        raise InputError(f"no face {unknown[0]} in {', '.join(args.index)} (faces {', '.join(map(str, numbers))})")
    chosen = [(f, Path(given[f.number])) for f in plan.faces if f.number in given] if given else [
        (f, f.file) for f in plan.faces if f.file is not None]  # fmt: skip
    if not chosen:
        raise InputError(f"{args.index[0]} lists no restored face to paste: name crops with --face N=FILE")
    canvas_path = Path(args.onto) if args.onto else plan.canvas
    if canvas_path is None:
        raise InputError(f"{args.index[0]} names no image to paste onto: give --onto IMAGE")
    if not canvas_path.is_file():
        raise InputError(f"the image to paste onto is not there: {canvas_path} (give --onto IMAGE)")
    inputs = [*args.index, canvas_path, *(p for _f, p in chosen), *([args.json_out] if args.json_out else [])]
    check_output(args.out, overwrite=args.overwrite, protect=inputs)
    canvas = load_image(canvas_path)
    h, w = chosen[0][0].crop.source_shape
    scale = canvas.rgb.shape[1] / w
    if abs(canvas.rgb.shape[0] - h * scale) > max(1.0, 0.01 * canvas.rgb.shape[0]):
        raise InputError(
            f"{canvas_path} is {canvas.rgb.shape[1]}x{canvas.rgb.shape[0]}, not the photo the faces are of "
            f"({w}x{h}) at one scale"
        )
    pastes = []
    for f, p in chosen:
        img = load_image(p).rgb
        if img.shape[0] != img.shape[1]:
            raise InputError(f"{p} is {img.shape[1]}x{img.shape[0]}: a face crop is square (face {f.number})")
        pastes.append((f.crop, img, None))
    out = paste_faces(canvas.rgb, pastes, scale)
    prov = Provenance(
        model="faces-paste",
        parameters={"command": "faces paste", "index": [Path(i).name for i in args.index], "scale": round(scale, 6),
                    "faces": {str(f.number): {"file": str(p), "sha256": file_sha256(p)} for f, p in chosen}},
        identity_changed=True,  # a face pasted from a file can be anyone's
        source_hash=file_sha256(canvas_path),
    )  # fmt: skip
    saved = save_image(args.out, out, alpha=canvas.alpha, provenance=prov, overwrite=args.overwrite, protect=inputs,
                       icc_profile=canvas.icc_profile)  # fmt: skip
    data = {"output": str(saved), "onto": str(canvas_path), "scale": round(scale, 6),
            "faces": [{"number": f.number, "file": str(p)} for f, p in chosen]}  # fmt: skip
    emit(args, data, f"wrote {saved}: face(s) {', '.join(str(f.number) for f, _p in chosen)} pasted onto {canvas_path}")
    return 0
