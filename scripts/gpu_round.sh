#!/usr/bin/env bash
# One FRGD-128 training round on a lent GPU machine (see docs/training_rounds.md):
#   frgd round pack --faces ../shared/data/faces128 && frgd round plan   # here, first (CPU)
#   device run, carry [".carry/round"]:  bash scripts/gpu_round.sh        # OUT is set there
#   frgd round land <files_at>                                            # here, afterwards
# Needs only python3 with torch, numpy, opencv, safetensors, huggingface_hub: our packages come from this tree and
# diffusers from the carried zip. ROUND_DEADLINE_S (default 540) is the whole command's wall-clock budget.
# A finished round also leaves its weights in ROUND_KEEP (/tmp, kept while the machine stays warm, 30 s after a call):
# a second call made at once with ROUND_CONTINUE=1 starts from them (no landing, no new pack, no upload of weights)
# and finds torch.compile's cache of the first call there too. The tree's scripts/round_cache/compile_cache.bin (an
# earlier session's compiled kernels, kept there by frgd round land) is loaded before compiling.
#
# One round over two commands (a command may run 10 minutes, a session's device time is 15):
#   ROUND_DETACH=1 ROUND_DEADLINE_S=840 ROUND_CALL_S=560   the round starts in its own process session (setsid), so it
#       outlives this command; the command returns after ROUND_CALL_S with a snapshot of the weights of that moment
#       (model/, round.json with "status": "partial", round.log) and leaves them in ROUND_KEEP too.
#   ROUND_ATTACH=1 ROUND_DEADLINE_S=<this call's budget>    at once, on the warm machine: brings the round's deadline
#       forward to this command's (never later), waits for it and returns its files (what a one-command round returns).
# The round pays its start-up, data set-up and compile once per session instead of once per command. ROUND_ATTACH
# exits 3 when this machine has no detached round (a fresh machine) and 4 when the round was killed with the first
# command (no setsid): then continue with ROUND_CONTINUE=1, which starts from the snapshot in ROUND_KEEP.
set -uo pipefail
started=$(date +%s.%N)
cd "$(dirname "$0")/.."
out="${OUT:-runs/round}"  # model/ (2 levels: what comes back), round.json, round.log, grid
mkdir -p "$out"
carry="${ROUND_CARRY:-.carry/round}"
export PYTHONPATH="$PWD/pipelines:$PWD/resources:$PWD/$carry/diffusers.zip${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# the weights search looks in the user cache, which platformdirs names (not installed there): a fixed folder instead
export FRGD_CACHE_DIR="${FRGD_CACHE_DIR:-/tmp/frgd_cache}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/frgd_inductor}"  # reused by a ROUND_CONTINUE call
keep="${ROUND_KEEP:-/tmp/frgd_round_last}"
bg="${ROUND_BG:-/tmp/frgd_round_bg}"  # a detached round: out/ (its OUT), pid, rc (its exit code once it ended)
py="${PYTHON:-python3}"

