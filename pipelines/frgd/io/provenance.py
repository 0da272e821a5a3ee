"""Provenance: what produced an output image, how it is embedded in each format and how it is read back.

PNG: iTXt chunks (``frgd:provenance`` JSON, ``frgd:identity-changed``, ``Description``); JPEG/WebP: EXIF
(ImageDescription summary, UserComment JSON); TIFF: ImageDescription JSON. BMP holds no metadata.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from .decode import ImageLoadError
from .exif import EXIF_IFD, IMAGE_DESCRIPTION, SOFTWARE, USER_COMMENT
from .png_chunks import itxt

PROVENANCE_KEY = "frgd:provenance"
IDENTITY_FLAG_KEY = "frgd:identity-changed"
SOFTWARE_TAG = f"FRGD Studio {__version__}"
"""The Software tag of every file we write."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Provenance:
    """What produced an output image; embedded in saved files by :func:`save_image`.

    ``identity_changed`` must be True for every edit that can change who the face looks like (diffusion restoration,
    identity guidance); the saved file then carries a human-readable ``frgd:identity-changed`` flag.
    """

    program: str = "FRGD Studio"
    version: str = __version__
    model: str | None = None
    seed: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    reference_hashes: dict[str, str] = field(default_factory=dict)
    identity_changed: bool = False
    source_hash: str | None = None
    created: str = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """Build from a dict; unknown keys are ignored (files written by newer versions still load)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True, default=str)

    def summary(self) -> str:
        """One human-readable line (used for EXIF ImageDescription)."""
        parts = [f"{self.program} {self.version}"]
        if self.model:
            parts.append(f"model={self.model}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        parts.append("IDENTITY CHANGED: this face was generated/edited" if self.identity_changed else "identity kept")
        return "; ".join(parts)


def png_text_chunks(provenance: Provenance | None) -> list[bytes]:
    """PNG iTXt chunks: Software and, with ``provenance``, its JSON, the identity flag and the summary."""
    chunks = [itxt("Software", SOFTWARE_TAG)]
    if provenance is not None:
        chunks.append(itxt(PROVENANCE_KEY, provenance.to_json()))
        chunks.append(itxt(IDENTITY_FLAG_KEY, "true" if provenance.identity_changed else "false"))
        chunks.append(itxt("Description", provenance.summary()))
    return chunks


def exif_bytes(provenance: Provenance | None) -> bytes:
    """JPEG/WebP EXIF: Software and, with ``provenance``, its summary (ImageDescription) and JSON (UserComment)."""
    from PIL import Image

    exif = Image.Exif()
    exif[SOFTWARE] = SOFTWARE_TAG
    if provenance is not None:
        exif[IMAGE_DESCRIPTION] = provenance.summary()
        ifd = exif.get_ifd(EXIF_IFD)
        ifd[USER_COMMENT] = b"ASCII\x00\x00\x00" + provenance.to_json().encode("ascii")
    return exif.tobytes()


def tiff_info(provenance: Provenance | None) -> dict[int, Any]:
    """TIFF tags: Software and, with ``provenance``, its JSON as ImageDescription."""
    info: dict[int, Any] = {SOFTWARE: SOFTWARE_TAG}
    if provenance is not None:
        info[IMAGE_DESCRIPTION] = provenance.to_json()
    return info


def _parse_json(text: Any) -> dict[str, Any] | None:
    """A JSON object from a metadata value (str, or EXIF bytes with a character-code prefix), else ``None``."""
    if isinstance(text, bytes):
        for prefix in (b"ASCII\x00\x00\x00", b"UNICODE\x00", b"\x00" * 8):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return None
    text = text.strip("\x00 \n")
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The :class:`Provenance` dict embedded by :func:`save_image`, or ``None`` when the file has none."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            info = dict(im.info)
            exif = im.getexif()
            tags = dict(getattr(im, "tag_v2", {}) or {})
    except Exception as err:  # noqa: BLE001
        raise ImageLoadError(f"cannot read metadata of {path}: {type(err).__name__}: {err}") from err
    if PROVENANCE_KEY in info:
        data = _parse_json(info[PROVENANCE_KEY])
        if data is not None:
            return data
    try:
        comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
    except Exception:  # noqa: BLE001
        comment = None
    for candidate in (comment, exif.get(IMAGE_DESCRIPTION), tags.get(IMAGE_DESCRIPTION)):
        data = _parse_json(candidate)
        if data is not None and data.get("program"):
            return data
    return None
