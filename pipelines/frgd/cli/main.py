"""Entry point of the ``frgd`` CLI.

Commands live in ``frgd/cli/cmd_*.py``; each module defines ``register(root, groups)`` where ``root`` is the top-level
subparsers object and ``groups`` maps the shared groups (:data:`GROUPS`) to their
subparsers. A command's handler is set with ``parser.set_defaults(func=handler)``; it takes ``args`` and returns an
exit code (``0`` or ``None`` for success). Errors derived from :class:`frgd.errors.FRGDError` become one-line messages
with a non-zero exit code; so do unexpected exceptions (the traceback is logged with ``-vv``). The exit codes are
:data:`EXIT_CODES` (shown in ``frgd --help``). ``--json-out FILE`` is checked before the command runs and written with
the same protected atomic save as images (:func:`frgd.io.save_bytes`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pkgutil
import signal
import sys
import threading
from typing import Any

from .. import __version__
from ..errors import Cancelled, FRGDError, InputError
from ..logging_setup import setup_logging

logger = logging.getLogger(__name__)

GROUPS = {
    "eval": "evaluate models against ground truth and write JSON",
    "bench": "measure speed and memory and write JSON",
    "weights": "list, download, verify, import and convert model weights",
    "faces": "detect and align faces",
    "damage": "find the scratches, cracks, spots and tears of scanned photos",
}

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "the operation failed (missing model weights, a write error, an internal error)",
    EXIT_USAGE: "invalid usage or input (bad arguments, an unreadable or invalid input file, a refused output path)",
    EXIT_INTERRUPTED: "interrupted (Ctrl+C)",
    EXIT_TERMINATED: "terminated (SIGTERM); temp files of unfinished saves are removed",
}
"""The exit codes of every ``frgd`` command (the one source; listed in ``frgd --help``)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit :data:`EXIT_USAGE` with a single line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class Terminated(BaseException):
    """Raised in the main thread by the CLI's SIGTERM handler (a BaseException, so ``finally`` blocks run)."""


def _protected_paths(args: argparse.Namespace) -> list[str]:
    """Paths ``--json-out`` must never replace: every argument naming an existing file (the inputs, an output already
    written) and the command's output argument (``-o``) even before it exists."""
    paths: list[str] = []
    for key, value in vars(args).items():
        if key == "json_out":
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (str, os.PathLike)) and str(v) and (key in ("out", "out_dir") or os.path.lexists(v)):
                paths.append(str(v))
    return paths


def check_json_out(args: argparse.Namespace) -> None:
    """Refuse a ``--json-out`` FILE that is a folder, an input or output of the command, or (without ``--overwrite``)
    an existing file: one :class:`InputError` before any work is done."""
    path = getattr(args, "json_out", None)
    if path:
        from ..io import check_output

        check_output(path, overwrite=bool(getattr(args, "overwrite", False)), protect=_protected_paths(args))


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON with ``--json`` (or when ``text`` is None), else ``text``; ``--json-out`` saves it
    (protected atomic save: never an input, never an existing file without ``--overwrite``)."""
    path = getattr(args, "json_out", None)
    if path:
        from ..io import save_bytes

        payload = (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8")
        save_bytes(path, payload, overwrite=bool(getattr(args, "overwrite", False)), protect=_protected_paths(args))
    if getattr(args, "json", False) or text is None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def add_json_flags(p: argparse.ArgumentParser) -> None:
    """Add ``--json`` (machine output on stdout), ``--json-out FILE`` (also write the JSON to a file) and, unless the
    command has it already (add it before calling this), ``--overwrite`` (replace an existing FILE)."""
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument(
        "--json-out", dest="json_out", metavar="FILE", help="also write the JSON result to FILE (a new file)"
    )
    if "--overwrite" not in p._option_string_actions:
        p.add_argument("--overwrite", action="store_true", help="replace the --json-out FILE if it exists")


SAVE_FACES_HELP = (
    "also write every restored face into the folder DIR: the aligned input crop, the restored crop(s) with "
    "provenance, a side-by-side comparison and DIR/<name>_faces.json (boxes, landmarks, the crop's affine for pasting "
    "back); PNG"
)


def add_save_faces_flag(p: argparse.ArgumentParser) -> None:
    """``--save-faces DIR`` of a restoring command (``args.save_faces``: the folder or ``None``), written with
    :func:`frgd.restore.face_files.write_face_files`."""
    p.add_argument("--save-faces", metavar="DIR", help=SAVE_FACES_HELP)


def tile_arg(text: str) -> int | str:
    """argparse ``type`` of ``--tile``: ``auto`` or a tile side in input pixels (``0``: no tiling)."""
    if text == "auto":
        return text
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile must be 'auto' or an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"--tile must be >= 0, got {v}")
    return v


def command_modules() -> list[str]:
    """Names of every ``frgd.cli.cmd_*`` module, sorted."""
    from . import __path__ as pkg_path

    return sorted(f"{__package__}.{m.name}" for m in pkgutil.iter_modules(pkg_path) if m.name.startswith("cmd_"))


def build_parser() -> argparse.ArgumentParser:
    epilog = "exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items())
    parser = _Parser(
        prog="frgd",
        description="FRGD Studio command line: face restoration and super-resolution.",
        epilog=epilog,
    )
    parser.add_argument("--version", action="version", version=f"frgd {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    root = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups = {}
    for name, help_text in GROUPS.items():
        gp = root.add_parser(name, help=help_text, description=help_text)
        groups[name] = gp.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", parser_class=_Parser)
        gp.set_defaults(func=_group_help(gp))
    for mod_name in command_modules():
        importlib.import_module(mod_name).register(root, groups)
    return parser


def _group_help(gp: argparse.ArgumentParser):
    def _show(args: argparse.Namespace) -> int:
        gp.print_help(sys.stderr)
        return EXIT_USAGE

    return _show


def _on_sigterm(signum: int, frame: Any) -> None:
    from ..io import remove_pending_temps

    remove_pending_temps()
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # SIGTERM removes the temp files of unfinished saves, like Ctrl+C; only in the main thread, restored on return
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        check_json_out(args)
        code = args.func(args)
        return int(code or EXIT_OK)
    except Terminated:
        sys.stderr.write("frgd: terminated\n")
        return EXIT_TERMINATED
    except Cancelled:
        sys.stderr.write("frgd: cancelled\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("frgd: interrupted\n")
        return EXIT_INTERRUPTED
    except InputError as err:
        sys.stderr.write(f"frgd: error: {_one_line(err)}\n")
        return EXIT_USAGE
    except FRGDError as err:
        sys.stderr.write(f"frgd: error: {_one_line(err)}\n")
        return EXIT_FAILURE
    except Exception as err:  # noqa: BLE001 - the CLI promises one-line errors
        logger.debug("unexpected error", exc_info=True)
        msg = f"{type(err).__name__}: {_one_line(err)}"
        sys.stderr.write(f"frgd: internal error: {msg} (run with -vv for the traceback)\n")
        return EXIT_FAILURE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
