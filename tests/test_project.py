"""Project-level contracts: import direction, README/CI set-up commands, CLI behaviour, shipped resources."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from frgd.cli.main import command_modules, main

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_pipelines_never_import_qt_or_editor():
    offenders = []
    for py in (REPO / "pipelines").rglob("*.py"):
        bad = _imports(py) & {"PySide6", "PyQt5", "PyQt6", "frgd_studio"}
        if bad:
            offenders.append(f"{py.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, "pipelines/ must not import Qt or the editor:\n" + "\n".join(offenders)


def test_pipelines_import_without_qt_loaded():
    code = (
        "import sys, importlib, pkgutil, frgd\n"
        "for m in pkgutil.walk_packages(frgd.__path__, 'frgd.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'frgd_studio'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _readme_block(tag: str) -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- {tag} -->\s*```\n(.*?)\n```\s*<!-- /{tag} -->", text, re.S)
    assert m, f"README.md has no {tag} block"
    return m.group(1).strip()


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    run_cmd, test_cmd = _readme_block("run-command"), _readme_block("test-command")
    assert "\n" not in run_cmd and "\n" not in test_cmd
    assert "frgd-studio --demo" in run_cmd
    assert "pytest" in test_cmd
    ci = (REPO / ".ci" / "run").read_text()
    assert "test-command" in ci  # .ci/run extracts and runs exactly the README's test command


def test_cli_help_everywhere(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for group in ("eval", "bench", "weights", "faces"):
        assert group in out
    assert command_modules(), "no cmd_* modules found"


def test_cli_unknown_command_is_one_line_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0]


def test_every_subcommand_has_help(capsys):
    """Walk the parser tree: every (sub)command answers --help with exit 0."""
    import argparse

    from frgd.cli.main import build_parser

    def walk(parser: argparse.ArgumentParser, prefix: list[str]):
        yield prefix
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, prefix + [name])

    paths = list(walk(build_parser(), []))
    assert len(paths) > 5
    for path in paths:
        with pytest.raises(SystemExit) as e:
            main([*path, "--help"])
        assert e.value.code == 0, path
        assert "usage:" in capsys.readouterr().out, path


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_clean(args):
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed (dev extra)")
    r = subprocess.run([str(ruff), *args], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_import_linter_contracts():
    """pyproject.toml's import-linter contracts (pipelines never import the editor or Qt) are kept."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (dev extra)")
    r = subprocess.run([str(lint)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_building_the_cli_parser_imports_no_torch():
    """Every cmd_* module keeps torch lazy, so `frgd --help` and argument errors answer at once."""
    code = (
        "import sys\n"
        "from frgd.cli.main import build_parser\n"
        "build_parser()\n"
        "heavy = [m for m in ('torch', 'diffusers', 'cv2', 'PySide6') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------------------------ docs/DEVELOPING.md module table

COMPLETE_ROWS = ("frgd.archs", "frgd.eval", "frgd.faces", "frgd.identity", "frgd.io", "frgd.sr", "frgd.weights",
                 "frgd.diffusion.training")  # fmt: skip
"""Rows of the module table that name every module of their package."""


def _module_table() -> dict[str, str]:
    """``{module: what}`` of the "Modules" table of docs/DEVELOPING.md."""
    text = (REPO / "docs" / "DEVELOPING.md").read_text()
    section = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `([\w.]+)` \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def _source_dir(module: str) -> Path:
    top = module.split(".")[0]
    root = {"frgd": REPO / "pipelines", "frgd_studio": REPO / "editor"}[top]
    return root.joinpath(*module.split("."))


def _modules_of(package_dir: Path) -> set[str]:
    return {p.name for p in package_dir.glob("*.py") if p.name != "__init__.py"}


def test_module_table_matches_the_tree():
    """Every module and file the table names exists; every frgd subpackage and top-level module has a row (its own, a
    package's above it, or rows of its parts); the rows of COMPLETE_ROWS name every module of their package."""
    rows = _module_table()
    assert "frgd.weights" in rows and "frgd_studio" in rows
    problems = []
    for module, what in rows.items():
        path = _source_dir(module)
        if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
            problems.append(f"{module}: no such module or package")
            continue
        named = set(re.findall(r"`([\w*]+\.(?:py|json))`", what))
        for name in named:
            if not list(path.glob(name)):
                problems.append(f"{module}: names {name}, which is not in {path.relative_to(REPO)}")
        if module in COMPLETE_ROWS:
            missing = sorted(_modules_of(path) - named)
            if missing:
                problems.append(f"{module}: does not name {', '.join(missing)}")
    frgd_dir = REPO / "pipelines" / "frgd"
    tree = [f"frgd.{p.stem}" for p in frgd_dir.glob("*.py") if p.name != "__init__.py"]
    tree += [".".join(p.parent.relative_to(REPO / "pipelines").parts) for p in frgd_dir.rglob("*/__init__.py")]
    for module in sorted(tree):
        parts = module.split(".")
        covered = any(".".join(parts[:n]) in rows for n in range(2, len(parts) + 1))  # its row or a package's above
        if not covered and not any(r.startswith(module + ".") for r in rows):  # or rows of its parts
            problems.append(f"{module}: has no row")
    assert not problems, "docs/DEVELOPING.md module table:\n" + "\n".join(problems)
