#!/usr/bin/env bash
# Installs what pyro needs and then checks the tools themselves: a
# package's status can lie (the stock image ships a newer qemu-utils that
# installing qemu-system-x86 removes, taking qemu-img with it), so every
# round looks for the programs, installs the packages of the missing ones,
# and looks again.
set -euo pipefail

VHOST_DEVICE_VSOCK_VERSION="${VHOST_DEVICE_VSOCK_VERSION:-0.3.0}"
CARGO="${CARGO:-cargo}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export PATH="$HOME/.cargo/bin:/usr/sbin:/sbin:$PATH"

# tool  package
TOOLS="
qemu-system-x86_64 qemu-system-x86
qemu-img qemu-utils
mmdebstrap mmdebstrap
mke2fs e2fsprogs
cpio cpio
update-ca-certificates ca-certificates
slirp4netns slirp4netns
ip iproute2
"

missing_packages() {
  local out=""
  while read -r tool pkg; do
    [ -n "$tool" ] || continue
    command -v "$tool" >/dev/null 2>&1 || out="$out $pkg"
  done <<<"$TOOLS"
  echo "$out"
}

updated=no
for round in 1 2 3; do
  missing="$(missing_packages)"
  [ -n "$missing" ] || break
  echo "setup: installing$missing (round $round)"
  if [ "$updated" = no ]; then
    $SUDO apt-get update -qq
    updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
done

# The network tests copy a static busybox into guests (ip, httpd); a
# dynamic one (package busybox) would not run there.
static_busybox() {
  [ -x /bin/busybox ] &&
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' &&
    /bin/busybox true
}
if ! static_busybox; then
  echo "setup: installing busybox-static"
  if [ "$updated" = no ]; then
    $SUDO apt-get update -qq
    updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends busybox-static
fi

if [ "$(vhost-device-vsock --version 2>/dev/null)" != "vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION" ]; then
  echo "setup: installing vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION"
  "$CARGO" install --locked vhost-device-vsock --version "$VHOST_DEVICE_VSOCK_VERSION"
fi

# uv manages the Python dev environment (MCP client tests); from PyPI.
if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv"
  # A Debian system Python refuses plain installs (PEP 668); then the
  # user's ~/.local/bin, which the Makefile puts on PATH.
  python3 -m pip install --quiet uv 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages uv
  export PATH="$PATH:$HOME/.local/bin"
  # pyenv finds new programs only after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

# The final word: every tool, by name, each missing one on its own line.
failed=0
while read -r tool pkg; do
  [ -n "$tool" ] || continue
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "setup: error: $tool is still missing after installing $pkg" >&2
    failed=1
  fi
done <<<"$TOOLS
vhost-device-vsock vhost-device-vsock"
# The Makefile falls back to `python3 -m uv` when pip's script dir is not
# on PATH.
if ! uv --version >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
  echo "setup: error: uv is missing (python3 -m pip install uv)" >&2
  failed=1
fi
if ! static_busybox; then
  echo "setup: error: /bin/busybox is missing or not static (package busybox-static)" >&2
  failed=1
fi
if ! "$CARGO" --version >/dev/null 2>&1; then
  echo "setup: error: cargo is missing" >&2
  failed=1
fi
[ "$failed" = 0 ] || exit 1
echo "setup: done"
