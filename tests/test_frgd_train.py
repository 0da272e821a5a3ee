"""FRGD training loop: fusion inputs, loss falls, exact resume, CLI, configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from frgd.cli.main import main as cli_main
from frgd.diffusion.model import load_model_dir, make_train_scheduler
from frgd.diffusion.training.train import load_config, make_training_inputs, min_snr_weight, train
from frgd.errors import Cancelled, InputError


def _tiny_cfg(**train_over) -> dict:
    t = {
        "steps": 6,
        "batch_size": 4,
        "log_every": 1,
        "checkpoint_every": 3,
        "sample_every": 0,
        "num_threads": 1,
        "device": "cpu",
    }
    t.update(train_over)
    return {
        "name": "test",
        "model": {"tiny": True, "block_out_channels": [8, 16, 16], "norm_num_groups": 4, "attention_head_dim": 4},
        "data": {"synthetic": True, "size": 16, "synthetic_items": 32, "synthetic_identities": 4},
        "identity": {"backend": "synthetic"},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "ema": {"decay": 0.9},
        "train": t,
    }


def test_training_inputs_fusion():
    sched = make_train_scheduler(prediction_type="v_prediction")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    deg = torch.rand(2, 3, 8, 8, generator=g)
    noise = torch.randn(2, 3, 8, 8, generator=g)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :4] = 1
    t = torch.tensor([600, 600])
    x_t, cond, target = make_training_inputs(sched, x0, deg, mask, torch.tensor([False, True]), noise, t)
    ab = sched.alphas_cumprod[600]
    torch.testing.assert_close(x_t, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    torch.testing.assert_close(target, ab.sqrt() * noise - (1 - ab).sqrt() * x0)
    keep = mask.expand(-1, 3, -1, -1) == 0
    torch.testing.assert_close(cond[0, 4:7][keep[0]], x0[0][keep[0]])  # masked fusion: clean known content
    torch.testing.assert_close(cond[1, 4:7][keep[1]], x_t[1][keep[1]])  # noisy fusion: q(x_t | x0) as injected
    assert (cond[:, 4:7][~keep] == 0).all()
    torch.testing.assert_close(cond[:, 0:3], deg * 2 - 1)
    eps_sched = make_train_scheduler(prediction_type="epsilon")
    _, _, target = make_training_inputs(eps_sched, x0, deg, mask, torch.tensor([False, False]), noise, t)
    torch.testing.assert_close(target, noise)


def test_min_snr_weight():
    sched = make_train_scheduler()
    t = torch.tensor([0, 500, 999])
    ab = sched.alphas_cumprod[t]
    snr = ab / (1 - ab)
    wv = min_snr_weight(sched.alphas_cumprod, t, 5.0, "v_prediction")
    we = min_snr_weight(sched.alphas_cumprod, t, 5.0, "epsilon")
    torch.testing.assert_close(wv, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    torch.testing.assert_close(we, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert we[0] < 1e-2 and we[-1] == pytest.approx(1.0)


def test_config_validation(tmp_path):
    with pytest.raises(InputError, match="unknown config key"):
        load_config({"train": {"stepz": 3}})
    with pytest.raises(InputError, match="unknown fusion config keys"):
        load_config({"fusion": {"p_fusion": 0.5}})
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "nope.json")
    assert load_config("train_cpu_smoke")["model"]["prediction_type"] == "v_prediction"  # shipped presets load
    assert load_config("train_frgd128")["model"] == {"from": "init"}  # resolved in a run (test below)


def test_loss_falls_synthetic(tmp_path):
    cfg = _tiny_cfg(steps=80, batch_size=8, log_every=10, checkpoint_every=0)
    cfg["optim"]["lr"] = 2e-3
    res = train(cfg, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(10, 81, 10))
    assert all(r["img_per_s"] > 0 for r in rows)
    first, last = rows[0]["loss"], np.mean([r["loss"] for r in rows[-2:]])
    assert last < 0.7 * first, (first, last)
    bundle = load_model_dir(res.model_dir)
    assert bundle.identity.backend == "synthetic"
    # the identity input was standardised with the training set's identity vectors (frgd.archs.frgd_unet_arch)
    assert len(bundle.model.config.identity_center) == bundle.model.config.identity_dim
    assert 0 < bundle.model.config.identity_scale < 1


def test_exact_resume(tmp_path):
    cfg = _tiny_cfg(steps=6, sample_every=3, sample_count=2, sample_steps=2)
    train(cfg, tmp_path / "a")
    part = train(cfg, tmp_path / "b", max_steps=3)
    assert part.step == 3 and (tmp_path / "b" / "checkpoints" / "step_0000003").is_dir()
    done = train(cfg, tmp_path / "b", resume=True)
    assert done.resumed_from == 3 and done.step == 6
    for name in ("model.safetensors", "ema.safetensors"):
        a = load_file(str(tmp_path / "a" / "checkpoints" / "step_0000006" / name))
        b = load_file(str(tmp_path / "b" / "checkpoints" / "step_0000006" / name))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    a_ref = load_file(str(tmp_path / "a" / "checkpoints" / "step_0000006" / "model.safetensors"))
    b3 = load_file(str(tmp_path / "b" / "checkpoints" / "step_0000003" / "model.safetensors"))
    assert any(not torch.allclose(a_ref[k], b3[k]) for k in a_ref)  # training moved the weights after the resume
    assert (tmp_path / "a" / "samples" / "step_0000003.png").is_file()
    assert (tmp_path / "a" / "samples" / "step_0000006.png").is_file()


def test_cli_train(tmp_path, capsys):
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(_tiny_cfg(steps=2, checkpoint_every=0)))
    rc = cli_main(["train", "--config", str(cfg_path), "--output", str(tmp_path / "run"), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "frgd" and out["step"] == 2 and out["first_loss"] > 0
    assert load_model_dir(out["model_dir"]).model.config.prediction_type == "v_prediction"
    # resume with nothing left to do, and with no checkpoint
    assert cli_main(["train", "--config", str(cfg_path), "--output", str(tmp_path / "run"), "--resume", "--json"]) == 0
    assert cli_main(["train", "--config", str(cfg_path), "--output", str(tmp_path / "x"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert cli_main(["train", "--config", str(tmp_path / "missing.json")]) == 2
    assert cli_main(["train", "--config", str(cfg_path), "--set", "train.bogus=1"]) == 2
    # no step count: --time-budget-min gives the run its end; without it the run is refused in one line
    endless = _tiny_cfg(steps=None, checkpoint_every=0)
    cfg_path.write_text(json.dumps(endless))
    capsys.readouterr()
    assert cli_main(["train", "--config", str(cfg_path), "--output", str(tmp_path / "t"), "--json"]) == 2
    assert "a run needs an end" in capsys.readouterr().err
    args = ["train", "--config", str(cfg_path), "--output", str(tmp_path / "t"), "--time-budget-min", "0.005", "--json"]
    assert cli_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_dir"] and json.loads((tmp_path / "t" / "config.json").read_text())["train"]["time_budget_min"]


def test_cancel_saves_a_resumable_checkpoint(tmp_path):
    from frgd.jobs import CancelToken

    cfg = _tiny_cfg(steps=5, checkpoint_every=0)
    token = CancelToken()
    seen = []

    def progress(done: int, total: int, message: str) -> None:
        seen.append(done)
        if done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        train(cfg, tmp_path / "run", progress=progress, cancel=token)
    assert seen == [1, 2] and (tmp_path / "run" / "checkpoints" / "step_0000002").is_dir()
    res = train(cfg, tmp_path / "run", resume=True)
    assert res.resumed_from == 2 and res.step == 5


def test_max_minutes_stops_early(tmp_path):
    res = train(_tiny_cfg(steps=50, checkpoint_every=0, max_minutes=1e-9), tmp_path / "run")
    assert res.step == 1 and (tmp_path / "run" / "model" / "config.json").is_file()


def test_tiny_model_works_at_the_data_size():
    from frgd.diffusion.training.train import build_model

    cfg = load_config(_tiny_cfg())  # data.size 16, tiny model (whose own default is 32)
    assert build_model(cfg).config.sample_size == 16
    cfg["model"]["sample_size"] = 64
    with pytest.raises(InputError, match="differs from data.size"):
        build_model(cfg)


def test_embeddings_must_match_the_identity_backend(tmp_path):
    from frgd.diffusion.training.train import build_dataset

    root = tmp_path / "faces"
    (root / "train").mkdir(parents=True)
    (root / "labels.csv").write_text("file,split,identity,lm\ntrain/a.png,train,x:0,\n")
    emb = tmp_path / "emb.npz"
    np.savez(emb, files=np.array(["train/a.png"]), emb=np.ones((1, 128), np.float32),
             aug_emb=np.ones((1, 2, 128), np.float32), backend=np.array("facenet"))  # fmt: skip
    cfg = load_config({"data": {"root": str(root), "embeddings": str(emb)}, "identity": {"backend": "dlib"}})
    with pytest.raises(InputError, match="facenet embeddings of dim 128"):
        build_dataset(cfg, "train", 128)
    with pytest.raises(InputError, match="dim 128; the model needs facenet embeddings of dim 512"):
        build_dataset({**cfg, "identity": {"backend": "facenet"}}, "train", 512)
    assert len(build_dataset({**cfg, "identity": {"backend": "facenet"}}, "train", 128)) == 1
    cfg["data"]["embeddings"] = str(tmp_path / "missing.npz")
    with pytest.raises(InputError, match="embeddings file not found"):
        build_dataset(cfg, "train", 128)


def test_bad_train_numbers_are_one_line_input_errors(tmp_path, capsys):
    for bad in (0, "abc", 2.5, True):
        with pytest.raises(InputError, match="train.batch_size must be a positive integer"):
            load_config({"train": {"batch_size": bad}})
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(_tiny_cfg()))
    assert cli_main(["train", "--config", str(cfg_path), "--set", "train.steps=abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("frgd: error: train.steps must be a positive integer") and "\n" not in err


def test_sample_grids_need_no_identity_encoder(tmp_path, monkeypatch, caplog):
    """On a machine without the dlib weights (precomputed embeddings for training), the sample grid is still made,
    with the null identity, through the product sampler; the run does not stop."""
    import frgd.identity
    from frgd.errors import MissingWeightsError
    from tests.test_frgd_data import _fake_faces128

    root = tmp_path / "faces"
    _fake_faces128(root)
    files = [r.split(",")[0] for r in (root / "labels.csv").read_text().splitlines()[1:] if ",train," in r]
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(files), 128)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.savez(tmp_path / "emb.npz", files=np.array(files), emb=emb, aug_emb=np.stack([emb, emb], 1),
             backend=np.array("dlib"))  # fmt: skip

    def no_encoder(*a, **k):
        raise MissingWeightsError("dlib weights not installed here")

    monkeypatch.setattr(frgd.identity, "get_identity_encoder", no_encoder)
    cfg = _tiny_cfg(steps=2, batch_size=2, sample_every=1, sample_count=2, sample_steps=2, checkpoint_every=0)
    cfg["data"] = {"root": str(root), "embeddings": str(tmp_path / "emb.npz"), "size": 32}
    cfg["identity"] = {"backend": "dlib"}
    with caplog.at_level("WARNING"):
        res = train(cfg, tmp_path / "run")
    assert res.step == 2
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_0000001.png", "step_0000002.png"]
    assert sum("sample grids without identity" in r.message for r in caplog.records) == 1


def test_init_from_a_model_folder_and_fp16_export(tmp_path):
    """``train.init_from`` (``--init-from``) starts from earlier weights with a fresh optimizer; ``export_dtype: fp16``
    halves the exported file; a folder of another architecture is refused."""
    from safetensors import safe_open

    first = train(_tiny_cfg(steps=2), tmp_path / "a")
    cfg = _tiny_cfg(steps=1, init_from=str(first.model_dir), export_dtype="fp16")
    from frgd.diffusion.training.train import Trainer

    trainer = Trainer(load_config(cfg), tmp_path / "b")
    start = {k: v.float() for k, v in trainer.unwrapped.state_dict().items()}
    prev = load_model_dir(first.model_dir).model.state_dict()
    assert all(torch.equal(start[k], prev[k].float()) for k in prev)
    res = trainer.run()
    with safe_open(str(res.model_dir / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    other = _tiny_cfg(steps=1, init_from=str(first.model_dir))
    other["model"]["block_out_channels"] = [8, 16, 32]
    with pytest.raises(InputError, match="architecture differs"):
        train(other, tmp_path / "c")
    with pytest.raises(InputError, match="export_dtype"):
        load_config(_tiny_cfg(export_dtype="bf16"))


def _cosine_oracle(frac: float, lo: float) -> float:
    """The cosine from 1 to ``lo`` over ``frac`` in [0, 1], written out independently of ``frgd``'s helper."""
    return lo + (1 - lo) * (1 + np.cos(np.pi * frac)) / 2


