"""Seeded, bounded fuzzing of the image loader and of the ``frgd`` command line, shared by the test suite (a short run)
and ``frgd bench fuzz`` (a long run that writes its counts as JSON). Session files are fuzzed by
:mod:`frgd_studio.session_fuzz` with the same helpers.

Every case runs under a time limit (longer is a *hang*) and must keep the contract of its target; anything else is a
*crash* (recorded with the case that caused it):

* images: :func:`frgd.io.load_image_bytes` returns a valid image or raises ``ImageLoadError`` with one line;
* CLI: the exit code is one of :data:`frgd.cli.main.EXIT_CODES` (0, 1 or 2 here), no internal error or traceback, a
  failing command prints one ``frgd: error:`` line, no input file changes, no temp file is left behind, and a failing
  command leaves nothing new at its destination (except a complete ``--json-out`` report of a command that reports
  a failed check, like ``frgd weights verify`` of a missing model, exit 1).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class FuzzStats:
    """Counts of one fuzz run: ``outcomes`` by type, plus the crashing and hanging cases (at most 20 of each kept)."""

    target: str
    seed: int
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    n_crashes: int = 0
    n_hangs: int = 0
    seconds: float = 0.0

    def crash(self, case: str, detail: str) -> None:
        self.n_crashes += 1
        self.outcomes["crash"] += 1
        if len(self.crashes) < 20:
            self.crashes.append(f"{case}: {detail}"[:500])

    def hang(self, case: str) -> None:
        self.n_hangs += 1
        self.outcomes["hang"] += 1
        if len(self.hangs) < 20:
            self.hangs.append(case[:500])

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "seed": self.seed,
            "cases": self.cases,
            "outcomes": dict(sorted(self.outcomes.items())),
            "crashes": self.n_crashes,
            "hangs": self.n_hangs,
            "crash_examples": self.crashes,
            "hang_examples": self.hangs,
            "seconds": round(self.seconds, 2),
        }


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random damage of ``data``: bit flips (often in the header), truncation, inserted / overwritten / duplicated
    runs of bytes, or a cut-and-splice."""
    b = bytearray(data)
    kind = int(rng.integers(0, 6))
    n = len(b)
    if n == 0 or kind == 5:
        return bytes(b) + rng.bytes(int(rng.integers(1, 64)))
    if kind == 0:
        span = n if rng.random() < 0.5 else min(n, 64)
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(0, span))] ^= int(rng.integers(1, 256))
    elif kind == 1:
        del b[int(rng.integers(0, n)) :]
    elif kind == 2:
        pos = int(rng.integers(0, n + 1))
        b[pos:pos] = rng.bytes(int(rng.integers(1, 256)))
    elif kind == 3:
        pos = int(rng.integers(0, n))
        fill = bytes([int(rng.choice([0, 0xFF]))]) * int(rng.integers(1, 64))
        b[pos : pos + len(fill)] = fill
    else:
        a, c = sorted(int(v) for v in rng.integers(0, n, 2))
        b[a:a] = b[a:c]
    return bytes(b)


def run_with_timeout(fn: Callable[[], Any], timeout: float) -> tuple[bool, Any, BaseException | None]:
    """``fn()`` in a daemon thread: ``(finished, result, exception)``; ``finished`` is False after ``timeout`` s."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as err:  # noqa: BLE001 - reported to the caller
            box["error"] = err

    t = threading.Thread(target=target, daemon=True, name="frgd-fuzz-case")
    t.start()
    t.join(timeout)
    if t.is_alive():
        return False, None, None
    return True, box.get("result"), box.get("error")


def _one_line(text: str) -> bool:
    return "\n" not in text.strip()


# ------------------------------------------------------------------------------------------------------------ images


def seed_images() -> dict[str, bytes]:
    """Small valid files of every supported format (8- and 16-bit, alpha, palette, EXIF orientation)."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, rng.integers(0, 256, (12, 16), dtype=np.uint8)])
    out: dict[str, bytes] = {}
    exif = Image.Exif()
    exif[0x0112] = 6
    for key, arr, fmt, kw in (
        ("png", rgb, "PNG", {}),
        ("png_rgba", rgba, "PNG", {}),
        ("jpeg", rgb, "JPEG", {"quality": 80, "exif": exif.tobytes()}),
        ("webp", rgba, "WEBP", {"lossless": True}),
        ("tiff", rgb, "TIFF", {"compression": "tiff_deflate"}),
        ("bmp", rgb, "BMP", {}),
    ):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, fmt, **kw)
        out[key] = buf.getvalue()
    for ext in ("png", "tif"):
        ok, enc = cv2.imencode(f".{ext}", (rgb.astype(np.uint16) * 257)[:, :, ::-1].copy())
        if ok:
            out[f"{ext}16"] = enc.tobytes()
    return out


