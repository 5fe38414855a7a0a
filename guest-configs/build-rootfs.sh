#!/usr/bin/env bash
# Builds kvm's default guest root filesystem: an ext4 image made without mounting
# (mkfs.ext4 -d) holding Debian's busybox-static (extracted, not installed) with its applet
# links, busybox init with guest-configs/rootfs/etc/inittab (a shell on the console),
# /etc/init.d/rcS (proc, sys, devtmpfs, hostname kvm-guest, lo and eth0 with udhcpc) and
# /kvm-host-marker, which the check initramfs reads back.
#
# Idempotent: cached in $KVM_GUEST_CACHE/rootfs (default ~/.cache/kvm-guests) and rebuilt only
# when guest-configs/rootfs, busybox-static's version or this script change (FORCE=1 rebuilds).
# Guests write to the image (the checks leave /kvm-guest-wrote): copy it for a pristine run.
# ROOTFS_SIZE (default 128M) sets the image size. Prints the path of rootfs.ext4.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
out="$cache/rootfs"
image="$out/rootfs.ext4"
size="${ROOTFS_SIZE:-128M}"
mkdir -p "$out"

need_debs e2fsprogs
bbver=$(candidate_version busybox-static)
overlay_files=()
while IFS= read -r f; do overlay_files+=("$f"); done < <(find "$here/rootfs" "$here/init/udhcpc.script" "$here/init/checks.sh" -type f | LC_ALL=C sort)
stamp=$(echo "busybox-static $bbver size $size $(cd "$here" && find rootfs -type f | LC_ALL=C sort | tr '\n' ' ')" |
  stamp_of "$here/build-rootfs.sh" "$here/lib.sh" "${overlay_files[@]}")
if up_to_date "$out" "$stamp" "$image"; then
  say "rootfs is up to date"
  printf '%s\n' "$image"
  exit 0
fi

bb=$(busybox_static)
root="$out/root"
rm -rf "$root"
trap 'rm -rf "$root" "$image.tmp"' EXIT
say "assembling the root tree (busybox-static $bbver)"
busybox_tree "$bb" "$root"
mkdir -p "$root"/{dev,proc,sys,tmp,run,mnt,root,etc/init.d,etc/udhcpc,var/log}
chmod 1777 "$root/tmp"
cp -a "$here/rootfs/." "$root/"
install -m 755 "$here/init/udhcpc.script" "$root/etc/udhcpc/default.script"  # Debian busybox's default
install -D -m 644 "$here/init/checks.sh" "$root/lib/kvm/checks.sh"  # rcS runs it for kvm.checks=
ln -sf /proc/mounts "$root/etc/mtab"
find "$root" -exec touch -h -d @0 {} +

say "making a $size ext4 image with mkfs.ext4 -d (no mount)"
rm -f "$image.tmp"
# a fixed UUID (root=UUID=6b766d2d-726f-4f74-8066-730000000001 works) and hash seed
E2FSPROGS_FAKE_TIME=1 mkfs.ext4 -q -F -L kvm-rootfs -U 6b766d2d-726f-4f74-8066-730000000001 \
  -E root_owner=0:0,hash_seed=6b766d2d-726f-4f74-8066-730000000002 \
  -d "$root" "$image.tmp" "$size" >/dev/null
# The kernel opens /dev/console for init before anything mounts devtmpfs on /dev: add the
# console and null nodes with debugfs, so building needs no mknod and no root.
E2FSPROGS_FAKE_TIME=1 debugfs -w -f - "$image.tmp" >/dev/null 2>&1 <<'EOF'
cd /dev
mknod console c 5 1
sif console mode 020600
mknod null c 1 3
sif null mode 020666
EOF
debugfs -R 'stat /dev/console' "$image.tmp" 2>/dev/null | grep -q 'Mode:  0600' ||
  die "debugfs did not make /dev/console"
e2fsck -fn "$image.tmp" >/dev/null 2>&1 || die "e2fsck finds errors in the new image"
mv "$image.tmp" "$image"
trap - EXIT
rm -rf "$root"
echo "$stamp" > "$out/stamp"
say "done: rootfs.ext4 ($size, $(du -k "$image" | cut -f1) KiB used on disk)"
printf '%s\n' "$image"
