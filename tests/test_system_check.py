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
