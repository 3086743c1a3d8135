"""The allocator configurations compared by the suite, and how to load them."""

from __future__ import annotations

import dataclasses
import glob
import importlib
import os
import subprocess
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent

PERTURB = 170  # MALLOC_PERTURB_: glibc fills fresh blocks with 170 ^ 0xff = 0x55

# Environment variables that change how an allocator behaves: removed from
# every run, so each configuration sets exactly what it means.
SCRUBBED_ENV = (
    "LD_PRELOAD",
    "MALLOC_PERTURB_",
    "MALLOC_CONF",
    "MIMALLOC_OPTIONS",
    "SCUDO_OPTIONS",
    "TCMALLOC_RELEASE_RATE",
    "REFMALLOC_OPTIONS",
    "GLIBC_TUNABLES",
    "MALLOC_CHECK_",
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
    "PYTHONMALLOC",
)

# Library key -> (file names looked up in the linker's directories, Debian package).
PEER_LIBS = {
    "jemalloc": (("libjemalloc.so.2",), "libjemalloc2"),
    "mimalloc": (("libmimalloc.so.2", "libmimalloc.so.2.0"), "libmimalloc2.0"),
    "tcmalloc": (("libtcmalloc_minimal.so.4",), "libtcmalloc-minimal4"),
    "scudo": (("libclang_rt.scudo_standalone-x86_64.so",), "libclang-rt-14-dev"),
}
# What each library key looks like in /proc/<pid>/maps.
MAPS_NAME = {
    "refmalloc": "librefmalloc",
    "jemalloc": "libjemalloc",
    "mimalloc": "libmimalloc",
    "tcmalloc": "libtcmalloc",
    "scudo": "scudo",
}


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    description: str
    preload: tuple[str, ...] = ()  # library keys, in LD_PRELOAD order
    env: tuple[tuple[str, str], ...] = ()
    # Does it fill fresh blocks with a pattern at all (on some paths)?
    pattern: bool = False
    # Fills (memsets) fresh large blocks whole: too costly for the scale rows.
    eager_large: bool = False

    @property
    def refmalloc(self) -> bool:
        return "refmalloc" in self.preload


CONFIGS: tuple[Config, ...] = (
    Config("glibc", "glibc 2.36, no pattern (the baseline)"),
    Config(
        "glibc-perturb",
        f"MALLOC_PERTURB_={PERTURB}",
        env=(("MALLOC_PERTURB_", str(PERTURB)),),
        pattern=True,
        eager_large=True,
    ),
    Config(
        "glibc-perturb-notc",
        f"MALLOC_PERTURB_={PERTURB}, GLIBC_TUNABLES=glibc.malloc.tcache_count=0",
        env=(
            ("MALLOC_PERTURB_", str(PERTURB)),
            ("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0"),
        ),
        pattern=True,
        eager_large=True,
    ),
    Config("jemalloc", "jemalloc 5.3, plain", preload=("jemalloc",)),
    Config(
        "jemalloc-junk",
        "jemalloc 5.3, MALLOC_CONF=junk:true",
        preload=("jemalloc",),
        env=(("MALLOC_CONF", "junk:true"),),
        pattern=True,
        eager_large=True,
    ),
    Config("mimalloc", "mimalloc 2.0", preload=("mimalloc",)),
    Config("tcmalloc", "tcmalloc (gperftools 2.10, minimal)", preload=("tcmalloc",)),
    Config("scudo", "Scudo standalone (LLVM 14), plain", preload=("scudo",)),
    Config(
        "scudo-pattern",
        "Scudo standalone, SCUDO_OPTIONS=pattern_fill_contents=1",
        preload=("scudo",),
        env=(("SCUDO_OPTIONS", "pattern_fill_contents=1"),),
        pattern=True,
    ),
    Config("refmalloc", "refmalloc over glibc", preload=("refmalloc",), pattern=True),
    Config(
        "refmalloc+jemalloc",
        "refmalloc stacked over jemalloc",
        preload=("refmalloc", "jemalloc"),
        pattern=True,
    ),
    Config(
        "refmalloc+mimalloc",
        "refmalloc stacked over mimalloc",
        preload=("refmalloc", "mimalloc"),
        pattern=True,
    ),
)
BASELINE = "glibc"
BY_NAME = {c.name: c for c in CONFIGS}


def _ldconfig_paths() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["/sbin/ldconfig", "-p"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    paths: dict[str, str] = {}
    for line in out.splitlines():
        if "=>" in line:
            name = line.split()[0]
            paths.setdefault(name, line.split("=>")[1].strip())
    return paths


def _dpkg_file(package: str, suffix: str) -> str | None:
    try:
        out = subprocess.run(
            ["dpkg", "-L", package], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.endswith(suffix) and os.path.isfile(line):
            return line
    return None


def find_peers() -> tuple[dict[str, Path], dict[str, str]]:
    """Resolve the peer libraries: ({key: path}, {key: why missing})."""
    found: dict[str, Path] = {}
    missing: dict[str, str] = {}
    ld = _ldconfig_paths()
    dirs = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/lib")
    for key, (names, package) in PEER_LIBS.items():
        path: str | None = None
        if key == "scudo":
            path = _dpkg_file(package, names[0])
            if path is None:
                hits = sorted(glob.glob(f"/usr/lib/llvm-*/lib/clang/*/lib/linux/{names[0]}"))
                path = hits[-1] if hits else None
        else:
            for n in names:
                path = ld.get(n) or next(
                    (f"{d}/{n}" for d in dirs if os.path.isfile(f"{d}/{n}")), None
                )
                if path:
                    break
        if path and os.path.isfile(path):
            found[key] = Path(path)
        else:
            missing[key] = (
                f"{names[0]} not found (Debian package {package}; run bench/install_peers.sh)"
            )
    return found, missing


def config_env(
    config: Config, libs: dict[str, Path], base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a run under config (libs maps keys to paths,
    refmalloc included)."""
    env = {k: v for k, v in (base or os.environ).items() if k not in SCRUBBED_ENV}
    if config.preload:
        env["LD_PRELOAD"] = " ".join(str(libs[k]) for k in config.preload)
    env.update(dict(config.env))
    return env


def describe_env(config: Config) -> str:
    parts = []
    if config.preload:
        parts.append("LD_PRELOAD=" + " ".join(k for k in config.preload))
    parts += [f"{k}={v}" for k, v in config.env]
    return " ".join(parts) or "no preload"


def find_lib(cli_path: str | None = None) -> Path:
    """librefmalloc.so: --lib, else $REFMALLOC_LIB, else pyalloc.lib_path()
    when pyalloc is importable, else <repo>/build/librefmalloc.so. Raises
    FileNotFoundError saying how to get one."""
    if cli_path:
        path, origin = Path(cli_path), "--lib"
    elif os.environ.get("REFMALLOC_LIB"):
        path, origin = Path(os.environ["REFMALLOC_LIB"]), "REFMALLOC_LIB"
    else:
        path, origin = REPO_DIR / "build" / "librefmalloc.so", "default location"
        try:
            pyalloc = importlib.import_module("pyalloc")
            path, origin = Path(pyalloc.lib_path()), "pyalloc.lib_path()"
        except (ImportError, AttributeError, FileNotFoundError):
            pass
    if not path.is_file():
        build = REPO_DIR / "build"
        raise FileNotFoundError(
            f"refmalloc library not found: {path} (from {origin}). Build it with "
            f"'cmake -S {REPO_DIR} -B {build} && cmake --build {build}', "
            "or pass --lib PATH, or set REFMALLOC_LIB."
        )
    return path.resolve()
