# amaranth: UnusedElaboratable=no
# (sim/flow/waves.py builds a top only to read its port signature, never to elaborate it.)
"""Verilog generation for every top-level ncore offers, cached per configuration.

Generated files are rewritten only when their text changes, so Verilator's and make's
own up-to-date checks keep an unchanged design from rebuilding.
"""

import contextlib
import importlib
import os
import pathlib
import re

from amaranth.back import verilog

from hdl.config import CoreConfig, named_config

__all__ = ["CHIP_SIM_TOPS", "VARIANT_TOPS", "LISTED_TOPS", "TOPS", "SIM_TOPS", "REGISTERED_RESET_TOPS", "SYNTH_TOPS", "TOP_TARGETS", "TARGET_MODELS", "ROOT", "BUILD",
           "elaborate", "config_free", "target_of", "write_if_changed", "verilog_for"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("NCORE_BUILD", ROOT / "build"))


def _made(path, *, config=True, **kwargs):
    """A constructor ``cfg -> component`` for the class at ``path`` ("module.Class").
    The gateware is imported only when a top is built, so listing the tops is cheap;
    ``config=False`` for blocks that take no configuration (the FP units)."""
    module, name = path.rsplit(".", 1)

    def make(cfg):
        cls = getattr(importlib.import_module(f"hdl.{module}"), name)
        return cls(cfg, **kwargs) if config else cls(**kwargs)
    make.config_free = not config
    return make


_systolic = _made("systolic.SystolicArray")
_tensor = _made("tops.harness.TensorHarness")
_dma = _made("tops.harness.DMAHarness")
_dma_engine = _made("dma.DMAEngine")
_vector = _made("tops.harness.VectorHarness")
_vector_engine = _made("vector.VectorEngine")
_neuron_core = _made("core.NeuronCore")
_neuron_core_sim = _made("tops.simdram.NeuronCoreSim")
_neuron_core_sim_baseline = _made("tops.simdram.NeuronCoreSim", registered_reset=False)
_fp32_adder = _made("fp.FP32Adder", config=False)
_fp_mul16 = _made("fp.FPMul16", config=False)
_fp32_adder_ftz = _made("fp.FP32Adder", config=False, subnormals=False)
_fp_mul16_ftz = _made("fp.FPMul16", config=False, subnormals=False)
_fp_mul16_int8 = _made("fp.FPMul16", config=False, int8=True)
_fp_mul16_ftz_int8 = _made("fp.FPMul16", config=False, subnormals=False, int8=True)
_dsp_multipliers = _made("tops.multipliers.MultiplierSet", config=False)
_host = _made("host.HostInterface")
_controller = _made("controller.Controller")
# the UART host bridge at 3 Mbaud from 48 MHz, frames timed out after 100 ms
_uart_bridge = _made("uart.UARTBridge", config=False, divisor=16, timeout=4_800_000)
# a board's DRAM window in block RAM (64 KiB here, less if the AXI port is narrower)
# and the host's address decoder


def _block_ram_dram(cfg):
    from hdl.board import BlockRamDram
    return BlockRamDram(cfg, size=min(1 << 16, 1 << cfg.axi_addr_width))


_block_ram_dram.config_free = False
_host_decoder = _made("board.HostDecoder", config=False, dram_size=1 << 16)
# the ULX3S board top between its pins (PLL, reset synchroniser, bridge, core, DRAM,
# LEDs), and the same board with a simulation clock for Verilator (tb/board)
_ulx3s = _made("tops.ulx3s.ULX3STop")
_board_sim = _made("tops.board_sim.BoardSim")
# a chip of n cores on the simulation DRAM (chip_sim<n>, n = 1..8); the stalling one
# backpressures every AXI channel at random and answers writes 40 cycles late (so a
# peer store's response could overtake a DRAM one: the interconnect must not let it)
_chip_sims = {f"chip_sim{n}": _made("tops.chip_sim.ChipSim", cores=n) for n in range(1, 9)}
_chip_sim2_stall = _made("tops.chip_sim.ChipSim", cores=2, stall_16ths=5, b_latency=40)
#: The chip simulation tops, by core count (the runtime's verilator backend with cores).
CHIP_SIM_TOPS = {n: f"chip_sim{n}" for n in range(1, 9)}


