# ruff: noqa: E501  (embedded C, C++, perl and shell sources keep their own line lengths)
"""Real programs under refmalloc (issue 6): each run plainly and under
refmalloc, outputs compared byte for byte. sqlite3 (200k rows, index,
aggregates), git (init, 500 files, commit, gc, log), gcc and g++ compiling
(the objects identical, the results running), perl and sort pipelines, a
Python workload (PYTHONMALLOC=malloc: json, re, threads), redis-server on
loopback driven by a bounded redis-benchmark, and a subset of CPython's own
regression tests. A few go through `refmalloc run` (the CLI), the rest through
LD_PRELOAD directly. The Debian packages are installed by .ci/run; a missing
program is a failure, not a skip."""

import difflib
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rmhelpers import clean_env, describe


def need(prog):
    path = shutil.which(prog)
    assert path, f"{prog} not found: .ci/run installs it (apt-get install)"
    return path


def same_as_plain(run_cmd, argv, options=None, **kw):
    """Run argv plainly and under refmalloc; both succeed with equal output."""
    plain = run_cmd(argv, preload=False, **kw)
    assert plain.returncode == 0, "plain run failed\n" + describe(plain)
    ref = run_cmd(argv, options=options, **kw)
    assert ref.returncode == 0, describe(ref)
    assert ref.stdout == plain.stdout, f"stdout differs\n{describe(ref)}"
    assert ref.stderr == plain.stderr, f"stderr differs\n{describe(ref)}"
    return ref


def load_report(path):
    """The JSON report of a run: proof the program really ran under refmalloc."""
    rep = json.loads(Path(path).read_text())
    if "processes" in rep:  # `refmalloc run --report`: one entry per process
        procs = rep["processes"]
        assert procs, rep
        rep = {"stats": {k: sum(p["stats"][k] for p in procs) for k in procs[0]["stats"]}}
    assert rep["stats"]["small_allocs"] > 0, rep["stats"]
    return rep


# ---- sqlite3 -----------------------------------------------------------------

SQL = """
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, s TEXT, b BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<200000)
INSERT INTO t SELECT x, (x*7919)%1000, printf('row-%08d-%s', x, hex(x*31)), zeroblob(x%300) FROM c;
CREATE INDEX tk ON t(k, s);
CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB);
INSERT INTO big VALUES (1, zeroblob(3000000)), (2, x'00ff');
SELECT k, count(*), sum(length(s)), total(id), sum(length(b)) FROM t GROUP BY k
  ORDER BY k LIMIT 25;
SELECT count(DISTINCT k), max(s), min(s), avg(id) FROM t;
SELECT group_concat(id) FROM (SELECT id FROM t WHERE k=17 ORDER BY s LIMIT 40);
SELECT length(group_concat(s, '|')), hex(substr(group_concat(s), 1000000, 20)) FROM t;
SELECT k, s FROM t WHERE k BETWEEN 500 AND 502 ORDER BY s DESC LIMIT 10;
UPDATE t SET s = s || '-x' WHERE id % 7 = 0;
DELETE FROM t WHERE id % 11 = 0;
SELECT count(*), sum(length(s)) FROM t;
SELECT length(v), hex(substr(v, 2999990, 10)) FROM big WHERE id = 1;
PRAGMA integrity_check;
VACUUM;
"""


@pytest.mark.parametrize("via", ["preload", "cli"])
def test_sqlite3_200k_rows_index_aggregates(run_cmd, cli, lib, tmp_path, via):
    need("sqlite3")
    outs = {}
    for mode in ("plain", "ref"):
        db = tmp_path / f"{mode}.db"
        argv = ["sqlite3", "-batch", "-bail", db]
        report = tmp_path / f"{mode}-report.json"
        if mode == "ref" and via == "cli":
            cp = run_cmd(
                [*cli, "run", "--report", report, "--", *argv],
                preload=False,
                env={"REFMALLOC_LIB": lib},
                input=SQL,
            )
        else:
            cp = run_cmd(
                argv, preload=(mode == "ref"), options=f"report={report}", input=SQL
            )
        assert cp.returncode == 0, describe(cp)
        if mode == "ref":
            assert load_report(report)["stats"]["large_allocs"] > 0
        dump = run_cmd(["sqlite3", db, ".sha3sum"], preload=(mode == "ref"))
        assert dump.returncode == 0, describe(dump)
        outs[mode] = (cp.stdout, cp.stderr, dump.stdout)
    assert outs["ref"] == outs["plain"]
    assert "ok" in outs["ref"][0]


