#!/bin/sh
# /init of kvm's check initramfs (busybox sh). Loads the modules in /lib/modules/modules.order,
# runs the checks the kernel command line asks for and prints one line per check:
#   kvm-check: NAME ok | kvm-check: NAME FAIL <reason>
#   kvm-check: done N ok M failed
# then powers off (or reboots, or opens a shell).
#
# Command-line options (/proc/cmdline):
#   kvm.checks=disk,net,rng   checks to run (default: each one whose virtio device exists; "none": no checks)
#   kvm.ip=ADDR/PREFIX        eth0's address when the kernel's ip= did not configure it (else udhcpc)
#   kvm.peer=ADDR             the address to ping (default: the default route's gateway)
#   kvm.then=poweroff|reboot|shell   what to do after the checks (default poweroff; a kernel
#                             without ACPI then halts every CPU, which kvm reports as status 0)
#   MODULE.PARAM=VALUE        passed to insmod MODULE, as modprobe would (e.g. virtio_mmio.device=...)
# shellcheck disable=SC2317 # the check_* functions are called as "check_$c"
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mkdir -p /dev /proc /sys /mnt /tmp
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

log() { echo "kvm-init: $*"; }
cmdline=$(cat /proc/cmdline)
opt() { # opt NAME: the value of NAME= on the command line (the last one wins)
  v=
  for w in $cmdline; do case "$w" in "$1="*) v=${w#"$1="} ;; esac; done
  printf '%s' "$v"
}
has_opt() { for w in $cmdline; do case "$w" in "$1="*) return 0 ;; esac; done; return 1; }

# --- modules -------------------------------------------------------------------------------
if [ -f /lib/modules/modules.order ]; then
  while read -r ko; do
    [ -n "$ko" ] || continue
    name=${ko%.ko}; pname=$(echo "$name" | tr - _)
    params=
    for w in $cmdline; do
      case "$w" in "$pname".*=*|"$name".*=*) params="$params ${w#*.}" ;; esac
    done
    # shellcheck disable=SC2086 # params are separate words
    if err=$(insmod "/lib/modules/$ko" $params 2>&1); then log "insmod $name$params ok"
    else log "insmod $name FAIL ${err:-exit status $?}"; fi
  done < /lib/modules/modules.order
fi

# --- which devices exist -------------------------------------------------------------------
# virtio device IDs: 1 net, 2 block, 4 entropy. A device the driver did not bind still counts:
# its check then fails rather than being skipped.
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

if has_opt kvm.checks; then
  checks=$(opt kvm.checks | tr , ' ')
  [ "$checks" = none ] && checks=
else
  checks=
  has_virtio 0x0002 && checks="$checks disk"
  has_virtio 0x0001 && checks="$checks net"
  has_virtio 0x0004 && checks="$checks rng"
fi
# shellcheck disable=SC2086 # split on spaces to normalise the list
set -- $checks; checks="$*"
log "checks: ${checks:-none}"

# --- checks: each sets $reason and returns non-zero on failure --------------------------------
check_disk() {
  wait_for /dev/vda 10 || { reason="no /dev/vda"; return 1; }
  err=$(mount -t ext4 -o rw /dev/vda /mnt 2>&1) || { reason="mount /dev/vda: $err"; return 1; }
  if [ -f /mnt/kvm-host-marker ]; then
    log "disk marker: $(cat /mnt/kvm-host-marker)"
  else
    umount /mnt; reason="no /kvm-host-marker on /dev/vda"; return 1
  fi
  want="written by the guest $(cat /proc/sys/kernel/random/boot_id)"
  echo "$want" > /mnt/kvm-guest-wrote || { umount /mnt; reason="cannot write /kvm-guest-wrote"; return 1; }
  sync
  got=$(cat /mnt/kvm-guest-wrote)
  umount /mnt || { reason="umount /mnt failed"; return 1; }
  [ "$got" = "$want" ] || { reason="read back '$got'"; return 1; }
  log "disk wrote: $want"
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
    how="configured by the kernel"
  elif has_opt kvm.ip; then
    addr=$(opt kvm.ip)
    ip addr add "$addr" dev "$ifc" || { reason="ip addr add $addr failed"; return 1; }
    how="kvm.ip"
  else
    udhcpc -i "$ifc" -n -q -t 5 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1 || { reason="no address: udhcpc got no lease"; return 1; }
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

ok=0; failed=0
for c in $checks; do
  reason=
  case "$c" in
    disk|net|rng) if "check_$c"; then echo "kvm-check: $c ok"; ok=$((ok + 1)); continue; fi ;;
    *) reason="unknown check" ;;
  esac
  echo "kvm-check: $c FAIL ${reason:-failed}"
  failed=$((failed + 1))
done
echo "kvm-check: done $ok ok $failed failed"

# --- then ----------------------------------------------------------------------------------
then=$(opt kvm.then)
if [ "${then:-poweroff}" = poweroff ] && [ ! -d /sys/firmware/acpi ]; then
  # Without ACPI (kvm's minimal kernel) poweroff -f halts every CPU with interrupts off:
  # kvm ends such a run with status 0, as for a power-off. QEMU waits for ever: give it
  # kvm.then=reboot (with -no-reboot).
  log "no ACPI: powering off by halting every CPU"
fi
case "$then" in
  shell)
    log "kvm.then=shell: exit the shell to power off"
    setsid cttyhack sh -l
    sync; poweroff -f ;;
  reboot) sync; reboot -f ;;
  *) sync; poweroff -f ;;
esac
sleep 5
exit 0
