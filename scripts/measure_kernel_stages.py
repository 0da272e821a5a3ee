"""How much of a bundled Triton kernel the compile cache can drop: compile kernels for the H100 here (sm_90, Triton's
own ptxas; no GPU needed), bundle them with inductor's bundler with and without the slimming of
``frgd.diffusion.training.compile_cache``, and compare raw and LZMA-compressed sizes (one stream, as the round saves).

    python scripts/measure_kernel_stages.py --json-out docs/results/compile_cache_slimming.json

The kernels stand in for inductor's: a fused pointwise kernel (bias, SiLU, residual; bf16) and a two-pass
normalisation (a reduction) at the UNet's channel counts and several block sizes. Inductor's kernels on the round's
model are more numerous and larger; the shares, not the totals, are what carries over.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import lzma
import os
import pickle
import tempfile
from pathlib import Path

logger = logging.getLogger("measure_kernel_stages")


def kernels():
    import triton
    import triton.language as tl
    from triton.compiler import ASTSource

    @triton.jit
    def pointwise(x_ptr, y_ptr, b_ptr, out_ptr, n, C: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = offs < n
        x = tl.load(x_ptr + offs, mask=m).to(tl.float32) + tl.load(b_ptr + offs % C, mask=m)
        y = tl.load(y_ptr + offs, mask=m).to(tl.float32)
        tl.store(out_ptr + offs, (x * tl.sigmoid(x) + y).to(tl.bfloat16), mask=m)

    @triton.jit
    def norm(x_ptr, out_ptr, R: tl.constexpr, BLOCK: tl.constexpr):
        row, offs = tl.program_id(0), tl.arange(0, BLOCK)
        s1 = tl.zeros([BLOCK], tl.float32)
        s2 = tl.zeros([BLOCK], tl.float32)
        for i in range(0, R, BLOCK):
            v = tl.load(x_ptr + row * R + i + offs, mask=i + offs < R, other=0.0).to(tl.float32)
            s1 += v
            s2 += v * v
        mean = tl.sum(s1) / R
        rstd = tl.rsqrt(tl.sum(s2) / R - mean * mean + 1e-5)
        for i in range(0, R, BLOCK):
            v = tl.load(x_ptr + row * R + i + offs, mask=i + offs < R, other=0.0).to(tl.float32)
            tl.store(out_ptr + row * R + i + offs, ((v - mean) * rstd).to(tl.bfloat16), mask=i + offs < R)

    pw = {"x_ptr": "*bf16", "y_ptr": "*bf16", "b_ptr": "*fp32", "out_ptr": "*bf16", "n": "i32", "C": "constexpr",
          "BLOCK": "constexpr"}  # fmt: skip
    nm = {"x_ptr": "*bf16", "out_ptr": "*bf16", "R": "constexpr", "BLOCK": "constexpr"}
    for block in (256, 512, 1024):
        for c in (64, 96, 128):
            yield ASTSource(pointwise, pw, constexprs={"C": c, "BLOCK": block})
    for block in (128, 256, 512, 1024):
        for r in (4096, 16384):
            yield ASTSource(norm, nm, constexprs={"R": r, "BLOCK": block})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch
    import triton
    from torch._inductor.runtime.runtime_utils import triton_hash_to_path_key
    from torch._inductor.triton_bundler import TritonBundler
    from triton.backends.compiler import GPUTarget

    from frgd.diffusion.training.compile_cache import LZMA_PRESET, slim_kernel_bundles

    torch._inductor.config.bundle_triton_into_fx_graph_cache = True
    target = GPUTarget("cuda", 90, 32)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRITON_CACHE_DIR"] = tmp
        keys = [triton_hash_to_path_key(triton.compile(src, target=target).hash) for src in kernels()]
        bundles, stats = {}, {}
        for name, slim in (("whole", False), ("slimmed", True)):
            TritonBundler.begin_compile()
            for key in keys:
                TritonBundler.put(key, 0)
            with slim_kernel_bundles(stats) if slim else contextlib.nullcontext():
                bundles[name], _ = TritonBundler.collect()
    res: dict = {"kernels": len(keys), "target": "cuda sm_90", "triton": triton.__version__,
                 "torch": torch.__version__, "lzma_preset": LZMA_PRESET}  # fmt: skip
    by_ext: dict[str, int] = {}
    for k in bundles["whole"].kernel_artifacts:
        for a in k.artifacts:
            ext = "__grp__" if a.filename.startswith("__grp__") else os.path.splitext(a.filename)[1]
            by_ext[ext] = by_ext.get(ext, 0) + len(a.payload)
    res["raw_bytes_by_file_type"] = dict(sorted(by_ext.items(), key=lambda kv: -kv[1]))
    for name, b in bundles.items():
        raw = pickle.dumps(b)
        res[name] = {"raw_bytes": len(raw), "lzma_bytes": len(lzma.compress(raw, preset=LZMA_PRESET))}
    res["raw_kept"] = res["slimmed"]["raw_bytes"] / res["whole"]["raw_bytes"]
    res["lzma_kept"] = res["slimmed"]["lzma_bytes"] / res["whole"]["lzma_bytes"]
    res["slim_stats"] = stats
    text = json.dumps(res, indent=1)
    logger.info("%s", text)
    if args.json_out:
        args.json_out.write_text(text + "\n")


if __name__ == "__main__":
    main()
