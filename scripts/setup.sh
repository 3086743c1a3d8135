# shellcheck shell=bash
# Everything refmalloc's tests need on Debian 12, installed when missing.
# Sourced by scripts/test.sh (the README's test command) and by .ci/run:
#
#   setup_system_packages   apt packages (as root, or through sudo)
#   setup_venv DIR          a virtual environment at DIR, activated
#   setup_python            pip install '.[test]' (builds librefmalloc.so, -Werror)
#
# Besides these, the MTE tests (tests/test_mte_rig.py) download, on their first
# run, Debian's arm64 kernel package (apt-get download, never installed) and a
# qemu-system-aarch64 from bookworm-backports into ~/.cache/refmalloc-rig.

SYSTEM_PACKAGES=(
  build-essential cmake g++ python3-venv
  # allocators stacked behind refmalloc in the tests
  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
  # seccomp filters for the memfd fallback tests
  libseccomp-dev
  # real programs run by tests/reliability; CPython's regression tests
  sqlite3 git perl redis-server redis-tools libpython3.11-testsuite
  # the arm64 cross build, run under user-mode emulation
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
  # the emulated MTE machine of rig/ (it takes a newer qemu-system-aarch64
  # from bookworm-backports itself, because 7.2 stores MTE tags per half page)
  qemu-system-arm cpio
  # glibc 2.36's own malloc tests (tests/glibc/runner.py extracts them from
  # /usr/src/glibc/glibc-2.36.tar.xz); gdb adds backtraces to hang reports
  glibc-source gdb
  # refmalloc report --html, loaded in a headless browser (tests/test_html_report.py)
  chromium chromium-driver
)

setup_log() { printf '\n=== %s\n' "$*"; }

setup_system_packages() {
  local missing=() p
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  # The rig's arm64 kernel is an arm64 package (downloaded, never installed).
  local need_arch=0
  dpkg --print-foreign-architectures | grep -qx arm64 || need_arch=1
  if [[ ${#missing[@]} -eq 0 && $need_arch -eq 0 ]]; then
    setup_log "system packages: all ${#SYSTEM_PACKAGES[@]} present"
    return
  fi
  local arch_note=""
  [[ $need_arch -eq 0 ]] || arch_note=" (and arm64 as a foreign architecture)"
  setup_log "system packages: installing ${missing[*]:-(none)}$arch_note"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  [[ $need_arch -eq 0 ]] || "${sudo[@]}" dpkg --add-architecture arm64
  "${sudo[@]}" apt-get update -qq
  if [[ ${#missing[@]} -gt 0 ]]; then
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

setup_venv() {
  local venv=$1 python="${PYTHON:-python3}"
  "$python" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"refmalloc needs Python >= 3.11, found {sys.version.split()[0]}")
PY
  if [[ ! -x $venv/bin/python ]]; then
    setup_log "virtual environment: $venv"
    "$python" -m venv "$venv"
  fi
  # shellcheck disable=SC1091
  . "$venv/bin/activate"
}

setup_python() {
  setup_log "pip install '.[test]' (builds librefmalloc.so with CMake, -Werror)"
  pip install -q --config-settings=cmake.define.REFMALLOC_WERROR=ON '.[test]'
  refmalloc --version
  refmalloc lib-path
}
