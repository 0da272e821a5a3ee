"""Issue 14 (reliability): no input destroys a file, hangs the program or escapes as an internal error.

Each test reproduces one finding of the issue: ``--json-out`` through the protected atomic save, regular-file reads
with a size cap, temp files on SIGTERM and from crashed saves, exit codes, up-front output checks, alpha in
``frgd restore``, 1x1 upscales, libpng noise, the bomb message.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from frgd.cli.main import EXIT_CODES, EXIT_FAILURE, EXIT_USAGE, build_parser, main
from frgd.errors import InputError
from frgd.io import (
    ImageLoadError,
    check_output,
    load_image,
    load_image_bytes,
    read_file_bytes,
    remove_stale_temps,
    save_bytes,
    save_image,
)

REPO = Path(__file__).resolve().parents[1]


def _photo(path: Path, h: int = 20, w: int = 30, alpha: bool = False) -> Path:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    a = rng.integers(1, 256, (h, w), dtype=np.uint8) if alpha else None
    return save_image(path, rgb, alpha=a)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------------------------ --json-out


@pytest.mark.parametrize("target", ["input", "output", "folder", "existing"])
def test_json_out_never_replaces_an_input_output_or_existing_file(tmp_path: Path, capsys, target: str) -> None:
    """The issue's reproduction: ``--json-out`` naming the input photo (or the output image, a folder, an existing
    file) fails with one line before any work, and every file is left as it was."""
    victim = _photo(tmp_path / "victim.png")
    out = tmp_path / "up.png"
    other = tmp_path / "notes.json"
    other.write_text("keep me")
    dest = {"input": victim, "output": out, "folder": tmp_path, "existing": other}[target]
    before = {p.name: _digest(p) for p in (victim, other)}
    argv = ["upscale", str(victim), "-o", str(out), "--model", "bicubic", "--scale", "2", "--json-out", str(dest)]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("frgd: error:"), err
    assert {p.name: _digest(p) for p in (victim, other)} == before
    assert not out.exists(), "the work must not start when --json-out is refused"
    assert _temps(tmp_path) == []
    # the same with --overwrite: the input and the output image stay protected
    if target in ("input", "output"):
        assert main([*argv, "--overwrite"]) == EXIT_USAGE
        assert _digest(victim) == before["victim.png"]


def test_json_out_hard_link_to_the_input_is_refused(tmp_path: Path, capsys) -> None:
    victim = _photo(tmp_path / "victim.png")
    link = tmp_path / "link.json"
    os.link(victim, link)
    before = _digest(victim)
    argv = ["faces", "detect", str(victim), "--json-out", str(link), "--overwrite"]
    assert main(argv) == EXIT_USAGE
    assert "input" in capsys.readouterr().err and _digest(victim) == before


def test_json_out_writes_atomically_and_overwrites_only_when_asked(tmp_path: Path, capsys) -> None:
    victim = _photo(tmp_path / "victim.png")
    report = tmp_path / "r.json"
    argv = ["upscale", str(victim), "-o", str(tmp_path / "a.png"), "--model", "bicubic", "--scale", "2"]
    assert main([*argv, "--json-out", str(report)]) == 0
    first = report.read_text()
    assert '"scale": 2' in first
    assert main([*argv[:3], str(tmp_path / "b.png"), *argv[4:], "--json-out", str(report)]) == EXIT_USAGE
    assert report.read_text() == first and not (tmp_path / "b.png").exists()
    assert main([*argv[:3], str(tmp_path / "b.png"), *argv[4:], "--json-out", str(report), "--overwrite"]) == 0
    assert '"output"' in report.read_text() and "b.png" in report.read_text()
    assert _temps(tmp_path) == []
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------- non-regular inputs


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_fifo_input_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            load_image(fifo)
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - recorded for the assertion below
            outcome.append(err)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the thread ends
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(5)
        pytest.fail("load_image blocked on a FIFO")
    assert isinstance(outcome[0], ImageLoadError) and "not a regular file" in str(outcome[0])


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_input_is_refused(capsys) -> None:
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image("/dev/zero")
    assert main(["faces", "detect", "/dev/zero"]) == EXIT_USAGE
    assert capsys.readouterr().err.count("\n") == 1


def test_size_cap_is_enforced_while_reading(tmp_path: Path) -> None:
    p = tmp_path / "big.bin"
    p.write_bytes(b"x" * 1000)
    assert read_file_bytes(p, limit=1000) == b"x" * 1000
    with pytest.raises(InputError, match="too large"):
        read_file_bytes(p, limit=999)


def test_load_errors_are_input_errors_with_the_usage_exit_code(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert issubclass(ImageLoadError, InputError)
    assert main(["faces", "detect", str(bad)]) == EXIT_USAGE
    assert main(["faces", "detect", str(tmp_path / "missing.png")]) == EXIT_USAGE
    capsys.readouterr()


# ------------------------------------------------------------------------------------------------- decoding noise


def _png16(h: int = 40, w: int = 50, ext: str = ".png") -> bytes:
    rng = np.random.default_rng(1)
    ok, buf = cv2.imencode(ext, rng.integers(0, 65536, (h, w, 3)).astype(np.uint16))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("damage", ["crc", "truncated", "tiff"])
def test_corrupt_16bit_png_prints_nothing_but_our_error(tmp_path: Path, damage: str) -> None:
    """libpng / libtiff complaints reach stderr (fd 2) through OpenCV: run the CLI in a subprocess, read all of it."""
    data = bytearray(_png16(ext=".tif" if damage == "tiff" else ".png"))
    if damage == "crc":
        data[200] ^= 0xFF
    elif damage == "tiff":
        for i in range(40, 60):
            data[i] ^= 0x55
    else:
        data = data[: len(data) // 2]
    p = tmp_path / ("c16.tif" if damage == "tiff" else "c16.png")
    p.write_bytes(bytes(data))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-m", "frgd.cli.main", "faces", "detect", str(p)], capture_output=True,
                       text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == EXIT_USAGE
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("frgd: error: cannot load image"), r.stderr


def test_valid_16bit_png_still_loads() -> None:
    img = load_image_bytes(_png16(7, 9))
    assert img.bit_depth == 16 and img.rgb.shape == (7, 9, 3)


# ------------------------------------------------------------------------------------------------------ temp files


def test_stale_temps_of_crashed_saves_are_removed_on_the_next_save(tmp_path: Path) -> None:
    old = time.time() - 3600
    stale = tmp_path / ".photo.png.a1b2c3d4.tmp"
    fresh = tmp_path / ".other.png.zzzzzzzz.tmp"  # a save in progress elsewhere: too young to touch
    foreign = tmp_path / ".someone-else.tmp"  # not our pattern
    for p in (stale, fresh, foreign):
        p.write_bytes(b"x")
    os.utime(stale, (old, old))
    os.utime(foreign, (old, old))
    save_bytes(tmp_path / "new.json", b"{}")
    assert not stale.exists() and fresh.exists() and foreign.exists()
    assert remove_stale_temps(tmp_path) == []


_SLOW_SAVE = """
import os, sys, time
from frgd.cli import main as cli