def _wrapped(make):
    def build(cfg):
        from hdl.tops.synth_wrapper import SynthWrapper
        return SynthWrapper(make(cfg))
    build.config_free = make.config_free
    return build


#: Top-levels: Verilog module name -> constructor taking a CoreConfig.
TOPS = {
    "systolic_array": _systolic,
    "systolic_array_synth": _wrapped(_systolic),
    "tensor_subsystem": _tensor,
    "tensor_subsystem_synth": _wrapped(_made("tops.harness.TensorHarness",
                                             registered_reset=False)),
    "dma_subsystem": _dma,
    "dma_engine": _dma_engine,
    "dma_engine_synth": _wrapped(_dma_engine),
    "vector_subsystem": _vector,
    "vector_engine": _vector_engine,
    "vector_engine_synth": _wrapped(_vector_engine),
    "neuron_core": _neuron_core,
    "neuron_core_synth": _wrapped(_neuron_core),
    "neuron_core_sim": _neuron_core_sim,
    # the same top built the way it was before the simulation-speed work
    # (docs/sim_speed.md): for make bench's before/after comparison only
    "neuron_core_sim_baseline": _neuron_core_sim_baseline,
    "fp32_adder": _fp32_adder,
    "fp_mul16": _fp_mul16,
    "fp32_adder_synth": _wrapped(_fp32_adder),
    "fp_mul16_synth": _wrapped(_fp_mul16),
    # flush-to-zero builds of the FP units, for the area comparison in docs/numerics.md
    "fp32_adder_ftz": _fp32_adder_ftz,
    "fp_mul16_ftz": _fp_mul16_ftz,
    "fp32_adder_ftz_synth": _wrapped(_fp32_adder_ftz),
    # the multiplier shared with INT8 (as in a float PE), and the DSP multipliers alone;
    # the *_ecp5 tops are elaborated for the ECP5 target (MULT18X18D primitives) and
    # simulate with the model in tb/models/
    "fp_mul16_int8": _fp_mul16_int8,
    "fp_mul16_int8_ecp5": _fp_mul16_int8,
    "fp_mul16_ftz_int8_ecp5": _fp_mul16_ftz_int8,
    "dsp_multipliers": _dsp_multipliers,
    "dsp_multipliers_ecp5": _dsp_multipliers,
    # the array for the ECP5 target: its output FIFO in DP16KD primitives (with their
    # output register) and its multipliers in MULT18X18Ds, on the models in tb/models/
    "systolic_array_ecp5": _systolic,
    "fp_mul16_ftz_synth": _wrapped(_fp_mul16_ftz),
    "host_interface": _host,
    "host_interface_synth": _wrapped(_host),
    "controller_synth": _wrapped(_controller),
    "uart_bridge": _uart_bridge,
    "block_ram_dram": _block_ram_dram,
    "host_decoder": _host_decoder,
    "ulx3s": _ulx3s,
    "board_sim": _board_sim,
    **_chip_sims,
    "chip_sim2_stall": _chip_sim2_stall,
    # a chip of two cores for make synth (four 4x4 cores need 128% of the LFE5U-85F's
    # LUTs: docs/chip.md)
    "chip2_synth": _wrapped(_made("chip.Chip", cores=2)),
}

#: Tops that only vary another top's core count or DRAM stalls (``chip_sim2`` stands for
#: them) and the four-core synthesis chip: ``make verilog`` and ``make lint`` leave them
#: out unless named with ``--top`` (four 16x16 cores take minutes to lint, and the
#: Verilog is the same generator's).
VARIANT_TOPS = tuple(t for t in TOPS if t.startswith("chip") and t != "chip_sim2")
#: The tops ``make verilog`` and ``make lint`` go through.
LISTED_TOPS = tuple(t for t in TOPS if t not in VARIANT_TOPS)

