#!/usr/bin/env bash
# Installs what bench/blk needs when it is missing and we are root: fio (the host
# baseline) and qemu-system-x86 (the guest comparison); otherwise says what to
# install. Never fails the bench: without fio the baseline is an in-process
# io_uring loop, without QEMU the guest table has kvm alone.
set -uo pipefail
need=()
command -v fio >/dev/null 2>&1 || need+=(fio)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
((${#need[@]} == 0)) && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/blk/setup.sh: missing packages: ${need[*]} (install with: apt-get install -y ${need[*]})" >&2
  exit 0
fi
echo "bench/blk/setup.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${need[@]}" >&2; then
  apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2 || echo "bench/blk/setup.sh: apt-get install ${need[*]} failed" >&2
fi
exit 0
