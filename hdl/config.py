"""The single source of truth for an ncore configuration.

:class:`CoreConfig` is read by the gateware, the golden model, the testbenches and the
tools. It is frozen, checked on construction and round-trips through JSON, so a test
can hand a configuration to a Verilator subprocess without losing anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

__all__ = ["CoreConfig", "DTYPES", "FLOAT_DTYPES", "NAMED_CONFIGS", "named_config",
           "check_config", "check_int_range", "PE_LATENCY", "FP_MUL_LATENCY", "FP_ADD_LATENCY",
           "psum_add_latency",
           "product_latency", "row_hop", "pe_latency"]


#: Every operand data type the tensor engine knows about, in encoding order
#: (the ``dtype`` field of a moving column holds the index).
DTYPES = ("int8", "bf16", "fp16")

#: Floating-point operand types (16-bit patterns, FP32 accumulation).
FLOAT_DTYPES = ("bf16", "fp16")

#: Pipeline depths of the floating-point units (checked against hdl.fp at elaboration).
FP_MUL_LATENCY = 5
FP_ADD_LATENCY = 7


def product_latency(floats):
    """Cycles from a moving operand reaching a PE to its product meeting the partial
    sum from above. INT8-only: two operand registers, multiply, product register (4);
    with floats: the operand register, then :class:`hdl.fp.FPMul16`. The one
    definition, read by :class:`hdl.pe.PE` and :class:`CoreConfig`."""
    return 1 + FP_MUL_LATENCY if floats else 4


def psum_add_latency(floats):
    """Cycles of PSUM's accumulate step (``A`` in :class:`hdl.psum.PSUM`): the FP32
    adder's latency with floats; without, two (the old value from the block RAM is
    registered, then added: BRAM output, transparency bypass and a 32-bit add in one
    cycle were the tensor subsystem's critical path on the ECP5). The one definition,
    read by PSUM and the compiler's cost model."""
    return FP_ADD_LATENCY if floats else 2


def row_hop(floats):
    """Cycles a partial sum needs to cross one PE: the adder's latency (one INT32 add,
    or :class:`hdl.fp.FP32Adder`)."""
    return FP_ADD_LATENCY if floats else 1


def pe_latency(floats):
    """Cycles from a moving operand reaching a PE to its partial sum leaving it."""
    return product_latency(floats) + row_hop(floats)


#: :func:`pe_latency` of an INT8-only PE: two operand registers, multiply, product
#: register, add (see :class:`hdl.pe.PE`).
PE_LATENCY = pe_latency(False)

#: The largest array edge we accept. NeuronCore-v2 is 128x128; 256 leaves headroom.
MAX_EDGE = 256


def _check_positive_int(name, value, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, not {value!r}")


def check_config(config):
    """``config`` if it is a :class:`CoreConfig`; a ``TypeError`` naming what came
    otherwise (every component checks before it reads a field)."""
    if not isinstance(config, CoreConfig):
        raise TypeError(f"config must be a CoreConfig, not {config!r}")
    return config


def check_int_range(name, value, minimum, maximum):
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) in
    ``[minimum, maximum]``; used by components for their elaboration parameters."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer from {minimum} to {maximum}, not {value!r}")


