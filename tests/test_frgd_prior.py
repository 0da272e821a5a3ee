"""The FRGD prior: architecture, save/load, the sampler's base and preview (oracles), the CPU training round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import write_labels
from torch import nn

from frgd.archs.face_prior_arch import FacePriorNet
from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
from frgd.diffusion.model import make_train_scheduler, save_model_dir
from frgd.diffusion.prior import PRIOR_WEIGHTS, apply_prior, installed_prior, load_prior, save_prior
from frgd.diffusion.sampling.guidance import STRENGTH_MAX, STRENGTH_MAX_PRIOR, STRENGTH_MIN, slider_to_weights
from frgd.diffusion.sampling.pipeline import FRGDPipeline
from frgd.diffusion.training import train_prior
from frgd.diffusion.training.gpu_batch import GPUDegradation
from frgd.errors import InputError, MissingWeightsError
from frgd.identity import IdentityEncoder
from frgd.io import save_image


class ConstantPrior(nn.Module):
    """A stand-in prior whose estimate is one fixed image ``(1, 3, S, S)``: an oracle for where the base goes."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        self.image = nn.Parameter(image, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.image.expand(x.shape[0], -1, -1, -1)


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory):
    torch.manual_seed(0)
    model = FRGDUNet(**tiny_config(sample_size=32))
    d = save_model_dir(tmp_path_factory.mktemp("prior") / "tiny32", model, make_train_scheduler())
    return FRGDPipeline.from_pretrained(d, device="cpu", identity_encoder=IdentityEncoder.tiny_random(0), prior=None)


def _with_prior(pipe: FRGDPipeline, prior: nn.Module | None) -> FRGDPipeline:
    return FRGDPipeline(
        pipe.model, pipe.scheduler, pipe._identity_encoder, device="cpu", name=pipe.name, prior=prior, prior_name="p"
    )


def test_arch_starts_as_identity_and_checks_shapes():
    torch.manual_seed(0)
    net = FacePriorNet(channels=(8, 12, 16), blocks=1, mid_blocks=1)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(net(x), x)  # zero tail: the estimate starts as the input, exactly
    nn.init.normal_(net.tail.weight, std=0.1)
    y = net(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    torch.testing.assert_close(net(x[:1]), y[:1])  # no batch statistics
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.rand(1, 3, 20, 20))
    with pytest.raises(ValueError):
        FacePriorNet(channels=(8,))


def test_save_load_fp16_and_missing_weights(tmp_path, without_shipped_weights):
    torch.manual_seed(1)
    net = FacePriorNet(channels=(8, 12), blocks=1, mid_blocks=1)
    nn.init.normal_(net.tail.weight, std=0.1)
    d = save_prior(net, tmp_path / "p", sample_size=32, extra={"training": {"steps": 3}})
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["arch"] == "FacePriorNet" and cfg["sample_size"] == 32 and cfg["channels"] == [8, 12]
    loaded = load_prior(d)
    assert loaded.sample_size == 32 and not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), net.half().float()(x))  # the stored weights are float16
    with pytest.raises(MissingWeightsError, match=PRIOR_WEIGHTS):
        load_prior()
    assert installed_prior() is None  # FRGD then falls back to the bicubic base


def test_installed_prior_is_used_only_at_its_size():
    p = installed_prior()
    if p is None:
        pytest.skip("no FRGD prior installed in this checkout")
    assert p.sample_size == 128 and installed_prior(size=128) is not None and installed_prior(size=32) is None


def test_identity_prior_changes_no_pixel(tiny_pipe):
    """A prior whose estimate is its input (the untrained net) gives the bicubic pipeline's samples bit for bit (at the
    same weights: the slider alone maps to a shorter trajectory from the prior, see the next test)."""
    deg = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    w = slider_to_weights(0.3, has_reference=False, from_prior=True)
    kw = dict(num_samples=2, seeds=[3, 4], steps=3, weights=w)
    ident = _with_prior(tiny_pipe, FacePriorNet(channels=(8, 12), blocks=1, mid_blocks=0))
    a = tiny_pipe(deg, **kw)
    b = ident(deg, **kw)
    assert torch.equal(a.images, b.images)
    assert a.params["base"] == "bicubic" and b.params["base"] == "p"


def test_prior_is_the_preview_and_the_start_of_a_whole_face(tiny_pipe):
    """Oracle: a constant prior ``C``. The preview is ``C``; without a mask the sample starts from ``C`` (other samples
    than from the bicubic start; ``use_prior=False`` gives those bit for bit); with a mask the kept region stays the
    input's bicubic upscale exactly (the prior is not used), and a given base is kept exactly."""
    S = tiny_pipe.size
    c = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(5))
    pp = _with_prior(tiny_pipe, ConstantPrior(c))
    deg = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(pp.preview(deg), c)
    bic = tiny_pipe.preview(deg)
    torch.testing.assert_close(pp.preview(deg, use_prior=False), bic, rtol=0, atol=0)
    whole = dict(num_samples=1, seeds=[7], steps=3, identity_strength=0.0)
    a, b = pp(deg, **whole), pp(deg, use_prior=False, **whole)
    assert not torch.equal(a.images, b.images) and a.params["base"] == "p" and b.params["base"] == "bicubic"
    assert torch.equal(b.images, tiny_pipe(deg, **whole).images)
    mask = torch.zeros(1, 1, S, S)
    mask[..., 8:24, 8:24] = 1
    kw = dict(num_samples=1, seeds=[7], steps=3, identity_strength=0.2, mask=mask)
    out = pp(deg, **kw)
    outside = (mask == 0).expand(1, 3, S, S)
    torch.testing.assert_close(out.images[outside], bic[outside], rtol=0, atol=0)
    assert out.params["base"] == "bicubic" and torch.equal(out.images, tiny_pipe(deg, **kw).images)
    given = torch.full((1, 3, S, S), 0.25)
    g = pp(deg, base=given, **kw)
    assert torch.equal(g.images[outside], given[outside]) and g.params["base"] == "given"


