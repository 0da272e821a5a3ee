"""Start-up check of the system libraries Qt's xcb platform needs, and the README's set-up of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from frgd_studio import app, system_check
from frgd_studio.system_check import QT_XCB_LIBRARIES, install_command, startup_problem, uses_xcb

REPO = Path(__file__).resolve().parents[1]


def _missing(*libs):
    return lambda soname: soname not in libs


def test_problem_names_the_missing_libraries_and_the_exact_packages():
    env = {"DISPLAY": ":0"}
    problem = startup_problem(env, _missing("libxcb-icccm.so.4", "libxcb-keysyms.so.1"))
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in problem
    assert "`sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1`" in problem
    assert "\n" not in problem
    assert startup_problem(env, _missing()) is None


def test_only_checked_when_qt_will_use_xcb():
    assert uses_xcb({"DISPLAY": ":0"}, "linux")
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not uses_xcb({}, "linux")  # no display: Qt will not use xcb either
    assert not uses_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0"}, "darwin")
    assert startup_problem({"QT_QPA_PLATFORM": "offscreen"}, _missing("libxcb.so.1")) is None


def test_install_command_deduplicates_packages():
    assert install_command(["libxcb-icccm.so.4", "libxcb-icccm.so.4"]) == "sudo apt-get install -y libxcb-icccm4"
    assert all(re.fullmatch(r"lib[A-Za-z0-9.+-]+\.so\.\d+", k) for k in QT_XCB_LIBRARIES)


def test_editor_refuses_to_start_with_one_line_instead_of_qt_abort(monkeypatch, capsys):
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(system_check, "_loadable", lambda soname: soname != "libxcb-keysyms.so.1")
    assert app.main(["--demo"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("frgd-studio: error: Qt's X11 (xcb) platform needs libxcb-keysyms.so.1")
    assert "sudo apt-get install -y libxcb-keysyms1" in err and "\n" not in err


def test_system_deps_script_and_readme_use_the_one_package_list():
    out = subprocess.run(
        [sys.executable, str(REPO / "editor" / "frgd_studio" / "system_check.py"), "--apt-packages"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out == system_check.apt_packages() and "python3-venv" in out and "libxcb-keysyms1" in out
    script = (REPO / "scripts" / "system_deps.sh").read_text()
    assert "system_check.py --apt-packages" in script
    readme = (REPO / "README.md").read_text()
    run_cmd = re.search(r"<!-- run-command -->\s*```\n(.*?)\n```", readme, re.S).group(1)
    assert run_cmd.startswith("sh scripts/system_deps.sh && python3 -m venv .venv")


# ------------------------------------------------------------------------------------------ the PySide6 build
def test_the_installed_pyside6_keeps_its_references_to_none():
    """The real check, in a fresh interpreter (a build that loses references must not weaken this one): the PySide6
    that the set-up installed does not lose a reference to ``None`` per Qt call (6.12.0 did on Python 3.11: the
    editor died with "deallocating None" after minutes). From Python 3.12 it cannot matter and the probe says so."""
    code = (
        "import sys\n"
        "from frgd_studio.system_check import pyside_loses_none, pyside_problem\n"
        "sys.stdout.write(f'{pyside_loses_none()} {pyside_problem()}')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout == "False None", out.stdout


def test_a_pyside_that_loses_none_is_caught_and_the_editor_refuses_to_start(monkeypatch, capsys):
    """Oracle for the probe: a call that drops one reference to ``None`` (``Py_DecRef``, given back afterwards) is
    caught; one that does not, or drops one every tenth call, is not. The editor then stops with the command."""
    import ctypes

    if sys.version_info >= (3, 12):
        import pytest

        pytest.skip("None is immortal from Python 3.12: its count cannot show a lost reference")
    none = ctypes.py_object(None)
    calls, dropped = [0], [0]

    def drop() -> None:
        ctypes.pythonapi.Py_DecRef(none)
        dropped[0] += 1

    def now_and_then() -> None:
        calls[0] += 1
        if calls[0] % 10 == 0:
            drop()

    try:
        assert system_check.pyside_loses_none(drop, calls=64)
        assert not system_check.pyside_loses_none(now_and_then, calls=64)
    finally:
        for _ in range(dropped[0]):  # give None its references back
            ctypes.pythonapi.Py_IncRef(none)
    assert dropped[0] == 64 + 6
    assert not system_check.pyside_loses_none(lambda: None, calls=64)
    monkeypatch.setattr(system_check, "pyside_loses_none", lambda: True)
    monkeypatch.setattr(system_check, "startup_problem", lambda: None)
    assert app.main(["--demo"]) == 1
    err = capsys.readouterr().err
    assert "deallocating None" in err and "pip install 'PySide6-Essentials>=6.6,<6.12'" in err and "\n" == err[-1]


def test_the_command_names_the_builds_the_set_up_installs():
    """``pyproject.toml`` requires on Python < 3.12 exactly the builds the refusal's command installs."""
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f"\"{system_check.PYSIDE_SOUND}; python_version < '3.12'\"" in pyproject
