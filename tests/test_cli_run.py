"""``python -m sim.flow.cli run``: compile an ONNX file and run it (golden backend here)."""

import numpy as np
import onnx

from sim.flow.cli import main
from sim.compiler.onnx_build import mlp_float


def _files(tmp_path, rng):
    ws = [rng.standard_normal((8, 6)).astype(np.float32),
          rng.standard_normal((6, 3)).astype(np.float32)]
    bs = [rng.standard_normal(6).astype(np.float32), None]
    model = mlp_float(ws, bs, [True, False])
    onnx.save(model, tmp_path / "m.onnx")
    x = rng.standard_normal((5, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return ws, bs, x


def test_run_prints_outputs_and_counters(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ws, bs, x = _files(tmp_path, rng)
    rc = main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npy"),
               "--config", "4x4-fp", "--output", str(tmp_path / "y.npy"), "--check"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "2 layers, bf16 on 4x4" in out and "tensor_macs 330" in out
    y = np.load(tmp_path / "y.npy")
    ref = np.maximum(x @ ws[0] + bs[0], 0) @ ws[1]
    assert y.shape == (5, 3) and np.allclose(y, ref, rtol=0.05, atol=0.05)


def test_run_listing_and_errors(tmp_path, capsys):
    rng = np.random.default_rng(1)
    _files(tmp_path, rng)
    assert main(["run", str(tmp_path / "m.onnx"), "--config", "4x4-fp", "--listing"]) == 0
    out = capsys.readouterr().out
    assert "MATMUL" in out and "END" in out
    # the default configuration is INT8-only: a float model needs a float config
    assert main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npy")]) == 2
    assert "has no bf16" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.onnx")]) == 2
    assert "error" in capsys.readouterr().err


def test_run_on_a_chip(tmp_path, capsys):
    """``run --cores N``: pipelined and data parallel on the golden chip model give the
    single core's output; the board backend and a bad core count are refused."""
    rng = np.random.default_rng(2)
    _files(tmp_path, rng)
    model, inp = str(tmp_path / "m.onnx"), str(tmp_path / "x.npy")
    assert main(["run", model, "--input", inp, "--config", "4x4-fp",
                 "--output", str(tmp_path / "y1.npy")]) == 0
    capsys.readouterr()
    for mode in ("pipeline", "data"):
        out_file = str(tmp_path / f"y-{mode}.npy")
        assert main(["run", model, "--input", inp, "--config", "4x4-fp", "--cores", "2",
                     "--mode", mode, "--output", out_file, "--check"]) == 0
        out = capsys.readouterr().out
        assert "chip of 2 cores of 4x4" in out and mode in out and "core 1:" in out
        np.testing.assert_array_equal(np.load(out_file), np.load(tmp_path / "y1.npy"))
    assert main(["run", model, "--input", inp, "--config", "4x4-fp", "--cores", "2",
                 "--backend", "board", "--port", "sim"]) == 2
    assert "one core" in capsys.readouterr().err
    assert main(["run", model, "--input", inp, "--config", "4x4-fp", "--cores", "9"]) == 2
    assert "cores must be" in capsys.readouterr().err


def test_run_refuses_files_that_are_not_models(tmp_path, capsys):
    """A corrupt, empty or unreadable file gives one line on stderr, exit code 2, no
    traceback (issue 27)."""
    rng = np.random.default_rng(5)
    (tmp_path / "noise.onnx").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    for name, words in [("noise.onnx", "does not decode"), ("empty.onnx", "ir_version"),
                        ("text.onnx", "not a valid ONNX model"),
                        ("missing.onnx", "cannot read it")]:
        assert main(["run", str(tmp_path / name)]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err
        assert "Traceback" not in err


def test_run_dram_option(tmp_path, capsys):
    """``--dram-mib``: too little DRAM is refused with what to raise; enough runs."""
    rng = np.random.default_rng(6)
    _files(tmp_path, rng)
    args = ["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npy"),
            "--config", "4x4-fp"]
    assert main(args + ["--dram-mib", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "bytes of DRAM" in err and "--dram-mib" in err
    assert main(args + ["--dram-mib", "0.5"]) == 0
    assert main(args + ["--dram-mib", "-1"]) == 2
    assert "positive" in capsys.readouterr().err
