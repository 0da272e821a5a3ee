"""One face pipeline (:mod:`frgd.restore`) for ``frgd enhance``, ``frgd restore`` and the editor: the same pixels, the
same face numbers, batch runs, and one definition of every rule (tiny random models, CPU)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import frgd.identity
from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
from frgd.cli.main import main
from frgd.diffusion.model import make_train_scheduler, save_model_dir
from frgd.errors import InputError
from frgd.faces.align import TEMPLATE_512
from frgd.faces.detect import DetectedFace
from frgd.identity import IdentityEncoder
from frgd.io import file_sha256, load_image, load_rgb, read_provenance, save_image
from frgd_resources import resource_path

pytest.importorskip("pytestqt")

REPO = Path(__file__).resolve().parents[1]
DEMO = resource_path("demo", "astronaut_lowres.jpg")
REFERENCE = resource_path("demo", "astronaut_reference.jpg")


@pytest.fixture(autouse=True)
def _one_thread_tiny_identity(monkeypatch):
    """One torch thread; the tiny random identity encoder wherever the real one would load."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    enc = IdentityEncoder.tiny_random(0)
    monkeypatch.setattr(frgd.identity, "get_identity_encoder", lambda backend="dlib", device="cpu": enc.to(device))
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = FRGDUNet(**tiny_config(sample_size=128))
    return save_model_dir(tmp_path_factory.mktemp("frgd") / "tiny128", model, make_train_scheduler())


@pytest.fixture
def tiny_gfpgan(monkeypatch, tmp_path):
    """A tiny random GFPGANv1Clean instead of the official weights, for the CLI and the editor alike."""
    from frgd.archs.gfpganv1_clean_arch import GFPGANv1Clean
    from frgd.sr import gfpgan

    torch.manual_seed(0)
    tiny = GFPGANv1Clean(out_size=64, num_style_feat=16, channel_multiplier=1, num_mlp=2, input_is_latent=True,
                         different_w=True, narrow=1 / 16, sft_half=True, fix_decoder=False)  # fmt: skip
    monkeypatch.setattr(gfpgan, "gfpgan_weights_path", lambda version="1.4", weights=None: tmp_path / "w.pth")
    monkeypatch.setattr(gfpgan, "load_gfpgan", lambda version="1.4", weights=None, device="cpu": tiny)
    return tiny


def _face(cx: float, cy: float, eye_dist: float, score: float = 0.99) -> DetectedFace:
    t = TEMPLATE_512 - TEMPLATE_512.mean(0)
    lm = t * (eye_dist / np.linalg.norm(t[1] - t[0])) + (cx, cy)
    box = np.array([lm[:, 0].min() - 6, lm[:, 1].min() - 8, lm[:, 0].max() + 6, lm[:, 1].max() + 6])
    return DetectedFace(box=box, score=score, landmarks=lm)


def _fake_detector(monkeypatch, faces_for_shape):
    """MTCNN replaced by ``faces_for_shape((H, W)) -> [DetectedFace]`` (the editor and the CLI detect through it)."""
    import frgd.faces.detect as detect_mod

    def fake(img, **kw):
        faces = faces_for_shape(img.shape[:2])
        for i, f in enumerate(faces):
            f.index = i
        return faces

    monkeypatch.setattr(detect_mod, "detect_faces", fake)


