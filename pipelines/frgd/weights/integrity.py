"""Verification: sha256 of the files against the manifest, a record of checked hashes (``verified.json`` in the
cache, so listing need not re-hash big files), the quick :func:`status` and the ``frgd weights list`` row."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..io.files import atomic_write_bytes, file_sha256
from .catalog import get_entry
from .paths import cache_dir, expected_path, find_files, missing_message, path_of

_VERIFIED_FILE = "verified.json"


def _verified_db() -> dict[str, Any]:
    """``{resolved path: {size, mtime_ns, sha256}}`` of the files hashed so far (empty when unreadable)."""
    p = cache_dir() / _VERIFIED_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def record_hash(path: Path, sha: str) -> None:
    """Remember ``sha`` for ``path`` at its current size/mtime (so listing need not re-hash)."""
    db = _verified_db()
    st = path.stat()
    db[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    out = cache_dir() / _VERIFIED_FILE
    with contextlib.suppress(OSError):
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, json.dumps(db, indent=1, sort_keys=True).encode())


def _known_hash(path: Path) -> str | None:
    """The recorded sha256 of ``path`` if its size and mtime are unchanged since, else ``None``."""
    rec = _verified_db().get(str(path.resolve()))
    if not rec:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
        return rec.get("sha256")
    return None


@dataclass
class VerifyResult:
    """Outcome of :func:`verify`; ``status``: ``ok``, ``unverified`` (no known sha256), ``mismatch`` or ``missing``."""

    name: str
    status: str
    path: Path | None
    files: dict[str, dict[str, str | None]] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "unverified")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path) if self.path else None
        d["ok"] = self.ok
        return d


def verify(name: str) -> VerifyResult:
    """Hash every file of ``name`` and compare with the manifest (records the result for :func:`status`)."""
    entry = get_entry(name)
    files = find_files(name)
    if files is None:
        return VerifyResult(name, "missing", None, message=missing_message(entry))
    result = VerifyResult(name, "ok", path_of(entry, files))
    unknown = False
    for p, fname in zip(files, entry.files):
        actual = file_sha256(p)
        record_hash(p, actual)
        expected = entry.expected_sha256(fname)
        result.files[fname] = {"path": str(p), "sha256": actual, "expected": expected}
        if expected is None:
            unknown = True
        elif expected.lower() != actual:
            result.status = "mismatch"
            result.message = f"{p}: sha256 {actual} does not match the manifest ({expected}); delete and re-download it"
    if result.status == "ok" and unknown and entry.kind in ("download",):
        result.status = "unverified"
        result.message = "the manifest has no sha256 for this file yet; it was not checked"
    return result


def status(name: str) -> str:
    """Quick status without hashing big files: ``present``, ``unverified``, ``mismatch`` or ``missing``.

    ``present``: found and either checked against a known sha256 (at download/import/verify time) or provided by
    a package / our resources / a conversion. ``unverified``: a downloaded file whose sha256 is unknown or has not
    been checked yet (run ``frgd weights verify NAME``).
    """
    entry = get_entry(name)
    files = find_files(name)
    if files is None:
        return "missing"
    if entry.kind != "download":
        return "present"
    state = "present"
    for p, fname in zip(files, entry.files):
        expected = entry.expected_sha256(fname)
        if entry.single_file and entry.size_bytes and p.stat().st_size != entry.size_bytes:
            return "mismatch"
        known = _known_hash(p)
        if expected is None or known is None:
            state = "unverified"
        elif known != expected.lower():
            return "mismatch"
    return state


def describe(name: str) -> dict[str, Any]:
    """Row of ``frgd weights list``: name, kind, licence, size, status, path, url, description."""
    entry = get_entry(name)
    files = find_files(name)
    st = status(name)
    path = path_of(entry, files) if files else expected_path(entry)
    size = sum(p.stat().st_size for p in files) if files else entry.size_bytes
    return {
        "name": entry.name,
        "kind": entry.kind,
        "licence": entry.licence,
        "size_bytes": size,
        "status": st,
        "path": str(path),
        "url": entry.url,
        "description": entry.description,
    }
