"""``frgd enhance`` (aligned and whole photo), ``frgd eval faces``, ``frgd bench enhance``: tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_labels

import frgd.identity
from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
from frgd.cli.main import main
from frgd.diffusion.model import make_train_scheduler, save_model_dir
from frgd.diffusion.prior import apply_prior
from frgd.diffusion.sampling.guidance import IDENTITY_GRADIENT, RESAMPLE_MAX, GuidanceWeights, slider_to_weights
from frgd.diffusion.sampling.pipeline import FRGDPipeline, planned_model_calls
from frgd.diffusion.sampling.schedulers import first_step
from frgd.errors import InputError, MissingWeightsError
from frgd.eval.faces import REPEAT_SEED_STRIDE, bar_status, bench_sampler, evaluate_faces, select_pairs, slider_gains
from frgd.faces.align import TEMPLATE_512
from frgd.identity import IdentityEncoder
from frgd.io import load_rgb, read_provenance, save_image
from frgd.restore import FacePipeline, FaceRequest, FRGDRestorer, auto_scale, load_frgd_pipeline, upscale_photo
from frgd.tensor import tensor_to_image
from frgd_resources import resource_path


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _tiny_identity(monkeypatch):
    """Use the tiny random identity encoder wherever the pipeline would load the real dlib one."""
    enc = IdentityEncoder.tiny_random(0)
    monkeypatch.setattr(frgd.identity, "get_identity_encoder", lambda backend="dlib", device="cpu": enc.to(device))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = FRGDUNet(**tiny_config(sample_size=128))
    return save_model_dir(tmp_path_factory.mktemp("frgd") / "tiny128", model, make_train_scheduler())


@pytest.fixture(scope="module")
def pipe(model_dir) -> FRGDPipeline:
    return FRGDPipeline.from_pretrained(model_dir, device="cpu", identity_encoder=IdentityEncoder.tiny_random(0))


def _face_like(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.6 + 0.2 * np.sin(6 * xx), 0.45 + 0.1 * yy, 0.4 + 0.05 * rng.random((size, size))], -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def test_enhance_aligned_cli(tmp_path, model_dir, capsys):
    inp = save_image(tmp_path / "face.png", _face_like(0, 48))
    ref = save_image(tmp_path / "ref.png", _face_like(1, 128))
    out = tmp_path / "out.png"
    args = ["enhance", str(inp), "--aligned", "--model", str(model_dir), "--samples", "2", "--seed", "5"]
    args += ["--steps", "2", "--reference", str(ref), "--identity", "0.5", "--device", "cpu", "-o", str(out), "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seeds"] == [5, 6] and len(data["identity_scores"]) == 2
    files = [tmp_path / "out_seed5.png", tmp_path / "out_seed6.png"]
    imgs = [load_rgb(f) for f in files]
    assert all(i.shape == (128, 128, 3) for i in imgs)
    assert np.abs(imgs[0].astype(int) - imgs[1].astype(int)).mean() > 1
    prov = read_provenance(files[0])
    assert prov["seed"] == 5 and prov["identity_changed"] is True
    assert "ref.png" in prov["reference_hashes"] and prov["parameters"]["identity_guided"] is True
    # deterministic: the same seed again gives the same pixels; existing outputs are not overwritten by default
    assert main(args) == 2
    assert main([*args, "--overwrite"]) == 0
    assert np.array_equal(load_rgb(files[0]), imgs[0])
    # never over the input
    assert main(["enhance", str(inp), "--aligned", "--model", str(model_dir), "--steps", "1", "-o", str(inp)]) == 2


def test_enhance_harmonise_flag(tmp_path, model_dir, capsys):
    """``--harmonise N`` reaches the sampler (another sample for the same seed, recorded in the provenance); a value
    outside 0..RESAMPLE_MAX is a usage error (exit 2) from the parser."""
    inp = save_image(tmp_path / "face.png", _face_like(0, 48))
    base = ["enhance", str(inp), "--aligned", "--model", str(model_dir), "--seed", "2", "--steps", "3"]
    base += ["--device", "cpu", "--identity", "1"]
    assert main([*base, "-o", str(tmp_path / "h0.png")]) == 0
    assert main([*base, "--harmonise", "1", "-o", str(tmp_path / "h1.png")]) == 0
    capsys.readouterr()
    prov = read_provenance(tmp_path / "h1.png")
    assert prov["parameters"]["harmonise"] == 1 and read_provenance(tmp_path / "h0.png")["parameters"]["harmonise"] == 0
    assert not np.array_equal(load_rgb(tmp_path / "h0.png"), load_rgb(tmp_path / "h1.png"))
    with pytest.raises(SystemExit) as exc:  # refused by the parser, before any model loads
        main([*base, "--harmonise", str(RESAMPLE_MAX + 1), "-o", str(tmp_path / "bad.png")])
    assert exc.value.code == 2 and f"--harmonise must be an integer in 0..{RESAMPLE_MAX}" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()


def test_identity_gradient_override_is_the_weights_with_that_gradient(pipe):
    """``identity_gradient=`` replaces only the gradient of the slider's weights (bit-identical to passing those
    weights), changes the sample where identity guidance acts, and is refused when unknown."""
    import dataclasses

    deg = torch.from_numpy(_face_like(3, 16)).permute(2, 0, 1)[None].float() / 255
    ref = torch.from_numpy(_face_like(4, 128)).permute(2, 0, 1)[None].float() / 255
    common = dict(references=ref, identity_strength=1.0, num_samples=1, seeds=[7], steps=3, use_prior=False)
    fast = pipe(deg, identity_gradient="x0", **common)
    w = dataclasses.replace(pipe.slider_weights(1.0, deg, has_reference=True, use_prior=False), identity_gradient="x0")
    same = pipe(deg, weights=w, **common)
    assert fast.weights.identity_gradient == "x0" and fast.params["weights"]["identity_gradient"] == "x0"
    assert torch.equal(fast.images, same.images)
    default = pipe(deg, **common)
    assert default.weights.identity_gradient == IDENTITY_GRADIENT != "x0"
    assert not torch.equal(default.images, fast.images)
    with pytest.raises(InputError, match="identity_gradient must be one of"):
        pipe(deg, identity_gradient="pixels", **common)


def test_enhance_identity_gradient_flag(tmp_path, model_dir, capsys):
    """``--identity-gradient x0`` (the fast guidance) reaches the sampler with a reference and is recorded in the
    provenance; the default is the denoiser gradient; an unknown value is a usage error from the parser."""
    inp = save_image(tmp_path / "face.png", _face_like(0, 24))
    ref = save_image(tmp_path / "ref.png", _face_like(1, 128))
    base = ["enhance", str(inp), "--aligned", "--model", str(model_dir), "--seed", "2", "--steps", "3"]
    base += ["--device", "cpu", "--identity", "1", "--reference", str(ref)]
    assert main([*base, "-o", str(tmp_path / "d.png")]) == 0
    assert main([*base, "--identity-gradient", "x0", "-o", str(tmp_path / "x.png")]) == 0
    assert read_provenance(tmp_path / "d.png")["parameters"]["identity_gradient"] == IDENTITY_GRADIENT
    assert read_provenance(tmp_path / "x.png")["parameters"]["identity_gradient"] == "x0"
    assert not np.array_equal(load_rgb(tmp_path / "d.png"), load_rgb(tmp_path / "x.png"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*base, "--identity-gradient", "pixels", "-o", str(tmp_path / "bad.png")])
    assert exc.value.code == 2 and "--identity-gradient" in capsys.readouterr().err


def test_enhance_candidates_flag(tmp_path, model_dir, capsys):
    """``--candidates K`` keeps, per output, the most reference-like of K samples: the pixels of candidate
    ``chosen`` of the seed (``candidate_seeds``), recorded in the provenance; it needs a reference (a usage error,
    exit 2, before any model loads) and K in 1..CANDIDATES_MAX."""
    from frgd.diffusion.sampling.pipeline import CANDIDATES_MAX, candidate_seeds

    inp = save_image(tmp_path / "face.png", _face_like(0, 24))
    ref = save_image(tmp_path / "ref.png", _face_like(1, 128))
    base = ["enhance", str(inp), "--aligned", "--model", str(model_dir), "--seed", "2", "--steps", "2"]
    base += ["--device", "cpu", "--identity", "1", "--json"]
    assert main([*base, "--reference", str(ref), "--candidates", "3", "-o", str(tmp_path / "c.png")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["candidates"] == 3 and read_provenance(tmp_path / "c.png")["parameters"]["candidates"] == 3
    scores = []
    for k, seed in enumerate(candidate_seeds(2, 3)):  # each candidate on its own, as a plain sample of its seed
        out = tmp_path / f"plain{k}.png"
        assert main([*base, "--reference", str(ref), "--seed", str(seed), "-o", str(out)]) == 0
        scores.append(json.loads(capsys.readouterr().out)["identity_scores"][0])
    best = int(np.argmax(scores))
    assert best != 0, scores  # the seed's own sample was not the one kept: a choice was made
    diff = np.abs(load_rgb(tmp_path / "c.png").astype(int) - load_rgb(tmp_path / f"plain{best}.png").astype(int))
    assert diff.max() <= 1  # the same candidate (a batch of 3 rounds differently from a batch of 1)
    assert data["identity_scores"][0] == pytest.approx(max(scores), abs=2e-3)
    for bad, msg in ((["--candidates", "2"], "needs --reference"), (["--candidates", str(CANDIDATES_MAX + 1)], "1..")):
        assert main([*base, *bad, "-o", str(tmp_path / "bad.png")]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()


def _aligned_with_and_without(tmp_path, model_dir, capsys, *flags: str) -> tuple[list[str], Path, Path, Path]:
    """``frgd enhance --aligned`` of one face (tiny model, seed 2, 3 steps, s = 0) by default and with ``flags``:
    (the command without ``-o``, the input, the default output, the flagged output)."""
    inp = save_image(tmp_path / "face.png", _face_like(0, 24))
    base = ["enhance", str(inp), "--aligned", "--model", str(model_dir), "--seed", "2", "--steps", "3"]
    base += ["--device", "cpu", "--identity", "0"]
    assert main([*base, "-o", str(tmp_path / "default.png")]) == 0
    assert main([*base, *flags, "-o", str(tmp_path / "flagged.png")]) == 0
    capsys.readouterr()
    return base, inp, tmp_path / "default.png", tmp_path / "flagged.png"


def test_enhance_back_projection_flag(tmp_path, model_dir, capsys):
    """A whole face is back-projected onto the input by default (recorded as ``back_projection``);
    ``--no-back-projection`` leaves the model's sample: other pixels for the same seed, further from the input."""
    _, inp, on, off = _aligned_with_and_without(tmp_path, model_dir, capsys, "--no-back-projection")
    assert read_provenance(on)["parameters"]["back_projection"] is True
    assert read_provenance(off)["parameters"]["back_projection"] is False
    lq = load_rgb(inp).astype(np.float32)

    def err(path: Path) -> float:  # distance to the input at the input's size
        import cv2

        return float(np.abs(cv2.resize(load_rgb(path), lq.shape[1::-1], interpolation=cv2.INTER_AREA) - lq).mean())

    assert err(on) < err(off)


