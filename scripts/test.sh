#!/usr/bin/env bash
# The README's test command: on a Debian 12 machine, install what the tests
# need when it is missing (apt packages, as root or through sudo; a virtual
# environment .venv in the checkout unless one is active; '.[test]'), then run
# the tests. Extra arguments go to pytest:
#
#   scripts/test.sh                       # the whole suite (see the README for its time)
#   scripts/test.sh tests/test_cli.py     # one file (or a directory, or FILE::TEST)
#   scripts/test.sh -k glibc -x           # a part of it
#   scripts/test.sh --no-setup ...        # no set-up: the active environment as it is
#                                         # (.ci/run, which made its own)
#
# This is the one place that says how the suite runs, in two parts:
#   1. every test not marked serial, on all cores (pytest-xdist: -n auto; --dist
#      loadgroup keeps an xdist_group's tests, and so its module fixtures, on one
#      worker);
#   2. the tests marked serial (they change a machine-wide setting, or their
#      verdict depends on time), one at a time with nothing else of the suite
#      running.
# Exit status: the first part's failure if it failed, else the second's; 5 (no
# test collected) only when neither part ran a test.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=scripts/setup.sh
. scripts/setup.sh
if [[ ${1:-} == --no-setup ]]; then
  shift
else
  setup_system_packages
  setup_venv "${VIRTUAL_ENV:-$repo/.venv}"
  setup_python
fi

# No path given: pytest takes pyproject's testpaths (tests/).
# One part of the suite: its command logged, its exit status in $status.
run_part() {
  setup_log "$*"
  set +e
  "$@"
  status=$?
  set -e
}

run_part python -m pytest -n auto --dist loadgroup --serial-tests=skip "$@"
first=$status
# Interrupted (2) or a usage or internal error (3, 4): the second part would only repeat it.
if [[ $first -ge 2 && $first -le 4 ]]; then
  exit "$first"
fi
run_part python -m pytest -n 0 --serial-tests=only "$@"
second=$status

# 5: every test of that part was deselected (or none was collected).
if [[ $first -ne 0 && $first -ne 5 ]]; then
  exit "$first"
fi
if [[ $second -ne 0 && $second -ne 5 ]]; then
  exit "$second"
fi
if [[ $first -eq 5 && $second -eq 5 ]]; then
  exit 5
fi
exit 0
