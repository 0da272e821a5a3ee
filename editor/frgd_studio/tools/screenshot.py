"""Scripted README screenshot: drive the real editor window on the public-domain demo photo and grab it.

Run under a virtual X server (Debian: ``apt-get install xvfb xauth``)::

    xvfb-run -a -s "-screen 0 1680x1050x24" python -m frgd_studio.tools.screenshot --out docs/screenshot.webp

It opens ``frgd_resources/demo`` (photo + reference), detects the face, paints an eye mask, runs FRGD for four
samples, applies one and opens the comparison view, then saves ``QWidget.grab()`` of the window as a lossless WebP
(:mod:`.grabs`). The FRGD model is the shipped ``frgd-128`` unless ``--model DIR`` picks another folder;
``--tiny-random`` creates a tiny *untrained, randomly initialised* model in a temporary folder (its samples are NOT
restorations: they only show the workflow). Settings are kept in a temporary folder (the user's are not touched).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from .grabs import GRAB_SUFFIX, save_grab

logger = logging.getLogger(__name__)


def make_tiny_model(folder: Path) -> Path:
    """An untrained tiny FRGD model folder (random weights, seed 0) for demos and tests."""
    import torch

    from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
    from frgd.diffusion.model import make_train_scheduler, save_model_dir

    torch.manual_seed(0)
    model = FRGDUNet(**tiny_config(sample_size=64))
    sched = make_train_scheduler(prediction_type=model.config.prediction_type)
    return save_model_dir(folder / "frgd-tiny-random", model, sched)


def _wait(window, app, timeout: float = 600.0) -> None:
    t0 = time.monotonic()
    while True:
        app.processEvents()
        if not window.jobs.busy:
            app.processEvents()
            time.sleep(0.05)
            app.processEvents()
            if not window.jobs.busy:
                return
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("a job did not finish")
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/screenshot.webp", help="the grab, lossless WebP (.webp)")
    p.add_argument("--model", help="FRGD model folder (default: the shipped frgd-128)")
    p.add_argument("--tiny-random", action="store_true", help="use a tiny untrained random model (workflow only)")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--size", default="1680x1050")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if Path(args.out).suffix.lower() != GRAB_SUFFIX:
        p.error(f"--out: the screenshot is written as lossless WebP; name it *{GRAB_SUFFIX}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    tmp = Path(tempfile.mkdtemp(prefix="frgd-screenshot-"))
    os.environ["FRGD_CONFIG_DIR"] = str(tmp / "config")
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtWidgets import QApplication

    from frgd_studio.app import demo_paths
    from frgd_studio.main_window import MainWindow
    from frgd_studio.model.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if args.tiny_random:
        model = make_tiny_model(tmp)
    else:
        from frgd.restore import default_model_dir

        model = Path(args.model) if args.model else default_model_dir()
    settings = Settings()
    settings.set("device", args.device)
    w, h = (int(v) for v in args.size.split("x"))
    window = MainWindow(settings, interactive=False)
    problem = window.model.frgd.set_model_folder(model)
    if problem:
        raise SystemExit(problem)
    window.resize(w, h)
    window.show()
    _wait(window, app)

    photo, ref = demo_paths()
    window.model.open_photo(photo, reference=str(ref) if ref else None)
    for _ in range(3):
        _wait(window, app)
    if not window.doc.faces:
        raise SystemExit(f"no face detected in the demo photo; errors: {window.errors}")
    window.model.region_mask("eyes")
    for key, value in (("steps", args.steps), ("samples", args.samples), ("seed", args.seed), ("lock_seed", True),
                       ("identity_strength", 0.6)):  # fmt: skip
        window.model.frgd.set_param(key, value)
    window.model.frgd.run()
    _wait(window, app)
    if not window.doc.faces[0].samples:
        raise SystemExit(f"FRGD produced no samples; errors: {window.errors}")
    window.gallery_panel.list.setCurrentRow(1)
    window.gallery_panel.apply_current()
    window.show_compare("Face 1: input", "Face 1: result")
    window.set_tool("brush")
    d = window.docks
    window.resizeDocks([d["FRGD"], d["Gallery"], d["GFPGAN"]], [200, 390, 300], Qt.Orientation.Vertical)
    window.resizeDocks([d["Compare"]], [290], Qt.Orientation.Vertical)
    window.resizeDocks([d["Faces"], d["References"]], [330, 330], Qt.Orientation.Vertical)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    face = window.doc.faces[0]
    x0, y0, x1, y1 = face.box
    pad = 0.9 * max(x1 - x0, y1 - y0)
    window.canvas.fitInView(
        QRectF(x0 - pad, y0 - pad, (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad), Qt.AspectRatioMode.KeepAspectRatio
    )
    window.compare.fit()
    # show the brush cursor over the mouth, sized to the mouth
    lm = face.landmarks
    window.set_brush_size(0.35 * float(abs(lm[4, 0] - lm[3, 0])) + 1.0)
    window.canvas._update_cursor_item(QPointF(float(lm[3:, 0].mean()) + 0.5, float(lm[3:, 1].mean()) + 0.5))
    window.canvas.cursor_item.setVisible(True)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_grab(window.grab(), out)
    except OSError as err:
        raise SystemExit(f"could not write {out}: {err}") from None
    logger.info("saved %s (model: %s; errors: %s)", out, model, window.errors)
    window.jobs.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
