#!/usr/bin/env bash
# Install the Debian packages corolla's demo and tests use, when apt is there and we may use it.
# Without them corolla still works: Fashion-MNIST is then downloaded from its official URLs.
# Extra package names as arguments are installed too (benchmarks: tuxpaint-stamps-default).
set -u
packages=(dataset-fashion-mnist chromium chromium-driver wrk "$@")
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no apt-get; not installing ${missing[*]} (Fashion-MNIST will be downloaded instead)"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else
  echo "note: cannot install ${missing[*]} without root; run: sudo apt-get install ${missing[*]}"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "Installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { "${sudo[@]}" apt-get update -q >/dev/null 2>&1 && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
  || echo "note: could not install ${missing[*]}; Fashion-MNIST will be downloaded instead"
exit 0
