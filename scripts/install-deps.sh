#!/usr/bin/env bash
# Installs the system packages the tests and the demo need on Debian 12
# (conmon, the OCI runtimes runc, runsc and crun, a static busybox for test
# bundles, dbus, CA certificates, and for the rootless tests newuidmap and
# newgidmap, useradd and setpriv; protoc, which the cri-server crate's
# generated CRI bindings need at build time). Only missing packages are installed, so a
# machine that has them all does no network access at all.
#
#   bash scripts/install-deps.sh
#
# Runs apt-get as root, or through sudo when it is available.
set -euo pipefail

packages=(conmon runc runsc busybox-static crun dbus ca-certificates uidmap passwd util-linux protobuf-compiler)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for package in "${packages[@]}"; do
    if ! installed "$package"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all present: ${packages[*]}"
    exit 0
fi

if ((EUID == 0)); then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-deps: missing ${missing[*]}; run this script as root" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
