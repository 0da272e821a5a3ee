"""``frgd eval faces`` and ``frgd bench enhance``: FRGD quality on degraded validation faces, and sampling speed.

Evaluation (:func:`evaluate_faces`): faces128 validation crops (identity-disjoint from training) are degraded
deterministically (:func:`frgd.degrade.fixed_degradation`: exact ``scale`` downscale, optional preset blur/noise/JPEG,
noise seeded per face), restored by FRGD without a reference and with a reference (another photo of the same person
from ``labels.csv``) for each slider value, and compared with the ground truth:

* ``psnr``: RGB PSNR (0..255, 8-bit rounded outputs); ``ssim``: SSIM on Y (BT.601), no shave;
* ``detail``: fine-detail energy relative to the ground truth (:mod:`frgd.metrics.detail`; geometric mean over the
  faces): 1 = as much detail as the true face; smeared faces read far below 1, noise and cracks add to it;
* ``judge_similarity``: cosine similarity of the independent judge network's embeddings (``frgd.identity.judge``,
  evaluation only, never used for guidance) of the result and the ground truth;
* ``guidance_similarity`` (with a reference): the guidance encoder's similarity of the result to the reference.

Bicubic upscaling of the degraded face is the baseline row; with the FRGD prior installed (:mod:`frgd.diffusion.prior`,
the sampler's default base and the editor's preview) its estimate alone is the ``prior`` row; the reference photo
itself is reported as a judge-only row (how similar a *different* photo of the person is to the ground truth).

Every judged row keeps ``judge_per_face`` (the mean over ``repeats`` samples of each face), so that
:func:`slider_gains` reports the paired change between consecutive slider values with its standard error, and
:func:`bar_status` evaluates issue 10's bar on the rows (the sample grid is the one part left to the eye).

Benchmark (:func:`bench_sampler`): seconds per sample for 1 and ``N`` samples in one batch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import describe_device, resolve_device
from ..diffusion.sampling.guidance import IDENTITY_GRADIENT, RESAMPLE
from ..diffusion.sampling.pipeline import (
    BACK_PROJECTION,
    DEFAULT_IDENTITY_STRENGTH,
    DEFAULT_SCHEDULER,
    DEFAULT_STEPS,
    FRGDPipeline,
    check_candidates,
    prefers_channels_last,
)
from ..errors import InputError
from ..tensor import image_to_tensor, tensor_to_image

logger = logging.getLogger(__name__)

REPEAT_SEED_STRIDE = 100_000
"""Repeat ``r`` of pair ``k`` samples with seed ``seed + k + r * REPEAT_SEED_STRIDE`` (repeat 0: a single run's)."""
ROUND_PRESET = "round_frgd128.json"


# ----------------------------------------------------------------------------------------------------------- data
def select_pairs(data_dir: str | Path, limit: int, split: str = "val") -> list[tuple[str, str, str]]:
    """Deterministic ``(target_file, reference_file, identity)`` pairs from ``labels.csv``: round-robin over the
    sorted identities with at least two images; round ``k`` uses image ``k`` as the target and image ``k+1`` (cyclic)
    as the reference, so each face appears once as a target."""
    from ..diffusion.training.data import read_labels

    by_id: dict[str, list[str]] = defaultdict(list)
    for r in read_labels(data_dir):
        if r.split == split:
            by_id[r.identity].append(r.file)
    ids = sorted(k for k, v in by_id.items() if len(v) >= 2)
    if not ids:
        raise InputError(f"no identity with two {split} images in {data_dir}/labels.csv")
    pairs: list[tuple[str, str, str]] = []
    k = 0
    while len(pairs) < limit:
        added = False
        for ident in ids:
            files = sorted(by_id[ident])
            if k < len(files):
                pairs.append((files[k], files[(k + 1) % len(files)], ident))
                added = True
                if len(pairs) >= limit:
                    break
        if not added:
            break
        k += 1
    return pairs


def degrade_faces(
    gts: list[np.ndarray], scale: float, preset: str = "clean", seed: int = 0, first: int = 0
) -> list[np.ndarray]:
    """The deterministic inputs of the evaluation: each ground truth ``(128, 128, 3)`` uint8 degraded by
    :func:`frgd.degrade.fixed_degradation` (noise seeded per face with ``[seed, first + i]``, i.e. by pair index when
    ``gts`` are pairs ``first, first + 1, ...``) -> ``(h, w, 3)`` float32."""
    from ..degrade import degrade_image, fixed_degradation

    cfg = fixed_degradation(scale, preset=preset)
    return [degrade_image(g, np.random.default_rng([seed, first + i]), cfg).lq for i, g in enumerate(gts)]


def reference_embeddings(pipe: FRGDPipeline, refs: list[np.ndarray], batch: int = 32) -> torch.Tensor:
    """The guidance encoder's unit embedding of each reference photo ``(H, W, 3)`` uint8 -> ``(N, D)`` (one per pair,
    not averaged), encoded ``batch`` at a time."""
    ref_t = torch.cat([image_to_tensor(r) for r in refs])
    chunks = [ref_t[i : i + batch] for i in range(0, len(refs), batch)]
    return torch.cat([pipe.encode_references(c, per_sample=True) for c in chunks])


def upscale_faces(lqs: list[np.ndarray], size: int, mode: str = "bicubic") -> list[np.ndarray]:
    """Each degraded face resized to ``size`` (``bicubic``: the baseline and the sampler's default base; ``nearest``:
    the grid's input column) -> ``(size, size, 3)`` uint8."""
    kw = {"align_corners": False} if mode == "bicubic" else {}
    return [tensor_to_image(F.interpolate(image_to_tensor(lq), size=(size, size), mode=mode, **kw)[0]) for lq in lqs]


FACE_METRICS = ("psnr", "ssim", "detail")
"""The keys of :func:`face_metrics` (``None`` in a row with no image of its own, e.g. the reference photo's)."""


def face_metrics(outs: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    """Of ``outs`` against ``gts`` (uint8 ``(H, W, 3)``, pairs in order): mean RGB PSNR (finite values; 8-bit), mean
    SSIM on Y, and ``detail``, the geometric mean of the fine-detail energy relative to the ground truth
    (:func:`frgd.metrics.detail_score`: 1 = as much detail as the true face, mush far below)."""
    from ..metrics import detail_score, psnr, ssim_y

    ps = [psnr(o.astype(np.float64), g.astype(np.float64)) for o, g in zip(outs, gts)]
    values = (
        float(np.mean([p for p in ps if math.isfinite(p)])),
        float(np.mean([ssim_y(o, g) for o, g in zip(outs, gts)])),
        detail_score(outs, gts),
    )
    return dict(zip(FACE_METRICS, values, strict=True))


def grid_image(columns: list[list[np.ndarray]], rows: int) -> np.ndarray:
    """``rows`` faces by ``len(columns)`` images (each column a list of ``(H, W, 3)`` uint8) -> one uint8 image."""
    return np.concatenate([np.concatenate([c[i] for c in columns], axis=1) for i in range(rows)], axis=0)


# ----------------------------------------------------------------------------------------------------------- eval
def evaluate_faces(
    data_dir: str | Path,
    model_dir: str | Path | None = None,
    *,
    pipeline: FRGDPipeline | None = None,
    scale: float = 8.0,
    preset: str = "clean",
    limit: int = 50,
    first: int = 0,
    sliders: list[float] | tuple[float, ...] = (0.0, 0.5, 1.0),
    steps: int = DEFAULT_STEPS,
    scheduler: str = DEFAULT_SCHEDULER,
    harmonise: int | None = None,
    use_prior: bool = True,
    back_projection: bool = BACK_PROJECTION,
    prior_share: float | None = None,
    batch: int = 8,
    seed: int = 0,
    repeats: int = 1,
    candidates: int = 1,
    identity_gradient: str | None = None,
    judge: bool = True,
    device: str | torch.device = "auto",
    grid: str | Path | None = None,
    grid_faces: int = 4,
    progress=None,
    cancel=None,
) -> dict[str, Any]:
    """Evaluate FRGD on ``limit`` degraded validation faces; returns a JSON-able dict (see the module docstring).

    ``first``: skip the first ``first`` pairs of :func:`select_pairs` (a tuning set disjoint from the default one).
    ``repeats``: samples per face and setting (seeds :data:`REPEAT_SEED_STRIDE` apart): PSNR/SSIM average all of them,
    ``judge_per_face`` averages each face's; more repeats make :func:`slider_gains` less noisy.
    ``candidates``: with a reference, each sample is the most reference-like of this many (the pipeline's
    ``candidates``; rows without a reference have nothing to choose by and sample once).
    ``back_projection``: the sampler's (:func:`frgd.diffusion.sampling.guidance.back_project`; on by default).
    ``prior_share``: the sampler's (:mod:`frgd.diffusion.content`; ``None``: estimated per face).
    ``grid``: also write a PNG of the first ``grid_faces`` faces, one row each: input (nearest-upscaled), bicubic,
    one sample with the reference per slider value (each column with its own seeds), ground truth.
    """
    from ..degrade import fixed_degradation
    from ..diffusion.training.data import read_image
    from ..jobs import check_cancel, report
    from ..restore import load_frgd_pipeline

    if limit < 1 or batch < 1 or repeats < 1 or first < 0:
        raise InputError("limit, batch and repeats must be positive, first non-negative")
    check_candidates(candidates)  # before any sampling (rows without a reference sample once)
    t0 = time.perf_counter()
    root = Path(data_dir)
    pipe = pipeline or load_frgd_pipeline(model_dir, device=device)
    dev = pipe.device
    pairs = select_pairs(root, first + limit)[first:]
    gts = [read_image(root / t) for t, _, _ in pairs]
    refs = [read_image(root / r) for _, r, _ in pairs]
    lqs = degrade_faces(gts, scale, preset, seed, first)
    size = pipe.size
    if judge:
        from ..identity.judge import Judge

        judge_net = Judge()  # evaluation only; MissingWeightsError (with FRGD_JUDGE hint) when absent
    else:
        judge_net = None

    gt_emb = None if judge_net is None else judge_net.embed(torch.cat([image_to_tensor(x) for x in gts]))

    def judge_sims(imgs_u8: list[np.ndarray]) -> list[float] | None:
        """Per-face judge similarity to the ground truth; ``imgs_u8`` holds ``r`` repeats of the faces in order
        (face ``k`` of repeat ``j`` at ``j * n + k``), averaged per face."""
        if judge_net is None:
            return None
        emb = judge_net.embed(torch.cat([image_to_tensor(x) for x in imgs_u8]))
        sims = (emb.view(-1, len(gts), gt_emb.shape[1]) * gt_emb).sum(2)
        return sims.mean(0).tolist()

    rows: list[dict[str, Any]] = []

    def add_row(method: str, outs: list[np.ndarray] | None, slider=None, reference=None, guid=None) -> None:
        row: dict[str, Any] = {"method": method, "slider": slider, "reference": reference}
        if outs is not None:
            row.update(face_metrics(outs, gts * (len(outs) // len(gts))))
            sims = judge_sims(outs)
        else:
            row.update(dict.fromkeys(FACE_METRICS))
            sims = judge_sims(refs)
        row["judge_similarity"] = None if sims is None else float(np.mean(sims))
        row["judge_per_face"] = None if sims is None else [round(float(v), 5) for v in sims]
        row["guidance_similarity"] = None if guid is None else float(np.mean(guid))
        rows.append(row)

    # bicubic baseline = the sampler's default base
    bic = upscale_faces(lqs, size)
    if gts[0].shape[0] != size:
        raise InputError(f"the model works at {size} px but the faces are {gts[0].shape[0]} px")
    add_row("bicubic", bic)
    prior_on = use_prior and pipe.prior is not None
    if prior_on:  # the prior's estimate alone: FRGD's base, the editor's preview
        est = torch.cat([pipe.preview(image_to_tensor(lq)) for lq in lqs])
        add_row("prior", [tensor_to_image(x) for x in est])
    if judge:
        add_row("reference photo (judge only)", None)

    ref_emb = None
    total = len(sliders) * 2 * repeats * math.ceil(len(pairs) / batch)
    done = 0
    for with_ref in (False, True):
        if with_ref:
            ref_emb = reference_embeddings(pipe, refs)
        for s in sliders:
            outs: list[np.ndarray] = []
            guid: list[float] = []
            for rep, i in ((rep, i) for rep in range(repeats) for i in range(0, len(pairs), batch)):
                check_cancel(cancel)
                deg = torch.cat([image_to_tensor(x) for x in lqs[i : i + batch]])
                n = deg.shape[0]
                res = pipe(
                    deg,
                    references=ref_emb[i : i + n] if with_ref else None,
                    reference_per_sample=with_ref,
                    identity_strength=float(s),
                    num_samples=n,
                    # pair k always gets seed + k (+ the repeat's stride)
                    seeds=[seed + first + j + rep * REPEAT_SEED_STRIDE for j in range(i, i + n)],
                    steps=steps,
                    scheduler=scheduler,
                    harmonise=harmonise,
                    use_prior=use_prior,
                    candidates=candidates if with_ref else 1,
                    identity_gradient=identity_gradient,
                    back_projection=back_projection,
                    prior_share=prior_share,
                )
                outs.extend(tensor_to_image(x) for x in res.images)
                if res.identity_scores is not None:
                    guid.extend(res.identity_scores.tolist())
                done += 1
                report(progress, done, total, f"s={s} {'ref' if with_ref else 'no-ref'}")
            add_row(f"frgd s={s:g} {'ref' if with_ref else 'no-ref'}", outs, s, with_ref, guid or None)
            logger.info("%s", rows[-1])
    grid_info = None
    if grid is not None:
        check_cancel(cancel)
        grid_info = _write_grid(
            grid, pipe, lqs, bic, gts, ref_emb, sliders, grid_faces, seed=seed, steps=steps, scheduler=scheduler,
            harmonise=harmonise, use_prior=use_prior, identity_gradient=identity_gradient,
            back_projection=back_projection, prior_share=prior_share,
        )  # fmt: skip
    return {
        "grid": grid_info,
        "data": str(root),
        "split": "val",
        "n_faces": len(pairs),
        "first_pair": first,
        "scale": scale,
        "preset": preset,
        "degradation": fixed_degradation(scale, preset=preset).name,
        "model": pipe.name,
        "steps": steps,
        "scheduler": scheduler,
        "harmonise": RESAMPLE if harmonise is None else harmonise,
        "prior": pipe.prior_name if prior_on else None,
        "back_projection": bool(back_projection),
        "prior_share": "auto" if prior_share is None else prior_share,
        "prior_share_estimator": pipe.prior_share_net is not None,
        "seed": seed,
        "repeats": repeats,
        "candidates": candidates,
        "identity_gradient": identity_gradient or IDENTITY_GRADIENT,
        "device": describe_device(dev),
        "metrics": {
            "psnr": "RGB, 0..255, outputs rounded to 8 bits",
            "ssim": "Y (BT.601), Gaussian 11x11",
            "detail": "luma energy at 1/8-1/2 cycles/px over the ground truth's (Hann window), geometric mean",
            "judge_similarity": "cosine of the judge embeddings of result and ground truth (evaluation only)",
            "guidance_similarity": "guidance encoder cosine of result and reference",
            "judge_per_face": "judge_similarity of each face (mean over its repeats)",
        },
        "rows": rows,
        "slider_gains": slider_gains(rows),
        "bar": bar_status(rows),
        "seconds": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------------------------------------- the bar
def paired_change(d: np.ndarray) -> tuple[float, float | None, int, int]:
    """``(mean, se, up, n)`` of per-face paired differences ``d`` ``(n,)``: the standard error is
    ``std(ddof=1) / sqrt(n)`` (``None`` for one face), ``up`` the faces whose difference is positive."""
    d = np.asarray(d, dtype=np.float64)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else None
    return float(d.mean()), se, int((d > 0).sum()), int(len(d))


def slider_gains(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired change of the per-face judge similarity between consecutive slider values, with and without a
    reference: ``gain`` (mean over faces of ``sim(b) - sim(a)``), ``se`` (its standard error, ``std(ddof=1) /
    sqrt(n)``; ``None`` for one face) and ``faces_up`` (faces whose similarity rose). Empty without judged rows."""
    out = []
    for ref in (False, True):
        frgd = sorted(
            (r for r in rows if r.get("slider") is not None and r.get("reference") is ref and r.get("judge_per_face")),
            key=lambda r: r["slider"],
        )
        for a, b in zip(frgd, frgd[1:]):
            d = np.asarray(b["judge_per_face"], dtype=np.float64) - np.asarray(a["judge_per_face"], dtype=np.float64)
            mean, se, up, n = paired_change(d)
            out.append(
                {
                    "reference": ref,
                    "from": a["slider"],
                    "to": b["slider"],
                    "gain": round(mean, 5),
                    "se": None if se is None else round(se, 5),
                    "faces_up": up,
                    "faces": n,
                }
            )
    return out


def bar_status(rows: list[dict[str, Any]]) -> dict[str, bool | None]:
    """Issue 10's bar on evaluation rows (``None``: not measurable here, e.g. without the judge or with one slider).

    * ``reference_above_no_reference``: judge with a reference > without, at every slider value above 0 (at 0 the
      reference is ignored by design);
    * ``no_reference_above_bicubic``: judge without a reference > bicubic, at every slider value;
    * ``rises_with_slider``: with a reference, the judge's mean paired gain is positive at every slider step
      (:func:`slider_gains`);
    * ``content_end_psnr_not_below_bicubic``: PSNR at ``s = 0`` (the content end), with and without a reference, is
      at least bicubic's (``None`` when the rows have no ``s = 0``);
    * ``holds``: all four are true. The sample grid ("faces, not mush") is left to the eye.
    """
    bic = next((r for r in rows if r["method"] == "bicubic"), None)
    frgd = [r for r in rows if r.get("slider") is not None]
    judged = bic is not None and bic.get("judge_similarity") is not None and bool(frgd)
    by = {(r["slider"], r["reference"]): r for r in frgd}
    above0 = sorted({s for s, _ in by if s > 0})
    status: dict[str, bool | None] = {
        "reference_above_no_reference": None,
        "no_reference_above_bicubic": None,
        "rises_with_slider": None,
        "content_end_psnr_not_below_bicubic": None,
    }
    if judged and above0 and all((s, f) in by for s in above0 for f in (False, True)):
        status["reference_above_no_reference"] = all(
            by[(s, True)]["judge_similarity"] > by[(s, False)]["judge_similarity"] for s in above0
        )
    no_ref = [r for r in frgd if r["reference"] is False]
    if judged and no_ref:
        status["no_reference_above_bicubic"] = all(r["judge_similarity"] > bic["judge_similarity"] for r in no_ref)
    steps = [g for g in slider_gains(rows) if g["reference"]]
    if steps:
        status["rises_with_slider"] = all(g["gain"] > 0 for g in steps)
    content_end = [r for r in frgd if r["slider"] == 0]
    if bic is not None and content_end:
        status["content_end_psnr_not_below_bicubic"] = all(r["psnr"] >= bic["psnr"] for r in content_end)
    status["holds"] = all(v is True for v in status.values())
    return status


# ----------------------------------------------------------------------------------------------------------- bench
BENCH_CONFIGS = {"round": ROUND_PRESET, "tiny": None}
"""``frgd bench enhance --config``: the round-sized model (the default, the model that ships) or the tiny test
config."""


def preset_model_config(preset: str = ROUND_PRESET) -> tuple[dict[str, Any], str]:
    """The ``model`` section of a preset (default ``round_frgd128.json``, the shipped model's) and where it was
    found."""
    candidates = []
    try:
        from frgd_resources import resource_path

        candidates.append(resource_path("presets", preset))
    except ImportError:  # pragma: no cover - resources package always ships with the source tree
        pass
    here = Path(__file__).resolve()
    candidates += [p / "presets" / preset for p in here.parents[:4]]
    candidates += [p / "configs" / preset for p in here.parents[:4]]
    for c in candidates:
        if c.is_file():
            raw = json.loads(c.read_text())
            cfg = raw.get("model", raw)
            if isinstance(cfg, dict) and "config" in cfg and isinstance(cfg["config"], dict):
                cfg = cfg["config"]
            shown = f"frgd_resources/presets/{c.name}" if c.parent.name == "presets" else str(c)
            return dict(cfg), shown
    raise InputError(f"training preset {preset} not found (looked in {', '.join(map(str, candidates[:3]))})")


def build_bench_pipeline(
    model_dir: str | Path | None, config: str | None, device: torch.device, identity_encoder=None
) -> tuple[FRGDPipeline, str]:
    """A pipeline for timing: a trained folder, or a random-weight model of a :data:`BENCH_CONFIGS` config."""
    from ..archs.frgd_unet_arch import FRGDUNet, tiny_config
    from ..diffusion.model import make_train_scheduler

    if model_dir is not None:
        return FRGDPipeline.from_pretrained(model_dir, device=device, identity_encoder=identity_encoder), str(model_dir)
    config = config or "round"
    if config not in BENCH_CONFIGS:
        raise InputError(f"unknown bench config {config!r}; choose one of {', '.join(BENCH_CONFIGS)}")
    if BENCH_CONFIGS[config] is None:
        cfg, desc = tiny_config(sample_size=128), "tiny config, random weights (timing only)"
    else:
        cfg, src = preset_model_config(BENCH_CONFIGS[config])
        desc = f"{config} config from {src}, random weights (timing only)"
    known = set(FRGDUNet.extract_init_dict(cfg)[0]) if hasattr(FRGDUNet, "extract_init_dict") else set(cfg)
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in known}
    torch.manual_seed(0)
    model = FRGDUNet(**cfg)
    sched = make_train_scheduler(prediction_type=model.config.prediction_type)
    pipe = FRGDPipeline(
        model, sched, identity_encoder, device=device, name=config, channels_last=prefers_channels_last(device)
    )
    return pipe, desc


def _peak_memory_mib(dev: torch.device) -> float:
    """Peak memory in MiB: CUDA ``max_memory_allocated``, else the process's peak resident set size."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    except (ImportError, OSError):  # pragma: no cover - Windows
        return float("nan")


def _loadavg() -> float:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):  # not available on Windows
        return float("nan")


def bench_sampler(
    model_dir: str | Path | None = None,
    config: str | None = "round",
    *,
    steps: int = DEFAULT_STEPS,
    samples: int = 4,
    scheduler: str = DEFAULT_SCHEDULER,
    harmonise: int | None = None,
    use_prior: bool = True,
    identity_strength: float = DEFAULT_IDENTITY_STRENGTH,
    with_reference: bool = True,
    repeats: int = 1,
    device: str | torch.device = "cpu",
    identity_encoder=None,
    identity_gradient: str | None = None,
    back_projection: bool = BACK_PROJECTION,
    prior_share: float | None = None,
) -> dict[str, Any]:
    """Seconds per sample for 1 and ``samples`` samples (one batch) at ``steps``, where the time goes (UNet vs
    identity-guidance encoder), peak memory; a JSON-able dict. A warm-up run (1 step) precedes the timed runs.
    ``identity_gradient``: time identity guidance with this gradient instead of the default
    (:data:`frgd.diffusion.sampling.guidance.IDENTITY_GRADIENTS`)."""
    dev = resolve_device(device)
    load_before = _loadavg()
    pipe, desc = build_bench_pipeline(model_dir, config, dev, identity_encoder)
    n_params = sum(p.numel() for p in pipe.model.parameters())
    ref = None
    if with_reference:
        g = torch.Generator().manual_seed(1)
        ref = F.normalize(torch.randn(1, pipe.identity_dim, generator=g), dim=1)
        _ = pipe.identity_encoder  # load outside the timed region
    deg = torch.rand(1, 3, pipe.size // 8, pipe.size // 8, generator=torch.Generator().manual_seed(2))
    common = dict(
        references=ref, identity_strength=identity_strength, scheduler=scheduler, harmonise=harmonise,
        use_prior=use_prior, identity_gradient=identity_gradient, back_projection=back_projection,
        prior_share=prior_share,
    )  # fmt: skip
    pipe(deg, num_samples=1, seeds=[0], steps=2, **common)  # warm-up (allocator, kernels)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    runs = []
    for n in sorted({1, int(samples)}):
        best: dict[str, Any] = {"seconds": math.inf}
        for _ in range(max(1, repeats)):
            c0 = pipe.model_calls
            t = time.perf_counter()
            c = time.process_time()
            res = pipe(deg, num_samples=n, seeds=list(range(n)), steps=steps, **common)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            sec = time.perf_counter() - t
            if sec < best["seconds"]:
                best = {
                    "seconds": sec,
                    "cpu_seconds": time.process_time() - c,
                    "model_calls": pipe.model_calls - c0,
                    "timings": res.timings,
                    "weights": res.weights.as_dict(),
                }
        tm = best["timings"]
        runs.append(
            {
                "num_samples": n,
                "seconds": round(best["seconds"], 3),
                "seconds_per_sample": round(best["seconds"] / n, 3),
                "cpu_seconds": round(best["cpu_seconds"], 3),
                "unet_seconds": round(tm["model"], 3),
                "guidance_seconds": round(tm["guidance"], 3),
                "model_calls": best["model_calls"],
                "weights": best["weights"],
            }
        )
    return {
        "benchmark": "frgd sampling",
        "model": desc,
        "parameters": n_params,
        "device": describe_device(dev),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "channels_last": pipe.channels_last,
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(_loadavg(), 2),
        "steps": steps,
        "scheduler": scheduler,
        "identity_strength": identity_strength,
        "with_reference": with_reference,
        "identity_encoder": pipe.identity_backend if with_reference else None,
        "peak_memory_mib": round(_peak_memory_mib(dev), 1),
        "runs": runs,
        "note": (
            "best of --repeats after a warm-up; random weights give the same speed as trained ones (outputs are "
            "meaningless). unet_seconds = model forwards (CFG-batched), guidance_seconds = identity encoder "
            "forward+backward (with the denoiser gradient, the default, also the backward pass through the UNet) and "
            "content projection; cpu_seconds = process CPU time. peak_memory_mib: CUDA max "
            "allocated, or the process's peak RSS on CPU (includes the identity encoder and Python)"
        ),
    }


__all__ = [
    "BENCH_CONFIGS",
    "bench_sampler",
    "REPEAT_SEED_STRIDE",
    "bar_status",
    "build_bench_pipeline",
    "slider_gains",
    "degrade_faces",
    "evaluate_faces",
    "grid_image",
    "face_metrics",
    "upscale_faces",
    "preset_model_config",
    "select_pairs",
]


def _write_grid(
    path: str | Path,
    pipe: FRGDPipeline,
    lqs: list[np.ndarray],
    bic: list[np.ndarray],
    gts: list[np.ndarray],
    ref_emb: torch.Tensor | None,
    sliders: list[float] | tuple[float, ...],
    n: int,
    *,
    seed: int,
    steps: int,
    scheduler: str,
    harmonise: int | None = None,
    use_prior: bool = True,
    identity_gradient: str | None = None,
    back_projection: bool = BACK_PROJECTION,
    prior_share: float | None = None,
) -> dict[str, Any]:
    """Sample grid (rows = faces; columns = input, bicubic, [prior,] one sample per slider value, ground truth) ->
    PNG."""
    from ..io import Provenance, save_image

    k = max(1, min(n, len(gts)))
    size = pipe.size
    deg = torch.cat([image_to_tensor(x) for x in lqs[:k]])
    columns: list[list[np.ndarray]] = [upscale_faces(lqs[:k], size, "nearest"), bic[:k]]
    prior_on = use_prior and pipe.prior is not None
    if prior_on:
        columns.append([tensor_to_image(x) for x in pipe.preview(deg)])
    seeds_per_column = []
    for si, s in enumerate(sliders):
        seeds = [seed + 1000 * (si + 1) + j for j in range(k)]  # a different seed in every column
        res = pipe(
            deg,
            references=None if ref_emb is None else ref_emb[:k],
            reference_per_sample=ref_emb is not None,
            identity_strength=float(s),
            num_samples=k,
            seeds=seeds,
            steps=steps,
            scheduler=scheduler,
            harmonise=harmonise,
            use_prior=use_prior,
            identity_gradient=identity_gradient,
            back_projection=back_projection,
            prior_share=prior_share,
        )
        columns.append([tensor_to_image(x) for x in res.images])
        seeds_per_column.append(seeds)
    columns.append(gts[:k])
    img = grid_image(columns, k)
    labels = ["input", "bicubic", *(["prior"] if prior_on else []), *[f"frgd s={s:g}" for s in sliders], "ground truth"]
    prov = Provenance(
        model=pipe.name,
        seed=seed,
        parameters={"columns": labels, "seeds": seeds_per_column, "steps": steps, "scheduler": scheduler},
        identity_changed=True,
    )
    out = save_image(path, img, provenance=prov, overwrite=True)
    return {"path": str(out), "columns": labels, "faces": k, "seeds": seeds_per_column}
