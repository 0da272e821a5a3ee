"""Measure face detection on photos turned a quarter, half and three quarters (frgd.faces.detect, "Faces on their
side or upside down").

For every image under ``--photos`` (recursively), the faces found upright (``orientation="upright"``, default floor)
are the truth. Each image is then turned by 0, 90, 180 and 270 degrees (``np.rot90``) and detected with
``orientation="upright"`` (what detection did before) and ``"auto"``; a truth face counts as found when a detected
face, mapped back into the upright image, has its five landmarks within ``--tolerance`` of the eye distance on
average. Written as JSON: per turn and mode the truth faces found, the other faces returned, the landmark error and
the seconds per image. ``--upright-photos`` (folders of photos as they were taken, mostly without faces): how many
faces ``"auto"`` returns turned (false faces, unless someone lies turned in the photo; the photos with any are listed
to be looked at), and the seconds ``"upright"`` and ``"auto"`` take.

    python scripts/measure_turned_faces.py --photos ../shared/real --out docs/results/turned_faces.json \
        --upright-photos ../shared/data/sr/train/T91 ../shared/data/sr/train/BSDS400 ../shared/data/sr/bench/*/HR
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("measure_turned_faces")

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def main(argv: list[str] | None = None) -> int:
    from frgd.faces.detect import detect_faces, turn_points
    from frgd.io import load_rgb

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", required=True, help="folder of photos (searched recursively)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--tolerance", type=float, default=0.2, help="mean landmark error / eye distance for a match")
    p.add_argument("--upright-photos", nargs="*", default=[], help="folders of upright photos (false-face count)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files = sorted(f for f in Path(args.photos).rglob("*") if f.suffix.lower() in SUFFIXES)
    rows = {(k, m): {"truth": 0, "found": 0, "other": 0, "errors": [], "seconds": []}
            for k in range(4) for m in ("upright", "auto")}  # fmt: skip
    per_image = []
    for f in files:
        img = load_rgb(f)
        truth = detect_faces(img, orientation="upright")
        rec = {"image": str(f.relative_to(args.photos)), "faces": len(truth)}
        for k in range(4):
            turned = np.ascontiguousarray(np.rot90(img, k))
            for mode in ("upright", "auto"):
                t0 = time.perf_counter()
                found = detect_faces(turned, orientation=mode)
                r = rows[(k, mode)]
                r["seconds"].append(time.perf_counter() - t0)
                back = [turn_points(g.landmarks_px, k, img.shape[:2]) for g in found]
                matched = 0
                for t in truth:
                    errs = [float(np.linalg.norm(b - t.landmarks_px, axis=1).mean()) / t.eye_distance for b in back]
                    if errs and min(errs) <= args.tolerance:
                        matched += 1
                        r["errors"].append(min(errs))
                r["truth"] += len(truth)
                r["found"] += matched
                r["other"] += len(found) - matched
                rec[f"{90 * k}_{mode}"] = [matched, len(found) - matched]
        per_image.append(rec)
        logger.info("%s", json.dumps(rec))
    summary = []
    for (k, mode), r in rows.items():
        summary.append({"turn_degrees": 90 * k, "mode": mode, "truth_faces": r["truth"], "found": r["found"],
                        "other_faces": r["other"],
                        "median_error": round(float(np.median(r["errors"])), 4) if r["errors"] else None,
                        "seconds_per_image": round(float(np.mean(r["seconds"])), 3)})  # fmt: skip
    out = {
        "command": "python scripts/measure_turned_faces.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "images": len(files),
        "tolerance": args.tolerance,
        "summary": summary,
        "per_image": per_image,
    }
    if args.upright_photos:
        out["upright_photos"] = upright_photos(args.upright_photos)
        logger.info("%s", json.dumps({k: v for k, v in out["upright_photos"].items() if k != "photos_with_added"}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for s in summary:
        logger.info("%s", json.dumps(s))
    return 0


def upright_photos(folders: list[str]) -> dict:
    """Faces ``orientation="auto"`` returns beyond ``"upright"`` in photos as they were taken, and the time of both."""
    from frgd.faces.detect import detect_faces
    from frgd.io import load_rgb

    files = sorted(f for d in folders for f in Path(d).rglob("*") if f.suffix.lower() in SUFFIXES + (".bmp",))
    added, changed, seconds = 0, [], {"upright": [], "auto": []}
    for f in files:
        img = load_rgb(f)
        found = {}
        for mode in ("upright", "auto"):
            t0 = time.perf_counter()
            found[mode] = detect_faces(img, orientation=mode)
            seconds[mode].append(time.perf_counter() - t0)
        turned = sum(1 for g in found["auto"] if g.turn)  # false faces, unless someone lies turned in the photo
        if turned:
            added += turned
            changed.append({"image": f.name, "upright": len(found["upright"]), "auto": len(found["auto"]),
                            "turned": turned})  # fmt: skip
    return {"folders": folders, "photos": len(files), "faces_added": added,
            "photos_with_turned_faces": len(changed), "photos_with_added": changed,
            "seconds_per_photo": {m: round(float(np.mean(v)), 3) for m, v in seconds.items()}}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
