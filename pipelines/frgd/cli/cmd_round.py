"""``frgd round``: FRGD-128 training rounds on a lent GPU (see :mod:`frgd.diffusion.training.round`).

* ``frgd round pack --faces ../shared/data/faces128 [--out .carry/round]``: the data pack (WebP at the best quality
  that fits the upload next to the tree) and a trimmed diffusers (the GPU machine has none) in one carry folder;
  ``--synthetic`` makes a small procedural pack for rehearsals.
* ``frgd round plan [--carry .carry/round]``: the exact upload of one device command; exit 2 when the 4 MiB margin
  under the 64 MiB limit is not kept (a dry run: GPU time must never be lost to a refused upload).
* ``frgd round run --pack DIR --out DIR --deadline-s S``: the round itself (what ``scripts/gpu_round.sh`` runs).
* ``frgd round validate OUT --pack DIR --out DIR2``: the round's validation afterwards (on this CPU), for a round
  whose command ended before its own check; writes a validated copy to land.
* ``frgd round land OUT``: install a round's weights as the default ``frgd-128`` and record it under
  ``docs/results/rounds/``.
"""

from __future__ import annotations

import argparse
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

from ..errors import InputError
from .main import add_json_flags, emit

logger = logging.getLogger(__name__)

CARRY_DIR = Path(".carry/round")
DROPPED_CACHE = "compile_cache.dropped.bin"  # beside the carry folder (not uploaded): a cache the faces had no room for
KEPT_CACHE = Path("scripts/round_cache/compile_cache.bin")
"""Where ``frgd round land`` keeps a round's compiled kernels for the next session's first call (repository-relative;
``scripts/gpu_round.sh`` names the same path). Tracked, not carried: every session starts from a new checkout, which
has no ``.carry`` folder, and the tree travels with every device command anyway."""
PACK_SUBDIR = "pack"
DIFFUSERS_ZIP = "diffusers.zip"
DIFFUSERS_DROP = ("pipelines/*/", "modular_pipelines/*/", "commands/", "models/autoencoders/", "models/controlnets/")
"""Parts of the installed diffusers the round never imports (left out of the carried zip)."""


def repo_root() -> Path:
    """The checkout this package runs from (``pipelines/frgd/cli`` -> the repository root)."""
    return Path(__file__).resolve().parents[3]


