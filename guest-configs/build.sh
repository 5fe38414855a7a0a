#!/usr/bin/env bash
# Builds every guest kvm uses, from Debian packages only, each step cached and skipped when
# its inputs have not changed: the minimal kernel, Debian's cloud kernel with its virtio
# modules, the check initramfs (plain, and with the Debian modules) and the root image.
# Progress goes to stderr; stdout is a summary of `NAME=path` lines that a shell can eval:
#   eval "$(guest-configs/build.sh)"; npx kvm run -k "$KVM_MINIMAL_VMLINUX" -d "$KVM_ROOTFS" ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

t_all=$SECONDS
step() { # step NAME COMMAND...: runs a build script, saying how long it took
  local t=$SECONDS
  say "== $1"
  "${@:2}"
  say "== $1: $((SECONDS - t)) s"
}

out=$(step "minimal kernel" "$here/build-minimal-kernel.sh")
mapfile -t minimal <<< "$out"
out=$(step "Debian cloud kernel" "$here/build-debian-kernel.sh")
mapfile -t debian <<< "$out"
initramfs=$(step "initramfs" "$here/build-initramfs.sh")
initramfs_debian=$(step "initramfs with the Debian modules" "$here/build-initramfs.sh" "${debian[2]}")
rootfs=$(step "root image" "$here/build-rootfs.sh")
say "all guests ready in $((SECONDS - t_all)) s"

cat <<EOF
KVM_MINIMAL_VMLINUX=${minimal[0]}
KVM_MINIMAL_BZIMAGE=${minimal[1]}
KVM_DEBIAN_VMLINUX=${debian[0]}
KVM_DEBIAN_VMLINUZ=${debian[1]}
KVM_DEBIAN_MODULES=${debian[2]}
KVM_INITRAMFS=$initramfs
KVM_INITRAMFS_DEBIAN=$initramfs_debian
KVM_ROOTFS=$rootfs
EOF
