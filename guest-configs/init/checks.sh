# kvm's guest-side checks (busybox sh), sourced by the check initramfs' /init (init.sh) and by
# the root image's rcS when the kernel command line has kvm.checks=. Each check prints one line,
#   kvm-check: NAME ok | kvm-check: NAME FAIL <reason>
# then `kvm-check: done N ok M failed`; details go on `kvm-init: ...` lines the host can read.
# After the checks kvm_checks_then powers off, reboots or (kvm.then=shell) returns.
#
# Command-line options (/proc/cmdline):
#   kvm.checks=disk,bulk,net,rng,cpus,console   checks to run (default: disk, net and rng for
#                             each virtio device that exists; "none": no checks)
#   kvm.ip=ADDR/PREFIX        eth0's address when neither the kernel's ip= nor rcS configured it
#   kvm.peer=ADDR             the address to ping (default: the default route's gateway)
#   kvm.cpus=N                the number of CPUs the cpus check expects
#   kvm.then=poweroff|reboot|shell   after the checks (default poweroff; a kernel without ACPI
#                             then halts every CPU, which kvm reports as status 0)
# shellcheck shell=sh disable=SC2317 # the check_* functions are called as "check_$c"

log() { echo "kvm-init: $*"; }
cmdline=$(cat /proc/cmdline)
opt() { # opt NAME: the value of NAME= on the command line (the last one wins)
  v=
  for w in $cmdline; do case "$w" in "$1="*) v=${w#"$1="} ;; esac; done
  printf '%s' "$v"
}
has_opt() { for w in $cmdline; do case "$w" in "$1="*) return 0 ;; esac; done; return 1; }

