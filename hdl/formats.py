"""Data formats shared by the gateware, the golden model and the testbenches.

Every payload that crosses a block boundary is defined here once, as an Amaranth
``data`` layout built from a :class:`~hdl.config.CoreConfig`. Testbenches pack and
unpack through :func:`field_slices` rather than hand-coding bit offsets.
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, enum

from .config import CoreConfig, DTYPES

__all__ = [
    "OPERAND_SHAPE", "Dtype", "operand_shape", "column_layout", "result_layout",
    "field_slices",
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
