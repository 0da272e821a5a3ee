"""Face files: every restored face of a photo as files, for review and retouching (what GFPGAN's ``cropped_faces`` /
``restored_faces`` / ``cmp`` folders give), written by ``--save-faces DIR`` of ``frgd restore`` and ``frgd enhance``
and by the editor's File > Export Faces, read back by ``frgd faces paste``.

Per photo (``STEM``: the output photo's name without its extension and seed suffix) and face ``N`` (numbered left to
right, as everywhere):

* ``STEM_faceN_input.png``: the aligned face the restorer was given (damage marks filled), at its crop size;
* ``STEM_faceN_restored.png`` (several samples: ``STEM_faceN_restored_seedK.png``): the restored crop, with
  provenance (model, seed, the sample's parameters, reference hashes when the face used the references,
  ``identity_changed`` for a generative restorer);
* ``STEM_faceN_cmp.png``: the input and every restored sample side by side (8 bit);
* ``STEM_faces.json``, written last: per face its number, box, score, landmarks, the crop's affine (photo -> crop)
  and inverse for pasting a retouched crop back, its seeds, identity scores and files. A batch counts a photo as done
  only when its index exists, so a rerun with ``--save-faces`` restores the photos whose faces were not saved yet.

``frgd faces paste`` reads an index (or the sidecars of ``frgd faces align``) back (:func:`read_paste_plan`) and
pastes crops, retouched or not, onto the output photo with :func:`frgd.restore.paste_faces`; the editor's Import Face
Result takes one crop file into a face.

Crops are PNG (lossless) whatever ``--format`` is. Without ``--overwrite`` no file is replaced and a folder that
already holds faces of ``STEM`` is refused before any work; with it, the face files an earlier index listed that this
run does not write again (a face fewer) are removed, so the folder matches the new index.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

logger = logging.getLogger(__name__)


def index_path(folder: str | Path, stem: str) -> Path:
    """The face index of photo ``stem`` in ``folder`` (written last: it marks the faces as complete)."""
    return Path(folder) / f"{stem}_faces.json"


def face_file_names(stem: str, number: int, seeds: Sequence[int | None]) -> dict[str, Any]:
    """The file names of face ``number``: ``input``, ``restored`` (one per seed; a face without a result: none) and
    ``cmp`` (``None`` without a result)."""
    base = f"{stem}_face{number}"
    restored = [f"{base}_restored.png"] if len(seeds) == 1 else [f"{base}_restored_seed{s}.png" for s in seeds]
    return {"input": f"{base}_input.png", "restored": restored, "cmp": f"{base}_cmp.png" if seeds else None}


def existing_face_files(folder: str | Path, stem: str) -> list[Path]:
    """Files of ``folder`` that are face files or the index of ``stem`` (any face number, any seed): what writing
    the faces of ``stem`` there may replace or remove (only with ``overwrite``)."""
    folder = Path(folder)
    pattern = re.compile(re.escape(stem) + r"_(face\d+_(input|restored|restored_seed-?\d+|cmp)\.png|faces\.json)")
    return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name)) if folder.is_dir() else []


def check_face_folder(
    folder: str | Path, stem: str | None, *, overwrite: bool, inputs: Iterable[str | Path] = (),
    out_dir: str | Path | None = None,
) -> Path:  # fmt: skip
    """Up-front check of ``--save-faces`` (before any work): ``folder`` is not a file, not a folder of ``inputs``
    (a batch would read the crops as photos next time) nor the batch's output folder ``out_dir``, and without
    ``overwrite`` it holds no face file of ``stem`` (``None``, a batch: each photo's files are checked when they are
    written)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--save-faces {folder}: it is a file, not a folder")
    here = folder.resolve()
    for p in inputs:
        p = Path(p)
        if (p.resolve() if p.is_dir() else p.resolve().parent) == here:
            raise InputError(f"--save-faces {folder} holds input photos: choose another folder")
    if out_dir is not None and Path(out_dir).resolve() == here:
        raise InputError(
            f"--save-faces {folder} is the output folder: choose another one, e.g. {Path(out_dir) / 'faces'}"
        )
    found = [] if stem is None else existing_face_files(folder, stem)
    if found and not overwrite:
        raise InputError(f"{folder} already holds the faces of {stem} ({found[0].name}, ...); allow overwriting "
                         "(--overwrite) or choose another folder")  # fmt: skip
    return folder


