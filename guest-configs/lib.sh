# Shared helpers for the guest-configs build scripts (sourced, not run).
# Progress goes to stderr through `say`; only output paths go to stdout.
# shellcheck shell=bash
cache="${KVM_GUEST_CACHE:-$HOME/.cache/kvm-guests}"
say() { printf '\033[1mguest-configs:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_update_once() {
  [ "$apt_updated" = 1 ] && return 0
  say "apt-get update"
  as_root apt-get update -qq
  apt_updated=1
}

# need_debs PKG...: installs the Debian packages that are not installed yet.
need_debs() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update_once
  say "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# candidate_version PKG: the version apt would fetch (apt-get update when the lists don't know it).
candidate_version() {
  local v
  v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then
    apt_update_once
    v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
  fi
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then die "apt knows no package $1"; fi
  printf '%s\n' "$v"
}

# fetch_deb PKG VERSION: downloads PKG=VERSION into $cache/debs (once) and prints the .deb's path.
# The package is never installed into the host.
fetch_deb() {
  local pkg="$1" ver="$2" dir="$cache/debs" f opts=()
  mkdir -p "$dir"
  # apt's sandbox user (_apt) cannot write into a root-owned cache: download as root itself.
  [ "$(id -u)" -eq 0 ] && opts=(-o APT::Sandbox::User=root)
  f=$(deb_in "$dir" "$pkg" "$ver")
  if [ -z "$f" ]; then
    say "downloading $pkg $ver"
    (cd "$dir" && apt-get download -qq "${opts[@]}" "$pkg=$ver" >/dev/null 2>&1) ||
      { apt_update_once; (cd "$dir" && apt-get download -qq "${opts[@]}" "$pkg=$ver" >/dev/null); }
    f=$(deb_in "$dir" "$pkg" "$ver")
    [ -n "$f" ] || die "apt-get download $pkg=$ver left no .deb in $dir"
  fi
  printf '%s\n' "$f"
}
deb_in() {
  local d
  for d in "$1/$2"_*.deb; do
    [ -f "$d" ] && [ "$(dpkg-deb -f "$d" Version)" = "$3" ] && { printf '%s\n' "$d"; return 0; }
  done
  return 0
}

# stamp_of FILE...: a short hash of the given files and of any extra words on stdin.
stamp_of() { { sha256sum "$@" | cut -d' ' -f1; cat; } | sha256sum | cut -c1-16; }

# up_to_date DIR STAMP FILE...: true when DIR/stamp holds STAMP and every FILE exists.
up_to_date() {
  local dir="$1" stamp="$2" f; shift 2
  [ "${FORCE:-0}" = 1 ] && return 1
  [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] || return 1
  for f in "$@"; do [ -e "$f" ] || return 1; done
}

# busybox_static: extracts Debian's busybox-static (without installing it) and prints the binary's path.
busybox_static() {
  local ver deb dir
  ver=$(candidate_version busybox-static)
  dir="$cache/busybox-static/$ver"
  if [ ! -x "$dir/bin/busybox" ]; then
    deb=$(fetch_deb busybox-static "$ver")
    rm -rf "$dir"; mkdir -p "$dir"
    dpkg-deb -x "$deb" "$dir"
  fi
  printf '%s\n' "$dir/bin/busybox"
}

# busybox_tree BUSYBOX DIR: installs busybox and a symlink per applet into DIR (bin, sbin, usr/bin, usr/sbin).
busybox_tree() {
  local bb="$1" root="$2" a
  mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
  cp "$bb" "$root/bin/busybox"
  chmod 755 "$root/bin/busybox"
  # --list-full prints each applet with its install directory, e.g. sbin/insmod.
  "$bb" --list-full | while read -r a; do
    [ "$a" = bin/busybox ] && continue
    [ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
  done
}