keep_weights() {  # $1: a folder with model/ and round.json -> $keep, what a ROUND_CONTINUE call starts from
  if [ -f "$1/model/config.json" ] && [ -f "$1/round.json" ]; then
    rm -rf "$keep.new" && cp -r "$1/model" "$keep.new" && cp "$1/round.json" "$keep.new/" \
      && rm -rf "$keep" && mv "$keep.new" "$keep"
  fi
}
alive() {  # $1: a pid; a process that ended but was not reaped (a zombie) is not alive
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
collect() {  # $1: a round's OUT -> $out (what comes back: at most 8 files)
  local f
  for f in model round.json round.log val_grid_x8.png compile_cache.bin; do
    if [ -e "$1/$f" ]; then rm -rf "${out:?}/$f" && cp -r "$1/$f" "$out/"; fi
  done
}
finish_detached() {  # the detached round ended (or is abandoned): return its files, exit with its code (5: none)
  local rc
  rc=$(cat "$bg/rc" 2>/dev/null || echo 5)
  collect "$bg/out"
  tail -n 40 "$bg/out/round.log"
  if [ "$rc" = 0 ]; then keep_weights "$out"; fi
  exit "$rc"
}

if [ -n "${ROUND_ATTACH:-}" ]; then
  if [ ! -f "$bg/pid" ]; then
    echo "ROUND_ATTACH: no detached round on this machine ($bg): it was given back; run a round without it" >&2
    exit 3
  fi
  pid=$(cat "$bg/pid")
  if [ ! -f "$bg/rc" ] && ! alive "$pid"; then
    collect "$bg/out"
    echo "ROUND_ATTACH: the detached round (pid $pid) was killed with the command that started it;" \
      "continue from its snapshot with ROUND_CONTINUE=1" >&2
    exit 4
  fi
  budget="${ROUND_DEADLINE_S:-}"
  limit=""
  if [ -n "$budget" ]; then  # the round ends by this command's deadline (its own is kept if earlier)
    "$py" -c 'import json, sys; json.dump({"deadline_epoch": float(sys.argv[1]) + float(sys.argv[2])}, sys.stdout)' \
      "$started" "$budget" > "$bg/out/deadline.json.tmp" && mv "$bg/out/deadline.json.tmp" "$bg/out/deadline.json"
    limit=$(( ${budget%.*} + ${ROUND_ATTACH_GRACE_S:-10} ))
  fi
  while [ ! -f "$bg/rc" ] && alive "$pid"; do
    if [ -n "$limit" ] && [ "$SECONDS" -ge "$limit" ]; then
      echo "ROUND_ATTACH: the round is still running ${ROUND_ATTACH_GRACE_S:-10} s after this command's deadline;" \
        "returning what it has written" >&2
      break
    fi
    sleep 1
  done
  finish_detached
fi

cache="${ROUND_CACHE:-scripts/round_cache/compile_cache.bin}"  # an earlier round's compiled kernels (frgd round land keeps them there, tracked)
if [ -f "$cache" ]; then
  set -- --compile-cache "$cache" "$@"
fi
if [ -n "${ROUND_DETACH:-}" ]; then
  if [ -n "${ROUND_CONTINUE:-}" ]; then
    echo "ROUND_DETACH and ROUND_CONTINUE do not go together" >&2
    exit 2
  fi
  args=(--pack "$carry/pack" --out "$bg/out" --deadline-s "${ROUND_DEADLINE_S:-840}" --started-at "$started")
  rm -rf "$bg" && mkdir -p "$bg/out"
  setsid=(setsid)
  if ! command -v setsid > /dev/null; then
    setsid=()
    echo "ROUND_DETACH: no setsid here: the round may end with this command (ROUND_ATTACH then exits 4)" >&2
  fi
  # its own session, no terminal, no pipe to this command: it runs on after this command returns
  "${setsid[@]}" bash -c 'echo $$ > "$0/pid"; "$1" -m frgd.cli.main -v round run "${@:2}" > "$0/out/round.log" 2>&1;
    echo $? > "$0/rc"' "$bg" "$py" "${args[@]}" "$@" < /dev/null > "$bg/launcher.log" 2>&1 &
  call_s="${ROUND_CALL_S:-560}"
  wait_s="${ROUND_SNAPSHOT_WAIT_S:-15}"
  while [ ! -f "$bg/rc" ] && [ "$SECONDS" -lt $(( call_s - wait_s )) ]; do sleep 1; done
  if [ -f "$bg/rc" ]; then  # the round ended within this command (or failed): return it as a one-command round
    finish_detached
  fi
  rm -rf "$bg/out/snapshot"
  touch "$bg/out/snapshot.request"  # served after the round's next training step
  while [ ! -f "$bg/out/snapshot/round.json" ] && [ ! -f "$bg/rc" ] && [ "$SECONDS" -lt "$call_s" ]; do sleep 0.5; done
  if [ -f "$bg/out/snapshot/round.json" ]; then
    collect "$bg/out/snapshot"
  else
    echo "ROUND_DETACH: no snapshot within ${wait_s} s; returning the round's last periodic export" >&2
    collect "$bg/out"
  fi
  cp "$bg/out/round.log" "$out/"
  keep_weights "$out"
  tail -n 20 "$bg/out/round.log"
  echo "ROUND_DETACH: the round goes on (pid $(cat "$bg/pid")); collect it at once with ROUND_ATTACH=1"
  exit 0
fi

if [ -n "${ROUND_CONTINUE:-}" ]; then
  if [ ! -f "$keep/round.json" ]; then
    echo "ROUND_CONTINUE: no earlier round on this machine ($keep): it was given back; run a round without it" >&2
    exit 3
  fi
  set -- --init "$keep" "$@"
fi
"$py" -m frgd.cli.main -v round run --pack "$carry/pack" --out "$out" \
  --deadline-s "${ROUND_DEADLINE_S:-540}" --started-at "$started" "$@" 2>&1 | tee "$out/round.log"
rc="${PIPESTATUS[0]}"
if [ "$rc" = 0 ]; then keep_weights "$out"; fi  # it checks for the model and round.json itself
exit "$rc"
