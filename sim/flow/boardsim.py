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

import json
import pathlib
import tempfile
import threading
import time

__all__ = ["SimulatedBoard"]


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
