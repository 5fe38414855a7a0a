#!/usr/bin/env bash
# Builds the C baseline VMM of bench/exit-cost into build/bench/mini-vmm (idempotent).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$root/bench/exit-cost/mini-vmm.c"
out="$root/build/bench/mini-vmm"
mkdir -p "$(dirname "$out")"
if [[ -x "$out" && "$out" -nt "$src" && "$out" -nt "${BASH_SOURCE[0]}" ]]; then
  exit 0
fi
command -v gcc >/dev/null || { echo "bench/exit-cost/build.sh: gcc not found (apt-get install -y gcc)" >&2; exit 1; }
gcc -O2 -std=gnu11 -Wall -Wextra -o "$out.tmp" "$src"
mv -f "$out.tmp" "$out"