def test_enhance_no_prior_flag(tmp_path, model_dir, capsys):
    """By default a whole face starts from the installed prior's estimate (recorded as ``prior``); ``--no-prior``
    starts from the bicubic upscale: another sample for the same seed, recorded as ``None``."""
    from frgd.diffusion.prior import PRIOR_WEIGHTS, installed_prior

    if installed_prior(size=128) is None:
        pytest.skip("no FRGD prior installed in this checkout")
    base, _, p, b = _aligned_with_and_without(tmp_path, model_dir, capsys, "--no-prior")
    assert read_provenance(p)["parameters"]["prior"] == PRIOR_WEIGHTS
    assert read_provenance(b)["parameters"]["prior"] is None
    assert not np.array_equal(load_rgb(p), load_rgb(b))
    assert read_provenance(b)["parameters"]["base"] == "bicubic"
    # under a mask the kept region is the input's upscale: no prior is used, and the provenance says so
    mask = save_image(tmp_path / "m.png", np.full((128, 128, 3), 255, np.uint8))
    assert main([*base, "--mask", str(mask), "-o", str(tmp_path / "m_out.png")]) == 0
    capsys.readouterr()
    masked = read_provenance(tmp_path / "m_out.png")["parameters"]
    assert masked["prior"] is None and masked["base"] == "bicubic"


