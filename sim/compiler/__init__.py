"""From ONNX to ncore programs: the network, front end, lowering, GEMM tiling, runtime, demo."""
