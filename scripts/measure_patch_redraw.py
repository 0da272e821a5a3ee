"""How long the editor takes to show a patch-brush dab on a big result, with the Compare view open.

The photo: the demo face in the middle of a smooth ``--size`` photo (4000x3000), its Result at Size x2 (48 MP,
Lanczos). In the editor's window (offscreen Qt, CPU), the face gets a sample (its crop inverted, no model run), the
patch tool is chosen and Compare shows Original | Result. In ``--blocks`` blocks of each mode in turn, each of
``--dabs`` short strokes (a press and one move of 3 px) is timed from the press until the canvas and the Compare view
show the new result (after one untimed stroke in that mode, as within a painting session). ``box`` (the editor now):
the composite pastes again only the face's box and the views repaint that box (``ShownImage``); ``whole`` (the
editor before): the whole composite is made again and both views convert all of it. The two run in turn.

    QT_QPA_PLATFORM=offscreen python scripts/measure_patch_redraw.py --out docs/results/patch_redraw.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("measure_patch_redraw")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_resample_wait import big_photo  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4000x3000", help="photo size WxH")
    ap.add_argument("--scale", type=int, default=2, help="the Result's Size")
    ap.add_argument("--dabs", type=int, default=8, help="timed strokes per block")
    ap.add_argument("--blocks", type=int, default=3, help="blocks of each mode, in turn")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch
    from PySide6.QtWidgets import QApplication

    from frgd_studio.main_window import MainWindow
    from frgd_studio.model import commands
    from frgd_studio.model.document import Document, Sample
    from frgd_studio.model.settings import Settings

    app = QApplication.instance() or QApplication([])
    w, h = (int(v) for v in args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="frgd-patch-redraw-"))
    settings = Settings(tmp / "settings.json")
    settings.set("device", "cpu")
    win = MainWindow(settings, interactive=False)
    win.resize(1400, 900)
    win.show()
    m, doc = win.model, win.doc

    def pump_until(cond, timeout: float = 300.0) -> float:
        t0 = time.perf_counter()
        while not cond():
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(
                    f"timed out: faces {len(doc.faces)}, busy {m.jobs.busy}, "
                    f"upscale {doc.upscale_current()}, errors {getattr(win, 'errors', None)}"
                )
            app.processEvents()
            time.sleep(0.001)
        return time.perf_counter() - t0

    m.open_photo(big_photo(tmp / "photo.png", (w, h)))
    pump_until(lambda: doc.photo is not None and len(doc.faces) == 1 and not m.jobs.busy)
    m.set_result_scale(args.scale)
    pump_until(lambda: doc.upscale_current() and not m.jobs.busy)
    face = doc.faces[0]
    m.push(commands.AddSamplesCommand(doc, 0, [Sample(255 - face.crop, 3, 0.0, 2)]))
    win.gallery_panel.patch_button.click()
    win.set_brush_size(3.0)
    views = [win.canvas.shown, win.compare.right.shown]
    cx, cy = (float(v) for v in face.landmarks[2])

    def dab(k: int, shown=views) -> float:
        t0 = time.perf_counter()
        win.strokes.begin(cx + k % 10, cy)
        win.strokes.move(cx + k % 10 + 3, cy + 2)
        win.strokes.end()
        result = doc.composite()
        pump_until(lambda: all(v._shown is not None and v._shown() is result for v in shown))
        return time.perf_counter() - t0

    dab(0, views[:1])  # the first result (Compare opens on it)
    win.show_compare("Original", "Result")
    pump_until(lambda: views[1]._shown is not None and views[1]._shown() is doc.composite())
    real_set_applied = Document.set_applied

    def whole_set_applied(self, *a, **k):  # the editor before: every change composes the whole result again
        real_set_applied(self, *a, **k)
        self.invalidate()

    rows: list[dict] = []
    for block in range(args.blocks):
        for mode in ("box", "whole"):  # a stroke's worth of dabs in each mode, in turn
            for v in views:
                v.changes = doc.composite_change if mode == "box" else None
            Document.set_applied = real_set_applied if mode == "box" else whole_set_applied
            try:
                dab(0)  # not timed: the first after the other mode (the views know no version to go on from)
                for k in range(args.dabs):
                    before = [dict(v.counts) for v in views]
                    seconds = dab(k + 1)
                    shown = [{c: v.counts[c] - b[c] for c in ("box", "whole")} for v, b in zip(views, before)]
                    rows.append({"mode": mode, "block": block, "seconds": round(seconds, 4), "canvas": shown[0],
                                 "compare": shown[1]})  # fmt: skip
                    logger.info("%s", rows[-1])
            finally:
                Document.set_applied = real_set_applied
    for v in views:
        v.changes = doc.composite_change
    summary = {mode: statistics.median(r["seconds"] for r in rows if r["mode"] == mode) for mode in ("box", "whole")}
    blocks = [
        statistics.median(r["seconds"] for r in rows if r["mode"] == "box" and r["block"] == b)
        / statistics.median(r["seconds"] for r in rows if r["mode"] == "whole" and r["block"] == b)
        for b in range(args.blocks)
    ]
    command = "QT_QPA_PLATFORM=offscreen python scripts/measure_patch_redraw.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    out = doc.composite()
    data = {"command": command, "photo_wh": [w, h], "result_wh": [int(out.shape[1]), int(out.shape[0])],
            "device": f"CPU ({torch.get_num_threads()} threads)", "rows": rows, "median_s": summary,
            "ratio_box_over_whole_per_block": [round(b, 4) for b in blocks]}  # fmt: skip
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    logger.info("%s", json.dumps({"median_s": summary, "ratio_per_block": data["ratio_box_over_whole_per_block"]}))
    m.jobs.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
