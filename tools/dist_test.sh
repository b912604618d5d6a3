#!/usr/bin/env bash
# Test a checkpoint on NPROC processes of this machine (or of NNODES machines) through torchrun.
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py arguments...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT as for torchrun; PYTHON (default: python).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT NPROC [test.py arguments...]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/dist_run.sh" test.py "$3" "$1" "$2" "${@:4}"
