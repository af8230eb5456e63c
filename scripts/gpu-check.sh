#!/usr/bin/env bash
# The tvm device on a CUDA GPU, end to end through the CLI, then benchmarks/tvm_gpu.py:
#   scripts/gpu-check.sh OUTDIR [OPS] [TUNED] [TRIALS]
# Needs PYTHON (default python3) with tailorkit's dependencies and PyTorch with CUDA, and TAILOR_TVM_PYTHON (or
# .venv-tvm) with apache-tvm whose CUDA runtime loads (libcudart.so.13 and libcuda.so.1 on LD_LIBRARY_PATH).
# Everything lands in OUTDIR: one log per step, the SQLite table, the benchmark's md/json.
set -uo pipefail
out=${1:?usage: gpu-check.sh OUTDIR [OPS] [TUNED] [TRIALS]}
ops=${2:-12}; tuned=${3:-0}; trials=${4:-32}
py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cat >"$work/tailor.toml" <<EOF
[devices.rtx]
kind = "tvm"
target = "cuda"
tuning = "default-schedules"
EOF
status=0
step() {  # step NAME CMD...: run in the work dir, log to OUTDIR/NAME.log, remember a failure, go on
  local name=$1; shift
  echo "== $name: $*"
  (cd "$work" && "$@") >"$out/$name.log" 2>&1
  local rc=$?
  tail -n 40 "$out/$name.log"
  [ $rc -eq 0 ] || { echo "== $name failed (exit $rc)"; status=1; }
}
tailor() { "$py" -m tailorkit "$@"; }
step devices tailor devices
step profile tailor profile --device rtx ofa-mbv3-min --per-op --runs 50
step profile-json tailor profile --device rtx ofa-mbv3-max --json --runs 50
step table-build tailor table build --device rtx --resolution 224 --limit 24 --runs 50 --db "sqlite:///$work/gpu.db"
step table-show tailor table show ofa-mbv3-w1-r224 --device rtx --db "sqlite:///$work/gpu.db"
cp "$work/gpu.db" "$out/" 2>/dev/null
step benchmark "$py" "$root/benchmarks/tvm_gpu.py" --ops "$ops" --tuned "$tuned" --trials "$trials" --out "$out"
exit $status
