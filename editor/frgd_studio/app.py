"""``frgd-studio`` entry point: ``frgd-studio [PHOTO | SESSION.frgd] [--demo] [--reference REF] [--device D]
[--model DIR]``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def demo_paths() -> tuple[Path, Path | None]:
    """The built-in public-domain demo photo and its reference (see ``frgd_resources/demo/README.md``)."""
    from frgd_resources import resource_path

    photo = resource_path("demo", "astronaut_lowres.jpg")
    ref = resource_path("demo", "astronaut_reference.jpg")
    if not photo.is_file():
        from frgd.errors import InputError

        raise InputError(f"the demo photo is missing from this installation: {photo}")
    return photo, ref if ref.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="frgd-studio",
        description="FRGD Studio: restore faces with identity-guided diffusion, GFPGAN and super-resolution.",
    )
    p.add_argument("photo", nargs="?", help="photo (or .frgd session) to open")
    p.add_argument("--demo", action="store_true", help="open the built-in public-domain demo photo and reference")
    p.add_argument("--reference", metavar="REF", help="reference photo of the same person for the first face")
    p.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), help="compute device (saved in the settings)")
    p.add_argument("--model", metavar="DIR", help="FRGD model folder (saved in the settings)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from frgd.logging_setup import setup_logging

    setup_logging(args.verbose)
    from .system_check import pyside_problem, startup_problem

    problem = startup_problem() or pyside_problem()  # Qt would abort with a misleading message, or crash later
    if problem:
        sys.stderr.write(f"frgd-studio: error: {problem}\n")
        return 1
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .model.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("FRGD Studio")
    app.setOrganizationName("FRGD Studio")
    settings = Settings()
    if args.device:
        settings.set("device", args.device)
    window = MainWindow(settings)  # reads the device setting above
    if args.model:
        problem = window.model.frgd.set_model_folder(args.model)  # validated before it is stored
        if problem:
            window.error(f"--model {args.model}: {problem}")
    window.show()
    if window.offer_recovery():  # the unsaved work of an editor that did not close normally comes first
        return app.exec()
    photo, reference = args.photo, args.reference
    if args.demo:
        try:
            demo_photo, demo_ref = demo_paths()
        except Exception as err:
            window.error(str(err))
        else:
            photo = photo or str(demo_photo)
            reference = reference or (str(demo_ref) if demo_ref else None)
    if photo:
        if Path(photo).suffix.lower() == ".frgd":
            window.model.open_session(photo)
        else:
            window.model.open_photo(photo, reference=reference)
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
