#!/usr/bin/env bash
# Install the peer allocators and programs the benchmark suite (python -m bench)
# compares refmalloc with, from Debian 12's packages. Run as root (or with sudo).
# Every package is installed on its own: one that cannot be installed is reported
# and skipped, and the suite then skips the configurations that need it, with a
# message. Usage: bench/install_peers.sh [--no-update]
set -uo pipefail

packages=(
  libjemalloc2          # jemalloc: plain and MALLOC_CONF=junk:true
  libmimalloc2.0        # mimalloc
  libtcmalloc-minimal4  # tcmalloc (minimal)
  libclang-rt-14-dev    # Scudo standalone: libclang_rt.scudo_standalone-x86_64.so
  sqlite3               # real program: sqlite3 200k rows
  gcc                   # real program: a compile (and the workloads are C)
  python3               # real program: Python with PYTHONMALLOC=malloc
  linux-perf valgrind   # profiling (not needed to run the suite)
)

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    SUDO=sudo
  else
    echo "install_peers.sh: needs root (or sudo) to run apt-get" >&2
    exit 2
  fi
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
if [[ ${1:-} != --no-update ]]; then
  $SUDO apt-get update -qq || echo "install_peers.sh: apt-get update failed; trying the cached lists" >&2
fi
missing=()
for pkg in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
    echo "ok      $pkg (already installed)"
  elif $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
    echo "ok      $pkg (installed)"
  else
    echo "MISSING $pkg: apt-get install failed; the suite will skip what needs it" >&2
    missing+=("$pkg")
  fi
done
scudo=$(dpkg -L libclang-rt-14-dev 2>/dev/null | grep -m1 'libclang_rt.scudo_standalone-x86_64.so$' || true)
echo "scudo standalone: ${scudo:-not found}"
if python3 -c 'import matplotlib' 2>/dev/null; then
  echo "ok      matplotlib (PNG plots)"
else
  echo "note    matplotlib is not installed: the suite writes no PNG plots" \
       "(pip install matplotlib, or apt-get install python3-matplotlib)"
fi
if ((${#missing[@]})); then
  echo "install_peers.sh: ${#missing[@]} package(s) missing: ${missing[*]}" >&2
  exit 1
fi