# ---- git ---------------------------------------------------------------------


def _git_env(home):
    return {
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Ref Malloc",
        "GIT_AUTHOR_EMAIL": "rm@example.org",
        "GIT_COMMITTER_NAME": "Ref Malloc",
        "GIT_COMMITTER_EMAIL": "rm@example.org",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
        "LC_ALL": "C",
        "TZ": "UTC",
    }


GIT_SCRIPT = r"""
set -e
git init -q -b main repo
cd repo
git add -A
git commit -q -m "500 files"
i=0
for f in $(ls | head -60); do echo "change $i" >> "$f"; i=$((i+1)); done
git mv file-0001.txt renamed.txt
git commit -q -am "second"
git tag -a v1 -m "tag v1"
git gc -q
git repack -adq --window=50
git fsck --full --strict 2>&1
git log --stat --format='%H %an %s' | head -200
git rev-parse HEAD HEAD~1 v1
git ls-tree -r HEAD | git hash-object --stdin
git diff --stat HEAD~1 HEAD | tail -3
git show HEAD~1:file-0007.txt | sha256sum
git grep -c line | tail -5
git count-objects -v | grep -E '^(count|in-pack|packs)'
git archive --format=tar HEAD | sha256sum
"""


def _populate(repo: Path):
    repo.mkdir()
    for i in range(500):
        lines = "".join(f"line {j} of file {i} {'x' * (i % 37)}\n" for j in range(i % 60 + 5))
        (repo / f"file-{i:04d}.txt").write_text(lines)
    (repo / "big.bin").write_bytes(bytes(range(256)) * 8192)  # 2 MiB: a large block


def test_git_init_500_files_commit_gc_log(run_cmd, tmp_path):
    need("git")
    outs = {}
    for mode in ("plain", "ref"):
        d = tmp_path / mode
        d.mkdir()
        _populate(d / "repo")
        cp = run_cmd(
            ["/bin/sh", "-c", GIT_SCRIPT],
            preload=(mode == "ref"),
            env=_git_env(d),
            cwd=d,
            timeout=180,
        )
        assert cp.returncode == 0, describe(cp)
        outs[mode] = (cp.stdout, cp.stderr)
    assert outs["ref"] == outs["plain"], describe(cp)
    assert "500 files" in outs["ref"][0]


# ---- gcc / g++ -----------------------------------------------------------------

