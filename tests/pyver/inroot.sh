#!/bin/sh
# Run a command inside a root file system (the sid root of tests/pyver/sid_root.sh):
#   sh tests/pyver/inroot.sh ROOT COMMAND [ARG...]
# In a private mount namespace (unshare -m) with a fresh /proc and /dev/shm, so nothing stays
# mounted when the command ends; the network namespace is the host's (loopback servers on either
# side reach each other). The working directory inside is / unless INROOT_CWD names one.
set -eu
root=$1; shift
exec unshare --mount --propagation private sh -c '
  root=$1; shift
  mount -t proc proc "$root/proc"
  mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
  exec chroot "$root" sh -c "cd \"\${INROOT_CWD:-/}\" && exec \"\$@\"" sh "$@"
' sh "$root" "$@"
