"""Smoke tests: ordinary dynamically linked programs run under refmalloc with
the same output as without it (start-up without dlsym recursion, stdio,
locale, threads, exec)."""

import sys

import pytest
from rmhelpers import describe

PY = sys.executable

CASES = {
    "sort": (["sort"], "\n".join(str((i * 7919) % 100003) for i in range(200000)) + "\n", {}),
    "python-json": (
        [
            PY,
            "-c",
            "import json,hashlib\n"
            "d={str(i):[i]*((i%50)+1) for i in range(20000)}\n"
            "s=json.dumps(d)\n"
            "big=bytearray(50<<20)\n"
            "print(len(s), hashlib.sha256(s.encode()).hexdigest(), sum(big))",
        ],
        None,
        {"PYTHONMALLOC": "malloc"},
    ),
    "python-threads": (
        [
            PY,
            "-c",
            "import threading\n"
            "out=[]\n"
            "def w(k): out.append(sum(len(bytes(1000+i)) for i in range(3000)))\n"
            "ts=[threading.Thread(target=w,args=(k,)) for k in range(6)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print(sorted(out))",
        ],
        None,
        {"PYTHONMALLOC": "malloc"},
    ),
    "sh-pipeline": (
        ["/bin/sh", "-c", "seq 1 100000 | tr 0-9 a-j | sort -r | head -3 | cat"],
        None,
        {},
    ),
    "grep": (["grep", "-c", "9", "-"], "\n".join(map(str, range(300000))), {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_program_same_output_as_without_refmalloc(run_prog, name):
    argv, stdin, env = CASES[name]
    plain = run_prog(argv[0], argv[1:], env=env, preload=False, input=stdin)
    assert plain.returncode == 0, describe(plain)
    ref = run_prog(argv[0], argv[1:], env=env, input=stdin)
    assert ref.returncode == 0, describe(ref)
    assert ref.stdout == plain.stdout
    assert ref.stderr == plain.stderr


def test_python_runs_under_refmalloc_with_report(run_prog, tmp_path):
    """Python with PYTHONMALLOC=malloc really allocates through refmalloc."""
    path = tmp_path / "py.json"
    cp = run_prog(
        PY,
        ["-c", "b=[bytearray(1<<20) for _ in range(20)]; print(len(b))"],
        env={"PYTHONMALLOC": "malloc"},
        options=f"report={path}",
    )
    assert cp.returncode == 0 and cp.stdout == "20\n", describe(cp)
    import json

    rep = json.loads(path.read_text())
    assert (
        rep["stats"]["small_allocs"] > 1000
        and rep["stats"]["zero_allocs"] + rep["stats"]["large_allocs"] >= 20
    ), rep["stats"]
