#!/usr/bin/env bash
# Installs the Debian packages canon's build and tests need, only those that are missing.
# Extra packages come as arguments. Used by scripts/test.sh and scripts/demo.sh; safe to run again.
set -euo pipefail

# busybox-static: the shell of the fixture image whose backupbot hooks run in its containers.
packages=(git pkg-config libssl-dev ca-certificates busybox-static "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "+ apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "+ cargo install cargo-nextest --locked" >&2
  cargo install cargo-nextest --locked
fi
