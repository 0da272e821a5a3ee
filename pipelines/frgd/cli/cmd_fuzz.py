"""``frgd bench fuzz``: the long, seeded fuzz run of the image loader and the CLI (see :mod:`frgd.fuzz`). Session
files belong to the editor, which the pipelines never import: ``python -m frgd_studio.session_fuzz`` fuzzes them."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from ..errors import InputError
from .main import EXIT_FAILURE, EXIT_OK, add_json_flags, emit

logger = logging.getLogger(__name__)

TARGETS = ("images", "cli")


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["bench"].add_parser(
        "fuzz",
        help="fuzz the image loader and the CLI (seeded); count outcomes, crashes and hangs",
        description=(
            "Seeded fuzzing: damaged images through the loader, random command lines over hostile inputs (FIFOs, "
            "devices, folders, hard links, bombs, protected outputs) through `frgd` (session files: "
            "`python -m frgd_studio.session_fuzz`). A crash is any outcome outside the contract (an internal error, "
            "an escaped exception, a changed input, a temp file left behind); a hang is a case over --timeout. "
            "Exit 1 when there is any crash or hang."
        ),
    )
    p.add_argument("--targets", default=",".join(TARGETS), metavar="A,B", help=f"subset of {','.join(TARGETS)}")
    p.add_argument("--images", type=int, default=5000, metavar="N", help="image cases (default 5000)")
    p.add_argument("--cli", type=int, default=300, metavar="N", help="command-line cases (default 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of every target (default 0)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds per case before a hang (60)")
    add_json_flags(p)
    p.set_defaults(func=_cmd_fuzz)


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from ..fuzz import fuzz_cli, fuzz_images, fuzz_report, fuzz_text

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        raise InputError(f"unknown fuzz target(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(TARGETS)}")
    if min(args.images, args.cli) < 0 or not args.timeout > 0:
        raise InputError("case counts must be >= 0 and --timeout positive")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for target in targets:
        if target == "images":
            rows.append(fuzz_images(args.images, args.seed, timeout=args.timeout).to_dict())
        else:
            rows.append(fuzz_cli(args.cli, args.seed, timeout=args.timeout).to_dict())
        logger.info("fuzz %s: %s", target, rows[-1])
    data = {
        "command": (
            f"frgd bench fuzz --targets {','.join(targets)} --images {args.images} --cli {args.cli} "
            f"--seed {args.seed} --timeout {args.timeout:g}"
        ),
        **fuzz_report(rows, time.perf_counter() - t0),
    }
    emit(args, data, fuzz_text(data))
    return EXIT_OK if data["crashes"] == 0 and data["hangs"] == 0 else EXIT_FAILURE
