"""``frgd enhance`` (FRGD restoration of a photo or an aligned crop), ``frgd eval faces``, ``frgd bench enhance``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..devices import DEVICE_CHOICES, DEVICE_HELP, device_arg
from ..errors import InputError
from .damage_source import DAMAGE_AUTO, DAMAGE_HELP, DamageSource
from .main import add_json_flags, add_save_faces_flag, emit

logger = logging.getLogger(__name__)


def _numbers(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return vals


def _float_list(text: str) -> list[float]:
    vals = _numbers(text)
    if any(not 0.0 <= v <= 1.0 for v in vals):
        raise argparse.ArgumentTypeError(f"slider values must be in [0, 1], got {text!r}")
    return vals


def _add_val_faces_flags(p: argparse.ArgumentParser) -> None:
    """``--data`` (the faces128 validation faces) and ``--model`` of the ``frgd eval`` commands on FRGD."""
    p.add_argument("--data", required=True, metavar="DIR", help="faces128 folder (labels.csv, val/)")
    p.add_argument("--model", metavar="DIR", help="FRGD model folder (default: the installed frgd-128)")


def _scale_list(text: str) -> list[float]:
    """Downscale factors, each in ``[1, frgd.degrade.MAX_SCALE]`` (what training reaches: x64, 2 px faces)."""
    from ..degrade import MAX_SCALE

    vals = _numbers(text)
    if any(not 1.0 <= v <= MAX_SCALE for v in vals):
        raise argparse.ArgumentTypeError(f"downscale factors must be in [1, {MAX_SCALE:g}], got {text!r}")
    return vals


def _scale(text: str) -> str | float:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale must be 'auto' or a number, got {text!r}") from None


def _passive_omp_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless set; only effective before
    torch loads). Measured on the shared 2-core VM, 20 guided steps: 33.3 s instead of 48.4 s per sample, the
    identity guidance 1.25 s instead of 5.8 s (spinning threads fight the other jobs for the cores)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def number_arg(flag: str, cast: type, lo: float, hi: float, auto: bool = False):
    """argparse ``type`` of ``flag``: a ``cast`` (``int`` or ``float``) number in ``lo..hi``, or with ``auto`` the word
    ``auto`` (-> ``None``)."""

    def parse(text: str):
        if auto and text == "auto":
            return None
        try:
            v = cast(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            kind = ("'auto' or " if auto else "") + ("an integer" if cast is int else "a number")
            raise argparse.ArgumentTypeError(f"{flag} must be {kind} in {lo}..{hi}, got {text!r}")
        return v

    return parse


def _add_sampler_flags(p: argparse.ArgumentParser) -> None:
    """``--steps``, ``--scheduler`` (choices from the scheduler registry), ``--harmonise``, ``--identity-gradient``,
    ``--no-prior``, ``--no-back-projection`` and ``--prior-share``."""
    from ..diffusion.sampling.schedulers import (
        DEFAULT_SCHEDULER,
        DEFAULT_STEPS,
        IDENTITY_GRADIENT,
        IDENTITY_GRADIENTS,
        RESAMPLE,
        RESAMPLE_MAX,
        SCHEDULERS,
    )

    p.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, metavar="T", help=f"sampling steps (default {DEFAULT_STEPS})"
    )
    p.add_argument(
        "--scheduler",
        default=DEFAULT_SCHEDULER,
        choices=tuple(SCHEDULERS),
        help="sampler: "
        + "; ".join(f"{k} = {v.help}" for k, v in SCHEDULERS.items())
        + f" (default {DEFAULT_SCHEDULER})",
    )

    p.add_argument(
        "--harmonise",
        type=number_arg("--harmonise", int, 0, RESAMPLE_MAX),
        default=RESAMPLE,
        metavar="N",
        help=f"harmonising passes per sampling step, 0..{RESAMPLE_MAX}: each lets the model re-read what the guidance "
        "did (fewer cracks and smears at the identity end, one more model call per step; "
        f"default {RESAMPLE})",
    )
    p.add_argument(
        "--identity-gradient",
        choices=IDENTITY_GRADIENTS,
        default=IDENTITY_GRADIENT,
        help="how identity guidance pushes the sample: denoiser = through the model (fewer cracked faces at high "
        "identity), x0 = at the model's estimate alone (about 1.6x faster and less memory on a CPU; "
        f"default {IDENTITY_GRADIENT})",
    )
    p.add_argument(
        "--no-prior",
        action="store_true",
        help="start from the bicubic upscale of the input instead of the FRGD prior's estimate (the default when the "
        "prior is installed: a sharper content end)",
    )
    p.add_argument(
        "--no-back-projection",
        action="store_true",
        help="leave a whole face as the model made it instead of bringing it back to what the input shows at the "
        "input's own resolution (the default keeps the finer detail and makes a good input come out closer to itself)",
    )

    p.add_argument(
        "--prior-share",
        type=number_arg("--prior-share", float, 0.0, 1.0, auto=True),
        default=None,
        metavar="auto|A",
        help="what a face (with --mask: the masked region) is held to at the input's resolution: 0 = the input's "
        "pixels (a clean input), 1 = the FRGD prior's cleaned estimate (a noisy, blurred or JPEG input, whose noise "
        "and blocks must not come back), in between a mix; auto estimates it per face (default auto)",
    )


def add_faces_flag(p: argparse.ArgumentParser) -> None:
    """``--faces``: which faces to restore, parsed by :func:`frgd.restore.choose_faces`, and ``--min-score``: what
    counts as a face (``frgd enhance``, ``frgd restore``)."""
    p.add_argument(
        "--faces",
        default="all",
        metavar="SEL",
        help="all | largest | center | face numbers, 1-based from left to right, like 1,3 (default all)",
    )
    add_min_score_flag(p)


def add_min_score_flag(p: argparse.ArgumentParser) -> None:
    """``--min-score P``: the detection floor, default :data:`frgd.faces.rules.FACE_MIN_SCORE` (``frgd faces`` too)."""
    from ..faces.rules import FACE_MIN_SCORE

    p.add_argument(
        "--min-score",
        type=float,
        default=FACE_MIN_SCORE,
        metavar="P",
        help="smallest face-detection score (MTCNN probability, 0..1) of a face; lower it for a small or damaged face "
        f"that is not found, raise it if flowers or patterns are taken for faces (default {FACE_MIN_SCORE})",
    )


FRGD_ONLY_FLAGS = (
    "--reference", "--identity", "--candidates", "--reference-faces", "--steps", "--scheduler", "--harmonise",
    "--identity-gradient", "--no-prior", "--no-back-projection", "--prior-share", "--model",
)  # fmt: skip
"""The flags of :func:`add_frgd_flags`: ``frgd restore`` refuses them with another ``--method`` (which would ignore
them)."""


def frgd_flags_given(args: argparse.Namespace) -> list[str]:
    """Those of :data:`FRGD_ONLY_FLAGS` whose value in ``args`` differs from :func:`add_frgd_flags`' default."""
    p = argparse.ArgumentParser(add_help=False)
    add_frgd_flags(p)
    given = []
    for flag in FRGD_ONLY_FLAGS:
        dest = flag.lstrip("-").replace("-", "_")
        if getattr(args, dest, None) != p.get_default(dest):
            given.append(flag)
    return given


