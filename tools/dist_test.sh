#!/usr/bin/env bash
# Test a checkpoint on NPROC processes of this machine (or of NNODES machines) through torchrun.
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py arguments...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT as for torchrun; PYTHON (default: python).
# Without a GPU the processes talk over gloo (se_plugins.engine.init_cpu_distributed).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT NPROC [test.py arguments...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$(dirname "$0")/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