#: Tops elaborated for a vendor target by default (see :func:`elaborate`).
TOP_TARGETS = {"fp_mul16_int8_ecp5": "ecp5", "fp_mul16_ftz_int8_ecp5": "ecp5",
               "dsp_multipliers_ecp5": "ecp5", "systolic_array_ecp5": "ecp5", "ulx3s": "ecp5"}

#: Simulation models of vendor primitives, per target (Verilator sources).
TARGET_MODELS = {"generic": [], "ecp5": [ROOT / "tb" / "models" / "MULT18X18D.v",
                                         ROOT / "tb" / "models" / "DP16KD.v",
                                         ROOT / "tb" / "models" / "EHXPLLL.v"]}


def config_free(top):
    """True if the Verilog of ``top`` does not depend on the configuration."""
    return TOPS[top].config_free


def target_of(top, target=None):
    """The target ``top`` is elaborated for: ``target`` if given, else its default."""
    return target or TOP_TARGETS.get(top, "generic")


#: Tops meant for simulation (the synthesis wrappers only feed ``make synth``).
SIM_TOPS = ("systolic_array", "tensor_subsystem", "dma_subsystem", "vector_subsystem",
            "fp32_adder", "fp_mul16", "host_interface", "neuron_core", "neuron_core_sim")

#: Simulation tops that register ``rst`` once (:mod:`hdl.tops.sim_clock`): their
#: testbenches wait :data:`hdl.tops.sim_clock.RESET_DELAY` more cycles after reset.
REGISTERED_RESET_TOPS = ("tensor_subsystem", "vector_subsystem", "dma_subsystem",
                         "neuron_core_sim", "board_sim", *CHIP_SIM_TOPS.values(),
                         "chip_sim2_stall")

#: Top -> its synthesis wrapper top (pin-light, nothing trimmed; see hdl/tops/synth_wrapper.py).
SYNTH_TOPS = {
    "systolic_array": "systolic_array_synth",
    "tensor_subsystem": "tensor_subsystem_synth",
    "dma_engine": "dma_engine_synth",
    "vector_engine": "vector_engine_synth",
    "controller": "controller_synth",
    "host": "host_interface_synth",
    "neuron_core": "neuron_core_synth",
    "fp32_adder": "fp32_adder_synth",
    "fp_mul16": "fp_mul16_synth",
    "fp32_adder_ftz": "fp32_adder_ftz_synth",
    "fp_mul16_ftz": "fp_mul16_ftz_synth",
    "chip2": "chip2_synth",
}


#: Memories of at least this many words whose initial contents are all zero are written
#: as one ``for`` loop instead of one assignment per word (:func:`_zero_memories`). In
#: practice that is the simulation DRAM: PSUM banks and the SBUF partitions of every
#: shipped configuration are far smaller, so their Verilog is as Yosys writes it.
ZERO_LOOP_WORDS = 1 << 16

_MEM_DECL = re.compile(r"^  reg (?:\[\d+:0\] )?(\S+) \[(\d+):0\];\n", re.M)


@contextlib.contextmanager
def _zero_memories():
    """While converting, Amaranth's RTLIL back end leaves out the ``$meminit`` cell of
    every all-zero memory of :data:`ZERO_LOOP_WORDS` words or more; :func:`_zero_loops`
    then gives each such memory a one-line zeroing loop in the Verilog.

    Why: Amaranth 0.5 has no uninitialised memories, and it writes a memory's initial
    contents as one constant bit per stored bit, which Yosys then prints as one
    ``initial`` assignment per word. For the simulation DRAM
    (:class:`hdl.tops.simdram.SimDram`) that cost grows with its size: 1 MiB took 50 s
    to convert and 5 MB of Verilog; 64 MiB would take close to an hour. With the loop
    the conversion takes under a second at any size, and the Verilog means the same
    (every word starts at zero). Only the text changes: the design and its simulation
    in Amaranth do not."""
    from amaranth.back import rtlil as _rtlil
    emitter = _rtlil.ModuleEmitter
    orig = emitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if cell.depth >= ZERO_LOOP_WORDS and not any(cell.init):
            return
        return orig(self, cell_idx, cell)
    emitter.emit_memory = emit_memory
    try:
        yield
    finally:
        emitter.emit_memory = orig


