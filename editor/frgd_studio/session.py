"""Session files (``.frgd``): a zip with ``session.json`` (photo path + sha256, faces, references, sample seeds and
parameters, applied choices, pane parameters, and ``ui``: the FRGD panel's settings and the Size box's choice,
:meth:`frgd_studio.model.editor.EditorModel.session_ui`) and ``arrays.npz`` (masks, the photo's damage layer,
sample images, applied results, reference crops) plus one PNG per pane result (``panes/<k>.png``). Sessions written
before the damage layer was the photo's held one per face (``f<i>_damage``, crop frame); they load into the photo's
layer.

The photo itself is not copied into the session; it is loaded from its path and its sha256 is checked
(a mismatch is reported as a warning). A photo that is no longer there is looked for where a moved folder would
have taken it (:func:`photo_candidates`: its path relative to the session, its name beside the session), by its
sha256; otherwise loading raises :class:`MissingPhotoError` and a caller may name the photo's new place (the editor
asks: Locate…). Faces are re-aligned from the stored landmarks.

Loading trusts nothing in the file: every member's size is checked before it is decompressed, ``session.json`` must
have the expected structure, every array's ``.npy`` header (shape, dtype) is checked against the document before its
data is read, pane PNGs go through :func:`frgd.io.load_image_bytes` with a pixel limit tied to the photo, and every
failure is one :class:`InputError`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np

from frgd.errors import FRGDError, InputError

from .model.document import (
    CROP_SIZE,
    IMPORTED,
    MAX_FACES,
    MAX_PANES,
    MAX_PER_FACE,
    Document,
    Face,
    Reference,
    Sample,
)

logger = logging.getLogger(__name__)

FORMAT = "frgd-studio-session"
VERSION = 1
SUFFIX = ".frgd"
MAX_JSON_BYTES = 16 << 20
"""Largest ``session.json`` member read (decompressed)."""
MAX_PANE_SCALE = 8
"""A pane result may be at most this many times the photo's width and height (the SR / GFPGAN scales are 1..4)."""
_CROP_RGB = ((CROP_SIZE, CROP_SIZE, 3), np.uint8)
_CROP_MASK = ((CROP_SIZE, CROP_SIZE), np.float32)


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def save_session(doc: Document, path: str | Path, ui: dict[str, Any] | None = None) -> Path:
    """Write the document to ``path`` (``.frgd`` added when missing; replaced atomically, never the photo).
    ``ui``: extra UI state (slider, steps...)."""
    from frgd.io import save_bytes

    if doc.photo is None or not doc.photo_path:
        raise InputError("nothing to save: open a photo first")
    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    arrays: dict[str, np.ndarray] = {}
    faces = []
    if doc.damage_marked():
        arrays["damage"] = np.ascontiguousarray(doc.damage, np.uint8)
    for i, f in enumerate(doc.faces):
        arrays[f"f{i}_mask"] = f.mask.astype(np.float32)
        if f.applied is not None:
            arrays[f"f{i}_applied"] = f.applied
            if f.applied_mask is not None:
                arrays[f"f{i}_applied_mask"] = f.applied_mask.astype(np.float32)
        for k, r in enumerate(f.references):
            arrays[f"f{i}_ref{k}"] = r.crop
        for k, s in enumerate(f.samples):
            arrays[f"f{i}_sample{k}"] = s.image
            if s.paste_mask is not None:
                arrays[f"f{i}_sample{k}_mask"] = s.paste_mask.astype(np.float32)
        faces.append(
            {
                "box": np.asarray(f.box).tolist(),
                "score": float(f.score),
                "landmarks": np.asarray(f.landmarks).tolist(),
                "references": [{"path": r.path, "sha256": r.sha256, "score": r.score} for r in f.references],
                "samples": [
                    {
                        "seed": s.seed,
                        "identity_strength": s.identity_strength,
                        "steps": s.steps,
                        "identity_score": s.identity_score,
                        "parameters": s.parameters,
                        "paste_mask": s.paste_mask is not None,
                    }
                    for s in f.samples
                ],
                "applied": f.applied is not None,
                "applied_seed": f.applied_seed,
                "applied_identity": bool(f.applied_identity),
                "applied_mask": f.applied is not None and f.applied_mask is not None,
            }
        )
    panes = [{"name": n, "file": f"panes/{k}.png", "params": doc.pane_params.get(n, {})} for k, n in
             enumerate(doc.pane_results)]  # fmt: skip
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "photo": {
            "path": doc.photo_path,
            "relative": _relative(doc.photo_path, path),
            "sha256": doc.photo_sha256,
            "shape": list(doc.photo.shape),
            "turn": doc.turn,
        },
        "faces": faces,
        "selected": doc.selected,
        "panes": panes,
        "background": doc.background,
        "damage": doc.damage_marked(),
        "ui": ui or {},
    }
    npz = io.BytesIO()
    np.savez_compressed(npz, **arrays)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", json.dumps(meta, indent=1, default=_json_default))
        z.writestr("arrays.npz", npz.getvalue())
        for k, name in enumerate(doc.pane_results):
            z.writestr(f"panes/{k}.png", _png_bytes(doc.pane_results[name]))
    save_bytes(path, buf.getvalue(), overwrite=True, protect=[doc.photo_path])
    logger.info("saved session %s", path)
    return path


