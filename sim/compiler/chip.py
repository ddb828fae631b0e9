"""Compiling and running a net on a chip of several cores (``docs/chip.md``).

Two ways to use ``cores`` cores:

* **data parallel** (:func:`compile_data_parallel`): every core runs the whole net on its
  share of the batch (shares differ by at most one input). Each share is compiled by
  :func:`sim.compiler.lower.compile_net` and placed in its own DRAM region (its DMA
  addresses moved there, :func:`sim.isa.chipgen.relocate`); the cores share nothing
  but the DRAM port.
* **pipelined** (:func:`sim.compiler.pipeline.compile_pipeline`): each core one stage.

:func:`run_chip_compiled` runs either on the golden chip model
(:func:`sim.model.iss.run_chip`) or on the chip's RTL (Verilator, ``chip_sim<n>``),
starting every core together (the chip's START register).
"""

from __future__ import annotations

import json
import pathlib
import tempfile
from dataclasses import dataclass, field

import numpy as np

from hdl.chipmap import MAX_CORES, PeerAperture
from hdl.config import named_config
from hdl.isa import INSTR_BYTES

from sim.compiler.lower import CompileError, compile_net
from sim.isa.chipgen import relocate

__all__ = ["ChipCompiled", "ChipRun", "compile_data_parallel", "run_chip_compiled",
           "check_cores_for"]

#: Alignment of each core's DRAM region.
REGION_ALIGN = 4096


def check_cores_for(cfg, cores):
    """``CompileError`` unless ``cores`` is 1..8 and ``cfg`` can be a chip."""
    if isinstance(cores, bool) or not isinstance(cores, int) or not 1 <= cores <= MAX_CORES:
        raise CompileError(f"cores must be an integer from 1 to {MAX_CORES}, not {cores!r}")
    try:
        PeerAperture(cfg)
    except ValueError as e:
        raise CompileError(str(e)) from None


@dataclass
class ChipCompiled:
    """A net compiled for a chip: one program per core in one DRAM image.

    ``programs[k]``: core ``k``'s instructions (``None``: idle), at ``prog_addrs[k]``.
    :meth:`image_for` puts an input batch in place; :meth:`output` reads the outputs
    back. ``macs``: multiply-accumulates of the whole batch.
    """
    config: object
    cores: int
    mode: str
    batch: int
    image: np.ndarray
    programs: list
    prog_addrs: list
    macs: int
    input_bits: object                 # callable x -> per-part raw inputs
    place_input: object                # callable (image, bits) -> None
    output: object                     # callable dram -> batch x N_out FP32
    written: list = field(default_factory=list)      # [(addr, nbytes)] the program writes
    notes: list = field(default_factory=list)
    stages: list = field(default_factory=list)        # pipeline: layers of each core
    nb: int = 0                                       # pipeline: inputs per micro-batch
    plans: list = field(default_factory=list)         # pipeline: each core's SBUF layout
    weight_ranges: list = field(default_factory=list)  # [(lo, hi)] DRAM of weights, biases

    @property
    def size(self):
        return self.image.size

    def image_for(self, x):
        img = self.image.copy()
        self.place_input(img, self.input_bits(x))
        return img

    def races(self):
        """The chip race checker's report of the programs (an empty list: race-free)."""
        from sim.isa.races import find_chip_races
        progs = [p or [] for p in self.programs]
        addrs = [a or 0 for a in self.prog_addrs]
        return find_chip_races(self.config, progs, addrs)


def _shares(batch, cores):
    base, extra = divmod(batch, cores)
    return [base + (k < extra) for k in range(cores)]


