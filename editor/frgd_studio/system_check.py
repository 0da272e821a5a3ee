"""System libraries the editor needs on Linux, checked before Qt starts (standard library only).

Qt's ``xcb`` platform plugin (the default on X11) aborts with "could not load the Qt platform plugin xcb" when one of
its libraries is missing, and blames the wrong one. :func:`missing_libraries` asks the dynamic loader for each of them
first, so ``frgd-studio`` can say in one line which packages to install. :data:`QT_XCB_LIBRARIES` is the one list:
``scripts/system_deps.sh`` (the README's run command) installs the Debian/Ubuntu packages it names by running this file
as a script (``python3 editor/frgd_studio/system_check.py --apt-packages``), before any virtual environment exists.
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
