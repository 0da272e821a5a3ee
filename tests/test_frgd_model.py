"""FRGDUNet (identity-conditioned denoiser), its scheduler helpers and the model directory format."""

from __future__ import annotations

import json

import pytest
import torch

from frgd.archs.frgd_unet_arch import (
    COND_CHANNELS,
    FRGDUNet,
    default_block_types,
    identity_statistics,
    standardise_identity_input,
    tiny_config,
)
from frgd.diffusion.model import (
    IdentityInfo,
    load_model_dir,
    make_train_scheduler,
    save_model_dir,
)
from frgd.errors import MissingWeightsError


@pytest.fixture(scope="module")
def tiny() -> FRGDUNet:
    torch.manual_seed(0)
    return FRGDUNet(**tiny_config()).eval()


def _inputs(b: int = 2, s: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, s, s, generator=g)
    cond = torch.randn(b, COND_CHANNELS, s, s, generator=g)
    ident = torch.nn.functional.normalize(torch.randn(b, 128, generator=g), dim=1)
    return x, cond, ident


def test_forward_shapes_any_multiple_of_4(tiny):
    for s in (16, 20):
        x, cond, ident = _inputs(2, s)
        with torch.no_grad():
            y = tiny(x, torch.tensor([3, 900]), cond, ident)
        assert y.shape == (2, 3, s, s)
        assert torch.isfinite(y).all()
    with torch.no_grad():  # scalar timestep and no identity
        assert tiny(x, 10, cond, None).shape == (2, 3, 20, 20)


def test_input_validation(tiny):
    x, cond, ident = _inputs(2, 32)  # all checks fire before the UNet runs
    with pytest.raises(ValueError, match="cond must have shape"):
        tiny(x, 1, cond[:, :6], ident)
    with pytest.raises(ValueError, match="multiples of 4"):
        tiny(x[..., :30, :30], 1, cond[..., :30, :30], ident)
    with pytest.raises(ValueError, match="identity must have shape"):
        tiny(x, 1, cond, ident[:, :64])
    with pytest.raises(ValueError, match="prediction_type"):
        FRGDUNet(**tiny_config(prediction_type="sample"))


def test_identity_conditioning_and_dropout(tiny):
    x, cond, ident = _inputs(2, 16)
    t = torch.tensor([500, 500])
    with torch.no_grad():
        with_id = tiny(x, t, cond, ident)
        null = tiny(x, t, cond, None)
        dropped = tiny(x, t, cond, ident, torch.tensor([True, False]))
        other = tiny(x, t, cond, torch.roll(ident, 1, 0))
    # the identity changes the prediction ...
    assert (with_id - other).abs().max() > 1e-4
    assert (with_id - null).abs().max() > 1e-4
    # ... dropping it uses exactly the learned null embedding, per sample
    torch.testing.assert_close(dropped[0], null[0])
    torch.testing.assert_close(dropped[1], with_id[1])
    # embeddings are normalised inside: scale does not matter
    with torch.no_grad():
        torch.testing.assert_close(tiny(x, t, cond, 3.0 * ident), with_id, atol=1e-5, rtol=1e-5)


def test_identity_drop_sampling_rate():
    m = FRGDUNet(**tiny_config(identity_dropout=0.25))
    drop = m.sample_identity_drop(20000, torch.Generator().manual_seed(0))
    assert drop.dtype == torch.bool
    assert abs(drop.float().mean().item() - 0.25) < 0.015


def test_conditioning_channels_matter(tiny):
    x, cond, ident = _inputs(1, 16)
    with torch.no_grad():
        base = tiny(x, 100, cond, ident)
        for sl in (slice(0, 3), slice(3, 4), slice(4, 7)):
            c2 = cond.clone()
            c2[:, sl] = 0
            assert (tiny(x, 100, c2, ident) - base).abs().max() > 1e-5


def test_default_architecture_attention_low_res_only():
    down, up = default_block_types(4)
    assert down == ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
    assert up == ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    m = FRGDUNet(**tiny_config())
    assert m.unet.config.in_channels == 3 + COND_CHANNELS
    assert m.unet.config.class_embed_type == "identity"
    assert m.identity_mlp[0].in_features == 128
    assert m.identity_mlp[-1].out_features == 4 * m.config.block_out_channels[0]


def test_train_scheduler():
    s = make_train_scheduler({"prediction_type": "epsilon", "beta_schedule": "linear"})
    assert s.config.num_train_timesteps == 1000
    assert s.config.prediction_type == "epsilon" and s.config.beta_schedule == "linear"
    c = make_train_scheduler(None)
    assert c.config.beta_schedule == "squaredcos_cap_v2" and c.config.prediction_type == "v_prediction"
    ac = c.alphas_cumprod
    assert ac[0] > 0.999 and ac[-1] < 1e-3 and bool((ac[1:] <= ac[:-1]).all())
    with pytest.raises(ValueError):
        make_train_scheduler({"beta_schedule": "sigmoid"})


