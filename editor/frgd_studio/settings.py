"""Persisted editor settings (``QSettings`` in INI format).

The file lives in ``$FRGD_CONFIG_DIR`` when set (tests isolate it there), otherwise in the platform's user config
folder (``platformdirs``). Values are typed through :class:`Settings` properties.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

from frgd.devices import DEVICE_CHOICES
from frgd.diffusion.sampling.schedulers import DEFAULT_STEPS

MAX_RECENT = 10


def settings_file() -> Path:
    base = os.environ.get("FRGD_CONFIG_DIR")
    if base:
        root = Path(base)
    else:
        from platformdirs import user_config_dir

        root = Path(user_config_dir("frgd-studio", appauthor=False))
    return root / "frgd-studio.ini"


class Settings:
    """Typed access to the persisted settings."""

    DEFAULTS: dict[str, object] = {
        "device": "auto",
        "frgd_model": "",
        "identity_backend": "dlib",
        "brush_size": 24.0,
        "brush_feather": 0.5,
        "steps": DEFAULT_STEPS,
        "samples": 4,
        "identity_strength": 0.5,
        "sr_model": "",
        "sr_scale": 2,
        "gfpgan_model": "",
    }

    def __init__(self, path: str | Path | None = None) -> None:
        path = Path(path) if path else settings_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.q = QSettings(str(path), QSettings.Format.IniFormat)

    def get(self, key: str):
        default = self.DEFAULTS.get(key)
        value = self.q.value(key, default)
        if value is None:
            return default
        if isinstance(default, bool):
            return str(value).lower() in ("1", "true", "yes")
        if isinstance(default, int):
            try:
                return int(value)
            except (TypeError, ValueError):
                return default
        if isinstance(default, float):
            try:
                return float(value)
            except (TypeError, ValueError):
                return default
        return str(value)

    def set(self, key: str, value) -> None:
        if key == "device" and value not in DEVICE_CHOICES:
            raise ValueError(f"device must be one of {DEVICE_CHOICES}")
        self.q.setValue(key, value)
        self.q.sync()

    # recent files -----------------------------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.q.value("recent_files", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str) -> list[str]:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_files() if p != path]
        items.insert(0, path)
        items = items[:MAX_RECENT]
        self.q.setValue("recent_files", items)
        self.q.sync()
        return items

    def clear_recent(self) -> None:
        self.q.setValue("recent_files", [])
        self.q.sync()
