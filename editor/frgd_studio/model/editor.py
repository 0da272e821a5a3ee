"""``EditorModel``: the editor without Qt. It owns the document, the settings, the job queue, the undo sink and the
panes, and implements every action (open photo/session with the unsaved-changes question, detect/align faces, add and
score references, masks, apply/revert, save session, export with provenance). Widgets render its state and call its
actions; questions to the user go through injectable callables (``ask_unsaved``, ``ask_session_path``), so the
model runs headless in tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frgd.errors import FRGDError, InputError
from frgd.faces.rules import candidate_text, floor_to_take
from frgd.restore.pipeline import AUTO_MAX_PIXELS, NO_UPSCALE
from frgd.sr.tiling import TileResume

from . import backend, commands
from .autosave import Autosave, Leftover
from .commands import Command, UndoSink
from .document import CROP_SIZE, EDITED, IMPORTED, MAX_FACES, MAX_PER_FACE, Document, Face, depth_note
from .events import Event
from .jobs import Job, JobFn, JobQueue, TurnFn
from .panes import FacePreview, FRGDPane, GFPGANPane, Pane, SRPane, gallery_full_text
from .settings import RESULT_SCALE_AUTO, Settings

logger = logging.getLogger(__name__)

UNSAVED_ANSWERS = ("save", "discard", "cancel")
METHOD_LABELS = {"frgd": "FRGD", "gfpgan": "GFPGAN", IMPORTED: "an imported crop", EDITED: "a patchwork"}


@dataclass(frozen=True)
class ExportPlan:
    """What Export writes: the ``choice`` (``Result``, ``Original`` or a pane result), its image ``(H, W, 3)`` uint8
    and the sentence that names it."""

    choice: str
    image: np.ndarray
    description: str


def _fit_alpha(alpha: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """The photo's ``alpha`` ``(H, W)`` brought to an exported image of ``size`` ``(sH, sW)``: an integer upscale as
    ``frgd enhance`` / ``upscale`` do (:func:`frgd.sr.upscale.upscale_alpha`), any other size linearly; ``None``
    passes."""
    if alpha is None or alpha.shape == size:
        return alpha
    (h, w), k = size, size[0] // alpha.shape[0]
    if (h, w) == (alpha.shape[0] * k, alpha.shape[1] * k):
        from frgd.sr.upscale import upscale_alpha

        return upscale_alpha(alpha, k)
    import cv2

    return cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)


class EditorModel:
    """The document, its actions and the panes (every pane the same way: :class:`~.panes.Pane`)."""

    def __init__(self, settings: Settings | None = None, undo: UndoSink | None = None,
                 jobs: JobQueue | None = None) -> None:  # fmt: skip
        self.settings = settings or Settings()
        self.undo: UndoSink = undo or commands.ListUndoSink()
        self.jobs = jobs or JobQueue()
        self.doc = Document()
        self.session_path: str | None = None
        self.errors: list[str] = []
        self._pushes = 0  # commands pushed: a save marks the document clean only if none came after its snapshot
        self.statusMessage = Event("statusMessage")  # (text, ms)
        self.errorRaised = Event("errorRaised")  # (message, details)
        self.resultShown = Event("resultShown")  # (name): a pane result to show
        self.recentChanged = Event("recentChanged")  # (paths)
        self.deviceChanged = Event("deviceChanged")
        self.previewChanged = Event("previewChanged")  # (): the FRGD preview (:attr:`preview`) appeared or went
        self.resultScaleChosen = Event("resultScaleChosen")  # (scale): the Size box's choice (:meth:`set_result_scale`)
        self.preview: FacePreview | None = None
        """The instant preview of a running Resample (shown over its face, never part of the document)."""
        self.ask_unsaved: Callable[[str], str] = lambda _title: "discard"
        """``ask_unsaved(document title) -> "save" | "discard" | "cancel"`` (the Qt shell shows a dialog)."""
        self.ask_session_path: Callable[[str], str | None] = lambda default: default
        """``ask_session_path(default path) -> path or None`` (Save Session As)."""
        self.ask_photo: Callable[[str, str], str | None] = lambda _session, _photo: None
        """``ask_photo(session, photo) -> path or None``: where the photo ``photo`` of the session file ``session`` is
        now, when it is gone from where it was saved (Locate…; ``None``: the session is not opened)."""
        self.frgd = FRGDPane(self)
        self.gfpgan = GFPGANPane(self)
        self.sr = SRPane(self)
        self.panes: dict[str, Pane] = {p.name: p for p in (self.frgd, self.gfpgan, self.sr)}
        self.refresh_panes()
        # the preview goes when its samples arrive, a sample is applied, or another face or photo is chosen
        for event in (self.doc.selectionChanged, self.doc.samplesChanged, self.doc.appliedChanged):
            event.connect(lambda _i: self.show_preview(None))
        for event in (self.doc.photoChanged, self.doc.facesChanged):
            event.connect(lambda: self.show_preview(None))
        self._repair_job: Job | None = None
        self._upscale_job: Job | None = None
        self._upscale_of: tuple[np.ndarray, int] | None = None  # (base photo, scale) the running upscale makes
        self._when_ready: list[Callable[[], Any]] = []  # what waits for the result (when_result_ready)
        self.autosave: Autosave | None = None
        """Crash recovery (:meth:`enable_autosave`; the app turns it on, scripts and tests may)."""
        self._autosaved: tuple[int, int] | None = None  # (pushes, undo index) the autosave file holds
        self._autosave_at = time.monotonic()
        self._autosave_job: Job | None = None
        self.doc.damageChanged.connect(lambda _box: self._repair())
        self.doc.photoChanged.connect(self._when_ready.clear)  # what waited for the old photo's result
        # the result's size follows the faces (auto) and its background the base photo (:meth:`update_result_size`)
        for event in (self.doc.photoChanged, self.doc.facesChanged, self.doc.repairedChanged,
                      self.doc.paneResultsChanged):  # fmt: skip
            event.connect(self.update_result_size)
        self._stroke: Callable[[], None] | None = None  # commits the brush stroke being painted (begin_stroke)
        self._stroke_held: Callable[[], bool] = lambda: True
        self.jobs.gate = self._results_may_land

    # ------------------------------------------------------------------------------------------------ plumbing
    def status(self, text: str, ms: int = 6000) -> None:
        self.statusMessage.emit(text, ms)

    def error(self, message: str, details: str = "") -> None:
        logger.warning("%s", message)
        self.errors.append(message)
        self.errorRaised.emit(message, details)

    def push(self, command: Command) -> None:
        """Apply a document change as one undo step. A brush stroke being painted is ended first, as its own step
        (:meth:`begin_stroke`); the job results it held land after the change."""
        stroke = self._commit_stroke()
        self._pushes += 1
        self.undo.push(command)
        if stroke:
            self.jobs.release()

    # ----------------------------------------------------------------------------------------------- strokes
    def begin_stroke(self, commit: Callable[[], None], held: Callable[[], bool] | None = None) -> None:
        """A brush stroke begins (the Qt shell's stroke controller). Until :meth:`end_stroke`, the document changes
        only by the stroke: job results wait (:attr:`JobQueue.gate`), so a turn of the photo or faces detected again
        never land under a stroke painted in the coordinates and on the faces it began with. ``commit()`` pushes the
        stroke's undo step; :meth:`push` (any other change) and :meth:`history_step` (Undo, Redo) call it first, and
        the rest of the drag paints nothing. ``held() -> bool``: whether the button is still down; a result that
        arrives when it is not (a release the canvas never saw) ends the stroke and lands."""
        self._commit_stroke()
        self._stroke, self._stroke_held = commit, held or (lambda: True)

    def end_stroke(self) -> None:
        """The stroke ended (the button was released): its undo step is pushed and the results it held land."""
        self._commit_stroke()
        self.jobs.release()

    @property
    def stroking(self) -> bool:
        """A brush stroke is being painted (:meth:`begin_stroke`)."""
        return self._stroke is not None

    def history_step(self, step: Callable[[], None]) -> None:
        """Undo or Redo (``step``: the undo stack's): a stroke being painted is pushed first, so Undo takes it back;
        the results it held land after the step."""
        stroke = self._commit_stroke()
        step()
        if stroke:
            self.jobs.release()

    def _commit_stroke(self) -> bool:
        """Push the stroke being painted as its undo step (none: False)."""
        commit, self._stroke = self._stroke, None
        if commit is None:
            return False
        commit()
        return True

    def _results_may_land(self) -> bool:
        """The job queue's gate: closed while a stroke is painted with the button held."""
        if self._stroke is None:
            return True
        if self._stroke_held():
            return False
        logger.info("a stroke's release was not seen: it ends as a result arrives")
        self._commit_stroke()
        return True

    def show_result(self, name: str) -> None:
        self.resultShown.emit(name)

    def show_preview(self, preview: FacePreview | None) -> None:
        """Show the FRGD ``preview`` over its face (``None``: take it away); emits ``previewChanged`` on a change."""
        if preview is not self.preview:
            self.preview = preview
            self.previewChanged.emit()

    def with_preview(self, image: np.ndarray) -> np.ndarray:
        """``image`` (the shown photo, result or pane result, any scale of the photo) with the :attr:`preview` pasted
        in its face's place by the samples' paste path (:func:`frgd.restore.paste_faces`); ``image`` without one."""
        p, doc = self.preview, self.doc
        if p is None or doc.photo is None or doc.face(p.index) is not p.face or p.face.crop_obj is None:
            return image
        from frgd.restore import paste_faces

        return paste_faces(image, [(p.face.crop_obj, p.image, None)], image.shape[1] / doc.photo.shape[1])

    def refresh_panes(self) -> None:
        """Re-check every pane's weights (cheap; the live status of downloads made outside the editor)."""
        for pane in self.panes.values():
            pane.refresh_status()

    def run_job(self, name: str, fn: JobFn, on_success: Callable[[Any], None] | None = None,
                same_photo: bool = True, lane: str = "compute", on_turn: TurnFn | None = None) -> Job:  # fmt: skip
        """Run ``fn(device, progress, cancel)`` on the queue's ``lane`` (:data:`~.jobs.LANES`). With ``same_photo`` a
        result made for a photo that was replaced meanwhile is not used, and one made before the photo was turned
        (Image > Rotate) is turned to fit by ``on_turn(result, k)`` (:data:`TurnFn`; without ``on_turn`` it is not
        used); the status says which. Failures, cancels and notices become error/status messages."""
        doc = self.doc
        serial, turn = doc.photo_serial, doc.turn
        job = self.jobs.submit(name, fn, str(self.settings.get("device")), lane=lane)
        job.succeeded.connect(lambda _r: self.status(f"{name}: done"))
        if on_success is not None:

            def deliver(result: Any) -> None:
                k = (doc.turn - turn) % 4
                if same_photo and serial != doc.photo_serial:
                    self.status(f"{name}: not used, another photo was opened meanwhile.", 15000)
                    return
                if same_photo and k:  # the same photo at another turn: it was turned meanwhile
                    if on_turn is None:
                        self.status(f"{name}: not used, the photo was turned meanwhile; run it again.", 15000)
                        return
                    result = on_turn(result, k)
                on_success(result)

            job.succeeded.connect(deliver)
        job.failed.connect(lambda msg, tb: self.error(f"{name} failed: {msg}", tb))
        job.cancelled.connect(lambda: self.status(f"{name}: cancelled"))
        job.notice.connect(lambda msg: self.status(msg, 15000))
        self.status(f"{name}…", 0)
        return job

    def face_index(self, index: int, face: Face) -> int:
        """The index of ``face`` (the document's face ``index`` when a job started) now: the same face, or the one it
        became when the photo was turned (:meth:`Document.find_face`); -1, with a status message, when the faces were
        detected again meanwhile (the job's result is dropped)."""
        i = self.doc.find_face(face, index)
        if i < 0:
            self.status("Result dropped: the faces were detected again while it was computed.", 15000)
        return i

    @property
    def modified(self) -> bool:
        """Unsaved edits (any command since the last open or session save, mask edits included)."""
        return self.doc.photo is not None and not self.undo.is_clean()

    def confirm_discard(self, retry: Callable[[], Any]) -> bool:
        """True when the current document may be replaced now. With unsaved edits the user is asked: Discard ->
        True; Cancel -> False; Save -> the session is saved (a job) and ``retry()`` runs once it succeeded -> False."""
        if not self.modified:
            return True
        answer = self.ask_unsaved(self.doc.title())
        if answer not in UNSAVED_ANSWERS:
            raise ValueError(f"ask_unsaved answered {answer!r}, not one of {UNSAVED_ANSWERS}")
        if answer == "discard":
            return True
        if answer == "save":
            job = self.save_session()
            if job is not None:
                job.succeeded.connect(lambda _p: self.modified or retry())
        return False

    # -------------------------------------------------------------------------------------------- open / save
    def open_photo(self, path: str | Path, detect: bool = True, reference: str | None = None) -> Job | None:
        """Load a photo in the background (after the unsaved-changes question); then detect faces (and add
        ``reference`` to the first face)."""
        if not self.confirm_discard(lambda: self.open_photo(path, detect, reference)):
            return None
        path = str(path)

        def done(photo: backend.Photo) -> None:
            self.undo.clear()
            self.session_path = None
            self._autosave_settled()
            self.doc.set_photo(photo.rgb, photo.path, photo.sha256, photo.alpha, icc_profile=photo.icc_profile,
                               bits=photo.bits)  # fmt: skip
            self.recentChanged.emit(self.settings.add_recent(photo.path))
            self._status_opened(f"Opened {photo.path} ({photo.rgb.shape[1]}x{photo.rgb.shape[0]})", photo.bits)
            if detect:
                job = self.detect()
                if reference and job is not None:
                    job.succeeded.connect(lambda _r: self.doc.faces and self.add_reference(reference))

        return self.run_job(f"Open {Path(path).name}", lambda _d, _p, _c: backend.load_photo(path), done, False)

    def open_session(self, path: str | Path, recent: bool = True, photo: str | Path | None = None) -> Job | None:
        """Load a ``.frgd`` session in the background (after the unsaved-changes question); ``recent``: add it to the
        recent files. The earlier work's autosave goes. A photo moved with its folder is found by itself
        (:func:`frgd_studio.session.find_photo`); one that is nowhere it could be is asked for (:attr:`ask_photo`), or
        given as ``photo``. A session read with its photo elsewhere is unsaved until saved (it then names the photo's
        new place)."""
        if not self.confirm_discard(lambda: self.open_session(path, recent, photo)):
            return None
        from ..session import apply_session, load_session, session_photo

        path = str(path)
        if photo is None:
            try:
                stored, photo = session_photo(path)
            except InputError:
                stored, photo = "", None  # the job reports what is wrong with the file
            if stored and photo is None:
                photo = self.ask_photo(path, stored)
                if not photo:
                    self.status(f"Session {Path(path).name} not opened: its photo {stored} is missing.", 15000)
                    return None

        def done(data) -> None:
            self.undo.clear()
            apply_session(self.doc, data)
            self._apply_session_ui(data.ui or {})
            self.session_path = path
            if recent:
                self.recentChanged.emit(self.settings.add_recent(path))
            self._autosave_settled()
            for w in data.warnings:
                self.error(w)
            if data.photo_moved_from is None:
                self._status_opened(f"Opened session {path}", data.photo_bits)
            else:  # the session file still names the old place
                self.undo.reset_clean()
                text = (f"Opened session {path} with its photo from {data.photo_path} (it was saved with "
                        f"{data.photo_moved_from}): save the session to keep the photo's new place.")  # fmt: skip
                self.status(text, 30000)

        return self.run_job(f"Open session {Path(path).name}", lambda _d, _p, _c: load_session(path, photo), done,
                            False)  # fmt: skip

    def _status_opened(self, text: str, bits: int) -> None:
        """The status after a photo (or a session on one) of ``bits`` per channel opened: ``text``, and for a photo
        deeper than 8 bits what the editor does with it (:func:`~.document.depth_note`), shown longer."""
        note = depth_note(bits)
        self.status(text + note, 20000 if note else 6000)

    def open_any(self, path: str | Path) -> Job | None:
        """Open a photo or (``.frgd``) a session: recent files and drag and drop."""
        return self.open_session(path) if Path(path).suffix.lower() == ".frgd" else self.open_photo(path)

    def default_session_path(self) -> str:
        return self.session_path or str(Path(self.doc.photo_path or "session").with_suffix(".frgd"))

    def session_ui(self) -> dict[str, Any]:
        """What a session keeps besides the document: the FRGD pane's parameters and the Size box's choice
        (``result_scale``; :data:`RESULT_SCALE_AUTO` is Auto), so that the work reopens as it was left and exports
        at the same size."""
        p = self.frgd.params()
        return {**{k: getattr(p, k) for k in FRGDPane.PARAMS}, "result_scale": int(self.settings.get("result_scale"))}

    def _apply_session_ui(self, ui: dict[str, Any]) -> None:
        """Restore :meth:`session_ui` from a session; an invalid value is logged and skipped, and a key the session
        lacks (sessions written before the Size was kept) leaves the setting as it is."""
        for key, value in ui.items():
            try:
                if key in FRGDPane.PARAMS:
                    self.frgd.set_param(key, value)
                elif key == "result_scale":
                    self.set_result_scale(value, tell=False)
            except (ValueError, TypeError) as err:
                logger.warning("session: %s", err)

    def save_session(self, path: str | Path | None = None) -> Job | None:
        """Save the session as a job: the document is snapshotted here (GUI thread) and written on the worker, so
        edits made meanwhile are neither saved half nor lost; they keep the document marked modified."""
        from ..session import save_session

        if self.doc.photo is None:
            return None
        if path is None:
            path = self.ask_session_path(self.default_session_path())
            if not path:
                return None
        snapshot, ui = self.doc.snapshot(), self.session_ui()
        pushes = self._pushes
        undo_index = self.undo.index()
        serial = self.doc.photo_serial

        def done(out: Path) -> None:
            if serial != self.doc.photo_serial:  # written, but another photo is open now
                self.recentChanged.emit(self.settings.add_recent(str(out)))
                self.status(f"Saved session {out} (of the photo open when it was asked)", 15000)
                return
            self.session_path = str(out)
            if pushes == self._pushes and undo_index == self.undo.index():
                self.undo.set_clean()
                self._autosave_settled()
            self.recentChanged.emit(self.settings.add_recent(str(out)))
            self.status(f"Saved session {out}")

        return self.run_job(f"Save session {Path(path).name}", lambda _d, _p, _c: save_session(snapshot, path, ui),
                            done, same_photo=False)  # fmt: skip  # written either way: done() says which photo

    # ------------------------------------------------------------------------------------------------ faces
    def detect(self) -> Job | None:
        photo = self.doc.photo
        if photo is None:
            return None

        min_score = float(self.settings.get("face_min_score"))
        rejected: list = []  # filled by the job (worker thread) before ``done`` runs

        def done(faces: list[Face]) -> None:
            if not faces and rejected:
                best = max(rejected, key=lambda f: f.score)
                self.status(
                    f"No face found with a detection score of at least {min_score:.2f}; the best candidate scored "
                    f"{candidate_text(best)}. If it is a face, lower the score next to Detect faces to "
                    f"{floor_to_take(best.score):.2f}.", 15000,
                )  # fmt: skip
            elif not faces:
                self.status(
                    f"No face found with a detection score of at least {min_score:.2f}. Lower the score next to "
                    "Detect faces for a small or damaged face, or try a larger photo.", 15000,
                )  # fmt: skip
            self._set_faces(faces)

        def work(d, p, c) -> list[Face]:
            return backend.detect(photo, d, p, c, min_score=min_score, rejected=rejected)

        return self.run_job("Detect faces", work, done, on_turn=self._turned_faces)

    def _turned_faces(self, faces: list[Face], k: int) -> list[Face]:
        """Faces found before the photo was turned ``k`` quarter turns: the same faces in the turned photo."""
        return backend.turned_faces(faces, k, self.doc.photo)

    def set_faces_from_landmarks(self, landmarks: list[np.ndarray]) -> Job | None:
        """Use known landmarks instead of detection (scripting, tests): aligned in a job, one undo step. Numbered like
        detected faces."""
        photo = self.doc.photo
        if photo is None:
            return None
        lms = [np.asarray(lm, np.float64).copy() for lm in landmarks]

        def align(_d, progress, cancel) -> list[Face]:
            from frgd.jobs import check_cancel, report
            from frgd.restore import number_faces

            out = []
            for k, lm in enumerate(lms):
                check_cancel(cancel)
                report(progress, k, len(lms), "aligning faces")
                out.append(backend.make_face(photo, lm))
            return number_faces(out)

        return self.run_job("Align faces", align, self._set_faces, on_turn=self._turned_faces)

    def _set_faces(self, faces: list[Face]) -> None:
        """Faces found or aligned become the document's, one undo step; beyond :data:`~.document.MAX_FACES` the
        largest are kept, and the status says so."""
        cmd = commands.SetFacesCommand(self.doc, faces)
        self.push(cmd)
        if cmd.dropped:
            self.status(f"Found {len(faces)} faces; the editor holds at most {MAX_FACES}: it kept the {MAX_FACES} "
                        f"largest (frgd enhance --faces restores any of them).", 30000)  # fmt: skip

    def select(self, index: int) -> None:
        """Select face ``index`` (a view state: no undo step, not a change of the document)."""
        if index != self.doc.selected:
            self.doc.select(index)

    def identity_backend(self) -> str:
        """The identity encoder for reference scores: the FRGD model's (``identity.json``) or the setting. Worker
        thread (reads the model folder through :func:`frgd.diffusion.model.read_identity_info`)."""
        return backend.identity_backend_of(self.frgd.model_dir(), str(self.settings.get("identity_backend")))

    def add_reference(self, path: str | Path) -> Job | None:
        """Add the face found in the photo at ``path`` as a reference of the selected face (read and scored in a job),
        one undo step; a face holds at most :data:`~.document.MAX_PER_FACE` references."""
        if self.doc.face() is None:
            self.status("Detect faces first, then add a reference for the selected face.")
            return None
        index, face = self.doc.selected, self.doc.face()
        if self._references_full(index, face):
            return None
        crop, path = face.crop, str(path)

        def job(device, progress, cancel):
            ref = backend.load_reference(path, device)
            try:
                ref.score = backend.identity_scores(crop, [ref.crop], self.identity_backend(), device)[0]
            except (FRGDError, ImportError) as err:  # the reference is still usable for FRGD
                logger.warning("identity score unavailable: %s", err)
            return ref

        def done(ref) -> None:
            if (i := self.face_index(index, face)) >= 0 and not self._references_full(i, self.doc.faces[i]):
                self.push(commands.add_reference(self.doc, i, ref))

        return self.run_job(f"Add reference {Path(path).name}", job, done, on_turn=backend.turn_invariant)

    def _references_full(self, index: int, face: Face) -> bool:
        """True, with the status saying so, when face ``index`` holds :data:`~.document.MAX_PER_FACE` references."""
        if len(face.references) < MAX_PER_FACE:
            return False
        self.status(f"Face {index + 1} has {len(face.references)} references, the most a face holds: remove one "
                    "first.", 15000)  # fmt: skip
        return True

    def remove_reference(self, k: int) -> None:
        face = self.doc.face()
        if face is not None and face.references:
            k = k if 0 <= k < len(face.references) else len(face.references) - 1
            self.push(commands.remove_reference(self.doc, self.doc.selected, k))

    def score_references(self) -> Job | None:
        """Measure each reference's identity similarity to the input face and report them (a measurement: no undo
        step, the document is not marked modified)."""
        face = self.doc.face()
        if face is None or not face.references:
            return None
        index, crop, refs = self.doc.selected, face.crop, list(face.references)

        def job(device, _p, _c):
            return backend.identity_scores(crop, [r.crop for r in refs], self.identity_backend(), device)

        def done(scores: list[float]) -> None:
            if (i := self.face_index(index, face)) < 0:
                return
            # the list may have changed while scoring: rescore the references that are still there
            self.doc.set_reference_scores(i, {id(r): s for r, s in zip(refs, scores)})
            text = ", ".join(f"{Path(r.path).name} {s:.2f}" for r, s in zip(refs, scores))
            self.status(f"Reference scores: {text}", 30000)

        return self.run_job("Identity scores", job, done, on_turn=backend.turn_invariant)

    # ------------------------------------------------------------------------------------------------ masks, results
    def clear_mask(self) -> None:
        if self.doc.face() is not None:
            self.push(commands.clear_mask(self.doc, self.doc.selected))

    def invert_mask(self) -> None:
        if self.doc.face() is not None:
            self.push(commands.invert_mask(self.doc, self.doc.selected))

    def clear_damage(self) -> None:
        """Remove every damage mark of the photo (one undo step)."""
        if self.doc.damage_marked():
            self.push(commands.clear_damage(self.doc))

    ROTATIONS = {1: "Rotate 90° counter-clockwise", -1: "Rotate 90° clockwise", 2: "Rotate 180°"}
    """Image > Rotate: quarter turns counter-clockwise (``np.rot90``'s ``k``) -> the menu and undo text."""
    ROTATE_ATTEMPTS = 4
    """How often :meth:`rotate` makes the turned images again when the photo was edited while they were made."""

    def rotate(self, k: int, _attempt: int = 1) -> Job | None:
        """Turn the photo ``k`` quarter turns counter-clockwise (:data:`ROTATIONS`), with its faces (aligned again:
        the same crops, so masks, samples and results stay), damage marks and pane results: one undo step. The
        turned images are made on the ``"io"`` lane (a sampling run does not hold the turn up); when the photo was
        edited meanwhile (faces found, a stroke, another turn) they are made again from the edited photo, up to
        :data:`ROTATE_ATTEMPTS` times. Results of jobs still running are turned to fit when they arrive
        (:meth:`run_job`). Sessions and exports keep the turn (:attr:`Document.turn`)."""
        doc = self.doc
        if doc.photo is None or k % 4 == 0:
            return None
        text = self.ROTATIONS.get(k, f"Rotate {90 * k}°")
        before = doc.photo_state()
        pushes, marker, serial = self._pushes, self._edit_marker(), doc.photo_serial

        def done(after) -> None:
            if serial != doc.photo_serial:
                self.status(f"{text}: not done, another photo was opened meanwhile.", 15000)
                return
            now = self._edit_marker()
            if self._pushes != pushes or len(now) != len(marker) or any(a is not b for a, b in zip(now, marker)):
                if _attempt < self.ROTATE_ATTEMPTS:
                    self.rotate(k, _attempt + 1)  # the edit stays; the turn is made again from the edited photo
                else:
                    self.status(f"{text}: not done, the photo kept changing meanwhile; rotate it again.", 15000)
                return
            self.push(commands.RotateCommand(doc, before, after, text))

        return self.run_job(text, lambda _d, _p, _c: backend.turned_state(before, k), done, same_photo=False,
                            lane="io")  # fmt: skip  # done() checks the photo and its edits

    def _edit_marker(self) -> list[Any]:
        """The objects every edit replaces (the photo, the damage layer, pane results, each face and its layers):
        compared by identity, they say whether anything changed, a stroke still in progress included."""
        doc = self.doc
        faces = [x for f in doc.faces for x in (f, f.mask, f.applied, f.applied_mask, f.samples, f.references)]
        return [doc.photo, doc.damage, *doc.pane_results.values(), *faces]

    def import_damage(self, path: str | Path) -> Job | None:
        """Add the white pixels of a mask image (photo-sized, white = damaged: the ``--damage`` image of ``frgd
        enhance``, e.g. painted in another editor) to the photo's damage marks, one undo step; read on the ``"io"``
        lane."""
        doc = self.doc
        if doc.photo is None:
            return None
        h, w = doc.photo.shape[:2]
        name = Path(path).name

        def load(_device: Any, _progress: Any, _cancel: Any) -> np.ndarray:
            from frgd.io import load_mask, marked

            m = load_mask(path)
            if m.shape != (h, w):
                raise InputError(f"{name} is {m.shape[1]}x{m.shape[0]}; a damage mask is the photo's size, {w}x{h}")
            return np.where(marked(m), 255, 0).astype(np.uint8)  # the rule of --damage (above one half)

        def done(layer: np.ndarray) -> None:
            self._add_damage(layer, f"Import damage ({name})", f"{name} marks no damage that is not marked already.")

        return self.run_job(f"Import damage mask {name}", load, done, lane="io", on_turn=backend.turned_image)

    def _add_damage(self, layer: np.ndarray, text: str, nothing: str) -> bool:
        """Add ``layer`` ``(H, W)`` uint8 (the photo's size) to the damage marks as one undo step ``text``; the
        status says ``nothing`` when it adds no mark. True when something was added."""
        doc = self.doc
        before = doc.damage
        after = layer if before is None else np.maximum(before, layer)
        if (before is not None and np.array_equal(after, before)) or not after.any():
            self.status(nothing, 15000)
            return False
        self.push(commands.DamageCommand(doc, None, before, after, text))
        return True

    def detect_damage(self) -> Job | None:
        """Run > Detect Damage: mark the scratches, cracks, spots and tears the damage detector finds
        (:func:`frgd.scratch.detect_damage`), added to the marks as one undo step, for the user to check, erase (E)
        or add to before they are filled. Turned with the photo when it was turned meanwhile."""
        photo = self.doc.photo
        if photo is None:
            return None

        def done(layer: np.ndarray) -> None:
            share = float(np.count_nonzero(layer)) / layer.size
            if self._add_damage(layer, "Detect damage", "Detect damage found no damage that is not marked already."):
                self.status(f"Detect damage marked {100 * share:.2f}% of the photo (cyan): check the marks, erase "
                            "wrong ones with the Eraser (E) or undo.", 15000)  # fmt: skip

        return self.run_job("Detect damage", lambda d, p, c: backend.detected_damage(photo, d, p, c), done,
                            on_turn=backend.turned_image)  # fmt: skip

    def export_damage(self, path: str | Path, overwrite: bool = False) -> Job | None:
        """Write the photo's damage marks as a photo-sized grey PNG (white = damaged), the ``--damage`` image of
        ``frgd enhance`` and ``frgd restore`` (never over the photo); ``None`` when nothing is marked."""
        from frgd.io import marked, save_image

        doc = self.doc
        if not doc.damage_marked():
            self.status("No damage is marked: paint it with the Damage tool (D) first.")
            return None
        layer = np.where(marked(doc.damage), 255, 0).astype(np.uint8)
        protect = [doc.photo_path] if doc.photo_path else []

        def write(_device: Any, _progress: Any, _cancel: Any) -> Path:
            return save_image(path, np.repeat(layer[..., None], 3, axis=2), overwrite=overwrite, protect=protect)

        return self.run_job("Export damage mask", write, lambda out: self.status(f"Exported the damage mask to {out}"),
                            same_photo=False, lane="io")  # fmt: skip

    # ------------------------------------------------------------------------------------------ damage fill
    def _repair(self) -> None:
        """Keep :attr:`Document.repaired` current: one fill job at a time (:func:`backend.repaired_photo`); when it
        ends and the damage changed meanwhile, the next one starts, so the dabs of a stroke cost one or two fills."""
        doc = self.doc
        if doc.repair_current():
            self._run_when_ready()
            return
        if self._repair_job is not None:
            return
        photo, damage, version, gen = doc.photo, doc.damage, doc.damage_version, doc.generation
        job = self.jobs.submit("Fill damage", lambda _d, p, c: backend.repaired_photo(photo, damage, p, c),
                               str(self.settings.get("device")), hold=False)  # fmt: skip  # shown while painting
        job.succeeded.connect(lambda img: gen == doc.generation and doc.set_repaired(img, version))
        job.failed.connect(lambda msg, tb: self.error(f"Filling the marked damage failed: {msg}", tb))
        job.ended.connect(lambda: self._repair_ended(version, job.state))
        self._repair_job = job

    def _repair_ended(self, version: int, state: str) -> None:
        self._repair_job = None
        if self.doc.repair_current():
            self._run_when_ready()
        elif state == "done" or version != self.doc.damage_version:  # the damage moved on: fill the new one
            self._repair()
        else:  # failed or cancelled on the current damage: what waited for it is not done
            if self._when_ready:
                self.status("The export was not written: the marked damage could not be filled.", 15000)
            elif state == "cancelled":
                self.status("Filling the marked damage was cancelled: the newest marks show unfilled. Run > Fill "
                            "Damage fills them.", 15000)  # fmt: skip
            self._when_ready.clear()

    def fill_damage(self) -> None:
        """Run > Fill Damage: fill the marked damage now when its fill is not current (a fill cancelled or failed;
        painting and every result that needs it start one by themselves); the status says when nothing is to do."""
        doc = self.doc
        if doc.photo is None:
            return
        if not doc.damage_marked():
            self.status("No damage is marked: paint it with the Damage tool (D) or Run > Detect Damage.", 15000)
        elif doc.repair_current():
            self.status("The marked damage is filled.", 15000)
        elif self._repair_job is None:
            self.status("Filling the marked damage…", 0)
            self._repair()

    def _run_when_ready(self) -> None:
        """Run what waited for the result (:meth:`when_result_ready`) once it is ready."""
        if not self.result_ready():
            return
        waiting, self._when_ready[:] = list(self._when_ready), []
        for fn in waiting:
            fn()

    def result_ready(self) -> bool:
        """True when the Result needs no job: a pane result is its background, or the photo's damage fill is current
        (:meth:`Document.repair_current`) and so is its upscale to the result's size
        (:meth:`Document.upscale_current`)."""
        doc = self.doc
        return bool(doc.background) or (doc.repair_current() and doc.upscale_current())

    def when_result_ready(self, fn: Callable[[], Any]) -> bool:
        """Run ``fn()`` once the Result is built on its final background (:meth:`result_ready`): now (``True``), or
        when the running fill and upscale end (``False``)."""
        if self.result_ready():
            fn()
            return True
        self._when_ready.append(fn)
        self._repair()
        self._upscale()
        return False

    # ------------------------------------------------------------------------------------------- result size
    def wanted_result_scale(self) -> int:
        """The result's size in photo sizes: the Size box (``result_scale``), or with Auto the scale at which the
        smallest face's crop maps 1:1 (:func:`frgd.restore.faces_scale`, ``frgd enhance --scale auto``'s rule for every
        detected face; no face: 1); either within 50 MP (:func:`frgd.restore.fitting_scale`: a ×8 of a 24 MP photo
        would need gigabytes; the CLI's ``--scale`` goes beyond)."""
        from frgd.restore import fitting_scale

        doc = self.doc
        chosen = int(self.settings.get("result_scale"))
        if doc.photo is None or chosen == RESULT_SCALE_AUTO:
            return self.auto_result_scale()
        return min(chosen, fitting_scale(doc.photo.shape[:2]))

    def auto_result_scale(self) -> int:
        """Size Auto's scale, whatever the Size box says (:meth:`wanted_result_scale`; no photo: 1)."""
        from frgd.restore import faces_scale

        doc = self.doc
        if doc.photo is None:
            return 1
        return faces_scale((1.0 / max(f.crop_scale(), 1e-9) for f in doc.faces), doc.photo.shape[:2])

    def set_result_scale(self, scale: int, tell: bool = True) -> None:
        """The Size box: ``scale`` times the photo's size, or :data:`RESULT_SCALE_AUTO` (a setting, kept in sessions:
        it changes how the result is rendered and exported, not the document; ``ValueError`` when invalid); with
        ``tell`` the status says when the photo sets another size."""
        self.settings.set("result_scale", scale)
        scale = int(self.settings.get("result_scale"))
        self.resultScaleChosen.emit(scale)
        self.update_result_size()
        doc = self.doc
        if doc.photo is None or not tell:
            return
        if doc.background:
            self.status(f"The result is pasted on {doc.background}, which sets its size; untick 'Paste restored faces "
                        "onto the upscaled photo' to use this size.", 15000)  # fmt: skip
        elif scale != RESULT_SCALE_AUTO and doc.result_scale < scale:
            h, w = doc.photo.shape[:2]
            self.status(f"×{scale} would make a {h * w * scale * scale / 1e6:.0f} MP result; the editor keeps it "
                        f"within {AUTO_MAX_PIXELS // 1_000_000} MP: ×{doc.result_scale} (frgd enhance --scale "
                        f"{scale} makes it).", 15000)  # fmt: skip

    def update_result_size(self) -> None:
        """Keep :attr:`Document.result_scale` at :meth:`wanted_result_scale` and its upscaled background current."""
        if self.doc.photo is None:
            return
        self.doc.set_result_scale(self.wanted_result_scale())
        self._upscale()

    def _upscale(self) -> None:
        """Keep :attr:`Document.upscaled` current: one upscale job at a time (:func:`backend.upscaled_background`),
        started once the damage fill is current; one made for a base photo or a scale that changed meanwhile (or is
        no longer needed) is cancelled, and the next one starts when it ends. Not an edit (``hold=False``), and it
        yields (:class:`~.jobs.JobQueue`): a Resample, detection or pane run started meanwhile goes first (on a big
        photo the upscale takes seconds on a GPU, longer on a CPU) and the upscale goes on after it at its next tile
        (its runs share one :class:`frgd.sr.tiling.TileResume`), so Resamples clicked one after another delay it but
        never make it start over."""
        doc = self.doc
        needed = doc.photo is not None and not doc.upscale_current()
        base, scale = doc.base_photo(), doc.result_scale
        if self._upscale_job is not None and (not needed or not self._upscale_makes_current(self._upscale_of)):
            self._upscale_job.cancel()  # stale: its end calls this again
        if not needed:
            self._run_when_ready()
            return
        if self._upscale_job is not None or not doc.repair_current():  # the fill's end calls this again
            return
        resume = TileResume()
        job = self.jobs.submit(f"Upscale the result ×{scale}",
                               lambda d, p, c: backend.upscaled_background(base, scale, d, p, c, resume),
                               str(self.settings.get("device")), hold=False, yields=True)  # fmt: skip
        job.succeeded.connect(lambda r: doc.set_upscaled(base, scale, r[0], r[1]))
        job.failed.connect(lambda msg, tb: self.error(f"Upscaling the result ×{scale} failed: {msg}", tb))
        job.ended.connect(lambda: self._upscale_ended(job.state))
        self._upscale_job, self._upscale_of = job, (base, scale)

    def _upscale_makes_current(self, made: tuple[np.ndarray, int] | None) -> bool:
        """Whether an upscale job's ``(base photo, scale)`` are the document's now."""
        return made is not None and made[0] is self.doc.base_photo() and made[1] == self.doc.result_scale

    def _upscale_ended(self, state: str) -> None:
        made, self._upscale_job, self._upscale_of = self._upscale_of, None, None
        doc = self.doc
        if doc.photo is None or doc.upscale_current():
            self._run_when_ready()
        elif state == "done" or not self._upscale_makes_current(made):  # the photo or size moved on: make the new one
            self._upscale()
        else:  # failed or cancelled on the current one: the result shows at the photo's size
            if self._when_ready:
                self.status("The export was not written: the result could not be upscaled.", 15000)
            elif state == "cancelled":
                self.status(f"Upscaling the result ×{doc.result_scale} was cancelled: it shows at the photo's size "
                            "until you choose its size again (the Size box).", 15000)  # fmt: skip
            self._when_ready.clear()

    def region_mask(self, region: str) -> None:
        from frgd.faces import face_region_mask, transform_points

        face = self.doc.face()
        if face is None:
            return
        lm = transform_points(face.affine, face.landmarks)
        try:
            mask = face_region_mask(CROP_SIZE, lm, region)
        except InputError as err:
            self.error(str(err))
            return
        self.push(commands.MaskCommand(self.doc, self.doc.selected, face.mask, mask, f"Mask {region}"))

    def apply_sample(self, k: int) -> None:
        face = self.doc.face()
        if face is not None and 0 <= k < len(face.samples):
            self.push(commands.apply_sample(self.doc, self.doc.selected, k))

    def revert_face(self) -> None:
        face = self.doc.face()
        if face is not None and face.applied is not None:
            self.push(commands.revert_face(self.doc, self.doc.selected))

    def set_device(self, device: str) -> None:
        self.settings.set("device", device)
        backend.clear_caches()
        self.deviceChanged.emit()

    def device_text(self) -> str:
        """The chosen device in words (resolves it: imports torch and may initialise CUDA; not on the GUI thread)."""
        spec = self.settings.get("device")
        try:
            from frgd.devices import describe_device, resolve_device

            return describe_device(resolve_device(spec))
        except FRGDError as err:
            return f"{spec}: {err}"

    def request_device_text(self, on_text: Callable[[str], None]) -> threading.Thread:
        """Resolve :meth:`device_text` on a short-lived daemon thread and post ``on_text(text)`` to the owner's thread
        (like every job event): starting CUDA can take seconds and the GUI thread never runs torch."""

        def work() -> None:
            try:
                text = self.device_text()
            except Exception as err:  # noqa: BLE001 - a label, never a crash
                text = f"{self.settings.get('device')}: {err}"
            self.jobs.post(lambda: on_text(text))

        thread = threading.Thread(target=work, name="frgd-device-label", daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------------------------------------------ export
    def export_choices(self) -> list[str]:
        """What Export can write: ``Result``, ``Original`` and every pane result (independent of the shown view)."""
        return [] if self.doc.photo is None else ["Result", "Original", *self.doc.pane_results]

    def export_image(self, choice: str) -> np.ndarray:
        doc = self.doc
        if choice == "Result":
            return doc.composite()
        if choice == "Original":
            return doc.photo
        if choice in doc.pane_results:
            return doc.pane_results[choice]
        raise InputError(f"nothing to export named {choice!r}; choose one of {', '.join(self.export_choices())}")

    def export_plan(self, choice: str) -> ExportPlan:
        """The image ``choice`` names and the sentence that says what it is, e.g. ``Result: faces 1, 2 restored
        with FRGD, pasted on SR bicubic ×2 — 480×400, identity changed: yes``."""
        doc = self.doc
        img = self.export_image(choice)
        if choice == "Result":
            by_method: dict[str, list[int]] = {}
            for i, f in enumerate(doc.faces):
                if f.applied is not None:
                    by_method.setdefault(f.result_method(), []).append(i + 1)
            parts = [f"face{'s' if len(n) > 1 else ''} {', '.join(map(str, n))} restored with "
                     f"{METHOD_LABELS.get(m, m)}" for m, n in by_method.items()]  # fmt: skip
            what = "; ".join(parts) or "no face restored"
            if doc.background:
                what += f", pasted on {doc.background}"
            else:
                if doc.damage_marked():
                    what += f", on the photo with its marked damage filled ({100 * doc.damage_share():.2f} % of it)"
                else:
                    what += ", on the original photo"
                if doc.upscale_used():
                    what += f" {doc.result_canvas()[1]}"
        elif choice == "Original":
            what = "the photo as opened"
        else:
            model = doc.pane_params.get(choice, {}).get("model")
            what = "whole-photo pane result" + (f" of {model}" if model else "")
        changed = "yes" if doc.identity_changed(choice) else "no"
        depth = self._depth_text(choice)
        text = f"{choice}: {what} — {img.shape[1]}×{img.shape[0]}{depth}, identity changed: {changed}"
        return ExportPlan(choice, img, text)

    def export_bits(self, choice: str) -> int:
        """The bits per channel Export writes ``choice`` in to a format that holds them (PNG, TIFF:
        :func:`frgd.io.keeps_16_bits`; the others hold 8): the photo file's for the Original and for a Result built on
        the photo (made again from the file's pixels at export, :func:`backend.deep_result`), 8 for a pane result and
        a Result pasted on one (made in 8 bits)."""
        doc = self.doc
        if choice == "Original" or (choice == "Result" and not doc.background):
            return max(8, doc.photo_bits)
        return 8

    def _depth_text(self, choice: str) -> str:
        """What :meth:`export_plan` says of ``choice``'s depth: nothing for an 8-bit photo."""
        bits = self.doc.photo_bits
        if bits <= 8:
            return ""
        if self.export_bits(choice) <= 8:
            return f", 8-bit (pane results are made in 8 bits; the photo is {bits}-bit)"
        how = "the photo file's pixels" if choice == "Original" else "made again from the photo file; faces are 8-bit"
        return f", {bits}-bit as PNG or TIFF ({how})"

    def default_export_path(self) -> Path:
        src = Path(self.doc.photo_path or "result.png")
        base, k = src.with_name(f"{src.stem}_frgd.png"), 2
        while base.exists():
            base, k = src.with_name(f"{src.stem}_frgd_{k}.png"), k + 1
        return base

    def provenance(self, choice: str = "Result") -> Any:
        """The :class:`frgd.io.Provenance` of the exported ``choice`` (models, seeds, references, identity flag)."""
        from frgd.io import Provenance

        doc = self.doc
        params: dict[str, Any] = {"view": choice, "faces": []}
        if doc.turn:  # Image > Rotate: the photo (the "Original" too) turned from its file
            params["photo_turn_degrees"] = 90 * doc.turn  # counter-clockwise
        seeds, refs, models = [], {}, set()
        for i, f in enumerate(doc.faces):
            entry: dict[str, Any] = {"number": i + 1, "changed": f.applied is not None, "seed": f.applied_seed}
            if f.turn:  # the face lies turned in the photo (restored upright, pasted back turned)
                entry["turn_degrees"] = 90 * f.turn
            sample = f.applied_sample()
            if f.applied is not None:
                entry["method"] = f.result_method()
            if f.applied is not None and sample is not None:
                entry.update(sample.parameters)
                models.add(str(sample.parameters.get("model", sample.method)))
                if sample.seed is not None:  # an imported crop has none
                    seeds.append(sample.seed)
                refs.update(f.used_reference_hashes())
            params["faces"].append(entry)
        if choice in doc.pane_params:
            params["pane"] = doc.pane_params[choice]
            models.add(str(doc.pane_params[choice].get("model")))
        if doc.background:
            params["background"] = {"name": doc.background, **doc.pane_params.get(doc.background, {})}
        elif choice == "Result":
            if doc.damage_marked():  # the result's base is the photo with its damage filled
                params["damage_filled"] = round(doc.damage_share(), 6)
            upscaled = doc.upscale_used()
            params["scale"] = doc.upscaled_scale if upscaled else 1  # the keys of frgd enhance's metadata
            params["sr_model"] = doc.upscaled_model if upscaled else NO_UPSCALE
        return Provenance(
            model=", ".join(sorted(models)) or None,
            seed=seeds[0] if len(seeds) == 1 else None,
            parameters=params,
            reference_hashes=refs,
            identity_changed=doc.identity_changed(choice),
            source_hash=doc.photo_sha256,
        )

    def export(self, path: str | Path, choice: str = "Result", overwrite: bool = False) -> Job | None:
        """Write ``choice`` with provenance (the photo's transparency kept; never over the original photo) as a job:
        the image and its provenance are taken here (GUI thread), so edits made meanwhile are not exported half;
        encoding and writing, seconds for a large upscale, run on the ``"io"`` lane, so an export is written at once
        even while a sampling run of minutes goes on. The job's result is the written path. A result built on the
        photo's damage fill or its upscale to the result's size waits for them (:meth:`when_result_ready`; ``None`` is
        returned then and the export follows by itself).

        A 16-bit photo's Original and Result go to PNG and TIFF in 16 bits (:meth:`export_bits`): the Result is made
        again from the file's pixels on the ``"compute"`` lane, after the jobs queued before it
        (:func:`backend.deep_result`: the fill, the upscale by the shown result's model and the paste of the faces as
        they are now); when the file is gone or changed, the 8-bit image is written and the status says why."""
        from frgd.io import keeps_16_bits, save_image

        doc = self.doc
        if doc.photo is None:
            return None
        if choice == "Result" and not self.result_ready():
            first = "Filling the marked damage" if not doc.repair_current() else "Upscaling the result"
            self.status(f"{first} first; the export follows.", 0)
            self.when_result_ready(lambda: self.export(path, choice, overwrite))
            return None
        try:
            img = self.export_image(choice)
            prov = self.provenance(choice)
        except FRGDError as err:
            self.error(str(err))
            return None
        alpha, icc = doc.alpha, doc.icc_profile
        protect = [doc.photo_path] if doc.photo_path else []
        deep = self.export_bits(choice) > 8 and keeps_16_bits(path)
        source, turn = (doc.photo_path, doc.photo_sha256), doc.turn
        damage = doc.damage if choice == "Result" and doc.damage_marked() else None
        scale, model = (doc.upscaled_scale, doc.upscaled_model) if doc.upscale_used() else (1, "")
        pastes = [(f.crop_obj, f.applied, f.applied_mask) for f in doc.faces if f.applied is not None]
        why_8 = []  # the reason a 16-bit export was written in 8 bits

        def write(device: Any, progress: Any, cancel: Any) -> Path:
            rgb, a = img, alpha
            if deep:
                try:
                    rgb, a = backend.deep_photo(*source, turn)
                except FRGDError as err:  # the 8-bit image is written
                    why_8.append(str(err))
                else:
                    if choice == "Result":
                        rgb = backend.deep_result(rgb, damage, scale, model, pastes, device, progress, cancel)
            return save_image(path, rgb, alpha=_fit_alpha(a, rgb.shape[:2]), provenance=prov, overwrite=overwrite,
                              protect=protect, icc_profile=icc)  # fmt: skip

        def done(out: Path) -> None:
            if why_8:
                self.status(f"Exported {choice} to {out} in 8 bits: {why_8[0]}.", 30000)
            else:
                self.status(f"Exported {choice} to {out}" + (" (16-bit)" if deep else ""))

        name = f"Export {choice}" + (" (16-bit)" if deep else "")
        lane = "compute" if deep and choice == "Result" else "io"  # torch (the fill, the upscale) / files only
        return self.run_job(name, write, done, same_photo=False, lane=lane)

    def faces_stem(self) -> str:
        """The name the photo's face files start with (File > Export Faces): the photo file's stem."""
        return Path(self.doc.photo_path or "photo").stem

    def export_faces(self, folder: str | Path, overwrite: bool = False) -> Job | None:
        """File > Export Faces: every face into ``folder`` as files (:mod:`.face_files`: the aligned input, the
        result with its provenance, a comparison, and the index ``frgd faces paste`` reads), written on the ``"io"``
        lane from the faces as they are now. Without ``overwrite`` a folder that holds face files of the photo is
        refused (the job fails, naming one); with it they are replaced, and files of faces no longer there removed.
        The job's result is the index written (:func:`frgd.restore.face_files.write_face_files`)."""
        from frgd.restore.face_files import write_face_files

        from .face_files import EXPORT_COMMAND, export_faces_plan

        doc = self.doc
        if doc.photo is None or not doc.faces:
            self.status("No faces to export: detect faces first (Ctrl+D).")
            return None
        try:
            faces, refs = export_faces_plan(doc)
        except FRGDError as err:
            self.error(str(err))
            return None
        stem, source, sha, icc = self.faces_stem(), doc.photo_path or "", doc.photo_sha256, doc.icc_profile
        protect = [doc.photo_path] if doc.photo_path else []
        restored = sum(1 for f in faces if f.samples)

        def write(_device: Any, _progress: Any, _cancel: Any) -> dict[str, Any]:
            return write_face_files(folder, stem, faces, command=EXPORT_COMMAND, source=source, outputs=[],
                                    source_hash=sha, reference_hashes=refs, overwrite=overwrite,
                                    protect=protect, icc_profile=icc)  # fmt: skip

        def done(index: dict[str, Any]) -> None:
            self.status(f"Exported {len(faces)} face(s), {restored} with a result, to {Path(index['index']).parent} "
                        f"({Path(index['index']).name})", 15000)  # fmt: skip

        return self.run_job("Export faces", write, done, same_photo=False, lane="io")

    def import_face(self, path: str | Path, index: int | None = None) -> Job | None:
        """File > Import Face Result: the square image at ``path`` (a crop of File > Export Faces retouched, or one
        restored by another program) becomes a gallery entry of face ``index`` (default: the selected one) and its
        result, one undo step (:func:`.face_files.load_face_crop`, read on the ``"io"`` lane). The result counts as
        identity-changing in exports: the file can hold anyone's face."""
        from .face_files import load_face_crop

        doc = self.doc
        index = doc.selected if index is None else index
        face = doc.face(index)
        if face is None:
            self.status("Detect faces first, then import a result for the selected face.")
            return None
        name = Path(path).name

        def done(sample) -> None:
            i = self.face_index(index, face)
            if i < 0:
                return
            text = f"Import face {i + 1} result ({name})"
            add = commands.AddSamplesCommand(doc, i, [sample])
            apply = commands.AppliedCommand(doc, i, commands.sample_applied(sample), text)
            self.push(commands.CompositeCommand(text, [add, apply]))
            side = sample.parameters["size"][0]
            fit = "" if side == CROP_SIZE else f", resized from {side} px"
            full = f" {gallery_full_text([i + 1], add.dropped)}" if add.dropped else ""
            self.status(f"{name} is face {i + 1}'s result{fit} (Ctrl+Z undoes it).{full}", 15000)

        return self.run_job(f"Import face {index + 1} result {name}", lambda _d, _p, _c: load_face_crop(path), done,
                            lane="io", on_turn=backend.turn_invariant)  # fmt: skip

    def shutdown(self) -> None:
        self.jobs.shutdown()
        if self.autosave is not None:  # closed normally: nothing to recover
            self.autosave.close()
            self.autosave = None

    # ------------------------------------------------------------------------------------------ crash recovery
    def enable_autosave(self, folder: str | Path | None = None) -> Autosave:
        """Write unsaved work to this editor's autosave session every ``autosave_minutes`` (the setting; 0: never)
        when :meth:`autosave_tick` is called (the Qt shell's timer); see :mod:`.autosave`."""
        if self.autosave is None:
            self.autosave = Autosave(folder)
        return self.autosave

    def autosave_tick(self, force: bool = False) -> Job | None:
        """Autosave now when it is due (``autosave_minutes`` since the last one, or ``force``) and the document
        changed since: a snapshot written on the ``"io"`` lane, without a status message or an undo step; a saved or
        unchanged document has no autosave file. Returns the job, or ``None`` when nothing was written."""
        from ..session import save_session

        a, doc = self.autosave, self.doc
        minutes = int(self.settings.get("autosave_minutes"))
        if a is None or self._autosave_job is not None or (minutes <= 0 and not force):
            return None
        if not force and time.monotonic() - self._autosave_at < 60 * minutes:
            return None
        self._autosave_at = time.monotonic()
        if doc.photo is None or not self.modified:
            a.remove()
            self._autosaved = None
            return None
        state = (self._pushes, self.undo.index())
        if state == self._autosaved and a.path.is_file():
            return None
        snapshot, ui, path = doc.snapshot(), self.session_ui(), a.path
        job = self.jobs.submit("Autosave", lambda _d, _p, _c: save_session(snapshot, path, ui), "cpu", lane="io")

        def ended() -> None:
            self._autosave_job = None
            if job.state == "done":
                self._autosaved = state
            elif job.state == "failed":
                self.status(f"Autosave failed ({job.error}); save the session to keep your work.", 15000)

        job.ended.connect(ended)
        self._autosave_job = job
        return job

    def _autosave_settled(self) -> None:
        """The work is saved or replaced: the autosave file goes (the next change writes a new one)."""
        if self.autosave is not None:
            self.autosave.remove()
            self._autosaved = None

    def leftovers(self) -> list[Leftover]:
        """Autosaved sessions of editors that did not close normally (offered at start)."""
        return [] if self.autosave is None else self.autosave.leftovers()

    def recover(self, leftover: Leftover) -> Job | None:
        """Open an autosaved session as unsaved work (offered at start, so with no unsaved work open: refused with a
        status otherwise): Save asks where to write it, and it becomes this editor's autosave until then. One that
        cannot be opened (its photo moved and was not located: :meth:`open_session`) stays where it is, offered again
        at the next start."""
        if self.autosave is None:
            return None
        if self.modified:
            self.status("Save or discard the open work first, then recover.", 15000)
            return None

        def done(_r: Any) -> None:
            if self.autosave is not None:
                self.autosave.adopt(leftover)
            self.session_path = None
            self.undo.reset_clean()
            self._autosaved = (self._pushes, self.undo.index())  # the file holds exactly this
            self.status(f"Recovered the unsaved work on {leftover.photo or 'the photo'}: save it to keep it.", 30000)

        def failed(_msg: str, _tb: str) -> None:
            self.status(f"The autosaved work on {leftover.photo or 'the photo'} is kept; it is offered again at the "
                        "next start.", 30000)  # fmt: skip

        job = self.open_session(leftover.path, recent=False)  # its done() runs first: then the file is adopted
        if job is None:  # its photo is missing and was not located
            failed("", "")
        else:
            job.succeeded.connect(done)
            job.failed.connect(failed)
        return job

    def discard_leftover(self, leftover: Leftover) -> None:
        if self.autosave is not None:
            self.autosave.discard(leftover)
