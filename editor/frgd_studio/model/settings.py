"""Typed, versioned editor settings (JSON, no Qt).

The file ``frgd-studio.json`` lives in ``$FRGD_CONFIG_DIR`` when set (tests isolate it there), otherwise in the
platform's user config folder (``platformdirs``). It holds ``{"version": SETTINGS_VERSION, ...fields}``. Every value is
validated (:meth:`EditorSettings.validated`): an invalid or unknown one is replaced by its default with a logged
warning, never a crash. The INI file of earlier versions (``frgd-studio.ini``, written by ``QSettings``) is migrated
once with :mod:`configparser` when no JSON file exists yet.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from frgd.devices import DEVICE_CHOICES
from frgd.diffusion.sampling.schedulers import (
    CANDIDATES_MAX,
    DEFAULT_IDENTITY_STRENGTH,
    DEFAULT_STEPS,
    IDENTITY_GRADIENT,
    IDENTITY_GRADIENTS,
    INPUT_QUALITIES,
    INPUT_QUALITY,
    RESAMPLE,
    RESAMPLE_MAX,
)
from frgd.diffusion.sampling.schedulers import (
    IDENTITY_GRADIENT_FAST as IDENTITY_GRADIENT_FAST,  # re-exported for the FRGD panel
)
from frgd.faces.rules import FACE_MIN_SCORE
from frgd.io.files import atomic_write_bytes
from frgd.restore.pipeline import MAX_SCALE

logger = logging.getLogger(__name__)

SETTINGS_VERSION = 2
"""Version 1 was the ``QSettings`` INI file; version 2 the JSON file."""
SETTINGS_FILE = "frgd-studio.json"
LEGACY_INI = "frgd-studio.ini"
MAX_RECENT = 10
MAX_SEED = 2**31 - 1
RANGES: dict[str, tuple[float, float]] = {
    "brush_size": (1.0, 500.0),
    "brush_feather": (0.0, 1.0),
    "steps": (1, 1000),
    "harmonise": (0, RESAMPLE_MAX),
    "candidates": (1, CANDIDATES_MAX),
    "samples": (1, 16),
    "identity_strength": (0.0, 1.0),
    "sr_scale": (1, 8),
    "result_scale": (0, MAX_SCALE),
    "seed": (0, MAX_SEED),
    "face_min_score": (0.0, 1.0),
    "autosave_minutes": (0, 120),
}
"""Inclusive ``(low, high)`` of each numeric setting (the panels' widget ranges read them too)."""
RESULT_SCALE_AUTO = 0
"""``result_scale`` (Image > Result Size): the scale at which the smallest face maps 1:1, as ``frgd enhance --scale
auto`` (:func:`frgd.restore.faces_scale`); 1..8: that many times the photo's size."""
RESULT_SCALE_CHOICES = (RESULT_SCALE_AUTO, 1, 2, 3, 4, 6, 8)
"""The Size box's choices (another valid ``result_scale`` in the file is offered too)."""
AUTOSAVE_CHOICES = (0, 1, 2, 5, 10, 15, 30)
"""Settings > Autosave: minutes between autosaves of unsaved work (0 = off; :mod:`.autosave`)."""
IDENTITY_BACKENDS = ("dlib", "facenet")


@dataclass
class EditorSettings:
    """Every persisted setting with its type and default (``""`` = "not chosen": the default model)."""

    device: str = "auto"
    frgd_model: str = ""
    identity_backend: str = "dlib"
    brush_size: float = 24.0
    brush_feather: float = 0.5
    steps: int = DEFAULT_STEPS
    harmonise: int = RESAMPLE
    candidates: int = 1
    identity_gradient: str = IDENTITY_GRADIENT
    input_quality: str = INPUT_QUALITY
    samples: int = 4
    identity_strength: float = DEFAULT_IDENTITY_STRENGTH
    seed: int = 1234
    lock_seed: bool = False
    sr_model: str = ""
    sr_scale: int = 2
    result_scale: int = RESULT_SCALE_AUTO
    gfpgan_model: str = ""
    face_min_score: float = FACE_MIN_SCORE
    autosave_minutes: int = 5  # crash recovery (.autosave); 0 = off
    recent_files: list[str] = field(default_factory=list)

    @classmethod
    def validated(cls, raw: dict[str, Any]) -> EditorSettings:
        """Settings from ``raw``: unknown keys dropped, invalid values replaced by defaults (each logged)."""
        out = cls()
        known = {f.name: f for f in fields(cls)}
        for key, value in raw.items():
            if key == "version":
                continue
            if key not in known:
                logger.warning("settings: unknown key %r ignored", key)
                continue
            try:
                setattr(out, key, check_value(key, value))
            except ValueError as err:
                logger.warning("settings: %s; using the default %r", err, getattr(out, key))
        return out


def check_value(key: str, value: Any) -> Any:
    """``value`` converted to the type of setting ``key``; ``ValueError`` naming the key when it is invalid."""
    default = getattr(EditorSettings(), key)
    try:
        if key == "recent_files":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("not a list of paths")
            return list(dict.fromkeys(value))[:MAX_RECENT]
        if isinstance(default, bool):
            if isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes")
            if not isinstance(value, bool | int):
                raise ValueError("not a boolean")
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("not an integer")
            v: Any = int(value)
        elif isinstance(default, float):
            v = float(value)
            if v != v:
                raise ValueError("not a number")
        else:
            if not isinstance(value, str):
                raise ValueError("not text")
            v = value
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid {key} {value!r}: {err}") from None
    if key in RANGES:
        lo, hi = RANGES[key]
        if not lo <= v <= hi:
            raise ValueError(f"invalid {key} {value!r}: outside {lo}..{hi}")
    if key == "device" and v not in DEVICE_CHOICES:
        raise ValueError(f"invalid device {value!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    if key == "identity_backend" and v not in IDENTITY_BACKENDS:
        raise ValueError(f"invalid identity_backend {value!r}: choose one of {', '.join(IDENTITY_BACKENDS)}")
    if key == "identity_gradient" and v not in IDENTITY_GRADIENTS:
        raise ValueError(f"invalid identity_gradient {value!r}: choose one of {', '.join(IDENTITY_GRADIENTS)}")
    if key == "input_quality" and v not in INPUT_QUALITIES:
        raise ValueError(f"invalid input_quality {value!r}: choose one of {', '.join(INPUT_QUALITIES)}")
    return v


def config_dir() -> Path:
    """``$FRGD_CONFIG_DIR`` or the platform's user config folder."""
    base = os.environ.get("FRGD_CONFIG_DIR")
    if base:
        return Path(base)
    from platformdirs import user_config_dir

    return Path(user_config_dir("frgd-studio", appauthor=False))


def settings_file() -> Path:
    return config_dir() / SETTINGS_FILE


def _read_legacy_ini(path: Path) -> dict[str, Any]:
    """The values of a ``QSettings`` INI file (section ``[General]``; a list is ``a, b``; ``@Invalid()`` = empty)."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path, encoding="utf-8")
    if not cp.has_section("General"):
        return {}
    raw: dict[str, Any] = {}
    for key, value in cp.items("General"):
        value = value.strip()
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        if key == "recent_files":
            raw[key] = [] if value in ("", "@Invalid()") else [v.strip() for v in value.split(",") if v.strip()]
        else:
            raw[key] = value
    return raw


class Settings:
    """The persisted :class:`EditorSettings` of one file: typed reads (``settings.values.device`` or ``get``),
    validated writes (``set`` raises ``ValueError`` for an invalid value and saves at once)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else settings_file()
        self.values = self._load()

    def _load(self) -> EditorSettings:
        if self.path.is_file():
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                if not isinstance(raw, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as err:
                logger.warning("settings %s unreadable (%s); using the defaults", self.path, err)
                return EditorSettings()
            version = raw.get("version")
            if version != SETTINGS_VERSION:
                logger.warning("settings %s: version %r, expected %d; reading what is valid", self.path, version,
                               SETTINGS_VERSION)  # fmt: skip
            return EditorSettings.validated(raw)
        legacy = self.path.with_name(LEGACY_INI)
        if legacy.is_file():
            logger.info("settings: migrating %s to %s", legacy, self.path)
            try:
                values = EditorSettings.validated(_read_legacy_ini(legacy))
            except (OSError, configparser.Error) as err:
                logger.warning("settings: cannot migrate %s (%s); using the defaults", legacy, err)
                values = EditorSettings()
            self._save(values)
            return values
        return EditorSettings()

    def _save(self, values: EditorSettings) -> None:
        data = {"version": SETTINGS_VERSION, **asdict(values)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
        except OSError as err:  # a read-only config folder must not stop the editor
            logger.warning("cannot save the settings to %s: %s", self.path, err)

    def get(self, key: str) -> Any:
        return getattr(self.values, key)

    def set(self, key: str, value: Any) -> None:
        """Validate and store one setting (``ValueError`` when invalid: nothing is stored)."""
        if key not in {f.name for f in fields(EditorSettings)}:
            raise ValueError(f"unknown setting {key!r}")
        new = dataclasses.replace(self.values, **{key: check_value(key, value)})
        if new != self.values:
            self.values = new
            self._save(new)

    # recent files -----------------------------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        return list(self.values.recent_files)

    def add_recent(self, path: str) -> list[str]:
        path = str(Path(path).resolve())
        items = [path, *(p for p in self.values.recent_files if p != path)][:MAX_RECENT]
        self.set("recent_files", items)
        return items

    def clear_recent(self) -> None:
        self.set("recent_files", [])