def add_frgd_flags(p: argparse.ArgumentParser) -> None:
    """The FRGD settings of ``frgd enhance`` and ``frgd restore --method frgd``: references, identity strength, sampler,
    model folder (:data:`FRGD_ONLY_FLAGS`)."""
    from ..diffusion.sampling.schedulers import DEFAULT_IDENTITY_STRENGTH

    p.add_argument(
        "--reference", action="append", default=[], metavar="REF", help="reference photo of the person (repeatable)"
    )
    p.add_argument(
        "--identity",
        type=float,
        default=DEFAULT_IDENTITY_STRENGTH,
        metavar="S",
        help=f"identity strength in [0,1] (default {DEFAULT_IDENTITY_STRENGTH})",
    )
    p.add_argument(
        "--candidates", type=int, default=1, metavar="C",
        help="sample every output C times and keep the one the identity encoder finds most like the reference "
        "(needs --reference; C times the sampling time; default 1)",
    )  # fmt: skip
    p.add_argument(
        "--reference-faces", default="best", metavar="SEL",
        help="in a photo of several people, the faces the reference is of: best = the face the identity encoder "
        "finds clearly most like it (none when two are close or none looks like it: then choose), all, or face "
        "numbers like 2 or 1,3; the other faces are restored without it (default best)",
    )  # fmt: skip
    _add_sampler_flags(p)
    p.add_argument("--model", metavar="DIR", help="FRGD model folder (default: the installed frgd-128)")


