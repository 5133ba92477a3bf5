#!/bin/sh
# A Debian unstable ("sid") root file system with CPython 3.14 and 3.15 (and their debug builds),
# for tests/pyver. Built once with mmdebstrap and cached: a stamp of the package lists (Debian's and
# tests/pyver/requirements.txt) names the build, so later runs take a second. Needs root (mmdebstrap, chroot) and the
# network to Debian and PyPI; without them it prints `sid-root: unavailable: <reason>` and exits 0,
# and the pyver tests skip with that reason.
#
#   sh tests/pyver/sid_root.sh [ROOT]     (default $FERROTEL_SID_ROOT or /var/cache/ferrotel/sid-root)
#
# Inside the root: /opt/venv-3.14 and /opt/venv-3.15, venvs of the interpreters with the test apps'
# packages (tests/pyver/requirements.txt) installed by the chroot's own pip (compiled packages, such
# as pydantic-core for FastAPI, need that interpreter's wheels); packages without a wheel for a
# version are listed in /opt/venv-X/missing.txt and their tests skip saying so.
set -eu
ROOT=${1:-${FERROTEL_SID_ROOT:-/var/cache/ferrotel/sid-root}}
HERE=$(cd "$(dirname "$0")" && pwd)
VERSIONS="3.14 3.15"
PACKAGES="ca-certificates"
for v in $VERSIONS; do PACKAGES="$PACKAGES,python$v,python$v-venv,python$v-dev,python$v-dbg"; done
# Bump LAYOUT when this script changes what it puts in the root.
LAYOUT=1
STAMP=$( { echo "$LAYOUT $PACKAGES"; cat "$HERE/requirements.txt"; } | sha256sum | cut -c1-16)

unavailable() { echo "sid-root: unavailable: $*"; exit 0; }

if [ -f "$ROOT/.ferrotel-stamp" ] && [ "$(cat "$ROOT/.ferrotel-stamp")" = "$STAMP" ]; then
  echo "sid-root: $ROOT is up to date ($STAMP)"; exit 0
fi
[ "$(id -u)" = 0 ] || unavailable "needs root (mmdebstrap and chroot)"
if ! command -v mmdebstrap >/dev/null 2>&1; then
  apt-get install -y -qq mmdebstrap >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq mmdebstrap >/dev/null 2>&1; } \
    || unavailable "mmdebstrap is not installed and could not be installed from Debian's packages"
fi

echo "sid-root: building $ROOT with mmdebstrap (Debian unstable: $PACKAGES; a few minutes, once)"
mkdir -p "$(dirname "$ROOT")"
TMP="$ROOT.new"
# Commands run inside by tests/pyver/inroot.sh: a private mount namespace with a fresh /proc and
# /dev/shm (mmdebstrap made /dev's nodes), gone when the command ends. Nothing is removed while
# anything is still mounted under the new root.
remove_tmp() { if grep -q " $TMP/" /proc/mounts; then echo "sid-root: $TMP still has mounts; not removing it"; else rm -rf "$TMP"; fi; }
# A half-made root whose Debian part is complete (an interrupted package step) is reused.
BASE=$(echo "$PACKAGES" | sha256sum | cut -c1-16)
if [ -f "$TMP/.ferrotel-base" ] && [ "$(cat "$TMP/.ferrotel-base")" = "$BASE" ]; then
  echo "sid-root: reusing the Debian part of $TMP"
else
  remove_tmp
  # Debian's unstable index may be older than its Valid-Until: accept it.
  if ! mmdebstrap --quiet --aptopt='Acquire::Check-Valid-Until "false"' --variant=apt --include="$PACKAGES" sid "$TMP" >"$TMP.log" 2>&1; then
    tail -5 "$TMP.log"; remove_tmp; unavailable "mmdebstrap of Debian unstable failed (network to deb.debian.org?; log above)"
  fi
  rm -f "$TMP.log"
  echo "$BASE" >"$TMP/.ferrotel-base"
fi
# The chroot shares the host's network namespace: give it the host's resolver and CA bundle (which
# may carry a local proxy's certificate authority).
cp /etc/resolv.conf "$TMP/etc/resolv.conf"
# (pip's default trust is the system store, so the bundle goes there.)
cp /etc/ssl/certs/ca-certificates.crt "$TMP/etc/ssl/certs/ca-certificates.crt"
cp "$HERE/requirements.txt" "$TMP/opt/requirements.txt"
for v in $VERSIONS; do
  venv=/opt/venv-$v
  rm -rf "$TMP$venv"; sh "$HERE/inroot.sh" "$TMP" /usr/bin/python$v -m venv $venv
  # One package at a time, so one without a wheel for this version only skips its own tests.
  : >"$TMP$venv/missing.txt"
  grep -v '^\s*#' "$TMP/opt/requirements.txt" | grep -v '^\s*$' | while read -r req; do
    sh "$HERE/inroot.sh" "$TMP" env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
      $venv/bin/python -m pip install --quiet --only-binary=:all: "$req" </dev/null >"$TMP/opt/pip.log" 2>&1 \
      || { echo "$req" >>"$TMP$venv/missing.txt"; echo "sid-root: python$v: no installable wheel for $req"; grep -v "^\s*$" "$TMP/opt/pip.log" | tail -4; }
  done
  sh "$HERE/inroot.sh" "$TMP" $venv/bin/python -m pip list --format=freeze >"$TMP$venv/installed.txt" 2>/dev/null || true
done
rm -f "$TMP/opt/pip.log"
echo "$STAMP" >"$TMP/.ferrotel-stamp"
grep -q " $ROOT.old/" /proc/mounts || rm -rf "$ROOT.old"; [ ! -d "$ROOT" ] || mv "$ROOT" "$ROOT.old"
mv "$TMP" "$ROOT"; grep -q " $ROOT.old/" /proc/mounts || rm -rf "$ROOT.old"
echo "sid-root: built $ROOT ($STAMP)"
