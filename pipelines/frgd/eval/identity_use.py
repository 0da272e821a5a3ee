"""``frgd eval identity-use``: does the FRGD model use the reference's identity embedding at all?

The sampler's slider can only add *model-learned* identity (classifier-free guidance above 1) if the conditional
model predicts better with the right person's embedding than without one. This measures it directly, with no judge
and no sampling: for each validation face, its degraded input (the evaluation's deterministic degradation) and one
fixed noise draw per timestep, the model's training loss (MSE of the ``v`` / ``epsilon`` prediction, whole-face
restoration) is computed three times, with

* ``ref``: the embedding of the face's reference (another photo of the same person),
* ``wrong``: the reference embedding of another face of the set (another person),
* ``null``: the learned null embedding (the no-reference model),

and reported per timestep: the three mean losses and the paired relative gains ``(null - ref) / null`` and
``(wrong - ref) / ref`` (mean, standard error over faces, faces where the reference helped). A model that ignores
the identity has gains of zero with random signs; one that uses it has positive gains, largest where the input
says least (high noise, x8). The training round runs it on the pack's validation pairs after every round
(``round.json`` ``val.identity_use``); on the CPU it takes about 10 s per face and scale for five timesteps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

IDENTITY_USE_TIMESTEPS = (100, 300, 500, 700, 900)
"""Training timesteps probed (of 1000): low noise (the input decides) to high noise (the identity can matter)."""
CONDITIONS = ("ref", "wrong", "null")


def other_person(identities: Sequence[str] | None, n: int) -> list[int]:
    """For each of ``n`` faces, the index of the next face (cyclically) of another identity (``identities`` ``None``:
    every face is another person's, the next face)."""
    if identities is None:
        return [(i + 1) % n for i in range(n)]
    out = []
    for i in range(n):
        j = next((k % n for k in range(i + 1, i + n) if identities[k % n] != identities[i]), None)
        if j is None:
            raise ValueError("identity use needs faces of at least two people")
        out.append(j)
    return out


def _gain_stats(gain: torch.Tensor) -> dict[str, Any]:
    from .faces import paired_change

    mean, se, better, n = paired_change(gain.numpy())
    return {"mean": mean, "se": se, "faces_better": better, "faces": n}


@torch.no_grad()
def identity_use(
    model,
    scheduler,
    gts: Sequence[np.ndarray],
    ref_emb: torch.Tensor,
    *,
    identities: Sequence[str] | None = None,
    scales: Sequence[float] = (8.0, 4.0),
    timesteps: Sequence[int] = IDENTITY_USE_TIMESTEPS,
    seed: int = 0,
    batch: int = 16,
) -> dict[str, Any]:
    """Losses with the right, a wrong and no reference embedding (module docstring) -> a JSON-able dict.

    ``gts``: ``N`` ground-truth faces ``(S, S, 3)`` uint8 at the model's size; ``ref_emb`` ``(N, D)`` their reference
    embeddings; ``identities``: their identity names (to pick a wrong reference of another person).
    """
    from .training_probe import noised_batches, probe_inputs

    n = len(gts)
    if n < 2 or ref_emb.shape[0] != n:
        raise ValueError(f"identity use needs at least 2 faces and one reference embedding each, got {n} faces")
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    wrong = other_person(identities, n)
    emb = {"ref": ref_emb.float(), "wrong": ref_emb.float()[wrong], "null": None}
    out: dict[str, Any] = {"faces": n, "timesteps": [int(t) for t in timesteps], "seed": seed, "scales": {}}
    for scale in scales:
        x0_all, deg_all = probe_inputs(gts, scale)
        rows = []
        for t_val in timesteps:
            noise_seed = int(seed) * 1_000_003 + int(t_val) * 1009 + int(round(scale * 8))
            mse: dict[str, list[torch.Tensor]] = {c: [] for c in CONDITIONS}
            for pb in noised_batches(scheduler, x0_all, deg_all, t_val, noise_seed, batch, dev):
                for c in CONDITIONS:
                    ident = None if emb[c] is None else emb[c][pb.start : pb.start + pb.x0.shape[0]].to(dev, dtype)
                    pred = model(pb.x_t.to(dtype), pb.t, pb.cond.to(dtype), identity=ident).float()
                    mse[c].append(((pred - pb.target.float()) ** 2).mean(dim=(1, 2, 3)).cpu())
            m = {c: torch.cat(v).double() for c, v in mse.items()}
            rows.append(
                {
                    "t": int(t_val),
                    **{f"mse_{c}": float(m[c].mean()) for c in CONDITIONS},
                    "gain_vs_null": _gain_stats((m["null"] - m["ref"]) / m["null"]),
                    "gain_vs_wrong": _gain_stats((m["wrong"] - m["ref"]) / m["ref"]),
                }
            )
        out["scales"][f"x{scale:g}"] = {
            "rows": rows,
            "mean_gain_vs_null": float(np.mean([r["gain_vs_null"]["mean"] for r in rows])),
            "mean_gain_vs_wrong": float(np.mean([r["gain_vs_wrong"]["mean"] for r in rows])),
        }
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    """Readable lines of :func:`identity_use`'s result (gains in percent)."""
    lines = []
    for name, sc in result["scales"].items():
        for r in sc["rows"]:
            gn, gw = r["gain_vs_null"], r["gain_vs_wrong"]
            se = lambda g: "" if g["se"] is None else f" +- {100 * g['se']:.2f}"  # noqa: E731
            lines.append(
                f"  {name} t={r['t']:<4} loss ref {r['mse_ref']:.5f} null {r['mse_null']:.5f}"
                f" wrong {r['mse_wrong']:.5f}"
                f" | vs null {100 * gn['mean']:+.2f}%{se(gn)} ({gn['faces_better']}/{gn['faces']})"
                f" vs wrong {100 * gw['mean']:+.2f}%{se(gw)} ({gw['faces_better']}/{gw['faces']})"
            )
        lines.append(
            f"  {name} mean gain: vs null {100 * sc['mean_gain_vs_null']:+.2f}%, "
            f"vs wrong {100 * sc['mean_gain_vs_wrong']:+.2f}%"
        )
    return lines


__all__ = ["CONDITIONS", "IDENTITY_USE_TIMESTEPS", "identity_use", "other_person", "summary_lines"]