real = os.fsync
def slow(fd):
    real(fd)
    print("writing", flush=True)
    time.sleep(60)
os.fsync = slow
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_a_save_removes_its_temp_file(tmp_path: Path) -> None:
    src = _photo(tmp_path / "in.png")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = ["upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", "bicubic", "--scale", "2"]
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SLOW_SAVE), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert len(_temps(tmp_path)) == 1, "the save should be in progress"
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        proc.kill()
    assert rc == 143 and "terminated" in proc.stderr.read()
    assert _temps(tmp_path) == [] and not (tmp_path / "out.png").exists()


# ------------------------------------------------------------------------------------------- outputs and exit codes


def test_check_output_catches_hard_links(tmp_path: Path) -> None:
    src = _photo(tmp_path / "in.png")
    link = tmp_path / "link.png"
    os.link(src, link)
    with pytest.raises(InputError, match="input"):
        check_output(link, overwrite=True, protect=[src])
    with pytest.raises(InputError, match="folder"):
        check_output(tmp_path, overwrite=True)
    with pytest.raises(InputError, match="already exists"):
        check_output(link)
    assert check_output(tmp_path / "new.png") == tmp_path / "new.png"


@pytest.mark.parametrize("command", ["upscale", "restore"])
def test_output_equal_to_the_input_is_refused_before_the_work(tmp_path: Path, capsys, monkeypatch,
                                                              command: str) -> None:  # fmt: skip
    src = _photo(tmp_path / "in.png")
    link = tmp_path / "link.png"
    os.link(src, link)
    import frgd.io

    monkeypatch.setattr(frgd.io, "load_image", lambda *a, **k: pytest.fail("the input was loaded"))
    before = _digest(src)
    assert main([command, str(src), "-o", str(link), "--overwrite", "--device", "cpu"]) == EXIT_USAGE
    assert "input" in capsys.readouterr().err and _digest(src) == before


