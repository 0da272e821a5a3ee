"""FRGDPipeline: shapes, per-sample seeds, masks, cancel/progress, slider mapping and guidance (tiny random models)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
from frgd.diffusion.model import make_train_scheduler, save_model_dir
from frgd.diffusion.sampling.guidance import (
    CFG_MAX,
    CONTENT_MAX,
    CONTENT_MIN,
    IDENTITY_MAX,
    RESAMPLE_MAX,
    STRENGTH_MAX,
    STRENGTH_MAX_PRIOR,
    STRENGTH_MIN,
    GuidanceWeights,
    downscale_to,
    identity_size_factor,
    slider_to_weights,
)
from frgd.diffusion.sampling.pipeline import (
    CANDIDATES_MAX,
    MAX_SEED,
    FRGDPipeline,
    candidate_seeds,
    feather_inside,
    normalize_seeds,
    planned_model_calls,
)
from frgd.diffusion.sampling.schedulers import first_step
from frgd.errors import Cancelled, InputError, MissingWeightsError
from frgd.identity import IdentityEncoder
from frgd.jobs import CancelToken

S = 32  # tiny models work at 32 px to keep the tests fast; the released model is 128


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models: one thread is faster, and far faster on a shared, loaded machine (no oversubscription)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(prediction_type: str = "v_prediction", seed: int = 0) -> FRGDUNet:
    torch.manual_seed(seed)
    return FRGDUNet(**tiny_config(sample_size=S, prediction_type=prediction_type))


@pytest.fixture(scope="module")
def encoder() -> IdentityEncoder:
    return IdentityEncoder.tiny_random(0)


@pytest.fixture(scope="module")
def pipe(encoder) -> FRGDPipeline:
    return FRGDPipeline(_model(), make_train_scheduler(), encoder)


@pytest.fixture(scope="module")
def degraded() -> torch.Tensor:
    return torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))


def test_output_shapes(pipe, degraded):
    out = pipe(degraded, num_samples=2, seeds=[1, 2], steps=3)
    assert out.images.shape == (2, 3, S, S)
    assert out.images.dtype == torch.float32
    assert 0.0 <= float(out.images.min()) and float(out.images.max()) <= 1.0
    assert out.seeds == [1, 2]
    assert out.identity_scores is None
    assert out.weights.identity == 0.0 and out.weights.cfg == 0.0
    assert {"references", "sampling", "total", "per_sample"} <= set(out.timings)
    assert out.params["content_size"] == [8, 8]


def test_normalize_seeds():
    assert normalize_seeds(5, 3) == [5, 6, 7]
    assert normalize_seeds([9, 1], 2) == [9, 1]
    assert len(set(normalize_seeds(None, 4))) >= 1 and len(normalize_seeds(None, 4)) == 4
    with pytest.raises(InputError):
        normalize_seeds([1, 2, 3], 2)


@pytest.mark.parametrize(
    ("scheduler", "kwargs"),
    [("ddim", {}), ("dpmpp", {}), ("ddim", {"eta": 1.0}), ("ddim", {"identity_strength": 0.6, "ref": True})],
)
def test_seeds_reproducible_and_batch_independent(pipe, degraded, encoder, scheduler, kwargs):
    kw = dict(kwargs)
    if kw.pop("ref", False):
        kw["references"] = [torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(9))]
    a = pipe(degraded, num_samples=1, seeds=[7], steps=3, scheduler=scheduler, **kw).images
    again = pipe(degraded, num_samples=1, seeds=[7], steps=3, scheduler=scheduler, **kw).images
    batch = pipe(degraded, num_samples=3, seeds=[5, 7, 9], steps=3, scheduler=scheduler, **kw).images
    assert torch.equal(a, again)
    # same seed at another batch position with other samples around it: the same face (float32 round-off only)
    torch.testing.assert_close(batch[1:2], a, atol=2e-5, rtol=0)
    assert (batch[0] - batch[1]).abs().mean() > 1e-3
    assert (batch[2] - batch[1]).abs().mean() > 1e-3


def test_mask_outside_equals_base_exactly(pipe, degraded):
    g = torch.Generator().manual_seed(4)
    base = torch.rand(1, 3, S, S, generator=g)
    mask = torch.zeros(1, 1, S, S)
    mask[..., 8:24, 10:22] = 1.0
    for feather, scheduler in ((0, "ddim"), (3, "ddim"), (0, "dpmpp")):
        kw = dict(mask=mask, base=base, feather=feather, scheduler=scheduler)
        out = pipe(degraded, num_samples=2, seeds=[1, 2], steps=3, **kw).images
        outside = (mask == 0).expand(2, 3, S, S)
        assert torch.equal(out[outside], base.expand(2, 3, S, S)[outside])
        inside = (mask == 1).expand(2, 3, S, S)
        assert (out[inside] - base.expand(2, 3, S, S)[inside]).abs().mean() > 1e-3


def test_feather_inside_is_zero_outside():
    m = torch.zeros(1, 1, 16, 16)
    m[..., 4:12, 4:12] = 1
    soft = feather_inside(m, 3)
    assert torch.equal(soft[m == 0], torch.zeros_like(soft[m == 0]))
    assert float(soft[0, 0, 8, 8]) == 1.0 and 0 < float(soft[0, 0, 4, 8]) < 1


def _count_calls(pipe: FRGDPipeline):
    calls = []
    handle = pipe.model.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    return calls, handle


def test_cancel_stops_within_one_step(pipe, degraded):
    token = CancelToken()
    seen = []

    at_cancel = []

    def progress(done, total, msg):
        seen.append(done)
        if done == 2:
            token.cancel()
            at_cancel.append(len(calls))

    calls, handle = _count_calls(pipe)
    try:
        with pytest.raises(Cancelled):
            pipe(degraded, steps=10, seeds=1, progress=progress, cancel=token)
    finally:
        handle.remove()
    assert seen == [1, 2]
    assert len(calls) == at_cancel[0] >= 2  # no model call after the cancel request

    token2 = CancelToken()
    token2.cancel()
    calls, handle = _count_calls(pipe)
    try:
        with pytest.raises(Cancelled):
            pipe(degraded, steps=10, seeds=1, cancel=token2)
    finally:
        handle.remove()
    assert calls == []


def test_cfg_runs_one_batched_call_per_step(pipe, degraded):
    ref = F.normalize(torch.randn(1, 128, generator=torch.Generator().manual_seed(5)), dim=1)
    calls, handle = _count_calls(pipe)
    try:
        out = pipe(degraded, references=ref, identity_strength=0.5, num_samples=2, seeds=[1, 2], steps=4)
    finally:
        handle.remove()
    assert out.weights.cfg == pytest.approx(CFG_MAX * 0.5)
    assert 0 < out.weights.cfg != 1  # both branches needed
    ran = planned_model_calls(pipe.scheduler, "dpmpp", 4, out.weights)  # img2img strength, harmonising passes
    assert ran == 4 - first_step(4, out.weights.strength)  # by default no harmonising passes
    assert calls == [4] * ran  # conditional + null branch of 2 samples in one call, once per model call
    assert out.identity_scores is not None and out.identity_scores.shape == (2,)


def test_slider_endpoints():
    w0 = slider_to_weights(0.0)
    w1 = slider_to_weights(1.0)
    assert w0 == GuidanceWeights(identity=0.0, content=CONTENT_MAX, cfg=0.0, strength=STRENGTH_MIN)
    assert w1.identity == pytest.approx(IDENTITY_MAX) and w1.cfg == pytest.approx(CFG_MAX)
    assert w1.content == pytest.approx(CONTENT_MIN) and 0 < w1.content < w0.content
    assert 0 < w0.strength < w1.strength == STRENGTH_MAX < 1.0  # the identity end samples more of the trajectory
    mids = [slider_to_weights(s) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(
        a.identity < b.identity and a.cfg < b.cfg and a.content > b.content and a.strength < b.strength
        for a, b in zip(mids, mids[1:])
    )
    no_ref = slider_to_weights(1.0, has_reference=False)
    assert no_ref.identity == 0.0 and no_ref.cfg == 0.0 and no_ref.content == pytest.approx(CONTENT_MIN)
    assert no_ref.strength == STRENGTH_MAX
    # from the prior's estimate the slider spans a shorter trajectory; only the strength changes
    pri = [slider_to_weights(s, from_prior=True) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert pri[0] == w0 and pri[-1].strength == pytest.approx(STRENGTH_MAX_PRIOR) and STRENGTH_MAX_PRIOR < STRENGTH_MAX
    assert all(a.strength < b.strength for a, b in zip(pri, pri[1:]))
    assert all(dataclasses.replace(p, strength=m.strength) == m for p, m in zip(pri, mids))
    with pytest.raises(ValueError):
        slider_to_weights(1.5)


def test_identity_weight_follows_the_input_size(pipe, degraded):
    assert [identity_size_factor(px) for px in (None, 8, 16, 32, 64, 1000)] == [1.0, 1.0, 1.0, 0.5, 0.25, 0.25]
    assert slider_to_weights(1.0, input_px=32).identity == pytest.approx(IDENTITY_MAX / 2)
    assert slider_to_weights(1.0, input_px=32).cfg == slider_to_weights(1.0).cfg  # only the identity weight
    ref = F.normalize(torch.randn(1, 128, generator=torch.Generator().manual_seed(5)), dim=1)
    px = min(degraded.shape[-2:])
    out = pipe(degraded, references=ref, identity_strength=1.0, seeds=[1], steps=2)
    assert out.weights.identity == pytest.approx(IDENTITY_MAX * identity_size_factor(px))


def test_slider_zero_ignores_the_reference(pipe, degraded):
    ref = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(6))
    a = pipe(degraded, references=[ref], identity_strength=0.0, seeds=[3], steps=3)
    b = pipe(degraded, identity_strength=0.0, seeds=[3], steps=3)
    assert torch.equal(a.images, b.images)
    c = pipe(degraded, references=[ref], identity_strength=1.0, seeds=[3], steps=3)
    assert (c.images - b.images).abs().mean() > 1e-3


def _unit(seed: int, dim: int = 128) -> torch.Tensor:
    # a reference direction far from the tiny random encoder's outputs (which are all nearly parallel)
    return F.normalize(torch.randn(1, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_identity_guidance_increases_similarity_in_sampling(pipe, degraded, encoder):
    seeds = [11, 12, 13]
    kw = dict(references=[_unit(8)], num_samples=3, seeds=seeds, steps=5)
    off = pipe(degraded, weights=GuidanceWeights(identity=0.0, content=0.0, cfg=1.0), **kw)
    on = pipe(degraded, weights=GuidanceWeights(identity=IDENTITY_MAX, content=0.0, cfg=1.0), **kw)
    assert torch.all(on.identity_scores > off.identity_scores)
    s0 = pipe(degraded, identity_strength=0.0, **kw)
    s1 = pipe(degraded, identity_strength=1.0, **kw)
    assert float(s1.identity_scores.mean()) > float(s0.identity_scores.mean())


def test_candidate_seeds_start_with_the_seed_and_are_stable():
    assert candidate_seeds(7, 1) == [7]
    four = candidate_seeds(7, 4)
    assert four[0] == 7 and len(set(four)) == 4 and four == candidate_seeds(7, 4)
    assert all(0 <= c <= MAX_SEED for c in four) and not set(four[1:]) & set(candidate_seeds(8, 4))


@pytest.mark.parametrize("per_sample", [False, True])
def test_best_of_keeps_the_candidate_most_like_the_reference(pipe, degraded, per_sample):
    """``candidates=k`` equals sampling all candidates in one batch and keeping, per sample, the one whose guidance
    encoder similarity to its reference is highest; the output keeps the requested seeds and records the choice."""
    k, seeds = 3, [4, 9]
    deg = torch.cat([degraded, degraded.flip(-1)]) if per_sample else degraded
    refs = torch.cat([_unit(8), _unit(10)]) if per_sample else _unit(8)
    kw = dict(identity_strength=0.7, steps=3, reference_per_sample=per_sample)
    best = pipe(deg, references=refs, num_samples=2, seeds=seeds, candidates=k, **kw)
    cand = [candidate_seeds(s, k) for s in seeds]
    every = refs.repeat_interleave(k, 0) if per_sample else refs
    deg_all = deg.repeat_interleave(k, 0) if per_sample else deg
    allc = pipe(deg_all, references=every, num_samples=2 * k, seeds=[c for cs in cand for c in cs], **kw)
    ref = pipe.encode_references(every, per_sample=per_sample)
    sims = (F.normalize(pipe.identity_encoder.embed(allc.images), dim=1) * ref).sum(1).view(2, k)
    pick = sims.argmax(1)
    assert pick.tolist() != [0, 0]  # a choice was made: not simply each seed's plain sample
    idx = torch.arange(2) * k + pick
    assert torch.equal(best.images, allc.images[idx])
    torch.testing.assert_close(best.identity_scores, allc.identity_scores[idx])
    assert best.seeds == seeds and best.params["num_samples"] == 2 and len(best.identity_meter.scores) == 2
    rec = best.params["candidates"]
    assert rec["count"] == k and rec["seeds"] == cand and rec["chosen"] == pick.tolist()
    assert best.params["identity_meter"]["scores"] == [round(float(v), 4) for v in best.identity_scores]
    plain = pipe(deg, references=refs, num_samples=2, seeds=seeds, **kw)
    assert plain.params["candidates"] is None
    # s = 0 ignores the reference: nothing to choose by, one sample (the no-reference sample of the seed)
    zero = pipe(deg, references=refs, num_samples=2, seeds=seeds, candidates=k, **{**kw, "identity_strength": 0.0})
    no_ref = pipe(deg, num_samples=2, seeds=seeds, steps=3, identity_strength=0.0)
    assert zero.params["candidates"] is None and torch.equal(zero.images, no_ref.images)
    torch.testing.assert_close(plain.images, allc.images[torch.arange(2) * k], atol=2e-5, rtol=0)  # candidate 0


@pytest.mark.parametrize("per_sample", [False, True])
def test_best_of_encodes_each_reference_once_and_reuses_the_meters_scores(pipe, degraded, per_sample, monkeypatch):
    """Choosing among ``k`` candidates costs no encoder pass beyond sampling the ``n * k`` candidates: per-sample
    references are embedded once per sample (not once per candidate), and the candidates the (guidance-encoder)
    meter scored are not embedded again. Counted in images through the guidance encoder, against a plain call
    that samples the same ``n * k`` candidates."""
    n, k, seeds = 2, 3, [4, 9]
    deg = torch.cat([degraded, degraded.flip(-1)]) if per_sample else degraded
    g = torch.Generator().manual_seed(11)
    refs = torch.rand(n if per_sample else 1, 3, S, S, generator=g)
    kw = dict(identity_strength=0.7, steps=3, reference_per_sample=per_sample)
    embedded: list[int] = []
    embed = pipe.identity_encoder.embed
    monkeypatch.setattr(pipe.identity_encoder, "embed", lambda x: embedded.append(x.shape[0]) or embed(x))
    best = pipe(deg, references=refs, num_samples=n, seeds=seeds, candidates=k, **kw)
    assert best.identity_meter is not None and not best.identity_meter.independent
    n_best, embedded[:] = sum(embedded), []
    every = refs.repeat_interleave(k, 0) if per_sample else refs
    deg_all = deg.repeat_interleave(k, 0) if per_sample else deg
    cand = [c for s in seeds for c in candidate_seeds(s, k)]
    allc = pipe(deg_all, references=every, num_samples=n * k, seeds=cand, **kw)
    n_plain = sum(embedded)
    assert n_best == n_plain - (n * k - n if per_sample else 0)
    idx = torch.arange(n) * k + torch.tensor(best.params["candidates"]["chosen"])
    torch.testing.assert_close(best.images, allc.images[idx], atol=1e-5, rtol=0)
    want = allc.reference_embedding[idx] if per_sample else allc.reference_embedding
    torch.testing.assert_close(best.reference_embedding, want)
    assert best.reference_embedding.shape == ((n, pipe.identity_dim) if per_sample else (pipe.identity_dim,))


def test_content_weight_pulls_towards_input(pipe, degraded):
    kw = dict(num_samples=2, seeds=[1, 2], steps=4)
    free = pipe(degraded, weights=GuidanceWeights(identity=0.0, content=0.0, cfg=0.0), **kw).images
    tied = pipe(degraded, weights=GuidanceWeights(identity=0.0, content=1.0, cfg=0.0), **kw).images
    err = lambda x: float((downscale_to(x, (8, 8)) - degraded).abs().mean())  # noqa: E731
    assert err(tied) < 0.05 < err(free)


def test_harmonising_passes_are_seeded_counted_and_checked(pipe, degraded):
    """``harmonise=1``: one more model call per step above ``RESAMPLE_SIGMA_MIN`` (each pass a guided trial step and
    fresh seeded noise back), deterministic for a seed, a different sample than without; out-of-range values are
    usage errors; the weights record the passes."""
    ref = [_unit(8)]
    kw = dict(references=ref, identity_strength=1.0, num_samples=2, seeds=[5, 6], steps=6)
    calls, handle = _count_calls(pipe)
    try:
        one = pipe(degraded, harmonise=1, **kw)
    finally:
        handle.remove()
    assert len(calls) == planned_model_calls(pipe.scheduler, "dpmpp", 6, one.weights) > 6
    assert one.weights.resample == 1 and one.params["weights"]["resample"] == 1
    torch.testing.assert_close(pipe(degraded, harmonise=1, **kw).images, one.images, rtol=0, atol=0)
    assert not torch.allclose(pipe(degraded, harmonise=0, **kw).images, one.images)
    for bad in (-1, RESAMPLE_MAX + 1, 1.5):
        with pytest.raises(InputError, match="harmonise"):
            pipe(degraded, harmonise=bad, **kw)


def test_content_guidance_still_pulls_towards_the_input_with_harmonising_passes(pipe, degraded):
    kw = dict(num_samples=2, seeds=[1, 2], steps=4, harmonise=1)
    free = pipe(degraded, weights=GuidanceWeights(identity=0.0, content=0.0, cfg=0.0), **kw).images
    tied = pipe(degraded, weights=GuidanceWeights(identity=0.0, content=1.0, cfg=0.0), **kw).images
    err = lambda x: float((downscale_to(x, (8, 8)) - degraded).abs().mean())  # noqa: E731
    assert err(tied) < 0.5 * err(free)


def test_epsilon_model_and_references_as_embeddings(encoder, degraded):
    p = FRGDPipeline(_model("epsilon"), make_train_scheduler(prediction_type="epsilon"), encoder)
    img = torch.rand(2, 3, S, S, generator=torch.Generator().manual_seed(2))
    emb = encoder.embed(img)
    a = p(degraded, references=[img], identity_strength=0.7, seeds=[4], steps=3)
    b = p(degraded, references=[emb], identity_strength=0.7, seeds=[4], steps=3)
    torch.testing.assert_close(a.images, b.images, atol=1e-5, rtol=0)
    assert a.images.shape == (1, 3, S, S)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"identity_strength": 1.5},
        {"num_samples": 0},
        {"num_samples": 2, "seeds": [1]},
        {"steps": 0},
        {"scheduler": "euler"},
        {"mask": torch.ones(1, 1, 16, 16)},
        {"base": torch.full((1, 3, S, S), 2.0)},
        {"references": [torch.rand(1, 64)]},
        {"references": [torch.rand(3, 8)]},
        {"eta": 0.5, "scheduler": "dpmpp"},
        {"content_size": 200},
        {"candidates": 2},  # no reference to choose by
        {"candidates": 0, "references": [torch.rand(1, 3, S, S)]},
        {"candidates": CANDIDATES_MAX + 1, "references": [torch.rand(1, 3, S, S)]},
        {"candidates": 2.0, "references": [torch.rand(1, 3, S, S)]},
    ],
)
def test_check_inputs(pipe, degraded, kwargs):
    with pytest.raises(InputError):
        pipe(degraded, **{"steps": 2, **kwargs})


def test_check_inputs_degraded(pipe):
    with pytest.raises(InputError):
        pipe(torch.rand(3, 8, 8))
    with pytest.raises(InputError):
        pipe(torch.rand(2, 3, 8, 8), num_samples=3)


def test_from_pretrained_roundtrip(tmp_path, encoder, degraded, pipe):
    d = save_model_dir(tmp_path / "m", pipe.model, pipe.scheduler)
    loaded = FRGDPipeline.from_pretrained(d, device="cpu", identity_encoder=encoder)
    assert loaded.channels_last and not pipe.channels_last  # from_pretrained owns its model: NHWC on CPU
    a = loaded(degraded, seeds=[2], steps=2).images
    b = pipe(degraded, seeds=[2], steps=2).images
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)  # NHWC kernels round differently
    with pytest.raises(MissingWeightsError):
        FRGDPipeline.from_pretrained(tmp_path / "missing", device="cpu")


def test_identity_meter_reading_in_output_and_params(pipe, degraded):
    ref = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(9))
    out = pipe(degraded, references=[ref], identity_strength=0.5, num_samples=2, seeds=[1, 2], steps=2)
    m = out.identity_meter
    assert m is not None and m.backend == "dlib" and m.independent is False  # no other encoder is installed here
    assert len(m.verdicts) == 2 and all(v in ("likely", "unsure", "unlikely") for v in m.verdicts)
    torch.testing.assert_close(torch.tensor(m.scores), out.identity_scores)
    assert out.params["identity_meter"]["note"] and "optimistic" in out.params["identity_meter"]["note"]
    assert pipe(degraded, steps=2, seeds=[1]).identity_meter is None