def _relative(photo: str, session: Path) -> str | None:
    """``photo``'s path relative to the session's folder, POSIX-style (``None`` across drives)."""
    try:
        return Path(os.path.relpath(Path(photo).resolve(), Path(session).resolve().parent)).as_posix()
    except ValueError:
        return None


class MissingPhotoError(InputError):
    """A session's photo is neither where the session says nor where a moved folder would have taken it."""

    def __init__(self, expected: str, detail: str = "") -> None:
        super().__init__(f"the session's photo is missing: {expected} ({detail or 'move it back or locate it'})")


def file_name(path: str) -> str:
    """The file name of ``path``, also of a path saved on Windows and read elsewhere."""
    return PureWindowsPath(path).name if "\\" in path else Path(path).name


def photo_candidates(session: str | Path, photo: dict[str, Any]) -> list[Path]:
    """Where the photo of a session file may be, in order: where it was when the session was saved, at its path
    relative to the session's folder (a folder moved with its photos and sessions), and beside the session under its
    name. ``photo``: the session's ``photo`` entry."""
    here = Path(session).resolve().parent
    stored = str(photo.get("path", ""))
    out = [Path(stored)]
    if isinstance(photo.get("relative"), str) and photo["relative"]:
        out.append(here / photo["relative"])
    out.append(here / file_name(stored))
    unique: list[Path] = []
    for p in out:
        if p not in unique:
            unique.append(p)
    return unique


def find_photo(session: str | Path, photo: dict[str, Any]) -> tuple[Path | None, str]:
    """The session's photo file: the saved path when it exists, else the first other candidate
    (:func:`photo_candidates`) with the saved sha256 (any existing one when the session has none). Returns the path
    (``None`` when none fits) and why a candidate was passed over (``""`` when none was)."""
    from frgd.io import file_sha256

    first, *others = photo_candidates(session, photo)
    if first.is_file():
        return first, ""
    skipped = []
    for p in others:
        if not p.is_file():
            continue
        if not photo.get("sha256") or file_sha256(p) == photo["sha256"]:
            return p, ""
        skipped.append(f"{p} is another photo")
    return None, "; ".join(skipped)


def session_photo(path: str | Path) -> tuple[str, Path | None]:
    """Where a session file's photo was saved, and where it is now (:func:`find_photo`; ``None``: not found). Reads
    and checks only ``session.json`` (as :func:`load_session` does), and hashes a candidate only when the photo is
    gone from where it was saved. :class:`InputError` as :func:`load_session` raises it."""
    path = Path(path)
    photo = _read(path, lambda z: _read_meta(path, z))["photo"]
    return photo["path"], find_photo(path, photo)[0]


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