def _comparison(crop: Any, samples: Sequence[Any]) -> Any:
    """``(S, S * (1 + n), 3)`` uint8: the input crop ``(S, S, 3)`` (any bit depth) then each sample, side by side."""
    import numpy as np

    from ..io.pixels import to_uint8
    from .methods import fit_crop

    size = samples[0].shape[0]
    return np.concatenate([fit_crop(to_uint8(crop), size), *(to_uint8(s) for s in samples)], axis=1)


def write_face_files(
    folder: str | Path,
    stem: str,
    faces: Sequence[Any],
    *,
    command: str,
    source: str | Path,
    outputs: Sequence[str | Path],
    source_hash: str | None,
    reference_hashes: dict[int, dict[str, str]] | None = None,
    overwrite: bool = False,
    protect: Iterable[str | Path] = (),
    icc_profile: bytes | None = None,
) -> dict[str, Any]:
    """Write the files of every face (:class:`frgd.restore.RestoredFace`) of one photo into ``folder`` and the index
    last (see the module docstring); returns the index (its ``index`` key: its path). A face without samples (the
    editor's face without a result) gets its input crop and its index entry only, for restoring it elsewhere.

    ``source`` / ``outputs``: the photo and its restored output(s), named in the index (no outputs: ``frgd faces
    paste`` needs ``--onto``); ``source_hash`` and, per face number, the hashes of the references its result used
    (``reference_hashes``: name -> sha256; a face not in it used none) go into the restored crops' provenance; every
    file carries the photo's colour profile ``icc_profile`` (its pixels are the photo's, not converted).
    :class:`InputError` for a file that exists without ``overwrite`` or that is one of ``protect``."""
    from ..io import Provenance, save_bytes, save_image
    from ..io.files import check_output

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    protect = [*protect, source, *outputs]
    index = index_path(folder, stem)
    earlier = _listed(index) if overwrite else set()
    plans = [(f, face_file_names(stem, f.number, [s.seed for s in f.samples])) for f in faces]
    for path in [index, *(folder / n for _f, names in plans for n in _names(names))]:
        check_output(path, overwrite=overwrite, protect=protect)  # every file checked before the first is written
    records = []
    for face, names in plans:
        crop = face.crop
        crop_prov = Provenance(
            model="mtcnn+five-point-alignment",
            parameters={"command": command, "face": face.number, "size": crop.size},
            source_hash=source_hash,
        )
        save_image(folder / names["input"], crop.image, provenance=crop_prov, overwrite=overwrite, protect=protect,
                   icc_profile=icc_profile)  # fmt: skip
        refs = dict((reference_hashes or {}).get(face.number, {}))
        for sample, name in zip(face.samples, names["restored"], strict=True):
            prov = Provenance(
                model=sample.params.get("model") or sample.method,
                seed=sample.seed,
                parameters={
                    "command": command,
                    "face": face.number,
                    "method": sample.method,
                    **sample.params,
                    "identity_score": sample.identity_score,
                    "identity_meter": sample.verdict,
                },  # fmt: skip
                reference_hashes=refs,
                identity_changed=sample.identity_changed,
                source_hash=source_hash,
            )
            save_image(folder / name, sample.image, provenance=prov, overwrite=overwrite, protect=protect,
                       icc_profile=icc_profile)  # fmt: skip
        if face.samples:
            save_image(folder / names["cmp"], _comparison(crop.image, [s.image for s in face.samples]),
                       overwrite=overwrite, protect=protect, icc_profile=icc_profile)  # fmt: skip
        records.append({**face.to_json(), "crop": crop.to_json(), "files": names})
    data = {"photo": str(Path(source).resolve()), "outputs": [str(Path(o).resolve()) for o in outputs],
            "command": command, "faces": records}  # fmt: skip
    save_bytes(index, (json.dumps(data, indent=2) + "\n").encode(), overwrite=overwrite, protect=protect)
    written = {index.name, *(n for r in records for n in _names(r["files"]))}
    ours = {p.name for p in existing_face_files(folder, stem)}  # only files named as faces of stem are ever removed
    for name in sorted((earlier - written) & ours):  # a face fewer than last time: its files go, as the index says
        stale = folder / name
        stale.unlink()
        logger.info("removed %s (no longer one of the faces of %s)", stale, stem)
    return {"index": str(index), **data}


