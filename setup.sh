#!/usr/bin/env bash
# Sets up a fresh Debian machine to build, run and test kvm. Idempotent:
# installs only what is missing. Run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; exit 4
  fi
}

# Debian packages: a C toolchain for the test guest and the benchmark's C VMM,
# script(1) for terminal tests, iasl for the ACPI table tests, ip(8) for the
# network-namespace tests, losetup for the block-device tests, dnsmasq for the
# Linux guest's DHCP in the kernel-side test tier, QEMU for the test that checks the
# minimal kernel's syscall patch under TCG (and the benchmarks' side-by-side runs).
packages=(gcc binutils make bsdutils acpica-tools iproute2 util-linux e2fsprogs dnsmasq-base qemu-system-x86)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js $(node --version) is too old; kvm needs Node.js 20 or newer" >&2
  exit 4
fi

if [ ! -d node_modules/koffi ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

say "building (tsc)"
npm run --silent build

say "building the test guest"
bash test/guest/build.sh

if [ ! -e /dev/kvm ]; then
  say "warning: /dev/kvm is missing: enable virtualization (kvm_intel/kvm_amd) to run guests"
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  say "warning: no access to /dev/kvm: add yourself to the kvm group"
fi
say "done"
