"""The mutation-testing tool (``sim/flow/mutate.py``) and its catalogue
(``sim/flow/mutants.py``), without running any mutant's tests: the catalogue matches
the current ``hdl/`` files, mutations land only in scratch copies, and the report's
arithmetic is right."""

import hashlib
import pathlib
import subprocess

import pytest

from sim.flow import mutate
from sim.flow.mutants import BLOCKS, MUTANTS, PROBES, Mutant
from sim.flow.mutate import (CatalogueError, Result, apply_mutation, check_catalogue,
                             copy_tree, first_failure, needs_verilator, select, summarize)

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: The five mutants the verification lead planted (issue 21).
PLANTED = ("te-done-before-psum-accepts", "sem-lost-increment", "vec-relu-nan",
           "dma-error-last", "te-psum-range-off-by-one")


@pytest.mark.parametrize("mu", MUTANTS, ids=[mu.id for mu in MUTANTS])
def test_each_original_occurs_once(mu):
    # read fresh: other engineers edit hdl/ while the catalogue stays put
    text = (ROOT / mu.file).read_text()
    assert text.count(mu.original) == 1, (
        f"{mu.id}: update the catalogue entry, its original no longer matches {mu.file}")
    assert mu.replacement != mu.original


def test_catalogue_checks_pass():
    assert check_catalogue()


def test_size_blocks_and_planted():
    assert len(MUTANTS) >= 40
    assert {mu.block for mu in MUTANTS} == set(BLOCKS)
    assert set(PLANTED) <= {mu.id for mu in MUTANTS}
    # every gateware file a mutant touches can be probed
    assert {mu.file for mu in MUTANTS} <= set(PROBES)
    # each mutant names its tests fastest first: no Amaranth test after a Verilator one
    for mu in MUTANTS:
        rtl = [t.startswith("tests/test_rtl_") for t in mu.tests]
        assert rtl == sorted(rtl), f"{mu.id}: a fast test follows a Verilator one"


def _fake(original, **kw):
    fields = dict(id="fake-mutant", block="fifo", file="hdl/fifo.py", original=original,
                  replacement="X", description="test", tests=("tests/test_fifo_amaranth.py",))
    fields.update(kw)
    return Mutant(**fields)


def test_drift_is_an_error_naming_the_mutant():
    with pytest.raises(CatalogueError, match=r"mutant 'fake-mutant': its original text "
                                             r"occurs 0 times in hdl/fifo\.py, not once"):
        check_catalogue([_fake("this text is not in the file")])
    with pytest.raises(CatalogueError, match=r"occurs [2-9]\d* times"):
        check_catalogue([_fake("m.d.comb")])
    with pytest.raises(CatalogueError, match="unknown block 'gpu'"):
        check_catalogue([_fake("x", block="gpu")])
    with pytest.raises(CatalogueError, match="test file tests/test_nope.py does not exist"):
        check_catalogue([_fake(MUTANTS[3].original, file=MUTANTS[3].file,
                               tests=("tests/test_nope.py::test_x",))])
    with pytest.raises(CatalogueError, match="duplicate id"):
        check_catalogue([MUTANTS[0], MUTANTS[0]])


def test_select():
    assert [mu.id for mu in select(only=["dma-error-last"])] == ["dma-error-last"]
    assert {mu.block for mu in select(blocks=["fp", "dsp"])} == {"fp", "dsp"}
    with pytest.raises(CatalogueError, match="no mutant 'nope'"):
        select(only=["nope"])
    with pytest.raises(CatalogueError, match="unknown block 'nope'"):
        select(blocks=["nope"])
    assert needs_verilator(select(only=["dma-error-last"])[0])
    assert not needs_verilator(select(only=["sem-lost-increment"])[0])


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mutation_lands_in_the_copy_only(tmp_path):
    mu = select(only=["sem-lost-increment"])[0]
    before = _digest(ROOT / mu.file)
    copy = copy_tree(tmp_path / mu.id)
    assert (copy / mu.file).read_text() == (ROOT / mu.file).read_text()
    assert not (copy / "build").exists() and not (copy / ".venv").exists()
    assert (copy / "tests" / "test_mutate.py").is_file()
    apply_mutation(copy, mu)
    text = (copy / mu.file).read_text()
    assert mu.replacement in text and mu.original not in text
    assert _digest(ROOT / mu.file) == before
    with pytest.raises(ValueError, match="refusing to mutate the repository itself"):
        apply_mutation(ROOT, mu)
    assert _digest(ROOT / mu.file) == before