def test_upscale_of_a_1x1_image(tmp_path: Path, capsys) -> None:
    src = save_image(tmp_path / "one.png", np.full((1, 1, 3), 200, np.uint8))
    out = tmp_path / "big.png"
    assert main(["upscale", str(src), "-o", str(out), "--model", "bicubic", "--scale", "4"]) == 0, capsys.readouterr()
    img = load_image(out)
    assert img.rgb.shape == (4, 4, 3) and int(img.rgb.min()) == 200 == int(img.rgb.max())


def test_restore_keeps_alpha(tmp_path: Path, monkeypatch) -> None:
    """``frgd restore`` keeps the photo's transparency like ``frgd upscale`` (a tiny random GFPGAN stands in for the
    official weights, which the tests do not have)."""
    import torch

    import frgd.sr.gfpgan as gf
    from frgd.archs.gfpganv1_clean_arch import GFPGANv1Clean

    torch.manual_seed(0)
    tiny = GFPGANv1Clean(out_size=64, num_style_feat=16, channel_multiplier=1, num_mlp=2, input_is_latent=True,
                         different_w=True, narrow=1 / 16, sft_half=True, fix_decoder=False)  # fmt: skip
    monkeypatch.setattr(gf, "load_gfpgan", lambda version="1.4", weights=None, device="cpu": tiny)
    src = _photo(tmp_path / "in.png", alpha=True)
    from conftest import rgb_profile

    icc = rgb_profile()
    plain = load_image(src)
    src = save_image(tmp_path / "tagged.png", plain.rgb, alpha=plain.alpha, icc_profile=icc)
    out = tmp_path / "out.png"
    assert main(["restore", str(src), "-o", str(out), "--scale", "2", "--device", "cpu"]) == 0
    img = load_image(out)
    assert img.icc_profile == icc  # and its colour profile
    assert img.alpha is not None and img.alpha.shape == (40, 60)
    assert abs(float(img.alpha.mean()) - float(load_image(src).alpha.mean())) < 8


def test_exit_codes_are_documented_in_help(capsys) -> None:
    text = build_parser().format_help()
    for code in EXIT_CODES:
        assert f"{code} " in text
    assert main(["faces"]) == EXIT_USAGE
    with pytest.raises(SystemExit) as ei:
        main(["upscale"])
    assert ei.value.code == EXIT_USAGE
    assert main(["weights", "verify", "gfpgan-v1.4"]) == EXIT_FAILURE  # missing weights
    capsys.readouterr()


def test_faces_detect_with_a_minimum_face_larger_than_the_image(tmp_path: Path, capsys) -> None:
    """Found by ``frgd bench fuzz``: ``--min-size 1e9`` made MTCNN's image pyramid empty (an internal error)."""
    import json

    src = _photo(tmp_path / "in.png", 40, 50)
    assert main(["faces", "detect", str(src), "--min-size", "1e9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == []


def test_pillow_decoder_logs_stay_quiet(capsys) -> None:
    """A damaged TIFF made Pillow log an ERROR line before our own one-line error."""
    import logging

    from frgd.logging_setup import setup_logging

    setup_logging(0)
    assert logging.getLogger("PIL").getEffectiveLevel() > logging.ERROR
    setup_logging(2)
    assert logging.getLogger("PIL").getEffectiveLevel() == logging.DEBUG
    setup_logging(0)
