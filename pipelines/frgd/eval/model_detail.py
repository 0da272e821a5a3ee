"""The FRGD model's own fine detail, sampler aside: how much it keeps, and how much it draws where there is none.

For each validation face, its degraded input (the evaluation's deterministic degradation at ``scale``) and one fixed
noise draw per timestep ``t``, the model's clean estimate ``x0_hat`` (one call, the reference's embedding, whole-face
restoration) is taken from two starts:

* ``kept``: the *true face* noised to ``t`` (as in training): how much of the detail that is there the model keeps;
* ``invented``: the *bicubic upscale of the input* noised to ``t`` (a smooth start, as sampling has): how much
  detail the model draws where ``x_t`` has none.

Each row reports :func:`~frgd.metrics.detail.detail_score` (1 = the true face's fine detail) and PSNR against the
true face. After round 8 the evaluation's ``detail`` fell while PSNR rose; this located it in the weights
(``invented`` down 16-25 % at x8, ``kept`` unchanged: docs/training_rounds.md, "Why detail fell in round 8"). The
training round records it after every round (``round.json`` ``val.model_detail``), so the trend is read without a
CPU run; ``scripts/measure_model_detail.py`` compares model folders with it on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

MODEL_DETAIL_TIMESTEPS = (150, 300, 500)
"""Training timesteps probed (of 1000): where the model decides the fine detail."""
PROBES = ("kept", "invented")


def mean_psnr(outs: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Mean :func:`frgd.metrics.psnr` (dB, RGB) of uint8 or ``[0, 1]`` float images against ``gts`` (same kind)."""
    from ..metrics import psnr

    peak = 255.0 if outs[0].dtype == np.uint8 else 1.0
    return float(np.mean([psnr(o, g, peak) for o, g in zip(outs, gts, strict=True)]))


@torch.no_grad()
def model_detail(
    model,
    scheduler,
    gts: Sequence[np.ndarray],
    ref_emb: torch.Tensor,
    *,
    scales: Sequence[float] = (8.0, 4.0),
    timesteps: Sequence[int] = MODEL_DETAIL_TIMESTEPS,
    batch: int = 16,
) -> dict[str, Any]:
    """``kept`` and ``invented`` rows (module docstring) -> ``{"faces", "timesteps", "scales": {"x8": [row, ...]}}``,
    each row ``{"probe", "t", "detail", "psnr"}``.

    ``gts``: ``N`` ground-truth faces ``(S, S, 3)`` uint8 at the model's size; ``ref_emb`` ``(N, D)`` their reference
    embeddings. The noise of timestep ``t`` at scale ``s`` is seeded ``t * 1009 + int(s)`` (the same for every model).
    """
    from ..diffusion.training.identity_loss import clean_estimate
    from ..metrics.detail import detail_score
    from .training_probe import noised_batches, probe_inputs

    n = len(gts)
    if n < 1 or ref_emb.shape[0] != n:
        raise ValueError(f"model detail needs faces and one reference embedding each, got {n} and {ref_emb.shape[0]}")
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    truth = [g.astype(np.float32) / 255 for g in gts]
    kind = scheduler.config.prediction_type
    out: dict[str, Any] = {"faces": n, "timesteps": [int(t) for t in timesteps], "scales": {}}
    for scale in scales:
        x0_all, deg_all = probe_inputs(gts, scale)
        rows = []
        for t_val in timesteps:
            est: dict[str, list[np.ndarray]] = {p: [] for p in PROBES}
            for pb in noised_batches(scheduler, x0_all, deg_all, t_val, int(t_val) * 1009 + int(scale), batch, dev):
                smooth = scheduler.add_noise(pb.deg * 2 - 1, pb.noise, pb.t)  # the bicubic upscale noised to t
                ident = ref_emb[pb.start : pb.start + pb.x0.shape[0]].to(dev, dtype)
                for name, start in (("kept", pb.x_t), ("invented", smooth)):
                    pred = model(start.to(dtype), pb.t, pb.cond.to(dtype), identity=ident)
                    x0_hat = clean_estimate(scheduler.alphas_cumprod, start, pb.t, pred, kind)
                    est[name] += list(((x0_hat.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).float().cpu().numpy())
            for name in PROBES:
                outs = est[name]
                rows.append({"probe": name, "t": int(t_val), "detail": detail_score(outs, truth),
                             "psnr": mean_psnr(outs, truth)})  # fmt: skip
        out["scales"][f"x{scale:g}"] = rows
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    """Readable lines of :func:`model_detail`'s result: per scale and probe, detail and PSNR at each timestep."""
    lines = []
    for name, rows in result["scales"].items():
        for probe in PROBES:
            cells = [f"t={r['t']} {r['detail']:.3f} ({r['psnr']:.2f} dB)" for r in rows if r["probe"] == probe]
            lines.append(f"  {name} {probe:<8} " + ", ".join(cells))
    return lines


__all__ = ["MODEL_DETAIL_TIMESTEPS", "PROBES", "mean_psnr", "model_detail", "summary_lines"]