def fuzz_images(cases: int, seed: int = 0, timeout: float = 10.0, max_pixels: int = 1 << 18) -> FuzzStats:
    """Decode ``cases`` damaged images; outcomes ``loaded`` / ``ImageLoadError``."""
    from .io import ImageLoadError, load_image_bytes

    stats = FuzzStats("images", seed)
    seeds = seed_images()
    names = sorted(seeds)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for k in range(cases):
        name = names[k % len(names)]
        data = seeds[name]
        for _ in range(int(rng.integers(1, 4))):
            data = mutate(data, rng)
        case = f"images #{k} ({name}, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]})"
        done, img, err = run_with_timeout(lambda d=data: load_image_bytes(d, "fuzz", max_pixels=max_pixels), timeout)
        stats.cases += 1
        if not done:
            stats.hang(case)
        elif isinstance(err, ImageLoadError) and _one_line(str(err)):
            stats.outcomes["ImageLoadError"] += 1
        elif err is not None:
            stats.crash(case, f"{type(err).__name__}: {err}")
        elif img.rgb.ndim != 3 or img.rgb.shape[2] != 3 or img.rgb.shape[0] * img.rgb.shape[1] > max_pixels:
            stats.crash(case, f"invalid image {img.rgb.shape}")
        else:
            stats.outcomes["loaded"] += 1
    stats.seconds = time.perf_counter() - t0
    return stats


# --------------------------------------------------------------------------------------------------------------- CLI


def _cli_inputs(work: Path) -> dict[str, str]:
    """The input pool: valid, odd and hostile files (and non-files) of the CLI cases, by role."""
    from .io import save_image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    files = {
        "victim": save_image(work / "victim.png", rgb),
        "alpha": save_image(work / "alpha.png", rgb, alpha=rng.integers(0, 256, (24, 32), dtype=np.uint8)),
        "one": save_image(work / "one.png", rgb[:1, :1]),
        "deep": save_image(work / "deep.png", rgb.astype(np.uint16) * 257),
        "jpeg": save_image(work / "photo.jpg", rgb),
    }
    (work / "empty.png").write_bytes(b"")
    (work / "text.png").write_text("not an image\n")
    (work / "bomb.png").write_bytes(seed_images()["png"][:16] + b"\x00\x00\xea\x60\x00\x00\xea\x60" + b"\x08\x02")
    (work / "folder").mkdir()
    os.link(files["victim"], work / "link.png")
    (work / "sym.png").symlink_to(work / "victim.png")
    out = {k: str(v) for k, v in files.items()}
    out.update({k: str(work / n) for k, n in (("empty", "empty.png"), ("text", "text.png"), ("bomb", "bomb.png"),
                                               ("folder", "folder"), ("link", "link.png"), ("sym", "sym.png"),
                                               ("missing", "missing.png"))})  # fmt: skip
    out.update(_face_index(work, rgb))
    if hasattr(os, "mkfifo"):
        os.mkfifo(work / "fifo.png")
        out["fifo"] = str(work / "fifo.png")
    if Path("/dev/zero").exists():
        out["device"] = "/dev/zero"
    return out


def _face_index(work: Path, rgb: np.ndarray) -> dict[str, str]:
    """A valid face index of ``victim.png`` (:mod:`frgd.restore.face_files`: one 16 px crop, ``frgd faces paste``'s
    input; each case also writes a mutated copy, ``mutated.json``) and one ``frgd faces align`` sidecar of it."""
    import json
    from types import SimpleNamespace

    from .faces.align import TEMPLATE_512
    from .io import save_image
    from .restore.faces import align_faces

    lm = TEMPLATE_512 * (16 / 512) + (8, 4)
    box = np.array([*lm.min(0), *lm.max(0)])
    (aligned,) = align_faces(rgb, [SimpleNamespace(landmarks=lm, box=box, score=1.0)], 16)
    crop = aligned.crop
    save_image(work / "face1.png", 255 - crop.image)
    face = {"number": 1, "crop": crop.to_json(), "files": {"input": "face1.png", "restored": ["face1.png"],
                                                           "cmp": "face1.png"}, "seeds": [0]}  # fmt: skip
    index = {"photo": str(work / "victim.png"), "outputs": [str(work / "victim.png")], "faces": [face]}
    (work / "faces.json").write_text(json.dumps(index))
    sidecar = {"image": str(work / "victim.png"), "face": 1, "crop": "face1.png", **crop.to_json()}
    (work / "face1.json").write_text(json.dumps(sidecar))
    return {"crop": str(work / "face1.png"), "index": str(work / "faces.json"), "sidecar": str(work / "face1.json")}


