"""``frgd bench fuzz``: the long, seeded fuzz run of images, the CLI and session files (see :mod:`frgd.fuzz`)."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from typing import Any

from ..errors import InputError
from .main import EXIT_FAILURE, EXIT_OK, add_json_flags, emit

logger = logging.getLogger(__name__)

TARGETS = ("images", "cli", "sessions")


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["bench"].add_parser(
        "fuzz",
        help="fuzz the image loader, the CLI and session files (seeded); count outcomes, crashes and hangs",
        description=(
            "Seeded fuzzing: damaged images through the loader, random command lines over hostile inputs (FIFOs, "
            "devices, folders, hard links, bombs, protected outputs) through `frgd`, and damaged session files through "
            "the editor's loader (needs frgd_studio). A crash is any outcome outside the contract (an internal error, "
            "an escaped exception, a changed input, a temp file left behind); a hang is a case over --timeout. "
            "Exit 1 when there is any crash or hang."
        ),
    )
    p.add_argument("--targets", default=",".join(TARGETS), metavar="A,B", help=f"subset of {','.join(TARGETS)}")
    p.add_argument("--images", type=int, default=5000, metavar="N", help="image cases (default 5000)")
    p.add_argument("--cli", type=int, default=300, metavar="N", help="command-line cases (default 300)")
    p.add_argument("--sessions", type=int, default=500, metavar="N", help="session-file cases (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of every target (default 0)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds per case before a hang (60)")
    add_json_flags(p)
    p.set_defaults(func=_cmd_fuzz)


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..fuzz import fuzz_cli, fuzz_images, peak_rss_mb

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        raise InputError(f"unknown fuzz target(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(TARGETS)}")
    if min(args.images, args.cli, args.sessions) < 0 or not args.timeout > 0:
        raise InputError("case counts must be >= 0 and --timeout positive")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for target in targets:
        if target == "images":
            rows.append(fuzz_images(args.images, args.seed, timeout=args.timeout).to_dict())
        elif target == "cli":
            rows.append(fuzz_cli(args.cli, args.seed, timeout=args.timeout).to_dict())
        else:
            try:
                from frgd_studio.session_fuzz import fuzz_sessions
            except ImportError as err:
                rows.append({"target": "sessions", "skipped": f"the editor (frgd_studio) is not installed: {err}"})
                continue
            rows.append(fuzz_sessions(args.sessions, args.seed, timeout=args.timeout).to_dict())
        logger.info("fuzz %s: %s", target, rows[-1])
    ran = [r for r in rows if "skipped" not in r]
    data = {
        "command": (
            f"frgd bench fuzz --targets {','.join(targets)} --images {args.images} --cli {args.cli} "
            f"--sessions {args.sessions} --seed {args.seed} --timeout {args.timeout:g}"
        ),
        "frgd": __version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": peak_rss_mb(),
        "cases": sum(r["cases"] for r in ran),
        "crashes": sum(r["crashes"] for r in ran),
        "hangs": sum(r["hangs"] for r in ran),
        "targets": rows,
    }
    lines = []
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['target']:<9} skipped: {r['skipped']}")
            continue
        outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
        lines.append(f"{r['target']:<9} {r['cases']} cases, {r['crashes']} crashes, {r['hangs']} hangs ({outcomes})")
        lines += [f"  crash: {c}" for c in r["crash_examples"]] + [f"  hang: {h}" for h in r["hang_examples"]]
    lines.append(f"total {data['cases']} cases in {data['seconds']} s, peak RSS {data['peak_rss_mb']} MB")
    emit(args, data, "\n".join(lines))
    return EXIT_OK if data["crashes"] == 0 and data["hangs"] == 0 else EXIT_FAILURE
