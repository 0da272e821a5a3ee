"""The scripted editor walkthrough (:mod:`frgd_studio.tools.walkthrough`) runs offscreen on the real window with a
tiny random FRGD model and the tiny identity encoder: every step passes (demo, unsaved prompt, import without a
restart, split compare zoomed in, export naming what it saves, Esc cancelling an SR job within 1 s); a failed
expectation ends the run with a message naming the step."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("PySide6")

STEPS = ["start_on_demo", "unsaved_prompt", "import_ready", "split_compare", "export", "esc_cancels_sr"]


@pytest.fixture
def demo():
    from frgd_studio.app import demo_paths

    try:
        photo, ref = demo_paths()
    except Exception as err:  # pragma: no cover - demo not shipped in this tree
        pytest.skip(str(err))
    if ref is None:  # pragma: no cover
        pytest.skip("the demo reference is not installed")
    return photo, ref


def test_walkthrough_passes_every_step(qapp, tmp_path, tiny_identity, demo):
    from frgd_studio.tools.walkthrough import CANCEL_LIMIT_S, MAX_GRAB_BYTES, main

    out = tmp_path / "walkthrough"
    env = {k: os.environ.get(k) for k in ("FRGD_CONFIG_DIR", "FRGD_CACHE_DIR", "FRGD_OFFLINE")}
    argv = ["--out", str(out), "--tiny-random", "--offline", "--steps", "2", "--samples", "1", "--size", "1200x800",
            "--sr-size", "512"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "walkthrough.json").read_text(encoding="utf-8"))
    steps = record["steps"]
    assert [s["name"] for s in steps] == STEPS
    for s in steps:
        assert s["passed"], f"{s['name']}: {s.get('error')}"
        assert s["checks"], s["name"]
        assert s["name"] == "import_ready" or not s["errors_shown"], (s["name"], s["errors_shown"])
        shot = out / s["screenshot"]
        assert shot.suffix == ".webp" and 10_000 < shot.stat().st_size <= MAX_GRAB_BYTES, s["name"]
    assert record["all_passed"]
    facts = {s["name"]: s["facts"] for s in steps}
    assert facts["start_on_demo"]["faces"] >= 1 and facts["start_on_demo"]["reference"] == demo[1].name
    assert "unsaved changes" in facts["unsaved_prompt"]["question"]
    assert facts["unsaved_prompt"]["answers"] == ["cancel", "discard"]
    assert facts["import_ready"]["download_state"] == "failed"
    assert "offline" in facts["import_ready"]["download_message"]
    assert "frgd weights import" in facts["import_ready"]["download_message"]
    assert 2.5 <= facts["split_compare"]["zoom_from_fit"] <= 3.5
    assert "identity changed: yes" in facts["export"]["description"]
    assert facts["export"]["provenance"]["identity_changed"] is True
    sr = facts["esc_cancels_sr"]
    assert sr["ran_before_esc_s"] >= 1.0, "the job was running for a while when Esc was pressed"
    assert sr["esc_to_cancelled_s"] < CANCEL_LIMIT_S and sr["status"].endswith("cancelled")
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "all steps passed" in readme and f"{sr['esc_to_cancelled_s']} s" in readme
    assert {k: os.environ.get(k) for k in env} == env, "the run restores the environment"


def test_a_failed_expectation_names_the_step(qapp, tmp_path, monkeypatch, demo):
    from frgd_studio.tools import walkthrough

    def failing(wt) -> None:
        with wt.step("start_on_demo", "Start on the demo"):
            wt.check(True, "first")
            wt.check(False, "a face is detected", "errors: []")

    monkeypatch.setattr(walkthrough, "step_start_on_demo", failing)
    out = tmp_path / "w"
    with pytest.raises(SystemExit, match=r"step 1 \(start_on_demo\) failed: a face is detected: errors: \[\]"):
        walkthrough.main(["--out", str(out), "--tiny-random", "--offline", "--size", "800x600"])
    record = json.loads((out / "walkthrough.json").read_text(encoding="utf-8"))
    assert record["all_passed"] is False
    (step,) = record["steps"]
    assert step["passed"] is False and step["checks"] == ["first"] and "a face is detected" in step["error"]
    assert "FAILED" in (out / "README.md").read_text(encoding="utf-8")
