"""``frgd train``: train models from a JSON config.

``frgd train [--kind frgd] --config FILE [--data DIR] [--embeddings NPZ] [--output DIR] [--resume] [--max-steps N]
[--time-budget-min M] [--init-from MODEL] [--set section.key=VALUE ...]``

``--kind`` selects the trainer from :data:`TRAIN_KINDS` (``frgd``, the default: the FRGD diffusion model,
:mod:`frgd.diffusion.training.train`); another trainer is added as one entry there. ``--config`` accepts a path or the
name of a shipped preset (``train_frgd128``: continue the shipped FRGD-128 with the rounds' recipe;
``train_cpu_smoke``; in ``frgd_resources/presets``). Several GPUs: ``accelerate launch -m frgd.cli.main train ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError
from .main import add_json_flags, emit

logger = logging.getLogger(__name__)


def _train_frgd(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    from ..diffusion.training.train import train

    bar = None
    if not args.json and int(os.environ.get("LOCAL_RANK", "0")) == 0:  # one bar per machine under accelerate launch
        from tqdm import tqdm

        budget = cfg["train"]["time_budget_min"]
        total, unit = (budget * 60, "s") if budget else (args.max_steps or cfg["train"]["steps"], "step")
        bar = tqdm(total=total, desc="frgd train", unit=unit, dynamic_ncols=True)

    def progress(done: int, total: int, message: str) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(message, refresh=False)
            bar.refresh()

    try:
        res = train(cfg, args.output, resume=args.resume, max_steps=args.max_steps, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    return {
        "kind": "frgd",
        "run_dir": str(res.run_dir),
        "model_dir": str(res.model_dir) if res.model_dir else None,
        "step": res.step,
        "resumed_from": res.resumed_from,
        "first_loss": res.first_loss,
        "last_loss": res.last_loss,
        "img_per_s": res.img_per_s,
        "log": str(Path(res.run_dir) / "train_log.jsonl"),
    }


TRAIN_KINDS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]]] = {"frgd": _train_frgd}
"""Trainer per ``--kind``: ``fn(args, merged_config) -> summary dict``."""


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = root.add_parser(
        "train",
        help="train a model from a JSON config (default kind: the FRGD diffusion model)",
        description=(
            "Train from a JSON config (a path, or a shipped preset name: train_frgd128 continues the shipped "
            "FRGD-128 with the training rounds' recipe; train_cpu_smoke). Writes config.json, train_log.jsonl "
            "(loss, lr, img/s), samples/*.png, checkpoints/ and the final model/ folder under --output. --resume "
            "continues exactly from the latest checkpoint. Several GPUs: accelerate launch -m frgd.cli.main train "
            "... (the same arguments)."
        ),
    )
    p.add_argument("--kind", default="frgd", choices=sorted(TRAIN_KINDS), help="what to train (default frgd)")
    p.add_argument("--config", required=True, metavar="FILE", help="training config JSON or preset name")
    p.add_argument("--data", metavar="DIR", help="faces128 folder or shard folder (overrides data.root)")
    p.add_argument("--embeddings", metavar="NPZ", help="precomputed identity embeddings (overrides data.embeddings)")
    p.add_argument("--output", metavar="DIR", help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after step N (the LR schedule keeps its length)")
    p.add_argument(
        "--time-budget-min",
        type=float,
        metavar="M",
        help="train for M minutes, the LR a function of the time (warm-up, cosine to its end); overrides "
        "train.time_budget_min",
    )
    p.add_argument(
        "--init-from",
        metavar="MODEL_DIR",
        help="start from the weights of a model folder or a model name (frgd-128: the installed one) with a fresh "
        "optimizer",
    )
    p.add_argument("--device", metavar="DEV", help="auto|cpu|cuda|mps (overrides train.device)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.batch_size=32 (VALUE is JSON, else a string)",
    )
    add_json_flags(p)
    p.set_defaults(func=_cmd_train)


def apply_overrides(cfg: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Apply ``section.key=VALUE`` strings to a raw config dict (in place; returns it)."""
    for s in sets:
        if "=" not in s:
            raise InputError(f"--set expects KEY=VALUE, got {s!r}")
        key, val = s.split("=", 1)
        try:
            value = json.loads(val)
        except json.JSONDecodeError:
            value = val
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = value
    return cfg


def _cmd_train(args: argparse.Namespace) -> int:
    from ..diffusion.training.train import load_config, read_config

    if args.max_steps is not None and args.max_steps < 1:
        raise InputError("--max-steps must be at least 1")
    raw = read_config(args.config)  # resolves preset names; validated once the flags are in (load_config below)
    data, tr = raw.setdefault("data", {}), raw.setdefault("train", {})
    if not isinstance(data, dict) or not isinstance(tr, dict):
        raise InputError(f"{args.config}: the data and train sections must be objects")
    if args.data:
        if not Path(args.data).is_dir():
            raise InputError(f"--data folder not found: {args.data}")
        data["root"] = args.data
        data["synthetic"] = False
    if args.embeddings:
        if not Path(args.embeddings).is_file():
            raise InputError(f"--embeddings file not found: {args.embeddings}")
        data["embeddings"] = args.embeddings
    if args.device:
        tr["device"] = args.device
    if args.init_from:
        from ..weights import resolve_model_dir

        tr["init_from"] = str(resolve_model_dir(args.init_from))
    if args.time_budget_min is not None:
        tr["time_budget_min"] = args.time_budget_min
    cfg = load_config(apply_overrides(raw, args.set))
    out = TRAIN_KINDS[args.kind](args, cfg)
    text = (
        f"trained {out['kind']} to step {out['step']}: loss {out['first_loss']} -> {out['last_loss']}, "
        f"{out['img_per_s'] or 0:.1f} img/s; model: {out['model_dir']}"
    )
    emit(args, out, text)
    return 0
