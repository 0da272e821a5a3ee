"""Session files (``.frgd``): a zip with ``session.json`` (photo path + sha256, faces, references, sample seeds and
parameters, applied choices, pane parameters) and ``arrays.npz`` (masks, sample images, applied results, reference
crops) plus one PNG per pane result (``panes/<k>.png``).

The photo itself is not copied into the session; it is loaded from its path and its sha256 is checked
(a mismatch is reported as a warning, a missing photo is an error). Faces are re-aligned from the stored landmarks.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frgd.errors import FRGDError, InputError

from .document import Document, Face, Reference, Sample

logger = logging.getLogger(__name__)

FORMAT = "frgd-studio-session"
VERSION = 1
SUFFIX = ".frgd"


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def _png_array(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).copy()


def save_session(doc: Document, path: str | Path, ui: dict[str, Any] | None = None) -> Path:
    """Write the document to ``path`` (``.frgd`` added when missing). ``ui``: extra UI state (slider, steps...)."""
    if doc.photo is None or not doc.photo_path:
        raise InputError("nothing to save: open a photo first")
    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    arrays: dict[str, np.ndarray] = {}
    faces = []
    for i, f in enumerate(doc.faces):
        arrays[f"f{i}_mask"] = f.mask.astype(np.float32)
        if f.applied is not None:
            arrays[f"f{i}_applied"] = f.applied
        for k, r in enumerate(f.references):
            arrays[f"f{i}_ref{k}"] = r.crop
        for k, s in enumerate(f.samples):
            arrays[f"f{i}_sample{k}"] = s.image
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
                    }
                    for s in f.samples
                ],
                "applied": f.applied is not None,
                "applied_seed": f.applied_seed,
                "applied_identity": bool(f.applied_identity),
            }
        )
    panes = [{"name": n, "file": f"panes/{k}.png", "params": doc.pane_params.get(n, {})} for k, n in
             enumerate(doc.pane_results)]  # fmt: skip
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "photo": {"path": doc.photo_path, "sha256": doc.photo_sha256, "shape": list(doc.photo.shape)},
        "faces": faces,
        "selected": doc.selected,
        "panes": panes,
        "background": doc.background,
        "ui": ui or {},
    }
    npz = io.BytesIO()
    np.savez_compressed(npz, **arrays)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("session.json", json.dumps(meta, indent=1, default=_json_default))
            z.writestr("arrays.npz", npz.getvalue())
            for k, name in enumerate(doc.pane_results):
                z.writestr(f"panes/{k}.png", _png_bytes(doc.pane_results[name]))
        tmp.replace(path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise FRGDError(f"cannot write {path}: {err.strerror or err}") from err
    logger.info("saved session %s", path)
    return path


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
    ui: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def load_session(path: str | Path) -> SessionData:
    """Read a session file and the photo it refers to (numpy + OpenCV; run it in a job for large photos)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("session.json"))
            with np.load(io.BytesIO(z.read("arrays.npz"))) as npz:
                arrays = {k: npz[k] for k in npz.files}
            pane_png = {p["file"]: z.read(p["file"]) for p in meta.get("panes", [])}
    except FileNotFoundError as err:
        raise InputError(f"session file not found: {path}") from err
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from err
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError) as err:
        raise InputError(f"{path} is not a FRGD Studio session ({err})") from err
    try:
        return _session_data(path, meta, arrays, pane_png)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:  # a damaged or hand-edited file
        raise InputError(f"{path} is a damaged FRGD Studio session ({type(err).__name__}: {err})") from err


def _session_data(path: Path, meta: dict, arrays: dict[str, np.ndarray], pane_png: dict[str, bytes]) -> SessionData:
    from .backend import load_photo, make_face

    if meta.get("format") != FORMAT:
        raise InputError(f"{path} is not a FRGD Studio session")
    if int(meta.get("version", 0)) > VERSION:
        raise InputError(f"{path} was written by a newer FRGD Studio (session version {meta['version']})")
    photo_info = meta["photo"]
    if not Path(photo_info["path"]).is_file():
        raise FRGDError(f"the session's photo is missing: {photo_info['path']} (move it back or open it again)")
    photo = load_photo(photo_info["path"])
    warnings = []
    if photo_info.get("sha256") and photo.sha256 != photo_info["sha256"]:
        warnings.append(f"{photo_info['path']} changed since the session was saved; faces may not line up")
    faces: list[Face] = []
    for i, fm in enumerate(meta["faces"]):
        face = make_face(photo.rgb, np.asarray(fm["landmarks"]), np.asarray(fm["box"]), fm["score"])
        face.mask = arrays[f"f{i}_mask"].astype(np.float32)
        face.references = [
            Reference(path=r["path"], sha256=r["sha256"], crop=arrays[f"f{i}_ref{k}"], score=r.get("score"))
            for k, r in enumerate(fm["references"])
        ]
        face.samples = [
            Sample(
                image=arrays[f"f{i}_sample{k}"],
                seed=int(s["seed"]),
                identity_strength=float(s["identity_strength"]),
                steps=int(s["steps"]),
                identity_score=s.get("identity_score"),
                parameters=dict(s.get("parameters") or {}),
            )
            for k, s in enumerate(fm["samples"])
        ]
        if fm.get("applied"):
            face.applied = arrays[f"f{i}_applied"]
            face.applied_seed = fm.get("applied_seed")
            face.applied_identity = bool(fm.get("applied_identity"))
        faces.append(face)
    panes = {p["name"]: _png_array(pane_png[p["file"]]) for p in meta.get("panes", [])}
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
        ui=dict(meta.get("ui") or {}),
        warnings=warnings,
    )


def apply_session(doc: Document, data: SessionData) -> None:
    """Replace the document's content with a loaded session (GUI thread; not undoable, like opening a file)."""
    doc.set_photo(data.photo, data.photo_path, data.photo_sha256, data.alpha)
    doc.set_faces(data.faces)
    for name, img in data.panes.items():
        doc.set_pane_result(name, img, data.pane_params.get(name))
    if data.background:
        doc.set_background(data.background)
    if 0 <= data.selected < len(data.faces):
        doc.select(data.selected)
    for i in range(len(data.faces)):
        doc.maskChanged.emit(i)
        doc.samplesChanged.emit(i)
        doc.referencesChanged.emit(i)
        doc.appliedChanged.emit(i)
