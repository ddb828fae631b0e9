"""Data formats shared by the gateware, the golden model and the testbenches.

Every payload that crosses a block boundary is defined here once, as an Amaranth
``data`` layout built from a :class:`~hdl.config.CoreConfig`. Software (assembler,
golden models, testbenches) packs and unpacks them only through :mod:`sim.isa.codec`
(or :func:`field_slices` for the arrays of stream payloads), never with hand-coded
bit offsets.
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, enum
from amaranth.utils import ceil_log2

from .config import CoreConfig, DTYPES

__all__ = [
    "OPERAND_SHAPE", "Dtype", "operand_shape", "column_layout", "result_layout",
    "field_slices", "MatmulCmd", "DTYPE_BYTES", "sbuf_write_layout", "sbuf_read_layout",
    "sbuf_data_layout", "psum_write_layout", "psum_read_layout", "psum_data_layout",
    "TensorError", "DmaDesc", "DmaError", "dma_done_layout", "ActType", "ActCmd",
    "ActError", "ACT_BYTES", "ActOp", "SrcType", "SRC_BYTES",
]

#: One INT8 operand element as it travels through an INT8-only array.
OPERAND_SHAPE = signed(8)


class Dtype(enum.Enum, shape=2):
    """Operand type of a moving column (the ``dtype`` field), in :data:`DTYPES` order."""
    INT8 = 0
    BF16 = 1
    FP16 = 2


assert [d.name.lower() for d in Dtype] == list(DTYPES)


def operand_shape(config: CoreConfig):
    """Shape of one operand element: ``signed(8)`` for an INT8-only array, else a raw
    16-bit pattern (BF16, FP16, or an INT8 value in its low byte)."""
    return unsigned(16) if config.has_float else OPERAND_SHAPE


def column_layout(config: CoreConfig):
    """Payload of the array's weight (``i_w``) and moving (``i_x``) streams.

    Members
    -------
    data : ``ArrayLayout(operand_shape(config), rows)``
        One column of a tile across the array's rows: ``S[:, m]`` for a weight
        column, ``X[:, n]`` for a moving column. Element ``k`` feeds array row ``k``.
    last : 1 bit
        Marks the final column of a tile.
    dtype : :class:`Dtype` (only when the configuration has a float type)
        Operand type of a moving column; ignored on weight columns.
    """
    fields = {
        "data": data.ArrayLayout(operand_shape(config), config.rows),
        "last": 1,
    }
    if config.has_float:
        fields["dtype"] = Dtype
    return data.StructLayout(fields)


def result_layout(config: CoreConfig):
    """Payload of the array's result stream (``o_y``).

    Members
    -------
    data : ``ArrayLayout(signed(32), cols)``
        ``Y[:, n]``: element ``m`` is the dot product of weight column ``m`` with
        moving column ``n``: INT32, or the bit pattern of an FP32 value for BF16/FP16.
    last : 1 bit
        Copied from the moving column that produced this result.
    """
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.acc_width), config.cols),
        "last": 1,
    })


def field_slices(layout, prefix=""):
    """Flatten a layout to ``{dotted.name: (offset, width, signed)}`` for leaf fields.

    Array elements are named by index (``data.3``). Testbenches use this to pack and
    unpack integers on flattened Verilog ports without repeating any offsets.
    """
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        size = (elem.size if isinstance(elem, data.Layout) else Shape.cast(elem).width)
        items = [(str(i), elem, i * size) for i in range(layout.length)]
    else:
        items = [(name, field.shape, field.offset) for name, field in layout]
    out = {}
    for name, shape, offset in items:
        full = f"{prefix}{name}"
        if isinstance(shape, data.Layout):
            for sub, (o, w, s) in field_slices(shape, full + ".").items():
                out[sub] = (offset + o, w, s)
        else:
            sh = Shape.cast(shape)
            out[full] = (offset, sh.width, sh.signed)
    return out


# ---------------------------------------------------------------------------------------
# On-chip memories and the tensor engine's command
# ---------------------------------------------------------------------------------------

def _name_bytes(name):
    """Bytes of an element type whose name ends in its width in bits (``BF16`` -> 2)."""
    bits = int(name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    assert bits % 8 == 0, name
    return bits // 8


#: Bytes of one element of each operand type in SBUF, by :data:`DTYPES` name
#: (``{"int8": 1, "bf16": 2, "fp16": 2}``). The one definition: the golden models,
#: compiler and testbenches import it from here.
DTYPE_BYTES = {d.name.lower(): _name_bytes(d.name) for d in Dtype}


class MatmulCmd(data.Struct):
    """One tensor-engine command (NKI semantics)::

        PSUM[bank][0:M, psum_off : psum_off+N]  (= or +=)  S^T @ X
        S = SBUF[p0 : p0+K, s_off : s_off+M]                  (the stationary tile)
        X = SBUF[p0 : p0+K, x_off : x_off+N*step : step]      (the moving tile)

    Offsets ``s_off`` and ``x_off`` count elements of ``dtype`` (1 byte for INT8,
    2 for BF16/FP16) from the start of each partition; ``psum_off`` counts 32-bit
    PSUM entries from the start of ``bank``. The fields are wide enough for every
    legal configuration, so an out-of-range value is representable and is refused by
    the engine (error flag) rather than wrapped.

    Members
    -------
    dtype : :class:`Dtype`
        Operand type (INT8 accumulates in INT32, BF16/FP16 in FP32).
    acc : 1 bit
        1: add to what PSUM holds (INT32 wrap-around or FP32 RNE); 0: overwrite.
    p0 : 9 bits
        First SBUF partition; array row ``k`` reads partition ``p0 + k``.
    k, m : 9 bits each
        Contraction length (``1..rows``) and stationary width (``1..cols``).
    n : 17 bits
        Moving length, ``1..psum_depth``.
    s_off, x_off : 20 bits each
        Element offsets of S and X in their partitions.
    bank : 4 bits
        PSUM bank.
    psum_off : 16 bits
        First PSUM entry written.
    x_skip : 3 bits
        Elements skipped after each moving element: ``step = x_skip + 1`` (0:
        contiguous). A strided convolution reads its input with it
        (``docs/conv.md``). ``step`` times the element size must not exceed an SBUF
        word (else ``STEP``), so every word read still yields an element. The field is
        last, so that the programs from before it keep their meaning.
    """
    dtype: Dtype
    acc: 1
    p0: 9
    k: 9
    m: 9
    n: 17
    s_off: 20
    x_off: 20
    bank: 4
    psum_off: 16
    x_skip: 3


def _bits_for(n):
    """Address bits for ``n`` locations (at least one)."""
    return max(1, ceil_log2(n))


def sbuf_data_layout(config: CoreConfig):
    """One SBUF word in every partition: ``ArrayLayout(unsigned(8*word_bytes), rows)``."""
    return data.ArrayLayout(unsigned(8 * config.sbuf_word_bytes), config.rows)


def sbuf_write_layout(config: CoreConfig):
    """Payload of an SBUF write client.

    Members
    -------
    addr : word address within each partition
    pmask : ``rows`` bits, partitions written
    strb : ``sbuf_word_bytes`` bits, bytes written (the same in every partition)
    data : :func:`sbuf_data_layout`, the word for each partition
    """
    return data.StructLayout({
        "addr": _bits_for(config.sbuf_words),
        "pmask": config.rows,
        "strb": config.sbuf_word_bytes,
        "data": sbuf_data_layout(config),
    })


def sbuf_read_layout(config: CoreConfig):
    """Payload of an SBUF read request: ``addr``, the word address read in every
    partition. The response payload is :func:`sbuf_data_layout`."""
    return data.StructLayout({"addr": _bits_for(config.sbuf_words)})


def psum_data_layout(config: CoreConfig):
    """One PSUM entry in every partition: ``ArrayLayout(unsigned(32), cols)``."""
    return data.ArrayLayout(unsigned(32), config.cols)


def psum_write_layout(config: CoreConfig):
    """Payload of a PSUM write client.

    Members
    -------
    bank, entry : where, in every partition
    mask : ``cols`` bits, partitions written
    acc : 1 bit, add to the stored value instead of overwriting
    fp : 1 bit, the addition is FP32 (round to nearest even) rather than INT32
    data : :func:`psum_data_layout`
    """
    return data.StructLayout({
        "bank": _bits_for(config.psum_banks),
        "entry": _bits_for(config.psum_depth),
        "mask": config.cols,
        "acc": 1,
        "fp": 1,
        "data": psum_data_layout(config),
    })


def psum_read_layout(config: CoreConfig):
    """Payload of a PSUM read request (``bank``, ``entry``); the response payload is
    :func:`psum_data_layout`."""
    return data.StructLayout({
        "bank": _bits_for(config.psum_banks),
        "entry": _bits_for(config.psum_depth),
    })


class TensorError(enum.Enum, shape=3):
    """Why the tensor engine refused a :class:`MatmulCmd` (first failing check, in
    this order). The engine records the first refusal since the last clear."""
    NONE = 0
    DTYPE = 1       #: ``dtype`` not elaborated in this configuration
    K_RANGE = 2     #: ``k`` is 0, or ``p0 + k > rows``
    M_RANGE = 3     #: ``m`` is 0 or ``m > cols``
    N_RANGE = 4     #: ``n`` is 0 or ``n > psum_depth``
    PSUM_RANGE = 5  #: ``bank >= psum_banks`` or ``psum_off + n > psum_depth``
    SBUF_RANGE = 6  #: S or X runs past the end of a partition (X: its last element)
    STEP = 7        #: the moving step (``x_skip + 1``) times the element size exceeds an SBUF word



# ---------------------------------------------------------------------------------------
# DMA
# ---------------------------------------------------------------------------------------

class DmaError(enum.Enum, shape=3):
    """Completion code of a DMA descriptor (:class:`DmaDesc`). Checks 1-3 and 6 happen
    before any transfer (nothing moves); 4-5 report the first error response of the bus."""
    NONE = 0
    RANGE = 1       #: ``rows`` or ``row_bytes`` is 0, or the tile leaves the on-chip memory
    WINDOW = 2      #: a DRAM byte of the tile lies outside ``[win_base, win_limit)``
    TARGET = 3      #: PSUM as the destination of a DRAM read (not supported)
    SLVERR = 4      #: the bus answered SLVERR (``RRESP``/``BRESP`` = 2)
    DECERR = 5      #: the bus answered DECERR (``RRESP``/``BRESP`` = 3)
    PEER = 6        #: on a chip, the tile's address is in the peer aperture and the
                    #: transfer is not a legal store into an existing core's SBUF
                    #: (:class:`hdl.chipmap.PeerAperture`)


class DmaDesc(data.Struct):
    """One DMA transfer: a 2-D strided tile between DRAM and SBUF or PSUM::

        for r in range(rows):
            DRAM[addr + r*row_stride : + row_bytes]  <->  MEM[partition + r][offset : + row_bytes]

    ``MEM`` is SBUF (``mem = 0``; a partition's bytes in order) or PSUM (``mem = 1``;
    a partition's 32-bit entries little-endian, entry ``bank * psum_depth + e`` at
    byte ``4 * (bank * psum_depth + e)``). Any byte alignment on either side.

    Members
    -------
    store : 1 bit
        0: DRAM -> SBUF (load); 1: SBUF/PSUM -> DRAM (store).
    mem : 1 bit
        On-chip memory: 0 SBUF, 1 PSUM (stores only).
    addr : 48 bits
        DRAM byte address of row 0.
    row_stride : 32 bits
        Bytes from one DRAM row to the next (smaller than ``row_bytes`` is allowed:
        rows overlap in DRAM).
    rows : 9 bits
        Rows, 1 to the number of partitions.
    row_bytes : 21 bits
        Bytes per row.
    partition : 9 bits
        On-chip partition of row 0.
    offset : 21 bits
        Byte offset in each partition.
    tag : 8 bits
        Returned with the completion.
    """
    store: 1
    mem: 1
    addr: 48
    row_stride: 32
    rows: 9
    row_bytes: 21
    partition: 9
    offset: 21
    tag: 8


def dma_done_layout():
    """Completion of one descriptor: ``tag`` (copied) and ``error`` (:class:`DmaError`)."""
    return data.StructLayout({"tag": 8, "error": DmaError})



# ---------------------------------------------------------------------------------------
# Vector engine
# ---------------------------------------------------------------------------------------

class ActType(enum.Enum, shape=3):
    """Element type of a vector-engine destination."""
    INT8 = 0
    BF16 = 1
    FP16 = 2
    INT32 = 3
    FP32 = 4


#: Bytes per destination element, by :class:`ActType` name
#: (``{"INT8": 1, "BF16": 2, "FP16": 2, "INT32": 4, "FP32": 4}``). The one definition.
ACT_BYTES = {t.name: _name_bytes(t.name) for t in ActType}


class ActError(enum.Enum, shape=3):
    """Why the vector engine refused an :class:`ActCmd` (first failing check, in this
    order); nothing is read or written."""
    NONE = 0
    TYPES = 1       #: destination type does not fit the source type, or float unsupported
    PARTS = 2       #: ``parts`` is 0, or the tile leaves the source or destination partitions
    SRC_RANGE = 3   #: the source runs past PSUM or SBUF
    DST_RANGE = 4   #: the destination runs past SBUF, or ``dst_off`` is not element-aligned
    BIAS_RANGE = 5  #: ``bias_off`` not a multiple of 4, or past the end of SBUF
    OVERLAP = 6     #: an SBUF operand and the destination overlap, other than exactly in place
    OP = 7          #: ``op`` is 3, or a float ADD also asks for ``bias``


class ActOp(enum.Enum, shape=2):
    """What an ACT does with its operands (``op`` field; ``docs/vector.md``).

    COPY reads one operand (the ACT as it always was); ADD and MAX read a second one, at
    ``src2_off``, from the same memory and partitions. ADD is the residual connection
    (INT8: each operand with its own scale, ``scale`` and ``scale2``); MAX is one step
    of max pooling."""
    COPY = 0
    ADD = 1
    MAX = 2


class SrcType(enum.Enum, shape=2):
    """Element type of the operands (``src_type`` field). ACC: 4-byte INT32 or FP32, as
    ``src_fp`` says (PSUM or SBUF), the type of every ACT before this field existed.
    INT8, BF16, FP16: an activation in SBUF, widened exactly to INT32 or FP32 (``src_fp``
    must agree: 0 for INT8, 1 for BF16/FP16)."""
    ACC = 0
    INT8 = 1
    BF16 = 2
    FP16 = 3


#: Bytes per operand element, by :class:`SrcType` name (ACC: 4).
SRC_BYTES = {"ACC": 4, "INT8": 1, "BF16": 2, "FP16": 2}


class ActCmd(data.Struct):
    """One vector-engine command (ACT)::

        for k in range(parts), i in range(n):
            x1 = widen(SRC[src_p0 + k][element src_off + i*(src_skip + 1)])  - zp1
            x2 = widen(SRC[src_p0 + k][element src2_off + i*(src2_skip + 1)]) - zp2  (ADD, MAX)
            SBUF[dst_p0 + k][dst_off + i*size(dst_type)] = f(op(x1, x2), bias[k])

    Operands are ``src_type``: ACC (INT32 or FP32 as ``src_fp`` says, PSUM or SBUF) or
    an SBUF activation (INT8, BF16, FP16) widened exactly; ``zp1``/``zp2`` are
    subtracted from integer operands only. ``op`` COPY uses ``x1``; MAX takes the larger;
    ADD adds (INT8 destination: ``x1 * scale + x2 * scale2`` before the rounding shift,
    so each operand has its own scale). Then, for FP32: bias, ReLU, ``clip`` (at most
    the BF16 value ``hi``), the cast to ``dst_type`` (FP32, BF16 or FP16, RNE); for
    INT32: bias, then ``dst_type`` INT32 (ReLU, clip at the signed 16-bit ``hi``) or
    INT8 (requantise with ``scale``, ``shift``, ``zp``; ReLU clamps at ``zp``, clip at
    the signed ``hi[7:0]``). ``bias[k]`` is the 4-byte value at byte ``bias_off`` of
    SBUF partition ``dst_p0 + k`` (INT32 or FP32), or 0 without ``bias``. See
    ``docs/vector.md``. The fields after ``zp`` came with CNN support; all zero, they
    give the ACT as it was before them.

    Members
    -------
    src_psum : 1 bit    operands are in PSUM (1) or SBUF (0)
    src_fp : 1 bit      operands are floating point (1) or integer (0)
    dst_type : ActType
    relu, bias : 1 bit each
    parts : 9 bits      partitions (lanes) used
    n : 17 bits         elements per partition
    src_p0 : 9 bits
    src_off : 20 bits   first operand's element index (PSUM: ``bank * psum_depth +
                        entry``; SBUF: byte offset / element size)
    dst_p0 : 9 bits
    dst_off : 21 bits   destination byte offset
    bias_off : 21 bits  bias byte offset
    scale : signed 16, shift : 6 bits, zp : signed 8   (requantisation)
    op : ActOp          COPY reads one operand; ADD and MAX a second one too
    src_type : SrcType  operand element type: ACC (4 bytes), INT8, BF16, FP16
    src_skip, src2_skip : 3 bits   elements skipped after each one read (pooling strides)
    src2_off : 20 bits  second operand's element index (ADD, MAX)
    scale2 : signed 16  the second operand's multiplier (ADD to INT8)
    zp1, zp2 : signed 8   subtracted from integer operands (their zero points)
    clip : 1 bit, hi : 16 bits   upper bound (ReLU6): BF16 bits for a float result, a
                        signed INT16 for INT32, a signed INT8 in ``hi[7:0]`` for INT8
    """
    src_psum: 1
    src_fp: 1
    dst_type: ActType
    relu: 1
    bias: 1
    parts: 9
    n: 17
    src_p0: 9
    src_off: 20
    dst_p0: 9
    dst_off: 21
    bias_off: 21
    scale: signed(16)
    shift: 6
    zp: signed(8)
    op: ActOp
    src_type: SrcType
    src_skip: 3
    src2_skip: 3
    src2_off: 20
    scale2: signed(16)
    zp1: signed(8)
    zp2: signed(8)
    clip: 1
    hi: 16