def _digests(paths: list[Path]) -> dict[str, str]:
    out = {}
    for p in paths:
        if p.is_file() and not p.is_symlink():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _json_out(argv: list[str], out_dir: Path) -> str | None:
    """The ``--json-out`` target of ``argv`` relative to ``out_dir`` (``None`` when elsewhere or absent)."""
    for i, a in enumerate(argv[:-1]):
        if a == "--json-out" and argv[i + 1].startswith(str(out_dir) + os.sep):
            return str(Path(argv[i + 1]).relative_to(out_dir))
    return None


def _is_json(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _reset_pool(work: Path, pool: dict[Path, bytes]) -> None:
    """Put back every pool file a previous case was allowed to replace (an ``--overwrite`` target)."""
    for p, data in pool.items():
        if p.is_symlink() or not p.is_file() or p.read_bytes() != data:
            p.unlink(missing_ok=True)
            p.write_bytes(data)
    link, sym = work / "link.png", work / "sym.png"
    if not (link.is_file() and os.path.samefile(link, work / "victim.png")):
        link.unlink(missing_ok=True)
        os.link(work / "victim.png", link)
    if not sym.is_symlink():
        sym.unlink(missing_ok=True)
        sym.symlink_to(work / "victim.png")


def _case_inputs(argv: list[str], work: Path) -> list[Path]:
    """The files a command line reads (every path argument that is not the value of an output option), with the
    files they link to: none of them may change."""
    out: list[Path] = []
    for i, a in enumerate(argv):
        if i and argv[i - 1] in ("-o", "--out", "--json-out"):
            continue
        if a.startswith(str(work)) and os.path.lexists(a):
            out.append(Path(a))
            if Path(a).is_symlink() or Path(a).name == "link.png":
                out.append(work / "victim.png")
    return out


CLI_COMMANDS = ("upscale", "upscale", "upscale", "restore", "faces detect", "faces align", "faces paste",
                "damage detect", "weights import", "weights verify", "weights list", "noise")  # fmt: skip
"""The commands :func:`fuzz_cli` draws from (repeats weight the draw); ``noise`` is a random token soup."""


def _cli_argv(
    rng: np.random.Generator, inputs: dict[str, str], work: Path, k: int, commands: tuple[str, ...] = CLI_COMMANDS
) -> list[str]:
    """One random command line over the input pool and a few output targets (valid, taken, protected, odd)."""

    def pick(options: list[Any]) -> Any:
        return options[int(rng.integers(0, len(options)))]

    out_dir = work / "out"
    image = pick(list(inputs.values()) + [str(work / "mutated.png")] * 4)
    outs = [str(out_dir / f"new{k}.png"), str(out_dir / f"new{k}.jpg"), str(out_dir / f"new{k}.tif"),
            str(out_dir / f"new{k}.xyz"), str(out_dir / "taken.png"), inputs["victim"], inputs["link"],
            inputs["sym"], inputs["folder"], str(out_dir / f"sub{k}" / "deep.png"), ""]  # fmt: skip
    jsons = [str(out_dir / f"r{k}.json"), str(out_dir / "taken.json"), inputs["victim"], inputs["folder"],
             inputs["link"], str(out_dir / "taken.png")]  # fmt: skip
    command = pick(list(commands))
    argv: list[str]
    if command == "upscale":
        argv = ["upscale", image, "-o", pick(outs), "--model", pick(["bicubic", "lanczos", "nope"])]
        if rng.random() < 0.7:
            argv += ["--scale", pick(["2", "3", "4", "1", "0", "-2", "9", "x"])]
        if rng.random() < 0.3:
            argv += ["--tile", pick(["auto", "0", "1", "5", "-3", "abc"])]
        if rng.random() < 0.2:
            argv += ["--overlap", pick(["0", "2", "9", "-1"])]
    elif command == "restore":
        argv = ["restore", image, "-o", pick(outs), "--bg-model", "bicubic", "--device", "cpu"]
        if rng.random() < 0.3:
            argv += ["--weight", pick(["0.5", "2", "-1", "nan"])]
        if rng.random() < 0.3:
            argv += ["--weights", pick(list(inputs.values()))]
    elif command == "faces detect":
        argv = ["faces", "detect", image, "--no-upsample"] if rng.random() < 0.5 else ["faces", "detect", image]
        if rng.random() < 0.3:
            argv += ["--min-size", pick(["4", "12", "0", "-5", "1e9"])]
    elif command == "faces align":
        argv = ["faces", "align", image, "-o", pick([str(out_dir / f"faces{k}"), inputs["victim"], str(out_dir)])]
        if rng.random() < 0.3:
            argv += ["--faces", pick(["all", "largest", "0,2", "x", "-1"])]
    elif command == "faces paste":
        index = pick([inputs["index"]] * 3 + [str(work / "mutated.json")] * 3 + [inputs["sidecar"], image])
        argv = ["faces", "paste", index, "-o", pick(outs)]
        if rng.random() < 0.4:
            argv += ["--face", pick([f"1={inputs['crop']}", f"1={image}", f"2={inputs['crop']}", "1=", "x", "0=a"])]
        if rng.random() < 0.3:
            argv += ["--onto", pick([image, inputs["victim"], inputs["one"], inputs["folder"]])]
        if rng.random() < 0.2:
            argv += ["--seed", pick(["0", "1", "x"])]
    elif command == "damage detect":
        argv = ["damage", "detect", image, "-o", pick(outs), "--device", "cpu"]
        if rng.random() < 0.4:
            argv += ["--threshold", pick(["0.5", "0.01", "0", "1", "-1", "nan", "x"])]
    elif command == "weights import":
        argv = ["weights", "import", pick(list(inputs.values()))]
        if rng.random() < 0.7:
            argv += ["--name", pick(["facenet-vggface2", "gfpgan-v1.4", "mtcnn", "frgd-sr-x2", "nope"])]
    elif command == "weights verify":
        argv = ["weights", "verify", pick(["mtcnn", "gfpgan-v1.4", "facenet-vggface2", "nope"])]
    elif command == "weights list":
        argv = ["weights", "list"]
    else:
        argv = [pick(["upscale", "faces", "restore", "bench", "-v"]) for _ in range(int(rng.integers(0, 3)))]
        argv += [
            pick(["--json", "-o", "--scale", "x", image, "", "--overwrite"]) for _ in range(int(rng.integers(0, 4)))
        ]
    if command != "noise":
        if rng.random() < 0.4:
            argv += ["--json-out", pick(jsons)]
        if rng.random() < 0.3:
            argv.append("--overwrite")
        if rng.random() < 0.3:
            argv.append("--json")
    return argv


def fuzz_cli(cases: int, seed: int = 0, workdir: str | os.PathLike[str] | None = None, timeout: float = 60.0,
             commands: tuple[str, ...] = CLI_COMMANDS) -> FuzzStats:  # fmt: skip
    """Run ``cases`` random ``frgd`` command lines in-process over a pool of hostile inputs (see the module docs).

    Outcomes: ``ok`` (exit 0), ``usage`` (argparse, exit 2), ``input error`` (exit 2), ``failure`` (exit 1). The
    weights cache is redirected into the work folder for the run.
    """
    import tempfile

    from .cli.main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main

    stats = FuzzStats("cli", seed)
    rng = np.random.default_rng(seed)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="frgd-fuzz-cli-")) if own else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    old_cache = os.environ.get("FRGD_CACHE_DIR")
    os.environ["FRGD_CACHE_DIR"] = str(work / "cache")
    t0 = time.perf_counter()
    try:
        inputs = _cli_inputs(work)
        out_dir = work / "out"
        out_dir.mkdir()
        victim_bytes, index_bytes = (Path(inputs[k]).read_bytes() for k in ("victim", "index"))
        pool = {Path(v): Path(v).read_bytes() for v in inputs.values() if Path(v).is_file() and v != "/dev/zero"}
        for k in range(cases):
            _reset_pool(work, pool)
            (work / "mutated.png").write_bytes(mutate(victim_bytes, rng))
            (work / "mutated.json").write_bytes(mutate(index_bytes, rng))
            for name, data in (("taken.png", victim_bytes), ("taken.json", b"{}\n")):
                (out_dir / name).write_bytes(data)
            argv = _cli_argv(rng, inputs, work, k, commands)
            case = "frgd " + " ".join(a.replace(str(work), "$W") for a in argv)
            protected = _case_inputs(argv, work)
            before, tree = _digests(protected), _tree(out_dir)
            stdout, stderr = io.StringIO(), io.StringIO()

            def call(argv: list[str] = argv, stdout: io.StringIO = stdout, stderr: io.StringIO = stderr) -> int:
                with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                    try:
                        return main(argv)
                    except SystemExit as exc:  # argparse usage errors and --help
                        return -int(exc.code or 0) if exc.code else 1000

            done, rc, err = run_with_timeout(call, timeout)
            stats.cases += 1
            if not done:
                stats.hang(case)
                continue
            text = stderr.getvalue()
            problems = []
            if err is not None:
                problems.append(f"{type(err).__name__} escaped main: {err}")
            elif rc not in (EXIT_OK, EXIT_FAILURE, EXIT_USAGE, -EXIT_USAGE, 1000):
                problems.append(f"exit code {rc}")
            if "frgd: internal error" in text or "Traceback (most recent call last)" in text:
                problems.append(f"stderr: {text.strip()[:300]}")
            shows_help = rc == EXIT_USAGE and text.lstrip().startswith("usage:")  # `frgd`, `frgd faces`: the help
            if shows_help:
                rc = -EXIT_USAGE
            elif rc in (EXIT_FAILURE, EXIT_USAGE) and sum(ln.startswith("frgd: ") for ln in text.splitlines()) != 1:
                problems.append(f"not one error line: {text.strip()[:300]}")
            if _digests(protected) != before:
                problems.append("an input file changed")
            temps = [p.name for p in work.rglob("*.tmp")]
            if temps:
                problems.append(f"temp files left: {temps}")
                for p in work.rglob("*.tmp"):
                    p.unlink()
            new = _tree(out_dir) - tree
            report = _json_out(argv, out_dir)
            if rc == EXIT_FAILURE and report in new:  # e.g. `weights verify` reports a missing model, then exits 1
                new.discard(report)
                if not _is_json(out_dir / report):
                    problems.append(f"the report {report} is not complete JSON")
            if rc not in (EXIT_OK, 1000) and new:
                problems.append(f"a failing command left {sorted(new)[:5]}")
            if problems:
                stats.crash(case, "; ".join(problems))
                continue
            kind = {EXIT_OK: "ok", 1000: "help", -EXIT_USAGE: "usage", EXIT_USAGE: "input error"}.get(rc, "failure")
            stats.outcomes[kind] += 1
    finally:
        if old_cache is None:
            os.environ.pop("FRGD_CACHE_DIR", None)
        else:
            os.environ["FRGD_CACHE_DIR"] = old_cache
        if own:
            shutil.rmtree(work, ignore_errors=True)
    stats.seconds = time.perf_counter() - t0
    return stats


