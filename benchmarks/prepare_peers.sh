#!/usr/bin/env bash
# Copy the two peer StyleGAN2 implementations that benchmarks/gpu_speed.sh compares against
# into DEST (default .peers/, which git ignores through .git/info/exclude; the device run
# carries it: the device machine has no network):
#   DEST/rosinality  rosinality/stylegan2-pytorch at bef283a: model.py and op/
#   DEST/nvlabs      NVlabs/stylegan2-ada-pytorch at d72cc7d: dnnlib/, torch_utils/, training/
# Nothing of theirs is committed to this repository; gpu_speed.sh builds their CUDA plugins in
# a scratch folder outside it.
#
#   benchmarks/prepare_peers.sh [DEST] [ROSINALITY_GIT_DIR] [NVLABS_GIT_DIR]
#
# The git directories default to fresh clones from GitHub; a bare mirror works too (e.g. the
# one the session's `fetch` tool makes under /work/.mirror/OWNER+NAME/repo).
set -euo pipefail
dest=${1:-.peers}
rosi_git=${2:-}
nv_git=${3:-}
ROSI_COMMIT=bef283a
NV_COMMIT=d72cc7d
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

checkout() {  # git_dir_or_url commit out paths...
    local src=$1 commit=$2 out=$3
    shift 3
    if [ ! -d "$src" ]; then
        git clone -q --no-checkout "$src" "$tmp/clone-$commit"
        src="$tmp/clone-$commit/.git"
    fi
    mkdir -p "$out"
    git --git-dir="$src" archive "$commit" "$@" | tar -x -C "$out"
    echo "$commit" > "$out/COMMIT"
}

rm -rf "$dest/rosinality" "$dest/nvlabs"
checkout "${rosi_git:-https://github.com/rosinality/stylegan2-pytorch}" "$ROSI_COMMIT" \
    "$dest/rosinality" model.py op
checkout "${nv_git:-https://github.com/NVlabs/stylegan2-ada-pytorch}" "$NV_COMMIT" \
    "$dest/nvlabs" dnnlib torch_utils training LICENSE.txt
du -sh "$dest"/*
