"""Crash recovery: the editor's unsaved work written to a session file every few minutes (no Qt).

Each running editor owns ``<folder>/<id>.frgd`` (default folder: ``autosave/`` in :func:`.settings.config_dir`) and
holds ``<id>.lock`` (:class:`filelock.FileLock`) while it runs: the operating system frees the lock when the process
ends, however it ends. A ``.frgd`` there whose lock is free was left by an editor that did not close normally; the
next editor offers it (:meth:`Autosave.leftovers`), and recovering it moves it to the new editor's own name
(:meth:`Autosave.adopt`), so it is kept until that work is saved or discarded, through a second crash too. The files
are ordinary sessions (:func:`frgd_studio.session.save_session`): they name the photo, they do not copy it (a photo
moved since is looked for, or asked for, when the work is recovered: ``EditorModel.open_session``).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .settings import config_dir

logger = logging.getLogger(__name__)

AUTOSAVE_FOLDER = "autosave"
"""The folder in :func:`.settings.config_dir` that holds the autosaved sessions and their locks."""


@dataclass(frozen=True)
class Leftover:
    """An autosaved session whose editor is gone: its ``path``, the photo it was made on (``photo``: the file name,
    ``""`` when unreadable) and when it was written (``mtime``, seconds since the epoch)."""

    path: Path
    photo: str
    mtime: float

    def describe(self) -> str:
        """``"PHOTO, autosaved YYYY-MM-DD HH:MM"`` for the recovery question."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.mtime))
        return f"{self.photo or self.path.name}, autosaved {when}"


class Autosave:
    """This editor's autosave file and lock in ``folder`` (created; default ``config_dir()/autosave``)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else config_dir() / AUTOSAVE_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.id = uuid.uuid4().hex[:12]
        self.path = self.folder / f"{self.id}.frgd"
        self._lock = FileLock(self.folder / f"{self.id}.lock")
        self._lock.acquire(timeout=0)
        for lock in self.folder.glob("*.lock"):  # of editors gone with nothing unsaved
            if not lock.with_suffix(".frgd").exists() and _owner_gone(lock.with_suffix(".frgd")):
                lock.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete this editor's autosaved session (its work was saved or discarded)."""
        self.path.unlink(missing_ok=True)

    def leftovers(self) -> list[Leftover]:
        """The autosaved sessions of editors that are no longer running (their lock is free), newest first."""
        out = []
        for path in self.folder.glob("*.frgd"):
            if path == self.path or not path.is_file() or not _owner_gone(path):
                continue
            out.append(Leftover(path, _photo_name(path), path.stat().st_mtime))
        return sorted(out, key=lambda x: x.mtime, reverse=True)

    def adopt(self, leftover: Leftover) -> Path:
        """Make ``leftover`` this editor's autosave (moved, atomically): it stays until the recovered work is saved or
        discarded. Returns the new path."""
        os.replace(leftover.path, self.path)
        leftover.path.with_suffix(".lock").unlink(missing_ok=True)
        return self.path

    def discard(self, leftover: Leftover) -> None:
        """Delete ``leftover`` (the user does not want it back)."""
        leftover.path.unlink(missing_ok=True)
        leftover.path.with_suffix(".lock").unlink(missing_ok=True)

    def close(self) -> None:
        """The editor closes normally: its autosave and lock go."""
        self.remove()
        self._lock.release()
        Path(self._lock.lock_file).unlink(missing_ok=True)


def _owner_gone(path: Path) -> bool:
    """True when no running editor holds ``path``'s lock (or it has none)."""
    lock_path = path.with_suffix(".lock")
    if not lock_path.exists():
        return True
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def _photo_name(path: Path) -> str:
    """The file name of the photo a session file names (``""`` when it cannot be read)."""
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("session.json"))
        return Path(str(meta["photo"]["path"])).name
    except Exception as err:  # noqa: BLE001 - a damaged leftover is still offered; loading it says what is wrong
        logger.warning("autosave %s: %s", path, err)
        return ""


__all__ = ["AUTOSAVE_FOLDER", "Autosave", "Leftover"]
