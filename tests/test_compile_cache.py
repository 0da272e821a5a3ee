"""The round's compile cache: Triton kernels bundled without their compilation stages (frgd.diffusion.training.
compile_cache). The oracle is Triton itself: a kernel compiled here for the H100 (sm_90, Triton's own ptxas, no GPU
needed), bundled by inductor's real bundler with the slimming on, written back by inductor's real reader into an
empty cache, must be a Triton cache hit that returns the very same binary."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
import torch

from frgd.diffusion.training.compile_cache import (
    KERNEL_STAGE_SUFFIXES,
    slim_bundle,
    slim_kernel_artifacts,
    slim_kernel_bundles,
)

bundler = pytest.importorskip("torch._inductor.triton_bundler", reason="this torch has no Triton bundler")
TritonBundler = bundler.TritonBundler
Artifact, Kernel = bundler.TritonKernelArtifact, bundler.TritonKernelArtifacts


def _group(*names: str) -> Artifact:
    paths = {n: f"[REPLACE]/{n}" for n in names}
    return Artifact("__grp__k.json", json.dumps({"child_paths": paths}).encode())


def test_stages_are_dropped_and_the_group_record_lists_what_is_kept():
    files = [Artifact(n, b"x" * 100) for n in ("k.ttir", "k.ttgir", "k.llir", "k.ptx", "k.source", "k.cubin")]
    meta = Artifact("k.json", b'{"name": "k"}')
    kernel = Kernel("abc", 0, [*files, meta, _group("k.ttir", "k.ttgir", "k.llir", "k.ptx", "k.cubin", "k.json")])
    stats: dict = {}
    out = slim_kernel_artifacts(kernel, stats)
    assert sorted(a.filename for a in out.artifacts) == ["__grp__k.json", "k.cubin", "k.json"]
    grp = json.loads(next(a for a in out.artifacts if a.filename.startswith("__grp__")).payload)
    assert grp == {"child_paths": {"k.cubin": "[REPLACE]/k.cubin", "k.json": "[REPLACE]/k.json"}}
    assert out.kernel_hash == "abc" and out.device == 0
    assert stats["kernels"] == stats["slimmed"] == 1 and stats["bytes_in"] - stats["bytes_out"] >= 500


def test_a_kernel_without_a_binary_or_with_an_unreadable_group_is_kept_whole():
    stats: dict = {}
    no_binary = Kernel("a", 0, [Artifact("k.ptx", b"p"), Artifact("k.json", b"{}")])
    assert slim_kernel_artifacts(no_binary, stats) is no_binary
    bad = Kernel("b", 0, [Artifact("k.cubin", b"c"), Artifact("k.ptx", b"p"), Artifact("__grp__k.json", b"{oops")])
    assert slim_kernel_artifacts(bad, stats) is bad
    assert stats["kernels"] == 2 and "slimmed" not in stats and stats["bytes_in"] == stats["bytes_out"]


def test_the_hook_is_restored_and_never_fails_a_compile(monkeypatch):
    original = TritonBundler.__dict__["collect"]
    stats: dict = {}
    with slim_kernel_bundles(stats):
        assert TritonBundler.__dict__["collect"] is not original
        import frgd.diffusion.training.compile_cache as cc

        def boom(bundle, stats):
            raise RuntimeError("a bundle of another shape")

        monkeypatch.setattr(cc, "slim_bundle", boom)
        bundle, _ = TritonBundler.collect()  # nothing was compiled: the empty bundle, returned as it came
        assert bundle.kernel_artifacts == [] and "another shape" in stats["error"]
    assert TritonBundler.__dict__["collect"] is original


def _compile_kernel():
    """A fused bias + SiLU + residual kernel for sm_90 (what inductor makes for the UNet's blocks, in miniature)."""
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    @triton.jit
    def fused(x_ptr, y_ptr, w_ptr, out_ptr, n, C: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = offs < n
        x = tl.load(x_ptr + offs, mask=m).to(tl.float32)
        y = tl.load(y_ptr + offs, mask=m).to(tl.float32)
        w = tl.load(w_ptr + offs % C, mask=m)
        tl.store(out_ptr + offs, (x * tl.sigmoid(x) * w + y).to(tl.bfloat16), mask=m)

    sig = {"x_ptr": "*bf16", "y_ptr": "*bf16", "w_ptr": "*fp32", "out_ptr": "*bf16", "n": "i32", "C": "constexpr",
           "BLOCK": "constexpr"}  # fmt: skip
    src = ASTSource(fused, sig, constexprs={"C": 96, "BLOCK": 512})
    return triton.compile(src, target=GPUTarget("cuda", 90, 32))


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def _key(kernel) -> str:
    """The kernel's folder in Triton's cache (how inductor names it to the bundler)."""
    from torch._inductor.runtime.runtime_utils import triton_hash_to_path_key

    return triton_hash_to_path_key(kernel.hash)


def _bundle(kernel_key: str, stats: dict | None = None):
    """The kernel (in ``TRITON_CACHE_DIR``) as inductor's own bundler bundles it at the end of a compile: slimmed when
    ``stats`` is given (:func:`slim_kernel_bundles`), whole otherwise."""
    with slim_kernel_bundles(stats) if stats is not None else contextlib.nullcontext():
        TritonBundler.begin_compile()
        TritonBundler.put(kernel_key, 0)
        bundle, _ = TritonBundler.collect()
    return bundle


def test_a_slimmed_kernel_is_a_triton_cache_hit_with_the_same_binary(tmp_path, monkeypatch):
    triton = pytest.importorskip("triton", reason="Triton is not installed")
    monkeypatch.setattr(torch._inductor.config, "force_disable_caches", False)
    monkeypatch.setattr(torch._inductor.config, "bundle_triton_into_fx_graph_cache", True)
    built, fresh, naive = tmp_path / "built", tmp_path / "fresh", tmp_path / "naive"
    monkeypatch.setenv("TRITON_CACHE_DIR", str(built))
    try:
        k1 = _compile_kernel()
    except Exception as err:  # noqa: BLE001 - no ptxas / backend for sm_90 on this machine
        pytest.skip(f"Triton cannot compile for sm_90 here: {type(err).__name__}: {err}"[:200])
    key = _key(k1)
    full = _files(built / key)
    assert {os.path.splitext(n)[1] for n in full} & KERNEL_STAGE_SUFFIXES  # what there is to drop

    stats: dict = {}
    bundle = _bundle(key, stats)
    assert stats["kernels"] == stats["slimmed"] == 1 and "error" not in stats
    assert stats["bytes_out"] < 0.5 * stats["bytes_in"]

    monkeypatch.setenv("TRITON_CACHE_DIR", str(fresh))  # the next session's machine: an empty cache
    TritonBundler.read_and_emit(bundle)
    emitted = _files(fresh / key)
    assert not {os.path.splitext(n)[1] for n in emitted} & KERNEL_STAGE_SUFFIXES
    k2 = _compile_kernel()
    assert _files(fresh / key) == emitted  # a hit: Triton compiled nothing (a compile writes every stage)
    assert k2.hash == k1.hash and k2.asm["cubin"] == k1.asm["cubin"] and "ptx" not in k2.asm

    # the control: the stages dropped but the group record left listing them. Triton >= 3.7 then misses and compiles
    # the kernel again, which is why the record is rewritten
    if tuple(int(v) for v in triton.__version__.split(".")[:2]) >= (3, 7):
        stages = KERNEL_STAGE_SUFFIXES
        monkeypatch.setenv("TRITON_CACHE_DIR", str(built))
        unslimmed = _bundle(key)
        assert slim_bundle(unslimmed, {}).kernel_artifacts  # (slim_bundle works on the real classes too)
        stripped = [
            Kernel(k.kernel_hash, k.device, [a for a in k.artifacts if os.path.splitext(a.filename)[1] not in stages])
            for k in unslimmed.kernel_artifacts
        ]
        whole = bundler.TritonBundle(stripped, [])
        monkeypatch.setenv("TRITON_CACHE_DIR", str(naive))
        TritonBundler.read_and_emit(whole)
        before = _files(naive / key)
        _compile_kernel()
        assert _files(naive / key) - before  # the stages came back: a compile, not a hit
