#!/usr/bin/env bash
# Boots the test guest under QEMU (not our VMM) and checks every test's
# output and exit status. Needs qemu-system-x86 (Debian package) and /dev/kvm.
#
#   bash test/guest/qemu-smoke.sh            # KVM (default)
#   ACCEL=tcg bash test/guest/qemu-smoke.sh  # QEMU's own emulator
#
# test-guest.elf is booted through its PVH note (microvm), the bzImage
# through its real-mode setup code (microvm's qboot runs it; it then enters the
# 64-bit entry like our VMM does). test-guest-elf64.elf has no PVH note and
# QEMU cannot boot it. Prints "N passed, N failed".
#
# The virtio-blk cases use a 64 MiB raw image in a temporary directory and
# check what the guest wrote from the host side. The virtio-net cases need
# root and iproute2: they run QEMU inside a network namespace of their own
# (kvmtg-<pid>) with a TAP device tap0 = 10.0.2.1/24, deleted on exit; the
# namespace's kernel answers the guest's ARP and ping. Without it they are
# skipped (NET=0 skips them too).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bash "$here/build.sh" || exit 1
out="$root/build/guest"

accel="${ACCEL:-kvm}"
if [[ "$accel" == kvm ]]; then
	cpu="host,-arch-capabilities" # this host's KVM rejects the arch-capabilities MSR
else
	cpu="max"
fi

