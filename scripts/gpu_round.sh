#!/usr/bin/env bash
# One FRGD-128 training round on a lent GPU machine, in one command (see docs/training_rounds.md):
#   frgd round pack --faces ../shared/data/faces128 && frgd round plan   # here, first (CPU)
#   device run, carry [".carry/round"]:  bash scripts/gpu_round.sh        # OUT is set there
#   frgd round land <files_at>                                            # here, afterwards
# Needs only python3 with torch, numpy, opencv, safetensors, huggingface_hub: our packages come from this tree and
# diffusers from the carried zip. ROUND_DEADLINE_S (default 540) is the whole command's wall-clock budget.
# A finished round also leaves its weights in ROUND_KEEP (/tmp, kept while the machine stays warm, 30 s after a call):
# a second call made at once with ROUND_CONTINUE=1 starts from them (no landing, no new pack, no upload of weights)
# and finds torch.compile's cache of the first call there too. A carried compile_cache.bin (an earlier session's
# compiled kernels) is loaded before compiling.
set -uo pipefail
started=$(date +%s.%N)
cd "$(dirname "$0")/.."
out="${OUT:-runs/round}"  # model/ (2 levels: what comes back), round.json, round.log, grid
mkdir -p "$out"
carry="${ROUND_CARRY:-.carry/round}"
export PYTHONPATH="$PWD/pipelines:$PWD/resources:$PWD/$carry/diffusers.zip${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/frgd_inductor}"  # reused by a ROUND_CONTINUE call
keep="${ROUND_KEEP:-/tmp/frgd_round_last}"
if [ -n "${ROUND_CONTINUE:-}" ]; then
  if [ ! -f "$keep/round.json" ]; then
    echo "ROUND_CONTINUE: no earlier round on this machine ($keep): it was given back; run a round without it" >&2
    exit 3
  fi
  set -- --init "$keep" "$@"
fi
cache="$carry/compile_cache.bin"  # an earlier round's compiled kernels (frgd round land keeps them in the carry)
if [ -f "$cache" ]; then
  set -- --compile-cache "$cache" "$@"
fi
"${PYTHON:-python3}" -m frgd.cli.main -v round run --pack "$carry/pack" --out "$out" \
  --deadline-s "${ROUND_DEADLINE_S:-540}" --started-at "$started" "$@" 2>&1 | tee "$out/round.log"
rc="${PIPESTATUS[0]}"
if [ "$rc" = 0 ] && [ -f "$out/model/config.json" ] && [ -f "$out/round.json" ]; then
  rm -rf "$keep.new" && cp -r "$out/model" "$keep.new" && cp "$out/round.json" "$keep.new/" \
    && rm -rf "$keep" && mv "$keep.new" "$keep"
fi
exit "$rc"
