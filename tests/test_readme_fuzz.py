"""The README's fuzz replay commands, run as written (issue 15 item 14): the replay line
used to preload the bare name ``librefmalloc.so``, which the dynamic loader does not find,
so the fuzzer stopped at once with "not running under refmalloc"."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from rmhelpers import REPO, clean_env


def readme_fuzz_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("A failing fuzz sequence can be replayed outside pytest", 1)[1]
    block = re.search(r"\n\n((?:    .*\n)+)", section)
    assert block is not None, "no indented command block after the fuzz replay sentence"
    return [line[4:] for line in block.group(1).splitlines()]


def test_readme_fuzz_replay_lines_work(lib: str, tmp_path: Path) -> None:
    commands = readme_fuzz_commands()
    assert len(commands) == 3 and commands[0].startswith("gcc "), commands
    # A checkout as the commands expect it, in a scratch directory: the sources, and
    # build/librefmalloc.so (the library under test).
    for name in ("allocator", "tests"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "librefmalloc.so").symlink_to(lib)
    outputs = []
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env={**clean_env(), "PWD": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "cannot be preloaded" not in done.stderr, done.stderr
        outputs.append(done.stdout)
    assert os.path.getsize(tmp_path / "ops.txt") > 0
    # The replay of the recorded run does what the run did, step for step.
    assert outputs[1].startswith("OK fuzz steps=200 "), outputs
    assert outputs[2] == outputs[1]
