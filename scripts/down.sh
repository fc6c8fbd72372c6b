#!/usr/bin/env bash
# Stop the stack that `make up` started.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
source "$ROOT/scripts/common.sh"

PID_FILE="${CUTOR_STATE_DIR:-/var/lib/cutor}/cutor.pid"
if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill "$(cat "$PID_FILE")"
    log "stopped the stack (pid $(cat "$PID_FILE"))"
else
    log "the stack is not running"
fi
rm -f "$PID_FILE"