def test_enhance_prior_share_flag(tmp_path, model_dir, capsys):
    """By default a whole face's content target mixes the input with the prior's estimate by the estimated share
    (recorded per face); ``--prior-share 1`` holds the face to the prior's estimate: recorded as given, and the result
    at the input's size is closer to the prior's estimate there than the default's."""
    from frgd.diffusion.content import installed_share_net
    from frgd.diffusion.prior import installed_prior

    prior = installed_prior(size=128)
    if prior is None or installed_share_net(prior) is None:
        pytest.skip("no FRGD prior and prior-share estimator installed in this checkout")
    _, inp, auto, one = _aligned_with_and_without(tmp_path, model_dir, capsys, "--prior-share", "1")
    got = read_provenance(auto)["parameters"]["prior_share"]
    assert got["source"] == "estimated" and len(got["values"]) == 1 and 0 <= got["values"][0] < 1
    assert read_provenance(one)["parameters"]["prior_share"] == {"source": "given", "values": [1.0]}
    lq = load_rgb(inp)
    est = tensor_to_image(apply_prior(prior, torch.from_numpy(lq / 255.0).permute(2, 0, 1)[None].float(), 128)[0])

    def err(path: Path) -> float:  # distance to the prior's estimate at the input's size
        import cv2

        small = lambda a: cv2.resize(a, lq.shape[1::-1], interpolation=cv2.INTER_AREA).astype(np.float32)  # noqa: E731
        return float(np.abs(small(load_rgb(path)) - small(est)).mean())

    assert err(one) < err(auto)
    with pytest.raises(SystemExit):
        main(["enhance", str(inp), "--aligned", "--prior-share", "1.5", "-o", str(tmp_path / "x.png")])
    capsys.readouterr()


def test_enhance_aligned_mask_keeps_base(pipe):
    crop = _face_like(2, 32)
    mask = np.zeros((128, 128), np.float32)
    mask[40:90, 30:100] = 1
    (res,) = FRGDRestorer(pipe, steps=2).restore_crop(crop, FaceRequest(mask=mask), [1])
    base = torch.nn.functional.interpolate(
        torch.from_numpy(crop.astype(np.float32) / 255).permute(2, 0, 1)[None], size=(128, 128), mode="bicubic"
    ).clamp(0, 1)
    outside = mask == 0
    assert res.image.shape == (128, 128, 3) and res.image.dtype == np.uint8
    np.testing.assert_array_equal(res.image[outside], tensor_to_image(base)[outside])
    np.testing.assert_array_equal(res.paste_mask, mask)  # an aligned crop's mask is its paste mask


