"""Seeded, bounded fuzzing of session files (``.frgd``): :func:`fuzz_sessions` damages a valid session in many ways
(whole-file byte damage, hand-edited ``session.json``, arrays of other shapes / dtypes / forged ``.npy`` headers,
corrupt / bomb / mis-shaped pane PNGs, oversized members) and checks that :func:`frgd_studio.session.load_session`
either returns a session whose every array fits the document or raises one :class:`frgd.errors.InputError` line, in
bounded time. Used by the test suite (short run) and, for the long run,
``python -m frgd_studio.session_fuzz [--cases N] [--seed K] [--json-out FILE]`` (the pipelines' ``frgd bench fuzz``
cannot import the editor).
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from frgd.errors import InputError
from frgd.fuzz import FuzzStats, mutate, run_with_timeout

from .model.document import CROP_SIZE

_JUNK: list[Any] = [None, -1, 0, 1e308, float("inf"), "x", "", [], {}, [1, 2, 3], True, [[0.0] * 2] * 5, {"a": 1}]
_SHAPES: list[tuple[tuple[int, ...], str]] = [
    ((3,), "float32"),
    ((5,), "uint8"),
    ((), "float32"),
    ((0,), "uint8"),
    ((CROP_SIZE, CROP_SIZE), "uint8"),
    ((CROP_SIZE, CROP_SIZE, 3), "float64"),
    ((CROP_SIZE, CROP_SIZE, 4), "uint8"),
    ((CROP_SIZE, CROP_SIZE), "float64"),
    ((CROP_SIZE + 1, CROP_SIZE, 3), "uint8"),
]


def seed_session(work: Path) -> Path:
    """A valid session in ``work`` (its photo beside it): two faces with masks, references, samples (an imported crop
    among them), an applied result, and an SR pane result."""
    from frgd.faces.align import TEMPLATE_512
    from frgd.io import file_sha256, save_image

    from .model.backend import make_face
    from .model.document import IMPORTED, Document, Reference, Sample
    from .session import save_session

    rng = np.random.default_rng(0)
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    photo = np.stack([xx / w, yy / h, 0.5 + 0.3 * np.sin(xx / 7)], -1)
    photo = np.round(photo * 255).astype(np.uint8)
    path = save_image(work / "photo.png", photo, overwrite=True)
    sha = file_sha256(path)
    doc = Document()
    doc.set_photo(photo, str(path), sha)
    faces = []
    for x0 in (10.0, 80.0):
        face = make_face(photo, TEMPLATE_512 * (60 / 512) + np.array([x0, 30.0]))
        face.mask = rng.random((CROP_SIZE, CROP_SIZE), dtype=np.float32)
        face.references = [Reference(path=str(path), sha256=sha, crop=face.crop.copy(), score=0.5)]
        face.samples = [
            Sample(
                image=rng.integers(0, 256, face.crop.shape, dtype=np.uint8),
                seed=k,
                identity_strength=0.5,
                steps=10,
                identity_score=0.4,
                parameters={"scheduler": "ddim"},
            )  # fmt: skip
            for k in range(2)
        ]
        imported = {"method": IMPORTED, "file": "retouched.png", "sha256": sha}
        face.samples.append(Sample(image=rng.integers(0, 256, face.crop.shape, dtype=np.uint8), seed=None,
                                   identity_strength=None, steps=None, parameters=imported))  # fmt: skip
        face.applied = face.samples[0].image.copy()
        face.applied_seed = 0
        faces.append(face)
    doc.set_faces(faces)
    doc.set_damage(np.where(rng.random((h, w)) > 0.9, 255, 0).astype(np.uint8))  # the photo's damage layer
    doc.set_pane_result("SR bicubic x2", np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1), {"scale": 2})
    return save_session(doc, work / "seed.frgd", ui={"slider": 0.5})


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    np.save(buf, (rng.random(shape) * 255).astype(dtype))
    return buf.getvalue()


def _forged_npy(shape: tuple[int, ...], descr: str) -> bytes:
    """A ``.npy`` whose header claims ``shape`` / ``descr`` with (almost) no data behind it."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 64


def _png_header(w: int, h: int) -> bytes:
    """A well-formed PNG claiming ``w`` x ``h`` pixels with (almost) no image data."""
    from frgd.io.png_chunks import PNG_SIGNATURE, png_chunk

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b"")
    return PNG_SIGNATURE + chunks


def _edit_json(meta: Any, rng: np.random.Generator) -> Any:
    """Replace, delete or duplicate one random node of the JSON tree."""
    meta = copy.deepcopy(meta)
    node, path = meta, []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.75:
        key = list(node)[int(rng.integers(0, len(node)))] if isinstance(node, dict) else int(rng.integers(0, len(node)))
        path.append((node, key))
        node = node[key]
    if not path:
        return _JUNK[int(rng.integers(0, len(_JUNK)))]
    parent, key = path[-1]
    action = int(rng.integers(0, 3))
    if action == 0 and isinstance(parent, dict):
        del parent[key]
    elif action == 1 and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    else:
        parent[key] = copy.deepcopy(_JUNK[int(rng.integers(0, len(_JUNK)))])
    return meta


