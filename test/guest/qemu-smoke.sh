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

qemu() { # machine kernel cmdline [stdin]
	timeout 30 qemu-system-x86_64 -M "$1,accel=$accel" -cpu "$cpu" -m 128 \
		-nodefaults -no-user-config -nographic -serial stdio -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x01 \
		-kernel "$2" -append "$3" <"${4:-/dev/null}" 2>&1
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

echo_in="$(mktemp)"
trap 'rm -f "$echo_in"' EXIT
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

echo "qemu-smoke: $pass passed, $fail failed"
((fail == 0))