def _zero_loops(text):
    """Give every memory of :data:`ZERO_LOOP_WORDS` words or more that has no
    ``initial`` block (see :func:`_zero_memories`) a loop that zeroes it."""
    def repl(mt):
        name, depth = mt.group(1), int(mt.group(2)) + 1
        if depth < ZERO_LOOP_WORDS or text.startswith(f"  initial begin\n    {name}[", mt.end()):
            return mt.group(0)
        return (mt.group(0) + f"  initial begin\n    for (integer i = 0; i < {depth}; "
                f"i = i + 1) {name}[i] = 0;\n  end\n")
    return _MEM_DECL.sub(repl, text)


_PE_MODULE = re.compile(r'^(\(\* generator = "Amaranth" \*\)\n)(module \\\S+\.pe_r\d+_c\d+ \()', re.M)


def keep_pe_hierarchy(text):
    """Mark every PE module ``(* keep_hierarchy *)``, for synthesis.

    Each PE delays its operand type through shift registers (to select the INT8 or
    the float sum at its output), and every such register in the array is a delay of
    the same input: flattened, Yosys merges them all into one chain whose taps each
    serve PEs rows apart, and the routes to them became the 8x8 float array's critical
    path (7.7 ns on one net). Kept as its own block, each PE keeps its own registers.
    Returns the text with the attribute added (the ECP5 target applies it)."""
    return _PE_MODULE.sub(r"\1(* keep_hierarchy = 1 *)\n\2", text)


def elaborate(top, config, target=None):
    """Verilog text of ``top`` for ``config`` (no source locations: reproducible).

    ``target``: ``"generic"`` (portable Verilog, what the simulations run) or
    ``"ecp5"`` (the multipliers as ``MULT18X18D`` primitives with their registers
    inside the DSP block; see :mod:`hdl.dsp`). Default: :data:`TOP_TARGETS`, else
    generic."""
    from hdl.dsp import target_named
    target = target_of(top, target)
    if top not in TOPS:
        raise ValueError(f"unknown top {top!r}; choose from {', '.join(TOPS)}")
    platform = target_named(target)
    dut = TOPS[top](named_config(config))
    with _zero_memories():
        text = _zero_loops(verilog.convert(dut, name=top, platform=platform, emit_src=False))
    return keep_pe_hierarchy(text) if target == "ecp5" else text


def write_if_changed(path, text):
    """Write ``text`` to ``path`` unless it already holds exactly that; True if written."""
    path = pathlib.Path(path)
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def _design_digest(top, config, target="generic"):
    """A digest of everything the Verilog of (top, config) depends on: the gateware
    sources (every ``.py`` under ``hdl/``, this file), the Amaranth version, the top and
    the config."""
    import hashlib
    import amaranth
    h = hashlib.sha256()
    hdl = ROOT / "hdl"
    for f in sorted(hdl.rglob("*.py")) + [pathlib.Path(__file__)]:
        h.update(f.relative_to(ROOT).as_posix().encode())
        h.update(f.read_bytes())
    h.update(amaranth.__version__.encode())
    h.update(top.encode())
    h.update(config.to_json().encode())
    h.update(target.encode())
    return h.hexdigest()


def verilog_for(top, config: CoreConfig, directory=None, target=None):
    """Path of the Verilog for (top, config), generated if missing or stale.

    Elaborating the whole core takes close to a minute, so the Verilog is regenerated
    only when the digest of its inputs (:func:`_design_digest`) changed."""
    config = named_config(config)
    target = target_of(top, target)
    suffix = "" if target == TOP_TARGETS.get(top, "generic") else f"-{target}"
    directory = (pathlib.Path(directory) if directory
                 else BUILD / "rtl" / f"{top}-{config.key}{suffix}")
    path = directory / f"{top}.v"
    stamp = directory / f"{top}.digest"
    digest = _design_digest(top, config, target)
    if path.exists() and stamp.exists() and stamp.read_text() == digest:
        return path
    write_if_changed(path, elaborate(top, config, target))
    write_if_changed(directory / "config.json", config.to_json() + "\n")
    write_if_changed(stamp, digest)
    return path
