#!/usr/bin/env bash
# Start the local stack (MinIO, the function runner, the API) in the background, wait
# until it is healthy, then submit every example and print each result.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
source "$ROOT/scripts/common.sh"

STATE_DIR=${CUTOR_STATE_DIR:-/var/lib/cutor}
API_URL="http://${CUTOR_API_HOST:-127.0.0.1}:${CUTOR_API_PORT:-8000}"
PID_FILE="$STATE_DIR/cutor.pid"
LOG_FILE="$STATE_DIR/cutor.log"
mkdir -p "$STATE_DIR"
chmod 700 "$STATE_DIR"

healthy() {
    curl -fsS "$API_URL/healthz" >/dev/null
}

if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null && healthy; then
    log "the stack is already running (pid $(cat "$PID_FILE")); 'make down' stops it"
else
    log "starting the stack (log: $LOG_FILE)"
    # Open mode: no API keys, which the API allows only on a loopback address. Set
    # CUTOR_AUTH_MODE=keys and create keys with `.venv/bin/cutor keys create NAME` to
    # require them.
    CUTOR_AUTH_MODE=${CUTOR_AUTH_MODE:-open} CUTOR_STATE_DIR="$STATE_DIR" setsid nohup "$ROOT/.venv/bin/cutor" up >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    deadline=$((SECONDS + 120))
    until healthy; do
        if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
            tail -n 20 "$LOG_FILE" >&2
            die "the stack exited during start; the lines above are the end of $LOG_FILE"
        fi
        [ $SECONDS -lt $deadline ] || die "the Cutor API at $API_URL did not respond within 120s; see $LOG_FILE"
        sleep 0.5
    done
fi
log "API: $API_URL (MinIO credentials: $STATE_DIR/minio/credentials.json)"

failed=0
for example in "$ROOT"/examples/*/; do
    name=$(basename "$example")
    arguments=()
    [ -f "$example/.args" ] && read -r -a arguments <"$example/.args"
    stdin_option=()
    [ -f "$example/.stdin" ] && stdin_option=(--stdin "$example/.stdin")
    env_options=()
    if [ -f "$example/.env" ]; then
        while IFS= read -r line; do env_options+=(--env "$line"); done <"$example/.env"
    fi
    log "submitting examples/$name"
    if ! "$ROOT/.venv/bin/cutor" submit "$example" --url "$API_URL" "${stdin_option[@]}" "${env_options[@]}" "${arguments[@]}"; then
        log "examples/$name did not finish"
        failed=1
    fi
done
exit $failed