@pytest.mark.parametrize("s", [0.0, 0.5, 1.0])
def test_the_slider_samples_less_of_the_trajectory_only_from_the_prior(tiny_pipe, s):
    """Strength ``STRENGTH_MIN -> STRENGTH_MAX_PRIOR`` for a whole face that starts from the prior's estimate;
    ``STRENGTH_MIN -> STRENGTH_MAX`` from the bicubic upscale, under a mask and from a given base."""
    S = tiny_pipe.size
    pp = _with_prior(tiny_pipe, ConstantPrior(torch.full((1, 3, S, S), 0.5)))
    deg = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 1, S, S)
    mask[..., 8:24, 8:24] = 1
    kw = dict(num_samples=1, seeds=[1], steps=3, identity_strength=s)
    strength = lambda out: out.params["weights"]["strength"]  # noqa: E731
    assert strength(pp(deg, **kw)) == pytest.approx(STRENGTH_MIN + (STRENGTH_MAX_PRIOR - STRENGTH_MIN) * s)
    full = STRENGTH_MIN + (STRENGTH_MAX - STRENGTH_MIN) * s
    assert strength(pp(deg, use_prior=False, **kw)) == pytest.approx(full)
    assert strength(pp(deg, mask=mask, **kw)) == pytest.approx(full)
    assert strength(pp(deg, base=torch.full((1, 3, S, S), 0.25), **kw)) == pytest.approx(full)
    assert strength(tiny_pipe(deg, **kw)) == pytest.approx(full)  # no prior installed


def test_apply_prior_resizes_and_clamps():
    net = FacePriorNet(channels=(8, 12), blocks=0, mid_blocks=0)
    out = apply_prior(net, torch.full((3, 3, 8, 8), 1.5), size=32, chunk=2)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32 and float(out.max()) <= 1.0


def _fake_faces(root, n_ids: int = 4, per_id: int = 2):
    """A faces128-like folder (128 px, the rounds' degradation works at that size): train and val identities with two
    photos each."""
    rows = []
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for i in range(n_ids):
            for k in range(per_id):
                f = f"{split}/id{i}_{k}.png"
                noise = rng.random((128, 128))
                img = np.stack([0.5 + 0.3 * np.sin((4 + i) * xx), 0.4 + 0.2 * yy, 0.3 + 0.1 * noise], -1)
                save_image(root / f, (np.clip(img, 0, 1) * 255).astype(np.uint8))
                rows.append({"file": f, "split": split, "identity": f"{split}:{i}", "lm": ""})
    return write_labels(root, rows)


def test_training_round_trip_on_cpu(tmp_path):
    """``train`` (a few steps by a seconds-long budget), resume, ``export``: the exported folder loads as a prior of
    the faces' size and records its training and validation."""
    root = _fake_faces(tmp_path / "faces")
    run = tmp_path / "run"
    argv = ["train", "--faces", str(root), "--run", str(run), "--channels", "8", "12", "--blocks", "1",
            "--mid-blocks", "1", "--batch", "4", "--steps", "6", "--time-budget-min", "5", "--val-faces", "2",
            "--val-first", "1", "--val-every", "3", "--log-every", "2", "--threads", "1"]  # fmt: skip
    assert train_prior.main(argv) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 6 and state["images"] == 24 and state["sample_size"] == 128
    assert set(state["final_val"]) == {"x8", "x4", "x8-mild"} and len(state["val"]) == 3  # steps 3, 6, final
    # resuming a finished run trains no further step
    assert train_prior.main(argv) == 0
    assert json.loads((run / "state.json").read_text())["step"] == 6
    out = tmp_path / "exported"
    assert train_prior.main(["export", "--run", str(run), "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sample_size"] == 128 and cfg["training"]["steps"] == 6 and cfg["training"]["val_pairs_from"] == 1
    assert cfg["training"]["val"] == state["final_val"]
    assert cfg["training"]["extreme_prob"] == GPUDegradation().extreme_prob > 0  # the degradations it saw
    assert load_prior(out).sample_size == 128
    # a later session continues the exported weights (their architecture, not the flags') and counts the total
    run2 = tmp_path / "run2"
    argv2 = [a if a != str(run) else str(run2) for a in argv]
    argv2[argv2.index("--steps") + 1] = "2"
    assert train_prior.main([*argv2, "--init", str(out), "--channels", "16", "24"]) == 0
    out2 = tmp_path / "exported2"
    assert train_prior.main(["export", "--run", str(run2), "--out", str(out2)]) == 0
    cfg2 = json.loads((out2 / "config.json").read_text())
    assert cfg2["channels"] == [8, 12] and cfg2["training"]["images"] == 8 and cfg2["training"]["images_total"] == 32
    assert cfg2["training"]["init"]["path"] == str(out)


def test_load_val_needs_pairs(tmp_path):
    root = _fake_faces(tmp_path / "faces", n_ids=1)
    with pytest.raises((InputError, ValueError, RuntimeError)):
        train_prior.load_val(root, 4, first=3)
