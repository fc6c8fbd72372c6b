#!/usr/bin/env bash
# Install and start what Cutor runs on: Docker Engine (with the gVisor runtime),
# nix-daemon with sandboxed builds, a MinIO server built from source, the Python
# virtualenv and the sandbox image. Idempotent: every step checks before it acts, so a
# warm machine passes through in seconds. Must run as root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
source "$ROOT/scripts/common.sh"

[ "$(id -u)" = 0 ] || die "setup must run as root (it installs Debian packages and starts dockerd and nix-daemon)"

# CI and cron-like shells may start without the Go toolchain's folder or HOME.
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
export HOME=${HOME:-/root}

install_debian_packages() {
    local wanted=(docker.io nix-bin busybox-static debootstrap runsc)
    local missing=()
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed; check that the Debian mirror in /etc/apt/sources.list* responds"
}

configure_docker() {
    # runsc gets --network=none because gVisor's own netstack would otherwise be set
    # up for every container; Cutor sandboxes never have a network anyway. It gets
    # --oci-seccomp because runsc otherwise ignores the container's seccomp profile,
    # and Cutor's profile (cutor.sandbox.seccomp) is what blocks io_uring, user
    # namespaces and key management inside gVisor's kernel.
    local config=/etc/docker/daemon.json
    mkdir -p /etc/docker
    [ -f "$config" ] || echo '{}' >"$config"
    local changed
    changed=$(python3 - "$config" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
wanted = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--oci-seccomp"]}
if config.get("runtimes", {}).get("runsc") != wanted:
    config.setdefault("runtimes", {})["runsc"] = wanted
    json.dump(config, open(path, "w"), indent=2)
    print("changed")
PY
)
    if [ "$changed" = changed ]; then
        log "registered the runsc runtime in $config"
        # A running dockerd reloads its runtimes on SIGHUP; one that is not running
        # reads the file when start_docker starts it.
        if [ -f /var/run/docker.pid ]; then
            kill -HUP "$(cat /var/run/docker.pid)" 2>/dev/null || true
        fi
    fi
}

start_docker() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    log "starting dockerd (log: /var/log/cutor-dockerd.log)"
    setsid nohup dockerd >/var/log/cutor-dockerd.log 2>&1 </dev/null &
    wait_for "dockerd" 60 docker info
}

configure_nix() {
    # The Debian package ships sandbox = false. Cutor needs sandboxed builds, and the
    # build sandbox has no /bin/sh unless sandbox-paths maps one (static busybox).
    # No substituters: none is reachable here, and each try costs seconds per build.
    local conf=/etc/nix/nix.conf
    local wanted
    wanted=$(cat <<EOF
# Written by Cutor's scripts/setup.sh. nix-daemon runs with RLIMIT_NPROC=$NIX_BUILD_PROCESSES.
build-users-group = nixbld
sandbox = true
sandbox-paths = /bin/sh=/bin/busybox
substituters = ${CUTOR_NIX_SUBSTITUTERS:-}
trusted-users = root
allowed-users = *
max-jobs = auto
experimental-features = nix-command
EOF
)
    if [ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]; then
        log "writing $conf"
        mkdir -p /etc/nix
        echo "$wanted" >"$conf"
        pkill -x nix-daemon 2>/dev/null || true
        sleep 0.5
    fi
    getent group nixbld >/dev/null || groupadd --system nixbld
    for i in $(seq 1 8); do
        id "nixbld$i" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/empty \
            --shell /usr/sbin/nologin --gid nixbld --groups nixbld "nixbld$i"
    done
    # Cutor evaluates cutor.nix files as this unprivileged user, a plain client of the daemon.
    id cutor >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/cutor-nix \
        --shell /usr/sbin/nologin cutor
    # Debian's nix-daemon socket is open to the nix-users group only.
    getent group nix-users >/dev/null || groupadd --system nix-users
    id -nG cutor | grep -qw nix-users || usermod -aG nix-users cutor
    mkdir -p /nix/var/nix/gcroots/cutor
}

start_nix_daemon() {
    if nix_daemon_answers; then
        return
    fi
    log "starting nix-daemon (log: /var/log/cutor-nix-daemon.log)"
    # Builders run as nixbld users and inherit this limit on processes per user, so a
    # fork bomb in a cutor.nix build stops there instead of exhausting the host's pids.
    setsid nohup prlimit --nproc="$NIX_BUILD_PROCESSES" nix-daemon \
        >/var/log/cutor-nix-daemon.log 2>&1 </dev/null &
    wait_for "nix-daemon" 30 nix_daemon_answers
}

nix_daemon_answers() {
    NIX_REMOTE=daemon timeout 10 nix store ping >/dev/null 2>&1
}

build_minio() {
    local bin_dir="$ROOT/.cutor/bin"
    local stamp="$bin_dir/minio.version"
    if [ -x "$bin_dir/minio" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_MODULE_VERSION" ]; then
        return
    fi
    command -v go >/dev/null || die "the Go toolchain is missing: install Go 1.24 or newer (Debian's golang-go is too old) and put 'go' on PATH"
    log "building MinIO $MINIO_MODULE_VERSION from source (takes several minutes on the first run)"
    mkdir -p "$bin_dir"
    GOBIN="$bin_dir" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_MODULE_VERSION" \
        || die "go install github.com/minio/minio@$MINIO_MODULE_VERSION failed; check that the Go module proxy ($(go env GOPROXY)) responds"
    echo "$MINIO_MODULE_VERSION" >"$stamp"
}

install_python() {
    local venv="$ROOT/.venv"
    local stamp="$venv/.cutor-installed"
    local digest
    digest=$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
        return
    fi
    log "installing the Python virtualenv in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e "$ROOT[dev]" \
        || die "pip install failed; check that PyPI responds"
    echo "$digest" >"$stamp"
}

install_debian_packages
configure_docker
start_docker
configure_nix
start_nix_daemon
build_minio
install_python
"$ROOT/.venv/bin/python" -m cutor.image build
log "setup done"
