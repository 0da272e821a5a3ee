"""SR commands: ``frgd upscale`` (general SR) and ``frgd restore`` (face restoration with any method of
:data:`frgd.restore.RESTORERS`: GFPGAN, FRGD). Both take one image or, like ``frgd enhance``, many files or a folder
(:mod:`frgd.cli.batch`). Their benchmarks are ``frgd bench sr|ncnn`` (:mod:`frgd.cli.cmd_bench`); ``frgd weights
convert`` is in :mod:`frgd.cli.cmd_weights`."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..devices import DEVICE_HELP, device_arg
from ..errors import InputError
from .cmd_enhance import add_batch_flags, add_faces_flag, add_frgd_flags, frgd_flags_given
from .damage_source import DAMAGE_AUTO, DAMAGE_HELP, DamageSource
from .main import add_save_faces_flag, emit, tile_arg

logger = logging.getLogger(__name__)

_BATCH_HELP = (
    "Batch: several inputs or a folder write OUT/<name>.<format> into the folder OUT, with a progress bar; inputs "
    "already done (outputs newer than the input) are skipped unless --overwrite; an input that fails is reported "
    "(OUT/frgd_report.json and the last lines) and the others go on; the exit code is then 1."
)


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from ..sr.registry import available_upscalers

    names = available_upscalers()
    p = root.add_parser(
        "upscale",
        help="upscale a photo with a general SR model (bicubic, lanczos, Real-ESRGAN, frgd-sr)",
        description=(
            "Upscale IMAGE with the general SR pane, tiled with seam-free blending so large photos fit in memory. "
            f"Models: {', '.join(names)}. Real-ESRGAN weights come from `frgd weights convert NAME`. "
            "The output carries provenance metadata (model, scale, tile); the input is never overwritten. "
            + _BATCH_HELP
        ),
    )
    p.add_argument("image", metavar="IMAGE", nargs="+", help="input image(s) or folder(s)")
    p.add_argument(
        "-o", "--out", required=True, metavar="OUT", help="output image (.png/.jpg/.webp/.tif/.bmp), or folder"
    )
    p.add_argument("--model", default="bicubic", choices=names, help="upscaler (default bicubic)")
    p.add_argument("--scale", type=int, default=None, metavar="S", help="factor (default: the model's own, 4)")
    p.add_argument("--tile", type=tile_arg, default="auto", metavar="N", help="tile side in input px, 0 = off, auto")
    p.add_argument(
        "--overlap", type=int, default=None, metavar="PX", help="tile context in input px (default: from the model)"
    )
    p.add_argument("--device", default="auto", type=device_arg, metavar="DEV", help=DEVICE_HELP)
    add_batch_flags(p)
    p.set_defaults(func=_cmd_upscale)

    r = root.add_parser(
        "restore",
        help="restore the faces of a photo with GFPGAN (official v1.3/v1.4 weights) or FRGD",
        description=(
            "Detect the faces of IMAGE (MTCNN; numbered 1, 2, ... from left to right), align each, restore it with "
            "--method and paste it back over the photo upscaled by --scale with --bg-model. gfpgan: GFPGANv1Clean "
            "(weights: `frgd weights download gfpgan-v1.4` or --weights FILE). frgd: the same restoration as "
            "`frgd enhance` (same pixels for the same seed and settings; --reference, --identity, --steps, "
            "--scheduler, --model). The output is flagged as a generative edit in its provenance when a face was "
            "restored. " + _BATCH_HELP
        ),
    )
    r.add_argument("image", metavar="IMAGE", nargs="+", help="input photo(s) or folder(s)")
    r.add_argument("-o", "--out", required=True, metavar="OUT", help="output image, or folder")
    r.add_argument(
        "--method",
        default="gfpgan",
        metavar="NAME",
        help="a method of frgd.restore.RESTORERS: gfpgan (GFPGAN v1.3/v1.4) or frgd (identity-guided diffusion, "
        "= frgd enhance); default gfpgan",
    )  # the registry is checked when the command runs: importing it loads OpenCV, and `frgd --help` stays light
    r.add_argument("--version", default="1.4", choices=("1.4", "1.3"), help="GFPGAN version (default 1.4)")
    r.add_argument("--weights", metavar="PATH", help="local GFPGAN checkpoint instead of the managed one")
    r.add_argument("--weight", type=float, default=1.0, metavar="W", help="GFPGAN restored/input blend in [0,1] (1)")
    add_frgd_flags(r)
    r.add_argument("--bg-model", default="auto", choices=("auto", *names), help="background upscaler (default auto)")
    r.add_argument("--scale", type=int, default=2, metavar="S", help="output upscale factor (default 2)")
    r.add_argument("--damage", metavar="DAMAGE.png|auto", help=DAMAGE_HELP)
    add_faces_flag(r)
    add_save_faces_flag(r)
    r.add_argument("--seed", type=int, default=0, help="seed of the decoder noise / FRGD sample (default 0)")
    r.add_argument("--tile", type=tile_arg, default="auto", metavar="N", help="background tile size (default auto)")
    r.add_argument("--device", default="auto", type=device_arg, metavar="DEV", help=DEVICE_HELP)
    add_batch_flags(r)
    r.set_defaults(func=_cmd_restore)


# ----------------------------------------------------------------------------------------------------- helpers


def _check_out(out: Path, src: Path, overwrite: bool) -> None:
    """Up-front output check (before any work): known extension, not the input (hard links too), not a folder, not
    an existing file without ``--overwrite``."""
    from ..io import SAVE_EXTENSIONS, check_output

    if out.suffix.lower() not in SAVE_EXTENSIONS:
        raise InputError(f"unsupported output extension {out.suffix!r}; use one of {', '.join(SAVE_EXTENSIONS)}")
    check_output(out, overwrite=overwrite, protect=[src])


def _progress(label: str, enabled: bool):
    if not enabled:
        return None

    def show(done: int, total: int, message: str) -> None:
        sys.stderr.write(f"\r{label}: {message} ({done}/{total})")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _single_or_batch(args: argparse.Namespace, inputs: list[str]) -> tuple[Any, Any]:
    """Up-front checks, before any model loads: ``(None, (src, out))`` for one input, ``(items, None)`` for a batch
    (:func:`frgd.cli.batch.plan`: ``OUT/<stem>.<format>``)."""
    from .batch import collect_inputs, is_batch, plan

    if is_batch(inputs):
        return plan(collect_inputs(inputs), Path(args.out), lambda src: [f"{src.stem}.{args.format}"]), None
    src, out = Path(inputs[0]), Path(args.out)
    _check_out(out, src, args.overwrite)
    return None, (src, out)


def _upscale_one(args: argparse.Namespace, pipe: Any, src: Path, out: Path, overwrite: bool, progress=None) -> dict:
    """Upscale one image file into ``out`` (alpha and 16 bits kept, provenance embedded); returns its JSON record."""
    import numpy as np
    import torch

    from ..io import Provenance, file_sha256, load_image, save_image
    from ..sr.upscale import upscale_alpha
    from ..tensor import image_to_tensor, tensor_to_image

    loaded = load_image(src)
    x = image_to_tensor(loaded.rgb)
    eight_bit = loaded.rgb.dtype == np.uint8
    res = pipe(
        x,
        tile=args.tile,
        overlap=args.overlap,
        progress=progress,
        out_dtype=torch.uint8 if eight_bit else torch.float32,
    )
    del x
    # keep 16-bit photos 16-bit (save_image would round a float result to 8 bits)
    rgb = tensor_to_image(res.image, np.uint8 if eight_bit else np.uint16)
    del res.image
    alpha = upscale_alpha(loaded.alpha, pipe.scale)
    prov = Provenance(
        model=pipe.upscaler.name,
        parameters={"command": "upscale", "scale": pipe.scale, "tile": res.tile, "overlap": res.overlap},
        source_hash=file_sha256(src),
    )
    saved = save_image(out, rgb, alpha=alpha, provenance=prov, overwrite=overwrite, protect=[src],
                       icc_profile=loaded.icc_profile)  # fmt: skip
    return {
        "input": str(src),
        "output": str(saved),
        "model": res.model,
        "scale": res.scale,
        "size_in": [loaded.width, loaded.height],
        "size_out": [int(rgb.shape[1]), int(rgb.shape[0])],
        "tile": res.tile,
        "overlap": res.overlap,
        "tiles": res.n_tiles,
        "seconds": round(res.seconds, 3),
        "device": res.device,
    }


def _cmd_upscale(args: argparse.Namespace) -> int:
    from ..io import load_image
    from ..sr.upscale import UpscalePipeline

    items, single = _single_or_batch(args, args.image)
    if single:
        load_image(single[0])  # an unreadable image is a usage error before the model loads
    pipe = UpscalePipeline(args.model, scale=args.scale, device=args.device)
    return _run_single_or_batch(
        args, items, single, functools.partial(_upscale_one, args, pipe), "upscale",
        lambda d: f"wrote {d['output']} ({d['size_out'][0]}x{d['size_out'][1]}, {d['model']} x{d['scale']}, "
                  f"{d['tiles']} tile(s), {d['seconds']:.1f} s on {d['device']})",
    )  # fmt: skip


def _run_single_or_batch(
    args: argparse.Namespace, items: Any, single: Any, one: Callable[..., dict], command: str,
    summary: Callable[[dict], str],
) -> int:  # fmt: skip
    """Run ``one(src, out, overwrite, progress=None) -> record`` over the batch ``items`` (through
    :func:`frgd.cli.batch.finish_batch`) or on the ``single`` ``(src, out)`` pair with a progress bar, printing
    ``summary(record)``; returns the exit code."""
    from .batch import finish_batch

    if items is not None:
        work = lambda item: one(item.source, item.outputs[0], True)  # noqa: E731
        return finish_batch(args, items, work, label=f"frgd {command}")
    show = _progress(command, sys.stderr.isatty() and not args.json)
    d = one(*single, args.overwrite, progress=show)
    emit(args, d, summary(d))
    return 0


def _restore_one(args: argparse.Namespace, pipe: Any, damages: DamageSource, src: Path, out: Path, overwrite: bool,
                 progress=None) -> dict:  # fmt: skip
    """Restore the faces of one photo file with ``pipe`` (a :class:`frgd.restore.FacePipeline`) into ``out`` (alpha
    kept, provenance embedded), its damage from ``damages``; returns its JSON record."""
    from ..io import Provenance, file_sha256, load_image, save_image
    from ..sr.upscale import upscale_alpha

    t0 = time.perf_counter()
    loaded = load_image(src)
    damage, damage_record = damages.for_photo(loaded.rgb)
    res = pipe(loaded.rgb, which=args.faces, seeds=[args.seed], scale=args.scale, damage=damage, progress=progress)
    alpha = upscale_alpha(loaded.alpha, res.scale)
    prov = Provenance(
        model=res.model,
        seed=args.seed,
        parameters={"command": "restore", "method": res.method, "scale": res.scale, "bg_model": res.sr_model,
                    "faces": len(res.faces), "min_score": pipe.min_score, "weight": args.weight,
                    **damage_record},
        identity_changed=res.identity_changed,  # frgd.restore's one rule: True when a generative restorer ran
        source_hash=file_sha256(src),
    )  # fmt: skip
    saved = save_image(out, res.images[0], alpha=alpha, provenance=prov, overwrite=overwrite, protect=[src],
                       icc_profile=loaded.icc_profile)  # fmt: skip
    faces = {}
    if args.save_faces:  # named like the output photo (batch: the input's stem, as the output)
        from ..restore.face_files import write_face_files

        index = write_face_files(args.save_faces, out.stem, res.faces, command="frgd restore", source=src,
                                 outputs=[saved], source_hash=prov.source_hash, overwrite=overwrite,
                                 icc_profile=loaded.icc_profile)  # fmt: skip
        faces["face_files"] = index["index"]
    return {
        "input": str(src),
        "output": str(saved),
        "model": res.model,
        "faces": [f.to_json() for f in res.faces],
        "scale": res.scale,
        "bg_model": res.sr_model,
        "identity_changed": res.identity_changed,
        **damage_record,
        **faces,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _cmd_restore(args: argparse.Namespace) -> int:
    from ..io import load_image
    from ..restore import FacePipeline, restorer_class
    from ..restore.face_files import check_face_folder
    from .batch import add_index_outputs

    cls = restorer_class(args.method)  # InputError (exit 2) for a method not in RESTORERS
    if args.method == "frgd":
        return _restore_frgd(args)

    ignored = frgd_flags_given(args)
    if ignored:
        raise InputError(
            f"{', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} FRGD's: use --method frgd "
            f"({args.method} takes no reference photo and has no sampler)"
        )
    if not 0.0 <= args.weight <= 1.0:
        raise InputError(f"--weight must be in [0, 1], got {args.weight}")
    items, single = _single_or_batch(args, args.image)
    if args.damage and args.damage != DAMAGE_AUTO and not single:
        raise InputError("--damage is photo-sized: give one photo with it (or --damage auto)")
    if single:
        load_image(single[0])  # an unreadable photo is a usage error before the model loads
    if args.save_faces and single:
        check_face_folder(args.save_faces, single[1].stem, overwrite=args.overwrite)
    elif args.save_faces:
        add_index_outputs(items, args.save_faces, args.image, args.out)
    restorer = cls(version=args.version, weights=args.weights, device=args.device, weight=args.weight)
    pipe = FacePipeline(restorer, sr_model=args.bg_model, tile=args.tile, min_score=args.min_score)
    damages = DamageSource(args.damage, args.device)
    return _run_single_or_batch(
        args, items, single, functools.partial(_restore_one, args, pipe, damages), "restore",
        lambda d: f"wrote {d['output']}: {len(d['faces'])} face(s) restored with {d['model']}, "
                  f"background {d['bg_model']}" + (f"; faces: {d['face_files']}" if "face_files" in d else ""),
    )  # fmt: skip


def _restore_frgd(args: argparse.Namespace) -> int:
    """``frgd restore --method frgd``: ``frgd enhance``'s loading and run (one sample of seed ``--seed``, background
    ``--bg-model``), so both give the same pixels."""
    from .cmd_enhance import _cmd_enhance

    if args.weights or args.weight != 1.0:
        raise InputError("--weights and --weight are GFPGAN's; --method frgd takes --model and --identity")
    ns = argparse.Namespace(**vars(args))
    ns.photo, ns.samples, ns.mask, ns.aligned, ns.sr_model = args.image, 1, None, False, args.bg_model
    return _cmd_enhance(ns, label="frgd restore")
