#!/usr/bin/env bash
# armor's GPU check on the device machine (benchmarks/README.md, "GPU check").
#
#   bash benchmarks/gpu_check.sh stash            # keep the chunks this call carried in $ARMOR_CHUNKS
#   bash benchmarks/gpu_check.sh [run] [OPTIONS]  # stash, then the whole check (≤ 8 min on one GPU) into $OUT
#
# OPTIONS go to `python benchmarks/gpu_check.py run` (e.g. --cpu-smoke, --parts bench_fp32,train, --budget 300).
# No install is needed: the checkout's armor is put on PYTHONPATH. Needs a python (default python3, or
# $PYTHON) with torch, numpy, PyYAML, scikit-learn, tqdm and safetensors; matplotlib is optional.
# Chunks wait in $ARMOR_CHUNKS (default /tmp/armor_chunks, outside the checkout) between calls.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 3
PY=${PYTHON:-python3}
export ARMOR_CHUNKS=${ARMOR_CHUNKS:-/tmp/armor_chunks}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

command=${1:-run}
case "$command" in
  stash|run) shift || true ;;
  -*) command=run ;;
  *) echo "gpu_check.sh: unknown command '$command'; use stash or run" >&2; exit 2 ;;
esac

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "gpu_check.sh: no '$PY' here; set PYTHON=/path/to/python (one with torch)" >&2; exit 3
fi

stash() {
  if [ -f data_chunks/manifest.json ]; then
    "$PY" benchmarks/gpu_check.py stash --from data_chunks --to "$ARMOR_CHUNKS"
  elif [ -f "$ARMOR_CHUNKS/manifest.json" ]; then
    echo "no data_chunks/manifest.json in this call; the stash $ARMOR_CHUNKS is used as it is"
  else
    echo "no CIFAR-10 chunks carried (data_chunks/manifest.json) and none stashed in $ARMOR_CHUNKS"
  fi
}

if [ "$command" = stash ]; then
  stash
  exit $?
fi

missing=$("$PY" - <<'EOF'
import importlib.util
need = ["torch", "numpy", "yaml", "sklearn", "tqdm", "safetensors"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "gpu_check.sh: $PY lacks: $missing (pip install torch numpy PyYAML scikit-learn tqdm safetensors, or carry" \
       "wheels as /work/.library/device/README.md describes)" >&2
  exit 3
fi
"$PY" -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPU:', torch.cuda.is_available())"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv,noheader

stash || echo "gpu_check.sh: the stash failed (above); the check runs with what is there"
exec "$PY" benchmarks/gpu_check.py run --out "${OUT:-out/gpu_check}" "$@"
