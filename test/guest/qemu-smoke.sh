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
	timeout 30 qemu-system-x86_64 -M "$m,accel=$accel" -cpu "$cpu" -m 128 \
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
check_virtio() {
	local name="$1" m="$2" k="$3" c="$4" want="$5" re="$6" got status
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

echo_in="$(mktemp)"
uart_out="$(mktemp)"
trap 'rm -f "$echo_in" "$uart_out"' EXIT
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

echo "qemu-smoke: $pass passed, $fail failed"
((fail == 0))