def _photo(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.3 * np.sin(5 * xx + seed), 0.4 + 0.3 * yy, 0.45 + 0.1 * rng.random((h, w))], -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------- (a) the same pixels
def test_frgd_cli_and_editor_give_identical_pixels(tmp_path, model_dir, qapp, capsys):
    """``frgd enhance`` and the editor (detect, resample, SR background, apply) make the same photo, bit for bit."""
    from frgd_studio.model import backend
    from frgd_studio.model.document import Document

    out = tmp_path / "cli.png"
    args = ["enhance", str(DEMO), "--model", str(model_dir), "--steps", "2", "--seed", "3", "--identity", "0.7"]
    args += ["--reference", str(REFERENCE), "--scale", "2", "--sr-model", "bicubic", "--device", "cpu"]
    assert main([*args, "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cli = load_rgb(out)

    photo = backend.load_photo(DEMO)
    faces = backend.detect(photo.rgb, torch.device("cpu"))
    assert [f["number"] for f in data["faces"]] == list(range(1, len(faces) + 1))
    ref = backend.load_reference(REFERENCE, torch.device("cpu"))
    doc = Document()
    doc.set_photo(photo.rgb, photo.path, photo.sha256)
    doc.set_faces(faces)
    bg = backend.run_sr(photo.rgb, "bicubic", 2, torch.device("cpu"), None, None)
    doc.set_pane_result("SR", bg, {"model": "bicubic"})
    doc.set_background("SR")
    for i, face in enumerate(faces):
        req = backend.FRGDRequest(photo.rgb, face, i + 1, None, None, None, [ref.crop], 0.7, 1, [3], 2, str(model_dir))
        (sample,) = backend.run_frgd(req, torch.device("cpu"), None, None)
        assert sample.identity_score == pytest.approx(data["faces"][i]["identity_scores"][0], abs=1e-4)
        doc.set_applied(i, sample.image, sample.seed, True, sample.paste_mask)
    np.testing.assert_array_equal(doc.composite(), cli)
    assert read_provenance(out)["identity_changed"] is True and doc.identity_changed()


def test_gfpgan_cli_and_editor_give_identical_pixels(tmp_path, tiny_gfpgan, capsys):
    """``frgd restore --method gfpgan`` and the editor's GFPGAN pane make the same photo, bit for bit."""
    from frgd_studio.model import backend

    out = tmp_path / "gfpgan.png"
    args = ["restore", str(DEMO), "--method", "gfpgan", "--scale", "2", "--seed", "0", "--device", "cpu"]
    assert main([*args, "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bg_model"] == "lanczos" and len(data["faces"]) >= 1
    photo = backend.load_photo(DEMO)
    faces = backend.detect(photo.rgb, torch.device("cpu"))
    pane = backend.run_gfpgan(photo.rgb, faces, "v1.4", 1.0, 2, torch.device("cpu"), None, None)
    np.testing.assert_array_equal(pane, load_rgb(out))


# --------------------------------------------------------------------------------------- (b) batch
def test_enhance_batch_folder_with_a_corrupt_photo(tmp_path, model_dir, monkeypatch, capsys):
    """20 photos, one corrupt: a progress bar, the others written, the corrupt one reported (exit 1), a rerun skips
    what is done, --overwrite redoes it."""
    _fake_detector(monkeypatch, lambda hw: [_face(hw[1] / 2, hw[0] / 2, hw[1] / 4)])
    src = tmp_path / "photos"
    src.mkdir()
    for k in range(19):
        save_image(src / f"p{k:02d}.png", _photo(k, 40, 48))
    (src / "p07_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    out = tmp_path / "out"
    args = ["enhance", str(src), "-o", str(out), "--model", str(model_dir), "--steps", "1", "--seed", "0"]
    args += ["--scale", "1", "--device", "cpu"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "20/20" in captured.err  # the progress bar
    assert "19 done, 0 skipped (already done), 1 failed of 20" in captured.out
    assert "p07_broken.jpg" in captured.out.splitlines()[-1]
    report = json.loads((out / "frgd_report.json").read_text())
    assert report["failed"] == 1 and report["failed_files"][0]["source"].endswith("p07_broken.jpg")
    assert "cannot load image" in report["failed_files"][0]["error"]
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == [f"p{k:02d}.png" for k in range(19)]
    assert read_provenance(out / "p03.png")["identity_changed"] is True
    times = {p: p.stat().st_mtime_ns for p in out.glob("*.png")}

    assert main([*args, "--json"]) == 1  # the rerun skips the finished photos
    again = json.loads(capsys.readouterr().out)
    assert (again["done"], again["skipped"], again["failed"]) == (0, 19, 1)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.png")} == times
    (src / "p07_broken.jpg").unlink()
    assert main([*args, "--json", "--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 19


def test_restore_gfpgan_batch_folder_with_a_corrupt_photo(tmp_path, tiny_gfpgan, monkeypatch, capsys):
    """``frgd restore --method gfpgan`` on a folder: like ``frgd enhance``, the corrupt photo is reported (exit 1),
    the others written with the one identity_changed rule, and a rerun skips what is done."""
    _fake_detector(monkeypatch, lambda hw: [_face(hw[1] / 2, hw[0] / 2, hw[1] / 4)])
    src = tmp_path / "photos"
    src.mkdir()
    for k in range(3):
        save_image(src / f"p{k}.png", _photo(k, 40, 48))
    (src / "p1_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    out = tmp_path / "out"
    args = ["restore", str(src), "-o", str(out), "--method", "gfpgan", "--scale", "2", "--bg-model", "bicubic"]
    args += ["--device", "cpu"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "3 done, 0 skipped (already done), 1 failed of 4" in captured.out
    assert "p1_broken.jpg" in captured.out.splitlines()[-1]
    report = json.loads((out / "frgd_report.json").read_text())
    assert report["command"] == "frgd restore" and report["failed"] == 1
    assert report["failed_files"][0]["source"].endswith("p1_broken.jpg")
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png", "p1.png", "p2.png"]
    prov = read_provenance(out / "p0.png")
    assert prov["identity_changed"] is True and prov["parameters"]["method"] == "gfpgan"
    assert load_rgb(out / "p0.png").shape == (80, 96, 3)
    times = {p: p.stat().st_mtime_ns for p in out.glob("*.png")}

    assert main([*args, "--json"]) == 1  # the rerun skips the finished photos
    again = json.loads(capsys.readouterr().out)
    assert (again["done"], again["skipped"], again["failed"]) == (0, 3, 1)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.png")} == times


def test_upscale_batch_folder(tmp_path, capsys):
    """``frgd upscale`` on a folder of 3 photos: OUT/<name>.<format> for each, a report, exit 0; a rerun skips."""
    src = tmp_path / "photos"
    src.mkdir()
    for k in range(3):
        save_image(src / f"p{k}.png", _photo(k, 10, 12))
    out = tmp_path / "out"
    args = ["upscale", str(src), "-o", str(out), "--model", "bicubic", "--scale", "2", "--device", "cpu"]
    assert main([*args, "--format", "webp", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["done"], data["failed"], data["total"]) == (3, 0, 3)
    assert sorted(p.name for p in out.iterdir()) == ["frgd_report.json", "p0.webp", "p1.webp", "p2.webp"]
    assert load_rgb(out / "p2.webp").shape == (20, 24, 3)
    assert read_provenance(out / "p0.webp")["model"] == "bicubic"
    assert main([*args, "--format", "webp"]) == 0
    assert "0 done, 3 skipped (already done), 0 failed of 3" in capsys.readouterr().out


def test_restore_method_frgd_is_frgd_enhance(tmp_path, model_dir, capsys):
    """``frgd restore --method frgd`` is ``frgd enhance`` (its loading and run): the same pixels for the same seed
    and settings."""
    common = [str(DEMO), "--model", str(model_dir), "--steps", "2", "--seed", "3", "--identity", "0.7"]
    common += ["--reference", str(REFERENCE), "--scale", "2", "--device", "cpu", "--faces", "1"]
    assert main(["enhance", *common, "--sr-model", "bicubic", "-o", str(tmp_path / "enhance.png")]) == 0
    restore = ["restore", *common, "--method", "frgd", "--bg-model", "bicubic", "-o", str(tmp_path / "r.png")]
    assert main([*restore, "--save-faces", str(tmp_path / "faces")]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(load_rgb(tmp_path / "r.png"), load_rgb(tmp_path / "enhance.png"))
    prov = read_provenance(tmp_path / "r.png")
    assert prov["identity_changed"] is True and prov["model"].startswith("frgd:")
    face = read_provenance(tmp_path / "faces" / "r_face1_restored.png")  # the face used the references: their hashes
    assert face["reference_hashes"] == prov["reference_hashes"] == {REFERENCE.name: file_sha256(REFERENCE)}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--identity", "0.9"], "--identity is FRGD's"),
        (["--steps", "30", "--model", "somewhere"], "--steps, --model are FRGD's"),
        (["--scheduler", "ddim"], "--scheduler is FRGD's"),
        (["--harmonise", "1"], "--harmonise is FRGD's"),
        (["--identity-gradient", "x0"], "--identity-gradient is FRGD's"),
        (["--no-prior"], "--no-prior is FRGD's"),
        (["--reference", str(REFERENCE)], "--reference is FRGD's"),
        (["--reference-faces", "2"], "--reference-faces is FRGD's"),
    ],
)
def test_restore_gfpgan_refuses_the_frgd_flags_it_would_ignore(tmp_path, capsys, extra, named):
    """``frgd restore --method gfpgan`` with an FRGD-only flag is a usage error (exit 2) naming the flag, before any
    model loads, instead of a result that silently ignores it."""
    out = tmp_path / "r.png"
    assert main(["restore", str(DEMO), "-o", str(out), "--method", "gfpgan", "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err
    assert named in err and "--method frgd" in err
    assert not out.exists()


# --------------------------------------------------------------------------------------- (b2) --save-faces
def _two_faces(monkeypatch) -> None:
    _fake_detector(
        monkeypatch, lambda hw: [_face(hw[1] * 0.7, hw[0] / 2, hw[1] / 6), _face(hw[1] * 0.3, hw[0] / 2, 14)]
    )


def _group_photo(tmp_path: Path, monkeypatch) -> tuple[Path, np.ndarray]:
    """A 160x96 photo of two faces (the fake detector finds them), saved as ``group.png``: its path and pixels."""
    _two_faces(monkeypatch)
    photo = tmp_path / "group.png"
    rgb = _photo(4, 96, 160)
    save_image(photo, rgb)
    return photo, rgb


def test_save_faces_writes_crops_that_paste_back_into_the_output(tmp_path, model_dir, monkeypatch, capsys):
    """``frgd enhance --save-faces``: per face the input crop, one restored crop per seed (provenance: seed, flagged
    identity-changed), a side-by-side comparison, and an index written last whose crop affines and files rebuild each
    output photo (the background at scale 1 is the photo; the paste is :func:`frgd.restore.paste_faces`; the index's
    matrices are rounded to 8 decimals: within one level)."""
    from frgd.faces.align import FaceCrop, align_face
    from frgd.restore import paste_faces

    photo, rgb = _group_photo(tmp_path, monkeypatch)
    faces_dir = tmp_path / "faces"
    args = ["enhance", str(photo), "--model", str(model_dir), "--steps", "1", "--seed", "5", "--samples", "2"]
    args += ["--scale", "1", "--device", "cpu", "-o", str(tmp_path / "out.png"), "--save-faces", str(faces_dir)]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["face_files"] == str(faces_dir / "out_faces.json")
    names = [f"out_face{n}_{kind}.png" for n in (1, 2) for kind in ("cmp", "input", "restored_seed5", "restored_seed6")]
    assert sorted(p.name for p in faces_dir.iterdir()) == sorted([*names, "out_faces.json"])
    index = json.loads((faces_dir / "out_faces.json").read_text())
    assert [f["number"] for f in index["faces"]] == [1, 2] and index["command"] == "frgd enhance"
    assert index["outputs"] == [str(Path(o).resolve()) for o in data["outputs"]] and [
        f["box"] for f in index["faces"]
    ] == [f["box"] for f in data["faces"]]
    for k, (out, seed) in enumerate(zip(data["outputs"], (5, 6))):
        pastes = []
        for f in index["faces"]:
            c = f["crop"]
            aligned = align_face(rgb, np.asarray(f["landmarks"]), c["size"])  # the face's landmarks, to 0.01 px
            np.testing.assert_allclose(aligned.affine, c["affine"], atol=0.05)
            matrices = [np.asarray(c[key]) for key in ("affine", "inverse")]
            crop = FaceCrop(load_rgb(faces_dir / f["files"]["input"]), *matrices, c["size"], np.asarray(c["landmarks"]),
                            np.asarray(c["crop_landmarks"]), tuple(c["source_shape"]), c["supersample"])  # fmt: skip
            assert np.abs(crop.image.astype(int) - aligned.image).mean() < 1.0
            restored = load_rgb(faces_dir / f["files"]["restored"][k])
            prov = read_provenance(faces_dir / f["files"]["restored"][k])
            assert (
                prov["seed"] == seed and prov["identity_changed"] is True and prov["parameters"]["face"] == f["number"]
            )
            cmp = load_rgb(faces_dir / f["files"]["cmp"])
            np.testing.assert_array_equal(cmp[:, 128 * (k + 1) : 128 * (k + 2)], restored)
            np.testing.assert_array_equal(cmp[:, :128], crop.image)
            pastes.append((crop, restored, None))
        rebuilt = paste_faces(rgb, pastes, 1).astype(int)
        assert np.abs(rebuilt - load_rgb(out)).max() <= 1
        assert np.abs(rebuilt - paste_faces(rgb, pastes[:1], 1)).max() > 10, "both faces are pasted"


def test_save_faces_refuses_to_replace_and_an_overwrite_drops_a_face_fewer(tmp_path, model_dir, monkeypatch, capsys):
    """Without --overwrite a folder with this photo's faces is refused before any work (exit 2, nothing written);
    with it, a rerun that finds a face fewer removes that face's files (the ones the earlier index listed), and
    leaves other files alone."""
    photo, _rgb = _group_photo(tmp_path, monkeypatch)
    faces_dir = tmp_path / "faces"
    args = ["enhance", str(photo), "--model", str(model_dir), "--steps", "1", "--seed", "0", "--scale", "1"]
    args += ["--device", "cpu", "--save-faces", str(faces_dir)]
    assert main([*args, "-o", str(tmp_path / "a.png")]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in faces_dir.iterdir()}
    assert len(before) == 7
    assert main([*args, "-o", str(tmp_path / "a2.png")]) == 0, "another output name: other face files"
    capsys.readouterr()
    (faces_dir / "a_face1_notes.txt").write_text("mine")
    (faces_dir / "a_face9_input.png").write_bytes(b"not listed by the index")
    assert main([*args, "-o", str(tmp_path / "b.png"), "--overwrite"]) == 0  # b: no faces of b yet
    (tmp_path / "a.png").unlink()
    assert main([*args, "-o", str(tmp_path / "a.png")]) == 2
    assert "already holds the faces of a" in capsys.readouterr().err and not (tmp_path / "a.png").exists()
    assert {p.name: p.stat().st_mtime_ns for p in faces_dir.glob("a_face[12]_*.png")} == {
        n: t for n, t in before.items() if n.startswith(("a_face1_", "a_face2_"))
    }
    _fake_detector(monkeypatch, lambda hw: [_face(hw[1] * 0.7, hw[0] / 2, hw[1] / 6)])
    assert main([*args, "-o", str(tmp_path / "a.png"), "--overwrite"]) == 0
    left = sorted(p.name for p in faces_dir.glob("a_*"))
    assert left == ["a_face1_cmp.png", "a_face1_input.png", "a_face1_notes.txt", "a_face1_restored.png",
                    "a_face9_input.png", "a_faces.json"]  # fmt: skip
    assert [f["number"] for f in json.loads((faces_dir / "a_faces.json").read_text())["faces"]] == [1]
    assert len(list(faces_dir.glob("a2_*"))) == 7


def test_save_faces_in_a_gfpgan_batch_resumes_photos_without_saved_faces(tmp_path, tiny_gfpgan, monkeypatch, capsys):
    """``frgd restore`` on a folder with --save-faces: every photo's faces and index; a photo whose index is missing
    is done again by a rerun (the others are skipped); the faces folder may be neither the output nor an input folder;
    --aligned crops take no --save-faces."""
    _fake_detector(monkeypatch, lambda hw: [_face(hw[1] / 2, hw[0] / 2, hw[1] / 4)])
    src = tmp_path / "photos"
    src.mkdir()
    for k in range(3):
        save_image(src / f"p{k}.png", _photo(k, 40, 48))
    out, faces_dir = tmp_path / "out", tmp_path / "faces"
    args = ["restore", str(src), "-o", str(out), "--method", "gfpgan", "--scale", "2", "--bg-model", "bicubic"]
    args += ["--device", "cpu", "--json", "--save-faces"]
    assert main([*args, str(faces_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 3
    for k in range(3):
        index = json.loads((faces_dir / f"p{k}_faces.json").read_text())
        (face,) = index["faces"]
        assert face["crop"]["size"] == 64 and load_rgb(faces_dir / face["files"]["restored"][0]).shape == (64, 64, 3)
        assert read_provenance(faces_dir / face["files"]["restored"][0])["parameters"]["method"] == "gfpgan"
    (faces_dir / "p1_faces.json").unlink()
    assert main([*args, str(faces_dir)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["done"], again["skipped"]) == (1, 2) and (faces_dir / "p1_faces.json").is_file()
    for bad, said in ((out, "is the output folder"), (src, "holds input photos")):
        assert main([*args, str(bad)]) == 2
        assert said in capsys.readouterr().err
    crop = tmp_path / "crop.png"
    save_image(crop, _photo(0, 128, 128))
    assert main(["enhance", str(crop), "--aligned", "-o", str(tmp_path / "c.png"), "--save-faces", str(faces_dir)]) == 2
    assert "--save-faces is for photos" in capsys.readouterr().err


def test_faces_paste_puts_saved_or_retouched_crops_back(tmp_path, model_dir, monkeypatch, capsys):
    """``frgd faces paste`` of a face index: the saved crops onto the photo give the chosen sample's output (within
    one level); a crop retouched at twice the size, given as face 2, changes only face 2's paste box of the output it
    goes onto, and its mark lands where it was drawn; the result is flagged identity-changed. Wrong faces, seeds,
    canvases and files are usage errors (exit 2) that write nothing."""
    from frgd.faces.align import FaceCrop, paste_box

    photo, rgb = _group_photo(tmp_path, monkeypatch)
    from conftest import rgb_profile

    icc = rgb_profile()  # goes with the photo's pixels into every output made of them
    save_image(photo, rgb, icc_profile=icc, overwrite=True)
    faces_dir = tmp_path / "faces"
    args = ["enhance", str(photo), "--model", str(model_dir), "--steps", "1", "--seed", "5", "--samples", "2"]
    args += ["--scale", "2", "--sr-model", "bicubic", "--device", "cpu", "-o", str(tmp_path / "out.png")]
    assert main([*args, "--save-faces", str(faces_dir)]) == 0
    index = faces_dir / "out_faces.json"
    small = tmp_path / "small.png"
    save_image(small, rgb)  # not a face crop (not square)
    assert (
        main(["faces", "paste", str(index), "--onto", str(photo), "--seed", "6", "-o", str(tmp_path / "r1.png")]) == 0
    )
    assert main(["enhance", *args[1:-2], "--scale", "1", "-o", str(tmp_path / "x1.png")]) == 0  # the same at x1
    assert np.abs(load_rgb(tmp_path / "r1.png").astype(int) - load_rgb(tmp_path / "x1_seed6.png")).max() <= 1

    face2 = json.loads(index.read_text())["faces"][1]
    edited = np.repeat(np.repeat(load_rgb(faces_dir / face2["files"]["restored"][0]), 2, 0), 2, 1)  # 256 px
    edited[100:156, 100:156] = 255  # a white mark in the middle of the crop
    save_image(tmp_path / "edited.png", edited)
    capsys.readouterr()
    assert main(["faces", "paste", str(index), "--face", f"2={tmp_path / 'edited.png'}", "-o", str(tmp_path / "p.png"),
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["scale"] == 2.0
    assert {load_image(tmp_path / n).icc_profile for n in ("r1.png", "p.png", "out_seed5.png")} == {icc}
    out, pasted = load_rgb(tmp_path / "out_seed5.png"), load_rgb(tmp_path / "p.png")
    y0, y1, x0, x1 = paste_box(FaceCrop.from_json(face2["crop"]), 256, 2.0, out.shape[:2])
    outside = np.ones(out.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(pasted[outside], out[outside])
    centre = np.asarray(face2["crop"]["inverse"]) @ [64, 64, 1] * 2  # the crop's centre, on the x2 output
    cy, cx = (int(round(v)) for v in centre[::-1])
    assert pasted[cy - 2 : cy + 3, cx - 2 : cx + 3].min() >= 250 and out[cy, cx].max() < 250
    prov = read_provenance(tmp_path / "p.png")
    assert prov["identity_changed"] is True and set(prov["parameters"]["faces"]) == {"2"}

    bad = [(["--face", f"3={small}"], "no face 3"), (["--seed", "9"], "no sample of seed 9"),
           (["--onto", str(tmp_path / "x1_seed6.png"), "--face", f"2={small}"], "a face crop is square"),
           (["--onto", str(tmp_path / "edited.png")], "not the photo the faces are of")]  # fmt: skip
    for extra, said in bad:
        assert main(["faces", "paste", str(index), *extra, "-o", str(tmp_path / "no.png")]) == 2
        assert said in capsys.readouterr().err and not (tmp_path / "no.png").exists()
    (tmp_path / "junk.json").write_text("{")
    assert main(["faces", "paste", str(tmp_path / "junk.json"), "-o", str(tmp_path / "no.png")]) == 2
    assert "not a face index" in capsys.readouterr().err


def test_faces_paste_takes_the_sidecars_of_faces_align(tmp_path, monkeypatch, capsys):
    """``frgd faces align`` then ``frgd faces paste`` of its sidecars: a crop restored elsewhere (here: edited in
    place) goes back onto the photo, inside its face's paste box only."""
    from frgd.faces.align import FaceCrop, paste_box

    photo, rgb = _group_photo(tmp_path, monkeypatch)
    assert main(["faces", "align", str(photo), "-o", str(tmp_path / "al"), "--min-score", "0.5"]) == 0
    sidecars = sorted((tmp_path / "al").glob("group_face*.json"))
    assert len(sidecars) == 2
    meta = json.loads(sidecars[0].read_text())
    crop_file = tmp_path / "al" / meta["crop"]
    crop = load_rgb(crop_file).copy()
    crop[40:90, 40:90] = 0
    save_image(crop_file, crop, overwrite=True)
    capsys.readouterr()
    assert main(["faces", "paste", *map(str, sidecars), "--face", f"1={crop_file}", "-o", str(tmp_path / "p.png")]) == 0
    pasted = load_rgb(tmp_path / "p.png")
    y0, y1, x0, x1 = paste_box(FaceCrop.from_json(meta), 128, 1.0, rgb.shape[:2])
    outside = np.ones(rgb.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(pasted[outside], rgb[outside])
    assert pasted[y0:y1, x0:x1].min() < 10 < rgb[y0:y1, x0:x1].min()
    assert main(["faces", "paste", str(sidecars[0]), "--seed", "1", "-o", str(tmp_path / "q.png")]) == 2


# --------------------------------------------------------------------------------------- (c) face numbers
def test_face_numbers_are_the_same_in_the_cli_and_the_editor(tmp_path, model_dir, monkeypatch, capsys, qapp):
    """Faces are numbered 1, 2, 3 from left to right everywhere, whatever order the detector returns them in."""
    from frgd_studio.model import backend

    # largest first (MTCNN's order), which is not left to right
    _fake_detector(monkeypatch, lambda hw: [_face(100, 50, 30), _face(160, 50, 20), _face(40, 50, 16)])
    photo = tmp_path / "three.png"
    save_image(photo, _photo(1, 100, 200))
    args = ["enhance", str(photo), "--model", str(model_dir), "--steps", "1", "--seed", "1", "--scale", "1"]
    assert main([*args, "--device", "cpu", "-o", str(tmp_path / "all.png"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["faces"]
    editor = backend.detect(load_rgb(photo), torch.device("cpu"))
    assert [f["number"] for f in cli] == [1, 2, 3]
    for f, e in zip(cli, editor):
        np.testing.assert_allclose(f["box"], e.box, atol=0.01)
    assert [round((f["box"][0] + f["box"][2]) / 2) for f in cli] == [40, 100, 160]
    assert main([*args, "--faces", "2", "-o", str(tmp_path / "two.png"), "--json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)["faces"]
    assert only["number"] == 2 and only["box"] == cli[1]["box"]
    assert main([*args, "--faces", "0", "-o", str(tmp_path / "zero.png")]) == 2
    assert "numbered 1..3 from left to right" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- (d) one source per rule
def _sources() -> dict[Path, str]:
    return {p: p.read_text() for root in ("pipelines", "editor") for p in (REPO / root).rglob("*.py")}


@pytest.mark.parametrize(
    "pattern",
    [
        r"^FACE_SIZE = ",  # the aligned crop size
        r"^TEMPLATE_512(: [^=]+)? = ",  # the five-point template
        r"^def template\(",
        r"^def face_region_mask\(",
        r"^DEVICE_CHOICES = ",
        r"^def to_uint8\(",
        r"^def modcrop\(",
        r"^def identity_changed\(",
        r"^def number_faces\(",
        r"^def load_frgd_pipeline\(",
        r"^def default_model_dir\(",
        r"^def background_model\(",
        r"^def auto_scale\(",
        r"^def faces_scale\(",
        r"^def fitting_scale\(",
        r"^def paste_faces\(",
        r"^def native_crop_size\(",
    ],
)
def test_every_rule_is_defined_once(pattern):
    where = [str(p.relative_to(REPO)) for p, text in _sources().items() if re.search(pattern, text, re.M)]
    assert len(where) == 1, f"{pattern!r} defined in {where}"


def _callers(name: str) -> set[str]:
    """Files under pipelines/ and editor/ whose code calls the function ``name(...)`` (``self.name()`` aside)."""
    import ast

    users = set()
    for p, text in _sources().items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call):
                f = node.func
                method = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self"
                if (isinstance(f, ast.Name) and f.id == name) or (
                    isinstance(f, ast.Attribute) and f.attr == name and not method
                ):
                    users.add(str(p.relative_to(REPO)))
    return users


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        # the paste path: frgd.restore.paste_faces
        ("paste_back", {"pipelines/frgd/restore/pipeline.py"}),
        # alignment: the restore API (and `frgd faces align`, which writes aligned crops)
        ("align_face", {"pipelines/frgd/restore/faces.py", "pipelines/frgd/cli/cmd_faces.py"}),
        ("resample_crop", {"pipelines/frgd/restore/faces.py"}),
        (
            "detect_faces",
            {"pipelines/frgd/restore/faces.py", "pipelines/frgd/cli/cmd_faces.py", "pipelines/frgd/identity/cache.py"},
        ),  # fmt: skip
        # the background of restored photos: frgd.restore.upscale_photo (`frgd upscale` and the SR bench aside)
        (
            "UpscalePipeline",
            {"pipelines/frgd/restore/pipeline.py", "pipelines/frgd/cli/cmd_sr.py", "pipelines/frgd/eval/bench_sr.py"},
        ),  # fmt: skip
        ("background_model", {"pipelines/frgd/restore/pipeline.py"}),
    ],
)
def test_one_paste_align_and_background_path(name, allowed):
    """Align, paste and the background choice are implemented once: no other module calls them."""
    users = _callers(name) - {"pipelines/frgd/faces/align.py", "pipelines/frgd/faces/detect.py"}
    assert users <= allowed, f"{name} is called outside the restore API: {sorted(users - allowed)}"


def test_editor_document_does_not_import_the_backend():
    """document.py <-> backend.py is no import circle any more: the backend uses the document, not the reverse."""
    text = (REPO / "editor/frgd_studio/model/document.py").read_text()
    assert not re.search(
        r"^\s*from \.backend import|^\s*from \. import backend|import frgd_studio\.backend", text, re.M
    )


def test_the_pipeline_pastes_a_big_unchanged_face_back_unchanged():
    """The one paste path keeps a magnified face's own detail: a restorer that changes nothing leaves a photo with a
    face 2.4x its crop as it was (a plain paste loses its fine texture)."""
    import math

    import cv2
    from conftest import KeepRestorer

    from frgd.faces.align import template
    from frgd.restore import FacePipeline, paste_faces

    rng = np.random.default_rng(3)
    photo = cv2.GaussianBlur(rng.normal(0.5, 0.15, (480, 560, 3)).astype(np.float32), (0, 0), 0.8)
    photo = np.round(np.clip(photo, 0, 1) * 255).astype(np.uint8)
    t = template(128)
    lm = (t - t.mean(0)) * 2.4 + [280.0, 240.0]
    face = DetectedFace(box=np.array([150.0, 100.0, 410.0, 380.0]), score=0.99, landmarks=lm)
    out = FacePipeline(KeepRestorer())(photo, faces=[face], scale="auto")
    assert out.scale == 1
    crop = out.faces[0].crop
    plain = paste_faces(photo, [(crop, crop.image, None)], 1, keep_detail=False)
    inside = np.zeros((480, 560), bool)
    inside[170:310, 210:350] = True  # the middle of the face

    def psnr(a: np.ndarray) -> float:
        return 10 * math.log10(255**2 / np.mean((a[inside].astype(float) - photo[inside]) ** 2))

    assert psnr(out.images[0]) > 45 and psnr(plain) < 35, (psnr(out.images[0]), psnr(plain))  # measured 56.5, 30.4


# --------------------------------------------------------------------------------------- (d) references in groups
def test_the_reference_rule():
    """`choose_reference_faces`: the clearly most similar face, none when two are close (with a note), all, numbers."""
    from frgd.restore import REFERENCE_MATCH_MARGIN, choose_reference_faces

    m = REFERENCE_MATCH_MARGIN
    assert choose_reference_faces([1, 2, 3], similarities=[0.80, 0.80 + m + 0.01, 0.7]).numbers == (2,)
    close = choose_reference_faces([1, 2, 3], similarities=[0.80, 0.80 + m - 0.01, 0.7])
    assert close.numbers == () and "faces 2 and 1" in close.note and "--reference-faces" in close.note
    clear = [0.80, 0.80 + m + 0.01, 0.7]
    assert choose_reference_faces([1, 2, 3], similarities=clear, min_similarity=0.85).numbers == (2,)
    nobody = choose_reference_faces([1, 2, 3], similarities=clear, min_similarity=0.89)
    assert nobody.numbers == () and "no face looks like it" in nobody.note
    assert choose_reference_faces([1, 2], "2", similarities=[0.9, 0.1], min_similarity=0.95).numbers == (2,)
    assert choose_reference_faces([4], similarities=None).numbers == (4,)  # the only face: no measuring
    assert choose_reference_faces([1, 2], "all", similarities=None).numbers == (1, 2)
    assert choose_reference_faces([1, 2, 3], "3,1").numbers == (1, 3)
    assert choose_reference_faces([1, 2, 3], 2, has_references=False).numbers == ()
    assert choose_reference_faces([1, 2], "best", has_references=False).numbers == ()
    for bad, msg in (("2,5", "not 5"), ("left", "unknown reference faces"), ("", "not none")):
        with pytest.raises(InputError, match=msg):
            choose_reference_faces([1, 2], bad)


def test_a_reference_goes_to_the_face_it_is_of(model_dir):
    """In a photo of two people with a reference of face 2 (its own crop: similarity 1 under any encoder), only face
    2 is guided by it and gets a verdict; face 1 is restored without it. `"all"` and numbers override."""
    from frgd.restore import FacePipeline, FRGDRestorer, align_faces, load_frgd_pipeline

    photo = _photo(5, 200, 320)
    faces = [_face(90, 100, 30), _face(230, 95, 34)]
    pipe = FacePipeline(FRGDRestorer(load_frgd_pipeline(model_dir, device="cpu"), steps=1), sr_model="bicubic")
    crops = {f.number: f.crop.image for f in align_faces(photo, faces)}
    pipe.restorer.references = [crops[2]]
    out = pipe(photo, faces=faces, seeds=[0], scale=1)
    got = {f.number: (f.reference, f.reference_similarity, f.samples[0].verdict is not None) for f in out.faces}
    assert got[2][:2] == (True, pytest.approx(1.0, abs=1e-4)) and got[2][2]
    assert got[1][0] is False and got[1][1] < 1.0 - 0.05 and not got[1][2], got
    assert out.params["reference_faces"] == [2] and out.params["reference_note"] is None
    assert [f.reference for f in pipe(photo, faces=faces, seeds=[0], scale=1, reference_faces="all").faces] == [
        True, True]  # fmt: skip
    assert [f.reference for f in pipe(photo, faces=faces, seeds=[0], scale=1, reference_faces=1).faces] == [
        True, False]  # fmt: skip


def test_reference_faces_needs_a_reference(tmp_path, capsys):
    assert main(["enhance", str(DEMO), "-o", str(tmp_path / "o.png"), "--reference-faces", "2"]) == 2
    assert "give --reference too" in capsys.readouterr().err
    args = ["--reference", str(REFERENCE), "--reference-faces", "1", "--aligned"]
    assert main(["enhance", str(DEMO), "-o", str(tmp_path / "o.png"), *args]) == 2
    assert "--aligned restores one face crop" in capsys.readouterr().err


def test_auto_scale_keeps_the_output_within_its_pixel_budget():
    """`auto_scale` maps the smallest face 1:1 unless the photo would pass AUTO_MAX_PIXELS; then the largest scale
    that fits (at least 1). The pipeline logs when it caps."""
    from frgd.restore import AUTO_MAX_PIXELS, auto_scale

    assert auto_scale(0.13) == 8 and auto_scale(0.13, (300, 400)) == 8
    assert auto_scale(0.17, (3000, 4000)) == 2  # 12 px face in a 12 MP photo: 6x would be 432 MP
    assert 2 * 2 * 3000 * 4000 <= AUTO_MAX_PIXELS < 3 * 3 * 3000 * 4000
    assert auto_scale(0.5, (20000, 20000)) == 1 and auto_scale(2.0, (100, 100)) == 1


def test_faces_scale_is_the_smallest_faces_and_fitting_scale_the_budgets():
    """The one rule of `frgd enhance --scale auto` and the editor's Size Auto: the smallest face maps 1:1 (no face:
    1), within AUTO_MAX_PIXELS; `fitting_scale` is that budget's largest scale, which caps the editor's Size too."""
    from frgd.restore import faces_scale, fitting_scale

    assert faces_scale([0.9, 0.31, 0.5]) == 3 and faces_scale([]) == 1 and faces_scale([1.7]) == 1
    assert faces_scale([0.17], (3000, 4000)) == 2 == fitting_scale((3000, 4000))
    assert fitting_scale((200, 240)) == 32 and fitting_scale((20000, 20000)) == 1
