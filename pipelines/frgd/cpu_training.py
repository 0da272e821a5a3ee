"""What the small CPU-trained networks share (the FRGD prior, the prior-share estimator, the identity student, our SR
models): the learning-rate schedule, the time-budget loop and the ``train`` / ``export`` command line.

A run's *progress* is the larger of ``step / steps`` and ``elapsed / budget``, so a run stopped by its time budget
still anneals: the learning rate is a linear warm-up over the first ``warmup`` of the run, then a cosine to
``min_lr`` at progress 1 (:func:`lr_at`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


def lr_at(progress: float, base_lr: float, min_lr: float, warmup: float, floor: float = 0.02) -> float:
    """Linear warm-up over the first ``warmup`` of the run (from ``floor * base_lr``), then cosine from ``base_lr``
    to ``min_lr`` at ``progress`` 1."""
    if progress < warmup:
        return base_lr * max(progress / warmup, floor)
    p = min(1.0, (progress - warmup) / max(1e-8, 1 - warmup))
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * p))


def timed_loop(
    opt: torch.optim.Optimizer,
    step: Callable[[], float],
    state: dict[str, Any],
    *,
    lr: float,
    steps: int,
    budget_min: float,
    batch: int,
    log_every: int,
    min_lr_ratio: float = 0.02,
    warmup: float = 0.03,
    after_step: Callable[[], None] | None = None,
) -> float:
    """Run ``step`` (one optimisation step that returns its loss) until ``steps`` or ``budget_min`` minutes, setting
    ``opt``'s learning rate by :func:`lr_at` before each; counts ``state["step"]`` / ``state["images"]`` (``batch``
    per step), appends ``[step, seconds, mean loss, lr]`` to ``state["loss_curve"]`` every ``log_every`` steps, and
    calls ``after_step`` (validation, checkpoints) after each step. Returns the seconds it ran."""
    budget = float(budget_min) * 60.0
    t0 = time.perf_counter()
    run_loss, run_n = 0.0, 0
    while True:
        elapsed = time.perf_counter() - t0
        progress = max(state["step"] / max(1, steps), elapsed / budget if budget > 0 else 0.0)
        if progress >= 1.0:
            break
        rate = lr_at(progress, lr, lr * min_lr_ratio, warmup)
        for grp in opt.param_groups:
            grp["lr"] = rate
        run_loss, run_n = run_loss + float(step()), run_n + 1
        state["step"] += 1
        state["images"] += batch
        if state["step"] % log_every == 0:
            el = time.perf_counter() - t0
            state["loss_curve"].append([state["step"], round(el, 1), round(run_loss / run_n, 5), rate])
            logger.info("step %d  %.1f min  loss %.5f  lr %.2e", state["step"], el / 60, run_loss / run_n, rate)
            run_loss, run_n = 0.0, 0
        if after_step is not None:
            after_step()
    return time.perf_counter() - t0


def command_parser(
    prog: str, doc: str | None, what: str, budget_min: float
) -> tuple[argparse.ArgumentParser, Any, Any]:
    """``(parser, subparsers, train)`` of a CPU training script ``prog`` (``doc``'s first line is its
    description): the ``train`` subcommand has ``--faces``, ``--run`` and the loop's options (:func:`add_loop_options`,
    ``budget_min`` minutes by default), and ``export`` (:func:`add_export_parser`) writes ``what``."""
    p = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train in RUN")
    t.add_argument("--faces", required=True, help="faces128 root (labels.csv, train/, val/)")
    t.add_argument("--run", required=True, help="run folder (last.pt, state.json)")
    add_loop_options(t, budget_min)
    add_export_parser(sub, what)
    return p, sub, t


def add_loop_options(train: argparse.ArgumentParser, budget_min: float) -> None:
    """The options of :func:`timed_loop` runs on faces128 that every CPU trainer's ``train`` takes: ``--steps`` (a cap),
    ``--time-budget-min`` (default ``budget_min``), ``--limit`` (the first N training faces), ``--log-every``,
    ``--threads`` and ``--seed``."""
    train.add_argument("--steps", type=int, default=1_000_000, help="step cap (the time budget usually ends the run)")
    train.add_argument("--time-budget-min", type=float, default=budget_min)
    train.add_argument("--limit", type=int, default=None, help="train on the first N faces only")
    train.add_argument("--log-every", type=int, default=50)
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--seed", type=int, default=0)


def load_run(run: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, state)`` of a run's ``last.pt``."""
    ck = torch.load(Path(run) / "last.pt", map_location="cpu", weights_only=True)
    return ck["model"], ck["state"]


def save_run(run: Path, net: torch.nn.Module, state: dict[str, Any]) -> None:
    """Write a finished run: ``last.pt`` (weights and state) and ``state.json`` (the state without its loss curve);
    log its end and validation (``state["val"]``)."""
    torch.save({"model": net.state_dict(), "state": state}, run / "last.pt")
    (run / "state.json").write_text(json.dumps({k: v for k, v in state.items() if k != "loss_curve"}, indent=1))
    logger.info("done: %d steps, %d images, %.1f min; val %s", state["step"], state["images"],
                state["seconds"] / 60, json.dumps(state["val"]))  # fmt: skip


def training_record(state: dict[str, Any], keys: tuple[str, ...], data: str, loss: str) -> dict[str, Any]:
    """What an exported ``config.json`` says of its training: ``keys`` of the run's ``state``, the data, the loss."""
    return {**{k: state.get(k) for k in keys}, "data": data, "loss": loss}


def add_export_parser(sub: Any, what: str) -> argparse.ArgumentParser:
    """The ``export`` subcommand (``--run``, ``--out``) of a CPU training script; ``what`` completes its help."""
    e = sub.add_parser("export", help=f"write RUN's {what}")
    e.add_argument("--run", required=True)
    e.add_argument("--out", required=True)
    return e


def run_command(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    train: Callable[[argparse.Namespace], Any],
    export: Callable[[argparse.Namespace], Any],
) -> int:
    """Log to stderr, parse ``argv`` and run its ``train`` or ``export`` subcommand; returns the exit code 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parser.parse_args(argv)
    (train if args.cmd == "train" else export)(args)
    return 0


__all__ = [
    "add_export_parser",
    "add_loop_options",
    "command_parser",
    "load_run",
    "lr_at",
    "run_command",
    "save_run",
    "timed_loop",
    "training_record",
]
