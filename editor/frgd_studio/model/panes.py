"""ONE recipe for every pane (FRGD, GFPGAN, super-resolution): a :class:`Pane` has a name, a :class:`PaneStatus`
(ready, or missing with an actionable message and the fixes the editor offers: download from the catalog's URL with
its sha256, or import a file/folder the user has), :meth:`Pane.refresh_status` (cheap file checks, no model is loaded:
called at start-up, when the window is activated, periodically and after every download/import, so weights installed
by ``frgd weights download`` while the editor runs are picked up), and ``run(...)``: a job on the model's queue whose
result is stored in the document through a command.

Panes talk to the :class:`PaneHost` (the :class:`~.editor.EditorModel`), never to Qt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from frgd.errors import FRGDError

from . import backend
from .commands import (
    AddSamplesCommand,
    AppliedCommand,
    BackgroundCommand,
    Command,
    CompositeCommand,
    pane_result,
    sample_applied,
)
from .document import MAX_PANES, MAX_PER_FACE, Document, Face
from .events import Event
from .jobs import Job, JobFn, TurnFn
from .settings import RANGES, Settings

logger = logging.getLogger(__name__)

FRGD_ENTRY = "frgd-128"
"""The manifest entry of the FRGD model used when no model folder is chosen."""


class PaneHost(Protocol):
    """What a pane needs from the editor model."""

    doc: Document
    settings: Settings

    def run_job(self, name: str, fn: JobFn, on_success: Callable[[Any], None] | None = None,
                same_photo: bool = True, lane: str = "compute", on_turn: TurnFn | None = None) -> Job: ...  # fmt: skip

    def push(self, command: Command) -> None: ...

    def status(self, text: str, ms: int = 6000) -> None: ...

    def error(self, message: str, details: str = "") -> None: ...

    def show_result(self, name: str) -> None: ...

    def refresh_panes(self) -> None: ...

    def face_index(self, index: int, face: Any) -> int: ...

    def show_preview(self, preview: FacePreview | None) -> None: ...


@dataclass(frozen=True)
class WeightsFix:
    """One way to install missing weights: ``download`` (``url`` checked against ``sha256``) or ``import`` (a file,
    or a folder when ``folder``) of manifest entry ``entry``."""

    kind: str
    entry: str
    url: str | None = None
    sha256: str | None = None
    folder: bool = False

    @property
    def label(self) -> str:
        return "Download" if self.kind == "download" else "Import…"


@dataclass(frozen=True)
class PaneStatus:
    """``ready``, else ``message`` says what is missing and how to get it; ``fixes`` are the in-app ways."""

    ready: bool
    message: str | None = None
    fixes: tuple[WeightsFix, ...] = ()
    model: str | None = None  # what runs (e.g. the FRGD model folder's name)


def weights_fixes(entry_name: str) -> tuple[WeightsFix, ...]:
    """The download fix (when the catalog has a URL, for a converted model its source's) and the import fix."""
    from frgd.weights import get_entry

    entry = get_entry(entry_name)
    fixes = []
    src = get_entry(entry.source) if entry.kind == "convert" and entry.source else None
    url_entry = src or entry
    if url_entry.url:
        fixes.append(WeightsFix("download", entry.name, url_entry.url, url_entry.expected_sha256()))
    imp = src or entry
    fixes.append(WeightsFix("import", imp.name, folder=not imp.single_file))
    return tuple(fixes)


class Pane:
    """Base of every pane: status, the weights fixes, and jobs on the host's queue. ``changed`` fires when the status
    or the pane's parameters change."""

    name = "pane"

    def __init__(self, host: PaneHost) -> None:
        self.host = host
        self.changed = Event(f"{self.name}.changed")
        self._status = PaneStatus(False, "checking…")

    def compute_status(self) -> PaneStatus:
        """The status from the files on disk now (cheap, loads nothing)."""
        raise NotImplementedError

    def status(self) -> PaneStatus:
        return self._status

    def refresh_status(self) -> bool:
        """Re-check the weights; emits ``changed`` and returns True when the status changed."""
        try:
            new = self.compute_status()
        except (FRGDError, ImportError, OSError) as err:
            new = PaneStatus(False, f"{self.name} is not available: {err}")
        if new == self._status:
            return False
        self._status = new
        self.changed.emit()
        return True

    def _store_result(self, name: str, image: np.ndarray, params: dict[str, Any]) -> None:
        """Keep a whole-photo result as ``name`` (one undo step); when the document holds
        :data:`~.document.MAX_PANES` results, the oldest that is not the background goes, and the status says so."""
        command, dropped = pane_result(self.host.doc, name, image, params)
        self.host.push(command)
        if dropped:
            self.host.status(f"The editor keeps {MAX_PANES} pane results: {dropped}, the oldest, went to make room "
                             "(Undo brings it back).", 30000)  # fmt: skip

    def can_run(self) -> bool:
        return self._status.ready and self.host.doc.photo is not None

    def download(self, entry: str) -> Job:
        """Download ``entry`` (a job with progress and cancel); every pane re-checks its status afterwards."""

        def done(path: Path) -> None:
            self.host.status(f"Downloaded {entry} to {path}")

        job = self.host.run_job(
            f"Download {entry}",
            lambda _d, p, c: backend.download_weights(entry, p, c),
            done,
            same_photo=False,
            lane="io",
        )  # network and disk: FRGD and SR jobs go on meanwhile
        job.ended.connect(self.host.refresh_panes)
        return job

    def import_weights(self, path: str | Path, entry: str | None) -> Job:
        """Import a weights file or folder the user has as ``entry`` (a job); every pane re-checks afterwards."""

        def done(result: tuple[str, Path]) -> None:
            self.host.status(f"Installed {result[0]} at {result[1]}")

        job = self.host.run_job(f"Import {Path(path).name}", lambda _d, _p, _c: backend.import_weights(path, entry),
                                done, same_photo=False)  # fmt: skip
        job.ended.connect(self.host.refresh_panes)
        return job


# ------------------------------------------------------------------------------------------------------------ FRGD
@dataclass(frozen=True)
class FRGDParams:
    """The FRGD controls (persisted in the settings)."""

    identity_strength: float
    steps: int
    samples: int
    seed: int
    lock_seed: bool
    harmonise: int
    candidates: int
    identity_gradient: str
    input_quality: str

    def seeds_for_run(self) -> list[int] | None:
        """Locked: ``[seed, seed+1, ...]``; unlocked: ``None`` (the pipeline draws and reports random seeds)."""
        if self.lock_seed:
            return [min(self.seed + i, int(RANGES["seed"][1])) for i in range(self.samples)]
        return None


@dataclass(frozen=True, eq=False)
class FacePreview:
    """The instant preview of a Resample: the FRGD prior's estimate ``image`` ``(128, 128, 3)`` uint8 of the
    document's face ``index`` (``face``: the :class:`Face` it was computed for), shown in the face's place until the
    samples arrive. A view state, never part of the document (no undo step, not saved, not exported)."""

    index: int
    face: Face
    image: np.ndarray


class FRGDPane(Pane):
    """Identity-guided diffusion for the selected face: parameters, the model folder, Resample."""

    name = "FRGD"
    PARAMS = (
        "identity_strength", "steps", "samples", "seed", "lock_seed", "harmonise", "candidates", "identity_gradient",
        "input_quality",
    )  # fmt: skip

    def params(self) -> FRGDParams:
        s = self.host.settings
        return FRGDParams(*(s.get(k) for k in self.PARAMS))

    def set_param(self, key: str, value: Any) -> None:
        """Change one of :attr:`PARAMS` (validated and persisted; ``ValueError`` when out of range)."""
        if key not in self.PARAMS:
            raise KeyError(key)
        if self.host.settings.get(key) != value:
            self.host.settings.set(key, value)
            self.changed.emit()

    def chosen_folder_problem(self) -> str | None:
        """Why the stored model-folder choice is not used (``None``: no choice, or a valid one)."""
        from frgd.diffusion.model import is_model_dir

        chosen = self.host.settings.get("frgd_model")
        if chosen and not is_model_dir(chosen):
            return (f"The FRGD model folder chosen before, {chosen}, holds no FRGD model (config.json + weights); "
                    f"using the installed {FRGD_ENTRY} instead.")  # fmt: skip
        return None

    def model_dir(self) -> str | None:
        """The folder Resample uses: the valid chosen one, else the installed ``frgd-128``; ``None`` when neither."""
        from frgd.diffusion.model import is_model_dir
        from frgd.weights import find_files, get_entry
        from frgd.weights.paths import path_of

        chosen = self.host.settings.get("frgd_model")
        if chosen and is_model_dir(chosen):
            return str(Path(chosen))
        files = find_files(FRGD_ENTRY)
        return None if files is None else str(path_of(get_entry(FRGD_ENTRY), files))

    def compute_status(self) -> PaneStatus:
        from frgd.weights import get_entry, missing_message

        note = self.chosen_folder_problem()
        path = self.model_dir()
        if path is not None:
            return PaneStatus(True, note, model=Path(path).name)
        text = (f"{missing_message(get_entry(FRGD_ENTRY))}; or pick a trained model folder with "
                "'Model folder…'.")  # fmt: skip
        return PaneStatus(False, f"{note}\n{text}" if note else text, weights_fixes(FRGD_ENTRY))

    def set_model_folder(self, folder: str | Path) -> str | None:
        """Use ``folder`` as the FRGD model; it is validated before it is stored. Returns the problem (nothing is
        stored) or ``None``."""
        from frgd.diffusion.model import is_model_dir, missing_model_message

        folder = Path(folder)
        if not is_model_dir(folder):
            return missing_model_message(folder)
        self.host.settings.set("frgd_model", str(folder.resolve()))
        backend.clear_caches()
        self.refresh_status()
        return None

    def run(self) -> Job | None:
        """Resample the selected face (a job); the samples are added to its gallery as one command."""
        doc = self.host.doc
        face = doc.face()
        path = self._ready_model(face is not None)
        if path is None:
            return None
        p = self.params()
        index = doc.selected
        req = self._request(index, p, path)

        def done(samples: list) -> None:
            if (i := self.host.face_index(index, face)) >= 0:  # the same face, turned with the photo or not
                cmd = AddSamplesCommand(doc, i, samples)
                self.host.push(cmd)
                self._show_seed(samples, p)
                if cmd.dropped:
                    self.host.status(gallery_full_text([i + 1], cmd.dropped), 30000)

        if req.mask is None and req.base is None and backend.frgd_has_prior(path) is not False:
            self._preview(req, index, face)  # the samples start from the prior's estimate: show it first
        job = self.host.run_job(f"FRGD face {index + 1}", lambda d, pr, c: backend.run_frgd(req, d, pr, c), done,
                                on_turn=backend.turn_invariant)  # fmt: skip
        job.ended.connect(lambda: self.host.show_preview(None))  # done, failed or cancelled: the preview goes
        return job

    def _ready_model(self, has_face: bool) -> str | None:
        """The model folder to sample with after a fresh status check; ``None`` without a face to sample
        (``has_face``) or a model, with the message shown."""
        if not has_face:
            self.host.status("Detect faces first.")
            return None
        self.refresh_status()
        path = self.model_dir()
        if not self._status.ready or path is None:
            self.host.error(self._status.message or "no FRGD model")
            return None
        return path

    def _show_seed(self, samples: list, p: FRGDParams) -> None:
        """Unlocked: show the first new sample's seed, so the user can lock it and reproduce the sample."""
        if samples and not p.lock_seed:
            self.set_param("seed", min(int(samples[0].seed), int(RANGES["seed"][1])))

    def _request(self, index: int, p: FRGDParams, path: str) -> backend.FRGDRequest:
        """The sampling request of the document's face ``index`` with parameters ``p`` and the model at ``path``: its
        mask (an empty one: the whole face), its result as the base, its damage, its references, fresh seeds."""
        doc = self.host.doc
        face = doc.faces[index]
        return backend.FRGDRequest(
            photo=doc.photo,
            face=face,
            number=index + 1,
            mask=face.mask.copy() if float(face.mask.max()) > 0.5 else None,  # an empty mask: the whole face
            base=None if face.applied is None else face.applied.copy(),
            base_mask=face.applied_mask,
            damage=doc.face_damage(index),  # the photo's damage in the face's crop frame; None when none lies there
            references=[r.crop for r in face.references],
            identity_strength=p.identity_strength,
            num_samples=p.samples,
            seeds=p.seeds_for_run(),
            steps=p.steps,
            harmonise=p.harmonise,
            candidates=p.candidates,
            identity_gradient=p.identity_gradient,
            input_quality=p.input_quality,
            model_dir=path,
        )

    def run_all(self) -> Job | None:
        """Resample All Faces: every face sampled like Resample (its own mask, result, damage and references; one
        job, progress over all faces, Esc keeps the faces finished), its samples added to its gallery, and the
        first new sample applied to each face that has no result yet (a face with a chosen result keeps it): one
        undo step."""
        doc = self.host.doc
        path = self._ready_model(bool(doc.faces))
        if path is None:
            return None
        p = self.params()
        faces = list(doc.faces)
        reqs = [self._request(i, p, path) for i in range(len(faces))]

        def done(result: backend.FRGDFacesResult) -> None:
            parts: list[Command] = []
            restored, kept, gone, full, dropped = [], [], 0, [], 0
            for index, (face, samples) in enumerate(zip(faces, result.samples)):
                i = doc.find_face(face, index)  # the same face, turned with the photo or not
                if i < 0 or not samples:
                    gone += i < 0
                    continue
                parts.append(AddSamplesCommand(doc, i, samples))
                if parts[-1].dropped:
                    full.append(i + 1)
                    dropped += parts[-1].dropped
                if doc.faces[i].applied is None:
                    parts.append(AppliedCommand(doc, i, sample_applied(samples[0]), f"Apply face {i + 1}"))
                    restored.append(i + 1)
                else:
                    kept.append(i + 1)
            if parts:
                self.host.push(CompositeCommand(f"Resample all faces ({len(result.samples)})", parts))
            self._show_seed(result.samples[0] if result.samples else [], p)
            text = all_faces_text(len(faces), len(result.samples), restored, kept, gone)
            self.host.status(text + (" " + gallery_full_text(full, dropped) if full else ""), 30000)

        return self.host.run_job("FRGD all faces", lambda d, pr, c: backend.run_frgd_faces(reqs, d, pr, c), done,
                                 on_turn=backend.turn_invariant)  # fmt: skip

    def _preview(self, req: backend.FRGDRequest, index: int, face: Face) -> Job:
        """Queue the prior's estimate of face ``index`` just before its sampling job (the queue runs jobs in order, so
        it arrives first); it is shown while that face is still the selected one. Without a prior: nothing."""

        def show(image: np.ndarray | None) -> None:
            doc = self.host.doc
            i = doc.find_face(face, index)  # the same face, turned with the photo or not
            if image is None or i < 0 or doc.selected != i:
                return
            self.host.show_preview(FacePreview(i, doc.faces[i], image))
            self.host.status(f"FRGD face {i + 1}: preview (prior estimate); samples follow", 0)

        return self.host.run_job(f"FRGD face {index + 1} preview",
                                 lambda d, _p, c: backend.frgd_preview(req, d, c), show,
                                 on_turn=backend.turn_invariant)  # fmt: skip


def all_faces_text(n: int, finished: int, restored: list[int], kept: list[int], gone: int) -> str:
    """The status after Resample All Faces: how many of ``n`` faces were sampled (``finished``: fewer after a
    cancel), which were restored with their first sample, which kept their result, how many were detected again."""

    def numbers(xs: list[int]) -> str:
        return ", ".join(str(x) for x in xs)

    text = [f"Resampled {finished} of {n} faces" + (" (cancelled)" if finished < n else "") + "."]
    if restored:
        text.append(f"Applied the first new sample to face{'s' if len(restored) > 1 else ''} {numbers(restored)}.")
    if kept:
        text.append(f"Face{'s' if len(kept) > 1 else ''} {numbers(kept)} kept {'their' if len(kept) > 1 else 'its'} "
                    "result; the new samples are in the gallery.")  # fmt: skip
    if gone:
        text.append(f"{gone} result{'s' if gone > 1 else ''} dropped: the faces were detected again meanwhile.")
    return " ".join(text)


def gallery_full_text(faces: list[int], dropped: int) -> str:
    """The status when new samples filled the galleries of face numbers ``faces``: ``dropped`` oldest entries went
    (:data:`~.document.MAX_PER_FACE`)."""
    which = f"face{'s' if len(faces) > 1 else ''} {', '.join(map(str, faces))}"
    return (f"A gallery holds {MAX_PER_FACE} entries: {dropped} oldest of {which} went to make room (never a result; "
            "Undo brings them back).")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- GFPGAN
class GFPGANPane(Pane):
    """GFPGAN v1.3/v1.4 on every face, pasted over the photo upscaled ×1/2/4 (a pane result)."""

    name = "GFPGAN"
    VERSIONS = backend.GFPGAN_VERSIONS
    SCALES = (1, 2, 4)

    def __init__(self, host: PaneHost) -> None:
        super().__init__(host)
        saved = host.settings.get("gfpgan_model")
        self.version = saved if saved in self.VERSIONS else self.VERSIONS[0]
        self.weight = 0.5
        self.scale = 2

    def entry(self) -> str:
        return f"gfpgan-{self.version}"

    def set_version(self, version: str) -> None:
        if version not in self.VERSIONS:
            raise ValueError(f"unknown GFPGAN version {version!r}")
        self.version = version
        self.host.settings.set("gfpgan_model", version)
        if not self.refresh_status():
            self.changed.emit()

    def compute_status(self) -> PaneStatus:
        problem = backend.gfpgan_problem(self.version)
        if problem is None:
            return PaneStatus(True, model=f"GFPGAN{self.version}")
        return PaneStatus(False, problem, weights_fixes(self.entry()))

    def result_name(self) -> str:
        return f"GFPGAN {self.version} ×{self.scale}"

    def run(self) -> Job | None:
        doc = self.host.doc
        if doc.photo is None:
            return None
        self.refresh_status()
        if not self._status.ready:
            self.host.error(self._status.message or "GFPGAN is not available")
            return None
        photo, faces = doc.photo, list(doc.faces)
        version, weight, scale, name = self.version, float(self.weight), int(self.scale), self.result_name()
        damage = doc.damage if doc.damage_marked() else None  # replaced on edits, never written: the job may hold it
        params = {"model": f"GFPGAN{version}", "method": "gfpgan", "weight": weight, "upscale": scale,
                  "damage": round(doc.damage_share(), 6)}  # fmt: skip
        min_score = float(self.host.settings.get("face_min_score"))

        def job(device, progress, cancel):
            return backend.run_gfpgan(photo, faces, version, weight, scale, device, progress, cancel, min_score,
                                      damage)  # fmt: skip

        def done(img) -> None:
            self._store_result(name, img, params)
            self.host.show_result(name)

        return self.host.run_job(f"GFPGAN {version}", job, done, on_turn=backend.turned_image)


# ------------------------------------------------------------------------------------------------ super-resolution
SLOW_SR_SECONDS = 60.0
"""On the CPU, an upscale expected to take longer asks first (the fast model, run anyway, or cancel)."""


class SRPane(Pane):
    """Whole-photo upscaling with a chosen model and scale; the result can become the faces' background."""

    name = "Super-resolution"
    prefix = "SR"

    def __init__(self, host: PaneHost) -> None:
        super().__init__(host)
        self.models = backend.sr_models()
        names = [m.name for m in self.models]
        saved = host.settings.get("sr_model")
        self.model = saved if saved in names else (names[0] if names else "")
        self.scale = self._valid_scale(int(host.settings.get("sr_scale")))
        self.ask_slow: Callable[[backend.SREstimate], str] = lambda _e: "run"
        """``ask_slow(estimate) -> "fast" | "run" | "cancel"`` (the UI's question; injectable in tests)."""

    def info(self, name: str | None = None) -> backend.UpscalerInfo | None:
        name = self.model if name is None else name
        return next((m for m in self.models if m.name == name), None)

    def _valid_scale(self, scale: int) -> int:
        info = self.info()
        if info is None:
            return scale
        return scale if scale in info.scales else info.scales[0]

    def set_model(self, name: str) -> None:
        if self.info(name) is None:
            raise ValueError(f"unknown upscaler {name!r}")
        self.model = name
        self.host.settings.set("sr_model", name)
        self.scale = self._valid_scale(self.scale)
        if not self.refresh_status():
            self.changed.emit()

    def set_scale(self, scale: int) -> None:
        self.scale = self._valid_scale(int(scale))
        self.host.settings.set("sr_scale", self.scale)

    def compute_status(self) -> PaneStatus:
        from frgd.sr.registry import SR_METHODS

        if not self.models:
            return PaneStatus(False, "Super-resolution is not available: no upscaler is registered.")
        problem = backend.sr_status([self.model])[self.model]
        if problem is None:
            return PaneStatus(True, model=self.model)
        entry = SR_METHODS[self.model].weights
        return PaneStatus(False, problem, weights_fixes(entry) if entry else ())

    def result_name(self) -> str:
        return f"{self.prefix} {self.model} ×{self.scale}"

    def run(self, check_time: bool = True) -> Job | None:
        """Upscale the photo; with ``check_time`` a learned model first gets its expected time on this device (a
        job) and, when slow on the CPU, the user chooses the fast model, to run anyway, or to cancel."""
        doc = self.host.doc
        info = self.info()
        if info is None or doc.photo is None:
            return None
        self.refresh_status()
        if not self._status.ready:
            self.host.error(self._status.message or f"{info.name} is not available")
            return None
        from frgd.sr.registry import SR_METHODS

        if check_time and SR_METHODS[info.name].weights is not None:
            h, w = doc.photo.shape[:2]
            name, scale = info.name, self.scale

            def decide(est: backend.SREstimate | None) -> None:
                slow = est is not None and est.seconds >= SLOW_SR_SECONDS
                answer = self.ask_slow(est) if slow else "run"
                if answer == "fast" and est.alternative:
                    self.set_model(est.alternative)
                elif answer != "run":
                    self.host.status("Upscale cancelled.")
                    return
                self.run(check_time=False)

            return self.host.run_job(f"Estimate {name} ×{scale}",
                                     lambda d, _p, _c: backend.sr_estimate(name, scale, h, w, d), decide,
                                     on_turn=backend.turn_invariant)  # fmt: skip
        scale = int(self.scale)
        self.host.settings.set("sr_scale", scale)
        photo, name = doc.photo, self.result_name()
        damage = doc.damage if doc.damage_marked() else None  # replaced on edits, never written: the job may hold it
        params = {"model": info.name, "scale": scale, "damage": round(doc.damage_share(), 6)}
        if damage is not None and doc.repair_current():  # the fill the Result shows, not made again
            photo, damage = doc.repaired, None

        def done(img) -> None:
            self._store_result(name, img, params)
            self.host.show_result(name)

        def job(device, progress, cancel):
            return backend.run_sr(photo, info.name, scale, device, progress, cancel, damage)

        return self.host.run_job(f"Upscale ×{scale} ({info.name})", job, done, on_turn=backend.turned_image)

    def results(self) -> list[str]:
        return [n for n in self.host.doc.pane_results if n.startswith(self.prefix + " ")]

    def use_as_background(self, on: bool) -> None:
        """Paste the restored faces onto the latest SR result (``on``) or back onto the photo (one command)."""
        doc = self.host.doc
        names = self.results()
        target = (names[-1] if names else None) if on else None
        if target != doc.background and (on or (doc.background or "").startswith(self.prefix + " ")):
            self.host.push(BackgroundCommand(doc, target))