def damaged_session(seed_bytes: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One damaged variant of a valid session: ``(kind, file bytes)``."""
    members = _members(seed_bytes)
    kind = ["file", "json", "npz", "npz", "pane", "size", "member"][int(rng.integers(0, 7))]
    if kind == "file":
        return kind, mutate(seed_bytes, rng)
    if kind == "json":
        members["session.json"] = json.dumps(_edit_json(json.loads(members["session.json"]), rng)).encode()
    elif kind == "npz":
        arrays = _members(members["arrays.npz"])
        key = sorted(arrays)[int(rng.integers(0, len(arrays)))]
        choice = int(rng.integers(0, 5))
        if choice == 0:
            arrays[key] = _npy(*_SHAPES[int(rng.integers(0, len(_SHAPES)))], rng)
        elif choice == 1:
            arrays[key] = _forged_npy((100_000, 100_000), "<f8")
        elif choice == 2:
            arrays[key] = _forged_npy((CROP_SIZE, CROP_SIZE), "|O")
        elif choice == 3:
            del arrays[key]
        else:
            arrays[key] = mutate(arrays[key], rng)
        members["arrays.npz"] = _zip(arrays)
    elif kind == "pane":
        name = next(n for n in members if n.startswith("panes/"))
        members[name] = [
            mutate(members[name], rng),
            _png_header(60_000, 60_000),
            _png_header(7, 3),
            b"",
            _png_header(1, 1),
        ][int(rng.integers(0, 5))]
    elif kind == "size":
        name = ["session.json", "arrays.npz", next(n for n in members if n.startswith("panes/"))][
            int(rng.integers(0, 3))
        ]
        members[name] = b"\x00" * (24 << 20)
    else:
        name = sorted(members)[int(rng.integers(0, len(members)))]
        if rng.random() < 0.5:
            del members[name]
        else:
            members[name] = rng.bytes(int(rng.integers(0, 2048)))
    return kind, _zip(members)


def _check_loaded(data: Any) -> str | None:
    """Why a loaded session does not fit the document (``None`` when it does)."""
    if data.damage is not None and (data.damage.shape != data.photo.shape[:2] or data.damage.dtype != np.uint8):
        return f"damage {data.damage.dtype}{data.damage.shape}"
    for i, f in enumerate(data.faces):
        if f.mask.shape != (CROP_SIZE, CROP_SIZE) or f.mask.dtype != np.float32:
            return f"face {i} mask {f.mask.dtype}{f.mask.shape}"
        images = [r.crop for r in f.references] + [s.image for s in f.samples]
        images += [] if f.applied is None else [f.applied]
        for img in images:
            if img.shape != (CROP_SIZE, CROP_SIZE, 3) or img.dtype != np.uint8:
                return f"face {i} image {img.dtype}{img.shape}"
    for name, img in data.panes.items():
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            return f"pane {name!r} {img.dtype}{img.shape}"
    return None


def fuzz_sessions(cases: int, seed: int = 0, timeout: float = 30.0) -> FuzzStats:
    """Load ``cases`` damaged sessions; outcomes ``loaded`` / ``InputError``, by damage kind (``InputError:npz``...)."""
    from .session import load_session

    stats = FuzzStats("sessions", seed)
    rng = np.random.default_rng(seed)
    work = Path(tempfile.mkdtemp(prefix="frgd-fuzz-session-"))
    t0 = time.perf_counter()
    try:
        seed_bytes = seed_session(work).read_bytes()
        target = work / "case.frgd"
        for k in range(cases):
            kind, data = damaged_session(seed_bytes, rng)
            target.write_bytes(data)
            case = f"sessions #{k} ({kind}, {len(data)} bytes)"
            done, loaded, err = run_with_timeout(lambda: load_session(target), timeout)
            stats.cases += 1
            if not done:
                stats.hang(case)
            elif isinstance(err, InputError) and "\n" not in str(err).strip():
                stats.outcomes[f"InputError:{kind}"] += 1
            elif err is not None:
                stats.crash(case, f"{type(err).__name__}: {err}")
            elif (why := _check_loaded(loaded)) is not None:
                stats.crash(case, f"loaded but does not fit the document: {why}")
            else:
                stats.outcomes[f"loaded:{kind}"] += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stats.seconds = time.perf_counter() - t0
    return stats


def main(argv: list[str] | None = None) -> int:
    """``python -m frgd_studio.session_fuzz``: the long session-file fuzz run; exit 1 on any crash or hang."""
    import argparse
    import os

    from frgd.cli.main import EXIT_FAILURE, EXIT_OK, add_json_flags, check_json_out, emit
    from frgd.fuzz import fuzz_report, fuzz_text

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    p = argparse.ArgumentParser(prog="python -m frgd_studio.session_fuzz", description=__doc__)
    p.add_argument("--cases", type=int, default=500, metavar="N", help="damaged sessions (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds per case before a hang (60)")
    add_json_flags(p)
    args = p.parse_args(argv)
    try:
        check_json_out(args)
        t0 = time.perf_counter()
        rows = [fuzz_sessions(args.cases, args.seed, timeout=args.timeout).to_dict()]
        data = {
            "command": f"python -m frgd_studio.session_fuzz --cases {args.cases} --seed {args.seed} "
            f"--timeout {args.timeout:g}",
            **fuzz_report(rows, time.perf_counter() - t0),
        }
        emit(args, data, fuzz_text(data))
    except InputError as err:
        p.exit(2, f"session_fuzz: error: {err}\n")
    return EXIT_OK if data["crashes"] == 0 and data["hangs"] == 0 else EXIT_FAILURE


__all__ = ["damaged_session", "fuzz_sessions", "main", "seed_session"]


if __name__ == "__main__":
    raise SystemExit(main())
