"""Our RRDBNet / SRVGGNetCompact / GFPGANv1Clean against the official code: key sets, shapes and golden outputs.

The manifests and golden tensors were produced by the official BasicSR / Real-ESRGAN / GFPGAN code (see
``../shared/README.md``, ``golden/``).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from frgd.archs.gfpganv1_clean_arch import OFFICIAL_CONFIG, GFPGANv1Clean
from frgd.archs.rrdbnet_arch import RRDBNet
from frgd.archs.srvgg_arch import SRVGGNetCompact
from frgd.archs.stylegan2_clean_arch import StyleGAN2GeneratorClean
from tests.conftest import shared_path

pytestmark = pytest.mark.shared

ARCHS = {"RRDBNet": RRDBNet, "SRVGGNetCompact": SRVGGNetCompact, "GFPGANv1Clean": GFPGANv1Clean}


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _build_meta(cls, cfg: dict) -> torch.nn.Module:
    with torch.device("meta"):
        return cls.from_config(cfg)


@pytest.mark.parametrize(
    "manifest,cls",
    [
        ("rrdbnet_x4plus_manifest.json", RRDBNet),
        ("srvgg_animevideov3_manifest.json", SRVGGNetCompact),
        ("gfpgan_v1_clean_512_manifest.json", GFPGANv1Clean),
    ],
)
def test_full_size_state_dict_matches_official(manifest: str, cls) -> None:
    m = json.loads(shared_path("golden", manifest).read_text())
    model = _build_meta(cls, m["config"])
    ours = _shapes(model)
    official = m["state_dict"]
    assert set(ours) == set(official), (sorted(set(ours) - set(official))[:5], sorted(set(official) - set(ours))[:5])
    bad = {k: (ours[k], official[k]) for k in official if ours[k] != list(official[k])}
    assert not bad, list(bad.items())[:5]


def test_gfpgan_official_config_and_size() -> None:
    m = json.loads(shared_path("golden", "gfpgan_v1_clean_512_manifest.json").read_text())
    for k, v in m["config"].items():
        assert getattr(OFFICIAL_CONFIG, k) == v, k
    model = _build_meta(GFPGANv1Clean, OFFICIAL_CONFIG.to_dict())
    assert sum(v.numel() for v in model.state_dict().values()) == 87_143_276  # figure from shared/README.md


def _load_tiny(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor], str]:
    wpath = shared_path("golden", f"{name}_weights.safetensors")
    iopath = shared_path("golden", f"{name}_io.safetensors")
    with safe_open(str(wpath), "pt") as f:
        meta = f.metadata()
    with safe_open(str(iopath), "pt") as f:
        call = f.metadata().get("call", "")
    cfg = json.loads(meta["config"])
    cls = ARCHS[meta.get("class", "GFPGANv1Clean")]
    model = cls.from_config(cfg).eval()
    model.load_state_dict(load_file(str(wpath)), strict=True)
    return model, load_file(str(iopath)), call


@pytest.mark.parametrize("name", ["rrdbnet_tiny_x2", "rrdbnet_tiny_x4", "srvgg_tiny_x4"])
def test_sr_golden_outputs(name: str) -> None:
    model, io, call = _load_tiny(name)
    assert call.startswith("forward(input)")
    with torch.no_grad():
        out = model(io["input"])
    assert out.shape == io["output"].shape
    torch.testing.assert_close(out, io["output"], atol=1e-5, rtol=0)


def test_gfpgan_golden_outputs() -> None:
    model, io, call = _load_tiny("gfpgan_v1_clean_tiny")
    assert "return_rgb=True" in call and "randomize_noise=False" in call
    with torch.no_grad():
        out, rgbs = model(io["input"], return_rgb=True, randomize_noise=False)
    torch.testing.assert_close(out, io["output"], atol=1e-5, rtol=0)
    assert len(rgbs) == 3
    for i, rgb in enumerate(rgbs):
        torch.testing.assert_close(rgb, io[f"out_rgb_{i}"], atol=1e-5, rtol=0)


def test_gfpgan_golden_is_sensitive_to_weights() -> None:
    """Perturbing one decoder weight must break parity (the comparison is not vacuous)."""
    model, io, _ = _load_tiny("gfpgan_v1_clean_tiny")
    with torch.no_grad():
        model.stylegan_decoder.to_rgbs[-1].bias.add_(0.01)
        out, _ = model(io["input"], return_rgb=True, randomize_noise=False)
    assert (out - io["output"]).abs().max() > 1e-3


def test_stylegan2_decoder_standalone_runs() -> None:
    torch.manual_seed(0)
    g = StyleGAN2GeneratorClean(out_size=16, num_style_feat=8, num_mlp=2, channel_multiplier=1, narrow=1 / 32).eval()
    img, lat = g([torch.randn(2, 8)], randomize_noise=False, return_latents=True)
    assert img.shape == (2, 3, 16, 16) and lat.shape == (2, g.num_latent, 8)
    assert torch.isfinite(img).all()
