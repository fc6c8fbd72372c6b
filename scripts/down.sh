#!/usr/bin/env bash
# Stop the stack that `make up` started.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
source "$ROOT/scripts/common.sh"

PID_FILE="${CUTOR_STATE_DIR:-/var/lib/cutor}/cutor.pid"
if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    pid=$(cat "$PID_FILE")
    log "stopping the stack (pid $pid); running submissions finish first"
    kill "$pid"
    # A running submission may take up to the maximum wall times of compile and run.
    deadline=$((SECONDS + 660))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "the stack (pid $pid) did not stop within 660s"
        sleep 0.5
    done
    log "stopped the stack"
else
    log "the stack is not running"
fi
rm -f "$PID_FILE"
