"""Test and measurement tops: never instantiated by the IP itself.

* :mod:`~hdl.tops.harness`: one engine with the memory subsystem and backdoor clients,
  what the engine testbenches (``tb/tensor``, ``tb/dma``, ``tb/vector``) drive;
* :mod:`~hdl.tops.simdram`: a DRAM model in gateware and the whole core on it
  (``neuron_core_sim``, the benchmarks' top);
* :mod:`~hdl.tops.synth_wrapper`: a pin-light wrapper for synthesis figures;
* :mod:`~hdl.tops.multipliers`: the PEs' multipliers side by side.
"""
