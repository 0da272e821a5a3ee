"""Seeded, bounded fuzzing of session files and of the CLI (the long runs are ``frgd bench fuzz``), and the session
loader's answer to each hostile file of issue 14: one ``InputError`` line, in bounded time and memory."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from frgd.errors import InputError
from frgd.fuzz import fuzz_cli, fuzz_images

pytest.importorskip("PySide6")

from frgd_studio.session import load_session  # noqa: E402
from frgd_studio.session_fuzz import (  # noqa: E402
    _forged_npy,
    _members,
    _npy,
    _png_header,
    _zip,
    fuzz_sessions,
    seed_session,
)


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory) -> Path:
    return seed_session(tmp_path_factory.mktemp("session"))


def _variant(seed_file: Path, name: str, edit) -> Path:
    members = _members(seed_file.read_bytes())
    edit(members)
    out = seed_file.with_name(name)
    out.write_bytes(_zip(members))
    return out


def _set_array(key: str, data: bytes):
    def edit(members: dict[str, bytes]) -> None:
        arrays = _members(members["arrays.npz"])
        arrays[f"{key}.npy"] = data
        members["arrays.npz"] = _zip(arrays)

    return edit


def _set_pane(data: bytes):
    def edit(members: dict[str, bytes]) -> None:
        members[next(n for n in members if n.startswith("panes/"))] = data

    return edit


def test_the_seed_session_loads(seed_file: Path) -> None:
    data = load_session(seed_file)
    assert len(data.faces) == 2 and len(data.faces[0].samples) == 3 and data.faces[1].applied is not None
    assert [s.seed for s in data.faces[0].samples] == [0, 1, None] and data.faces[0].samples[2].imported
    assert next(iter(data.panes.values())).shape == (240, 320, 3)


_RNG = np.random.default_rng(0)
HOSTILE = {
    "corrupt pane PNG": _set_pane(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
    "pane PNG bomb": _set_pane(_png_header(60_000, 60_000)),
    "pane of another shape": _set_pane(_png_header(7, 3)),
    "npz header claiming 100000x100000 float64": _set_array("f0_mask", _forged_npy((100_000, 100_000), "<f8")),
    "object array": _set_array("f0_sample0", _forged_npy((128, 128, 3), "|O")),
    "mask of shape (3,)": _set_array("f0_mask", _npy((3,), "float32", _RNG)),
    "sample of shape (5,)": _set_array("f1_sample1", _npy((5,), "uint8", _RNG)),
    "reference crop of float64": _set_array("f0_ref0", _npy((128, 128, 3), "float64", _RNG)),
    "session.json of 24 MiB": lambda m: m.update({"session.json": b" " * (24 << 20)}),
    "arrays.npz of 24 MiB of zeros": lambda m: m.update({"arrays.npz": b"\x00" * (24 << 20)}),
    "landmarks as a string": lambda m: m.update(
        {"session.json": m["session.json"].replace(b'"landmarks": [', b'"landmarks": "x", "_": [', 1)}
    ),
    "deeply nested JSON": lambda m: m.update({"session.json": b"[" * 100_000 + b"]" * 100_000}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_session_is_one_input_error(seed_file: Path, case: str) -> None:
    path = _variant(seed_file, "hostile.frgd", HOSTILE[case])
    with pytest.raises(InputError) as ei:
        load_session(path)
    assert "\n" not in str(ei.value) and str(path) in str(ei.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_session_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "s.frgd"
    os.mkfifo(fifo)
    box: list[BaseException] = []
    t = threading.Thread(target=lambda: box.append(pytest.raises(InputError, load_session, fifo).value), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_session blocked on a FIFO")
    assert "not a regular file" in str(box[0])


def test_session_fuzz_bounded_run() -> None:
    """30 damaged sessions (seeded): every one loads and fits the document or is one InputError; no hang."""
    stats = fuzz_sessions(30, seed=0, timeout=30)
    assert stats.n_crashes == 0 and stats.n_hangs == 0, stats.crashes + stats.hangs
    assert stats.cases == 30
    kinds = {k.split(":")[0] for k in stats.outcomes}
    assert kinds == {"InputError", "loaded"}, stats.outcomes


def test_cli_fuzz_bounded_run(tmp_path: Path) -> None:
    """25 random command lines over hostile inputs: exit codes 0/1/2 with one error line, no input changed, no temp
    file or partial output left behind, no hang."""
    stats = fuzz_cli(25, seed=0, workdir=tmp_path, timeout=60,
                     commands=("upscale", "upscale", "restore", "faces detect", "weights import", "weights verify",
                               "noise"))  # fmt: skip
    assert stats.n_crashes == 0 and stats.n_hangs == 0, stats.crashes + stats.hangs
    assert stats.outcomes["ok"] > 0 and stats.outcomes["input error"] > 0, stats.outcomes


def test_cli_fuzz_damage_detect(tmp_path: Path) -> None:
    """``frgd damage detect`` over the hostile inputs and outputs (the installed detector): the same guarantees."""
    stats = fuzz_cli(10, seed=1, workdir=tmp_path, timeout=60, commands=("damage detect",))
    assert stats.n_crashes == 0 and stats.n_hangs == 0, stats.crashes + stats.hangs
    assert stats.outcomes["ok"] > 0 and stats.outcomes["input error"] > 0, stats.outcomes


def test_cli_fuzz_faces_paste(tmp_path: Path) -> None:
    """``frgd faces paste`` over a valid face index, mutated ones, a sidecar and the hostile images and outputs."""
    stats = fuzz_cli(30, seed=2, workdir=tmp_path, timeout=60, commands=("faces paste",))
    assert stats.n_crashes == 0 and stats.n_hangs == 0, stats.crashes + stats.hangs
    assert stats.outcomes["ok"] > 0 and stats.outcomes["input error"] > 0, stats.outcomes


def test_image_fuzz_bounded_run() -> None:
    stats = fuzz_images(300, seed=0)
    assert stats.n_crashes == 0 and stats.n_hangs == 0, stats.crashes
    assert stats.outcomes["loaded"] > 0 and stats.outcomes["ImageLoadError"] > 0


def test_bench_fuzz_writes_its_counts(tmp_path: Path, capsys) -> None:
    from frgd.cli.main import main

    out = tmp_path / "fuzz.json"
    argv = ["bench", "fuzz", "--targets", "images,cli", "--images", "40", "--cli", "3", "--json-out"]
    assert main([*argv, str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["cases"] == 43 and data["crashes"] == 0 and data["hangs"] == 0
    assert [r["target"] for r in data["targets"]] == ["images", "cli"]
    assert data["command"].startswith("frgd bench fuzz --targets images,cli --images 40")
    assert main(["bench", "fuzz", "--targets", "nope"]) == 2
    capsys.readouterr()


def test_session_fuzz_command_writes_its_counts(tmp_path: Path, capsys) -> None:
    from frgd_studio.session_fuzz import main

    out = tmp_path / "sessions.json"
    assert main(["--cases", "4", "--json-out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["cases"] == 4 and data["crashes"] == 0 and data["targets"][0]["target"] == "sessions"
    assert data["command"] == "python -m frgd_studio.session_fuzz --cases 4 --seed 0 --timeout 60"
    capsys.readouterr()
