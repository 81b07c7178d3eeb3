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

if [ "$(vhost-device-vsock --version 2>/dev/null)" != "vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION" ]; then
  echo "setup: installing vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION"
  "$CARGO" install --locked vhost-device-vsock --version "$VHOST_DEVICE_VSOCK_VERSION"
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
if ! "$CARGO" --version >/dev/null 2>&1; then
  echo "setup: error: cargo is missing" >&2
  failed=1
fi
[ "$failed" = 0 ] || exit 1
echo "setup: done"