def compile_data_parallel(net, config="default", *, batch, cores, dtype=None,
                          check=False, dram_bytes=None, **kwargs) -> ChipCompiled:
    """Every core the whole net on its share of the batch (``kwargs``: for
    :func:`~sim.compiler.lower.compile_net`)."""
    cfg = named_config(config)
    check_cores_for(cfg, cores)
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise CompileError(f"batch must be a positive integer, not {batch!r}")
    parts = []
    base = 0
    for share in _shares(int(batch), cores):
        if share == 0:
            parts.append((None, None))
            continue
        c = compile_net(net, cfg, batch=share, dtype=dtype, check=check, **kwargs)
        parts.append((c, base))
        base = -(-(base + c.size) // REGION_ALIGN) * REGION_ALIGN
    if dram_bytes is not None and base > dram_bytes:
        raise CompileError(f"the data-parallel image needs {base} bytes of DRAM, the "
                           f"device has {dram_bytes}")
    if base >= PeerAperture(cfg).base:
        raise CompileError(f"the data-parallel image ({base} bytes) reaches the peer "
                           f"aperture at {PeerAperture(cfg).base:#x}")
    image = np.zeros(base, np.uint8)
    programs, addrs, written = [], [], []
    for c, b in parts:
        if c is None:
            programs.append(None)
            addrs.append(None)
            continue
        image[b:b + c.size] = c.image
        moved = relocate(cfg, c.program.instructions, b)
        code = b"".join(i.encode().to_bytes(INSTR_BYTES, "little") for i in moved)
        image[b + c.prog_addr:b + c.prog_addr + len(code)] = np.frombuffer(code, np.uint8)
        programs.append(moved)
        addrs.append(b + c.prog_addr)
        written += [(b + a, n) for a, n in c.written_ranges()]
    shares = _shares(int(batch), cores)

    def input_bits(x):
        x = np.asarray(x, dtype=np.float32)
        if x.shape[0] != batch:
            raise ValueError(f"the input has {x.shape[0]} rows, the batch is {batch}")
        out, r = [], 0
        for (c, _), s in zip(parts, shares):
            out.append(None if c is None else c.input_bits(x[r:r + s]))
            r += s
        return out

    def place_input(img, bits):
        for (c, b), part in zip(parts, bits):
            if c is not None:
                raw = np.ascontiguousarray(part).view(np.uint8).reshape(-1)
                img[b + c.input_addr:b + c.input_addr + raw.size] = raw

    def output(dram):
        ys = [c.output(np.asarray(dram[b:b + c.size])) for c, b in parts if c is not None]
        return np.concatenate(ys, axis=0)

    macs = sum(c.macs for c, _ in parts if c is not None)
    # compile_net places the weights and biases first, below the input
    weights = [(b, b + c.input_addr) for c, b in parts if c is not None]
    return ChipCompiled(cfg, cores, "data", int(batch), image, programs, addrs, macs,
                        input_bits, place_input, output, written,
                        notes=list(parts[0][0].notes), weight_ranges=weights)


@dataclass
class ChipRun:
    """What a chip run gives: per core ``results`` (dicts of the core's STATUS, error,
    counters, as :func:`sim.compiler.driver.decode_result`; golden: done, error and
    instruction counts only), ``cycles`` (the longest core's CYCLES: the cores start
    together) and the DRAM image after the run."""
    backend: str
    results: list
    dram: np.ndarray
    wall_s: float | None = None

    @property
    def cycles(self):
        c = [r.get("cycles") for r in self.results if r is not None]
        return max(c) if c and None not in c else None

    def check(self):
        for k, r in enumerate(self.results):
            if r is not None and (r["error"] != "NONE" or not r["done"]):
                from sim.compiler.runtime import CoreFault
                raise CoreFault(f"core {k} stopped with {r['error']} {r.get('detail', '')} "
                                f"at {r.get('fault_addr')}")
        return self


def run_chip_compiled(cc: ChipCompiled, x, *, backend="golden", watchdog=200_000,
                      max_cycles=None):
    """Run ``cc`` on input batch ``x``; returns ``(y, ChipRun)`` (checked: a core error
    raises :class:`~sim.compiler.runtime.CoreFault`)."""
    img = cc.image_for(x)
    if backend == "golden":
        from sim.model.iss import run_chip
        res = run_chip(cc.config, img, cc.prog_addrs)
        results = []
        for k, r in enumerate(res.cores):
            if cc.prog_addrs[k] is None:
                results.append(None)
                continue
            macs = sum(i.cmd.k * i.cmd.m * i.cmd.n for i in cc.programs[k]
                       if i.op == "MATMUL")
            results.append({"done": r.done, "error": r.error, "detail": r.detail,
                            "fault_addr": r.fault_addr, "instructions": len(r.executed),
                            "tensor_macs": macs})
        run = ChipRun("golden", results, res.dram).check()
    elif backend == "verilator":
        run = _run_verilator(cc, img, watchdog, max_cycles).check()
    else:
        raise ValueError(f"a chip runs on the golden or verilator backend, not {backend!r}")
    return cc.output(run.dram), run


def _run_verilator(cc, img, watchdog, max_cycles):
    from sim.flow.rtl import CHIP_SIM_TOPS
    from sim.flow.runner import run_cocotb
    if max_cycles is None:
        max_cycles = 2_000_000 + 200 * img.size
    with tempfile.TemporaryDirectory(prefix="ncore-chip-job-") as d:
        job = pathlib.Path(d) / "job.npz"
        out = pathlib.Path(d) / "out.npz"
        addrs = np.array([-1 if a is None else a for a in cc.prog_addrs], np.int64)
        np.savez(job, dram=img, prog_addrs=addrs, watchdog=watchdog, max_cycles=max_cycles)
        run_cocotb(CHIP_SIM_TOPS[cc.cores], "tb.chip.test_run", "run_job", cc.config,
                   extra_env={"NCORE_JOB": str(job), "NCORE_JOB_OUT": str(out)},
                   rerun="the runtime's chip verilator backend (job file removed)")
        res = np.load(out)
        info = json.loads(str(res["result"]))
        results = [None if r is None else {**r, "done": bool(r["DONE"])}
                   for r in info["cores"]]
        return ChipRun("verilator", results, res["dram"].copy(), info.get("wall_s"))
