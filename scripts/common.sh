# Shared by Cutor's shell scripts: logging, failing, waiting, and the pinned versions.

# MinIO publishes no community binaries, so setup builds the server from source. The pin
# is a commit, not a release tag, because the commits after the final release tag fix
# conditional PUTs, which Cutor relies on. This one (2026-02-12) is what the Go module
# proxy returned for github.com/minio/minio@latest on 2026-12-04.
MINIO_MODULE_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

# Processes each Nix build user may run at once (RLIMIT_NPROC of nix-daemon's builders).
NIX_BUILD_PROCESSES=1024

log() {
    echo "cutor: $*" >&2
}

die() {
    echo "cutor: error: $*" >&2
    exit 1
}

# wait_for NAME SECONDS COMMAND...: run COMMAND until it succeeds, or fail after SECONDS.
wait_for() {
    local name=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "$name did not respond within ${seconds}s"
        sleep 0.5
    done
}
