"""GTKWave save files that group the systolic array's signals for reading waves."""

import pathlib

from hdl.config import named_config

__all__ = ["write_gtkw"]


def _group(name, signals):
    lines = [f"@800200", f"-{name}"]
    lines += ["@28" if s.endswith(("valid", "ready", "last", "sel")) else "@22" for s in []]
    for s in signals:
        lines.append("@28" if s.split(".")[-1].endswith(("valid", "ready")) else "@24")
        lines.append(s)
    lines += ["@1000200", f"-{name}"]
    return lines


def write_gtkw(top, config, fst_path):
    """Write ``<fst>.gtkw`` next to ``fst_path``: streams, counters, then one group per
    array row (moving operand and partial sum of each PE), then the de-skew outputs."""
    cfg = named_config(config)
    fst_path = pathlib.Path(fst_path)
    t = f"TOP.{top}"
    lines = [f'[dumpfile] "{fst_path.name}"', "[timestart] 0", "[sst_expanded] 1",
             "@28", f"{t}.clk", f"{t}.rst"]
    for port in ("i_w", "i_x", "o_y"):
        lines += _group(f"stream {port}", [f"{t}.{port}__valid", f"{t}.{port}__ready",
                                           f"{t}.{port}__payload[{_payload_msb(cfg, port)}:0]"])
    lines += _group("counters", [f"{t}.o_active[47:0]", f"{t}.o_cycles[47:0]",
                                 f"{t}.inflight", f"{t}.loaded[1:0]", f"{t}.wbuf", f"{t}.xbuf"])
    if top == "systolic_array":
        for k in range(cfg.rows):
            sigs = []
            for j in range(cfg.cols):
                pe = f"{t}.pe_r{k}_c{j}"
                sigs += [f"{pe}.o_x[7:0]", f"{pe}.o_psum[31:0]"]
            lines += _group(f"row {k}", sigs)
    path = fst_path.with_suffix(".gtkw")
    path.write_text("\n".join(lines) + "\n")
    return path


def _payload_msb(cfg, port):
    from hdl.formats import column_layout, result_layout
    layout = result_layout(cfg) if port == "o_y" else column_layout(cfg)
    return layout.size - 1
