"""Mutation testing of the gateware: ``make mutate`` / ``python -m sim.flow.cli mutate``.

Each mutant of the catalogue (:mod:`sim.flow.mutants`) is one small, realistic bug in
``hdl/``. For every mutant the runner

1. copies the repository's working tree (tracked and untracked-but-not-ignored files,
   as they are on disk, so uncommitted edits count; never ``build/`` or ``.venv/``) to
   ``<workdir>/<id>/``, so the repository itself is never touched;
2. applies the mutation there (the original text must occur exactly once);
3. imports and elaborates the mutated file's components (``PROBES``): a mutant that
   no longer imports or elaborates is *unelaboratable* (counted as killed, reported
   apart);
4. runs ``python -m pytest -x -q -p no:cacheprovider <tests>`` in the copy (the
   copy's ``hdl/`` is first on the path; its Verilator models are built in the copy's
   own ``build/``) with a time limit: a failing test *kills* the mutant (the first
   failure is the killing test), all tests passing means it *survived*, the time limit
   means *timeout* (counted as killed: the tests noticed something).

Before any mutant, an unmutated copy must pass every selected test: a failing
baseline would "kill" every mutant, so the runner refuses to score. ``--full`` runs
``make test``'s selection (``-m "not regress"``) on the survivors, to tell "survives
its targeted tests" from "survives the whole suite".

A mutant the catalogue marks ``equivalent`` (with the written argument why it cannot
change any promised behaviour) runs like any other, as a check on the argument:
surviving, its result is ``equivalent``, reported apart and left out of the score;
killed, it counts as killed and the report flags the argument as wrong.

Results: a table (id, block, result, killing test, seconds), the score killed /
(total - equivalent) overall and per block, the equivalents with their arguments,
mean and max seconds per mutant, and ``build/mutate.json``.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from sim.flow.mutants import BLOCKS, MUTANTS, PROBES, Mutant

__all__ = ["CatalogueError", "Result", "check_catalogue", "needs_verilator", "select",
           "copy_tree", "apply_mutation", "probe", "run_mutant", "run_baseline",
           "summarize", "format_report", "main"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKDIR = pathlib.Path("/tmp/ncore-mutants")
#: Directories never copied: build products, the environment, VCS metadata.
SKIP_DIRS = ("build", ".venv", ".git")
#: Outcomes that count as killed.
KILLED = ("killed", "unelaboratable", "timeout")


class CatalogueError(ValueError):
    """The catalogue does not match the code (or is malformed); names the mutant."""


@dataclass
class Result:
    """What happened to one mutant. ``result`` is ``killed``, ``unelaboratable``,
    ``timeout``, ``survived``, ``equivalent`` (a survivor the catalogue marks
    equivalent: not scored) or ``error`` (the tool could not run the tests: not
    scored); ``full`` is the outcome of ``--full`` for a survivor."""
    id: str
    block: str
    result: str
    killer: str = ""
    seconds: float = 0.0
    detail: str = ""
    full: str = ""
    full_killer: str = ""
    tests: list = field(default_factory=list)

    @property
    def killed(self):
        return self.result in KILLED


# ---- the catalogue against the code ---------------------------------------------------------

def check_catalogue(mutants=MUTANTS, root=ROOT):
    """Check every entry against the working tree of ``root``; raise
    :class:`CatalogueError` naming the first bad mutant. Checks: unique ids, a known
    block, a file under ``hdl/`` with a probe, the original occurring exactly once, a
    replacement that differs, at least one test whose file exists."""
    seen = set()
    for mu in mutants:
        where = f"mutant {mu.id!r}"
        if mu.id in seen:
            raise CatalogueError(f"{where}: duplicate id")
        seen.add(mu.id)
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", mu.id):
            raise CatalogueError(f"{where}: ids are lower-case words joined by '-'")
        if mu.block not in BLOCKS:
            raise CatalogueError(f"{where}: unknown block {mu.block!r} (known: "
                                 f"{', '.join(BLOCKS)})")
        if not mu.file.startswith("hdl/"):
            raise CatalogueError(f"{where}: file {mu.file!r} is not under hdl/")
        if mu.file not in PROBES:
            raise CatalogueError(f"{where}: no elaboration probe for {mu.file} in "
                                 f"sim.flow.mutants.PROBES")
        path = root / mu.file
        if not path.is_file():
            raise CatalogueError(f"{where}: {mu.file} does not exist")
        count = path.read_text().count(mu.original)
        if count != 1:
            raise CatalogueError(
                f"{where}: its original text occurs {count} times in {mu.file}, not once "
                f"(the catalogue has drifted from the code; update the entry):\n"
                f"    {mu.original!r}")
        if mu.original == mu.replacement:
            raise CatalogueError(f"{where}: the replacement equals the original")
        if not mu.tests:
            raise CatalogueError(f"{where}: no tests")
        if not isinstance(mu.equivalent, str) or (
                mu.equivalent and len(mu.equivalent.split()) < 8):
            raise CatalogueError(f"{where}: 'equivalent' must be empty or the written "
                                 f"argument why the mutant cannot change behaviour")
        for t in mu.tests:
            test_file = t.split("::")[0]
            if not (root / test_file).is_file():
                raise CatalogueError(f"{where}: test file {test_file} does not exist")
    return True


def needs_verilator(mutant):
    """Whether the mutant's first (fastest) test is a Verilator testbench."""
    return mutant.tests[0].startswith("tests/test_rtl_")


