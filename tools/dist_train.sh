#!/usr/bin/env bash
# Train on NPROC processes of this machine (or of NNODES machines) through torchrun.
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py arguments...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT as for torchrun; PYTHON (default: python).
# Without a GPU the processes talk over gloo (se_plugins.engine.init_cpu_distributed).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG NPROC [train.py arguments...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
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
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
