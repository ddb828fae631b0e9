"""GTKWave save files that group the systolic array's signals for reading waves."""

import pathlib

from hdl.config import named_config
from hdl.formats import column_layout, result_layout

__all__ = ["write_gtkw"]

# GTKWave trace flags: 0x22 = hex, 0x28 = binary, 0x200 / 0x1000 open / close a group.
_HEX, _BIN = "@22", "@28"


def _vec(name, width):
    return name if width == 1 else f"{name}[{width - 1}:0]"


def _group(title, signals):
    lines = ["@800200", f"-{title}"]
    for name, width in signals:
        lines += [_BIN if width == 1 else _HEX, _vec(name, width)]
    return lines + ["@1000200", f"-{title}"]


def write_gtkw(top, config, fst_path):
    """Write ``<test>.gtkw`` next to ``fst_path``: clock and reset, the three streams,
    the bookkeeping and counters, then one group per array row with each PE's moving
    operand and partial sum (hierarchy as Verilator writes it: ``<top>.pe_r<k>_c<j>``)."""
    cfg = named_config(config)
    fst_path = pathlib.Path(fst_path)
    t = top
    lines = [f'[dumpfile] "{fst_path.name}"', "[timestart] 0"]
    lines += _group("clock", [(f"{t}.clk", 1), (f"{t}.rst", 1)])
    col_w = column_layout(cfg).size
    for port, width in (("i_w", col_w), ("i_x", col_w), ("o_y", result_layout(cfg).size)):
        lines += _group(f"stream {port}", [(f"{t}.{port}__valid", 1), (f"{t}.{port}__ready", 1),
                                           (f"{t}.{port}__payload", width)])
    inflight_w = (cfg.fifo_depth).bit_length()
    lines += _group("control", [(f"{t}.loaded", 2), (f"{t}.wbuf", 1), (f"{t}.xbuf", 1),
                                (f"{t}.inflight", inflight_w),
                                (f"{t}.o_active", 48), (f"{t}.o_cycles", 48)])
    for k in range(cfg.rows):
        sigs = []
        for j in range(cfg.cols):
            pe = f"{t}.pe_r{k}_c{j}"
            sigs += [(f"{pe}.o_x", 8), (f"{pe}.o_psum", 32)]
        lines += _group(f"row {k}", sigs)
    path = fst_path.with_suffix(".gtkw")
    path.write_text("\n".join(lines) + "\n")
    return path