def _names(files: dict[str, Any]) -> list[str]:
    return [n for n in (files["input"], *files["restored"], files.get("cmp")) if n]


def _listed(index: Path) -> set[str]:
    """The file names an earlier index lists (nothing when there is none or it cannot be read)."""
    try:
        data = json.loads(index.read_text())
        return {n for f in data["faces"] for n in _names(f["files"])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


# ----------------------------------------------------------------------------------------------- pasting back
INDEX_LIMIT = 16 << 20
"""Largest face index or sidecar read (bytes): thousands of faces."""


@dataclass
class PasteFace:
    """One face to paste: its number, its crop's geometry, and the crop file pasted when none is given (``None``: a
    face the index has no result of, pasted only from a file given for it)."""

    number: int
    crop: Any  # frgd.faces.align.FaceCrop
    file: Path | None


@dataclass
class PastePlan:
    """What ``frgd faces paste`` reads from a face index (``--save-faces``) or from ``frgd faces align`` sidecars:
    the faces, the image they go onto when none is given (the output photo of the chosen sample, or the aligned
    photo), and the photo the faces are of."""

    faces: list[PasteFace]
    canvas: Path | None
    photo: str


def read_paste_plan(paths: Sequence[str | Path], seed: int | None = None) -> PastePlan:
    """The :class:`PastePlan` of one face index (``NAME_faces.json``; ``seed``: the sample whose output and crops are
    used, default the first) or of one or more ``frgd faces align`` sidecars of one photo. :class:`InputError` for
    anything else, naming the file."""
    from ..faces.align import FaceCrop
    from ..io.files import read_file_bytes

    docs = []
    for p in map(Path, paths):
        try:
            docs.append((p, json.loads(read_file_bytes(p, limit=INDEX_LIMIT))))
        except ValueError as err:
            raise InputError(f"{p} is not a face index or sidecar (not JSON: {err})") from None
    try:
        if len(docs) == 1 and isinstance(docs[0][1].get("faces"), list):
            path, data = docs[0]
            faces = data["faces"]
            seeds = next((f["seeds"] for f in faces if f["seeds"]), [])  # the samples' seeds (faces with results)
            if seed is not None and seed not in seeds:
                raise InputError(f"{path} has no sample of seed {seed} (seeds {', '.join(map(str, seeds)) or 'none'})")
            k = 0 if seed is None else seeds.index(seed)
            plan = []
            for f in faces:
                restored = f["files"]["restored"]
                file = path.parent / restored[k] if k < len(restored) else None  # no result: only with --face
                plan.append(PasteFace(int(f["number"]), FaceCrop.from_json(f["crop"]), file))
            outputs = data.get("outputs") or []
            canvas = Path(outputs[k]) if k < len(outputs) else None
            return PastePlan(plan, canvas, str(data.get("photo", "")))
        if seed is not None:
            raise InputError("--seed chooses a sample of a face index (--save-faces); sidecars have one crop each")
        photos = {str(d["image"]) for _p, d in docs}
        if len(photos) != 1:
            raise InputError(f"the sidecars are of {len(photos)} photos ({', '.join(sorted(photos))}): give one's")
        plan = [PasteFace(int(d["face"]), FaceCrop.from_json(d), p.parent / str(d["crop"])) for p, d in docs]
        return PastePlan(plan, Path(photos.pop()), docs[0][1]["image"])
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        names = ", ".join(str(p) for p, _d in docs)
        raise InputError(f"{names}: not a face index (--save-faces) nor frgd faces align sidecars "
                         f"({type(err).__name__}: {err})") from None  # fmt: skip