def test_enhance_whole_photo(pipe):
    img = load_rgb(resource_path("demo", "astronaut_lowres.jpg"))
    ref = load_rgb(resource_path("demo", "astronaut_reference.jpg"))
    enh = FacePipeline(FRGDRestorer(pipe, steps=2, identity_strength=0.5), sr_model="lanczos")
    enh.restorer.references = enh.reference_crops([ref])
    out = enh(img, num_samples=2, seeds=[1, 2])
    assert len(out.faces) >= 1 and out.sr_model == "lanczos" and out.identity_changed
    face = out.faces[0]
    assert [f.number for f in out.faces] == list(range(1, len(out.faces) + 1))
    assert out.scale == auto_scale(face.crop.native_scale) and face.crop.size == 128
    h, w = img.shape[:2]
    assert all(im.shape == (h * out.scale, w * out.scale, 3) and im.dtype == np.uint8 for im in out.images)
    canvas, name = upscale_photo(img, int(out.scale), "lanczos")
    assert name == "lanczos" and np.array_equal(canvas, out.background)
    changed = np.abs(out.images[0].astype(int) - canvas).max(axis=2) > 0
    assert 0.005 < changed.mean() < 0.5  # the face area changed, the rest is the SR background
    ys, xs = np.nonzero(changed)
    box = face.face.box * out.scale
    cy, cx = (box[1] + box[3]) / 2, (box[0] + box[2]) / 2
    assert abs(ys.mean() - cy) < 0.25 * (box[3] - box[1]) + 4 and abs(xs.mean() - cx) < 0.25 * (box[2] - box[0]) + 4
    assert np.abs(out.images[0].astype(int) - out.images[1]).mean() > 1e-4
    assert face.samples[0].identity_score is not None and face.samples[0].verdict


