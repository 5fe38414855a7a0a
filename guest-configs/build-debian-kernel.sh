#!/usr/bin/env bash
# Unpacks Debian's cloud kernel (the linux-image-6.1.*-cloud-amd64 package that
# linux-image-cloud-amd64 depends on) for kvm: the bzImage, the vmlinux ELF extracted from
# it, the virtio modules with everything modules.dep says they need, and the config.
# The package is fetched with `apt-get download`, never installed into the host.
# Idempotent: cached in $KVM_GUEST_CACHE/debian-cloud (default ~/.cache/kvm-guests) and
# redone only when the package version or this script changes (FORCE=1 redoes it).
# Prints three lines: the vmlinux path, the vmlinuz (bzImage) path, the modules directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
out="$cache/debian-cloud"

# The modules a virtio guest needs; their dependencies are added from modules.dep.
wanted=(virtio_pci virtio_mmio virtio_blk virtio_net virtio_console virtio-rng)

meta=linux-image-cloud-amd64
need_debs kmod
candidate_version "$meta" >/dev/null
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\..*-cloud-amd64$/ {print $2; exit}')
[ -n "$pkg" ] || die "$meta depends on no linux-image-6.1.*-cloud-amd64 package"
ver=$(candidate_version "$pkg")
stamp=$(echo "$pkg $ver ${wanted[*]}" | stamp_of "$here/build-debian-kernel.sh" "$here/lib.sh")
if up_to_date "$out" "$stamp" "$out/vmlinux" "$out/vmlinuz" "$out/modules/modules.order" "$out/config"; then
  say "Debian cloud kernel $pkg $ver is up to date"
  printf '%s\n%s\n%s\n' "$out/vmlinux" "$out/vmlinuz" "$out/modules"
  exit 0
fi

deb=$(fetch_deb "$pkg" "$ver")
work="$out.tmp"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
say "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$work/pkg"
kver=${pkg#linux-image-}
kimage="$work/pkg/boot/vmlinuz-$kver"
[ -f "$kimage" ] || die "no boot/vmlinuz-$kver in $deb"
cp "$kimage" "$work/vmlinuz"
cp "$work/pkg/boot/config-$kver" "$work/config"

# --- vmlinux: the payload the bzImage's decompressor would unpack -------------------------
le32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
le16() { od -An -tu2 -j "$2" -N2 "$1" | tr -d ' '; }
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
hex() { od -An -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'; }
[ "$(hex "$kimage" 0x202 4)" = 48647253 ] || die "$kimage has no HdrS setup header"
setup_sects=$(u8 "$kimage" $((0x1f1)))
[ "$setup_sects" -eq 0 ] && setup_sects=4
pm_start=$(((setup_sects + 1) * 512))
payload_offset=$(le32 "$kimage" $((0x248)))
payload_length=$(le32 "$kimage" $((0x24c)))
start=$((pm_start + payload_offset))
payload="$work/payload"
dd if="$kimage" of="$payload" bs=64K skip="$start" count="$payload_length" iflag=skip_bytes,count_bytes status=none
# The kernel's build appends the uncompressed size (le32) after every compressed stream.
unpacked_size=$(le32 "$payload" $((payload_length - 4)))
head -c $((payload_length - 4)) "$payload" > "$payload.z"
magic=$(hex "$payload.z" 0 6)
case "$magic" in
  1f8b*)         comp=gzip;  tool=gzip;     decomp=(gzip -dc) ;;
  425a68*)       comp=bzip2; tool=bzip2;    decomp=(bzip2 -dc) ;;
  5d0000*)       comp=lzma;  tool=xz-utils; decomp=(xz -dc --format=lzma) ;;
  fd377a585a00)  comp=xz;    tool=xz-utils; decomp=(xz -dc --single-stream) ;;
  894c5a4f*)     comp=lzo;   tool=lzop;     decomp=(lzop -dc) ;;
  02214c18*)     comp=lz4;   tool=lz4;      decomp=(lz4 -dc) ;;
  28b52ffd*)     comp=zstd;  tool=zstd;     decomp=(zstd -dc) ;;
  *) die "unknown compression of the bzImage payload (magic $magic)" ;;
