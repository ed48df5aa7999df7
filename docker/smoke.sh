#!/usr/bin/env bash
# Smoke test of docker/Dockerfile where no Docker engine runs: build the image with podman
# (chroot isolation) on a Debian bookworm + Python base made here with debootstrap, then, in
# the built image's file system and as its user, make a short test clip with the image's own
# ffmpeg and run `teamnet --help`, encode -> extract -> info on it.
#
# Needs: root, podman, debootstrap (apt-get install podman debootstrap), a network that
# reaches PyPI (the build installs the project and the CUDA build of torch), and about 15 GB of
# free disk where podman keeps its images. Stands alone: nothing outside the repository.
# Leaves behind only the two images (localhost/teamnet-smoke-base, localhost/teamnet-smoke),
# on purpose, so that a rerun takes seconds; `podman rmi` them to start from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
base=localhost/teamnet-smoke-base
image=localhost/teamnet-smoke
need_gb=15

fail() { echo "smoke.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (podman's chroot build and the mounts need it)"
for tool in podman debootstrap chroot; do
    command -v "$tool" >/dev/null || fail "$tool not found: apt-get install podman debootstrap"
done
store=$(podman info --format '{{.Store.GraphRoot}}')
mkdir -p "$store"
free_gb=$(( $(df --output=avail -k "$store" | tail -n 1) / 1024 / 1024 ))
if [ "$free_gb" -lt "$need_gb" ] && ! podman image exists "$image"; then
    fail "$free_gb GB free under $store; the build needs about $need_gb GB"
fi

work=$(mktemp -d)
container=""
mounted=""
cleanup() {
    if [ -n "$mounted" ]; then
        umount "$mounted/proc" "$mounted/dev" 2>/dev/null || true
    fi
    if [ -n "$container" ]; then
        podman umount "$container" >/dev/null 2>&1 || true
        podman rm "$container" >/dev/null 2>&1 || true
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
# a created (never started: `podman run` fails where rlimits cannot be raised) container
# gives a writable copy of the image's file system to chroot into
container=$(podman create "$image")
mounted=$(podman mount "$container")
mount -t proc proc "$mounted/proc"
mount --bind /dev "$mounted/dev"
chroot --userspec=1000:1000 "$mounted" /usr/bin/env HOME=/home/teamnet /bin/sh -c '
    set -e
    mkdir -p /tmp/smoke/raw/pattern
    cd /tmp/smoke
    python3 -c "import torch; print(\"torch\", torch.__version__, \"built for CUDA\", torch.version.cuda)"
    ffmpeg=$(python3 -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
    # 120 frames of a moving test pattern, H.264 with B-frames: what encode must turn into
    # strict-GOP MPEG-4
    "$ffmpeg" -loglevel error -f lavfi -i testsrc=size=176x144:rate=25 -frames:v 120 \
        -c:v libx264 -x264-params bframes=2:b-adapt=0 raw/pattern/clip.mp4
    teamnet --help > /dev/null
    teamnet encode raw encoded
    teamnet extract encoded extracted
    teamnet info extracted --json | tail -n 1 > info.json
    python3 -c "import json; d = json.load(open(\"info.json\")); assert d[\"videos\"] == 1 and d[\"frames\"] == 120, d; print(\"smoke test passed:\", d[\"videos\"], \"video,\", d[\"frames\"], \"frames,\", d[\"bytes\"], \"bytes\")"
'
echo "(images kept for a quick rerun: podman rmi $image $base removes them)"
