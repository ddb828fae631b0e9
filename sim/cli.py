"""``python -m sim.cli``: ncore's command line (the same as ``python -m sim.flow.cli``),
e.g. ``python -m sim.cli run model.onnx --input x.npy --backend board --port /dev/ttyUSB0``."""

import sys

from sim.flow.cli import main

if __name__ == "__main__":
    sys.exit(main())
