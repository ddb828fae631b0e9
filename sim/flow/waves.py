"""GTKWave save files that group the systolic array's signals for reading waves."""

import pathlib

from amaranth.hdl import Value

from hdl.config import named_config

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
    from sim.flow.rtl import TOPS
    cfg = named_config(config)
    fst_path = pathlib.Path(fst_path)
    t = top
    lines = [f'[dumpfile] "{fst_path.name}"', "[timestart] 0"]
    lines += _group("clock", [(f"{t}.clk", 1), (f"{t}.rst", 1)])
    # every port, grouped by its first name component (a stream's valid/ready/payload)
    dut = TOPS[top](cfg)
    groups = {}
    for path, _member, value in dut.signature.flatten(dut):
        name = f"{t}.{'__'.join(map(str, path))}"
        groups.setdefault(path[0], []).append((name, len(Value.cast(value))))
    for name, sigs in groups.items():
        lines += _group(name, sigs)
    if top != "systolic_array":
        return _write(fst_path, lines)
    inflight_w = (cfg.fifo_depth).bit_length()
    lines += _group("control", [(f"{t}.loaded", 2), (f"{t}.wbuf", 1), (f"{t}.xbuf", 1),
                                (f"{t}.inflight", inflight_w)])
    for k in range(cfg.rows):
        sigs = []
        for j in range(cfg.cols):
            pe = f"{t}.pe_r{k}_c{j}"
            sigs += [(f"{pe}.o_x", 8), (f"{pe}.o_psum", 32)]
        lines += _group(f"row {k}", sigs)
    return _write(fst_path, lines)


def _write(fst_path, lines):
    path = fst_path.with_suffix(".gtkw")
    path.write_text("\n".join(lines) + "\n")
    return path
