#!/usr/bin/env bash
# Builds the kvm test guest (gcc, ld, objcopy; no libc) into build/guest/:
#
#   test-guest.elf         ELF64 at 0x100000 with the Xen PVH note
#                          (PHYS32_ENTRY = pvh_start32); e_entry = startup_64
#   test-guest-elf64.elf   the same guest without the PVH note: a loader uses
#                          e_entry (Linux 64-bit boot protocol)
#   test-guest.bzImage     setup header (setup.S) + test-guest-elf64.elf as a
#                          flat binary; 64-bit entry at load address + 0x200
#
# Idempotent: does nothing when every output is newer than every source.
# Safe to run concurrently (serialised with flock).
set -euo pipefail
trap 'echo "test/guest/build.sh: line $LINENO: command failed (status $?): $BASH_COMMAND" >&2' ERR

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/build/guest"
mkdir -p "$out"

exec 9>"$out/.lock"
flock 9

sources=("$here"/*.c "$here"/*.h "$here"/*.S "$here/build.sh")
outputs=("$out/test-guest.elf" "$out/test-guest-elf64.elf" "$out/test-guest.bzImage")

up_to_date() {
	local o s
	for o in "${outputs[@]}"; do
		[[ -f "$o" ]] || return 1
		for s in "${sources[@]}"; do
			[[ "$o" -nt "$s" ]] || return 1
		done
	done
	return 0
}

if [[ "${1:-}" != "--force" ]] && up_to_date; then
	exit 0
fi

CC="${CC:-gcc}"
LD="${LD:-ld}"
OBJCOPY="${OBJCOPY:-objcopy}"
NM="${NM:-nm}"

CFLAGS=(
	-std=gnu11 -O2 -Wall -Wextra -Werror
	-m64 -march=x86-64 -mcmodel=small
	-ffreestanding -fno-builtin -nostdlib -fno-common
	-fpie -fvisibility=hidden
	-fno-stack-protector -fno-stack-clash-protection -fcf-protection=none
	-fno-asynchronous-unwind-tables -fno-unwind-tables
	-fno-jump-tables -fno-tree-loop-distribute-patterns
	-mno-red-zone -mgeneral-regs-only -mno-mmx -mno-sse -mno-sse2 -mno-avx
)
ASFLAGS=(-m64 -Wa,--noexecstack)
LDFLAGS=(
	-m elf_x86_64 -nostdlib -static --no-dynamic-linker
	-z max-page-size=0x1000 -z noexecstack --build-id=none
	--no-warn-rwx-segments
)

tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

"$CC" "${CFLAGS[@]}" -c "$here/main.c" -o "$tmp/main.o"
"$CC" "${CFLAGS[@]}" -Os -c "$here/acpi.c" -o "$tmp/acpi.o"
# The virtio drivers are setup code whose time goes into VM exits: optimise
# them for size.
virtio=()
for f in virtio virtio-blk virtio-net; do
	"$CC" "${CFLAGS[@]}" -Os -c "$here/$f.c" -o "$tmp/$f.o"
	virtio+=("$tmp/$f.o")
done
"$CC" "${ASFLAGS[@]}" -c "$here/entry.S" -o "$tmp/entry.o"
"$CC" "${ASFLAGS[@]}" -c "$here/pvh-note.S" -o "$tmp/pvh-note.o"

"$CC" -E -P -x c -DPVH "$here/guest.ld.S" -o "$tmp/pvh.ld"
"$CC" -E -P -x c "$here/guest.ld.S" -o "$tmp/linux64.ld"

"$LD" "${LDFLAGS[@]}" -T "$tmp/pvh.ld" -o "$tmp/test-guest.elf" \
	"$tmp/entry.o" "$tmp/main.o" "$tmp/acpi.o" "${virtio[@]}" "$tmp/pvh-note.o"
"$LD" "${LDFLAGS[@]}" -T "$tmp/linux64.ld" -o "$tmp/test-guest-elf64.elf" \
	"$tmp/entry.o" "$tmp/main.o" "$tmp/acpi.o" "${virtio[@]}"

# The protected-mode part of the bzImage: the loadable image as flat binary.
"$OBJCOPY" -O binary "$tmp/test-guest-elf64.elf" "$tmp/pm.bin"
pm_size=$(stat -c %s "$tmp/pm.bin")
sym() { "$NM" "$tmp/test-guest-elf64.elf" | awk -v s="$1" '$3 == s { print $1 }'; }
start=$((16#$(sym _start)))
end=$((16#$(sym _end)))
entry64=$((16#$(sym startup_64)))
if ((entry64 - start != 0x200)); then
	echo "build.sh: startup_64 is not at image offset 0x200" >&2
	exit 1
fi
syssize=$(((pm_size + 15) / 16))
init_size=$((((end - start) + 4095) / 4096 * 4096))

"$CC" "${ASFLAGS[@]}" -DSYSSIZE="$syssize" -DINIT_SIZE="$init_size" \
	-c "$here/setup.S" -o "$tmp/setup.o"
"$LD" -m elf_x86_64 -nostdlib -static -Ttext=0 -e _start --build-id=none \
	-z noexecstack -o "$tmp/setup.elf" "$tmp/setup.o"
"$OBJCOPY" -O binary -j .text "$tmp/setup.elf" "$tmp/setup.bin"
setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$tmp/setup.bin" | tr -d ' ')
if (($(stat -c %s "$tmp/setup.bin") != (setup_sects + 1) * 512)); then
	echo "build.sh: setup.bin is not (setup_sects + 1) * 512 bytes" >&2
	exit 1
fi
cat "$tmp/setup.bin" "$tmp/pm.bin" >"$tmp/test-guest.bzImage"

# Publish (rename is atomic; the bzImage last since it is checked first).
mv -f "$tmp/test-guest.elf" "$out/test-guest.elf"
mv -f "$tmp/test-guest-elf64.elf" "$out/test-guest-elf64.elf"
mv -f "$tmp/test-guest.bzImage" "$out/test-guest.bzImage"
