#!/usr/bin/env bash
# Installs what bench/exit-cost needs: gcc and the Linux headers for the C VMM,
# QEMU for the comparison. Installs only when run as root and something is
# missing; otherwise it says what to install. Never fails the bench: a missing
# QEMU only drops the QEMU column.
set -uo pipefail

need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[[ -e /usr/include/linux/kvm.h ]] || need+=(linux-libc-dev)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
((${#need[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/exit-cost/setup.sh: missing packages: ${need[*]} (install with: apt-get install -y ${need[*]})" >&2
  exit 0
fi

echo "bench/exit-cost/setup.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${need[@]}" >&2; then
  apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2 ||
    echo "bench/exit-cost/setup.sh: apt-get install ${need[*]} failed" >&2
fi
exit 0