C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *l, *r; long key; char name[24]; };
static struct node *insert(struct node *t, long k) {
    if (!t) { t = calloc(1, sizeof *t); t->key = k; snprintf(t->name, sizeof t->name, "n%ld", k); return t; }
    if (k < t->key) t->l = insert(t->l, k); else t->r = insert(t->r, k);
    return t;
}
static long walk(struct node *t, long d) { return t ? walk(t->l, d + 1) + d * (t->key % 97) + walk(t->r, d + 1) : 0; }
static int cmp(const void *a, const void *b) { long x = *(const long *)a, y = *(const long *)b; return (x > y) - (x < y); }
int main(void) {
    struct node *t = NULL; long h = 0, n = 200000;
    long *v = malloc(n * sizeof *v);
    for (long i = 0; i < n; i++) { v[i] = (i * 2654435761u) % 1000003; t = insert(t, v[i]); }
    qsort(v, n, sizeof *v, cmp);
    for (long i = 0; i < n; i += 1000) h = h * 31 + v[i];
    char *s = malloc(1 << 22); memset(s, 'q', (1 << 22) - 1); s[(1 << 22) - 1] = 0;
    printf("%ld %ld %zu\n", walk(t, 0), h, strlen(s));
    return 0;
}
"""

CXX_PROGRAM = r"""
#include <algorithm>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>
int main() {
    std::map<std::string, int> m; std::unordered_map<int, std::vector<int>> u;
    std::ostringstream text;
    for (int i = 0; i < 50000; i++) { m["k" + std::to_string(i % 7919)] += i; u[i % 101].push_back(i); text << "id=" << i << ";"; }
    std::string s = text.str();
    std::regex re("id=(\\d*7);");
    long n = 0, sum = 0;
    for (auto it = std::sregex_iterator(s.begin(), s.begin() + 200000, re); it != std::sregex_iterator(); ++it) { n++; sum += std::stol((*it)[1]); }
    std::vector<int> big(3 << 20, 1); std::sort(big.begin(), big.end());
    long t = 0; for (auto &kv : m) t += kv.second % 1000;
    std::cout << m.size() << " " << u[5].size() << " " << n << " " << sum << " " << t << " " << big.size() << "\n";
}
"""


@pytest.mark.parametrize("lang", ["c", "c++"])
def test_gcc_compiles_same_object_and_result_runs(run_cmd, tmp_path, lang):
    compiler, src, flags = (
        ("gcc", "prog.c", ["-O2"]) if lang == "c" else ("g++", "prog.cpp", ["-O1", "-std=gnu++17"])
    )
    need(compiler)
    (tmp_path / src).write_text(C_PROGRAM if lang == "c" else CXX_PROGRAM)
    bins = {}
    for mode in ("plain", "ref"):
        # same directory and names: the outputs must be byte-identical
        cp = run_cmd(
            [compiler, *flags, "-o", "prog", src],
            preload=(mode == "ref"),
            cwd=tmp_path,
            timeout=180,
        )
        assert cp.returncode == 0, describe(cp)
        assert cp.stderr == "", describe(cp)
        bins[mode] = (tmp_path / "prog").read_bytes()
        (tmp_path / "prog").rename(tmp_path / f"prog-{mode}")
    assert hashlib.sha256(bins["ref"]).hexdigest() == hashlib.sha256(bins["plain"]).hexdigest(), (
        "gcc produced a different binary under refmalloc"
    )
    same_as_plain(run_cmd, [tmp_path / "prog-ref"])


# ---- perl and sort pipelines -----------------------------------------------------

PIPELINE = r"""
set -e
perl -e '
  my %h; my @a;
  for my $i (1..200000) { my $k = ($i * 7919) % 50021; $h{"key$k"} .= chr(65 + $i % 26); push @a, "$k,$i," . ("z" x ($i % 40)); }
  my $big = join("", map { $h{$_} } sort keys %h);
  printf "%d %d %d\n", scalar(keys %h), length($big), ($big =~ tr/A//);
  print "$_\n" for @a;
' > data.txt
head -1 data.txt
tail -n +2 data.txt | sort -t, -k1,1n -k2,2nr -S 8M | perl -ne 'chomp; my @f = split /,/; $s{$f[0] % 97} += $f[1]; END { print "$_ $s{$_}\n" for sort { $a <=> $b } keys %s }' | sort -k2,2n | sha256sum
tail -n +2 data.txt | cut -d, -f1 | sort -n | uniq -c | sort -rn -k1,1 -k2,2n | head -20
tail -n +2 data.txt | perl -pe 's/(\d+),(\d+),(z*)/$2:$1:@{[length $3]}/' | sort -u -t: -k3,3n -k1,1n | tail -5
perl -MList::Util=sum,shuffle -e 'srand(42); my @x = map { [$_, "v" x ($_ % 300)] } 1..100000; my %idx = map { $_->[0] => $_ } @x; print sum(map { length $_->[1] } values %idx), "\n";'
"""


@pytest.mark.parametrize("via", ["preload", "cli"])
def test_perl_and_sort_pipelines(run_cmd, cli, lib, tmp_path, via):
    need("perl")
    outs = {}
    for mode in ("plain", "ref"):
        d = tmp_path / mode
        d.mkdir()
        argv = ["/bin/sh", "-c", PIPELINE]
        env = {"LC_ALL": "C"}
        if mode == "ref" and via == "cli":
            cp = run_cmd(
                [*cli, "run", "--", *argv],
                preload=False,
                env={**env, "REFMALLOC_LIB": lib},
                cwd=d,
            )
        else:
            cp = run_cmd(argv, preload=(mode == "ref"), env=env, cwd=d)
        assert cp.returncode == 0, describe(cp)
        outs[mode] = (cp.stdout, cp.stderr)
    assert outs["ref"] == outs["plain"]


# ---- Python (PYTHONMALLOC=malloc): json, re, threads ------------------------------

PY_WORKLOAD = r"""
import hashlib, json, re, threading, queue, zlib
docs = [{"id": i, "name": f"item-{i}", "tags": [f"t{j}" for j in range(i % 13)],
         "nested": {"v": [i * 0.5, str(i) * (i % 7)], "ok": i % 3 == 0}} for i in range(40000)]
blob = json.dumps(docs, sort_keys=True)
back = json.loads(blob)
assert back == docs
text = blob * 3
words = re.findall(r'"name": "item-(\d*7)"', text)
subbed = re.sub(r"t(\d)", lambda m: "T" + m.group(1) * 2, text[:2_000_000])
big = bytearray(64 << 20)
big[::4096] = b"x" * len(big[::4096])
results = queue.Queue()
def worker(k):
    h = hashlib.sha256()
    local = {}
    for i in range(20000):
        s = json.dumps({"k": k, "i": i, "p": [i] * (i % 17)})
        local[i % 997] = json.loads(s)
        if i % 1000 == 0:
            h.update(zlib.compress(s.encode() * 50))
        h.update(s.encode())
    results.put((k, h.hexdigest(), len(local)))
threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
out = sorted(results.get() for _ in threads)
print(len(blob), hashlib.sha256(blob.encode()).hexdigest())
print(len(words), hashlib.sha256(subbed.encode()).hexdigest(), big.count(b"x"))
for row in out:
    print(*row)
"""


def test_python_json_re_threads(run_cmd):
    same_as_plain(
        run_cmd,
        [sys.executable, "-c", PY_WORKLOAD],
        env={"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"},
        timeout=240,
    )


# ---- redis ---------------------------------------------------------------------------

REDIS_SCRIPT = """\
SET small hello
APPEND small -world
GET small
SETRANGE padded 3000000 end
STRLEN padded
GETRANGE padded 0 9
GETRANGE padded 2999995 3000005
BITCOUNT padded
RPUSH list a b c d e f g h i j k l m n o p
LRANGE list 2 8
SADD s1 a b c d e
SADD s2 d e f g
SUNIONSTORE u s1 s2
SORT u ALPHA
SINTERSTORE i s1 s2
SORT i ALPHA
HSET h f1 v1 f2 v2 f3 v3
HGETALL h
INCRBY counter 41
INCR counter
ZADD z 1 one 2 two 3 three 2.5 twohalf
ZRANGE z 0 -1 WITHSCORES
GET big
STRLEN big
GETRANGE big 1048570 1048600
DBSIZE
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_session(run_cmd, server_argv, env, tmp_path, tag):
    port = _free_port()
    d = tmp_path / tag
    d.mkdir()
    argv = [
        *server_argv,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(d),
        "--daemonize",
        "no",
        "--logfile",
        str(d / "redis.log"),
    ]
    server = subprocess.Popen(
        [str(a) for a in argv],
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        for _ in range(200):
            if run_cmd([*cli, "PING"], preload=False).stdout.strip() == "PONG":
                break
            assert server.poll() is None, f"redis-server exited {server.returncode}"
            time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer PING")
        big = ("0123456789abcdef" * 65537)[: 1 << 20 | 77]
        cp = run_cmd([*cli, "-x", "SET", "big"], preload=False, input=big)
        assert cp.stdout.strip() == "OK", describe(cp)
        cp = run_cmd(cli, preload=False, input=REDIS_SCRIPT)
        assert cp.returncode == 0, describe(cp)
        answers = cp.stdout
        bench = run_cmd(
            [
                "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q",
                "-n", "20000", "-c", "8", "-P", "8", "-r", "5000", "-d", "300",
                "-t", "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100,mset",
            ],
            preload=False,
            timeout=120,
        )
        assert bench.returncode == 0, describe(bench)
        big_bench = run_cmd(
            [
                "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q",
                "-n", "300", "-c", "4", "-d", "400000", "-t", "set,get",
            ],
            preload=False,
            timeout=120,
        )
        assert big_bench.returncode == 0, describe(big_bench)
        after = run_cmd([*cli, "STRLEN", "big"], preload=False).stdout
        info = run_cmd([*cli, "INFO", "server"], preload=False).stdout
        assert "redis_version" in info
        shut = run_cmd([*cli, "SHUTDOWN", "NOSAVE"], preload=False)
        del shut
        rc = server.wait(timeout=30)
        out, err = server.communicate()
        return answers, after, rc, out + err, bench.stdout + big_bench.stdout
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_redis_server_with_bounded_benchmark(run_cmd, cli, lib, tmp_path):
    need("redis-server")
    need("redis-benchmark")
    plain = _redis_session(run_cmd, ["redis-server"], {}, tmp_path, "plain")
    ref = _redis_session(
        run_cmd,
        [*cli, "run", "--report", tmp_path / "redis-report.json", "--", "redis-server"],
        {"REFMALLOC_LIB": lib},
        tmp_path,
        "ref",
    )
    assert plain[2] == 0, plain
    assert ref[2] == 0, f"redis-server under refmalloc exited {ref[2]}: {ref[3]}\n{ref[4]}"
    diff = "\n".join(difflib.unified_diff(plain[0].splitlines(), ref[0].splitlines(), lineterm=""))
    assert ref[0] == plain[0], f"answers differ (plain -> refmalloc):\n{diff[:4000]}"
    assert ref[1] == plain[1]
    assert "\\x00\\x00" in ref[0] or "\x00" in ref[0], ref[0]  # SETRANGE pads with zeros
    assert "refmalloc" not in ref[3], ref[3]
    assert re.search(r"SET: .*requests per second", ref[4]), ref[4]
    rep = load_report(tmp_path / "redis-report.json")
    assert rep["stats"]["large_allocs"] > 0, rep["stats"]


# ---- CPython's regression tests ------------------------------------------------------

REGRTESTS = [
    "test_bytes",
    "test_dict",
    "test_list",
    "test_json",
    "test_re",
    "test_mmap",
    "test_io",
    "test_set",
    "test_struct",
    "test_array",
    "test_unicode",
    "test_pickle",
]


def _python_with_test_package():
    cands = [sys.executable, "/usr/bin/python3.11", "/usr/bin/python3"]
    for exe in cands:
        if not Path(exe).exists():
            continue
        cp = subprocess.run(
            [exe, "-c", "import test.test_bytes, test.test_io, test.libregrtest"],
            capture_output=True,
        )
        if cp.returncode == 0:
            return exe
    pytest.fail(
        "no Python with CPython's test package (Debian: apt-get install "
        "libpython3.11-testsuite; .ci/run installs it)"
    )


def _regr_summary(stdout):
    """The per-test outcome lines and the totals, without timings."""
    keep = []
    for ln in stdout.splitlines():
        ln = re.sub(r"^\d+:\d+:\d+ (load avg: [\d.]+ )?", "", ln)
        ln = re.sub(r" \([^()]*\b(sec|ms)\)", "", ln)
        ln = re.sub(r" in \d+(\.\d+)? ?(sec|ms)", "", ln)
        if re.match(r"\[\s*\d+/\d+\]", ln):
            keep.append(re.sub(r"^\[\s*\d+/\d+\]\s*", "", ln))
        elif ln.startswith(("== Tests result", "Total tests", "Result:", "All ")):
            keep.append(ln)
    return sorted(keep)


def test_cpython_regression_tests_same_under_refmalloc(run_cmd, tmp_path):
    py = _python_with_test_package()
    argv = [py, "-m", "test", "-j2", *REGRTESTS]
    env = {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "TMPDIR": str(tmp_path)}
    plain = run_cmd(argv, preload=False, env=env, timeout=600, cwd=tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    ref = run_cmd(argv, env=env, timeout=600, cwd=tmp_path, options=f"report={reports}/%p.json")
    assert "Tests result" in plain.stdout, describe(plain)
    assert ref.returncode == plain.returncode, describe(ref)
    assert _regr_summary(ref.stdout) == _regr_summary(plain.stdout), describe(ref)
    assert "SUCCESS" in ref.stdout, describe(ref)
    # the main process and both workers (at least) ran under refmalloc
    reps = [load_report(p) for p in reports.iterdir()]
    assert len(reps) >= 3 and sum(r["stats"]["large_allocs"] for r in reps) > 0
