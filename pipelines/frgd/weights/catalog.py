"""The manifest (``manifest.json`` beside this module): one :class:`ModelEntry` per model, read and cached."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FRGDError, InputError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
KINDS = ("download", "package", "resource", "convert")
VERIFIED_KINDS = ("download", "package")
"""Kinds whose files are third-party files of known content: ``frgd weights import`` needs the manifest's sha256 of
each (``resource`` / ``convert`` files are our own products, safetensors + JSON, and carry none)."""


@dataclass
class ModelEntry:
    """One model of the manifest (see :mod:`frgd.weights` for ``kind``)."""

    name: str
    kind: str
    files: list[str]
    description: str = ""
    url: str | None = None
    sha256: str | dict[str, str] | None = None
    size_bytes: int | None = None
    licence: str = ""
    licence_note: str | None = None
    package: str | None = None
    module: str | None = None
    path: str | None = None
    source: str | None = None
    converter: str | None = None
    torch_hub: bool = False
    hint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def single_file(self) -> bool:
        return len(self.files) == 1

    def expected_sha256(self, filename: str | None = None) -> str | None:
        """Known sha256 of ``filename`` (default: the main file), or ``None``."""
        filename = filename or self.files[0]
        if isinstance(self.sha256, dict):
            return self.sha256.get(filename)
        return self.sha256 if filename == self.files[0] else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        files = data.get("files") or []
        if isinstance(files, str):
            files = [files]
        kw = {k: v for k, v in data.items() if k in known}
        kw["files"] = list(files)
        return cls(**kw, extra={k: v for k, v in data.items() if k not in known})


_MANIFEST_CACHE: dict[str, Any] = {}


def manifest(path: str | os.PathLike[str] | None = None) -> dict[str, ModelEntry]:
    """All manifest entries by name (cached per file modification time)."""
    p = Path(path) if path else MANIFEST_PATH
    try:
        stamp = (str(p), p.stat().st_mtime_ns)
    except OSError as err:
        raise FRGDError(f"weights manifest not found: {p}") from err
    if _MANIFEST_CACHE.get("stamp") == stamp:
        return dict(_MANIFEST_CACHE["entries"])
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FRGDError(f"cannot read the weights manifest {p}: {err}") from err
    entries: dict[str, ModelEntry] = {}
    for raw in data.get("models", []):
        e = ModelEntry.from_dict(raw)
        if e.name in entries:
            raise FRGDError(f"weights manifest {p}: duplicate entry {e.name!r}")
        if e.kind not in KINDS:
            raise FRGDError(f"weights manifest {p}: entry {e.name!r} has unknown kind {e.kind!r}")
        if not e.files:
            raise FRGDError(f"weights manifest {p}: entry {e.name!r} lists no files")
        entries[e.name] = e
    _MANIFEST_CACHE.update(stamp=stamp, entries=entries)
    return dict(entries)


def get_entry(name: str) -> ModelEntry:
    """The manifest entry ``name``; :class:`InputError` listing the known names otherwise."""
    entries = manifest()
    if name not in entries:
        raise InputError(f"unknown model {name!r}; known: {', '.join(sorted(entries))} (see `frgd weights list`)")
    return entries[name]


def iter_names(names: Iterable[str] | None = None) -> list[str]:
    """``names`` validated against the manifest, or every name."""
    if not names:
        return list(manifest())
    return [get_entry(n).name for n in names]
