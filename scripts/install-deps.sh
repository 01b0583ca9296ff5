#!/usr/bin/env bash
# Installs what registryctl needs to build (and, with --test, to run its tests)
# from Debian 12 packages. Idempotent.
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config
  libcli11-dev libcpp-httplib-dev nlohmann-json3-dev libssl-dev
  libsqlitecpp-dev libsqlite3-dev libzstd-dev doctest-dev)
if [[ "${1:-}" == "--test" ]]; then
  # skopeo is the real client the end-to-end tests push and pull with, podman
  # logs in; nginx terminates TLS in front of the registry and openssl makes
  # its certificate; umoci and zstd check that exported archives are standard
  # OCI layouts.
  packages+=(skopeo podman nginx-light openssl umoci zstd)
  # Node runs Azurite, the Azure Blob emulator the Azure storage tests use
  # (Debian 12's nodejs 18 is enough for azurite 3.35); only installed when no
  # node is on the PATH already.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
  fi
  # The S3 driver tests run against a real Ceph radosgw (mon + OSD + radosgw on
  # loopback, tests/support/radosgw.sh): it verifies SigV4 signatures and
  # presigned URLs and implements every multipart call, which no lighter local
  # S3 server in Debian does. curl creates the test bucket.
  packages+=(ceph-mon ceph-osd radosgw ceph-common curl)
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  # Packages with services (nginx) must not start them: the tests run their
  # own instances on loopback ports.
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ "${1:-}" == "--test" ]]; then
  # Azurite, pinned by tests/support/azurite/package-lock.json. npm ci wipes and
  # reinstalls node_modules, so it only runs when the lock file changed.
  azurite_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/support/azurite"
  stamp="$azurite_dir/node_modules/.registryctl-lock-sha256"
  want=$(sha256sum "$azurite_dir/package-lock.json" | cut -d' ' -f1)
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "installing azurite (npm ci in $azurite_dir)"
    (cd "$azurite_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    echo "$want" >"$stamp"
  fi
fi
