"""Entry point of the ``frgd`` CLI.

Commands live in ``frgd/cli/cmd_*.py``; each module defines ``register(root, groups)`` where ``root`` is the top-level
subparsers object and ``groups`` maps the shared groups (``eval``, ``bench``, ``weights``, ``faces``) to their
subparsers. A command's handler is set with ``parser.set_defaults(func=handler)``; it takes ``args`` and returns an
exit code (``0`` or ``None`` for success). Errors derived from :class:`frgd.errors.FRGDError` become one-line messages
with a non-zero exit code; so do unexpected exceptions (the traceback is logged with ``-vv``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
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
}


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit 2 with a single line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON with ``--json`` (or when ``text`` is None), else ``text``; ``--json-out`` saves it."""
    path = getattr(args, "json_out", None)
    if path:
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
    if getattr(args, "json", False) or text is None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def add_json_flags(p: argparse.ArgumentParser) -> None:
    """Add ``--json`` (machine output on stdout) and ``--json-out FILE`` (also write the JSON to a file)."""
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--json-out", dest="json_out", metavar="FILE", help="also write the JSON result to FILE")


def command_modules() -> list[str]:
    """Names of every ``frgd.cli.cmd_*`` module, sorted."""
    from . import __path__ as pkg_path

    return sorted(f"{__package__}.{m.name}" for m in pkgutil.iter_modules(pkg_path) if m.name.startswith("cmd_"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="frgd", description="FRGD Studio command line: face restoration and super-resolution.")
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
        return 2

    return _show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code = args.func(args)
        return int(code or 0)
    except Cancelled:
        sys.stderr.write("frgd: cancelled\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("frgd: interrupted\n")
        return 130
    except InputError as err:
        sys.stderr.write(f"frgd: error: {err}\n")
        return 2
    except FRGDError as err:
        sys.stderr.write(f"frgd: error: {err}\n")
        return 1
    except Exception as err:  # noqa: BLE001 - the CLI promises one-line errors
        logger.debug("unexpected error", exc_info=True)
        sys.stderr.write(f"frgd: internal error: {type(err).__name__}: {err} (run with -vv for the traceback)\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
