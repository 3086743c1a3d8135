"""An emulated arm64 machine, with or without MTE, that runs test programs.

The machine is ``qemu-system-aarch64 -machine virt[,mte=on] -cpu max`` with
Debian's arm64 kernel (fetched with apt, cached) and an initramfs made here:
a static /init (rig/init.c), the arm64 dynamic loader and the libraries
that the programs need (found with readelf from /usr/aarch64-linux-gnu/lib),
the files given by the caller, and /rig/commands, the list of commands that
/init runs one after the other before it powers the machine off.

Host packages: qemu-system-arm, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
and apt configured for arm64 (``dpkg --add-architecture arm64 && apt-get
update``) for the kernel. QEMU older than 8.0 (Debian 12 has 7.2) stores MTE
tags wrongly (one tag byte per page, see find_qemu); with such a system QEMU
the rig fetches qemu-system-arm from <codename>-backports into its cache and
runs that binary with the system's libraries (the installed 7.2 brings them).

Under plain TCG the guest has no PERF_COUNT_HW_INSTRUCTIONS (perf_event_open
fails with ENOENT; cycles work). With ``extra_qemu_args=["-icount",
"shift=0"]`` it is there and exact (a 2-instruction loop counts 2.000 per
iteration), boots take ~0.3 s longer, CPU-bound guest work ~1.5x longer, and
guest clocks (the RIG-END seconds) count instructions (1 ns each), not time.

Typical use (see also ``python -m rig --help``, from the repository root)::

    results = rig.run(
        [rig.GuestCommand("calloc", ["/bin/pattern", "calloc"],
                          {"LD_PRELOAD": "/lib/librefmalloc.so"})],
        {"/lib/librefmalloc.so": lib, "/bin/pattern": exe},
        mte=True, workdir=tmp_path)
    assert results["calloc"].exit_code == 0

/rig/commands, read by init.c: one command per line, four fields separated
by one TAB::

    NAME <TAB> TIMEOUT <TAB> ENV <TAB> ARGV

NAME matches ``[A-Za-z0-9_.:+-]+``; TIMEOUT is whole seconds (0: no limit),
after which /init kills every process but itself with SIGKILL (as it does
with what a command leaves running when it ends); ENV is the
command's whole environment as VAR=value words separated by one space (may be
empty; PATH=/bin is added unless it sets PATH); ARGV is the argument words
separated by one space, ARGV[0] the path executed. In ENV and ARGV words any
byte may be written %XX; this module writes '%', space, TAB, newline and every
byte outside 0x21..0x7e that way, so a word may hold anything but NUL.

Console protocol, written by /init, each marker at the start of a line (a
command's unterminated last line may precede a marker on the same line; parse
splits it off)::

    RIG-START commands=N
    RIG-BEGIN NAME
    ... the command's stdout and stderr, and any kernel messages ...
    RIG-TIMEOUT NAME seconds=T        (only when the command's limit was hit)
    RIG-END NAME exit=N seconds=S     or   RIG-END NAME signal=N seconds=S
    RIG-DONE
    RIG-ERROR what went wrong         (a failure of the rig; then power off)
    RIG-NOTE something optional failed (e.g. mounting sysfs)

QEMU exits 0 whatever the guest did: the verdict is read from the console
only, and boot() raises RigError unless the guest printed RIG-DONE.

Modules: :mod:`rig.host` (errors, the cache, host tools, the cross compiler),
:mod:`rig.fetch` (the kernel and the backports QEMU), :mod:`rig.initramfs`
(the guest's files and commands), :mod:`rig.machine` (boot and parse), and
``python -m rig`` (one command by hand). The tests (tests/test_mte_rig.py,
tests/test_cross_arm64.py) and bench/mte.py import it from the repository root
(pyproject.toml puts the root on pytest's pythonpath).
"""

from rig.fetch import fetch_kernel, fetch_qemu, find_qemu, kernel_package
from rig.host import RigError, build_library, cache_dir, cross_compile
from rig.initramfs import GuestCommand, build_initramfs, command_line, init_binary
from rig.machine import CommandResult, boot, parse, qemu_command, run

__all__ = [
    "CommandResult",
    "GuestCommand",
    "RigError",
    "boot",
    "build_initramfs",
    "build_library",
    "cache_dir",
    "command_line",
    "cross_compile",
    "fetch_kernel",
    "fetch_qemu",
    "find_qemu",
    "init_binary",
    "kernel_package",
    "parse",
    "qemu_command",
    "run",
]
