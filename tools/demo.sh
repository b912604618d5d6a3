#!/usr/bin/env bash
# The demo behind `make demo`: real handwritten digits -> SE-ResNet-18 trained and tested with
# MMPretrain's tooling (tools/train.py, tools/test.py) -> top-1 on the held-out images; then
# the same network through timm (tools/train_timm.py) for a few epochs.
# Run from anywhere with the python that has `se-plugins[demo]` first on PATH
# (the Makefile runs: PATH=.venv/bin:$PATH bash tools/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=configs/demo/se-resnet18_1xb32_digits.py
WORK_DIR=work_dirs/demo
TIMM_CONFIG=configs/timm/se_resnet18_digits.yaml
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}  # keep the log to progress and results

# The same figures on every x86-64 machine. Training from scratch amplifies the last-bit rounding
# differences between CPU kernels into different models within an epoch, so the seeds alone fix
# the figures only on one kind of CPU. These pin the kernels to code paths every x86-64 CPU runs
# alike, at some speed: a fixed thread count (PyTorch's default is the number of cores), ATen's
# baseline kernels, oneDNN's SSE4.1 kernels (blocking from the ISA and the shapes, not the caches:
# tests/test_demo_kernels.py) and MKL's vendor-neutral reproducible branch (MKL_CBWR=COMPATIBLE).
export OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_CBWR=COMPATIBLE
start=$SECONDS

echo "== [1/4] Preparing scikit-learn's 1,797 handwritten digits in data/digits"
python tools/prepare_digits.py --out data/digits

echo "== [2/4] Training SE-ResNet-18 with MMPretrain: tools/train.py $CONFIG"
python tools/train.py "$CONFIG" --work-dir "$WORK_DIR"

echo "== [3/4] Testing the last checkpoint on the 360 held-out digits: tools/test.py"
checkpoint=$(cat "$WORK_DIR/last_checkpoint")
metrics=$WORK_DIR/test_metrics.json
python tools/test.py "$CONFIG" "$checkpoint" --work-dir "$WORK_DIR/test" \
    --out "$metrics" --out-item metrics
top1=$(python -c "import json, sys; print('%.2f' % json.load(open(sys.argv[1]))['accuracy/top1'])" \
    "$metrics")
mm_seconds=$((SECONDS - start))

echo "== [4/4] The timm path: tools/train_timm.py --config $TIMM_CONFIG"
timm_log=work_dirs/demo_timm/train.log
mkdir -p work_dirs/demo_timm
python tools/train_timm.py --config "$TIMM_CONFIG" --output work_dirs/demo_timm | tee "$timm_log"
timm_top1=$(sed -n 's/^final val top-1 \([0-9.]*\).*/\1/p' "$timm_log")

echo
echo "MMPretrain SE-ResNet-18 top-1 on the held-out digits: ${top1}%"
echo "  (checkpoint $checkpoint; prepare + train + test: ${mm_seconds}s)"
echo "timm SE-ResNet-18 top-1 on the held-out digits: ${timm_top1}%"
echo "  (checkpoints in work_dirs/demo_timm; whole demo: $((SECONDS - start))s)"
