"""refmalloc check on the corpus in tests/check_corpus/: exact verdicts, and --locate
naming the function that allocated the block, for programs built with -g."""

from __future__ import annotations

from pathlib import Path

import pytest
from check_corpus.corpus import CORPUS, command

from pyalloc.check import CheckConfig, run_check

#: program -> (verdict, --locate function or None)
VERDICTS = {
    "dirty_small.c": (1, "alloc_counter"),
    "dirty_large.c": (1, "alloc_image"),
    "dirty_realloc.c": (1, "grow"),
    "dirty_aligned.c": (1, "alloc_vector"),
    "dirty_exit.c": (1, "parse_options"),
    "dirty_thread.c": (1, "alloc_work"),
    "dirty_cxx.cpp": (1, "make_widget()"),
    "dirty_numpy.py": (1, None),
    "dirty_bytes.py": (1, None),
    "clean_calloc.c": (0, None),
    "clean_written.c": (0, None),
    "clean_libc.c": (0, None),
    "clean_forkexec.c": (0, None),
    "clean_cxx.cpp": (0, None),
    "clean_numpy.py": (0, None),
    "random_lines.c": (0, None),
    "random_only.py": (3, None),
    # Fully written before free: only --free-pattern sees the use after free.
    "dirty_free.c": (0, None),
    # A large block read after free; same outcome under both free patterns. The
    # compiler drops the memset before free(), so the page read was never written:
    # the read tracker sees it (issue 13).
    "dirty_free_large.c": (1, None),
    # A NULL test on a never-set pointer: only the zero pattern changes it (issue 13).
    "dirty_zero.c": (1, None),
}
#: Not found by 0xaa against 0x55: the read tracker sees it.
READS_ONLY = {"dirty_free_large.c"}


def test_every_corpus_program_has_a_verdict():
    sources = {p.name for p in CORPUS.iterdir() if p.suffix in (".c", ".cpp", ".py")}
    sources.discard("corpus.py")
    # reads_* and clean_reads_*: tests/test_reads.py.
    tracked = {s for s in sources if s.startswith(("reads_", "clean_reads_"))}
    assert sources == set(VERDICTS) | {"dirty_padding.c"} | tracked


@pytest.fixture(scope="module")
def bindir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("check-corpus")


@pytest.mark.parametrize("source", sorted(VERDICTS))
def test_verdict(source, lib, bindir):
    verdict, function = VERDICTS[source]
    locate = function is not None
    result = run_check(CheckConfig(argv=command(source, bindir), lib=lib, locate=locate))
    kinds = [c.kind for c in result.comparisons if c.differences]
    assert result.verdict == verdict, (result.verdict, kinds)
    if verdict == 1 and source in READS_ONLY:
        # 0xaa and 0x55 agree; the tracker sees the read (and the zero pattern,
        # under which the test of the byte flips, confirms it).
        assert not result.comparisons[0].differences
        assert result.reads is not None and result.reads.findings
    elif verdict == 1:
        assert set(kinds) == {"uninitialized"}
        # 0xaa against 0x55, and 0xaa against 0x00 (run R1, confirmed by Z2).
        zero = result.comparisons[-1]
        assert zero.patterns == (0xAA, 0)
        found = [c for c in result.comparisons if c.differences]
        assert all(c.confirmed for c in found)
        if source == "dirty_zero.c":
            assert found == [zero] and "Z2" in [r.spec.label for r in result.runs]
    if locate:
        assert result.locate is not None
        names = [s.function for s in result.locate.sites]
        assert names == [function], (names, result.locate.note)
        site = result.locate.sites[0]
        assert site.file is not None and site.file.endswith(source)
        assert site.line is not None
        # O(log sites): a handful of runs for a handful of sites.
        assert result.locate.runs <= 2 * max(1, result.locate.sites_total).bit_length() + 1


def test_struct_padding_written_to_an_output_file(lib, bindir, tmp_path):
    out = tmp_path / "record.bin"
    argv = [*command("dirty_padding.c", bindir), str(out)]
    result = run_check(
        CheckConfig(argv=argv, lib=lib, outputs=[str(out)], locate=True, cwd=str(tmp_path))
    )
    assert result.verdict == 1
    diffs = result.comparisons[0].differences
    assert [d.name for d in diffs] == [str(out)]
    diff = diffs[0].difference
    assert diff is not None
    assert diff.offset == 1 and diff.pattern_match == "raw"
    assert diff.bytes_ == b"\xaa" * 7 and diff.other_bytes == b"\x55" * 7
    assert result.locate is not None
    assert [s.function for s in result.locate.sites] == ["new_record"]


def test_output_directory_compares_every_file(lib, bindir, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    argv = [*command("dirty_padding.c", bindir), "out/record.bin"]
    result = run_check(CheckConfig(argv=argv, lib=lib, outputs=["out"], cwd=str(tmp_path)))
    assert result.verdict == 1
    assert [d.name for d in result.comparisons[0].differences] == ["out/record.bin"]


def test_free_pattern_reports_use_after_free_as_its_own_finding(lib, bindir):
    result = run_check(
        CheckConfig(argv=command("dirty_free.c", bindir), lib=lib, free_pattern=True)
    )
    assert result.verdict == 1
    uninit, uaf, _zero = result.comparisons
    assert uninit.kind == "uninitialized" and not uninit.differences
    assert uaf.kind == "use-after-free" and [d.name for d in uaf.differences] == ["stdout"]
    diff = uaf.differences[0].difference
    assert diff is not None and diff.pattern_match == "raw"


def test_free_pattern_reports_a_read_of_a_freed_large_block(lib, bindir):
    """The read's outcome is the same under 0xdd and 0x22: only the free_guard=1
    runs (where it faults) show it."""
    result = run_check(
        CheckConfig(argv=command("dirty_free_large.c", bindir), lib=lib, free_pattern=True)
    )
    assert result.verdict == 1
    uninit, uaf, _zero = result.comparisons
    assert not uninit.differences
    assert uaf.kind == "use-after-free" and "exit status" in [d.name for d in uaf.differences]
    assert uaf.confirmed


def test_free_pattern_leaves_clean_programs_clean(lib, bindir):
    result = run_check(
        CheckConfig(argv=command("clean_libc.c", bindir), lib=lib, free_pattern=True)
    )
    assert result.verdict == 0
    # The tracked run R1 (first: the longest), A1, B1, A2, F1.
    assert [r.spec.label for r in result.runs] == ["R1", "A1", "B1", "A2", "F1"]


def test_exit_status_difference_is_reported(lib, bindir):
    result = run_check(CheckConfig(argv=command("dirty_exit.c", bindir), lib=lib))
    assert [d.name for d in result.comparisons[0].differences] == ["exit status"]
    texts = {r.spec.label: r.status.describe() for r in result.runs}
    assert texts["A1"] == "exit 0" and texts["B1"] == "exit 4"