def fuzz_report(rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The JSON report of a fuzz run: versions, totals and one row per target (:meth:`FuzzStats.to_dict`)."""
    import platform

    from . import __version__

    return {
        "frgd": __version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "seconds": round(seconds, 1),
        "peak_rss_mb": peak_rss_mb(),
        "cases": sum(r["cases"] for r in rows),
        "crashes": sum(r["crashes"] for r in rows),
        "hangs": sum(r["hangs"] for r in rows),
        "targets": rows,
    }


def fuzz_text(data: dict[str, Any]) -> str:
    """The human-readable lines of a :func:`fuzz_report`."""
    lines = []
    for r in data["targets"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
        lines.append(f"{r['target']:<9} {r['cases']} cases, {r['crashes']} crashes, {r['hangs']} hangs ({outcomes})")
        lines += [f"  crash: {c}" for c in r["crash_examples"]] + [f"  hang: {h}" for h in r["hang_examples"]]
    lines.append(f"total {data['cases']} cases in {data['seconds']} s, peak RSS {data['peak_rss_mb']} MB")
    return "\n".join(lines)


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (``ru_maxrss``)."""
    import resource
    import sys

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb * (1 if sys.platform == "darwin" else 1024) / 1e6, 1)


__all__ = [
    "CLI_COMMANDS",
    "FuzzStats",
    "fuzz_cli",
    "fuzz_images",
    "fuzz_report",
    "fuzz_text",
    "mutate",
    "peak_rss_mb",
    "run_with_timeout",
    "seed_images",
]
