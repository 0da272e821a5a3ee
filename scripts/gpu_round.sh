#!/usr/bin/env bash
# One FRGD-128 training round on a lent GPU machine, in one command (see docs/training_rounds.md):
#   frgd round pack --faces ../shared/data/faces128 && frgd round plan   # here, first (CPU)
#   device run, carry [".carry/round"]:  bash scripts/gpu_round.sh        # OUT is set there
#   frgd round land <files_at>                                            # here, afterwards
# Needs only python3 with torch, numpy, opencv, safetensors, huggingface_hub: our packages come from this tree and
# diffusers from the carried zip. ROUND_DEADLINE_S (default 540) is the whole command's wall-clock budget.
set -uo pipefail
started=$(date +%s.%N)
cd "$(dirname "$0")/.."
out="${OUT:-runs/round}"  # model/ (2 levels: what comes back), round.json, round.log, grid
mkdir -p "$out"
carry="${ROUND_CARRY:-.carry/round}"
export PYTHONPATH="$PWD/pipelines:$PWD/resources:$PWD/$carry/diffusers.zip${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"${PYTHON:-python3}" -m frgd.cli.main -v round run --pack "$carry/pack" --out "$out" \
  --deadline-s "${ROUND_DEADLINE_S:-540}" --started-at "$started" "$@" 2>&1 | tee "$out/round.log"
exit "${PIPESTATUS[0]}"
