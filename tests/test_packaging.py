"""A non-editable install carries every sub-package and data file.

The editable install the Makefile makes finds modules in the work tree, so a package
or data file missing from ``pyproject.toml`` would go unnoticed there. This test builds
the wheel from a copy of the sources (so nothing is written into the work tree's
``build/``), unpacks it, and imports every module from the unpacked copy alone.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("hdl", "sim", "tb")
#: Files that are not Python but that the flow reads at run time.
DATA = ("hdl/verilator.vlt", "sim/flow/fast_public.vlt", "tb/models/MULT18X18D.v")


def _sources(root):
    """Every module and data file of the three packages in the work tree."""
    files = set()
    for pkg in PACKAGES:
        for f in (root / pkg).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".vlt", ".v"):
                files.add(f.relative_to(root).as_posix())
    return files


def test_wheel_has_every_module_and_imports_alone(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                          str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    wheels = list(dist.glob("ncore-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as z:
        names = {n for n in z.namelist() if not n.startswith("ncore-")}
        missing = _sources(ROOT) - names
        assert not missing, f"not in the wheel: {sorted(missing)}"
        assert set(DATA) <= names
        site = tmp_path / "site"
        z.extractall(site)
    modules = sorted(f[:-3].replace("/", ".").removesuffix(".__init__")
                     for f in names if f.endswith(".py"))
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "    assert sys.modules[m].__file__.startswith(sys.argv[1]), m\n")
    res = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(site)},
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