def select(mutants=MUTANTS, only=None, blocks=None):
    """The mutants named by ``only`` (ids) and/or in ``blocks``, in catalogue order;
    an unknown id or block is an error (a typo must not run an empty selection)."""
    ids = {mu.id for mu in mutants}
    for i in only or ():
        if i not in ids:
            raise CatalogueError(f"no mutant {i!r} in the catalogue")
    for b in blocks or ():
        if b not in BLOCKS:
            raise CatalogueError(f"unknown block {b!r} (known: {', '.join(BLOCKS)})")
    return [mu for mu in mutants
            if (not only or mu.id in only) and (not blocks or mu.block in blocks)]


# ---- scratch copies ----------------------------------------------------------------------------

def _working_tree_files(root):
    """Tracked and untracked-but-not-ignored files of ``root`` that exist on disk,
    relative paths; ``build/``, ``.venv/`` and ``.git/`` never."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True).stdout.decode()
    files = []
    for rel in sorted(set(filter(None, out.split("\0")))):
        if rel.split("/")[0] in SKIP_DIRS:
            continue
        if (root / rel).is_file() or (root / rel).is_symlink():
            files.append(rel)
    return files


def copy_tree(dest, root=ROOT):
    """Copy the working tree of ``root`` to ``dest`` (replaced if it exists)."""
    dest = pathlib.Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    for rel in _working_tree_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target, follow_symlinks=False)
    return dest


def apply_mutation(copy, mutant: Mutant):
    """Apply ``mutant`` to the copy at ``copy`` (never to the repository itself)."""
    copy = pathlib.Path(copy).resolve()
    if copy == ROOT:
        raise ValueError("refusing to mutate the repository itself; pass a scratch copy")
    path = copy / mutant.file
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        raise CatalogueError(f"mutant {mutant.id!r}: its original text occurs {count} "
                             f"times in {mutant.file}, not once")
    path.write_text(text.replace(mutant.original, mutant.replacement))


# ---- running --------------------------------------------------------------------------------------

def _env(copy):
    """The environment of a run in ``copy``: its own build directory, its sources first
    on the path, ccache hits across copies (paths relative to the scratch root)."""
    env = dict(os.environ)
    env.pop("NCORE_BUILD", None)
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("CCACHE_BASEDIR", str(pathlib.Path(copy).parent))
    return env


def _run(cmd, cwd, env, timeout):
    """``(returncode or None on timeout, output)``; the whole process group (Verilator
    builds, simulators) is killed on timeout."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")


_PROBE = """
import sys
from amaranth.back import rtlil
from hdl.config import named_config
from hdl.dsp import target_named
cfg = named_config("4x4-fp")
cfg8 = named_config("4x4")
import hdl
if not hdl.__file__.startswith({copy!r}):
    sys.exit("probe imported hdl from " + hdl.__file__ + ", not the copy")
{code}
for obj in objs:
    target = None
    if isinstance(obj, tuple):
        obj, target = obj[0], target_named(obj[1])
    if hasattr(obj, "elaborate"):
        rtlil.convert(obj, platform=target)
"""


def probe(copy, file, timeout=300):
    """Import and elaborate the components of ``file`` in ``copy``: ``None`` if fine,
    else the last line of the error."""
    code = _PROBE.format(copy=str(copy), code=PROBES[file])
    rc, out = _run([sys.executable, "-c", code], copy, _env(copy), timeout)
    if rc == 0:
        return None
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {rc}"


def _pytest_cmd(tests, timeout, extra=()):
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
            f"--timeout={int(timeout)}", *extra, *tests]


def first_failure(output):
    """The node id of the first failing test in pytest's ``-ra`` summary (or the
    collection error)."""
    for line in output.splitlines():
        m = re.match(r"(FAILED|ERROR) (\S+)", line)
        if m:
            return m.group(2)
    return ""