def test_model_dir_round_trip(tmp_path, tiny):
    sched = make_train_scheduler(prediction_type=tiny.config.prediction_type)
    out = save_model_dir(tmp_path / "m", tiny, sched, IdentityInfo("dlib", 128))
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert names == {
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "identity.json",
        "scheduler/scheduler_config.json",
    }
    assert json.loads((out / "identity.json").read_text()) == {"backend": "dlib", "dim": 128}
    bundle = load_model_dir(out)
    assert bundle.identity == IdentityInfo("dlib", 128)
    assert bundle.scheduler.config.prediction_type == tiny.config.prediction_type
    assert tuple(bundle.model.config.block_out_channels) == tuple(tiny.config.block_out_channels)
    x, cond, ident = _inputs(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x, 7, cond, ident), tiny(x, 7, cond, ident), atol=1e-5, rtol=1e-5)


def test_model_dir_errors(tmp_path, tiny):
    with pytest.raises(MissingWeightsError, match="frgd weights import"):
        load_model_dir(tmp_path / "absent")
    with pytest.raises(ValueError, match="prediction_type"):
        save_model_dir(tmp_path / "x", tiny, make_train_scheduler(prediction_type="epsilon"))


# ------------------------------------------------------------------------------ standardised identity input
def _cone(n: int = 64, seed: int = 1) -> torch.Tensor:
    """Unit embeddings in a narrow cone, like face-recognition embeddings of different people."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(3.0 * torch.randn(128, generator=g) + torch.randn(n, 128, generator=g), dim=1)


def test_identity_statistics_standardise_to_zero_mean_unit_rms():
    e = _cone()
    center, scale = identity_statistics(e)
    z = (torch.nn.functional.normalize(e.double(), dim=1) - torch.tensor(center, dtype=torch.float64)) / scale
    assert float(z.mean(0).abs().max()) < 1e-12 and abs(float(z.pow(2).mean()) - 1.0) < 1e-12
    assert scale < 0.1  # a narrow cone: components vary by a few hundredths
    with pytest.raises(ValueError):
        identity_statistics(e[:1])
    with pytest.raises(ValueError):
        identity_statistics(e[:1].repeat(4, 1))  # no variation


def test_standardising_a_trained_model_keeps_its_function(tmp_path):
    """``standardise_identity_input`` changes what the first identity layer sees, not what the model computes: the
    same outputs for real identities, dropped ones and the null embedding; the statistics are in the config, survive
    a save/load (float32 and float16), and a second conversion is refused."""
    torch.manual_seed(0)
    m = FRGDUNet(**tiny_config()).eval()
    with torch.no_grad():  # a "trained" first layer, not the init
        m.identity_mlp[0].weight.normal_(0, 0.3)
        m.identity_mlp[0].bias.normal_(0, 0.3)
    x, cond, _ = _inputs(b=4)
    t = torch.tensor([3, 300, 600, 900])
    e, drop = _cone(4, seed=2), torch.tensor([False, True, False, False])
    with torch.no_grad():
        before = m(x, t, cond, identity=e, drop_identity=drop), m(x, t, cond)
        center, scale = identity_statistics(_cone())
        standardise_identity_input(m, center, scale)
        after = m(x, t, cond, identity=e, drop_identity=drop), m(x, t, cond)
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    assert m.config.identity_center == pytest.approx(center) and m.config.identity_scale == scale
    with pytest.raises(ValueError, match="already"):
        standardise_identity_input(m, center, scale)
    save_model_dir(tmp_path / "m", m, make_train_scheduler())
    for dtype, tol in ((torch.float32, 1e-6), (torch.float16, 2e-2)):
        back = load_model_dir(tmp_path / "m", dtype=dtype).model
        assert back.config.identity_scale == scale and back.identity_mean is not None
        with torch.no_grad():
            y = back(x.to(dtype), t, cond.to(dtype), identity=e.to(dtype), drop_identity=drop).float()
        torch.testing.assert_close(y, after[0], atol=tol, rtol=tol)


def test_standardised_input_is_what_the_first_layer_sees():
    """With statistics set (not converted) the first layer's input is ``(e - center) / scale``."""
    torch.manual_seed(0)
    center, scale = identity_statistics(_cone())
    m = FRGDUNet(**tiny_config(identity_center=center, identity_scale=scale)).eval()
    seen = []
    m.identity_mlp[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    e = _cone(3, seed=5)
    with torch.no_grad():
        m.identity_embedding(e, 3)
    torch.testing.assert_close(seen[0], (e - torch.tensor(center)) / scale, atol=1e-5, rtol=1e-5)
    for bad in ({"identity_center": center[:5]}, {"identity_center": center, "identity_scale": 0.0}):
        with pytest.raises(ValueError):
            FRGDUNet(**tiny_config(**bad))
