"""The simulated ULX3S board over its UART, as host software sees it.

One Verilator model of the board top minus its PLL (``board_sim``: UART bridge, host
decoder, NeuronCore, block-RAM DRAM window) runs with its serial pins on a
pseudo-terminal (:class:`sim.flow.boardsim.SimulatedBoard`). Through that terminal, in
one simulation (a build and a start cost more than the checks):

* registers: ID, VERSION and CONFIG read their documented values
  (:mod:`hdl.regmap`), a RW register reads back what was written, an address outside
  the host map reads 0 (DECERR);
* the DRAM window: random writes and reads (incrementing and fixed bursts) against a
  model of the memory;
* a compiled quantised MLP end to end through the runtime's ``board`` backend: the
  whole DRAM image after the run bit-exact against the ISS; then a second input on
  the same device, which sends only what changed and reads only the output;
* bad frames: an unknown command sent while the core runs a program; the program
  still finishes with the right result and the board's host-error LED is lit;
* a third-party client: LiteX's ``litex_server --uart`` and ``RemoteClient``.
"""

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from hdl.board import HOST_DRAM_BASE, HOST_REG_BASE
from hdl.config import named_config
from hdl.regmap import ID_VALUE, VERSION, RegisterMap
from hdl.tops.ulx3s import ULX3S
from sim.compiler.board import BoardLink, UARTBoneClient
from sim.compiler.lower import compile_net, run_compiled
from sim.compiler.runtime import Device
from sim.flow.boardsim import SimulatedBoard

from test_compiler import random_quant_net

pytestmark = pytest.mark.rtl

CONFIG = "4x4"
SEED = 25


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def check_registers(link, cfg):
    regs = RegisterMap(cfg)
    assert link.read_reg("ID") == ID_VALUE
    assert link.read_reg("VERSION") == VERSION
    assert link.read_reg("CONFIG") == regs["CONFIG"].reset, "CONFIG is not the configuration's"
    for v in (0x1234_5678, 0, 0xFFFF_FFFF):
        link.write_reg("WATCHDOG", v)
        assert link.read_reg("WATCHDOG") == v
    link.write_reg("WATCHDOG", 0)
    # outside every target of the host decoder: DECERR, read as 0
    assert link.client.read(HOST_REG_BASE + 0x1000, 2) == [0, 0]


