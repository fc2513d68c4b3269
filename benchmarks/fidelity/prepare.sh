#!/usr/bin/env bash
# Fetch the upstream repositories the fidelity suite compares against, each at a pinned commit,
# into DEST (a folder OUTSIDE this repository: their licences differ from ours, some are
# non-commercial, and nothing of theirs is committed here).
#
#   benchmarks/fidelity/prepare.sh DEST [MIRROR_DIR]
#
# Without MIRROR_DIR each repository is fetched from GitHub (a shallow fetch of the pinned
# commit, else a full clone).  With MIRROR_DIR, MIRROR_DIR/OWNER+NAME/repo (or
# MIRROR_DIR/OWNER+NAME) must be a git directory holding the pinned commit, e.g. a bare mirror;
# nothing is downloaded then.
#
# Layout: DEST/OWNER+NAME/ holds the commit's source files (*.py, *.yaml, *.yml, *.gz: CLIP's
# BPE vocabulary; plus LICENSE*) and a FIDELITY_COMMIT file naming the commit; DEST/PINNED
# lists all of them.  Weights, images and notebooks are not extracted (the checks use random
# weights); mirrors that lack such large blobs therefore still work.
#
# The trees are left exactly as upstream wrote them.  The few patches the checks need are made
# at run time, in memory, by the check modules (benchmarks/fidelity/check_*.py), never in these
# files:
#   - rosinality-style CUDA ops: encoder4editing, pixel2style2pixel, FeatureStyleEncoder,
#     rosinality and MindTheGap compile fused_bias_act/upfirdn2d with cpp_extension.load() when
#     `op` is imported (needs nvcc + GPU); native_ops.install() registers our own pure-PyTorch
#     fused_leaky_relu/upfirdn2d under that package name first.  rosinality's plain-Python
#     op/conv2d_gradfix.py is loaded unchanged.
#   - HyperDomainNet's gan_models/StyleGAN2/op tries the CUDA ops and falls back to its own
#     *_torch_native.py on ImportError: the CUDA modules are blocked so that fallback runs.
#   - training-only imports the compared inference path never calls are stubbed:
#     FeatureStyleEncoder (face_alignment, lpips, face_parsing.model.BiSeNet, ranger),
#     StyleRes (editings.editor: only the identity "inversion" edit is run),
#     StyleDomain / HyperDomainNet (clip, omegaconf; restyle_encoders.psp in HyperDomainNet:
#     their text encoders / config loaders are not on the rendering path).
# NVlabs stylegan2-ada-pytorch, StyleDomain's own generator and OpenAI CLIP run unpatched.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
dest=$1
mirrors=${2:-}

# OWNER/NAME COMMIT -- the commits these results were produced with.
PINS=(
    "omertov/encoder4editing 99ea50578695d2e8a1cf7259d8ee89b23eea942b"
    "eladrich/pixel2style2pixel 5cfff385beb7b95fbce775662b48fcc80081928d"
    "InterDigitalInc/FeatureStyleEncoder 4aa0069aedec3993dab6f3471f481616617d7bc9"
    "hamzapehlivan/StyleRes 9c62ab7497206d47346148d4090fcf5e92e7e199"
    "rosinality/stylegan2-pytorch bef283a1c24087da704d16c30abc8e36e63efa0e"
    "NVlabs/stylegan2-ada-pytorch d72cc7d041b42ec8e806021a205ed9349f87c6a4"
    "AIRI-Institute/StyleDomain 44b8370c90df25754ec01e1f880ca02b502e3bce"
    "ZPdesu/MindTheGap 2ef0bb32d51d87915f400b121d9155995ba689eb"
    "MACderRu/HyperDomainNet 2986493c6de3aa5840528b398f33e5817e29f4f5"
    "openai/CLIP d05afc436d78f1c48dc0dbf8e5980a9d471f35f6"
)

here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
case "$dest/" in
    "$here"/*) echo "DEST must be outside the repository ($here)" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

git_dir_for() {  # repo commit -> prints a git directory holding commit
    local repo=$1 commit=$2 name=${1/\//+}
    if [ -n "$mirrors" ]; then
        local gd
        for gd in "$mirrors/$name/repo" "$mirrors/$name/repo/.git" "$mirrors/$name"; do
            if git --git-dir="$gd" cat-file -e "$commit^{commit}" 2>/dev/null; then
                echo "$gd"; return 0
            fi
        done
        echo "no git directory with $commit for $repo under $mirrors" >&2; return 1
    fi
    local gd="$tmp/$name.git"
    git init -q --bare "$gd"
    if ! git --git-dir="$gd" fetch -q --depth 1 "https://github.com/$repo" "$commit" 2>/dev/null; then
        rm -rf "$gd"
        git clone -q --bare "https://github.com/$repo" "$gd"
    fi
    git --git-dir="$gd" cat-file -e "$commit^{commit}"
    echo "$gd"
}

: > "$dest/PINNED"
for pin in "${PINS[@]}"; do
    read -r repo commit <<< "$pin"
    name=${repo/\//+}
    gd=$(git_dir_for "$repo" "$commit")
    # source files whose blobs are present (a partial mirror may lack large binaries)
    files=()
    while read -r _mode _type sha path; do
        case "$path" in
            *.py|*.yaml|*.yml|*.gz|LICENSE*) ;;
            *) continue ;;
        esac
        if git --git-dir="$gd" cat-file -e "$sha" 2>/dev/null; then
            files+=("$path")
        else
            echo "  $repo: $path not in the git directory, skipped" >&2
        fi
    done < <(git --git-dir="$gd" ls-tree -r "$commit" | awk '$2 == "blob"')
    rm -rf "${dest:?}/$name"
    mkdir -p "$dest/$name"
    # (git archive may complain about the absent blobs of files it was not asked for)
    if ! git --git-dir="$gd" archive "$commit" -- "${files[@]}" 2> "$tmp/err" \
            | tar -x -C "$dest/$name"; then
        cat "$tmp/err" >&2; exit 1
    fi
    echo "$commit" > "$dest/$name/FIDELITY_COMMIT"
    echo "$repo $commit" >> "$dest/PINNED"
    echo "$repo @ ${commit:0:7}: ${#files[@]} files -> $dest/$name"
done