def run_pytest(copy, tests, timeout, extra=()):
    """``(outcome, killer, detail)`` for ``tests`` in ``copy``."""
    rc, out = _run(_pytest_cmd(tests, timeout, extra), copy, _env(copy), timeout + 60)
    if rc is None:
        return "timeout", "", f"no result within {timeout} s"
    if rc == 0:
        return "survived", "", ""
    if rc in (1, 2):        # tests failed / collection failed
        return "killed", first_failure(out), ""
    tail = "\n".join(out.strip().splitlines()[-5:])
    return "error", "", f"pytest exit code {rc}: {tail}"


def run_mutant(mutant, workdir=WORKDIR, timeout=600, keep=False, full=False,
               full_timeout=1800, root=ROOT):
    """Copy, mutate, probe and test one mutant; returns its :class:`Result`."""
    t0 = time.monotonic()
    copy = pathlib.Path(workdir) / mutant.id
    res = Result(mutant.id, mutant.block, "error", tests=list(mutant.tests))
    try:
        copy_tree(copy, root)
        apply_mutation(copy, mutant)
        err = probe(copy, mutant.file)
        if err is not None:
            res.result, res.detail = "unelaboratable", err
        else:
            res.result, res.killer, res.detail = run_pytest(copy, mutant.tests, timeout)
        if full and res.result == "survived":
            outcome, killer, _ = run_pytest(
                copy, ["tests"], full_timeout, extra=("-n", "2", "-m", "not regress"))
            res.full, res.full_killer = outcome, killer
        if mutant.equivalent:
            if res.result == "survived" and res.full not in KILLED:
                res.result = "equivalent"
            elif res.killed or res.full in KILLED:
                res.detail = ("marked equivalent, yet a test kills it: the argument in "
                              "the catalogue is wrong")
    except Exception as e:      # noqa: BLE001 -- any failure of the tool itself is an error
        res.result, res.detail = "error", f"{type(e).__name__}: {e}"
    finally:
        res.seconds = round(time.monotonic() - t0, 1)
        if not keep and res.result != "error":
            shutil.rmtree(copy, ignore_errors=True)
    return res


def run_baseline(mutants, workdir=WORKDIR, timeout=3600, jobs=1, root=ROOT):
    """Run the union of the mutants' tests on an unmutated copy: ``(ok, message)``."""
    tests = list(dict.fromkeys(t for mu in mutants for t in mu.tests))
    copy = copy_tree(pathlib.Path(workdir) / "_baseline", root)
    extra = ("-n", str(jobs)) if jobs > 1 else ()
    t0 = time.monotonic()
    rc, out = _run(_pytest_cmd(tests, timeout, extra), copy, _env(copy), timeout + 60)
    secs = time.monotonic() - t0
    if rc == 0:
        shutil.rmtree(copy, ignore_errors=True)
        return True, f"baseline: {len(tests)} selections pass unmutated ({secs:.0f} s)"
    why = ("timed out" if rc is None else
           f"failed ({first_failure(out) or f'pytest exit code {rc}'})")
    tail = "\n".join(out.strip().splitlines()[-15:])
    return False, (f"baseline {why}: the unmutated copy ({copy}) does not pass the "
                   f"selected tests, so no mutant can be scored.\n{tail}")


# ---- report ---------------------------------------------------------------------------------------

def summarize(results):
    """Scores: killed / (total - equivalent) overall and per block (``error`` results
    are not scored; ``total`` counts the equivalents, ``score`` leaves them out),
    counts per outcome, mean and max seconds per mutant, the survivors and the
    equivalents."""
    scored = [r for r in results if r.result != "error"]
    blocks = {}
    for r in scored:
        b = blocks.setdefault(r.block, {"killed": 0, "total": 0, "equivalent": 0})
        b["total"] += 1
        b["killed"] += r.killed
        b["equivalent"] += r.result == "equivalent"
    secs = [r.seconds for r in results]
    outcomes = {}
    for r in results:
        outcomes[r.result] = outcomes.get(r.result, 0) + 1
    killed = sum(r.killed for r in scored)
    equivalent = [r.id for r in scored if r.result == "equivalent"]
    denom = len(scored) - len(equivalent)
    return {
        "killed": killed,
        "total": len(scored),
        "equivalent": len(equivalent),
        "score": killed / denom if denom else 0.0,
        "errors": len(results) - len(scored),
        "outcomes": outcomes,
        "blocks": dict(sorted(blocks.items())),
        "mean_seconds": round(sum(secs) / len(secs), 1) if secs else 0.0,
        "max_seconds": max(secs) if secs else 0.0,
        "total_seconds": round(sum(secs), 1),
        "survivors": [r.id for r in scored if not r.killed and r.result != "equivalent"],
        "equivalents": equivalent,
    }


