"""The programs the suite runs: C workloads compiled once into a cache
directory, and the inputs of the real programs (Python script, SQL, C file)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PROGRAM_DIR = BENCH_DIR / "programs"
INCLUDE_DIR = REPO_DIR / "allocator" / "include"  # refmalloc.h: the stats struct
CC = "gcc"
CFLAGS = ("-O2", "-Wall", "-Wextra", "-pthread")
LDLIBS = ("-ldl",)


class BuildError(RuntimeError):
    pass


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "refmalloc-bench" / "suite"


def compiler_id() -> str:
    try:
        out = subprocess.run([CC, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"cannot run {CC} (it compiles the workloads): {exc}") from exc
    return out.stdout.splitlines()[0] if out.stdout else CC


def _compiled(name: str, digest: str, cache: Path, cmd: list[str], libs: Sequence[str]) -> Path:
    """cache/<name>-<digest>, compiled by `cmd -o OUT` + libs unless it is there."""
    exe = cache / f"{name}-{digest[:16]}"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=cache)
    os.close(fd)
    full = [*cmd, "-o", tmp]
    proc = subprocess.run([*full, *libs], capture_output=True, text=True)
    if proc.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        raise BuildError(f"compiling {name} failed:\n$ {' '.join(full)}\n{proc.stderr}")
    os.replace(tmp, exe)  # atomic: a concurrent run never sees half a binary
    return exe


def build(stem: str, cache: Path) -> Path:
    """Compile bench/programs/<stem>.c once per content, flags and compiler."""
    src = PROGRAM_DIR / f"{stem}.c"
    digest = hashlib.sha256()
    digest.update((compiler_id() + " ".join(CFLAGS + LDLIBS)).encode())
    for dep in (src, PROGRAM_DIR / "bench.h", INCLUDE_DIR / "refmalloc.h"):
        digest.update(dep.read_bytes())
    cmd = [CC, *CFLAGS, "-I", str(PROGRAM_DIR), "-I", str(INCLUDE_DIR), str(src)]
    return _compiled(stem, digest.hexdigest(), cache, cmd, LDLIBS)


PYTHON_SCRIPT = """\
import json, sys
n = int(sys.argv[1])
d = {}
for i in range(n):
    d["key%d" % i] = {"id": i, "name": "item-%d" % (i * 7), "tags": [str(i % 13), "x" * (i % 50)]}
s = json.dumps(d)
back = json.loads(s)
words = sorted(("%x" % (i * 2654435761 % 4294967296)) for i in range(n))
acc = sum(len(v["tags"][1]) for v in back.values())
joined = "".join(words[: n // 2])
print(len(s), acc, len(joined), len(words))
"""

SQL_SCRIPT = """\
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, v REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
INSERT INTO t SELECT x, printf('name-%08d-%s', (x * 7919) % {rows}, hex(x)), x % 97, x * 1.5
FROM c;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(v) FROM t WHERE name > 'name-00500000';
SELECT grp, count(*), avg(v), group_concat(substr(name, 6, 4), ',') IS NOT NULL
FROM t GROUP BY grp ORDER BY 2 DESC LIMIT 3;
SELECT name FROM t ORDER BY v DESC LIMIT 3;
SELECT count(DISTINCT substr(name, 1, 9)) FROM t;
"""


def gcc_source(functions: int) -> str:
    out = ["#include <string.h>", "#include <stdlib.h>", ""]
    out.append("struct rec { int a, b; double c; char name[32]; struct rec *next; };")
    for i in range(functions):
        out.append(
            f"""
static int helper_{i}(struct rec *r, int n) {{
    int s = {i};
    for (int k = 0; k < n; k++) {{
        switch ((k + s) % 5) {{
        case 0: s += r->a * k; break;
        case 1: s ^= r->b << (k & 7); break;
        case 2: s -= (int)(r->c * k); break;
        case 3: s += (int)strlen(r->name); break;
        default: s = s * 31 + k; break;
        }}
        if (r->next) r = r->next;
    }}
    return s;
}}
int api_{i}(int n) {{
    struct rec *r = calloc(4, sizeof *r);
    if (!r) return -1;
    for (int k = 0; k < 3; k++) r[k].next = &r[k + 1];
    memcpy(r->name, "f{i}", sizeof "f{i}");
    int v = helper_{i}(r, n) + helper_{i}(r + 1, n / 2);
    free(r);
    return v;
}}"""
        )
    return "\n".join(out) + "\n"


NUMPY_SCRIPT = """\
import sys
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(1)
acc = 0.0
for i in range(n):
    a = rng.random(1024 + (i % 8) * 32768)  # 8 KiB .. 2 MiB
    b = np.sort(a)
    c = np.cumsum(b)
    m = np.empty((256, 256 + i % 5))
    m[:] = i
    parts = [np.arange(j * 64, dtype=np.float64) for j in range(64)]
    acc += float(c[-1]) + float(m.sum()) + sum(float(p.sum()) for p in parts)
    acc += float(np.concatenate(parts).mean())
print(round(acc, 3))
"""

#: How tests/check_corpus/corpus.py compiles the corpus (-g: check names the reading line).
CORPUS_CFLAGS = ("-g", "-O1", "-pthread", "-Wall", "-Wno-maybe-uninitialized")


def build_corpus(src: Path, cache: Path) -> Path:
    """Compile a check corpus C program once per content, flags and compiler."""
    flags = (*CORPUS_CFLAGS, "-Wno-use-after-free")
    digest = hashlib.sha256((compiler_id() + " ".join(flags)).encode() + src.read_bytes())
    return _compiled(f"corpus-{src.stem}", digest.hexdigest(), cache, [CC, *flags, str(src)], ())


def check_program(
    program: str, args: tuple[str, ...], cache: Path, work: Path, corpus: Path
) -> tuple[list[str], bool]:
    """The argv of a check-group row, and whether it is a Python program."""
    if program == "numpy":
        script = cache / "workload-numpy.py"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(NUMPY_SCRIPT)
        return [sys.executable, "-s", str(script), *args], True
    if program == "sqlite3":
        cmd, _ = real_command("sqlite3", args[0], cache, work)
        return cmd, False
    src = corpus / program
    if src.suffix == ".py":
        return [sys.executable, "-s", str(src), *args], True
    return [str(build_corpus(src, cache)), *args], False


def real_program_inputs(cache: Path) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    files = {"python": cache / "workload.py"}
    files["python"].write_text(PYTHON_SCRIPT)
    return files


def real_command(kind: str, arg: str, cache: Path, work: Path) -> tuple[list[str], dict[str, str]]:
    """Command line and extra environment of a real-program workload;
    work is a scratch directory of this measurement."""
    if kind == "python":
        script = cache / "workload.py"
        if not script.is_file():
            real_program_inputs(cache)
        return [sys.executable, "-s", str(script), arg], {"PYTHONMALLOC": "malloc"}
    if kind == "sqlite3":
        sqlite = shutil.which("sqlite3")
        if not sqlite:
            raise BuildError("sqlite3 not found (Debian package sqlite3; bench/install_peers.sh)")
        sql = cache / f"sqlite-{arg}.sql"
        if not sql.is_file():
            sql.write_text(SQL_SCRIPT.format(rows=int(arg)))
        return [sqlite, ":memory:", f".read {sql}"], {}
    if kind == "gcc":
        src = cache / f"gcc-input-{arg}.c"
        if not src.is_file():
            src.write_text(gcc_source(int(arg)))
        return [CC, "-O2", "-c", str(src), "-o", str(work / "out.o")], {}
    raise BuildError(f"unknown real program kind {kind!r}")
