# ncore: every user-facing command. On a fresh machine `make sim` / `make test` create
# .venv and install the project (PyPI only) before running anything.

PYTHON    ?= python3
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
CONFIG    ?=
JOBS      ?= auto
BOARD     ?= ulx3s
BACKEND   ?= verilator
PORT      ?=
PYTEST    := $(PY) -m pytest -p no:cacheprovider

export CONFIG

.PHONY: all venv test regress sim unit verilog lint synth bench demo formal mutate waves bitstream program clean distclean help

help:
	@echo "make test     the suite CI runs: golden model, Amaranth-simulator units, Verilator testbenches"
	@echo "make regress  make test plus the long tier: bigger sweeps, 8x8 float array, lint 16x16, demo"
	@echo "make sim      every cocotb testbench on Verilator (WAVES=1 for FST, SEED=n to reproduce)"
	@echo "make unit     fast tests only (no Verilator)"
	@echo "make verilog  build/verilog/<top>.v for every top  (CONFIG=name|file.json; TARGET=ecp5: DSP primitives)"
	@echo "make lint     verilator --lint-only -Wall on every top (default, 8x4, 1x1, min, 16x16)"
	@echo "make synth    yosys + nextpnr-ecp5 figures -> build/synth/<top>-<device>.json"
	@echo "make bench    array, tensor-engine and DMA throughput on Verilator -> build/bench.json"
	@echo "make demo     digits MLP and CNN: NumPy/scikit-learn -> ONNX -> ncore on Verilator vs onnxruntime"
	@echo "              BACKEND=board PORT=/dev/ttyUSB0: on a board (PORT=sim: the simulated board)"
	@echo "make bitstream [BOARD=ulx3s]  build/boards/<board>/ncore.bit + ncore-report.json"
	@echo "make program  load the bitstream with openFPGALoader (FLASH=1: into the flash)"
	@echo "make formal   SymbiYosys proofs: stream/AXI rules, FIFO levels, arbiter fairness, DMA window"
	@echo "make mutate   gateware mutation testing: sim/flow/mutants.py -> build/mutate.json"
	@echo "make waves TEST=<pytest id>  rerun one test with waves; prints the gtkwave/surfer command"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,synth]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PYTEST) -n $(JOBS) -v --durations=25 -m "not regress" tests

regress: $(STAMP)
	NCORE_TIER=regress $(PYTEST) -n $(JOBS) -v --durations=40 tests

sim: $(STAMP)
	$(PYTEST) -n $(JOBS) -v -m "rtl and not regress" tests

unit: $(STAMP)
	$(PYTEST) -n $(JOBS) -v -m "not rtl and not regress" tests

verilog: $(STAMP)
	$(PY) -m sim.flow.cli verilog $(if $(TARGET),--target $(TARGET))

lint: $(STAMP)
	$(PY) -m sim.flow.cli lint

synth: $(STAMP)
	$(PY) -m sim.flow.cli synth

bench: $(STAMP)
	$(PY) -m sim.flow.cli bench

demo: $(STAMP)
	$(PY) -m sim.compiler.demo --backend $(BACKEND) $(if $(PORT),--port $(PORT))
	$(if $(filter board,$(BACKEND)),@echo "CNN demo: not on a board yet (BACKEND=golden or verilator)",$(PY) -m sim.compiler.cnn_demo --backend $(BACKEND))

bitstream: $(STAMP)
	$(PY) -m sim.flow.cli bitstream --board $(BOARD)

program: $(STAMP)
	$(PY) -m sim.flow.cli program --board $(BOARD) $(if $(FLASH),--flash) $(PROGRAM_ARGS)

formal: $(STAMP)
	$(PY) -m sim.flow.cli formal $(FORMAL_ARGS)

mutate: $(STAMP)
	$(PY) -m sim.flow.cli mutate $(MUTATE_ARGS)

waves: $(STAMP)
	@test -n "$(TEST)" || { echo "usage: make waves TEST='tests/test_rtl_core.py::test_core[test_smoke-default]'"; exit 2; }
	$(PY) -m sim.flow.cli waves '$(TEST)'

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV)