def trim_diffusers(dest: Path) -> int:
    """Zip the installed diffusers without :data:`DIFFUSERS_DROP` (importable from the zip); returns its size."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("diffusers")
    except PackageNotFoundError:
        raise InputError("diffusers is not installed here (pip install diffusers)") from None

    def keep(rel: str) -> bool:
        parts = rel.split("/")
        if "__pycache__" in parts:
            return False
        if parts[0].endswith(".dist-info"):
            return True
        if parts[0] != "diffusers" or not rel.endswith((".py", ".json")):
            return False
        sub = "/".join(parts[1:])
        for pat in DIFFUSERS_DROP:
            if pat.endswith("*/"):  # the sub-folders of a folder; its own files stay
                base = pat[:-2]
                if sub.startswith(base) and "/" in sub[len(base) :]:
                    return False
            elif sub.startswith(pat):
                return False
        return True

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for f in dist.files or []:
            rel = str(f)
            if not keep(rel):
                continue
            src = Path(dist.locate_file(f))
            if src.is_file():
                zf.write(src, rel)
    tmp.replace(dest)
    return dest.stat().st_size


def _pack(args: argparse.Namespace) -> int:
    from ..diffusion.training.compile_cache import COMPILE_CACHE_FILE
    from ..diffusion.training.pack import PACK_FILE, faces128_source, synthetic_source, write_pack
    from ..diffusion.training.round import UPLOAD_LIMIT, UPLOAD_MARGIN, upload_bytes

    out = Path(args.out)
    t0 = time.perf_counter()
    zsize = trim_diffusers(out / DIFFUSERS_ZIP)
    if args.synthetic:
        src = synthetic_source(n_train=args.synthetic, seed=args.seed)
    else:
        if not args.faces:
            raise InputError("give --faces FACES128_DIR (and --embeddings NPZ) or --synthetic N")
        emb = args.embeddings or str(Path(args.faces) / "embeddings_dlib_fp16.npz")
        from ..diffusion.training.round import ROUND_DEFAULTS

        pairs = args.val_pairs if args.val_pairs is not None else int(ROUND_DEFAULTS["val_count"])
        src = faces128_source(args.faces, emb, val_pairs=pairs)
    pack_dir = out / PACK_SUBDIR
    (pack_dir / PACK_FILE).unlink(missing_ok=True)  # do not count a previous pack against the budget
    if (out / COMPILE_CACHE_FILE).is_file():  # where land kept it before: the script reads the tree's copy only
        logger.warning("removed %s: the compile cache travels in the tree (%s)", out / COMPILE_CACHE_FILE, KEPT_CACHE)
        (out / COMPILE_CACHE_FILE).unlink()
    root = repo_root()
    rel = out.resolve().relative_to(root) if out.resolve().is_relative_to(root) else None
    plan = upload_bytes(root, [rel] if rel is not None else [])
    budget = UPLOAD_LIMIT - UPLOAD_MARGIN - plan["total_bytes"] - (0 if rel is not None else zsize)
    if args.quality == "auto" and budget <= 0:
        raise InputError(f"no room for a pack: the upload is already {plan['total_bytes'] / 2**20:.1f} MiB")
    quality: Any = args.quality if args.quality == "auto" else int(args.quality)
    cache = root / KEPT_CACHE  # in the tree, so already counted in the plan
    try:
        info = write_pack(src, pack_dir, quality=quality, budget_bytes=budget if quality == "auto" else None)
    except InputError:
        if not (quality == "auto" and cache.is_file()):
            raise
        # the faces come first: without the compile cache the round compiles as before (about 2 minutes)
        aside = out.parent / DROPPED_CACHE
        logger.warning(
            "the faces do not fit next to the kept compile cache (%.2f MiB): moved to %s, packing without it "
            "(the tree now lacks %s: restore it with git checkout once the round is done; do not commit the deletion)",
            cache.stat().st_size / 2**20, aside, KEPT_CACHE,
        )  # fmt: skip
        aside.parent.mkdir(parents=True, exist_ok=True)
        cache.replace(aside)
        budget += aside.stat().st_size
        info = write_pack(src, pack_dir, quality=quality, budget_bytes=budget)
        info["compile_cache_dropped"] = str(aside)
    info["diffusers_zip_bytes"] = zsize
    info["seconds"] = time.perf_counter() - t0
    final = upload_bytes(root, [rel]) if rel is not None else None
    if final is not None:
        info["upload"] = final
    text = (
        f"pack: {info['faces_train']} train faces, {info['val_targets']} val pairs, WebP q{info['webp_quality']}, "
        f"{info['bytes'] / 2**20:.2f} MiB; diffusers zip {zsize / 2**20:.2f} MiB"
        + (f"; upload {final['total_bytes'] / 2**20:.2f} MiB of 64" if final else "")
    )
    emit(args, info, text)
    return 0


def _plan(args: argparse.Namespace) -> int:
    from ..diffusion.training.round import UPLOAD_MARGIN, upload_bytes

    plan = upload_bytes(repo_root(), args.carry)
    cache = repo_root() / KEPT_CACHE
    plan["compile_cache_bytes"] = cache.stat().st_size if cache.is_file() else 0
    kept = f" (compile cache {plan['compile_cache_bytes'] / 2**20:.2f} MiB)" if plan["compile_cache_bytes"] else ""
    text = (
        f"upload: tree {plan['tree_bytes'] / 2**20:.2f} MiB{kept} + carry "
        + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in plan["carry_bytes"].items())
        + f" = {plan['total_bytes'] / 2**20:.2f} MiB of 64 MiB; margin {plan['margin_bytes'] / 2**20:.2f} MiB"
        + ("" if plan["fits"] else f" (under the required {UPLOAD_MARGIN / 2**20:.0f} MiB)")
    )
    emit(args, plan, text)
    return 0 if plan["fits"] else 2


def _run(args: argparse.Namespace) -> int:
    from ..diffusion.training.round import run_round
    from .cmd_train import apply_overrides

    state = run_round(
        args.pack,
        args.out,
        args.deadline_s,
        preset=args.preset,
        overrides=apply_overrides({}, args.set or []),
        init_dir=args.init,
        t_start=args.started_at,
        compile_cache=args.compile_cache,
    )
    text = (
        f"round {state['round']}: {state['steps']} steps, {state['images']} images "
        f"({state.get('img_per_s') or 0:.0f} img/s, batch {state.get('batch_size')}), {val_text(state)}"
    )
    emit(args, state, text)
    return 0


def val_text(state: dict[str, Any]) -> str:
    """A round's validation in words: PSNR (and, from round 8 on, the fine detail relative to the ground truth) at
    the content end per scale, then the identity use and the model's own detail (if measured)."""
    val = state.get("val", {})

    def row(name: str, v: dict[str, Any]) -> str:
        detail = v[name].get("detail")
        return f"{v[name]['psnr']:.2f} dB" + ("" if detail is None else f" (detail {detail:.3f})")

    text = (
        "; ".join(
            f"{s}: bicubic {row('bicubic', v)}, FRGD content end {row('frgd_noref_content1', v)}"
            for s, v in val.get("scales", {}).items()
        )
        or f"no validation ({val.get('error', 'none')})"
    )
    use = val.get("identity_use")
    if use:  # does the conditional model use the reference yet (frgd.eval.identity_use)?
        from ..eval.identity_use import summary_lines

        text += "\nidentity use (loss with the reference vs null / a wrong one):\n" + "\n".join(summary_lines(use))
    detail = val.get("model_detail")
    if detail:  # from round 9 on: the detail the model keeps / draws from a smooth start (frgd.eval.model_detail)
        from ..eval.model_detail import summary_lines as detail_lines

        text += "\nmodel detail (one call; kept: from the true face noised, invented: from the bicubic upscale):\n"
        text += "\n".join(detail_lines(detail))
    return text