def _check_pow2(name, value, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be from {minimum} to {maximum}, not {value!r}")


@dataclass(frozen=True)
class CoreConfig:
    """Parameters of one ncore.

    Parameters
    ----------
    rows : int
        Systolic array rows: the contraction dimension K of one matmul, one SBUF
        partition per row. 1 to 256.
    cols : int
        Systolic array columns: the stationary tile's M dimension, one PSUM partition
        per column. 1 to 256.
    dtypes : tuple of str
        Operand data types the tensor engine is elaborated with (a subset of
        :data:`DTYPES`, in any order, no repeats).
    acc_width : int
        Width of the partial sums and of the array's outputs (INT32 accumulation).
    sbuf_bytes : int
        Bytes per SBUF partition (one partition per array row), a multiple of
        ``sbuf_word_bytes``, at least two words, at most 1 MiB.
    sbuf_word_bytes : int
        Bytes per SBUF word: what one partition reads or writes per cycle. A power of
        two from 4 to 64, so a word holds at least two operands of any type (the
        bandwidth argument in ``docs/memory.md`` needs that).
    psum_banks : int
        PSUM banks, 1 to 16.
    psum_depth : int
        32-bit entries per PSUM bank and partition, a power of two from 1 to 65536: the
        largest N of one matmul. ``psum_banks * psum_depth`` must be at least 2.
    axi_data_bytes : int
        Data bytes of the DMA's AXI4 port (64 bits by default). Must equal
        ``sbuf_word_bytes``: the DMA moves one SBUF word per beat.
    axi_addr_width : int
        AXI4 address bits, 12 to 48.
    axi_id_width : int
        AXI4 ID bits, 1 to 16 (the DMA uses ID 0 for every burst, so responses
        arrive in order).
    dma_outstanding : int
        Read bursts (and, separately, write bursts) the DMA keeps in flight, 1 to 32.
    dma_max_burst : int
        Longest burst the DMA issues, in beats, 1 to 256 (bursts also stop at every
        4 KiB boundary, as AXI4 requires).
    n_sems : int
        Semaphores of the controller, 1 to 32 (16-bit counters, see ``docs/isa.md``).
    queue_depth : int
        Instructions each engine queue of the controller holds, 2 to 64.
    out_fifo_depth : int or None
        Entries of the array's output FIFO, a power of two. ``None`` picks the
        smallest power of two that keeps the array streaming at full rate while the
        consumer is ready (see :attr:`min_out_fifo_depth`). A smaller value is
        rejected; a larger one absorbs longer consumer stalls without throttling.
    subnormals : bool
        ``True`` (default): the floating-point units (every PE's multiplier and adder,
        PSUM's accumulating adders, the vector engine's bias adders) follow IEEE 754
        with subnormals. ``False``: they flush subnormals to zero on input and output
        (``docs/numerics.md``, "Cost of subnormal support"), which makes a float PE
        about 370 LUTs smaller. The golden model flushes identically. Only meaningful
        with a float type in ``dtypes``; ``False`` without one is rejected.

    Raises
    ------
    ValueError
        If a parameter is out of range, with a message naming it and its value.
    """

    rows: int = 8
    cols: int = 8
    dtypes: tuple = ("int8",)
    acc_width: int = 32
    sbuf_bytes: int = 4096
    sbuf_word_bytes: int = 8
    psum_banks: int = 4
    psum_depth: int = 256
    axi_data_bytes: int = 8
    axi_addr_width: int = 32
    axi_id_width: int = 4
    dma_outstanding: int = 4
    dma_max_burst: int = 16
    n_sems: int = 16
    queue_depth: int = 4
    out_fifo_depth: int | None = None
    subnormals: bool = True

    def __post_init__(self):
        _check_positive_int("rows", self.rows, MAX_EDGE)
        _check_positive_int("cols", self.cols, MAX_EDGE)
        if isinstance(self.dtypes, (str, bytes)) or not isinstance(self.dtypes, (tuple, list)):
            raise ValueError(f"dtypes must be a tuple of names from {DTYPES}, not {self.dtypes!r}")
        if isinstance(self.dtypes, list):
            object.__setattr__(self, "dtypes", tuple(self.dtypes))
        if not self.dtypes:
            raise ValueError(f"dtypes must name at least one of {DTYPES}")
        for dtype in self.dtypes:
            if dtype not in DTYPES:
                raise ValueError(f"dtype {dtype!r} is not supported; choose from {DTYPES}")
        if len(set(self.dtypes)) != len(self.dtypes):
            raise ValueError(f"dtypes must not repeat a type, not {self.dtypes!r}")
        if self.acc_width != 32:
            raise ValueError(f"acc_width must be 32 (INT32/FP32 accumulation), not {self.acc_width!r}")
        _check_pow2("sbuf_word_bytes", self.sbuf_word_bytes, 4, 64)
        _check_positive_int("sbuf_bytes", self.sbuf_bytes, 1 << 20)
        if self.sbuf_bytes % self.sbuf_word_bytes:
            raise ValueError(
                f"sbuf_bytes must be a multiple of sbuf_word_bytes ({self.sbuf_word_bytes}), "
                f"not {self.sbuf_bytes}")
        if self.sbuf_bytes < 2 * self.sbuf_word_bytes:
            # a one-word partition has no address bits (a zero-width port in the Verilog)
            raise ValueError(
                f"sbuf_bytes must hold at least two words ({2 * self.sbuf_word_bytes} bytes), "
                f"not {self.sbuf_bytes}")
        _check_positive_int("psum_banks", self.psum_banks, 16)
        _check_pow2("psum_depth", self.psum_depth, 1, 65536)
        if self.psum_banks * self.psum_depth < 2:
            # a one-entry PSUM partition has no address bits (a zero-width port)
            raise ValueError(
                "psum_banks * psum_depth must be at least 2 (one bank of depth 1 leaves "
                "a PSUM partition a single entry)")
        _check_pow2("axi_data_bytes", self.axi_data_bytes, 4, 64)
        if self.axi_data_bytes != self.sbuf_word_bytes:
            raise ValueError(
                f"axi_data_bytes must equal sbuf_word_bytes ({self.sbuf_word_bytes}): the DMA "
                f"moves one SBUF word per beat, not {self.axi_data_bytes}")
        _check_positive_int("axi_addr_width", self.axi_addr_width, 48)
        if self.axi_addr_width < 12:
            raise ValueError(f"axi_addr_width must be from 12 to 48, not {self.axi_addr_width}")
        _check_positive_int("axi_id_width", self.axi_id_width, 16)
        _check_positive_int("dma_outstanding", self.dma_outstanding, 32)
        _check_positive_int("dma_max_burst", self.dma_max_burst, 256)
        check_int_range("n_sems", self.n_sems, 1, 32)
        check_int_range("queue_depth", self.queue_depth, 2, 64)
        if not isinstance(self.subnormals, bool):
            raise ValueError(f"subnormals must be True or False, not {self.subnormals!r}")
        if not self.subnormals and not self.has_float:
            raise ValueError(
                "subnormals=False (flush to zero) needs a float type (bf16 or fp16) in "
                f"dtypes, not {self.dtypes!r}")
        if self.out_fifo_depth is not None:
            _check_positive_int("out_fifo_depth", self.out_fifo_depth)
            if self.out_fifo_depth & (self.out_fifo_depth - 1):
                raise ValueError(f"out_fifo_depth must be a power of two, not {self.out_fifo_depth}")
            if self.out_fifo_depth < self.min_out_fifo_depth:
                raise ValueError(
                    f"out_fifo_depth must be at least {self.min_out_fifo_depth} for a "
                    f"{self.rows}x{self.cols} array (its pipeline latency plus four), "
                    f"not {self.out_fifo_depth}")

    # -- derived quantities -------------------------------------------------------

    @property
    def has_float(self):
        """Whether BF16 or FP16 is elaborated (16-bit operands, FP units in every PE)."""
        return any(d in FLOAT_DTYPES for d in self.dtypes)

    @property
    def operand_width(self):
        """Bits of one operand element on the array's inputs: 8, or 16 with floats."""
        return 16 if self.has_float else 8

    @property
    def product_latency(self):
        """Cycles from a moving operand reaching a PE to its product meeting the
        partial sum from above (operand register, then the multiplier)."""
        return product_latency(self.has_float)

    @property
    def row_hop(self):
        """Cycles a partial sum needs to cross one PE: the adder's latency. The input
        skew delays each row by the same amount, so a moving column meets its partial
        sum in every row."""
        return row_hop(self.has_float)

    @property
    def pe_latency(self):
        """Cycles from a moving operand reaching a PE to its partial sum leaving it."""
        return pe_latency(self.has_float)

    @property
    def array_latency(self):
        """Cycles from a moving column's acceptance to its output entering the FIFO.

        One input register, ``row_hop * (rows - 1)`` skew stages to the last row,
        ``cols - 1`` hops along a row, which the de-skew tops up to the same for every
        column, and :attr:`pe_latency` stages in the last row's PE:
        ``row_hop * (rows - 1) + cols + pe_latency``.
        """
        return self.row_hop * (self.rows - 1) + self.cols + self.pe_latency

    @property
    def min_out_fifo_depth(self):
        """Smallest output FIFO that never throttles a consumer that is always ready.

        A column's credit comes back ``array_latency`` cycles (to the FIFO write) plus
        three (the FIFO's write-to-output latency, :class:`hdl.fifo.StreamFIFO`) plus
        one (the counter update) after it was taken, so that many columns must be
        allowed in flight.
        """
        return self.array_latency + 4

    @property
    def fifo_depth(self):
        """The output FIFO depth actually built."""
        if self.out_fifo_depth is not None:
            return self.out_fifo_depth
        depth = 1
        while depth < self.min_out_fifo_depth:
            depth *= 2
        return depth

    @property
    def sbuf_words(self):
        """Words per SBUF partition."""
        return self.sbuf_bytes // self.sbuf_word_bytes

    @property
    def psum_entries(self):
        """32-bit entries per PSUM partition, all banks: ``psum_banks * psum_depth``."""
        return self.psum_banks * self.psum_depth

    @property
    def macs_per_cycle(self):
        """Peak multiply-accumulates per cycle: ``rows * cols``."""
        return self.rows * self.cols

    # -- serialisation ------------------------------------------------------------

    def to_dict(self):
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    def to_json(self):
        """Canonical JSON text (sorted keys), stable across runs."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown CoreConfig field(s): {', '.join(sorted(unknown))}")
        d = dict(d)
        if "dtypes" in d:
            d["dtypes"] = tuple(d["dtypes"])
        return cls(**d)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    @property
    def key(self):
        """A short, stable hash naming this configuration (build directories)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:10]

    @property
    def name(self):
        """A readable tag such as ``8x8-int8``."""
        return f"{self.rows}x{self.cols}-{'+'.join(self.dtypes)}" + ("" if self.subnormals else "-ftz")


