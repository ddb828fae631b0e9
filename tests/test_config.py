# amaranth: UnusedElaboratable=no
"""CoreConfig checks, JSON round trip, and elaboration errors with their exact messages."""

import pytest

from hdl.config import PE_LATENCY, CoreConfig, NAMED_CONFIGS, named_config
from hdl.pe import PE
from hdl.systolic import SystolicArray
from hdl.tops.synth_wrapper import SynthWrapper


@pytest.mark.parametrize("kwargs,message", [
    ({"rows": 0}, "rows must be a positive integer, not 0"),
    ({"rows": -3}, "rows must be a positive integer, not -3"),
    ({"rows": 2.0}, "rows must be a positive integer, not 2.0"),
    ({"rows": True}, "rows must be a positive integer, not True"),
    ({"cols": 0}, "cols must be a positive integer, not 0"),
    ({"cols": 257}, "cols must be at most 256, not 257"),
    ({"dtypes": ()}, "dtypes must name at least one of ('int8', 'bf16', 'fp16')"),
    ({"dtypes": "int8"}, "dtypes must be a tuple of names from ('int8', 'bf16', 'fp16'), not 'int8'"),
    ({"dtypes": ("int4",)}, "dtype 'int4' is not supported; choose from ('int8', 'bf16', 'fp16')"),
    ({"dtypes": ("int8", "int8")}, "dtypes must not repeat a type, not ('int8', 'int8')"),
    ({"acc_width": 16}, "acc_width must be 32 (INT32/FP32 accumulation), not 16"),
    ({"rows": 8, "cols": 8, "out_fifo_depth": 4},
     f"out_fifo_depth must be at least {8 + 8 - 1 + PE_LATENCY + 4} for a 8x8 array "
     "(its pipeline latency plus four), not 4"),
    ({"out_fifo_depth": 100}, "out_fifo_depth must be a power of two, not 100"),
    ({"sbuf_word_bytes": 12}, "sbuf_word_bytes must be a power of two, not 12"),
    ({"sbuf_word_bytes": 2}, "sbuf_word_bytes must be from 4 to 64, not 2"),
    ({"sbuf_bytes": 0}, "sbuf_bytes must be a positive integer, not 0"),
    ({"sbuf_bytes": 100}, "sbuf_bytes must be a multiple of sbuf_word_bytes (8), not 100"),
    ({"sbuf_bytes": 1 << 21}, "sbuf_bytes must be at most 1048576, not 2097152"),
    ({"psum_banks": 17}, "psum_banks must be at most 16, not 17"),
    ({"psum_depth": 100}, "psum_depth must be a power of two, not 100"),
    ({"psum_depth": 1 << 17}, "psum_depth must be from 1 to 65536, not 131072"),
    ({"psum_banks": 1, "psum_depth": 1}, "psum_banks * psum_depth must be at least 2 (one "
     "bank of depth 1 leaves a PSUM partition a single entry)"),
    ({"sbuf_bytes": 8}, "sbuf_bytes must hold at least two words (16 bytes), not 8"),
    ({"axi_data_bytes": 16}, "axi_data_bytes must equal sbuf_word_bytes (8): the DMA moves "
                             "one SBUF word per beat, not 16"),
    ({"axi_data_bytes": 3}, "axi_data_bytes must be a power of two, not 3"),
    ({"axi_addr_width": 8}, "axi_addr_width must be from 12 to 48, not 8"),
    ({"axi_addr_width": 64}, "axi_addr_width must be at most 48, not 64"),
    ({"axi_id_width": 0}, "axi_id_width must be a positive integer, not 0"),
    ({"dma_outstanding": 33}, "dma_outstanding must be at most 32, not 33"),
    ({"dma_max_burst": 257}, "dma_max_burst must be at most 256, not 257"),
    ({"subnormals": 0}, "subnormals must be True or False, not 0"),
    ({"subnormals": False}, "subnormals=False (flush to zero) needs a float type (bf16 or fp16) "
                            "in dtypes, not ('int8',)"),
])
def test_illegal_config_message(kwargs, message):
    with pytest.raises(ValueError) as exc:
        CoreConfig(**kwargs)
    assert str(exc.value) == message


@pytest.mark.parametrize("name", list(NAMED_CONFIGS))
def test_json_round_trip(name):
    cfg = NAMED_CONFIGS[name]
    again = CoreConfig.from_json(cfg.to_json())
    assert again == cfg and again.key == cfg.key and hash(again) == hash(cfg)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown CoreConfig field\\(s\\): depth"):
        CoreConfig.from_dict({"rows": 4, "depth": 3})


def test_named_config_spec_forms(tmp_path):
    assert named_config("8x4") == CoreConfig(rows=8, cols=4)
    assert named_config('{"rows": 2, "cols": 3}') == CoreConfig(rows=2, cols=3)
    f = tmp_path / "c.json"
    f.write_text(CoreConfig(rows=5, cols=7).to_json())
    assert named_config(str(f)) == CoreConfig(rows=5, cols=7)
    with pytest.raises(ValueError, match="unknown configuration 'nope'"):
        named_config("nope")


def test_fifo_depth_is_power_of_two_at_least_minimum():
    for cfg in NAMED_CONFIGS.values():
        d = cfg.fifo_depth
        assert d >= cfg.min_out_fifo_depth and d & (d - 1) == 0
    assert CoreConfig(out_fifo_depth=128).fifo_depth == 128


def test_config_is_frozen():
    cfg = CoreConfig()
    with pytest.raises(Exception):
        cfg.rows = 4


def test_elaboration_errors():
    with pytest.raises(TypeError, match="config must be a CoreConfig, not 8"):
        SystolicArray(8)
    with pytest.raises(ValueError, match=r"col must be an integer in range\(0, 4\), not 4"):
        PE(col=4, cols=4)
    with pytest.raises(ValueError, match="cols must be a positive integer, not 0"):
        PE(col=0, cols=0)
    with pytest.raises(TypeError, match="inner must be a wiring.Component"):
        SynthWrapper(object())


def test_engine_parameter_errors():
    """Component parameters are checked at construction with exact messages."""
    from hdl.dma import DMAEngine
    from hdl.tensor_engine import TensorEngine
    from hdl.vector import VectorEngine
    cfg = CoreConfig()
    with pytest.raises(ValueError) as exc:
        TensorEngine(cfg, result_queue_depth=2)
    assert str(exc.value) == "result_queue_depth must be an integer from 4 to 256, not 2"
    with pytest.raises(ValueError) as exc:
        DMAEngine(cfg, queue_depth=65)
    assert str(exc.value) == "queue_depth must be an integer from 4 to 64, not 65"
    with pytest.raises(ValueError) as exc:
        VectorEngine(CoreConfig(rows=4, cols=8))
    assert str(exc.value) == ("the vector engine needs cols <= rows (a PSUM partition per "
                              "lane), not a 4x8 array")
    with pytest.raises(TypeError):
        DMAEngine("default")