def test_enhance_photo_cli_and_no_face(tmp_path, model_dir, capsys):
    """A whole photo: restored and upscaled, its transparency upscaled with it and its colour profile carried to the
    output and the face files (the pixels are never colour-converted); a photo without a face is refused."""
    from conftest import rgb_profile

    from frgd.io import load_image
    from frgd.sr.upscale import upscale_alpha

    icc = rgb_profile()
    rgb = load_rgb(resource_path("demo", "astronaut_lowres.jpg"))
    alpha = np.tile(np.linspace(30, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    src = save_image(tmp_path / "tagged.png", rgb, alpha=alpha, icc_profile=icc)
    out = tmp_path / "photo.png"
    args = ["enhance", str(src), "--model", str(model_dir), "--steps", "1", "--scale", "2", "--sr-model", "bicubic"]
    args += ["--save-faces", str(tmp_path / "faces")]
    assert main([*args, "--faces", "largest", "--device", "cpu", "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scale"] == 2 and data["sr_model"] == "bicubic" and len(data["faces"]) == 1
    got = load_image(out)
    assert got.rgb.shape == (256, 256, 3) and got.icc_profile == icc
    want = np.round(upscale_alpha(alpha, 2) * 255)
    assert got.alpha is not None and np.abs(got.alpha.astype(float) - want).max() <= 1
    assert load_image(tmp_path / "faces" / "photo_face1_input.png").icc_profile == icc
    flat = save_image(tmp_path / "flat.png", np.full((64, 64, 3), 128, np.uint8))
    assert main(["enhance", str(flat), "--model", str(model_dir), "--steps", "1", "-o", str(tmp_path / "x.png")]) == 2
    assert "no face" in capsys.readouterr().err


def test_enhance_keeps_a_16_bit_photo_16_bit(tmp_path, model_dir, capsys):
    """A 16-bit scan comes out 16-bit: the background is the photo's 16-bit upscale (its finer levels kept), the
    faces blended into it, as ``frgd restore`` does; an aligned crop's output is a new face made in 8 bits."""
    from frgd.io import load_image

    rgb = load_rgb(resource_path("demo", "astronaut_lowres.jpg"))
    fine = (np.arange(rgb.shape[1]) % 200).astype(np.uint16)  # levels between the 8-bit ones (x257)
    deep = rgb.astype(np.uint16) * 257 + fine[None, :, None]
    src = save_image(tmp_path / "deep.png", deep)
    out = tmp_path / "photo.png"
    args = ["enhance", str(src), "--model", str(model_dir), "--steps", "1", "--scale", "2", "--sr-model", "bicubic"]
    args += ["--save-faces", str(tmp_path / "faces")]
    assert main([*args, "--faces", "largest", "--device", "cpu", "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    got = load_image(out).rgb
    assert load_image(tmp_path / "faces" / "photo_face1_input.png").rgb.dtype == np.uint16  # the crop as it was
    assert got.dtype == np.uint16 and got.shape == (2 * rgb.shape[0], 2 * rgb.shape[1], 3)
    background, _ = upscale_photo(deep, 2, "bicubic")
    same = np.all(got == background, axis=2)
    assert 0.2 < same.mean() < 1.0  # outside the face: the 16-bit upscale itself; the face changed
    assert np.any(got[same] % 257 != 0)
    x0, y0, x1, y1 = (round(2 * v) for v in data["faces"][0]["box"])
    assert not same[y0:y1, x0:x1].all()
    aligned = save_image(tmp_path / "crop.png", (_face_like(1, 128).astype(np.uint16) * 257))
    assert main(["enhance", str(aligned), "--aligned", "--model", str(model_dir), "--steps", "1", "--device", "cpu",
                 "-o", str(tmp_path / "crop_out.png")]) == 0  # fmt: skip
    assert load_image(tmp_path / "crop_out.png").rgb.dtype == np.uint8


def test_missing_default_weights_is_actionable(capsys, tmp_path, without_shipped_weights):
    with pytest.raises(MissingWeightsError) as err:
        load_frgd_pipeline(None, device="cpu")
    msg = str(err.value)
    assert "frgd-128" in msg and "frgd train" in msg and "frgd weights import" in msg and "--model" in msg
    with pytest.raises(InputError):
        load_frgd_pipeline(tmp_path / "nope", device="cpu")
    inp = save_image(tmp_path / "face.png", _face_like(0, 32))
    assert main(["enhance", str(inp), "--aligned", "-o", str(tmp_path / "o.png")]) == 1
    err_text = capsys.readouterr().err.strip()
    assert err_text.startswith("frgd: error:") and "\n" not in err_text


def test_default_model_from_weights_cache(model_dir, without_shipped_weights):
    import shutil

    from frgd.weights import entry_cache_dir

    dest = entry_cache_dir("frgd-128")
    shutil.copytree(model_dir, dest, dirs_exist_ok=True)
    try:
        p = load_frgd_pipeline(None, device="cpu")
        assert p.size == 128 and p.name == "frgd-128"
    finally:
        shutil.rmtree(dest)


def test_bench_enhance_cli(capsys):
    args = ["bench", "enhance", "--config", "tiny", "--steps", "2", "--samples", "2", "--no-reference", "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["num_samples"] for r in data["runs"]] == [1, 2]
    w = slider_to_weights(0.5, has_reference=False)  # the bench's default slider 0.5
    ran = planned_model_calls(make_train_scheduler(), "dpmpp", 2, w)
    assert ran == 2 - first_step(2, w.strength)  # by default no harmonising passes
    assert all(r["seconds"] > 0 and r["model_calls"] == ran for r in data["runs"])
    assert "random weights" in data["model"]


@pytest.mark.parametrize("gradient", [None, "x0", "denoiser"])
def test_bench_with_reference_uses_cfg_batch(gradient):
    res = bench_sampler(
        config="tiny", steps=4, samples=2, identity_strength=0.5, device="cpu", identity_gradient=gradient
    )
    w = res["runs"][1]["weights"]
    assert w["identity_gradient"] == (gradient or IDENTITY_GRADIENT)
    assert 0 < w["cfg"] != 1  # both branches, batched into one call per step
    planned = planned_model_calls(make_train_scheduler(), "dpmpp", 4, GuidanceWeights(**w))
    assert res["runs"][1]["model_calls"] == planned == 4 - first_step(4, w["strength"])  # no harmonising passes
    # apart from the gradient, the weights are the slider's, as the sampler derives them
    slider = res["runs"][0]["weights"] | {"identity_gradient": IDENTITY_GRADIENT}
    assert GuidanceWeights(**slider) == slider_to_weights(0.5, input_px=16, from_prior=False)


def _fake_faces(root, n_ids: int = 3, per_id: int = 2):
    (root / "val").mkdir(parents=True)
    rows = []
    for i in range(n_ids):
        for k in range(per_id):
            f = f"val/id{i}_{k}.png"
            save_image(root / f, _face_like(10 * i + k, 128))
            rows.append({"file": f, "split": "val", "identity": f"x:{i}", "lm": ""})
    return write_labels(root, rows)


def test_select_pairs(tmp_path):
    root = _fake_faces(tmp_path / "faces")
    pairs = select_pairs(root, 5)
    assert len(pairs) == 5 and all(t != r for t, r, _ in pairs)
    assert len({t for t, _, _ in pairs}) == 5


def test_eval_faces_synthetic(tmp_path, pipe):
    root = _fake_faces(tmp_path / "faces")
    res = evaluate_faces(root, pipeline=pipe, scale=8, limit=3, sliders=[0.0, 1.0], steps=2, batch=2, judge=False)
    methods = [r["method"] for r in res["rows"]]
    frgd_rows = ["frgd s=0 no-ref", "frgd s=1 no-ref", "frgd s=0 ref", "frgd s=1 ref"]
    assert methods == ["bicubic", *(["prior"] if pipe.prior is not None else []), *frgd_rows]
    assert res["prior"] == pipe.prior_name
    assert all(np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 and r["detail"] > 0 for r in res["rows"])
    assert res["rows"][-1]["guidance_similarity"] is not None and res["n_faces"] == 3
    off = evaluate_faces(root, pipeline=pipe, scale=8, limit=3, sliders=[1.0], steps=2, batch=2, judge=False,
                         use_prior=False)  # fmt: skip
    assert [r["method"] for r in off["rows"]] == ["bicubic", "frgd s=1 no-ref", "frgd s=1 ref"] and off["prior"] is None
    # s = 1 from the bicubic base samples STRENGTH_MAX of the trajectory; from the prior's estimate STRENGTH_MAX_PRIOR
    same = [r for r in res["rows"] if r["slider"] == 1.0]
    assert ([r["psnr"] for r in off["rows"][1:]] == [r["psnr"] for r in same]) == (pipe.prior is None)


def test_eval_identity_use_cli(tmp_path, model_dir, capsys):
    """``frgd eval identity-use`` on a faces folder: one row per scale and timestep, and a usage error for one face.
    (The numbers themselves are checked against closed-form losses in tests/test_identity_use.py.)"""
    root = _fake_faces(tmp_path / "faces")
    args = ["eval", "identity-use", "--data", str(root), "--model", str(model_dir), "--limit", "3", "--device", "cpu"]
    assert main([*args, "--scales", "8,64", "--json"]) == 0  # x64 (2 px faces): as far as training goes
    data = json.loads(capsys.readouterr().out)
    assert data["faces"] == 3 and list(data["scales"]) == ["x8", "x64"] and data["identity_backend"] == "dlib"
    with pytest.raises(SystemExit) as exc:
        main([*args, "--scales", "65"])
    assert exc.value.code == 2 and "[1, 64]" in capsys.readouterr().err
    rows = data["scales"]["x8"]["rows"]
    assert [r["t"] for r in rows] == [100, 300, 500, 700, 900]
    assert all(r["mse_ref"] > 0 and r["gain_vs_null"]["faces"] == 3 for r in rows)
    assert main([*args[:-4], "--limit", "1"]) == 2 and "--limit" in capsys.readouterr().err


class _FakeJudge:
    """A stand-in for the evaluation judge: unit embeddings of a fixed random projection of the 8x8 thumbnail."""

    def __init__(self, *a, **k) -> None:
        self.W = torch.randn(16, 3 * 64, generator=torch.Generator().manual_seed(0))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.adaptive_avg_pool2d(images.float(), 8).flatten(1) - 0.5
        return torch.nn.functional.normalize(x @ self.W.T, dim=1)


def test_eval_faces_repeats_average_the_runs_of_their_seeds(tmp_path, pipe, monkeypatch):
    """``repeats=2`` is the face-by-face mean of the run at ``seed`` and the run at ``seed + REPEAT_SEED_STRIDE``
    (clean degradation: the seed only picks the sampling noise), and every judged row keeps its per-face values."""
    monkeypatch.setattr("frgd.identity.judge.Judge", _FakeJudge)
    root = _fake_faces(tmp_path / "faces")
    kw = dict(pipeline=pipe, scale=8, limit=3, sliders=[0.0, 1.0], steps=2, batch=2)
    both = evaluate_faces(root, repeats=2, **kw)
    runs = [evaluate_faces(root, seed=s, **kw) for s in (0, REPEAT_SEED_STRIDE)]
    assert both["repeats"] == 2 and runs[0]["repeats"] == 1
    for k, row in enumerate(both["rows"]):
        one, two = runs[0]["rows"][k], runs[1]["rows"][k]
        assert row["method"] == one["method"] and len(row["judge_per_face"]) == 3
        assert row["judge_similarity"] == pytest.approx(np.mean(row["judge_per_face"]), abs=1e-5)
        expect = (np.asarray(one["judge_per_face"]) + np.asarray(two["judge_per_face"])) / 2
        np.testing.assert_allclose(row["judge_per_face"], expect, atol=2e-5)
        if row["psnr"] is not None:
            assert row["psnr"] == pytest.approx((one["psnr"] + two["psnr"]) / 2, abs=1e-9)
    frgd_rows = [r for r in runs[0]["rows"] if r["slider"] is not None]
    assert (
        frgd_rows[0]["judge_per_face"] != [r for r in runs[1]["rows"] if r["slider"] is not None][-1]["judge_per_face"]
    )
    assert len(both["slider_gains"]) == 2 and set(both["bar"]) >= {"rises_with_slider", "holds"}
    with pytest.raises(InputError):
        evaluate_faces(root, repeats=0, **kw)


def _rows(bic=(22.0, 0.30), s0=(23.0, [0.40, 0.50, 0.60]), s1_ref=(22.5, [0.50, 0.55, 0.58]), s1_noref=(22.6, None)):
    def row(method, slider, ref, psnr, faces):
        judge = None if faces is None else float(np.mean(faces))
        return {"method": method, "slider": slider, "reference": ref, "psnr": psnr, "judge_similarity": judge,
                "judge_per_face": faces}  # fmt: skip

    noref1 = s1_noref[1] if s1_noref[1] is not None else [0.42, 0.5, 0.61]
    return [
        row("bicubic", None, None, bic[0], None) | {"judge_similarity": bic[1]},
        row("frgd s=0 no-ref", 0.0, False, s0[0], s0[1]),
        row("frgd s=1 no-ref", 1.0, False, s1_noref[0], noref1),
        row("frgd s=0 ref", 0.0, True, s0[0], s0[1]),
        row("frgd s=1 ref", 1.0, True, s1_ref[0], s1_ref[1]),
    ]


def test_slider_gains_are_paired_means_with_their_standard_error():
    gains = slider_gains(_rows())
    assert [(g["reference"], g["from"], g["to"]) for g in gains] == [(False, 0.0, 1.0), (True, 0.0, 1.0)]
    d = np.array([0.10, 0.05, -0.02])
    g = gains[1]
    assert g["gain"] == pytest.approx(d.mean(), abs=1e-5) and g["faces_up"] == 2 and g["faces"] == 3
    assert g["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3), abs=1e-5)
    assert slider_gains([{**r, "judge_per_face": None} for r in _rows()]) == []


def test_bar_status_checks_each_clause_of_the_bar():
    assert bar_status(_rows()) == {
        "reference_above_no_reference": True,
        "no_reference_above_bicubic": True,
        "rises_with_slider": True,
        "content_end_psnr_not_below_bicubic": True,
        "holds": True,
    }
    falls = bar_status(_rows(s1_ref=(22.5, [0.35, 0.5, 0.58])))  # mean paired gain -0.0233 < 0
    assert falls["rises_with_slider"] is False and falls["holds"] is False
    assert bar_status(_rows(s1_noref=(22.6, [0.6, 0.6, 0.6])))["reference_above_no_reference"] is False
    assert bar_status(_rows(bic=(22.0, 0.505)))["no_reference_above_bicubic"] is False  # s = 0: 0.5
    assert bar_status(_rows(bic=(23.1, 0.3)))["content_end_psnr_not_below_bicubic"] is False
    no_content_end = bar_status([r for r in _rows() if r["slider"] != 0.0])
    assert no_content_end["content_end_psnr_not_below_bicubic"] is None and no_content_end["holds"] is False
    unjudged = [{**r, "judge_similarity": None, "judge_per_face": None} for r in _rows()]
    st = bar_status(unjudged)
    assert st["rises_with_slider"] is None and st["reference_above_no_reference"] is None
    assert st["content_end_psnr_not_below_bicubic"] is True and st["holds"] is False


def test_eval_faces_candidates_apply_to_the_rows_with_a_reference(tmp_path, pipe):
    root = _fake_faces(tmp_path / "faces")
    kw = dict(pipeline=pipe, scale=8, limit=2, sliders=[0.0, 1.0], steps=2, batch=2, judge=False)
    one, two = evaluate_faces(root, **kw), evaluate_faces(root, candidates=3, **kw)
    assert one["candidates"] == 1 and two["candidates"] == 3
    rows = {r["method"]: (a, r) for a, r in zip(one["rows"], two["rows"])}
    for method in ("frgd s=0 no-ref", "frgd s=1 no-ref", "frgd s=0 ref"):  # nothing to choose by: unchanged
        assert rows[method][0]["psnr"] == rows[method][1]["psnr"]
    a, b = rows["frgd s=1 ref"]
    assert b["guidance_similarity"] >= a["guidance_similarity"] - 1e-4  # the kept candidates include each seed's own
    with pytest.raises(InputError, match="candidates"):
        evaluate_faces(root, candidates=9, **kw)


def test_eval_faces_first_skips_pairs_and_keeps_each_pairs_seed(tmp_path, pipe):
    """``first=K`` evaluates pairs K.. of the default order, each with the seed it has in a longer run."""
    root = _fake_faces(tmp_path / "faces")
    kw = dict(pipeline=pipe, scale=8, preset="medium", sliders=[0.0], steps=2, batch=1, judge=False)  # noisy inputs
    whole = evaluate_faces(root, limit=3, **kw)
    singles = [evaluate_faces(root, limit=1, first=k, **kw) for k in range(3)]
    assert singles[2]["first_pair"] == 2 and singles[2]["n_faces"] == 1
    # pair k alone (first=k) gives the PSNR it has inside the 3-face run only if it gets the same face and seed
    for col in (1, 2):  # frgd s=0 without and with the reference
        psnrs = [r["rows"][col]["psnr"] for r in singles]
        assert len(set(psnrs)) == 3
        assert sum(psnrs) / 3 == pytest.approx(whole["rows"][col]["psnr"], abs=1e-9)
    with pytest.raises(InputError):
        evaluate_faces(root, limit=1, first=-1, **kw)


def test_eval_faces_writes_sample_grid(tmp_path, pipe):
    from frgd.io import load_rgb, read_provenance

    root = _fake_faces(tmp_path / "faces")
    grid = tmp_path / "grid.png"
    res = evaluate_faces(
        root, pipeline=pipe, scale=8, limit=3, sliders=[0.0, 0.5, 1.0], steps=2, batch=2, judge=False, grid=grid,
        grid_faces=2,
    )  # fmt: skip
    s, k = pipe.size, 6 + (pipe.prior is not None)
    img = load_rgb(grid)
    assert img.shape == (2 * s, k * s, 3)  # input, bicubic, [prior,] 3 sliders, ground truth
    assert res["grid"]["columns"][2] == ("prior" if pipe.prior is not None else "frgd s=0")
    cols = [img[:s, i * s : (i + 1) * s].astype(int) for i in range(k)]
    assert all(np.abs(cols[i] - cols[j]).max() > 0 for i in range(k) for j in range(i + 1, k))
    seeds = res["grid"]["seeds"]
    assert len({tuple(x) for x in seeds}) == 3  # every slider column has its own seeds
    prov = read_provenance(grid)
    assert prov["identity_changed"] and prov["parameters"]["columns"][-1] == "ground truth"


@pytest.mark.shared
@pytest.mark.slow
def test_eval_faces_cli_on_shared_val(pipe, monkeypatch, capsys):
    from conftest import shared_path

    data = shared_path("data", "faces128")
    shared_path("weights", "judge")
    monkeypatch.setattr("frgd.restore.load_frgd_pipeline", lambda *a, **k: pipe)
    args = ["eval", "faces", "--data", str(data), "--limit", "2", "--sliders", "0,1", "--steps", "2", "--json"]
    assert main([*args, "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = {r["method"]: r for r in res["rows"]}
    assert -1 <= rows["bicubic"]["judge_similarity"] <= 1
    assert rows["reference photo (judge only)"]["judge_similarity"] > 0.3  # same person, another photo


def test_enhance_whole_photo_mask_limits_the_change(pipe):
    img = load_rgb(resource_path("demo", "astronaut_lowres.jpg"))
    h, w = img.shape[:2]
    enh = FacePipeline(FRGDRestorer(pipe, steps=1), sr_model="bicubic")
    kw = dict(num_samples=2, seeds=[1, 2], scale=2)
    out = enh(img, mask=np.zeros((h, w), np.uint8), **kw)  # nothing may change
    canvas = out.background
    assert all(np.array_equal(im, canvas) for im in out.images)
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 255  # white = may change: only the left half
    out = enh(img, mask=mask, **kw)
    for im in out.images:
        changed = np.abs(im.astype(int) - canvas).max(axis=2) > 0
        assert changed.any() and not changed[:, w + 2 :].any()
    with pytest.raises(InputError, match="photo's size"):
        enh(img, mask=np.zeros((h, w + 1), np.float32), **kw)


def test_one_default_identity_strength(pipe):
    """The pipeline, the evaluation's bench, the restorer and ``frgd enhance`` share the slider's default."""
    import inspect

    from frgd.cli.main import build_parser
    from frgd.diffusion.sampling.schedulers import DEFAULT_IDENTITY_STRENGTH

    assert 0.0 < DEFAULT_IDENTITY_STRENGTH < 1.0
    default = lambda fn: inspect.signature(fn).parameters["identity_strength"].default  # noqa: E731
    assert default(FRGDPipeline.__call__) == default(bench_sampler) == DEFAULT_IDENTITY_STRENGTH
    assert FRGDRestorer(pipe).identity_strength == DEFAULT_IDENTITY_STRENGTH
    args = build_parser().parse_args(["enhance", "in.png", "-o", "out.png"])
    assert args.identity == DEFAULT_IDENTITY_STRENGTH


def _chroma(img: np.ndarray) -> np.ndarray:
    """Per pixel, the largest distance of a channel from the channels' mean (8-bit levels)."""
    f = img.astype(np.float64)
    return np.abs(f - f.mean(axis=2, keepdims=True)).max(axis=2)


def test_black_and_white_stays_black_and_white(tmp_path, model_dir, capsys):
    """A grey face (aligned, or in a photo through any restorer) is restored grey: the tiny random model tints it,
    and without the rule that tint would show; a colour face keeps its colour."""
    from frgd.restore import MONOCHROME_CHROMA, Restorer, face_from_landmarks, is_monochrome

    grey = np.repeat(_face_like(0, 128).mean(axis=2, keepdims=True).round().astype(np.uint8), 3, axis=2)
    noisy = np.clip(grey.astype(int) + np.random.default_rng(0).integers(-1, 2, grey.shape), 0, 255).astype(np.uint8)
    sepia = np.clip(grey * np.array([1.0, 0.85, 0.65]), 0, 255).astype(np.uint8)
    assert is_monochrome(grey) and is_monochrome(noisy) and not is_monochrome(sepia)
    assert not is_monochrome(_face_like(1, 128)) and _chroma(sepia).mean() > 5 * MONOCHROME_CHROMA
    # the aligned CLI path
    inp, out = save_image(tmp_path / "grey.png", grey), tmp_path / "out.png"
    assert main(["enhance", str(inp), "--aligned", "--model", str(model_dir), "--steps", "2", "-o", str(out)]) == 0
    assert _chroma(load_rgb(out)).max() == 0
    assert read_provenance(out)["identity_changed"] is True

    class Tint(Restorer):
        """Adds a pink cast: what a generative restorer may do to a grey face."""

        method, name = "tint", "tint"

        def restore_crop(self, content, request, seeds, *, crop=None, progress=None, cancel=None):
            from frgd.restore import FaceSample

            tinted = np.clip(content.astype(int) + [12, -4, 0], 0, 255).astype(np.uint8)
            return [FaceSample(image=tinted, seed=s, method=self.method) for s in seeds]

    lm = (TEMPLATE_512 - TEMPLATE_512.mean(0)) * 0.3 + [100.0, 90.0]
    for photo, stays_grey in ((np.repeat(_face_like(2, 200)[..., :1], 3, axis=2), True), (_face_like(2, 200), False)):
        face = face_from_landmarks(photo, lm)
        sample = Tint().restore(photo, face, seeds=[0])[0]
        assert bool(_chroma(sample.image).max() == 0) is stays_grey
        assert sample.params.get("monochrome", False) is stays_grey
