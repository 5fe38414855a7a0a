#!/usr/bin/env bash
# Installs fio (Debian package) for bench/blk's host baseline when it is missing
# and we are root; otherwise says what to install. Never fails the bench: without
# fio the baseline is an in-process io_uring loop.
set -uo pipefail
command -v fio >/dev/null 2>&1 && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/blk/setup.sh: fio is missing (install with: apt-get install -y fio)" >&2
  exit 0
fi
echo "bench/blk/setup.sh: installing fio" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q fio >&2; then
  apt-get update -q >&2 && apt-get install -y -q fio >&2 || echo "bench/blk/setup.sh: apt-get install fio failed" >&2
fi
exit 0