#: Configurations known by name (``make verilog CONFIG=...``).
NAMED_CONFIGS = {
    "default": CoreConfig(),
    "1x1": CoreConfig(rows=1, cols=1),
    # the smallest legal value of every parameter: one partition, one PSUM bank of two
    # entries, two SBUF words, one semaphore, 2-entry queues, one outstanding burst of
    # one beat (its Verilog must still have no zero-width or reversed ranges)
    "min": CoreConfig(rows=1, cols=1, sbuf_bytes=16, psum_banks=1, psum_depth=2, n_sems=1,
                      queue_depth=2, dma_outstanding=1, dma_max_burst=1, axi_id_width=1,
                      axi_addr_width=12),
    "4x4": CoreConfig(rows=4, cols=4),
    "8x4": CoreConfig(rows=8, cols=4),
    "8x8": CoreConfig(rows=8, cols=8),
    "16x16": CoreConfig(rows=16, cols=16),
    "128x128": CoreConfig(rows=128, cols=128),
    # all three operand types
    "1x1-fp": CoreConfig(rows=1, cols=1, dtypes=DTYPES),
    "min-fp": CoreConfig(rows=1, cols=1, dtypes=DTYPES, sbuf_bytes=16, psum_banks=1,
                         psum_depth=2, n_sems=1, queue_depth=2, dma_outstanding=1,
                         dma_max_burst=1, axi_id_width=1, axi_addr_width=12),
    "4x4-fp": CoreConfig(rows=4, cols=4, dtypes=DTYPES),
    "8x4-fp": CoreConfig(rows=8, cols=4, dtypes=DTYPES),
    "8x8-fp": CoreConfig(rows=8, cols=8, dtypes=DTYPES),
    # float units that flush subnormals to zero (smaller float PEs, for FPGA budgets)
    "4x4-fp-ftz": CoreConfig(rows=4, cols=4, dtypes=DTYPES, subnormals=False),
    "8x8-fp-ftz": CoreConfig(rows=8, cols=8, dtypes=DTYPES, subnormals=False),
    # a float configuration without FP16, to test that absent types are refused
    "4x4-int8-bf16": CoreConfig(rows=4, cols=4, dtypes=("int8", "bf16")),
}


def named_config(spec):
    """A configuration from a name in :data:`NAMED_CONFIGS`, a JSON file, or JSON text."""
    if isinstance(spec, CoreConfig):
        return spec
    if spec in NAMED_CONFIGS:
        return NAMED_CONFIGS[spec]
    text = spec.strip()
    if text.startswith("{"):
        return CoreConfig.from_json(text)
    try:
        with open(spec) as f:
            return CoreConfig.from_json(f.read())
    except FileNotFoundError:
        raise ValueError(
            f"unknown configuration {spec!r}: use one of {', '.join(NAMED_CONFIGS)}, "
            f"a JSON file, or JSON text") from None
