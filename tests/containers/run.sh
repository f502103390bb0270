#!/usr/bin/env bash
# The container tier (make test-containers): build the three step images on a local Debian base and
# run the whole pipeline in them with `segpipe run --containers`, then check the outcome.
#
# Needs root (apt-get, dockerd, debootstrap) and the package registries, nothing else: its own
# dockerd (no bridge, no iptables; host networking only) under $SEGPIPE_DOCKER_ROOT, stopped by PID
# on every exit. State kept there for fast reruns: the daemon's images and the base image saved as
# a tar. Remove that folder for a cold run.
set -euo pipefail
cd "$(dirname "$0")/../.."

STATE=${SEGPIPE_DOCKER_ROOT:-/var/lib/segpipe-docker}
BASE_IMAGE=segpipe-base:bookworm
BASE_CACHE=$STATE/cache/base-bookworm.tar
WORK=$(mktemp -d /tmp/segpipe-containers.XXXXXX)
export DOCKER_HOST=unix://$STATE/docker.sock
export DOCKER_BUILDKIT=0
DOCKERD_PID=
declare -a TIMES=()

phase() {  # phase NAME COMMAND...: run it, record its wall time
    local name=$1 start=$SECONDS
    shift
    echo "=== $name"
    "$@"
    TIMES+=("$(printf '%-26s %4ds' "$name" $((SECONDS - start)))")
}

stop_dockerd() {
    [[ -n $DOCKERD_PID ]] || return 0
    kill "$DOCKERD_PID" 2>/dev/null || return 0
    for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$DOCKERD_PID" 2>/dev/null || true
    # dockerd leaves its network namespace mounted under the exec root: release it, so that
    # deleting $STATE (for a cold run) works
    awk -v root="$STATE/" 'index($2, root) == 1 {print $2}' /proc/mounts |
        while read -r mount; do umount "$mount" || true; done
}

finish() {
    local status=$?
    stop_dockerd
    echo "=== times"
    printf '  %s\n' "${TIMES[@]}"
    echo "  total                      ${SECONDS}s"
    echo "  outputs: $WORK (dockerd log: $STATE/dockerd.log)"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || { echo "needs root to install ${missing[*]}" >&2; return 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

start_dockerd() {
    [[ $(id -u) == 0 ]] || { echo "dockerd needs root" >&2; return 1; }
    if [[ -f $STATE/dockerd.pid ]] && kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
        echo "a dockerd already runs on $STATE (pid $(cat "$STATE/dockerd.pid")): stop it first" >&2
        return 1
    fi
    mkdir -p "$STATE/cache"
    # No bridge, no NAT, no iptables: containers get the host's network only (--network host).
    dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
        --storage-driver=overlay2 --data-root="$STATE/data" --exec-root="$STATE/exec" \
        --pidfile="$STATE/dockerd.pid" -H "$DOCKER_HOST" >"$STATE/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 120); do
        docker version >/dev/null 2>&1 && return 0
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 0.5
    done
    echo "dockerd did not start:" >&2
    tail -20 "$STATE/dockerd.log" >&2
    return 1
}

debian_mirror() {  # the Debian mirror this machine's apt uses
    local mirror
    mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | grep -v security | head -1 |
        awk '{print $2}')
    [[ -n $mirror ]] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | grep -v security |
        head -1 | awk '{print $2}')
    [[ -n $mirror ]] || { echo "no Debian mirror found in /etc/apt" >&2; return 1; }
    echo "$mirror"
}

base_image() {  # Debian bookworm (Python 3.11) with python3 and venv: cached, else debootstrap
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
    if [[ -f $BASE_CACHE ]]; then
        docker load -i "$BASE_CACHE"
        return 0
    fi
    local root
    root=$(mktemp -d /tmp/segpipe-rootfs.XXXXXX)
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" \
        "$(debian_mirror)" >"$STATE/debootstrap.log" 2>&1 ||
        { tail -20 "$STATE/debootstrap.log" >&2; rm -rf "$root"; return 1; }
    tar -C "$root" --exclude='./var/cache/apt/archives/*.deb' --exclude='./var/lib/apt/lists/*' \
        -c . | docker import - "$BASE_IMAGE"
    rm -rf "$root"
    docker save -o "$BASE_CACHE.tmp" "$BASE_IMAGE" && mv "$BASE_CACHE.tmp" "$BASE_CACHE"
}

refuses_missing_images() {  # a clear error naming `make images`, before any work
    local out
    if out=$(.venv/bin/segpipe run --containers --tag no-such-tag --workdir "$WORK/refused" 2>&1); then
        echo "segpipe run --containers ran without its images" >&2
        return 1
    fi
    grep -q 'make images' <<<"$out" || { echo "unclear error: $out" >&2; return 1; }
    echo "refused as expected: ${out##*$'\n'}"
}

run_pipeline() {  # on the sample data; the closing summary is kept for the checks
    mkdir -p "$WORK/run"
    .venv/bin/segpipe run --containers --workdir "$WORK/run" | tee "$WORK/run/summary.log"
}

stop_pipeline() {  # SIGTERM once training shows progress; its exit status and lines are kept
    mkdir -p "$WORK/stopped"
    .venv/bin/segpipe run --containers --workdir "$WORK/stopped" >"$WORK/stopped/out.log" \
        2>"$WORK/stopped/err.log" &
    local pid=$! status=0
    for _ in $(seq 600); do
        grep -q 'train .*epochs' "$WORK/stopped/out.log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || status=$?
    echo "$status" >"$WORK/stopped/status"
    tail -2 "$WORK/stopped/err.log"
}

phase "install packages" install_packages
phase "start dockerd" start_dockerd
phase "base image" base_image
phase "wheelhouse" make --no-print-directory wheelhouse
phase "images" make --no-print-directory images BASE_IMAGE="$BASE_IMAGE"
docker images --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' | grep segpipe
phase "refuses missing images" refuses_missing_images
phase "pipeline in containers" run_pipeline
phase "stopped in containers" stop_pipeline
# the checks of that run, and preprocess on Beam's portable runner with workers in segpipe-beam
BEAM_IMAGE=segpipe-beam:$(.venv/bin/python -c 'from importlib.metadata import version; print(version("segpipe"))')
phase "checks" env SEGPIPE_CONTAINER_RUN="$WORK/run" SEGPIPE_BEAM_IMAGE="$BEAM_IMAGE" \
    SEGPIPE_CONTAINER_STOPPED="$WORK/stopped" \
    .venv/bin/pytest -q -p no:cacheprovider tests/containers