def test_copy_takes_the_working_tree(tmp_path):
    repo = tmp_path / "repo"
    (repo / "hdl").mkdir(parents=True)
    (repo / "build").mkdir()

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    (repo / ".gitignore").write_text("build/\n*.log\n")
    (repo / "hdl" / "a.py").write_text("committed\n")
    (repo / "hdl" / "gone.py").write_text("deleted later\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    (repo / "hdl" / "a.py").write_text("edited, not committed\n")
    (repo / "hdl" / "gone.py").unlink()
    (repo / "hdl" / "new.py").write_text("untracked\n")
    (repo / "hdl" / "x.log").write_text("ignored\n")
    (repo / "build" / "model.so").write_text("build product\n")
    copy = copy_tree(tmp_path / "copy", root=repo)
    files = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert files == [".gitignore", "hdl/a.py", "hdl/new.py"]
    assert (copy / "hdl" / "a.py").read_text() == "edited, not committed\n"


def test_probe_tells_unelaboratable_mutants(tmp_path):
    copy = copy_tree(tmp_path / "copy")
    assert mutate.probe(copy, "hdl/regmap.py") is None
    apply_mutation(copy, select(only=["regmap-ftz-overlaps"])[0])
    assert "overlaps another field" in mutate.probe(copy, "hdl/regmap.py")


def test_first_failure():
    out = ("....F\n=== short test summary info ===\n"
           "FAILED tests/test_a.py::test_x[1-2] - AssertionError: 3 != 4\n"
           "FAILED tests/test_a.py::test_y\n1 failed, 4 passed in 1.00s\n")
    assert first_failure(out) == "tests/test_a.py::test_x[1-2]"
    assert first_failure("ERROR tests/test_b.py - ImportError\n") == "tests/test_b.py"
    assert first_failure("5 passed\n") == ""


def test_summary_arithmetic():
    results = [
        Result("a", "fifo", "killed", seconds=2.0),
        Result("b", "fifo", "survived", seconds=4.0),
        Result("c", "dma", "unelaboratable", seconds=1.0),
        Result("d", "dma", "timeout", seconds=10.0),
        Result("e", "dma", "error", seconds=3.0),
    ]
    s = summarize(results)
    assert (s["killed"], s["total"], s["errors"]) == (3, 4, 1)
    assert s["score"] == 0.75
    assert s["blocks"] == {"dma": {"killed": 2, "total": 2, "equivalent": 0},
                           "fifo": {"killed": 1, "total": 2, "equivalent": 0}}
    assert s["outcomes"] == {"killed": 1, "survived": 1, "unelaboratable": 1,
                             "timeout": 1, "error": 1}
    assert (s["mean_seconds"], s["max_seconds"], s["total_seconds"]) == (4.0, 10.0, 20.0)
    assert s["survivors"] == ["b"]
    text = mutate.format_report(results, s)
    assert "killed 3/4 (75%); 1 not scored" in text
    assert "mean 4.0 s, max 10.0 s" in text
    assert summarize([])["total"] == 0


def test_equivalents_are_argued_and_left_out_of_the_score():
    eq = [mu for mu in MUTANTS if mu.equivalent]
    assert {mu.id for mu in eq} >= {"psum-int-add-on-fp", "systolic-credit-off-by-one",
                                    "vu-narrow-fp16-subnormal-bound"}
    for mu in eq:
        assert len(mu.equivalent.split()) >= 8, f"{mu.id}: argue the equivalence"
    with pytest.raises(CatalogueError, match="'equivalent' must be empty or the written"):
        check_catalogue([_fake(MUTANTS[3].original, file=MUTANTS[3].file,
                               equivalent="trust me")])
    results = [
        Result("a", "fifo", "killed", seconds=1.0),
        Result("b", "fifo", "survived", seconds=1.0),
        Result("psum-int-add-on-fp", "psum", "equivalent", seconds=1.0),
        Result("d", "psum", "killed", seconds=1.0),
    ]
    s = summarize(results)
    assert (s["killed"], s["total"], s["equivalent"]) == (2, 4, 1)
    assert s["score"] == 2 / 3
    assert s["survivors"] == ["b"] and s["equivalents"] == ["psum-int-add-on-fp"]
    assert s["blocks"]["psum"] == {"killed": 1, "total": 2, "equivalent": 1}
    text = mutate.format_report(results, s)
    assert "killed 2/3 (67%); 1 equivalent" in text
    assert "equivalent: psum-int-add-on-fp: With float types" in text


def test_equivalent_mutant_outcomes(tmp_path, monkeypatch):
    """A marked mutant that survives is ``equivalent``; one that a test kills stays
    ``killed`` and is flagged (its argument is wrong)."""
    mu = select(only=["psum-int-add-on-fp"])[0]
    monkeypatch.setattr(mutate, "copy_tree", lambda dest, root: dest)
    monkeypatch.setattr(mutate, "apply_mutation", lambda copy, m: None)
    monkeypatch.setattr(mutate, "probe", lambda copy, file: None)
    for outcome, want in (("survived", "equivalent"), ("killed", "killed")):
        monkeypatch.setattr(mutate, "run_pytest",
                            lambda *a, o=outcome, **k: (o, "t::x" if o == "killed" else "", ""))
        r = mutate.run_mutant(mu, workdir=tmp_path, keep=True)
        assert r.result == want
        assert ("argument in the catalogue is wrong" in r.detail) == (want == "killed")
