"""Batch runs of a per-photo command (``frgd enhance PHOTO... -o DIR``): many files or folders in, one output folder.

* Inputs: files as given and every image file of a folder (sorted, not recursive, hidden files skipped).
* Resume: a photo whose outputs all exist and are at least as new as the photo is skipped (saves are atomic, so an
  existing output is complete); ``--overwrite`` redoes it.
* Errors never stop the batch: a corrupt or faceless photo is recorded and named at the end; the exit code is
  :data:`frgd.cli.main.EXIT_FAILURE` (1) when any photo failed, else 0. Cancel (Ctrl+C, SIGTERM) stops the batch.
* A progress bar (tqdm) on stderr, one INFO log line per photo (``-v``), and a JSON report
  (:data:`REPORT_NAME` in the output folder, rewritten after every photo).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Cancelled, FRGDError, InputError

logger = logging.getLogger(__name__)

REPORT_NAME = "frgd_report.json"
"""The batch report written into the output folder."""


@dataclass
class BatchItem:
    """One photo of a batch: its outputs and, after the run, ``status`` (``done``, ``skipped``, ``failed``), the
    one-line ``error`` of a failure and the command's per-photo ``info``."""

    source: Path
    outputs: list[Path]
    status: str = "pending"
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = str(self.source)
        d["outputs"] = [str(p) for p in self.outputs]
        return d


def is_batch(paths: Sequence[str]) -> bool:
    """More than one input, or a folder."""
    return len(paths) > 1 or (len(paths) == 1 and Path(paths[0]).is_dir())


def collect_inputs(paths: Sequence[str]) -> list[Path]:
    """Files as given plus the image files of each folder (sorted by name); :class:`InputError` when none."""
    from ..io import SAVE_EXTENSIONS

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in SAVE_EXTENSIONS and not f.name.startswith("."))
        elif p.exists() or p.is_symlink():
            out.append(p)
        else:
            raise InputError(f"input not found: {p}")
    if not out:
        raise InputError(f"no images found in {', '.join(paths)}")
    return out


def plan(sources: Sequence[Path], out_dir: Path, names: Callable[[Path], list[str]]) -> list[BatchItem]:
    """One :class:`BatchItem` per source with outputs ``out_dir / name``; two sources may not share an output."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"with several inputs or a folder, -o must be a folder: {out_dir} is a file")
    items, seen = [], {}
    for src in sources:
        outs = [out_dir / n for n in names(src)]
        for o in outs:
            if o in seen:
                raise InputError(f"{src.name} and {seen[o].name} would both write {o.name}; rename one")
            seen[o] = src
        items.append(BatchItem(src, outs))
    return items


def is_done(item: BatchItem) -> bool:
    """Every output exists and is at least as new as the source (an edited photo is done again)."""
    try:
        src_time = item.source.stat().st_mtime
        return all(o.is_file() and o.stat().st_mtime >= src_time for o in item.outputs)
    except OSError:
        return False


def add_index_outputs(
    items: Sequence[BatchItem], folder: str | Path, inputs: Sequence[str | Path], out_dir: str | Path
) -> None:
    """``--save-faces`` in a batch: check ``folder`` up front (:func:`frgd.restore.face_files.check_face_folder`:
    neither a folder of ``inputs`` nor ``out_dir``), then count each item's face index (``index_path`` of its source's
    stem, the stem its outputs are named by) among its outputs, so that a photo is done only once its faces are saved
    (:func:`is_done`)."""
    from ..restore.face_files import check_face_folder, index_path

    check_face_folder(folder, None, overwrite=True, inputs=inputs, out_dir=out_dir)
    for item in items:
        item.outputs.append(index_path(folder, item.source.stem))


def run_batch(
    items: list[BatchItem],
    work: Callable[[BatchItem], dict[str, Any]],
    *,
    overwrite: bool,
    report_path: Path,
    label: str,
    show_progress: bool = True,
    protect: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Run ``work(item) -> info`` on every item not done yet; never stops on a photo's error. Returns the report
    (also written to ``report_path`` after every photo)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    report: dict[str, Any] = {"command": label, "output_dir": str(report_path.parent), "total": len(items)}
    bar = tqdm(items, desc=label, unit="photo", file=sys.stderr, disable=not show_progress, dynamic_ncols=True)
    for k, item in enumerate(bar):
        if not overwrite and is_done(item):
            item.status = "skipped"
        else:
            try:
                item.info = work(item) or {}
                item.status = "done"
            except (Cancelled, KeyboardInterrupt):
                raise
            except FRGDError as err:
                item.status, item.error = "failed", " ".join(str(err).split())
            except Exception as err:  # noqa: BLE001 - one bad photo must not stop the batch
                logger.debug("failed on %s", item.source, exc_info=True)
                item.status, item.error = (
                    "failed",
                    f"internal error: {type(err).__name__}: {' '.join(str(err).split())}",
                )
        logger.info("%d/%d %s: %s%s", k + 1, len(items), item.source.name, item.status,
                    f" ({item.error})" if item.error else "")  # fmt: skip
        _write_report(report_path, _summary(report, items, t0), protect)
    return _summary(report, items, t0)


def _summary(report: dict[str, Any], items: list[BatchItem], t0: float) -> dict[str, Any]:
    counts = {s: sum(i.status == s for i in items) for s in ("done", "skipped", "failed")}
    return {
        **report,
        **counts,
        "pending": sum(i.status == "pending" for i in items),
        "failed_files": [{"source": str(i.source), "error": i.error} for i in items if i.status == "failed"],
        "seconds": round(time.perf_counter() - t0, 2),
        "files": [i.to_json() for i in items],
    }


def _write_report(path: Path, summary: dict[str, Any], protect: Sequence[str | Path]) -> None:
    from ..io import save_bytes

    data = (json.dumps(summary, indent=2, default=str) + "\n").encode("utf-8")
    save_bytes(path, data, overwrite=True, protect=protect)


def finish_batch(
    args: Any,
    items: list[BatchItem],
    work: Callable[[BatchItem], dict[str, Any]],
    *,
    label: str,
    protect: Sequence[str | Path] = (),
) -> int:
    """The end of a per-photo command run on a batch (``args.out`` is the output folder): :func:`run_batch` with a
    progress bar unless ``--json``, the summary (or the report with ``--json``), and the exit code: 1 when any photo
    failed, else 0."""
    from .main import EXIT_FAILURE, emit

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = run_batch(
        items,
        work,
        overwrite=args.overwrite,
        report_path=out_dir / REPORT_NAME,
        label=label,
        show_progress=not args.json,
        protect=[*(i.source for i in items), *protect],
    )
    emit(args, summary, summary_text(summary))
    return EXIT_FAILURE if summary["failed"] else 0


def summary_text(summary: dict[str, Any]) -> str:
    """The closing lines: counts, then every failed photo with its error."""
    head = (
        f"{summary['done']} done, {summary['skipped']} skipped (already done), {summary['failed']} failed "
        f"of {summary['total']} in {summary['seconds']:.1f} s; report: {summary['output_dir']}/{REPORT_NAME}"
    )
    return "\n".join([head] + [f"failed: {f['source']}: {f['error']}" for f in summary["failed_files"]])


__all__ = [
    "REPORT_NAME",
    "BatchItem",
    "collect_inputs",
    "finish_batch",
    "is_batch",
    "is_done",
    "plan",
    "run_batch",
    "summary_text",
]