# virtio device IDs: 1 net, 2 block, 3 console, 4 entropy. A device the driver did not bind
# still counts: its check then fails rather than being skipped.
has_virtio() {
  for d in /sys/bus/virtio/devices/*; do
    [ "$(cat "$d/device" 2>/dev/null)" = "$1" ] && return 0
  done
  return 1
}
wait_for() { # wait_for PATH SECONDS
  i=0
  while [ ! -e "$1" ] && [ "$i" -lt "$(($2 * 10))" ]; do usleep 100000; i=$((i + 1)); done
  [ -e "$1" ]
}

# --- checks: each sets $reason and returns non-zero on failure --------------------------------

# root_is_vda: / is /dev/vda's file system (/proc/mounts names it /dev/root, so compare devices).
root_is_vda() {
  [ -r /sys/block/vda/dev ] || return 1
  IFS=: read -r maj min < /sys/block/vda/dev
  [ "$(stat -c %d /)" = "$((maj * 256 + min))" ]
}

# disk_dir: where /dev/vda's file system is: / when it is the root, else mounted on /mnt.
disk_dir() {
  if root_is_vda; then
    mount -o remount,rw / 2>/dev/null
    dir=/; disk_mounted=
    return 0
  fi
  wait_for /dev/vda 10 || { reason="no /dev/vda"; return 1; }
  err=$(mount -t ext4 -o rw /dev/vda /mnt 2>&1) || { reason="mount /dev/vda: $err"; return 1; }
  dir=/mnt; disk_mounted=1
}
disk_done() { [ -z "$disk_mounted" ] || umount /mnt || { reason="umount /mnt failed"; return 1; }; }

check_disk() {
  disk_dir || return 1
  if [ -f "$dir/kvm-host-marker" ]; then
    log "disk marker (/dev/vda on $dir): $(cat "$dir/kvm-host-marker")"
  else
    disk_done; reason="no /kvm-host-marker on /dev/vda"; return 1
  fi
  want="written by the guest $(cat /proc/sys/kernel/random/boot_id)"
  echo "$want" > "$dir/kvm-guest-wrote" || { disk_done; reason="cannot write /kvm-guest-wrote"; return 1; }
  sync
  got=$(cat "$dir/kvm-guest-wrote")
  disk_done || return 1
  [ "$got" = "$want" ] || { reason="read back '$got'"; return 1; }
  log "disk wrote: $want"
}

# 8 MiB of random data through the page cache and an fsync; the host compares the sha256.
check_bulk() {
  disk_dir || return 1
  err=$(dd if=/dev/urandom of="$dir/kvm-bulk" bs=1M count=8 conv=fsync 2>&1) || { disk_done; reason="dd: $err"; return 1; }
  sum=$(sha256sum "$dir/kvm-bulk" | cut -d' ' -f1)
  size=$(wc -c < "$dir/kvm-bulk")
  disk_done || return 1
  [ "$size" -eq 8388608 ] || { reason="/kvm-bulk has $size bytes"; return 1; }
  log "bulk sha256: $sum"
}

net_if() {
  for d in /sys/bus/virtio/devices/*; do
    [ "$(cat "$d/device" 2>/dev/null)" = 0x0001 ] || continue
    for n in "$d"/net/*; do [ -e "$n" ] && { basename "$n"; return 0; }; done
  done
  [ -e /sys/class/net/eth0 ] && echo eth0
}
check_net() {
  i=0; ifc=
  while [ -z "$ifc" ] && [ "$i" -lt 50 ]; do ifc=$(net_if); [ -n "$ifc" ] || usleep 100000; i=$((i + 1)); done
  [ -n "$ifc" ] || { reason="no virtio-net interface"; return 1; }
  ip link set lo up
  ip link set "$ifc" up
  addr=$(ip -4 -o addr show dev "$ifc" | awk '{print $4; exit}')
  if [ -n "$addr" ]; then
    how="already configured"
  elif has_opt kvm.ip; then
    addr=$(opt kvm.ip)
    ip addr add "$addr" dev "$ifc" || { reason="ip addr add $addr failed"; return 1; }
    how="kvm.ip"
  else
    udhcpc -i "$ifc" -n -q -t 5 -T 2 -s /etc/udhcpc/default.script >/dev/null 2>&1 || { reason="no address: udhcpc got no lease"; return 1; }
    addr=$(ip -4 -o addr show dev "$ifc" | awk '{print $4; exit}')
    how="udhcpc"
  fi
  peer=$(opt kvm.peer)
  [ -n "$peer" ] || peer=$(ip route | awk '$1 == "default" {print $3; exit}')
  [ -n "$peer" ] || peer=$(awk '$1 == "bootserver" && $2 != "0.0.0.0" {print $2; exit}' /proc/net/pnp 2>/dev/null)
  [ -n "$peer" ] || { reason="no peer: give kvm.peer="; return 1; }
  log "net $ifc $addr ($how), pinging $peer"
  out=$(ping -c 3 -W 2 "$peer" 2>&1) || { reason="ping $peer: $(echo "$out" | tail -1)"; return 1; }
  log "net $(echo "$out" | grep 'packets transmitted')"
}

check_rng() {
  f=/sys/class/misc/hw_random/rng_current
  i=0
  while ! grep -q '^virtio_rng' "$f" 2>/dev/null && [ "$i" -lt 50 ]; do usleep 100000; i=$((i + 1)); done
  cur=$(cat "$f" 2>/dev/null) || { reason="no $f"; return 1; }
  case "$cur" in virtio_rng*) ;; *) reason="rng_current is '$cur'"; return 1 ;; esac
  [ -c /dev/hwrng ] || { reason="no /dev/hwrng"; return 1; }
  bytes=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
  [ "${#bytes}" -eq 128 ] || { reason="read $((${#bytes} / 2)) bytes from /dev/hwrng, not 64"; return 1; }
  case "$bytes" in *[1-9a-f]*) ;; *) reason="64 zero bytes from /dev/hwrng"; return 1 ;; esac
  log "rng $cur: $(echo "$bytes" | cut -c1-32)..."
}

check_cpus() {
  n=$(grep -c '^processor' /proc/cpuinfo)
  log "cpus: $n in /proc/cpuinfo"
  want=$(opt kvm.cpus)
  [ -z "$want" ] || [ "$n" -eq "$want" ] || { reason="$n CPUs, kvm.cpus=$want"; return 1; }
}

# The console userspace writes to is virtio-console's hvc0, and a line written there arrives.
check_console() {
  active=$(cat /sys/class/tty/console/active 2>/dev/null)
  case " $active " in *" hvc0 "*) ;; *) reason="the console is '$active', not hvc0"; return 1 ;; esac
  [ -c /dev/hvc0 ] || { reason="no /dev/hvc0"; return 1; }
  echo "kvm-init: hvc0 carries this line $(cat /proc/sys/kernel/random/boot_id)" > /dev/hvc0 || { reason="cannot write /dev/hvc0"; return 1; }
}

# default_checks: disk, net and rng for each such virtio device that exists.
default_checks() {
  # (sh has no local variables: has_virtio's loop variable must not be this one)
  wanted=
  has_virtio 0x0002 && wanted="$wanted disk"
  has_virtio 0x0001 && wanted="$wanted net"
  has_virtio 0x0004 && wanted="$wanted rng"
  echo "$wanted"
}

# kvm_checks: runs kvm.checks= (or the default) and prints the lines above.
kvm_checks() {
  if has_opt kvm.checks; then
    checks=$(opt kvm.checks | tr , ' ')
    [ "$checks" = none ] && checks=
  else
    checks=$(default_checks)
  fi
  # shellcheck disable=SC2086 # split on spaces to normalise the list
  set -- $checks; checks="$*"
  log "checks: ${checks:-none}"
  ok=0; failed=0
  for c in $checks; do
    reason=
    case "$c" in
      disk|bulk|net|rng|cpus|console) if "check_$c"; then echo "kvm-check: $c ok"; ok=$((ok + 1)); continue; fi ;;
      *) reason="unknown check" ;;
    esac
    echo "kvm-check: $c FAIL ${reason:-failed}"
    failed=$((failed + 1))
  done
  echo "kvm-check: done $ok ok $failed failed"
}

# kvm_checks_then: what kvm.then= asks for after the checks; returns only for kvm.then=shell.
kvm_checks_then() {
  then=$(opt kvm.then)
  if [ "${then:-poweroff}" = poweroff ] && [ ! -d /sys/firmware/acpi ]; then
    # Without ACPI (kvm's minimal kernel) poweroff -f halts every CPU with interrupts off:
    # kvm ends such a run with status 0, as for a power-off. QEMU waits for ever: give it
    # kvm.then=reboot (with -no-reboot).
    log "no ACPI: powering off by halting every CPU"
  fi
  case "$then" in
    shell) return 0 ;;
    reboot) sync; reboot -f ;;
    *) sync; poweroff -f ;;
  esac
  sleep 5
}
