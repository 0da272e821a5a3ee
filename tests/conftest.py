"""Shared test fixtures.

Tests that read research data from ``../shared`` use :func:`shared_path`, which skips cleanly when it is absent
(a user's fresh clone has no ``../shared``; CI here has it). Set ``FRGD_SHARED`` to point elsewhere.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FRGD_SHARED", REPO.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    """Path under ``../shared``; skips the calling test when it does not exist."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


def load_script(name: str):
    """The module of ``scripts/NAME.py`` (the scripts folder is not a package), loaded afresh."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rgb_profile(kind: str = "sRGB") -> bytes:
    """A real ICC profile as a photo carries one (LittleCMS's, through Pillow): ``"sRGB"`` (an RGB profile, which
    outputs carry) or ``"LAB"`` (another colour space, which they do not)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile(kind)).tobytes()


def write_labels(root: Path, rows: list[dict[str, str]]) -> Path:
    """Write a faces128-style ``root/labels.csv`` (columns ``file, split, identity, lm``) for a fake faces folder."""
    with (root / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "split", "identity", "lm"])
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture
def shared() -> Path:
    """The ``../shared`` folder (skips when absent)."""
    return shared_path()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread (tiny models: faster, no oversubscription on a shared machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's weights cache and settings out of the user's folders."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("FRGD_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("FRGD_CONFIG_DIR", str(base / "config"))


@pytest.fixture
def without_shipped_weights(tmp_path, monkeypatch):
    """Our shipped resources (e.g. the trained ``frgd-128``) look absent: what a user sees after deleting them, or a
    checkout whose weights failed to install. Returns the empty folder the resources are looked up in."""
    empty = tmp_path / "no_resources"
    monkeypatch.setattr("frgd.weights.paths._resource_dir", lambda entry: empty / entry.path if entry.path else None)
    return empty


@pytest.fixture
def tiny_identity(monkeypatch):
    """The tiny random identity encoder wherever the editor or FRGD would load the real one."""
    import frgd.identity
    from frgd.identity import IdentityEncoder

    enc = IdentityEncoder.tiny_random(0)
    monkeypatch.setattr(frgd.identity, "get_identity_encoder", lambda backend="dlib", device="cpu": enc.to(device))
    return enc


@pytest.fixture
def tiny_srvgg():
    """Factory ``make(num_conv, seed=0)``: a small x4 ``SRVGGNetCompact`` (8 features, ``num_conv`` body convolutions,
    so ``num_conv + 2`` 3x3 convolutions and a receptive-field radius of that many input pixels) with seeded
    N(0, 0.2) weights, in eval mode."""
    import torch

    from frgd.archs.srvgg_arch import SRVGGNetCompact

    def make(num_conv: int, seed: int = 0) -> SRVGGNetCompact:
        torch.manual_seed(seed)
        net = SRVGGNetCompact(num_feat=8, num_conv=num_conv, upscale=4).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, 0.2)
        return net

    return make


class KeepRestorer:
    """A :class:`frgd.restore.Restorer` that returns every face's aligned crop unchanged (no model)."""

    crop_size, method, name, device, references = 128, "keep", "keep", "cpu", ()

    def progress_units(self, num_samples: int) -> int:
        return 1

    def restore(self, photo, face, request, seeds, progress=None, cancel=None):
        from frgd.restore import FaceSample

        return [FaceSample(image=face.crop.image, seed=s, method=self.method) for s in seeds]

    def params(self) -> dict:
        return {}