@dataclass
class SessionData:
    """A loaded session, ready to be applied to a document on the GUI thread."""

    photo: np.ndarray
    alpha: np.ndarray | None
    photo_path: str
    photo_sha256: str
    faces: list[Face]
    selected: int
    panes: dict[str, np.ndarray] = field(default_factory=dict)
    pane_params: dict[str, dict] = field(default_factory=dict)
    background: str | None = None
    damage: np.ndarray | None = None  # (H, W) uint8, the photo's damage layer
    turn: int = 0  # quarter turns counter-clockwise of the photo from its file (Image > Rotate)
    ui: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    photo_moved_from: str | None = None
    """Where the session said the photo was, when it was read from elsewhere (:func:`find_photo`, or located)."""
    icc_profile: bytes | None = None
    """The photo file's colour profile (read from the photo, as its pixels are; exports carry it)."""
    photo_bits: int = 8
    """The photo file's bits per channel (read from the photo; the editor shows it in 8, a 16-bit export reads the
    file again)."""


def load_session(path: str | Path, photo: str | Path | None = None) -> SessionData:
    """Read a session file and the photo it refers to (numpy + OpenCV; run it in a job for large photos). ``photo``:
    the photo's file when it was moved (the user located it; its sha256 is checked like the saved path's); otherwise
    it is found by :func:`find_photo`, or :class:`MissingPhotoError` is raised.

    Raises :class:`InputError` (one line) for anything wrong with the file: not a regular file, too large, not a zip,
    damaged members, unexpected structure, arrays of the wrong shape or type, undecodable or oversized pane images.
    """
    from frgd.io import MAX_FILE_BYTES

    path = Path(path)
    return _read(path, lambda z: _read_session(path, z, MAX_FILE_BYTES, photo))


def _read(path: Path, read: Callable[[zipfile.ZipFile], Any]) -> Any:
    """``read(zip)`` of the session file ``path``, every failure one :class:`InputError` (:func:`load_session`)."""
    from frgd.io import open_regular_file

    try:
        with open_regular_file(path, fail=lambda reason: InputError(f"cannot read session {path}: {reason}")) as f:
            with zipfile.ZipFile(f) as z:
                return read(z)
    except _Damaged as err:
        raise InputError(f"{path} is a damaged FRGD Studio session ({err})") from err
    except zipfile.BadZipFile as err:
        raise InputError(f"{path} is not a FRGD Studio session ({err})") from err
    except FRGDError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(str(err)) from err
    except (OSError, MemoryError) as err:
        raise InputError(f"cannot read {path}: {getattr(err, 'strerror', None) or type(err).__name__}") from err
    except Exception as err:  # noqa: BLE001 - zipfile, zlib, numpy, json and OpenCV raise many types on bad data
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise InputError(f"{path} is a damaged FRGD Studio session ({reason})") from err


class _Damaged(InputError):
    """A defect inside a session file (reported as "PATH is a damaged FRGD Studio session (defect)")."""


