"""The CPU training scripts' shared schedule, loop and command line (frgd.cpu_training)."""

from __future__ import annotations

import math

import pytest
import torch

from frgd.cpu_training import lr_at, run_command, timed_loop


def test_lr_warms_up_then_follows_the_cosine_to_the_floor():
    assert lr_at(0.0, 1.0, 0.1, 0.1) == pytest.approx(0.02)  # the warm-up's floor
    assert lr_at(0.0, 1.0, 0.1, 0.1, floor=0.05) == pytest.approx(0.05)
    assert lr_at(0.05, 1.0, 0.1, 0.1) == pytest.approx(0.5)
    assert lr_at(0.1, 1.0, 0.1, 0.1) == pytest.approx(1.0)
    assert lr_at(0.55, 1.0, 0.1, 0.1) == pytest.approx(0.55)  # halfway down the cosine
    assert lr_at(1.0, 1.0, 0.1, 0.1) == pytest.approx(0.1) == lr_at(2.0, 1.0, 0.1, 0.1)
    rates = [lr_at(p / 100, 1.0, 0.1, 0.1) for p in range(10, 101)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_the_loop_counts_logs_and_anneals_by_steps():
    w = torch.nn.Parameter(torch.tensor(3.0))
    opt = torch.optim.SGD([w], lr=0.0)
    seen, calls = [], []

    def step() -> float:
        seen.append(opt.param_groups[0]["lr"])
        loss = w**2
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss)

    state = {"step": 0, "images": 0, "loss_curve": []}
    seconds = timed_loop(opt, step, state, lr=0.1, steps=20, budget_min=60, batch=4, log_every=5,
                         after_step=lambda: calls.append(state["step"]))  # fmt: skip
    assert state["step"] == 20 and state["images"] == 80 and calls == list(range(1, 21)) and seconds > 0
    assert [r[0] for r in state["loss_curve"]] == [5, 10, 15, 20]
    assert [r[3] for r in state["loss_curve"]] == [seen[4], seen[9], seen[14], seen[19]]
    assert seen == [lr_at(i / 20, 0.1, 0.002, 0.03) for i in range(20)]
    assert state["loss_curve"][-1][2] < state["loss_curve"][0][2]  # it did minimise w^2
    assert math.isclose(seen[-1], lr_at(19 / 20, 0.1, 0.002, 0.03))


def test_a_zero_budget_with_no_steps_left_runs_nothing():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(()))], lr=0.0)
    state = {"step": 5, "images": 0, "loss_curve": []}
    timed_loop(opt, lambda: 1 / 0, state, lr=0.1, steps=5, budget_min=0, batch=1, log_every=1)
    assert state["step"] == 5


def test_run_command_dispatches_train_and_export():
    import argparse

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("train").add_argument("--x", type=int)
    sub.add_parser("export").add_argument("--y")
    got = []
    assert run_command(p, ["train", "--x", "3"], lambda a: got.append(("t", a.x)), lambda a: got.append("e")) == 0
    assert run_command(p, ["export", "--y", "z"], lambda a: got.append("t"), lambda a: got.append(("e", a.y))) == 0
    assert got == [("t", 3), ("e", "z")]
