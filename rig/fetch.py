"""What the rig downloads, once, into its cache: Debian's arm64 kernel
(apt-get download of the -unsigned variant of the package linux-image-arm64
depends on) and, when the system's QEMU is older than 8.0, qemu-system-aarch64
from <codename>-backports (apt-get download with a private apt configuration,
run on the system's libraries)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from rig.host import RigError, cache_dir, need_tool, progress, run_tool

QEMU = "qemu-system-aarch64"
MIN_QEMU = (8, 0)  # see find_qemu
KERNEL_META = "linux-image-arm64:arm64"
APT_LISTS = "/var/lib/apt/lists"  # its mtime changes with apt-get update


def _publish(stage: Path, dest: Path, result: Path) -> None:
    """Move a finished download into the cache in one rename; a concurrent
    fetch that got there first (result exists) is as good."""
    try:
        stage.rename(dest)
    except OSError:
        if not result.is_file():
            raise


@functools.cache
def kernel_package() -> str:
    """The name of the arm64 kernel package that linux-image-arm64 depends on
    now (e.g. linux-image-6.1.0-57-arm64); it changes with security updates.
    The answer of apt-cache (1.5 s) is kept in the cache until apt's package
    lists change."""
    hint = (
        "no arm64 kernel package is known to apt: run "
        "`dpkg --add-architecture arm64 && apt-get update`"
    )
    memo = cache_dir() / "kernel-package"
    try:
        stamp = str(Path(APT_LISTS).stat().st_mtime_ns)
    except OSError:
        stamp = ""
    try:
        saved_stamp, saved = memo.read_text().split()
        if stamp and saved_stamp == stamp:
            return saved
    except (OSError, ValueError):
        pass
    try:
        cp = subprocess.run(["apt-cache", "depends", KERNEL_META], capture_output=True, text=True)
    except OSError as e:
        raise RigError(f"apt-cache: {e}; {hint}") from e
    m = re.search(r"Depends:\s*(linux-image-[0-9][\w.+-]*-arm64)(?::arm64)?\s", cp.stdout + "\n")
    if cp.returncode != 0 or not m:
        raise RigError(f"{hint}\n(apt-cache depends {KERNEL_META}: {cp.stdout}{cp.stderr})")
    if stamp:
        tmp = memo.with_name(f".kernel-package.{os.getpid()}")
        tmp.write_text(f"{stamp} {m.group(1)}\n")
        tmp.replace(memo)
    return m.group(1)


def fetch_kernel(cache: Path | None = None) -> Path:
    """Path of vmlinuz of the current arm64 kernel package's -unsigned variant,
    downloaded with apt-get download and extracted once into
    cache/<package>/ (cache defaults to cache_dir())."""
    cache = cache if cache is not None else cache_dir()
    package = kernel_package()
    dest = cache / package
    vmlinuz = dest / "vmlinuz"
    if vmlinuz.is_file():
        return vmlinuz
    need_tool("dpkg-deb", "dpkg")
    cache.mkdir(parents=True, exist_ok=True)
    progress(f"fetching kernel {package}-unsigned:arm64 into {dest}")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # apt's sandbox user _apt writes the .deb here
        try:
            run_tool(
                ["apt-get", "download", f"{package}-unsigned:arm64"],
                "apt-get download",
                cwd=work,
            )
        except RigError as e:
            raise RigError(f"{e}\n(an old package list? run `apt-get update`)") from e
        debs = sorted(work.glob("*.deb"))
        if not debs:
            raise RigError(f"apt-get download {package}-unsigned:arm64 left no .deb")
        tree = work / "x"
        run_tool(["dpkg-deb", "-x", str(debs[0]), str(tree)], "dpkg-deb -x")
        images = sorted((tree / "boot").glob("vmlinuz-*"))
        configs = sorted((tree / "boot").glob("config-*"))
        if not images:
            raise RigError(f"{debs[0].name} holds no boot/vmlinuz-*")
        if configs and "CONFIG_ARM64_MTE=y" not in configs[0].read_text(errors="replace"):
            raise RigError(f"{package} is built without CONFIG_ARM64_MTE")
        stage = work / "stage"
        stage.mkdir()
        shutil.move(str(images[0]), stage / "vmlinuz")
        if configs:
            shutil.move(str(configs[0]), stage / "config")
        (stage / "package").write_text(debs[0].name + "\n")
        _publish(stage, dest, vmlinuz)
    return vmlinuz



def _qemu_version(qemu: str | Path) -> tuple[int, int]:
    out = run_tool([str(qemu), "--version"], f"{qemu} --version")
    m = re.search(r"version (\d+)\.(\d+)", out)
    if not m:
        raise RigError(f"{qemu} --version: no version in {out!r}")
    return int(m.group(1)), int(m.group(2))


def _os_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError as e:
        raise RigError(f"/etc/os-release: {e}") from e
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not m:
        raise RigError("no VERSION_CODENAME in /etc/os-release")
    return m.group(1)


def _apt_sources() -> list[tuple[str, str, str | None]]:
    """(URI, suite, signed-by or None) of every enabled 'deb' source of apt,
    from sources.list and sources.list.d (one-line and deb822 formats)."""
    found: list[tuple[str, str, str | None]] = []
    etc = Path("/etc/apt")
    lists = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in lists:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(
                r"\s*deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)", line
            )
            if m:
                opt = re.search(r"signed-by=(\S+)", m.group("opts") or "")
                found.append((m.group("uri"), m.group("suite"), opt.group(1) if opt else None))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        try:
            text = path.read_text()
        except OSError:
            continue
        for para in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in para.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "\t", "#")):
                    fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            signed = fields.get("signed-by") or None
            if signed and not signed.startswith("/"):
                signed = None  # an inline key: apt's default keyrings must do
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    found.append((uri, suite, signed))
    return found


def fetch_qemu(cache: Path | None = None) -> Path:
    """qemu-system-aarch64 from the qemu-system-arm package of
    <codename>-backports (apt-get download with a private apt configuration
    that adds that suite on the mirror of the system's own sources; nothing
    of the system's apt state changes), extracted once into
    cache/qemu-backports/ and used with the system's libraries."""
    cache = cache if cache is not None else cache_dir()
    dest = cache / "qemu-backports"
    binary = dest / "qemu-system-aarch64"
    if binary.is_file():
        return binary
    need_tool("dpkg-deb", "dpkg")
    codename = _os_codename()
    mirrors = [(u, s) for u, suite, s in _apt_sources() if suite == codename]
    if not mirrors:
        raise RigError(f"no apt source for suite {codename}: cannot find {codename}-backports")
    uri, signed = mirrors[0]
    arch = run_tool(["dpkg", "--print-architecture"], "dpkg --print-architecture").strip()
    progress(f"fetching qemu-system-arm from {codename}-backports into {dest}")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-qemu-") as tmp:
        work = Path(tmp)
        for sub in ("lists/partial", "cache/archives/partial", "parts", "deb"):
            (work / sub).mkdir(parents=True)
        # apt's sandbox user _apt reads the lists and writes the .deb.
        for path in (work, work / "lists", work / "lists/partial"):
            path.chmod(0o755)
        (work / "deb").chmod(0o777)
        opts = f"[signed-by={signed}] " if signed else ""
        (work / "sources.list").write_text(f"deb {opts}{uri} {codename}-backports main\n")
        apt_opts = [
            "-o", f"Dir::Etc::sourcelist={work / 'sources.list'}",
            "-o", f"Dir::Etc::sourceparts={work / 'parts'}",
            "-o", f"Dir::State::Lists={work / 'lists'}",
            "-o", f"Dir::Cache={work / 'cache'}",
            "-o", f"APT::Architectures={arch}",
            "-o", f"APT::Architecture={arch}",
        ]  # fmt: skip
        run_tool(["apt-get", *apt_opts, "update"], f"apt-get update ({codename}-backports)")
        run_tool(
            ["apt-get", *apt_opts, "download", "qemu-system-arm"],
            f"apt-get download qemu-system-arm ({codename}-backports)",
            cwd=work / "deb",
        )
        debs = sorted((work / "deb").glob("qemu-system-arm_*.deb"))
        if not debs:
            raise RigError(f"apt-get download qemu-system-arm ({codename}-backports) left no .deb")
        tree = work / "x"
        run_tool(["dpkg-deb", "-x", str(debs[0]), str(tree)], "dpkg-deb -x")
        stage = work / "stage"
        stage.mkdir()
        shutil.move(str(tree / "usr" / "bin" / QEMU), stage / QEMU)
        (stage / "package").write_text(debs[0].name + "\n")
        try:
            _qemu_version(stage / QEMU)
        except RigError as e:
            raise RigError(
                f"the {codename}-backports QEMU does not run with this system's libraries "
                f"(apt-get install qemu-system-arm brings most of them): {e}"
            ) from e
        _publish(stage, dest, binary)
    return binary


def find_qemu(cache: Path | None = None) -> Path:
    """The qemu-system-aarch64 to boot: $REFMALLOC_RIG_QEMU if set, else the
    system's if it is version 8.0 or later, else fetch_qemu(cache).

    QEMU before 8.0 (Debian 12's 7.2) keeps one tag byte per page in system
    emulation (the tag address misses the offset in the page): every even
    granule of a page shares one tag, every odd granule another, so stg on one
    granule retags half the page. Its tag checks cannot be trusted."""
    forced = os.environ.get("REFMALLOC_RIG_QEMU")
    if forced:
        return Path(forced)
    system = shutil.which(QEMU)
    if system and _qemu_version(system) >= MIN_QEMU:
        return Path(system)
    return fetch_qemu(cache)