def _clocked_trainer(cfg: dict, run_dir):
    """A Trainer whose time-budget clock reads 10 s per step already taken (deterministic wall-clock time)."""
    from frgd.diffusion.training.train import Trainer

    trainer = Trainer(load_config(cfg), run_dir)
    trainer.clock = lambda: 10.0 * trainer.step
    return trainer


def test_time_budget_sets_the_lr_by_the_clock_and_ends_low(tmp_path):
    """``train.time_budget_min``: the LR of every step is warm-up(step) x cosine(elapsed / budget) to
    ``optim.lr_min_ratio``; the run stops when the clock reaches the budget (not at ``train.steps``), and a resumed
    run continues the same clock (``state.json`` ``elapsed_s``) to the same weights."""
    peak, lo = 1e-3, 0.05
    cfg = _tiny_cfg(steps=None, time_budget_min=1.0, checkpoint_every=0)  # 60 s = 6 steps of the fake clock
    cfg["optim"].update({"warmup_steps": 2, "lr_min_ratio": lo})
    trainer = _clocked_trainer(cfg, tmp_path / "a")
    used: list[float] = []  # the LR AdamW steps with
    trainer.optimizer.optimizer.register_step_pre_hook(lambda opt, *_: used.append(opt.param_groups[0]["lr"]))
    res = trainer.run()
    assert res.step == 6
    rows = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    # step k (1-based) starts at 10 (k - 1) s of the clock, warm-up min(1, k / 2); row k logs it too
    want = [peak * min(1.0, k / 2) * _cosine_oracle(10.0 * (k - 1) / 60.0, lo) for k in range(1, 7)]
    np.testing.assert_allclose(used, want, rtol=1e-6)
    np.testing.assert_allclose([r["lr"] for r in rows], want, rtol=1e-6)
    lrs = [r["lr"] for r in rows]
    assert np.all(np.diff(lrs[1:]) < 0) and lrs[-1] < 0.12 * peak  # falling after the warm-up, low at the stop
    # the same budget in two sittings: 3 steps (--max-steps), then --resume on the same clock
    part = _clocked_trainer(cfg, tmp_path / "b").run(max_steps=3)
    state = json.loads((tmp_path / "b" / "checkpoints" / "step_0000003" / "state.json").read_text())
    assert part.step == 3 and state["elapsed_s"] == 30.0
    done = _clocked_trainer(cfg, tmp_path / "b").run(resume=True)
    assert done.resumed_from == 3 and done.step == 6
    a = load_file(str(tmp_path / "a" / "checkpoints" / "step_0000006" / "ema.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "step_0000006" / "ema.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    with pytest.raises(InputError, match="time_budget_min"):
        load_config(_tiny_cfg(time_budget_min=0))
    with pytest.raises(InputError, match="a run needs an end"):
        train(_tiny_cfg(steps=None), tmp_path / "c")  # no step count and no time budget


def test_a_model_continues_from_its_own_folder(tmp_path):
    """``"model": {"from": "init"}``: the architecture, identity dropout and noise schedule come from the
    ``train.init_from`` folder, and the run starts from its weights."""
    from frgd.diffusion.training.train import Trainer, architecture

    first_cfg = _tiny_cfg(steps=2, checkpoint_every=0)
    first_cfg["model"]["identity_dropout"] = 0.3
    first_cfg["scheduler"] = {"num_train_timesteps": 500, "beta_schedule": "linear"}
    first = train(first_cfg, tmp_path / "a")
    cfg = _tiny_cfg(steps=1, checkpoint_every=0, init_from=str(first.model_dir))
    cfg["model"] = {"from": "init"}
    trainer = Trainer(load_config(cfg), tmp_path / "b")
    prev = load_model_dir(first.model_dir).model
    assert architecture(dict(trainer.unwrapped.config)) == architecture(dict(prev.config))
    assert trainer.unwrapped.config.identity_dropout == 0.3
    assert trainer.noise_scheduler.config.num_train_timesteps == 500
    assert trainer.noise_scheduler.config.beta_schedule == "linear"
    start = trainer.unwrapped.state_dict()
    assert all(torch.equal(start[k], v) for k, v in prev.state_dict().items())
    trainer.run()
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["model"]["block_out_channels"] == [8, 16, 16]  # the run records what it resolved
    with pytest.raises(InputError, match="needs train.init_from"):
        load_config({**cfg, "train": {**cfg["train"], "init_from": None}})
    with pytest.raises(InputError, match='"from" takes only "init"'):
        load_config({**cfg, "model": {"from": "elsewhere"}})


def test_the_train_frgd128_preset_continues_the_shipped_weights():
    """The preset resolves to the installed frgd-128 (the rounds' architecture) with the rounds' recipe."""
    from frgd.diffusion.training.recipe import EMA_DECAY, LR, MIN_SNR_GAMMA
    from frgd.diffusion.training.round import default_init_dir, round_config
    from frgd.diffusion.training.train import resolve_init

    if not (default_init_dir() / "config.json").is_file():
        pytest.skip("no installed frgd-128 weights")
    cfg = resolve_init(load_config("train_frgd128"))
    assert cfg["train"]["init_from"] == str(default_init_dir())
    shipped = round_config("round_frgd128")
    for key in ("block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "prediction_type"):
        assert cfg["model"][key] == shipped["model"][key], key
    assert cfg["model"]["sample_size"] == cfg["data"]["size"] == 128
    assert cfg["scheduler"]["beta_schedule"] == shipped["scheduler"]["beta_schedule"]
    assert (cfg["optim"]["lr"], cfg["train"]["min_snr_gamma"], cfg["ema"]["decay"]) == (LR, MIN_SNR_GAMMA, EMA_DECAY)
    assert cfg["train"]["time_budget_min"] and cfg["train"]["export_dtype"] == "fp16"


def _two_process_run(run_dir: str, out_dir: str) -> None:
    """One process of :func:`test_several_processes_agree_on_the_clock` (a fresh interpreter, spawned)."""
    import hashlib

    from frgd.diffusion.training.train import Trainer

    cfg = _tiny_cfg(steps=None, time_budget_min=1.0, checkpoint_every=0)
    trainer = Trainer(load_config(cfg), run_dir)
    i = trainer.accelerator.process_index
    trainer.clock = lambda: (10.0 + i) * trainer.step  # the processes' clocks run at different rates
    res = trainer.run()
    h = hashlib.sha256()
    for k, v in sorted(trainer.unwrapped.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    with open(f"{out_dir}/proc{i}.json", "w") as f:
        json.dump({"n": trainer.accelerator.num_processes, "step": res.step, "sha": h.hexdigest()}, f)


def test_several_processes_agree_on_the_clock(tmp_path):
    """Two processes (accelerate, CPU) whose clocks disagree: a time-budgeted run ends both at the same step with the
    same weights, because each step's LR and the stop come from the main process's clock (10 s per step: 6 steps in
    the minute)."""
    from accelerate.utils import PrepareForLaunch, patch_environment
    from torch.multiprocessing import start_processes

    # accelerate's debug_launcher, but spawned: a fork of this many-threaded test process can deadlock in the child
    with patch_environment(
        world_size=2,
        master_addr="127.0.0.1",
        master_port="29500",  # not used: the processes meet through the file store below
        accelerate_mixed_precision="no",
        accelerate_debug_rdv_file=str(tmp_path / "rendezvous"),
        accelerate_use_cpu="yes",
        gloo_socket_ifname="lo",
    ):
        launcher = PrepareForLaunch(_two_process_run, debug=True)
        start_processes(launcher, args=(str(tmp_path / "run"), str(tmp_path)), nprocs=2, start_method="spawn")
    procs = [json.loads((tmp_path / f"proc{i}.json").read_text()) for i in (0, 1)]
    assert [p["n"] for p in procs] == [2, 2]
    assert procs[0]["step"] == procs[1]["step"] == 6
    assert procs[0]["sha"] == procs[1]["sha"]
    assert (tmp_path / "run" / "model" / "config.json").is_file()


def test_the_identity_loss_adds_to_the_first_step_as_in_the_rounds(tmp_path):
    """``identity_loss.weight`` > 0: the first step's loss (same seeds, same batch) is the diffusion loss plus the
    identity loss; 0 (the default) leaves training as it was."""
    from frgd.archs.identity_student_arch import IdentityStudent
    from frgd.diffusion.training.identity_loss import save_student

    torch.manual_seed(0)
    student = save_student(IdentityStudent(widths=(8, 12), head=4, dim=16, input_size=32), tmp_path / "s", {})
    losses = {}
    for w in (0.0, 2.0):
        cfg = _tiny_cfg(steps=1, checkpoint_every=0)
        cfg["identity_loss"] = {"weight": w, "t_max": 1000, "student": str(student)}
        train(cfg, tmp_path / f"run{w}")
        losses[w] = json.loads((tmp_path / f"run{w}" / "train_log.jsonl").read_text().splitlines()[0])["loss"]
    assert losses[2.0] > losses[0.0] + 1e-4
    with pytest.raises(InputError, match="identity_loss"):
        load_config({**_tiny_cfg(), "identity_loss": {"t_max": 0}})
