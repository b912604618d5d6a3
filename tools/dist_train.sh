#!/usr/bin/env bash
# Train on NPROC processes of this machine (or of NNODES machines) through torchrun.
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py arguments...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT as for torchrun; PYTHON (default: python).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG NPROC [train.py arguments...]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/dist_run.sh" train.py "$2" "$1" "${@:3}"