def _validate(args: argparse.Namespace) -> int:
    from ..diffusion.training.round import validate_round

    state = validate_round(args.round_dir, args.pack, args.out, device=args.device)
    emit(args, state, f"round {state['round']} validated in {state['val_after']['seconds']:.0f} s:\n{val_text(state)}")
    return 0


def _land(args: argparse.Namespace) -> int:
    from ..diffusion.training.round import land_round

    results = Path(args.results) if args.results else repo_root() / "docs" / "results" / "rounds"
    cache = Path(args.keep_cache) if args.keep_cache else repo_root() / KEPT_CACHE
    state = land_round(
        args.round_dir, weights_dir=args.weights, results_dir=results, force=args.force, keep_cache=cache
    )
    emit(args, {"round": state["round"], "results": str(results)}, f"landed round {state['round']}")
    return 0


def register(root, groups) -> None:
    p = root.add_parser("round", help="FRGD-128 training rounds on a lent GPU (pack, plan, run, validate, land)")
    sub = p.add_subparsers(dest="round_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    pk = sub.add_parser("pack", help="build the carry folder: data pack + trimmed diffusers")
    pk.add_argument("--faces", metavar="DIR", help="the faces128 folder (labels.csv, train/, val/)")
    pk.add_argument("--embeddings", metavar="NPZ", help="dlib embeddings (default: FACES/embeddings_dlib_fp16.npz)")
    pk.add_argument("--synthetic", type=int, metavar="N", help="N procedural training faces instead (rehearsals)")
    pk.add_argument("--out", default=str(CARRY_DIR), help=f"carry folder (default {CARRY_DIR}; git-ignored)")
    pk.add_argument("--quality", default="auto", help="WebP quality, or auto: the best that fits the upload")
    pk.add_argument(
        "--val-pairs", type=int, default=None,
        help="validation pairs for the round's check (default: the round's val_count, 48; more travel unused)",
    )  # fmt: skip
    pk.add_argument("--seed", type=int, default=0)
    add_json_flags(pk)
    pk.set_defaults(func=_pack)

    pl = sub.add_parser("plan", help="dry run: the exact upload size of one device command")
    pl.add_argument("--carry", nargs="*", default=[str(CARRY_DIR)], help="carried paths (default .carry/round)")
    add_json_flags(pl)
    pl.set_defaults(func=_plan)

    rn = sub.add_parser("run", help="train one round until a wall-clock deadline, export, validate")
    rn.add_argument("--pack", required=True, metavar="DIR", help="the pack folder (frgd round pack)")
    rn.add_argument("--out", required=True, metavar="DIR", help="output folder (model/, round.json, grid)")
    rn.add_argument("--deadline-s", type=float, required=True, help="wall-clock budget of the whole round, seconds")
    rn.add_argument("--preset", default="round_frgd128", help="round preset (default round_frgd128)")
    rn.add_argument("--init", metavar="DIR", help="start from these weights (default: the shipped frgd-128)")
    rn.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a round setting (JSON value)")
    rn.add_argument(
        "--compile-cache", metavar="FILE", help="an earlier round's compile_cache.bin, loaded before compiling"
    )
    rn.add_argument(
        "--started-at", type=float, metavar="EPOCH", help="when the command began (epoch s; counts toward the deadline)"
    )
    add_json_flags(rn)
    rn.set_defaults(func=_run)

    va = sub.add_parser("validate", help="a round's validation afterwards, here, when its command ended first")
    va.add_argument("round_dir", metavar="OUT", help="the round's output folder (as the device returned it)")
    va.add_argument("--pack", default=str(CARRY_DIR / PACK_SUBDIR), help=f"the pack (default {CARRY_DIR}/pack)")
    va.add_argument("--out", required=True, metavar="DIR", help="where the validated copy goes (then land it)")
    va.add_argument("--device", default="cpu", help="torch device for the check (default cpu)")
    add_json_flags(va)
    va.set_defaults(func=_validate)

    ld = sub.add_parser("land", help="install a round's weights as the default frgd-128 and record the round")
    ld.add_argument("round_dir", metavar="OUT", help="the round's output folder")
    ld.add_argument(
        "--weights", metavar="DIR", help="install here instead of resources/frgd_resources/weights/frgd-128"
    )
    ld.add_argument("--results", metavar="DIR", help="round records folder (default docs/results/rounds)")
    ld.add_argument(
        "--force", action="store_true", help="land even if the round number does not follow or its validation got worse"
    )
    ld.add_argument(
        "--keep-cache", metavar="FILE", help=f"keep the round's compile cache as FILE (default {KEPT_CACHE}; commit it)"
    )
    add_json_flags(ld)
    ld.set_defaults(func=_land)
