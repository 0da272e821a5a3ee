"""The measurement scripts behind docs/training_rounds.md "Why detail fell in round 8", against oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_script
from torch import nn

from frgd.diffusion.model import make_train_scheduler
from frgd.diffusion.training.pack import LOSSLESS, encode_webp
from frgd.eval.faces import degrade_faces, upscale_faces
from frgd.metrics.detail import detail_score


def _faces(n: int = 3, size: int = 128) -> list[np.ndarray]:
    """Smooth random faces with fine texture (both bands of ``detail`` hold energy)."""
    g = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        base = 128 + 60 * np.sin(2 * np.pi * (xx * g.uniform(1, 3) + yy * g.uniform(1, 3)))[..., None]
        out.append(np.clip(base + g.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8))
    return out


class Estimates(nn.Module):
    """A v-prediction 'model' whose clean estimate is, exactly, the true face of the reference it is given (one-hot
    ``i`` names face ``i``), or with ``copy_input`` the degraded input of ``cond`` (its first three channels)."""

    def __init__(self, faces: torch.Tensor, scheduler, copy_input: bool = False) -> None:
        super().__init__()
        self.faces, self.copy_input = faces, copy_input
        self.abar = scheduler.alphas_cumprod.double()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t, cond, identity=None, drop_identity=None):
        a = self.abar[t].view(-1, 1, 1, 1)
        x0_hat = cond[:, :3].double() if self.copy_input else self.faces[identity.argmax(dim=1)]
        return ((a.sqrt() * x_t.double() - x0_hat) / (1 - a).sqrt()).float()


def test_model_detail_probes_measure_the_clean_estimate_against_the_truth():
    from frgd.eval.model_detail import MODEL_DETAIL_TIMESTEPS, mean_psnr, model_detail

    gts = _faces()
    faces = torch.stack([torch.from_numpy(x).permute(2, 0, 1).double() / 255 * 2 - 1 for x in gts])
    sched = make_train_scheduler()
    refs = torch.eye(len(gts), 8)

    exact = model_detail(Estimates(faces, sched), sched, gts, refs, scales=[8.0], batch=2)["scales"]["x8"]
    want_rows = {(p, t) for p in ("kept", "invented") for t in MODEL_DETAIL_TIMESTEPS}
    assert {(r["probe"], r["t"]) for r in exact} == want_rows
    for r in exact:  # the estimate is the true face whatever x_t: all of its detail, (almost) no error
        assert r["detail"] == pytest.approx(1.0, abs=1e-4) and r["psnr"] > 60

    copies = model_detail(Estimates(faces, sched, copy_input=True), sched, gts, refs, scales=[8.0], batch=2)
    bicubic = [x.astype(np.float32) / 255 for x in upscale_faces(degrade_faces(gts, 8.0), 128)]
    truth = [g.astype(np.float32) / 255 for g in gts]
    want = detail_score(bicubic, truth)
    assert want < 0.1  # an x8 input carries hardly any of the band
    for r in copies["scales"]["x8"]:  # the estimate is the bicubic input: its detail and PSNR, at every t and start
        assert r["detail"] == pytest.approx(want, rel=1e-3)
        assert r["psnr"] == pytest.approx(mean_psnr(bicubic, truth), abs=0.02)
    with pytest.raises(ValueError):
        model_detail(Estimates(faces, sched), sched, gts, refs, timesteps=[1000])


def test_model_detail_script_compares_model_folders(tmp_path):
    """``scripts/measure_model_detail.py`` on a tiny model folder and pack: one-step rows at both scales, the sampled
    row at the first, labelled by the folder."""
    import json

    from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
    from frgd.diffusion.model import save_model_dir
    from frgd.diffusion.training.pack import synthetic_source, write_pack

    torch.manual_seed(0)
    model_dir = save_model_dir(tmp_path / "m", FRGDUNet(**tiny_config(sample_size=128)), make_train_scheduler())
    pack = tmp_path / "pack"
    write_pack(synthetic_source(n_train=8, n_identities=4, n_val=2), pack, quality=80)
    out = tmp_path / "detail.json"
    args = ["--pack", str(pack), "--model", str(model_dir), "--faces", "2", "--sample-faces", "2", "--scales", "8,4"]
    assert load_script("measure_model_detail").main([*args, "--json-out", str(out)]) == 0
    res = json.loads(out.read_text())["models"][str(model_dir)]
    assert [r["probe"] for r in res["x8"]] == ["kept", "invented"] * 3 + ["sampled"]
    assert len(res["x4"]) == 6 and all(np.isfinite(r["detail"]) for r in res["x8"] + res["x4"])


def test_pack_codec_rows_count_bytes_and_lost_detail():
    mod = load_script("measure_pack_codecs")
    imgs = _faces(2)
    lossless = mod.row("lossless", imgs, lambda x: encode_webp(x, LOSSLESS), mod.decode, n_train=10)
    assert lossless["detail"] == pytest.approx(1.0) and lossless["psnr_rgb"] > 99
    low = mod.row("q30", imgs, lambda x: encode_webp(x, 30), mod.decode, n_train=10)
    assert low["bytes_per_face"] < lossless["bytes_per_face"] and low["detail"] < 0.99 and low["psnr_rgb"] < 45
    assert low["train_faces_mib"] == pytest.approx(low["bytes_per_face"] * 10 / 2**20)
