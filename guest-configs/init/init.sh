#!/bin/sh
# /init of kvm's check initramfs (busybox sh). Loads the modules in /lib/modules/modules.order,
# then runs the checks the kernel command line asks for (/lib/kvm/checks.sh, from
# guest-configs/init/checks.sh, which lists the kvm.* options) and prints one line per check:
#   kvm-check: NAME ok | kvm-check: NAME FAIL <reason>
#   kvm-check: done N ok M failed
# then powers off (or reboots, or opens a shell).
#
# Besides the kvm.* options of checks.sh:
#   MODULE.PARAM=VALUE        passed to insmod MODULE, as modprobe would (e.g. virtio_mmio.device=...)
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mkdir -p /dev /proc /sys /mnt /tmp
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# shellcheck source=checks.sh
. /lib/kvm/checks.sh

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

kvm_checks
kvm_checks_then
log "kvm.then=shell: exit the shell to power off"
setsid cttyhack sh -l
sync; poweroff -f
sleep 5
exit 0
