"""The tool flow: Verilog cache, cocotb runner, synthesis, waves, CLI, doc generators."""