def add_batch_flags(p: argparse.ArgumentParser) -> None:
    """``--format`` (the outputs of a batch), ``--overwrite`` and the JSON flags of a per-photo command
    (:mod:`frgd.cli.batch`)."""
    p.add_argument(
        "--format", default="png", choices=("png", "jpg", "webp", "tif"), help="output format in batch mode (png)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing output files, redo finished photos (never the input)"
    )
    add_json_flags(p)


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = root.add_parser(
        "enhance",
        help="restore faces with FRGD (identity-guided diffusion), optionally towards a reference photo",
        description=(
            "Detect the faces of PHOTO, restore each with the FRGD diffusion model (the face the --reference photos "
            "are of guided towards their identity; see --reference-faces) and paste them back into the photo "
            "upscaled by the general SR model. "
            "Faces are numbered 1, 2, ... from left to right, as in the editor. "
            "With --aligned, PHOTO is an aligned face crop and the 128x128 restored crops are written. One file per "
            "sample: OUT, or OUT_seedK.<ext> when --samples > 1. Provenance (model, seeds, parameters, reference "
            "hashes) is embedded and every output is flagged identity-changed (a generative restoration); the "
            "photo's colour profile and transparency are kept. "
            "Batch: several PHOTOs or a folder write OUT/<name>.<format> into the folder OUT, with a progress bar; "
            "photos already done (outputs newer than the photo) are skipped unless --overwrite; a photo that fails "
            "is reported (OUT/frgd_report.json and the last lines) and the others go on; the exit code is then 1."
        ),
    )
    p.add_argument(
        "photo", metavar="PHOTO", nargs="+", help="input photo(s) or folder(s) (aligned crops with --aligned)"
    )
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output image (.png/.jpg/.webp/.tif), or folder")
    add_frgd_flags(p)
    p.add_argument("--samples", type=int, default=1, metavar="N", help="number of samples (default 1)")
    p.add_argument("--seed", type=int, default=None, metavar="K", help="seed of the first sample (K, K+1, ...)")
    p.add_argument("--mask", metavar="MASK.png", help="white = may change (photo-sized, or crop-sized with --aligned)")
    p.add_argument("--damage", metavar="DAMAGE.png|auto", help=DAMAGE_HELP)
    p.add_argument("--aligned", action="store_true", help="PHOTO and references are aligned face crops")
    p.add_argument(
        "--sr-model",
        default=None,
        metavar="NAME",
        help="general SR model of the photo (default auto: realesrgan-x4plus on a GPU if installed, scale 2..4; "
        "else lanczos)",
    )
    p.add_argument("--scale", type=_scale, default="auto", metavar="S", help="photo upscale factor or auto (default)")
    add_faces_flag(p)
    add_save_faces_flag(p)
    p.add_argument("--device", default="auto", type=device_arg, metavar="DEV", help=DEVICE_HELP)
    add_batch_flags(p)
    p.set_defaults(func=_cmd_enhance)

    ev = groups["eval"].add_parser(
        "faces",
        help="FRGD on degraded validation faces: PSNR/SSIM, detail and judge identity similarity vs ground truth",
        description=(
            "Degrade faces128 validation crops deterministically (fixed downscale by --scale), restore them with FRGD "
            "without and with a reference (another photo of the same person) for several slider values, and report "
            "PSNR/SSIM, the fine detail relative to the ground truth (1 = as much as the true face; smeared faces read"
            " far below 1) and the independent judge's identity similarity to the ground truth, next to bicubic."
        ),
    )
    _add_val_faces_flags(ev)
    ev.add_argument("--scale", type=float, default=8.0, help="downscale factor (default 8: 16 px faces)")
    ev.add_argument("--preset", default="clean", choices=("clean", "mild", "medium"), help="degradation preset")
    ev.add_argument("--limit", type=int, default=50, metavar="N", help="number of validation faces (default 50)")
    ev.add_argument(
        "--first", type=int, default=0, metavar="K",
        help="skip the first K validation pairs (a tuning set disjoint from the default one; default 0)",
    )  # fmt: skip
    ev.add_argument("--sliders", type=_float_list, default=[0.0, 0.5, 1.0], metavar="S,S", help="slider values")
    _add_sampler_flags(ev)
    ev.add_argument("--batch", type=int, default=8, metavar="B", help="faces per sampler batch (default 8)")
    ev.add_argument("--seed", type=int, default=0, help="seed (degradation noise and sampling)")
    ev.add_argument(
        "--repeats", type=int, default=1, metavar="R",
        help="samples per face and setting, with other seeds (default 1; more make the slider gains less noisy)",
    )  # fmt: skip
    ev.add_argument(
        "--candidates", type=int, default=1, metavar="C",
        help="rows with a reference: keep the most reference-like of C samples (frgd enhance --candidates; default 1)",
    )  # fmt: skip
    ev.add_argument("--no-judge", action="store_true", help="skip the judge (identity similarity) metric")
    ev.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="compute device (default auto)")
    ev.add_argument(
        "--grid", metavar="PNG", help="also write a sample grid: input, bicubic, one sample per slider, ground truth"
    )
    ev.add_argument("--grid-faces", type=int, default=4, metavar="N", help="faces (rows) in the grid (default 4)")
    add_json_flags(ev)
    ev.set_defaults(func=_cmd_eval_faces)

    iu = groups["eval"].add_parser(
        "identity-use",
        help="does the FRGD model use the reference? its loss with the right, a wrong and no identity embedding",
        description=(
            "On faces128 validation pairs (the inputs of frgd eval faces), compute the model's training loss at fixed "
            "noise with the reference's embedding, another person's and the null embedding, and report the paired "
            "relative gains per timestep (frgd.eval.identity_use). Zero gains: the model ignores the identity."
        ),
    )
    _add_val_faces_flags(iu)
    iu.add_argument("--limit", type=int, default=48, metavar="N", help="number of validation faces (default 48)")
    iu.add_argument("--scales", type=_scale_list, default=[8.0, 4.0], metavar="S,S", help="downscale factors")
    iu.add_argument("--seed", type=int, default=0, help="seed of the noise draws (default 0)")
    iu.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="compute device (default auto)")
    add_json_flags(iu)
    iu.set_defaults(func=_cmd_eval_identity_use)

    b = groups["bench"].add_parser(
        "enhance",
        help="FRGD sampling speed (seconds per sample) on this machine",
        description=(
            "Time FRGD sampling at the default settings for 1 and N samples: seconds per sample, where the time goes "
            "(UNet vs identity guidance) and peak memory. --config builds a preset's model with random weights "
            "(speed only, the output is noise); default: the round-sized model (round_frgd128.json)."
        ),
    )
    src = b.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="DIR", help="time a trained FRGD model folder")
    src.add_argument(
        "--config",
        choices=("round", "tiny"),
        default=None,
        help="random-weight model: round (round_frgd128.json, ~8 M params, the default), tiny",
    )
    b.add_argument("--samples", type=int, default=4, metavar="N", help="batch size of the second run (default 4)")
    _add_sampler_flags(b)
    b.add_argument("--identity", type=float, default=0.5, metavar="S", help="slider value (default 0.5)")
    b.add_argument("--no-reference", action="store_true", help="time the no-reference mode (no guidance, no CFG)")
    b.add_argument("--repeats", type=int, default=1, help="timed repeats per configuration (default 1)")
    b.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads (default: torch's)")
    b.add_argument("--device", default="cpu", choices=DEVICE_CHOICES, help="compute device (default cpu)")
    add_json_flags(b)
    b.set_defaults(func=_cmd_bench)


def _out_paths(out: str | Path, seeds: list[int]) -> list[Path]:
    path = Path(out)
    if len(seeds) == 1:
        return [path]
    return [path.with_name(f"{path.stem}_seed{s}{path.suffix}") for s in seeds]


@dataclass
class _Enhance:
    """What every photo of one ``frgd enhance`` run shares: the restorer, the pipeline, references, mask, damage,
    params."""

    args: argparse.Namespace
    restorer: Any
    pipe: Any
    mask: Any
    ref_hashes: dict[str, str]
    protect: list[str]
    damage: DamageSource | None = None
    label: str = "frgd enhance"

    def run(self, photo: Path, paths: list[Path], seeds: list[int], overwrite: bool, stem: str = "") -> dict[str, Any]:
        """Restore one photo (or aligned crop) and write ``paths`` (one per seed); with ``--save-faces`` also its
        faces, named by ``stem`` (:mod:`frgd.restore.face_files`); returns its JSON record."""
        from ..io import Provenance, file_sha256, load_image, save_image
        from ..restore import FaceRequest, fit_crop, identity_changed, keep_monochrome, repair_content
        from ..sr.upscale import upscale_alpha

        args = self.args
        loaded = load_image(photo)  # its transparency, colour profile and bit depth go to the outputs
        # a 16-bit photo stays 16-bit (its background is upscaled in 16 bits, the faces blended into it, as frgd
        # restore does); an aligned crop's output is a new 128 px face made in 8 bits
        img, alpha = (loaded.to_uint8() if args.aligned else loaded.rgb), None
        damage, damage_record = self.damage.for_photo(img) if self.damage is not None else (None, {"damage": None})
        params = {
            "identity_strength": args.identity,
            "samples": args.samples,
            "steps": args.steps,
            "scheduler": args.scheduler,
            "harmonise": args.harmonise,
            "identity_gradient": args.identity_gradient,
            "prior": self.restorer.params()["prior"],
            "aligned": bool(args.aligned),
            "mask": Path(args.mask).name if args.mask else None,
            **damage_record,
            "identity_guided": bool(self.restorer.references) and args.identity > 0,
        }
        if args.aligned:
            size = self.restorer.crop_size
            damage = None if damage is None else self._aligned_damage(img, damage, size)
            request = FaceRequest(mask=None if self.mask is None else fit_crop(self.mask, size), damage=damage)
            samples = keep_monochrome(img, self.restorer.restore_crop(repair_content(img, request), request, seeds))
            images = [s.image for s in samples]
            verdicts = [[s.verdict] for s in samples]
            changed = identity_changed(s.method for s in samples)
            scores = [s.identity_score for s in samples]
            params["mode"] = "aligned"
            extra: dict[str, Any] = {"identity_scores": None if scores[0] is None else [round(v, 4) for v in scores]}
            meters = [samples[0].params.get("identity_meter")]
            timings = {}
            first = samples[0].params
        else:
            out = self.pipe(img, which=args.faces, num_samples=args.samples, seeds=seeds, scale=args.scale,
                            mask=self.mask, damage=damage, require_faces=True,
                            reference_faces=args.reference_faces)  # fmt: skip
            images, changed = out.images, out.identity_changed
            verdicts = [out.verdicts(k) for k in range(len(seeds))]
            params.update(mode="photo", scale=out.scale, sr_model=out.sr_model, min_score=self.pipe.min_score,
                          reference_faces=out.params["reference_faces"])  # fmt: skip
            params["identity_guided"] = bool(out.params["reference_faces"]) and args.identity > 0
            extra = {"faces": [f.to_json() for f in out.faces]}
            alpha = upscale_alpha(loaded.alpha, out.scale)  # an aligned crop's output is a new 128 px face: none
            if out.params["reference_note"]:
                extra["reference_note"] = out.params["reference_note"]
            meters = [f.samples[0].params.get("identity_meter") for f in out.faces]
            timings, first = out.timings, out.faces[0].samples[0].params
        extra["weights"] = first.get("weights")
        # what the faces started from: a mask keeps the input's upscale outside it, so no prior is used there
        params["base"] = first.get("base")
        if params["base"] != params["prior"]:
            params["prior"] = None
        params["back_projection"] = bool(first.get("back_projection"))  # whole faces only: never under a mask
        params["prior_share"] = first.get("prior_share")  # how far the content target followed the prior (or None)
        params["candidates"] = (first.get("candidates") or {}).get("count", 1)  # 1 where s = 0 ignores the reference
        if any(m is not None for m in meters):
            extra["identity_meter"] = meters[0] if args.aligned else meters
        source_hash = file_sha256(photo)
        written = []
        for k, (pth, seed) in enumerate(zip(paths, seeds)):
            prov = Provenance(
                model=f"frgd:{self.restorer.name}",
                seed=seed,
                parameters={**params, "identity_meter": verdicts[k] if any(verdicts[k]) else None},
                reference_hashes=self.ref_hashes,
                identity_changed=changed,
                source_hash=source_hash,
            )
            saved = save_image(pth, images[k], alpha=alpha, provenance=prov, overwrite=overwrite,
                               protect=[photo, *self.protect], icc_profile=loaded.icc_profile)  # fmt: skip
            written.append(str(saved))
        if args.save_faces and not args.aligned:
            from ..restore.face_files import write_face_files

            extra["face_files"] = write_face_files(
                args.save_faces, stem, out.faces, command=self.label, source=photo, outputs=written,
                source_hash=source_hash, overwrite=overwrite,
                reference_hashes={f.number: self.ref_hashes for f in out.faces if f.reference},
                protect=[photo, *self.protect], icc_profile=loaded.icc_profile,
            )["index"]  # fmt: skip
        return {"outputs": written, "seeds": seeds, **params, **extra, "timings": timings}

    def _aligned_damage(self, img, damage, size: int):
        """The damage ``damage`` of an aligned crop (its own size) in the ``size`` crop frame, by the sampler's own rule
        (:func:`frgd.diffusion.damage.damage_at`: a crop pixel is damaged when any part of it is), so the sampler
        finds the same input pixels damaged again (``None`` when it marks nothing)."""
        from ..restore import FaceRequest

        if damage.shape != img.shape[:2]:
            raise InputError(
                f"--damage must be the aligned crop's size {img.shape[1]}x{img.shape[0]}, got "
                f"{damage.shape[1]}x{damage.shape[0]}"
            )  # fmt: skip
        return FaceRequest(damage=damage).damage_at((size, size))


def _cmd_enhance(args: argparse.Namespace, label: str = "frgd enhance") -> int:
    """``frgd enhance`` (also ``frgd restore --method frgd``, which passes its own ``label``)."""
    _passive_omp_threads()
    from ..diffusion.sampling.pipeline import check_candidates, normalize_seeds
    from ..io import SAVE_EXTENSIONS, check_output, load_rgb
    from ..restore.face_files import check_face_folder
    from .batch import add_index_outputs, collect_inputs, finish_batch, is_batch, plan

    batch = is_batch(args.photo)
    if not batch and Path(args.out).suffix.lower() not in SAVE_EXTENSIONS:
        raise InputError(
            f"unsupported output extension {Path(args.out).suffix!r}; use one of {', '.join(SAVE_EXTENSIONS)}"
        )
    if not 0.0 <= args.identity <= 1.0:
        raise InputError(f"--identity must be in [0, 1], got {args.identity}")
    if args.samples < 1:
        raise InputError(f"--samples must be at least 1, got {args.samples}")
    # a usage error before any model loads
    check_candidates(args.candidates, bool(args.reference), name="--candidates", reference="--reference")
    if args.reference_faces != "best" and (not args.reference or args.aligned):
        raise InputError(
            "--reference-faces chooses which faces of a photo a --reference is of: give --reference too"
            if not args.reference else "--reference-faces is for photos; --aligned restores one face crop"
        )  # fmt: skip
    damage_file = None if args.damage == DAMAGE_AUTO else args.damage  # auto: each photo's own
    for flag, given in (("--mask", args.mask), ("--damage", damage_file)):
        if batch and given and not args.aligned:
            raise InputError(f"{flag} is photo-sized: give one photo with it (or --aligned crops of one size)")
    if args.save_faces and args.aligned:
        raise InputError("--save-faces is for photos: with --aligned the outputs are the restored face crops")
    seeds = normalize_seeds(args.seed, args.samples)
    protect = [*args.reference] + [m for m in (args.mask, damage_file) if m]
    if batch:
        items = plan(
            collect_inputs(args.photo),
            Path(args.out),
            lambda src: [p.name for p in _out_paths(f"{src.stem}.{args.format}", seeds)],
        )
        if args.save_faces:
            add_index_outputs(items, args.save_faces, args.photo, args.out)
    else:
        photo = Path(args.photo[0])
        load_rgb(photo)  # an unreadable photo is a usage error before the model loads
        paths = _out_paths(args.out, seeds)
        for pth in paths:
            check_output(pth, overwrite=args.overwrite, protect=[photo, *protect])
        if args.save_faces:
            check_face_folder(args.save_faces, Path(args.out).stem, overwrite=args.overwrite)

    ctx = _load_enhance(args, protect)
    ctx.label = label
    if not batch:
        data = ctx.run(photo, paths, seeds, args.overwrite, stem=Path(args.out).stem)
        text = [f"wrote {w} (seed {s})" for w, s in zip(data["outputs"], seeds)]
        if "face_files" in data:
            text.append(f"faces: {data['face_files']}")
        emit(args, data, "\n".join(text))
        return 0
    return finish_batch(
        args, items,
        lambda item: ctx.run(item.source, item.outputs[: len(seeds)], seeds, overwrite=True, stem=item.source.stem),
        label=label, protect=protect,
    )  # fmt: skip


def _load_enhance(args: argparse.Namespace, protect: list[str]) -> _Enhance:
    """Load the model, align the references once, read the mask and the damage: the shared state of
    :meth:`_Enhance.run`."""
    from ..io import file_sha256, load_mask, load_rgb
    from ..restore import FacePipeline, FRGDRestorer, load_frgd_pipeline

    mask = load_mask(args.mask) if args.mask else None
    damage = DamageSource(args.damage, args.device)
    frgd = load_frgd_pipeline(args.model, device=args.device)
    restorer = FRGDRestorer(
        frgd, identity_strength=args.identity, steps=args.steps, scheduler=args.scheduler, harmonise=args.harmonise,
        use_prior=not args.no_prior, candidates=args.candidates, identity_gradient=args.identity_gradient,
        back_projection=not args.no_back_projection, prior_share=args.prior_share,
    )  # fmt: skip
    pipe = FacePipeline(
        restorer, sr_model=args.sr_model or "auto", tile=getattr(args, "tile", "auto"), min_score=args.min_score
    )
    refs = [load_rgb(r) for r in args.reference]
    restorer.references = refs if args.aligned else pipe.reference_crops(refs)
    ref_hashes = {Path(r).name: file_sha256(r) for r in args.reference}
    return _Enhance(args, restorer, pipe, mask, ref_hashes, protect, damage)


def _cmd_eval_faces(args: argparse.Namespace) -> int:
    _passive_omp_threads()
    from ..eval.faces import evaluate_faces

    result = evaluate_faces(
        data_dir=args.data,
        model_dir=args.model,
        scale=args.scale,
        preset=args.preset,
        limit=args.limit,
        first=args.first,
        sliders=args.sliders,
        steps=args.steps,
        scheduler=args.scheduler,
        harmonise=args.harmonise,
        use_prior=not args.no_prior,
        back_projection=not args.no_back_projection,
        prior_share=args.prior_share,
        batch=args.batch,
        seed=args.seed,
        repeats=args.repeats,
        candidates=args.candidates,
        identity_gradient=args.identity_gradient,
        judge=not args.no_judge,
        device=args.device,
        grid=args.grid,
        grid_faces=args.grid_faces,
    )
    lines = [f"FRGD eval on {result['n_faces']} faces (x{args.scale:g}, {args.preset})"]
    for row in result["rows"]:
        sim = row.get("judge_similarity")
        sim_txt = f" judge {sim:.3f}" if sim is not None else ""
        quality = "" if row["psnr"] is None else f" PSNR {row['psnr']:.2f} SSIM {row['ssim']:.4f}"
        quality += "" if row.get("detail") is None else f" detail {row['detail']:.3f}"
        lines.append(f"  {row['method']:<28}{quality}{sim_txt}")
    for g in result["slider_gains"]:
        se = "" if g["se"] is None else f" +- {g['se']:.3f}"
        who = "ref" if g["reference"] else "no-ref"
        up = f"{g['faces_up']}/{g['faces']} faces up"
        lines.append(f"  judge s={g['from']:g} -> {g['to']:g} {who:<6} {g['gain']:+.3f}{se} ({up})")
    bar = result["bar"]
    lines.append("bar: " + ", ".join(f"{k} {'-' if v is None else ('yes' if v else 'NO')}" for k, v in bar.items()))
    if result["grid"]:
        lines.append(f"grid: {result['grid']['path']} ({', '.join(result['grid']['columns'])})")
    emit(args, result, "\n".join(lines))
    return 0


def _cmd_eval_identity_use(args: argparse.Namespace) -> int:
    _passive_omp_threads()
    from ..diffusion.training.data import read_image
    from ..eval.faces import reference_embeddings, select_pairs
    from ..eval.identity_use import identity_use, summary_lines
    from ..restore import load_frgd_pipeline

    if args.limit < 2:
        raise InputError(f"--limit must be at least 2, got {args.limit}")
    t0 = time.perf_counter()
    pipe = load_frgd_pipeline(args.model, device=args.device)
    pairs = select_pairs(args.data, args.limit)
    gts = [read_image(Path(args.data) / t) for t, _, _ in pairs]
    ref_emb = reference_embeddings(pipe, [read_image(Path(args.data) / r) for _, r, _ in pairs])
    result = identity_use(
        pipe.model, pipe.scheduler, gts, ref_emb.cpu(), identities=[i for _, _, i in pairs], scales=args.scales,
        seed=args.seed,
    )  # fmt: skip
    result.update(
        {"model": pipe.name, "data": str(args.data), "device": str(pipe.device), "identity_backend":
         pipe.identity_backend, "seconds": round(time.perf_counter() - t0, 1)}
    )  # fmt: skip
    head = f"identity use of {pipe.name} on {result['faces']} faces (loss with the reference vs null / a wrong one)"
    emit(args, result, "\n".join([head, *summary_lines(result)]))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    _passive_omp_threads()
    import torch

    from ..eval.faces import bench_sampler

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    result = bench_sampler(
        model_dir=args.model,
        config=args.config or ("round" if not args.model else None),
        steps=args.steps,
        samples=args.samples,
        scheduler=args.scheduler,
        harmonise=args.harmonise,
        use_prior=not args.no_prior,
        identity_strength=args.identity,
        with_reference=not args.no_reference,
        repeats=args.repeats,
        device=args.device,
        identity_gradient=args.identity_gradient,
        back_projection=not args.no_back_projection,
        prior_share=args.prior_share,
    )
    result = {"command": "frgd " + " ".join(sys.argv[1:]), **result}
    lines = [f"FRGD sampling on {result['device']} ({result['model']}, {args.steps} {args.scheduler} steps):"]
    for r in result["runs"]:
        lines.append(
            f"  N={r['num_samples']}: {r['seconds']:.2f} s total, {r['seconds_per_sample']:.2f} s/sample "
            f"(UNet {r['unet_seconds']:.2f} s, guidance {r['guidance_seconds']:.2f} s)"
        )
    lines.append(f"  peak memory {result['peak_memory_mib']:.0f} MiB")
    emit(args, result, "\n".join(lines))
    return 0
