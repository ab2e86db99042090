#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian 12 machine: Mesa's Vulkan driver (lavapipe,
# a CPU WebGPU adapter; Mesa 25 from bookworm-backports when it can be had) and Deno 2.9.6 from
# the npm registry; with --test also Debian's Chromium, which the playground's browser test drives.
# Safe to run more than once.
set -euo pipefail
DENO_VERSION=2.9.6
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# The mirror this machine already uses for bookworm (deb822 .sources files, then sources.list),
# so that a machine behind a local mirror or proxy gets backports from there too.
bookworm_mirror() {
  local uri="" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk 'BEGIN { RS = ""; FS = "\n" } {
      suites = ""; uri = ""
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^Suites:/) suites = $i
        if ($i ~ /^URIs:/ && uri == "") uri = $i
      }
      if (suites ~ /[ \t]bookworm([ \t]|$)/ && uri != "") {
        sub(/^URIs:[ \t]*/, "", uri); split(uri, a, /[ \t]+/); print a[1]; exit
      }
    }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" {
      i = 2
      if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if ($(i + 1) == "bookworm") { print $i; exit }
    }' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

if ! dpkg -s mesa-vulkan-drivers >/dev/null 2>&1; then
  if [ -r /etc/debian_version ] && grep -q '^12' /etc/debian_version; then
    $SUDO tee /etc/apt/sources.list.d/backports.sources >/dev/null <<SRC
Types: deb
URIs: $(bookworm_mirror)
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi

if ! command -v deno >/dev/null 2>&1 || ! deno --version | grep -q "deno $DENO_VERSION"; then
  npx -y "deno@$DENO_VERSION" --version >/dev/null
fi

if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
