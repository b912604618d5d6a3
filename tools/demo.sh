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
TIMM_EPOCHS=${TIMM_EPOCHS:-3}
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}  # keep the log to progress and results
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

echo "== [4/4] The timm path: tools/train_timm.py, $TIMM_EPOCHS epochs"
if [ -f tools/train_timm.py ] && [ -f "$TIMM_CONFIG" ]; then
    python tools/train_timm.py --config "$TIMM_CONFIG" --epochs "$TIMM_EPOCHS" \
        --output work_dirs/demo_timm
else
    echo "skipped: tools/train_timm.py or $TIMM_CONFIG is missing"
fi

echo
echo "MMPretrain SE-ResNet-18 top-1 on the held-out digits: ${top1}%"
echo "  (checkpoint $checkpoint; prepare + train + test: ${mm_seconds}s," \
    "whole demo: $((SECONDS - start))s)"
