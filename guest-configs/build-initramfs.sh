#!/usr/bin/env bash
# Builds kvm's check initramfs: Debian's busybox-static (extracted, not installed), its applet
# links and guest-configs/init/init.sh as /init, which loads modules, runs the checks of
# init/checks.sh the kernel command line asks for, prints `kvm-check: ...` lines and powers off.
#
#   build-initramfs.sh                      -> $cache/initramfs/initramfs.cpio.gz (no modules)
#   build-initramfs.sh MODULES_DIR [NAME]   -> $cache/initramfs/initramfs-NAME.cpio.gz with
#       MODULES_DIR/*.ko and its modules.order in /lib/modules (NAME defaults to the name of
#       MODULES_DIR's parent, e.g. debian-cloud for build-debian-kernel.sh's modules)
#
# Idempotent: cached in $KVM_GUEST_CACHE (default ~/.cache/kvm-guests) and rebuilt only when
# the init, the modules, busybox-static's version or this script change (FORCE=1 rebuilds).
# Prints the path of the initramfs (gzip-compressed cpio, newc format).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
out="$cache/initramfs"
mkdir -p "$out"

modules="${1:-}"
if [ -n "$modules" ]; then
  modules="$(cd "$modules" && pwd)" || die "no modules directory $1"
  [ -f "$modules/modules.order" ] || die "$modules has no modules.order"
  name="${2:-$(basename "$(dirname "$modules")")}"
  image="$out/initramfs-$name.cpio.gz"
  mod_files=("$modules/modules.order")
  while read -r ko; do [ -n "$ko" ] && mod_files+=("$modules/$ko"); done < "$modules/modules.order"
else
  name=plain
  image="$out/initramfs.cpio.gz"
  mod_files=()
fi

need_debs cpio gzip
bbver=$(candidate_version busybox-static)
stamp=$(echo "busybox-static $bbver" | stamp_of "$here/build-initramfs.sh" "$here/lib.sh" \
  "$here/init/init.sh" "$here/init/checks.sh" "$here/init/udhcpc.script" ${mod_files[@]+"${mod_files[@]}"})
if [ "${FORCE:-0}" != 1 ] && [ -f "$image" ] && [ "$(cat "$image.stamp" 2>/dev/null)" = "$stamp" ]; then
  say "initramfs $(basename "$image") is up to date"
  printf '%s\n' "$image"
  exit 0
fi

bb=$(busybox_static)
root="$out/$name.root"
rm -rf "$root"
trap 'rm -rf "$root"' EXIT
say "assembling $(basename "$image") (busybox-static $bbver${modules:+, modules from $modules})"
busybox_tree "$bb" "$root"
mkdir -p "$root/etc" "$root/proc" "$root/sys" "$root/mnt" "$root/tmp" "$root/root" "$root/lib/modules"
install -m 755 "$here/init/init.sh" "$root/init"
install -D -m 644 "$here/init/checks.sh" "$root/lib/kvm/checks.sh"
install -m 755 "$here/init/udhcpc.script" "$root/etc/udhcpc.script"
mkdir -p "$root/etc/udhcpc"
ln -s /etc/udhcpc.script "$root/etc/udhcpc/default.script"  # Debian busybox's default script
echo kvm-guest > "$root/etc/hostname"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
for f in ${mod_files[@]+"${mod_files[@]}"}; do cp "$f" "$root/lib/modules/"; done

# /dev and /dev/console must exist before /init runs (the kernel opens the console for it);
# write those two entries by hand in newc format, so building needs no mknod and no root.
newc_entry() { # newc_entry INO MODE RDEVMAJOR RDEVMINOR NAME (no data)
  local namesize=$((${#5} + 1)) hdr
  hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    "$1" "$2" 0 0 1 0 0 0 0 "$3" "$4" "$namesize" 0)
  printf '%s%s\0' "$hdr" "$5"
  # header (110 bytes) + name + NUL, padded to a multiple of 4
  local pad=$(((4 - (110 + namesize) % 4) % 4))
  [ "$pad" -gt 0 ] && head -c "$pad" /dev/zero
  return 0
}
find "$root" -exec touch -h -d @0 {} +   # same inputs, same bytes
{
  newc_entry $((0x7f000001)) $((0040755)) 0 0 dev
  newc_entry $((0x7f000002)) $((0020600)) 5 1 dev/console
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --reproducible --quiet)
} | gzip -9n > "$image.tmp"
mv "$image.tmp" "$image"
echo "$stamp" > "$image.stamp"
say "done: $(basename "$image"), $(stat -c %s "$image") bytes"
printf '%s\n' "$image"