qemu() { # machine kernel cmdline [stdin [more qemu arguments...]]
	local m="$1" k="$2" c="$3" in="${4:-/dev/null}"
	shift $(($# < 4 ? $# : 4))
	${netns:+ip netns exec "$netns"} timeout 30 qemu-system-x86_64 -M "$m,accel=$accel" -cpu "$cpu" -m 128 \
		-nodefaults -no-user-config -nographic -serial "${serial:-stdio}" -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x01 \
		-kernel "$k" -append "$c" "$@" <"$in" 2>&1
}

pass=0
fail=0
check() { # name machine kernel cmdline want-status want-regex [stdin]
	local got status
	got="$(qemu "$2" "$3" "$4" "${7:-}")"
	status=$?
	if [[ "$status" == "$5" ]] && grep -Eq -- "$6" <<<"$got"; then
		pass=$((pass + 1))
		echo "ok   $1"
	else
		fail=$((fail + 1))
		echo "FAIL $1: status $status (want $5), output:"
		sed 's/^/     | /' <<<"$got"
	fi
}

# check_virtio name machine kernel cmdline want-status want-regex qemu-args...
# (the output is left in $got; $netns, if set, is the namespace to run in)
check_virtio() {
	local name="$1" m="$2" k="$3" c="$4" want="$5" re="$6" status
	shift 6
	got="$(qemu "$m" "$k" "$c" /dev/null "$@")"
	status=$?
	if [[ "$status" == "$want" ]] && grep -Eq -- "$re" <<<"$got"; then
		pass=$((pass + 1))
		echo "ok   $name"
	else
		fail=$((fail + 1))
		echo "FAIL $name: status $status (want $want), output:"
		sed 's/^/     | /' <<<"$got"
	fi
}

# check_console name machine kernel cmdline qemu-args...: the UART goes to a
# file, a virtconsole (chardev c0) to stdio with "abc\nq" as input; wants
# "hello over virtio-console" and the echoed "abc" on the console, status 1.
check_console() {
	local name="$1" m="$2" k="$3" c="$4" got uart status
	shift 4
	: >"$uart_out"
	got="$(serial="file:$uart_out" qemu "$m" "$k" "$c" "$echo_in" "$@" \
		-chardev stdio,id=c0 -device virtconsole,chardev=c0)"
	status=$?
	uart="$(cat "$uart_out")"
	if [[ "$status" == 1 && "$got" == $'hello over virtio-console\nabc' ]] &&
		grep -q '^virtio-console: done' <<<"$uart"; then
		pass=$((pass + 1))
		echo "ok   $name"
	else
		fail=$((fail + 1))
		echo "FAIL $name: status $status (want 1), console output:"
		sed 's/^/     | /' <<<"$got"
		echo "     UART:"
		sed 's/^/     | /' <<<"$uart"
	fi
}

# host_check name command...: a check on the host side
host_check() {
	local name="$1"
	shift
	if "$@"; then
		pass=$((pass + 1))
		echo "ok   $name"
	else
		fail=$((fail + 1))
		echo "FAIL $name"
	fi
}

echo_in="$(mktemp)"
uart_out="$(mktemp)"
tmpdir="$(mktemp -d)"
netns=""
ns=""
cleanup() {
	rm -rf "$echo_in" "$uart_out" "$tmpdir"
	if [[ -n "$ns" ]]; then ip netns del "$ns" 2>/dev/null; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
printf 'abc\nq' >"$echo_in"

for variant in "pvh microvm,rtc=on $out/test-guest.elf" \
	"linux64 microvm,rtc=on $out/test-guest.bzImage"; do
	read -r boot m k <<<"$variant"
	check "$boot hello" "$m" "$k" "test=hello" 1 "^kvm-test-guest: boot=$boot"$'\r?$'
	check "$boot hello-line" "$m" "$k" "test=hello" 1 "^hello from the test guest"
	check "$boot cmdline" "$m" "$k" "test=hello a=b" 1 "^kvm-test-guest: cmdline=test=hello a=b"
	check "$boot exit" "$m" "$k" "test=exit code=42" 85 "cmdline=test=exit code=42"
	check "$boot echo" "$m" "$k" "test=echo" 1 "^abc"$'\r?$' "$echo_in"
	check "$boot string-pio" "$m" "$k" "test=string-pio" 1 "^insb: [0-9a-f]{16}"
	check "$boot memmap" "$m" "$k" "test=memmap" 1 "^mem: total-ram-kib=1[0-9]{5}"
	check "$boot cmos" "$m" "$k" "test=cmos" 1 "^cmos: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} statusb=0x"
	check "$boot ud2" "$m" "$k" "test=ud2" 1 "^ud2: resumed"
	check "$boot triple-fault" "$m" "$k" "test=triple-fault" 0 "cmdline=test=triple-fault"
	check "$boot unknown" "$m" "$k" "test=nope" 5 "^kvm-test-guest: unknown test"
	check "$boot pio-loop" "$m" "$k" "test=pio-loop count=1000" 1 ""
done
# i8042 reset needs a PC (microvm has no i8042): QEMU -no-reboot then exits 0.
check "pvh reset (pc)" pc "$out/test-guest.elf" "test=reset" 0 "cmdline=test=reset"
check "pvh reset (microvm, no i8042)" microvm "$out/test-guest.elf" "test=reset" 7 "^reset: failed"
# ACPI power events. SeaBIOS's tables (pc, q35) are ACPI 1.0 (RSDT only) with
# \_S5 = 0 and, on q35, RESET_REG 0xcf9 = 0x0f; -no-reboot makes both exit 0.
# microvm's FADT is hardware-reduced (no PM1 registers): test=acpi says so.
check "pvh acpi-poweroff (pc)" pc "$out/test-guest.elf" "test=acpi-poweroff" 0 "^acpi: s5 slp_typ 0"
check "linux64 acpi-reset (q35)" q35 "$out/test-guest.bzImage" "test=acpi-reset" 0 "^acpi: writing 0xf to port 0xcf9"
check "pvh acpi (microvm, hardware-reduced)" microvm "$out/test-guest.elf" "test=acpi" 3 "^acpi: FAILED HW_REDUCED_ACPI is set"
# (check_virtio is any check with more QEMU arguments)
check_virtio "pvh pvpanic (microvm)" microvm "$out/test-guest.elf" "test=pvpanic" 1 "^pvpanic: caps 0x3" \
	-device pvpanic -action panic=exit-failure
check "pvh pvpanic (microvm, no device)" microvm "$out/test-guest.elf" "test=pvpanic" 3 "^pvpanic: FAILED still running"
# int3 needs an emulator that can run int3 (this host's nested KVM cannot).
if [[ "$accel" == tcg ]]; then
	check "pvh int3" microvm "$out/test-guest.elf" "test=int3" 1 "^int3: resumed"
fi

# virtio over MMIO: microvm appends virtio_mmio.device= words only without
# ACPI; its virtio-mmio transports are legacy (version 1) unless told not.
mmio=(-global virtio-mmio.force-legacy=false)
rng_mmio=("${mmio[@]}" -device virtio-rng-device)
con_mmio=("${mmio[@]}" -device virtio-serial-device)
rng_ok='^virtio-rng: ok'
for irq in poll intx; do
	check_virtio "pvh virtio-rng mmio $irq" microvm,acpi=off "$out/test-guest.elf" \
		"test=virtio-rng transport=mmio irq=$irq" 1 "$rng_ok" "${rng_mmio[@]}"
	check_console "pvh virtio-console mmio $irq" microvm,acpi=off "$out/test-guest.elf" \
		"test=virtio-console transport=mmio irq=$irq" "${con_mmio[@]}"
done
check_virtio "pvh virtio-rng mmio intx level, 5 requests on a 2-entry ring" microvm,acpi=off \
	"$out/test-guest.elf" "test=virtio-rng transport=mmio irq=intx trigger=level qsize=2 requests=5" \
	1 "$rng_ok" "${rng_mmio[@]}"
check_virtio "linux64 virtio-rng mmio intx" microvm,acpi=off "$out/test-guest.bzImage" \
	"test=virtio-rng transport=mmio irq=intx" 1 "$rng_ok" "${rng_mmio[@]}"
check_virtio "pvh virtio-rng mmio, no device" microvm,acpi=off "$out/test-guest.elf" \
	"test=virtio-rng transport=mmio" 3 "^virtio-rng: FAILED no virtio-mmio rng" "${con_mmio[@]}"
check_virtio "pvh virtio-rng mmio intx, wrong gsi: timeout" microvm,acpi=off "$out/test-guest.elf" \
	"test=virtio-rng transport=mmio irq=intx gsi=5 timeout=300" 3 \
	"^virtio-rng: FAILED timeout waiting for the entropy buffer \(used.idx 1," "${rng_mmio[@]}"

# virtio over PCI: SeaBIOS (pc, q35) assigns the BARs and interrupt lines.
rng_pci=(-device virtio-rng-pci,disable-legacy=on)
con_pci=(-device virtio-serial-pci,disable-legacy=on)
for irq in poll msix intx; do
	check_virtio "pvh virtio-rng pci $irq (pc)" pc "$out/test-guest.elf" \
		"test=virtio-rng transport=pci irq=$irq" 1 "$rng_ok" "${rng_pci[@]}"
	check_console "pvh virtio-console pci $irq (pc)" pc "$out/test-guest.elf" \
		"test=virtio-console transport=pci irq=$irq" "${con_pci[@]}"
done
check_virtio "linux64 virtio-rng pci msix, 5 requests on a 2-entry ring (q35)" q35 \
	"$out/test-guest.bzImage" "test=virtio-rng transport=pci irq=msix qsize=2 requests=5" \
	1 "$rng_ok" "${rng_pci[@]}"
check_console "pvh virtio-console pci msix, a vector per queue (q35)" q35 "$out/test-guest.elf" \
	"test=virtio-console transport=pci irq=msix" -device virtio-serial-pci,disable-legacy=on,vectors=3
check_console "pvh virtio-console pci intx (q35)" q35 "$out/test-guest.elf" \
	"test=virtio-console transport=pci irq=intx" "${con_pci[@]}"

# ---------------------------------------------------------------- virtio-blk
img="$tmpdir/disk.img"
# 64 MiB: "1\n2\n3\n..." (~1.2 MiB) then zeros (sparse)
seq 1 200000 >"$img"
truncate -s 64M "$img"

# blk_words_ok image sector count pattern: every 32-bit little-endian word
# of the count sectors at sector is pattern ^ (word index), as the guest wrote.
blk_words_ok() {
	local img="$1" sector="$2" count="$3" pattern=$((16#$4)) i=0 w want
	while read -r w; do
		printf -v want '%08x' $((pattern ^ i))
		if [[ "$w" != "$want" ]]; then
			echo "     word $i (byte $((i * 4)) of the write) is $w, want $want"
			return 1
		fi
		i=$((i + 1))
	done < <(od -An -v -tx4 -w4 -j $((sector * 512)) -N $((count * 512)) "$img")
	((i == count * 128))
}

# blk_read_line image sector count: the line test=virtio-blk op=read prints
# (FNV-1a over the bytes, the first 16 bytes in hex)
blk_read_line() {
	local h=$((0x811c9dc5)) b first
	for b in $(od -An -v -tu1 -j $(($2 * 512)) -N $(($3 * 512)) "$1"); do
		h=$((((h ^ b) * 0x01000193) & 0xffffffff))
	done
	first="$(od -An -v -tx1 -j $(($2 * 512)) -N 16 "$1" | tr -d ' \n')"
	printf 'virtio-blk: read %d sectors at %d fnv %08x first %s' "$3" "$2" "$h" "$first"
}

blk_mmio=("${mmio[@]}" -drive "file=$img,format=raw,if=none,id=d0")
blk_pci=(-drive "file=$img,format=raw,if=none,id=d0")
for v in "poll 2048" "intx 2100"; do
	read -r irq sector <<<"$v"
	check_virtio "pvh virtio-blk mmio $irq readwrite" microvm,acpi=off "$out/test-guest.elf" \
		"test=virtio-blk transport=mmio irq=$irq sector=$sector pattern=0x1234abcd" 1 \
		$'^virtio-blk: verify ok\r?$' "${blk_mmio[@]}" -device virtio-blk-device,drive=d0
	host_check "  host sees the words" blk_words_ok "$img" "$sector" 8 1234abcd
done
check_virtio "linux64 virtio-blk mmio intx write, flush=1, 3 sectors at 4097" microvm,acpi=off \
	"$out/test-guest.bzImage" "test=virtio-blk transport=mmio irq=intx op=write sector=4097 count=3 pattern=fedcba98 flush=1" 1 \
	$'^virtio-blk: flushed\r?$' "${blk_mmio[@]}" -device virtio-blk-device,drive=d0
host_check "  it said so" grep -q '^virtio-blk: wrote 3 sectors at 4097' <<<"$got"
host_check "  host sees the words" blk_words_ok "$img" 4097 3 fedcba98
want="$(blk_read_line "$img" 3 8)"
check_virtio "pvh virtio-blk mmio intx read of a known image" microvm,acpi=off "$out/test-guest.elf" \
	"test=virtio-blk transport=mmio irq=intx op=read sector=3" 1 "^$want"$'\r?$' \
	"${blk_mmio[@]}" -device virtio-blk-device,drive=d0
check_virtio "pvh virtio-blk mmio poll getid" microvm,acpi=off "$out/test-guest.elf" \
	"test=virtio-blk transport=mmio op=getid" 1 $'^virtio-blk: id kvm-test-guest-disk1\r?$' \
	"${blk_mmio[@]}" -device virtio-blk-device,drive=d0,serial=kvm-test-guest-disk1
check_virtio "pvh virtio-blk mmio intx read beyond the end: IOERR" microvm,acpi=off "$out/test-guest.elf" \
	"test=virtio-blk transport=mmio irq=intx op=read sector=131072 count=1" 3 \
	"^virtio-blk: FAILED read request at sector 131072: status 1 \(IOERR\)" \
	"${blk_mmio[@]}" -device virtio-blk-device,drive=d0
t0=$(date +%s%N)
check_virtio "pvh virtio-blk mmio intx seqread 64 MiB" microvm,acpi=off "$out/test-guest.elf" \
	"test=virtio-blk transport=mmio irq=intx op=seqread bytes=64M" 1 \
	"^virtio-blk: seqread 67108864 bytes in 1024 requests" "${blk_mmio[@]}" -device virtio-blk-device,drive=d0
echo "     (QEMU wall time $((($(date +%s%N) - t0) / 1000000)) ms, boot included)"
check_virtio "pvh virtio-blk pci msix readwrite 64 sectors (pc)" pc "$out/test-guest.elf" \
	"test=virtio-blk transport=pci irq=msix sector=8192 count=64 pattern=0" 1 "^virtio-blk: verify ok" \
	"${blk_pci[@]}" -device virtio-blk-pci,drive=d0,disable-legacy=on
host_check "  host sees the words" blk_words_ok "$img" 8192 64 0
want="$(blk_read_line "$img" 1000 2)"
check_virtio "pvh virtio-blk pci intx read (q35)" q35 "$out/test-guest.elf" \
	"test=virtio-blk transport=pci irq=intx op=read sector=1000 count=2" 1 "^$want"$'\r?$' \
	"${blk_pci[@]}" -device virtio-blk-pci,drive=d0,disable-legacy=on
check_virtio "linux64 virtio-blk pci poll seqread 4 MiB, 32 KiB requests, qsize=8 (q35)" q35 \
	"$out/test-guest.bzImage" "test=virtio-blk transport=pci op=seqread bytes=4M req=32K qsize=8" 1 \
	"^virtio-blk: seqread 4194304 bytes in 128 requests" "${blk_pci[@]}" -device virtio-blk-pci,drive=d0,disable-legacy=on

# ---------------------------------------------------------------- virtio-net
if [[ "${NET:-1}" != 0 ]] && command -v ip >/dev/null && ip netns add "kvmtg-$$" 2>/dev/null; then
	ns="kvmtg-$$"
	ip netns exec "$ns" ip link set lo up &&
		ip netns exec "$ns" ip tuntap add tap0 mode tap &&
		ip netns exec "$ns" ip addr add 10.0.2.1/24 dev tap0 &&
		ip netns exec "$ns" ip link set tap0 up ||
		echo "qemu-smoke: could not set up tap0 in $ns"
	tap=(-netdev tap,id=n0,ifname=tap0,script=no,downscript=no)
	net_ok=$'^virtio-net: ping reply from 10.0.2.1 seq 1\r?$'
	netns="$ns"
	for irq in poll intx; do
		check_virtio "pvh virtio-net mmio $irq" microvm,acpi=off "$out/test-guest.elf" \
			"test=virtio-net transport=mmio irq=$irq" 1 "$net_ok" \
			"${mmio[@]}" "${tap[@]}" -device virtio-net-device,netdev=n0
	done
	check_virtio "linux64 virtio-net mmio intx mrg=1, mac=, other addresses" microvm,acpi=off \
		"$out/test-guest.bzImage" "test=virtio-net transport=mmio irq=intx mrg=1 mac=02:00:00:00:00:2a ip=10.0.2.77" 1 \
		"$net_ok" "${mmio[@]}" "${tap[@]}" -device virtio-net-device,netdev=n0
	host_check "  with that mac" grep -q '^virtio-net: mac 02:00:00:00:00:2a status 1' <<<"$got"
	check_virtio "pvh virtio-net mmio intx, nobody at the peer: timeout" microvm,acpi=off "$out/test-guest.elf" \
		"test=virtio-net transport=mmio irq=intx peer=10.0.2.99 timeout=1000" 3 \
		"^virtio-net: FAILED timeout waiting for the ARP reply" \
		"${mmio[@]}" "${tap[@]}" -device virtio-net-device,netdev=n0
	check_virtio "pvh virtio-net pci msix mrg=1 (pc)" pc "$out/test-guest.elf" \
		"test=virtio-net transport=pci irq=msix mrg=1" 1 "$net_ok" \
		"${tap[@]}" -device virtio-net-pci,netdev=n0,disable-legacy=on,romfile=
	check_virtio "pvh virtio-net pci intx (q35)" q35 "$out/test-guest.elf" \
		"test=virtio-net transport=pci irq=intx" 1 "$net_ok" \
		"${tap[@]}" -device virtio-net-pci,netdev=n0,disable-legacy=on,romfile=
	netns=""
else
	echo "skip virtio-net (needs root, iproute2 and network namespaces; NET=${NET:-1})"
fi

echo "qemu-smoke: $pass passed, $fail failed"
((fail == 0))