esac
need_debs "$tool"
say "extracting vmlinux: $comp payload of $payload_length bytes at offset $start, $unpacked_size bytes unpacked"
"${decomp[@]}" < "$payload.z" > "$work/vmlinux.all" || die "${decomp[*]} failed"
[ "$(stat -c %s "$work/vmlinux.all")" -eq "$unpacked_size" ] ||
  die "decompressed $(stat -c %s "$work/vmlinux.all") bytes, the bzImage says $unpacked_size"
[ "$(hex "$work/vmlinux.all" 0 4)" = 7f454c46 ] || die "the bzImage payload is not an ELF"
[ "$(u8 "$work/vmlinux.all" 4)" = 2 ] || die "the bzImage payload is not a 64-bit ELF"
# The payload is vmlinux followed by its relocation table (for KASLR): cut it after the
# section headers, the ELF's last part.
e_shoff=$(od -An -tu8 -j $((0x28)) -N8 "$work/vmlinux.all" | tr -d ' ')
e_shentsize=$(le16 "$work/vmlinux.all" $((0x3a)))
e_shnum=$(le16 "$work/vmlinux.all" $((0x3c)))
elf_end=$((e_shoff + e_shentsize * e_shnum))
head -c "$elf_end" "$work/vmlinux.all" > "$work/vmlinux"
rm -f "$work/vmlinux.all" "$payload" "$payload.z"
if command -v readelf >/dev/null; then
  readelf -h "$work/vmlinux" | grep -q 'Advanced Micro Devices X86-64' || die "vmlinux is not an x86-64 ELF"
fi

# --- modules --------------------------------------------------------------------------------
moddir="$work/pkg/lib/modules/$kver"
[ -d "$moddir/kernel" ] || die "no lib/modules/$kver in $deb"
# The package ships no modules.dep (its postinst runs depmod): make one in the unpacked tree.
depmod -b "$work/pkg" "$kver"
declare -A path_of=() deps_of=() seen=()
while IFS= read -r line; do
  m=${line%%:*}; n=$(basename "$m"); n=${n%%.ko*}; n=${n//-/_}
  path_of[$n]=$m
  deps_of[$n]=${line#*:}
done < "$moddir/modules.dep"
order=()
visit() { # depth first: a module's dependencies load before it
  local n=$1 d dn
  [ -n "${seen[$n]:-}" ] && return 0
  seen[$n]=1
  for d in ${deps_of[$n]}; do dn=$(basename "$d"); dn=${dn%%.ko*}; visit "${dn//-/_}"; done
  order+=("$n")
}
for w in "${wanted[@]}"; do
  n=${w//-/_}
  if [ -z "${path_of[$n]:-}" ]; then
    grep -q "/${w}.ko" "$moddir/modules.builtin" && { say "$w is built in"; continue; }
    die "no module $w in $kver"
  fi
  visit "$n"
done
mkdir -p "$work/modules"
: > "$work/modules/modules.order"
for n in "${order[@]}"; do
  src="$moddir/${path_of[$n]}"
  base=$(basename "${path_of[$n]}")
  case "$base" in   # busybox insmod reads plain ELF modules only
    *.ko.xz)  xz -dc < "$src" > "$work/modules/${base%.xz}" ;;
    *.ko.zst) need_debs zstd; zstd -dc < "$src" > "$work/modules/${base%.zst}" ;;
    *.ko.gz)  gzip -dc < "$src" > "$work/modules/${base%.gz}" ;;
    *.ko)     cp "$src" "$work/modules/$base" ;;
    *) die "unexpected module file $base" ;;
  esac
  echo "${base%.ko*}.ko" >> "$work/modules/modules.order"
done
say "modules in load order: $(tr '\n' ' ' < "$work/modules/modules.order")"

rm -rf "$work/pkg"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
printf '%s\n' "$kver" > "$out/release"
printf '%s\n' "$comp" > "$out/compression"
echo "$stamp" > "$out/stamp"
say "done: Debian $pkg $ver ($comp-compressed bzImage)"
printf '%s\n%s\n%s\n' "$out/vmlinux" "$out/vmlinuz" "$out/modules"