def _member(z: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """Member ``name`` decompressed, refused when its declared or actual size exceeds ``limit`` bytes."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise _Damaged(f"the session has no {name}") from None
    if info.file_size > limit:
        raise _Damaged(f"session member {name} is too large ({info.file_size} bytes > limit {limit})")
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _Damaged(f"session member {name} is larger than it claims (> limit {limit})")
    return data


def _check_meta(meta: Any) -> None:
    """Structure of ``session.json`` (types of every field the loader uses)."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise _Damaged(f"session.json: {what}")

    need(isinstance(meta.get("photo"), dict) and isinstance(meta["photo"].get("path"), str), "no photo path")
    need(meta["photo"].get("turn", 0) in (0, 1, 2, 3), "photo turn must be 0, 1, 2 or 3 quarter turns")
    faces = meta.get("faces")
    need(isinstance(faces, list) and len(faces) <= MAX_FACES, f"faces must be a list of at most {MAX_FACES}")
    for i, fm in enumerate(faces):
        need(isinstance(fm, dict), f"face {i} is not an object")
        for key, shape in (("landmarks", (5, 2)), ("box", (4,))):
            try:
                arr = np.asarray(fm.get(key), dtype=np.float64)
            except (TypeError, ValueError):
                arr = np.zeros(0)
            need(arr.shape == shape and bool(np.isfinite(arr).all()), f"face {i} {key} must be {shape} finite numbers")
        need(_is_number(fm.get("score")), f"face {i} score must be a number")
        refs, samples = fm.get("references"), fm.get("samples")
        for key, items in (("references", refs), ("samples", samples)):
            need(isinstance(items, list) and len(items) <= MAX_PER_FACE, f"face {i} {key}: at most {MAX_PER_FACE}")
        for r in refs:
            need(isinstance(r, dict) and isinstance(r.get("path"), str), f"face {i}: a reference without a path")
            need(isinstance(r.get("sha256"), str), f"face {i}: a reference without a sha256")
            need(_optional_number(r.get("score")), f"face {i}: a reference score is not a number")
        for smp in samples:
            need(isinstance(smp, dict), f"face {i}: a sample is not an object")
            numbers = [smp.get(k) for k in ("seed", "identity_strength", "steps")]
            imported = isinstance(smp.get("parameters"), dict) and smp["parameters"].get("method") == IMPORTED
            # a sample has all three numbers; a crop imported from a file (File > Import Face Result) has none
            need(all(map(_is_number, numbers)) or (imported and numbers == [None] * 3), f"face {i}: bad sample")
            need(_optional_number(smp.get("identity_score")), f"face {i}: a sample score is not a number")
            need(smp.get("parameters") is None or isinstance(smp["parameters"], dict), f"face {i}: bad sample")
        need(_optional_number(fm.get("applied_seed")), f"face {i}: applied_seed is not a number")
    panes = meta.get("panes", [])
    need(isinstance(panes, list) and len(panes) <= MAX_PANES, f"panes must be a list of at most {MAX_PANES}")
    for pm in panes:
        need(isinstance(pm, dict) and isinstance(pm.get("name"), str) and isinstance(pm.get("file"), str), "bad pane")
        need(pm.get("params") is None or isinstance(pm["params"], dict), "bad pane parameters")
    need(len({pm["name"] for pm in panes}) == len(panes), "duplicate pane names")
    need(meta.get("ui") is None or isinstance(meta["ui"], dict), "ui must be an object")
    need(_is_number(meta.get("selected", 0)), "selected must be a number")
    need(meta.get("background") is None or isinstance(meta["background"], str), "background must be a pane name")
    if meta.get("damage"):
        need(_photo_hw(meta) is not None, "a damage layer needs the photo's shape")


def _photo_hw(meta: dict) -> tuple[int, int] | None:
    """The photo's ``(H, W)`` as the session recorded it (``None`` when it is not two or three positive integers
    within :data:`frgd.io.DEFAULT_MAX_PIXELS`)."""
    from frgd.io import DEFAULT_MAX_PIXELS

    shape = meta["photo"].get("shape")
    ok = isinstance(shape, list) and len(shape) in (2, 3) and all(type(v) is int and v > 0 for v in shape)
    return (shape[0], shape[1]) if ok and shape[0] * shape[1] <= DEFAULT_MAX_PIXELS else None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _optional_number(v: Any) -> bool:
    return v is None or _is_number(v)


def _expected_arrays(meta: dict) -> dict[str, tuple[tuple[int, ...], type]]:
    """Every array the document needs, with its shape and dtype."""
    out: dict[str, tuple[tuple[int, ...], type]] = {}
    if meta.get("damage"):
        out["damage"] = (_photo_hw(meta), np.uint8)
    for i, fm in enumerate(meta["faces"]):
        out[f"f{i}_mask"] = _CROP_MASK
        if fm.get("damage"):  # a face's own damage layer: sessions saved before it was the photo's
            out[f"f{i}_damage"] = _CROP_MASK
        out.update({f"f{i}_ref{k}": _CROP_RGB for k in range(len(fm["references"]))})
        out.update({f"f{i}_sample{k}": _CROP_RGB for k in range(len(fm["samples"]))})
        out.update({f"f{i}_sample{k}_mask": _CROP_MASK for k, s in enumerate(fm["samples"]) if s.get("paste_mask")})
        if fm.get("applied"):
            out[f"f{i}_applied"] = _CROP_RGB
            if fm.get("applied_mask"):
                out[f"f{i}_applied_mask"] = _CROP_MASK
    return out


def _read_arrays(data: bytes, expected: dict[str, tuple[tuple[int, ...], type]]) -> dict[str, np.ndarray]:
    """The expected arrays of ``arrays.npz``; each ``.npy`` header is checked before its data is read."""
    from numpy.lib import format as npy

    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for key, (shape, dtype) in expected.items():
            try:
                info = z.getinfo(f"{key}.npy")
            except KeyError:
                raise _Damaged(f"arrays.npz has no {key}") from None
            want = np.dtype(dtype)
            if info.file_size > int(np.prod(shape)) * want.itemsize + 4096:
                raise _Damaged(f"array {key} is too large ({info.file_size} bytes)")
            with z.open(info) as f:
                version = npy.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise _Damaged(f"array {key} has an unsupported .npy version {version}")
                read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                got_shape, fortran, got_dtype = read(f, max_header_size=4096)
                if tuple(got_shape) != shape or got_dtype != want or fortran:
                    raise _Damaged(
                        f"array {key} is {got_dtype}{list(got_shape)}, expected {want}{list(shape)} (C order)"
                    )
                raw = f.read(want.itemsize * int(np.prod(shape)))
            if len(raw) != want.itemsize * int(np.prod(shape)):
                raise _Damaged(f"array {key} is truncated")
            arr = np.frombuffer(raw, dtype=want).reshape(shape).copy()
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise _Damaged(f"array {key} holds NaN or infinite values")
            out[key] = arr
    return out


def _read_meta(path: Path, z: zipfile.ZipFile) -> dict:
    """``session.json``, checked (:func:`_check_meta`)."""
    try:
        meta = json.loads(_member(z, "session.json", MAX_JSON_BYTES))
    except (ValueError, RecursionError) as err:
        raise InputError(f"{path} is not a FRGD Studio session (session.json: {type(err).__name__})") from err
    if isinstance(meta, dict) and isinstance(meta.get("version"), int) and meta["version"] > VERSION:
        raise InputError(f"{path} was written by a newer FRGD Studio (session version {meta['version']})")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{path} is not a FRGD Studio session")
    _check_meta(meta)
    return meta


def _read_session(path: Path, z: zipfile.ZipFile, limit: int, photo: str | Path | None) -> SessionData:
    meta = _read_meta(path, z)
    expected = _expected_arrays(meta)
    budget = sum(int(np.prod(shape)) * np.dtype(dt).itemsize + 4096 for shape, dt in expected.values()) + 65536
    arrays = _read_arrays(_member(z, "arrays.npz", min(limit, budget)), expected)
    pane_png = {pm["file"]: _member(z, pm["file"], limit) for pm in meta.get("panes", [])}
    return _session_data(path, meta, arrays, pane_png, photo)


def _pane_image(data: bytes, name: str, photo_shape: tuple[int, ...]) -> np.ndarray:
    """A pane result PNG decoded with our limits: RGB uint8 with the photo's aspect, at most ``MAX_PANE_SCALE``x."""
    from frgd.io import DEFAULT_MAX_PIXELS, load_image_bytes, to_uint8

    h, w = int(photo_shape[0]), int(photo_shape[1])
    limit = min(DEFAULT_MAX_PIXELS, h * w * MAX_PANE_SCALE * MAX_PANE_SCALE)
    try:
        img = load_image_bytes(data, f"pane {name!r}", max_pixels=limit)
    except InputError as err:
        raise _Damaged(str(err)) from err
    if img.height * w != img.width * h:
        raise _Damaged(f"pane {name!r} is {img.width}x{img.height}, not the shape of the {w}x{h} photo")
    return to_uint8(img.rgb)


def _session_data(path: Path, meta: dict, arrays: dict[str, np.ndarray], pane_png: dict[str, bytes],
                  located: str | Path | None) -> SessionData:  # fmt: skip
    from frgd.restore import identity_changed

    from .model.backend import load_photo, make_face

    photo_info = meta["photo"]
    if located is not None:
        if not Path(located).is_file():
            raise InputError(f"the photo {located} is not a file")
        source = Path(located)
    else:
        source, skipped = find_photo(path, photo_info)
        if source is None:
            raise MissingPhotoError(photo_info["path"], skipped)
    photo = load_photo(source)
    moved_from = None if Path(photo.path) == Path(photo_info["path"]).resolve() else photo_info["path"]
    turn = int(photo_info.get("turn", 0))  # sessions before Image > Rotate have none
    if turn:  # the faces, marks and panes were saved on the turned photo
        from dataclasses import replace

        rot = lambda a: None if a is None else np.ascontiguousarray(np.rot90(a, turn))  # noqa: E731
        photo = replace(photo, rgb=rot(photo.rgb), alpha=rot(photo.alpha))
    warnings = []
    if photo_info.get("sha256") and photo.sha256 != photo_info["sha256"]:
        what = photo.path if moved_from is None else f"{photo.path} is not the photo the session was saved with, or it"
        warnings.append(f"{what} changed since the session was saved; faces may not line up")
    faces: list[Face] = []
    old_damage = []  # (crop-frame damage, crop -> photo affine) of sessions saved before the photo's layer
    for i, fm in enumerate(meta["faces"]):
        face = make_face(photo.rgb, np.asarray(fm["landmarks"]), np.asarray(fm["box"]), fm["score"])
        face.mask = arrays[f"f{i}_mask"].astype(np.float32)
        if f"f{i}_damage" in arrays:
            old_damage.append((arrays[f"f{i}_damage"], face.inverse))
        face.references = [
            Reference(path=r["path"], sha256=r["sha256"], crop=arrays[f"f{i}_ref{k}"], score=r.get("score"))
            for k, r in enumerate(fm["references"])
        ]
        face.samples = [
            Sample(
                image=arrays[f"f{i}_sample{k}"],
                seed=None if s["seed"] is None else int(s["seed"]),
                identity_strength=None if s["identity_strength"] is None else float(s["identity_strength"]),
                steps=None if s["steps"] is None else int(s["steps"]),
                identity_score=s.get("identity_score"),
                parameters=dict(s.get("parameters") or {}),
                paste_mask=arrays.get(f"f{i}_sample{k}_mask"),
            )
            for k, s in enumerate(fm["samples"])
        ]
        if fm.get("applied"):
            face.applied = arrays[f"f{i}_applied"]
            face.applied_seed = fm.get("applied_seed")
            face.applied_mask = arrays.get(f"f{i}_applied_mask")
            sample = face.applied_sample()  # sessions before the one identity_changed rule stored a narrower flag
            face.applied_identity = bool(fm.get("applied_identity")) or identity_changed([sample and sample.method])
        faces.append(face)
    damage = arrays.get("damage")
    if damage is not None and damage.shape != photo.rgb.shape[:2]:
        warnings.append(f"the damage marks were painted on a {damage.shape[1]}x{damage.shape[0]} photo, not this one; "
                        "they are dropped (paint them again)")  # fmt: skip
        damage = None
    if damage is None and old_damage:
        from frgd.io import to_uint8
        from frgd.restore import photo_damage

        layer = photo_damage(photo.rgb.shape[:2], old_damage)
        damage = None if layer is None else to_uint8(layer)
    panes = {p["name"]: _pane_image(pane_png[p["file"]], p["name"], photo.rgb.shape) for p in meta.get("panes", [])}
    params = {p["name"]: dict(p.get("params") or {}) for p in meta.get("panes", [])}
    background = meta.get("background")
    return SessionData(
        photo=photo.rgb,
        alpha=photo.alpha,
        photo_path=photo.path,
        photo_sha256=photo.sha256,
        faces=faces,
        selected=int(meta.get("selected", 0 if faces else -1)),
        panes=panes,
        pane_params=params,
        background=background if background in panes else None,
        damage=damage,
        turn=turn,
        ui=dict(meta.get("ui") or {}),
        warnings=warnings,
        photo_moved_from=moved_from,
        icc_profile=photo.icc_profile,
        photo_bits=photo.bits,
    )


def apply_session(doc: Document, data: SessionData) -> None:
    """Replace the document's content with a loaded session (GUI thread; not undoable, like opening a file)."""
    doc.set_photo(data.photo, data.photo_path, data.photo_sha256, data.alpha, data.turn, data.icc_profile,
                  data.photo_bits)  # fmt: skip
    doc.set_faces(data.faces)
    for name, img in data.panes.items():
        doc.set_pane_result(name, img, data.pane_params.get(name))
    if data.background:
        doc.set_background(data.background)
    if data.damage is not None:
        doc.set_damage(data.damage)
    if 0 <= data.selected < len(data.faces):
        doc.select(data.selected)
    for i in range(len(data.faces)):
        doc.maskChanged.emit(i)
        doc.samplesChanged.emit(i)
        doc.referencesChanged.emit(i)
        doc.appliedChanged.emit(i)