def format_report(results, summary):
    """The table and the scores, as text."""
    lines = [f"{'mutant':34s} {'block':14s} {'result':15s} {'seconds':>7s}  killing test"]
    for r in results:
        what = " ".join(filter(None, (r.killer, r.detail)))
        if r.full:
            what = f"--full: {r.full} {r.full_killer}".strip()
        lines.append(f"{r.id:34s} {r.block:14s} {r.result:15s} {r.seconds:7.1f}  {what}")
    s = summary
    eq = s.get("equivalent", 0)
    lines += ["", f"killed {s['killed']}/{s['total'] - eq} ({s['score']:.0%})"
                  + (f"; {eq} equivalent (not scored: {s['total']} mutants - {eq})"
                     if eq else "")
                  + (f"; {s['errors']} not scored (tool errors)" if s["errors"] else ""),
              "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items())),
              f"time per mutant: mean {s['mean_seconds']:.1f} s, max {s['max_seconds']:.1f} s "
              f"(total {s['total_seconds']:.0f} s)", "", "per block:"]
    for b, c in s["blocks"].items():
        e = c.get("equivalent", 0)
        lines.append(f"  {b:14s} {c['killed']:3d}/{c['total'] - e:<3d}"
                     + (f"  (+{e} equivalent)" if e else ""))
    if s["survivors"]:
        lines += ["", "survivors: " + ", ".join(s["survivors"])]
    why = {mu.id: mu.equivalent for mu in MUTANTS}
    for i in s.get("equivalents", []):
        lines += ["", f"equivalent: {i}: {why.get(i, '')}"]
    return "\n".join(lines)


# ---- command line -----------------------------------------------------------------------------------

def add_arguments(p):
    """The options of ``mutate`` (shared by ``python -m sim.flow.cli mutate``)."""
    p.add_argument("--only", action="append", default=[],
                   help="mutant ids, comma-separated (repeatable)")
    p.add_argument("--block", action="append", default=[],
                   help="run the mutants of these blocks (repeatable; comma-separated)")
    p.add_argument("--jobs", type=int, default=1, help="mutants in parallel (default 1)")
    p.add_argument("--timeout", type=int, default=600,
                   help="seconds per mutant's targeted tests (default %(default)s)")
    p.add_argument("--full", action="store_true",
                   help="run make test's selection (-m 'not regress', -n 2) on survivors")
    p.add_argument("--workdir", default=str(WORKDIR),
                   help="scratch directory for the copies (default %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep each mutant's copy")
    p.add_argument("--json", default=str(ROOT / "build" / "mutate.json"),
                   help="where to write the results (default %(default)s)")
    p.add_argument("--list", action="store_true", help="list the catalogue and exit")


def run(args):
    split = lambda values: [v for item in values for v in item.split(",") if v]  # noqa: E731
    try:
        check_catalogue()
        mutants = select(only=split(args.only), blocks=split(args.block))
    except CatalogueError as e:
        print(f"mutate: {e}", file=sys.stderr)
        return 2
    if args.list:
        for mu in mutants:
            print(f"{mu.id:34s} {mu.block:14s} {mu.file:28s} {mu.description}"
                  + (" [equivalent]" if mu.equivalent else ""))
        print(f"{len(mutants)} mutants")
        return 0
    if args.jobs < 1:
        print("mutate: --jobs must be at least 1", file=sys.stderr)
        return 2
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{len(mutants)} mutants; baseline first (unmutated copy in {workdir})",
          flush=True)
    ok, message = run_baseline(mutants, workdir, jobs=args.jobs)
    print(message, flush=True)
    if not ok:
        return 3

    def one(mu):
        r = run_mutant(mu, workdir, timeout=args.timeout, keep=args.keep, full=args.full)
        print(f"  {r.id:34s} {r.result:15s} {r.seconds:7.1f} s  "
              f"{' '.join(filter(None, (r.killer, r.detail)))}",
              flush=True)
        return r

    # mutants whose first test is an Amaranth or golden test run first, the ones that
    # need a Verilator model build after them; the report keeps catalogue order
    order = sorted(mutants, key=needs_verilator)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = {r.id: r for r in pool.map(one, order)}
    results = [done[mu.id] for mu in mutants]
    summary = summarize(results)
    print()
    print(format_report(results, summary))
    out = pathlib.Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary,
                               "mutants": [asdict(r) for r in results]}, indent=1) + "\n")
    print(f"\nwritten to {out}")
    return 1 if summary["errors"] else 0


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="python -m sim.flow.mutate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