def check_dram(link, dram_bytes, rng):
    model = {}
    for _ in range(12):
        n = int(rng.integers(1, 300))
        addr = 4 * int(rng.integers(0, dram_bytes // 4 - n))
        words = rng.integers(0, 1 << 32, n, dtype=np.uint64).tolist()
        link.client.write(HOST_DRAM_BASE + addr, words)
        model.update({addr + 4 * i: w for i, w in enumerate(words)})
    for addr in sorted(model)[::97]:
        n = 1
        while n < 40 and addr + 4 * n in model:
            n += 1
        got = link.client.read(HOST_DRAM_BASE + addr, n)
        assert got == [model[addr + 4 * i] for i in range(n)], f"seed {SEED}: DRAM at {addr:#x}"
    # fixed bursts: every word goes to one address (the last stays), reads repeat it
    link.client.write(HOST_DRAM_BASE + 0x40, [1, 2, 3, 0xCAFE_F00D], incr=False)
    assert link.client.read(HOST_DRAM_BASE + 0x40, 3, incr=False) == [0xCAFE_F00D] * 3
    assert link.client.read(HOST_DRAM_BASE + 0x44, 1) != [0xCAFE_F00D] or 0x44 in model
    # the last word of the window, and the first beyond it (DECERR: 0)
    link.client.write(HOST_DRAM_BASE + dram_bytes - 4, [0x5A5A_A5A5])
    assert link.client.read(HOST_DRAM_BASE + dram_bytes - 4, 2) == [0x5A5A_A5A5, 0]


def check_model(link, cfg, rng):
    net = random_quant_net(rng, [40, 24, 10])
    c = compile_net(net, cfg, batch=3)
    # garbage where the model will live: the run must not depend on what was there
    # (the host skips the ranges the program writes before reading them)
    link.write_dram(0, rng.integers(0, 256, -(-c.size // 4) * 4, dtype=np.uint8))
    dev = Device(cfg, "board", link=link)
    x1 = rng.integers(-128, 128, (40, 3)).astype(np.int8)
    _, r, _ = run_compiled(c, bits=x1, device=dev, image=False)
    dev._stale[:] = True            # read all of it back, not only what the run wrote
    dev.sync(c.size)
    dram = dev.dram[:c.size]
    _, r_iss, dram_iss = run_compiled(c, bits=x1, backend="golden")
    assert r.done and r.error == "NONE"
    diff = np.flatnonzero(dram != dram_iss)
    assert diff.size == 0, f"seed {SEED}: {diff.size} DRAM bytes differ from the ISS, first " \
                           f"at {diff[0]:#x}"
    assert r.counters["instructions"] == r_iss.counters["instructions"]
    assert r.counters["tensor_macs"] == r_iss.counters["tensor_macs"]
    # the second input: only the changed blocks go up, only the output comes back
    before = link.client.bytes_out + link.client.bytes_in
    x2 = rng.integers(-128, 128, (40, 3)).astype(np.int8)
    _, _, _ = run_compiled(c, bits=x2, device=dev, image=False)
    moved = link.client.bytes_out + link.client.bytes_in - before
    got = c.output_bits(dev.dram)
    _, _, dram2 = run_compiled(c, bits=x2, backend="golden")
    assert np.array_equal(got, c.output_bits(dram2)), f"seed {SEED}: second inference"
    assert moved < c.size, f"the second inference moved {moved} bytes, the image is {c.size}"
    return c, dev


def check_bad_frames_during_run(link, c, dev, rng):
    """Start the program by hand, then send an unknown command (its 4 address bytes
    are consumed, then it is dropped) and a frame with a bad command in the middle of
    polling; the run must end with the right result."""
    x = rng.integers(-128, 128, (40, 3)).astype(np.int8)
    dev.write(0, c.image_for(x))
    dev._upload()
    from sim.compiler.driver import busy, start_writes
    for name, value in start_writes(link.regs, c.prog_addr, (0, c.size), 100_000):
        link.write_reg(name, value)
    link.client.port.write(bytes([0x55, 1, 0, 0, 0, 0]))
    link.client.port.write(bytes([0x00, 3, 0x12, 0x34, 0x56, 0x78]))
    for _ in range(10_000):
        if not busy(link.regs, link.read_reg("STATUS")):
            break
    else:
        raise AssertionError("the core never finished after the bad frames")
    assert link.regs["STATUS"].decode(link.read_reg("STATUS"))["DONE"] == 1
    L = c.output_layout
    got = link.read_dram(L.c_addr, L.c_bytes)
    _, _, want = run_compiled(c, bits=x, backend="golden")
    assert np.array_equal(got, want[L.c_addr:L.c_addr + L.c_bytes]), f"seed {SEED}"


def check_litex_remote_client(port_name, cfg):
    from litex.tools.litex_client import RemoteClient
    tcp = _free_port()
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "litex_server"), "--uart",
         "--uart-port", port_name, "--uart-baudrate", str(ULX3S.baud), "--bind-port", str(tcp)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        client = RemoteClient(port=tcp)
        for _ in range(100):
            try:
                client.open()
                break
            except OSError:
                time.sleep(0.2)
        client.socket.settimeout(60)
        assert client.read(HOST_REG_BASE + RegisterMap(cfg)["ID"].offset) == ID_VALUE
        words = [0x0BAD_CAFE, 0x1234_5678, 0xFFFF_0000, 7]
        client.write(HOST_DRAM_BASE + 0x800, words)
        assert client.read(HOST_DRAM_BASE + 0x800, length=4) == words
        client.close()
    except Exception:
        server.terminate()
        print(server.communicate(timeout=10)[0].decode(errors="replace"))
        raise
    server.terminate()
    server.communicate(timeout=10)


def test_board_over_uart():
    cfg = named_config(CONFIG)
    rng = np.random.default_rng(SEED)
    board = SimulatedBoard(cfg)
    with board as port:
        client = UARTBoneClient(port, timeout=120)
        link = BoardLink(client, cfg)
        check_registers(link, cfg)
        check_dram(link, ULX3S.dram_bytes(cfg), rng)
        c, dev = check_model(link, cfg, rng)
        check_bad_frames_during_run(link, c, dev, rng)
        client.close()
        check_litex_remote_client(port, cfg)
    s = board.stats
    assert s["framing_errors_from_board"] == 0
    assert s["leds"]["host_error"] == 1, "the bad frames did not light the host-error LED"
    assert s["leds"]["done"] == 1 and s["leds"]["error"] == 0 and s["leds"]["busy"] == 0


def test_ulx3s_top_pins():
    """The board top itself (PLL stand-in, reset synchroniser, LEDs) through its pins:
    ``tb/board/test_ulx3s.py``."""
    from sim.flow.runner import run_cocotb
    run_cocotb("ulx3s", "tb.board.test_ulx3s", "pins", CONFIG)


def test_cli_run_on_simulated_board(tmp_path):
    """``python -m sim.cli run model.onnx --backend board --port sim``: a QDQ model's
    output from the simulated board equals the golden backend's."""
    from sim.compiler.onnx_build import mlp_qdq
    rng = np.random.default_rng(SEED + 1)
    model = tmp_path / "mlp.onnx"
    model.write_bytes(mlp_qdq(random_quant_net(rng, [24, 16, 6])).SerializeToString())
    np.save(tmp_path / "x.npy", rng.standard_normal((5, 24)).astype(np.float32))
    outs = {}
    for backend in ("golden", "board"):
        out = tmp_path / f"y-{backend}.npy"
        cmd = [sys.executable, "-m", "sim.cli", "run", str(model), "--input",
               str(tmp_path / "x.npy"), "--config", CONFIG, "--backend", backend,
               "--output", str(out)] + (["--port", "sim"] if backend == "board" else [])
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        outs[backend] = np.load(out)
    assert "bytes over the UART" in res.stdout
    assert np.array_equal(outs["board"], outs["golden"])
