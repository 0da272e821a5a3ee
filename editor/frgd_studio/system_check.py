"""System libraries the editor needs on Linux, checked before Qt starts (standard library only), and the PySide6 build.

Qt's ``xcb`` platform plugin (the default on X11) aborts with "could not load the Qt platform plugin xcb" when one of
its libraries is missing, and blames the wrong one. :func:`missing_libraries` asks the dynamic loader for each of them
first, so ``frgd-studio`` can say in one line which packages to install. :data:`QT_XCB_LIBRARIES` is the one list:
``scripts/system_deps.sh`` (the README's run command) installs the Debian/Ubuntu packages it names by running this file
as a script (``python3 editor/frgd_studio/system_check.py --apt-packages``), before any virtual environment exists.

:func:`pyside_problem` (which imports PySide6's QtCore, no window) catches a PySide6 build that loses a reference to
``None`` at every call of a Qt function that returns nothing: PySide6-Essentials 6.12.0 does. On Python 3.10 and 3.11,
where ``None`` is a counted object, the editor then dies with "Fatal Python error: none_dealloc: deallocating None"
after some thousands of such calls (minutes of painting; 1,000 calls of ``QPoint.setX`` already kill a script when it
exits). From Python 3.12 ``None`` is immortal and the lost references do no harm. ``pyproject.toml`` keeps PySide6
below 6.12 on Python < 3.12.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

QT_XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
"""Shared libraries of Qt 6's xcb platform plugin (``ldd libqxcb.so``) -> the Debian/Ubuntu package providing each."""

APT_EXTRA = ("python3-venv",)
"""Debian/Ubuntu packages the set-up needs besides the libraries (``python3 -m venv`` needs ``ensurepip``)."""


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def uses_xcb(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether Qt will pick the xcb platform: Linux with an X display and no other ``QT_QPA_PLATFORM``."""
    env = os.environ if env is None else env
    if not (platform or sys.platform).startswith("linux"):
        return False
    qpa = env.get("QT_QPA_PLATFORM", "")
    if qpa:
        return qpa.split(":")[0] == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def missing_libraries(loadable: Callable[[str], bool] | None = None) -> list[str]:
    """The sonames of :data:`QT_XCB_LIBRARIES` the dynamic loader cannot load."""
    loadable = loadable or _loadable
    return [lib for lib in QT_XCB_LIBRARIES if not loadable(lib)]


def install_command(missing: list[str]) -> str:
    """The Debian/Ubuntu command that installs the packages of the ``missing`` sonames."""
    return "sudo apt-get install -y " + " ".join(dict.fromkeys(QT_XCB_LIBRARIES[lib] for lib in missing))


def startup_problem(env: Mapping[str, str] | None = None, loadable: Callable[[str], bool] | None = None) -> str | None:
    """One line naming the missing libraries and the exact install command, or ``None`` when Qt can start."""
    if not uses_xcb(env):
        return None
    missing = missing_libraries(loadable)
    if not missing:
        return None
    return (
        f"Qt's X11 (xcb) platform needs {', '.join(missing)}, which this system lacks: install them with "
        f"`{install_command(missing)}` (Debian/Ubuntu; or run `sh scripts/system_deps.sh`)"
    )


PYSIDE_SOUND = "PySide6-Essentials>=6.6,<6.12"
"""The PySide6 builds that keep their references to ``None`` (``pyproject.toml``'s requirement on Python < 3.12, and
the command :func:`pyside_problem` gives)."""
NONE_PROBE_CALLS = 64
"""Qt calls :func:`pyside_loses_none` makes (each loses at most one reference to ``None``; thousands are left)."""


def _qt_void_call() -> Callable[[], object]:
    from PySide6.QtCore import QPoint

    point = QPoint()
    return lambda: point.setX(1)


def pyside_loses_none(call: Callable[[], object] | None = None, calls: int = NONE_PROBE_CALLS) -> bool:
    """Whether ``call`` (default: ``QPoint.setX``, a Qt function returning nothing) loses a reference to ``None`` at
    most of ``calls`` calls (module docstring). Always ``False`` from Python 3.12 (``None`` is immortal)."""
    if sys.version_info >= (3, 12):
        return False
    call = call or _qt_void_call()
    before = sys.getrefcount(None)
    for _ in range(calls):
        call()
    return before - sys.getrefcount(None) >= calls // 2


def pyside_problem(loses_none: Callable[[], bool] | None = None) -> str | None:
    """One line naming the broken PySide6 build and the command that replaces it, or ``None`` when it is sound
    (``loses_none``: default :func:`pyside_loses_none`)."""
    if not (loses_none or pyside_loses_none)():
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = f"PySide6-Essentials {version('PySide6-Essentials')}"
    except PackageNotFoundError:
        found = "this PySide6"
    return (
        f"{found} loses a reference to None at every Qt call on Python {sys.version_info.major}."
        f'{sys.version_info.minor}, so the editor would crash within minutes ("deallocating None"): install '
        f"a build below 6.12 with `pip install '{PYSIDE_SOUND}'` (or use Python 3.12 or newer)"
    )


def apt_packages() -> list[str]:
    """Every Debian/Ubuntu package the editor's set-up needs (libraries and :data:`APT_EXTRA`)."""
    return list(APT_EXTRA) + list(dict.fromkeys(QT_XCB_LIBRARIES.values()))


if __name__ == "__main__":  # used by scripts/system_deps.sh before any environment exists
    if sys.argv[1:] == ["--apt-packages"]:
        sys.stdout.write(" ".join(apt_packages()) + "\n")
    else:
        problem = startup_problem()
        sys.stdout.write((problem or "Qt's system libraries: all present") + "\n")
        sys.exit(1 if problem else 0)
