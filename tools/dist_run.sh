#!/usr/bin/env bash
# Run one of the tools on NPROC processes of this machine (or of NNODES machines) through torchrun;
# dist_train.sh and dist_test.sh call it.
#   bash tools/dist_run.sh SCRIPT NPROC [SCRIPT arguments...]      (SCRIPT: train.py or test.py)
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT as for torchrun; PYTHON (default: python).
# Without a GPU the processes talk over gloo (se_plugins.engine.init_cpu_distributed).
set -euo pipefail
SCRIPT=$1
NPROC=$2
if ! [[ $NPROC =~ ^[1-9][0-9]*$ ]]; then
    echo "$(basename "$0"): NPROC '$NPROC': not a number of processes; give an integer >= 1" >&2
    exit 2
fi

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}" --launcher pytorch
