"""The digits demo (sim/compiler/demo.py) end to end on the golden backend, on a few test images:
scikit-learn training, ONNX export and import, onnxruntime, both ncore modes, the JSON."""

import json

from sim.compiler import demo


def test_demo_golden_quick(tmp_path):
    path = tmp_path / "d.json"
    rc = demo.main(["--backend", "golden", "--limit", "40", "--json", str(path)])
    report = json.loads(path.read_text())
    assert rc == 0, report["failures"]
    assert report["ok"] and report["failures"] == []
    assert report["backend"] == "golden"
    assert report["dataset"]["test"] == 40 and report["dataset"]["test_total"] == 360
    for k in ("fp32_accuracy", "qdq_accuracy"):
        assert 0 <= report["ort"][k] <= 1
    modes = report["modes"]
    assert set(modes) == {"bf16", "int8"}
    assert modes["bf16"]["config"] == "8x8-fp" and modes["int8"]["config"] == "default"
    for name, m in modes.items():
        assert m["batch"] == 40
        assert 0 <= m["accuracy"] <= 1, name
        assert m["agreement_with_ort_fp32"] > 0.8, name
        # the golden backend is the ISS: nothing to compare it with, but the fields exist
        assert "bit_exact" in m and m["bit_exact"] is None
        assert "layers_bit_exact" in m
        assert m["layers_compose"] is True
        assert m["macs"] == sum(L["macs"] for L in m["layers"]) == 40 * (64 * 64 + 64 * 10)
        assert [(L["M"], L["N"], L["K"]) for L in m["layers"]] == [(64, 40, 64), (10, 40, 64)]
        assert all("bit_exact" in L for L in m["layers"])
        assert m["cycles"] is None and m["utilization"] is None      # no clock on golden
    # INT8 on ncore is the QDQ model as onnxruntime runs it, up to requantiser rounding
    assert modes["int8"]["agreement_with_ort_qdq"] > 0.95
