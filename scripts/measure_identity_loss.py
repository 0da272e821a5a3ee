"""Measure the rounds' identity loss at the installed FRGD weights, before a round trains with it (docs/
training_rounds.md, "Identity loss (built after round 7, on from round 8)").

On ``--batches`` training batches of the round's pack (made by the round's own batch maker, on the CPU), with the
round's own loss (:meth:`frgd.diffusion.training.round.RoundTrainer.loss_terms`):

- the identity loss (``1 - cos`` of the identity student's descriptors of the model's clean estimate and of the true
  face) per noise-level band, with the right reference embedding and with another person's (the same noise, timesteps
  and inputs): if the model ignored the reference, the two would be equal;
- the gradient norms of the diffusion loss and of the identity loss (``t < t_max``, by default every timestep) over
  the model's weights, and the weight at which the identity loss's gradient is :data:`GRAD_SHARE` of the diffusion
  loss's: the starting weight of the first round that uses it.

    python scripts/measure_identity_loss.py --pack .carry/round/pack --out docs/results/identity_loss_round_007.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger("measure_identity_loss")

GRAD_SHARE = 0.25
"""The identity loss's gradient norm, as a share of the diffusion loss's, that the suggested weight gives."""
BANDS = ((0, 150), (150, 300), (300, 450), (450, 600), (600, 800), (800, 1000))
"""Timestep bands the loss is reported in."""


def norm(grads: tuple) -> float:
    """The L2 norm over a tuple of gradients (``None`` entries skipped)."""
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def main(argv: list[str] | None = None) -> int:
    from frgd.diffusion.training.identity_loss import IdentityLossConfig
    from frgd.diffusion.training.round import RoundTrainer, round_config

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pack", required=True, help="the round's data pack (frgd round pack)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--batches", type=int, default=24, help="batches for the loss per band (forward only)")
    p.add_argument("--grad-batches", type=int, default=4, help="of which the first N also measure gradients")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--t-max", type=int, default=IdentityLossConfig.t_max, help="the t_max whose gradient is measured")
    p.add_argument("--student", default=None, help="student weights folder (default: the installed one)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    over = {"device": "cpu", "bf16": False, "channels_last": False, "compile": False, "mask_bank": 256,
            "identity_loss": {"weight": 1.0, "t_max": 1000, "student": args.student}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tr = RoundTrainer(round_config("round_frgd128", over), args.pack, tmp, deadline_s=1e9)
    logger.info("trainer ready in %.0f s (init %s)", time.perf_counter() - t0, tr.init_record["from"])
    params = tr.params
    rows: dict[str, list[np.ndarray]] = {"t": [], "right": [], "wrong": [], "active": []}
    g_diff, g_id = [], []
    for k in range(args.batches):
        batch = tr.maker.make(args.batch)
        wrong = dataclasses.replace(batch, identity=batch.identity.roll(1, dims=0))  # another person's reference
        grads = k < args.grad_batches
        tr.gen.manual_seed(1000 + k)
        with torch.set_grad_enabled(grads):
            terms = tr.loss_terms(batch)
        tr.gen.manual_seed(1000 + k)  # the same noise, timesteps and drops
        with torch.no_grad():
            other = tr.loss_terms(wrong)
        if grads:
            masked = terms["identity"] * (terms["t"] < args.t_max)
            gd = torch.autograd.grad(terms["diffusion"], params, retain_graph=True, allow_unused=True)
            gi = torch.autograd.grad(masked.mean(), params, allow_unused=True)
            g_diff.append(norm(gd))
            g_id.append(norm(gi))
        for key, v in (("t", terms["t"]), ("right", terms["identity"]), ("wrong", other["identity"]),
                       ("active", terms["active"])):  # fmt: skip
            rows[key].append(v.detach().float().numpy())
        logger.info("batch %d (%.0f s)%s", k, time.perf_counter() - t0,
                    f": |g diffusion| {g_diff[-1]:.4g}, |g identity| {g_id[-1]:.4g}" if grads else "")  # fmt: skip
    t, right, wrong_, active = (np.concatenate(rows[k]) for k in ("t", "right", "wrong", "active"))
    active = active > 0
    bands = []
    for lo, hi in BANDS:
        m = active & (t >= lo) & (t < hi)
        d = wrong_[m] - right[m]
        bands.append({"t": [lo, hi], "n": int(m.sum()),
                      "right": round(float(right[m].mean()), 4) if m.any() else None,
                      "wrong": round(float(wrong_[m].mean()), 4) if m.any() else None,
                      "wrong_minus_right": round(float(d.mean()), 5) if m.any() else None,
                      "wrong_minus_right_se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 5) if m.sum() > 1
                      else None})  # fmt: skip
    ratio = float(np.mean(g_diff) / max(np.mean(g_id), 1e-12))
    out = {
        "command": "python scripts/measure_identity_loss.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "weights": tr.init_record,
        "student": tr.student.source,
        "student_validation": tr.student.validation,
        "samples": int(len(t)),
        "active_below_t_max": int((active & (t < args.t_max)).sum()),
        "t_max": args.t_max,
        "bands": bands,
        "grad_norm_diffusion": round(float(np.mean(g_diff)), 6),
        "grad_norm_identity": round(float(np.mean(g_id)), 6),
        "grad_share": GRAD_SHARE,
        "suggested_weight": round(GRAD_SHARE * ratio, 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    logger.info("%s", json.dumps({k: out[k] for k in ("bands", "grad_norm_diffusion", "grad_norm_identity",
                                                      "suggested_weight")}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
