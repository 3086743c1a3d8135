#!/usr/bin/env bash
# The README's test command: on a Debian 12 machine, install what the tests
# need when it is missing (apt packages, as root or through sudo; a virtual
# environment .venv in the checkout unless one is active; '.[test]'), then run
# the tests. Extra arguments go to pytest:
#
#   scripts/test.sh                       # the whole suite (about 8 minutes on 2 cores)
#   scripts/test.sh -k glibc -x           # a part of it
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=scripts/setup.sh
. scripts/setup.sh
setup_system_packages
setup_venv "${VIRTUAL_ENV:-$repo/.venv}"
setup_python
setup_log "python -m pytest tests $*"
exec python -m pytest tests "$@"
