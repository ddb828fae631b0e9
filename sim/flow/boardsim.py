"""The simulated board as a serial port: ``with SimulatedBoard("default") as port: ...``.

Builds (once per configuration, cached) and starts the Verilator model of the ULX3S
board (top ``board_sim``, :mod:`hdl.tops.board_sim`) in a background thread, running
``tb.board.test_board.serve``, which puts the board's UART pins on a pseudo-terminal;
``port`` is that terminal's name, to be opened like ``/dev/ttyUSB0`` (pyserial, the
runtime's ``board`` backend, ``litex_server --uart --uart-port``). On leaving the block
the simulation is stopped, and :attr:`SimulatedBoard.stats` holds its line statistics
(``tb/board/test_board.py``); a failure inside the simulation (its watchdog, a
framing error) raises there.

``--port sim`` on the command line (``python -m sim.flow.cli run``, ``make demo
BACKEND=board PORT=sim``) uses this instead of a device.
"""

import contextlib
import json
import pathlib
import tempfile
import threading
import time

__all__ = ["SimulatedBoard", "board_bench"]


class SimulatedBoard:
    def __init__(self, config="default", *, max_cycles=500_000_000, start_timeout_s=1800):
        self.config = config
        self.max_cycles = max_cycles
        self.start_timeout_s = start_timeout_s
        self.stats = None
        self._error = None

    def __enter__(self):
        from sim.flow.runner import run_cocotb
        self._dir = tempfile.TemporaryDirectory(prefix="ncore-board-")
        d = pathlib.Path(self._dir.name)
        self._pty, self._stop, self._stats = d / "pty", d / "stop", d / "stats.json"
        env = {"NCORE_BOARD_PTY": str(self._pty), "NCORE_BOARD_STOP": str(self._stop),
               "NCORE_BOARD_STATS": str(self._stats),
               "NCORE_BOARD_MAX_CYCLES": str(self.max_cycles)}

        def run():
            try:
                run_cocotb("board_sim", "tb.board.test_board", "serve", self.config,
                           extra_env=env, rerun="the simulated board (sim.flow.boardsim)")
            except BaseException as e:          # reported on __exit__
                self._error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._pty.exists():
            if not self._thread.is_alive():
                raise RuntimeError(f"the simulated board did not start: {self._error}")
            if time.monotonic() > deadline:
                raise TimeoutError("the simulated board did not start in time")
            time.sleep(0.1)
        self.port = self._pty.read_text().strip()
        return self.port

    def __exit__(self, *exc):
        self._stop.write_text("stop")
        self._thread.join(timeout=600)
        if self._stats.exists():
            self.stats = json.loads(self._stats.read_text())
        self._dir.cleanup()
        if self._error is not None and exc[0] is None:
            raise self._error
        return False


def board_bench(port="sim", config="default", nbytes=1 << 16, log=print):
    """Host throughput through the board's UART: ``nbytes`` written to the DRAM window
    and read back (checked), in frames of 256 words.

    On the simulated board (``port="sim"``) the figures are board time at the board's
    baud rate and clock (:func:`sim.compiler.board.board_seconds`), from the bytes
    moved and the bridge's measured turnaround (cycles from the end of a read
    request to the first byte of its answer); on a real port, also the wall time.
    Returns (and writes to ``build/board-bench.json``) a dict of figures."""
    import numpy as np
    from hdl.config import named_config
    from hdl.tops.ulx3s import ULX3S
    from sim.compiler.board import BITS_PER_BYTE, MAX_WORDS, BoardLink, UARTBoneClient
    from sim.flow.rtl import BUILD
    cfg = named_config(config)
    if nbytes % 4 or not 0 < nbytes <= ULX3S.dram_bytes(cfg):
        raise ValueError(f"nbytes must be a multiple of 4 up to the DRAM window, not {nbytes}")
    data = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    board = SimulatedBoard(cfg) if port == "sim" else None
    result = {"port": port, "config": cfg.name, "payload_bytes": nbytes, "baud": ULX3S.baud,
              "f_clk_hz": ULX3S.f_clk, "line_limit_bytes_per_s": ULX3S.baud / BITS_PER_BYTE}
    with board if board is not None else contextlib.nullcontext(port) as dev_port:
        client = UARTBoneClient(dev_port, timeout=300 if board is not None else 5.0)
        link = BoardLink(client, cfg)
        t0 = time.perf_counter()
        link.write_dram(0, data)
        link.read_reg("ID")           # the writes are posted: wait until they are through
        t1 = time.perf_counter()
        w_bytes = client.bytes_out + client.bytes_in
        back = link.read_dram(0, nbytes)
        t2 = time.perf_counter()
        r_bytes = client.bytes_out + client.bytes_in - w_bytes
        client.close()
    if not np.array_equal(back, data):
        raise AssertionError("the DRAM window did not read back what was written")
    frames = -(-nbytes // (4 * MAX_WORDS))
    turnaround = 0
    if board is not None:
        turns = board.stats["turnaround_cycles"]
        turnaround = max(turns) if turns else 0
        result["bridge_turnaround_cycles_max"] = turnaround
        result["host_error_led"] = board.stats["leds"]["host_error"]
    line = BITS_PER_BYTE / ULX3S.baud
    w_s = w_bytes * line
    r_s = r_bytes * line + (frames + 1) * turnaround / ULX3S.f_clk
    result.update({
        "write_bytes_on_line": w_bytes, "read_bytes_on_line": r_bytes,
        "write_bytes_per_s": nbytes / w_s, "read_bytes_per_s": nbytes / r_s,
    })
    if board is None:
        result.update({"write_wall_bytes_per_s": nbytes / (t1 - t0),
                       "read_wall_bytes_per_s": nbytes / (t2 - t1)})
    log(f"board bench ({'simulated board' if board is not None else port}, {cfg.name}): "
        f"{nbytes} bytes each way at {ULX3S.baud / 1e6:g} Mbaud, line limit "
        f"{result['line_limit_bytes_per_s'] / 1e3:.1f} KB/s")
    log(f"  DRAM writes: {result['write_bytes_per_s'] / 1e3:.1f} KB/s payload "
        f"({w_bytes} bytes on the line)")
    log(f"  DRAM reads:  {result['read_bytes_per_s'] / 1e3:.1f} KB/s payload "
        f"({r_bytes} bytes on the line, bridge turnaround {turnaround} cycles)")
    if board is None:
        log(f"  wall: writes {result['write_wall_bytes_per_s'] / 1e3:.1f} KB/s, reads "
            f"{result['read_wall_bytes_per_s'] / 1e3:.1f} KB/s")
    out = BUILD / "board-bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result

