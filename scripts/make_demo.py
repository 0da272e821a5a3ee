"""Make the built-in demo photos from the public-domain NASA portrait of Eileen Collins.

The source is ``skimage/data/astronaut.png`` inside the scikit-image wheel (NASA Great Images, public domain).
Usage: ``python scripts/make_demo.py PATH/TO/astronaut.png`` (writes into resources/frgd_resources/demo/).

- ``astronaut_lowres.jpg``: the whole 512x512 photo shrunk 4x (area), Gaussian blur sigma 0.6, JPEG quality 45:
  a small, soft, compressed photo (the face is about 40 px wide) for FRGD, GFPGAN and SR to work on.
- ``astronaut_reference.jpg``: a mirrored, re-framed 320x320 crop of the full-resolution face, JPEG quality 92: a
  sharp reference of the same person. (It comes from the same photo, so the demo shows the workflow, not a
  measurement; use a different photo of the person for real work.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "resources" / "frgd_resources" / "demo"


def main(src: str) -> None:
    img = np.asarray(Image.open(src).convert("RGB"))
    small = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.6)
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).save(OUT / "astronaut_lowres.jpg", quality=45)
    ref = img[20:340, 60:380][:, ::-1]
    Image.fromarray(np.ascontiguousarray(ref)).save(OUT / "astronaut_reference.jpg", quality=92)


if __name__ == "__main__":
    main(sys.argv[1])
