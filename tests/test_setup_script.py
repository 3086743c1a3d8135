"""Issue 15 item 1: one set-up script for the README's test command and CI."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_and_the_readme_use_the_one_set_up_script() -> None:
    ci = (REPO / ".ci/run").read_text()
    assert ". scripts/setup.sh" in ci and "setup_system_packages" in ci
    assert "apt-get" not in ci  # the package list lives in scripts/setup.sh only
    readme = (REPO / "README.md").read_text()
    assert "\nscripts/test.sh\n" in readme


def test_set_up_finds_every_package_present_and_installs_nothing() -> None:
    """On a machine that has them (CI installed them), the set-up says so and
    runs no apt-get; it prints the count from its own list."""
    script = (
        ". scripts/setup.sh; apt-get() { echo CALLED-APT; }; "
        'setup_system_packages; echo "N=${#SYSTEM_PACKAGES[@]}"'
    )
    cp = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    n = int(cp.stdout.rsplit("N=", 1)[1])
    assert f"system packages: all {n} present" in cp.stdout, cp.stdout
    assert "CALLED-APT" not in cp.stdout


def test_set_up_would_install_a_missing_package() -> None:
    script = (
        ". scripts/setup.sh; SYSTEM_PACKAGES+=(refmalloc-no-such-package); "
        "apt-get() { echo \"apt-get $*\" >&2; }; sudo() { \"$@\"; }; setup_system_packages"
    )
    cp = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    assert "installing refmalloc-no-such-package" in cp.stdout
    assert "apt-get install -y -qq --no-install-recommends refmalloc-no-such-package" in cp.stderr


def test_build_trees_are_ignored() -> None:
    # issue 15 item 14: build-arm64/ (the cross build) showed up in git status.
    for path in ("build/x", "build-arm64/x", "build-asan/CMakeCache.txt"):
        done = subprocess.run(
            ["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, check=False
        )
        assert done.returncode == 0, f"{path} is not ignored by .gitignore"
