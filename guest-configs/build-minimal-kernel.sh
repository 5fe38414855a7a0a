#!/usr/bin/env bash
# Builds kvm's minimal guest kernel from Debian's linux-source-6.1 and
# guest-configs/minimal.config. Idempotent: cached outside the repository in
# $KVM_GUEST_CACHE (default ~/.cache/kvm-guests) and rebuilt only when the
# fragment, our patches (patches/) or the source package changes. Prints the paths of vmlinux and bzImage.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${KVM_GUEST_CACHE:-$HOME/.cache/kvm-guests}"
out="$cache/minimal"
mkdir -p "$out"
say() { printf '\033[1mguest-configs:\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need=(linux-source-6.1 bc bison flex libelf-dev make gcc cpio gzip xz-utils patch)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

tarball=$(ls /usr/src/linux-source-6.1.tar.* | head -1)
# Our own kernel patches, applied in name order (see patches/*.patch for what each is for).
patches=("$here"/patches/*.patch)
# Contents only, not paths: a clone elsewhere shares the cache.
stamp="$(sha256sum "$here/minimal.config" "$tarball" "${patches[@]}" | cut -d" " -f1 | sha256sum | cut -c1-16)"
patch_set="$(cat "${patches[@]}" | sha256sum | cut -c1-16)"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
  say "minimal kernel is up to date"
  printf '%s\n%s\n' "$out/vmlinux" "$out/bzImage"
  exit 0
fi

src="$cache/linux-source-6.1"
# The tree is reused between builds (make only rebuilds what changed) while it carries exactly
# this patch set; otherwise it is extracted afresh and patched.
if [ ! -f "$src/Makefile" ] || [ "$(cat "$src/.kvm-patch-set" 2>/dev/null)" != "$patch_set" ]; then
  say "extracting $tarball"
  rm -rf "$src"
  mkdir -p "$cache"
  tar -xf "$tarball" -C "$cache"
  for p in "${patches[@]}"; do
    say "applying $(basename "$p")"
    patch -s -p1 -d "$src" < "$p" || { echo "guest-configs: $(basename "$p") does not apply to $tarball" >&2; exit 1; }
  done
  echo "$patch_set" > "$src/.kvm-patch-set"
fi
cd "$src"
say "configuring (tinyconfig + minimal.config)"
make -s tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m .config "$here/minimal.config" >/dev/null
make -s olddefconfig >/dev/null
# Every line of the fragment must have taken effect, or the kernel is not what we documented.
while IFS= read -r line; do
  case "$line" in CONFIG_*=n) opt="${line%%=*}"; grep -q "^$opt=" .config && { echo "guest-configs: $opt stayed on" >&2; exit 1; } ;;
    CONFIG_*=*) grep -qx "$line" .config || { echo "guest-configs: $line did not take effect" >&2; exit 1; } ;; esac
done < <(grep -E '^CONFIG_' "$here/minimal.config")
say "building vmlinux and bzImage with $(nproc) jobs (about 10 minutes on 2 cores)"
make -j"$(nproc)" vmlinux bzImage 2>&1 | grep -E '^(  LD|  OBJCOPY|  BUILD|.*[Ee]rror)' >&2 || true
test -f vmlinux && test -f arch/x86/boot/bzImage
cp vmlinux "$out/vmlinux"
cp arch/x86/boot/bzImage "$out/bzImage"
cp .config "$out/config"
echo "$stamp" > "$out/stamp"
say "done"
printf '%s\n%s\n' "$out/vmlinux" "$out/bzImage"
