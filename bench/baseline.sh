#!/bin/bash
# Builds the BPF objects of the last commit before multi-buffer awareness (the parent of the first commit
# whose <xdp_pipeline/stage.h> declares SEC("xdp.frags")) into DIR, for section 6 of xdpp-bench, which
# runs them beside this build's. Prints that commit's short hash.
#   bench/baseline.sh DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out=${1:?usage: bench/baseline.sh DIR}
first=$(git -C "$root" log --reverse --format=%H -S'xdp.frags' -- bpf/include/xdp_pipeline/stage.h | head -n 1)
[[ -n $first ]] || { echo "bench/baseline.sh: no commit introduces xdp.frags in stage.h" >&2; exit 1; }
base=$(git -C "$root" rev-parse --short "$first^")
src=$(mktemp -d)
trap 'rm -rf -- "$src"' EXIT
git -C "$root" archive "$base" bpf | tar -x -C "$src"
mkdir -p "$out"
for object in dispatcher/dispatcher stages/parse stages/port_filter stages/icmp_lb stages/metadata; do
  clang -target bpf -O2 -g -Wall -I"$src/bpf/include" -I"$src/bpf/stages" \
    -idirafter "/usr/include/$(gcc -print-multiarch)" -c "$src/bpf/$object.bpf.c" -o "$out/${object#*/}.bpf.o"
done
echo "$base"
