"""The ULX3S board top as the bitstream flow sees it, without building a bitstream:
amaranth-boards' platform prepares it (pins, clock constraint, PLL parameters, the
Yosys script), and the board's numbers hang together. ``make bitstream`` itself is
too long for the test tiers (``docs/board.md`` has its figures)."""

import re
import subprocess

import pytest

from hdl.board import BOARD_BAUD, BRIDGE_TIMEOUT_S, ecp5_pll_settings
from hdl.config import named_config
from hdl.tops.ulx3s import LEDS, ULX3S, BoardSpec
from sim.flow.bitstream import BOARDS, prepare, program_command


@pytest.fixture(scope="module")
def plan():
    return prepare("ulx3s", "4x4")


def test_board_numbers():
    assert ULX3S.pll == ecp5_pll_settings(25e6, 45e6)
    assert ULX3S.f_clk == 45e6 and ULX3S.baud == BOARD_BAUD == 3_000_000
    assert ULX3S.divisor == 15                              # 45 MHz / 3 Mbaud exactly
    args = ULX3S.board_core_args(named_config("default"))
    assert args == {"dram_size": 1 << 17, "divisor": 15,
                    "timeout": round(BRIDGE_TIMEOUT_S * 45e6)}
    # a 12-bit AXI port addresses 4 KiB: the window shrinks to it
    assert ULX3S.dram_bytes(named_config("min")) == 1 << 12


def test_bad_board_parameters_fail_at_elaboration():
    cfg = named_config("default")
    with pytest.raises(ValueError, match="baud"):
        BoardSpec("x", 25e6, 45e6, 1 << 17, 20_000_000).check(cfg)
    with pytest.raises(ValueError, match="power of two"):
        BoardSpec("x", 25e6, 45e6, 3 << 15, BOARD_BAUD).check(cfg)
    with pytest.raises(ValueError, match="PLL output"):
        BoardSpec("x", 25e6, 500e6, 1 << 17, BOARD_BAUD).check(cfg)
    ULX3S.check(cfg)


def test_pins_and_clock_constraint(plan):
    lpf = plan.files["ncore.lpf"]
    leds = [(f"led_{i}__io", s) for i, s in enumerate(("B2", "C2", "C1", "D2", "D1", "E2",
                                                         "E1", "H3"))]
    for port, site in [("clk25_0__io", "G2"), ("uart_0__rx__io", "M1"),
                       ("uart_0__tx__io", "L4"), ("button_pwr_0__io", "D6"), *leds]:
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf, port
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    assert len(LEDS) == 8


def test_pll_parameters(plan):
    il = plan.files["ncore.il"]
    cell = il[il.index("cell \\EHXPLLL"):]
    cell = cell[:cell.index("end\n")]
    want = {"CLKI_DIV": 5, "CLKFB_DIV": 9, "CLKOP_DIV": 13, "CLKOP_CPHASE": 6}
    for name, value in want.items():
        found = re.search(rf"parameter \\{name} (\d+)", cell)
        assert found and int(found.group(1)) == value, (name, cell)
    assert '"CLKOP"' in cell            # FEEDBK_PATH


def test_yosys_script_keeps_pe_hierarchy(plan):
    assert "setattr -mod -set keep_hierarchy 1 *pe_r*_c*" in plan.files["ncore.ys"]
    assert "synth_ecp5" in plan.files["ncore.ys"]


def test_program_command():
    argv = program_command("ulx3s")
    assert argv[1:3] == ["--board", "ulx3s"] and argv[-1].endswith("boards/ulx3s/ncore.bit")
    assert "--write-flash" in program_command("ulx3s", flash=True)
    # the loader runs (its system libraries are installed)
    out = subprocess.run([argv[0], "--Version"], capture_output=True, text=True)
    assert out.returncode == 0 and "openFPGALoader" in out.stdout + out.stderr
    assert set(BOARDS) == {"ulx3s"}
    with pytest.raises(ValueError, match="unknown board"):
        program_command("icebreaker")


def test_make_program_dry_run():
    out = subprocess.run(["make", "-s", "program", "FLASH=1", "PROGRAM_ARGS=--dry-run"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--board ulx3s --write-flash" in out.stdout


def test_led_table_in_docs_matches_the_top():
    """docs/board.md's LED table is what the board top drives (``LEDS``)."""
    import pathlib
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "board.md").read_text()
    words = {"busy": "busy", "done": "done", "error": "error", "host link error": "host_error",
             "the core's interrupt": "irq", "off": None, "heartbeat": "heartbeat"}
    table = text[text.index("| LED | shows |"):]
    table = table[:table.index("\n\n")]
    shown = {}
    for leds, what in re.findall(r"^\| ([\d, ]+) \| ([^|(,:]+)", table, re.M):
        for n in leds.split(","):
            shown[int(n)] = words[what.strip()]
    assert shown == dict(enumerate(LEDS))
