"""The instruction-set simulator (``sim/model/iss.py``).

* Each instruction alone gives what a direct call of its golden model gives.
* A DMA -> MATMUL -> ACT -> DMA chain synchronised by semaphores matches NumPy
  computed here (INT8 products in int64, INT32 bias and ReLU, INT8 requantisation by
  Python integers), and a double-buffered multi-tile pipeline does too.
* A full queue alone can deadlock a program (queue_depth=2) that runs with 4.
* A wait that never holds is a WATCHDOG at the documented address, with the decoder
  before dma_in, dma_out, tensor, vector.
* Every fault kind gives its code, detail and address, and nothing after it runs.
* A properly synchronised program's result does not depend on the order in which the
  greedy loop moves ready agents (engines first, decoder first, random orders).
"""

import numpy as np
import pytest

from hdl.config import CoreConfig
from sim.model import vector as act_model
from sim.model import dma as dma_model
from sim.model.vector import Act
from sim.isa.asm import Instruction, Program
from sim.model.dma import Dma
from sim.model.iss import run
from sim.model.tensor import Matmul, TensorModel

CFG = CoreConfig()                      # 8x8, 16 semaphores, queue depth 4
SMALL = CoreConfig(rows=4, cols=4)
PROG = 0x800                            # programs live here in the test images
DRAM_BYTES = 0x1000
ORDERS = ["engines", "decoder"] + list(range(8))


def image(prog, seed=0, size=DRAM_BYTES):
    """A random DRAM image with ``prog`` (a Program or bytes) at PROG."""
    dram = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    data = prog.encode() if isinstance(prog, Program) else prog
    dram[PROG:PROG + len(data)] = np.frombuffer(data, dtype=np.uint8)
    return dram


def random_model(config, seed):
    rng = np.random.default_rng(seed)
    m = TensorModel(config)
    m.sbuf[...] = rng.integers(0, 256, m.sbuf.shape, dtype=np.uint8)
    m.psum[...] = rng.integers(0, 1 << 32, m.psum.shape, dtype=np.uint64).astype(np.uint32)
    return m


def copy_model(m):
    c = TensorModel(m.config)
    c.sbuf[...] = m.sbuf
    c.psum[...] = m.psum
    return c


def assert_ok(res):
    assert res.done and res.error == "NONE", (res.error, res.detail, res.fault_addr, res.blocked)


# ---------------------------------------------------------------------------------------
# one instruction at a time
# ---------------------------------------------------------------------------------------

SINGLE = [
    ("DMA", Dma(addr=0x100, rows=5, row_bytes=37, row_stride=40, partition=2, offset=101)),
    ("DMA", Dma(addr=0x103, rows=8, row_bytes=9, row_stride=3, offset=4000)),
    ("DMA", Dma(addr=0x200, rows=3, row_bytes=21, row_stride=64, partition=1, offset=7,
                store=True)),
    ("DMA", Dma(addr=0x300, rows=8, row_bytes=100, row_stride=100, offset=13, store=True,
                mem="psum")),
    ("MATMUL", Matmul(k=8, m=8, n=64, s_off=3, x_off=100, bank=2, psum_off=5)),
    ("MATMUL", Matmul(k=3, m=5, n=9, p0=4, s_off=4000, x_off=0, bank=3, acc=True)),
    ("ACT", Act(parts=8, n=40, dst_type="INT8", src_fp=False, src_off=300, dst_off=17,
                bias=True, bias_off=60, relu=True, scale=12345, shift=20, zp=-3)),
    ("ACT", Act(parts=5, n=11, dst_type="INT32", src_psum=False, src_fp=False, src_p0=1,
                src_off=20, dst_p0=2, dst_off=200, bias=True, bias_off=4)),
]


@pytest.mark.parametrize("op,cmd", SINGLE, ids=[f"{o}{i}" for i, (o, _) in enumerate(SINGLE)])
def test_single_instruction(op, cmd):
    p = Program(CFG)
    getattr(p, op.lower())(cmd, signal="done")
    p.end(wait=("done", 1))
    dram = image(p, seed=1)
    model = random_model(CFG, seed=2)

    res = run(CFG, dram, PROG, model=model)
    assert_ok(res)
    assert res.executed == [0, 1] and res.sems == [1] + [0] * 15

    exp_dram, exp = dram.copy(), copy_model(model)
    if op == "DMA":
        assert dma_model.check(CFG, cmd, 0, len(dram)) == "NONE"
        dma_model.apply(cmd, exp_dram, exp)
    elif op == "MATMUL":
        assert exp.matmul(cmd) == "NONE"
    else:
        assert act_model.apply(CFG, cmd, exp) == "NONE"
    assert np.array_equal(res.dram, exp_dram)
    assert np.array_equal(res.sbuf, exp.sbuf)
    assert np.array_equal(res.psum, exp.psum)
    # the inputs were not modified
    assert np.array_equal(dram, image(p, seed=1))
    assert np.array_equal(model.sbuf, random_model(CFG, seed=2).sbuf)


def test_empty_program_and_sem():
    p = Program(SMALL)
    p.sem(signal="a")
    p.sem(wait=("a", 1), signal="a")
    p.sem(wait=("a", 2), signal="b")
    p.end(wait=("b", 1))
    res = run(SMALL, image(p), PROG)
    assert_ok(res)
    assert res.executed == [0, 1, 2, 3] and res.sems[:3] == [2, 1, 0]
    assert not res.sbuf.any() and not res.psum.any()
    assert np.array_equal(res.dram, image(p))


# ---------------------------------------------------------------------------------------
# a synchronised chain against independent NumPy
# ---------------------------------------------------------------------------------------

def requant_ref(a, scale, shift, zp, relu):
    """INT32 -> INT8 with Python integers: round half away from zero, saturate, ReLU at
    the zero point."""
    out = []
    for v in a.ravel().tolist():
        p = v * scale
        if shift:
            mag = (abs(p) + (1 << (shift - 1))) >> shift
            r = mag if p >= 0 else -mag
        else:
            r = p
        y = min(127, max(-128, r + zp))
        out.append(max(y, zp) if relu else y)
    return np.array(out, dtype=np.int64).reshape(a.shape)


def chain_program(config, K, M, N, base):
    """Loads S [K, M], X [K, N] and a bias [M] (INT32) from ``base``; Y = S^T X;
    A = relu(Y + bias) as INT32, B = requant(Y) as INT8; stores A and B."""
    s_addr, x_addr, b_addr = base, base + K * M, base + K * (M + N)
    a_out, b_out = base + 0x200, base + 0x400
    p = Program(config)
    p.dma(addr=s_addr, rows=K, row_bytes=M, row_stride=M, offset=0, signal="ld")
    p.dma(addr=x_addr, rows=K, row_bytes=N, row_stride=N, offset=M, signal="ld")
    p.dma(addr=b_addr, rows=M, row_bytes=4, row_stride=4, offset=512, signal="ld")
    p.matmul(k=K, m=M, n=N, s_off=0, x_off=M, bank=1, psum_off=3,
             wait=("ld", p.signals("ld")), signal="mm")
    src = config.psum_depth + 3
    p.act(parts=M, n=N, dst_type="INT32", src_fp=False, src_off=src, dst_off=1024,
          bias=True, bias_off=512, relu=True, wait=("mm", 1), signal="act")
    p.act(parts=M, n=N, dst_type="INT8", src_fp=False, src_off=src, dst_off=2048,
          scale=300, shift=9, zp=5, relu=True, wait=("mm", 1), signal="act")
    p.dma(addr=a_out, rows=M, row_bytes=4 * N, row_stride=4 * N, offset=1024, store=True,
          wait=("act", 1), signal="st")
    p.dma(addr=b_out, rows=M, row_bytes=N, row_stride=N, offset=2048, store=True,
          wait=("act", 2), signal="st")
    p.end(wait=("st", 2))
    return p, (s_addr, x_addr, b_addr, a_out, b_out)


@pytest.mark.parametrize("config,K,M,N", [(CFG, 8, 8, 48), (CFG, 5, 3, 17), (SMALL, 4, 4, 30)])
def test_chain(config, K, M, N):
    rng = np.random.default_rng(K * 100 + N)
    p, (s_addr, x_addr, b_addr, a_out, b_out) = chain_program(config, K, M, N, 0x100)
    dram = image(p, seed=3)
    S = rng.integers(-128, 128, (K, M))
    X = rng.integers(-128, 128, (K, N))
    bias = rng.integers(-20000, 20000, M)
    dram[s_addr:s_addr + K * M] = S.astype(np.int8).view(np.uint8).ravel()
    dram[x_addr:x_addr + K * N] = X.astype(np.int8).view(np.uint8).ravel()
    dram[b_addr:b_addr + 4 * M] = bias.astype("<i4").view(np.uint8)

    Y = S.T.astype(np.int64) @ X.astype(np.int64)               # no wrap at these sizes
    A = np.maximum(Y + bias[:, None], 0).astype("<i4")
    B = requant_ref(Y, 300, 9, 5, True).astype(np.int8)
    expected = dram.copy()
    expected[a_out:a_out + A.nbytes] = A.view(np.uint8).ravel()
    expected[b_out:b_out + B.nbytes] = B.view(np.uint8).ravel()

    for order in ORDERS:
        res = run(config, dram, PROG, _order=order)
        assert_ok(res)
        assert np.array_equal(res.dram, expected), order
        assert res.psum[:M, 1, 3:3 + N].view(np.int32).tolist() == Y.tolist()
        assert sorted(res.executed) == list(range(9)) and res.executed[-1] == 8
        assert res.sems[:4] == [3, 1, 2, 2]        # ld, mm, act, st


def pipeline_program(config, T, K, N):
    """T moving tiles through one stationary tile, X double-buffered in SBUF, each tile
    in its own PSUM bank and output region."""
    p = Program(config)
    M = config.cols
    p.dma(addr=0x000, rows=K, row_bytes=M, row_stride=M, signal="ld")
    for t in range(T):
        buf = 64 + (t % 2) * N
        # reuse buffer t%2 only after the matmul of tile t-2 has read it
        p.dma(addr=0x100 + t * K * N, rows=K, row_bytes=N, row_stride=N, offset=buf,
              wait=("mm", t - 1) if t >= 2 else None, signal="ld")
        p.matmul(k=K, m=M, n=N, x_off=buf, bank=t, wait=("ld", t + 2), signal="mm")
        p.act(parts=M, n=N, dst_type="INT32", src_fp=False, src_off=t * config.psum_depth,
              dst_off=512 + t * 4 * N, relu=True, wait=("mm", t + 1), signal="act")
        p.dma(addr=0x400 + t * M * 4 * N, rows=M, row_bytes=4 * N, row_stride=4 * N,
              offset=512 + t * 4 * N, store=True, wait=("act", t + 1))
    p.end()
    return p


@pytest.mark.parametrize("queue_depth", [2, 4])
def test_pipeline_any_order(queue_depth):
    config = CoreConfig(rows=4, cols=4, queue_depth=queue_depth)
    T, K, N, M = 4, 4, 16, 4
    p = pipeline_program(config, T, K, N)
    dram = image(p, seed=4)
    rng = np.random.default_rng(5)
    S = rng.integers(-128, 128, (K, M))
    Xs = rng.integers(-128, 128, (T, K, N))
    dram[0:K * M] = S.astype(np.int8).view(np.uint8).ravel()
    dram[0x100:0x100 + T * K * N] = Xs.astype(np.int8).view(np.uint8).ravel()
    expected = dram.copy()
    for t in range(T):
        Y = np.maximum(S.T @ Xs[t], 0).astype("<i4")
        a = 0x400 + t * M * 4 * N
        expected[a:a + Y.nbytes] = Y.view(np.uint8).ravel()

    results = [run(config, dram, PROG, _order=o) for o in ORDERS]
    for order, res in zip(ORDERS, results):
        assert_ok(res)
        assert np.array_equal(res.dram, expected), order
        for other in ("sbuf", "psum"):
            assert np.array_equal(getattr(res, other), getattr(results[0], other)), order
        assert res.sems == results[0].sems
        assert sorted(res.executed) == list(range(len(p.instructions)))
    # the two extreme orders really do interleave differently
    assert results[0].executed != results[1].executed


# ---------------------------------------------------------------------------------------
# deadlocks
# ---------------------------------------------------------------------------------------

def full_queue_program(config):
    p = Program(config)
    for i in range(3):
        p.dma(addr=0x10 * i, rows=1, row_bytes=8, offset=8 * i, wait=("go", 1))
    p.sem(signal="go")
    p.end()
    return p


def test_full_queue_deadlocks():
    deep = CoreConfig(rows=4, cols=4, queue_depth=4)
    shallow = CoreConfig(rows=4, cols=4, queue_depth=2)
    assert_ok(run(deep, image(full_queue_program(deep)), PROG))
    for order in ORDERS:
        res = run(shallow, image(full_queue_program(shallow)), PROG, _order=order)
        assert not res.done and res.error == "WATCHDOG" and res.detail == ""
        assert res.fault_addr == PROG                   # the head of dma_in
        assert res.executed == [] and res.sems == [0] * 16
        assert len(res.blocked) == 2
        assert res.blocked[0].startswith(f"decoder: 0x{PROG + 64:x}")
        assert "queue dma_in is full" in res.blocked[0]
        assert res.blocked[1].startswith(f"dma_in: 0x{PROG:x}") and "s0>=1, s0=0" in res.blocked[1]


def test_sem_wait_never_holds():
    p = Program(SMALL)
    p.dma(addr=0, rows=1, row_bytes=4, signal="a")
    p.matmul(k=1, m=1, n=1, wait=("b", 1))          # blocked too, but the decoder comes first
    p.sem(wait=("a", 2))
    p.sem(signal="b")
    p.end()
    for order in ORDERS:
        res = run(SMALL, image(p), PROG, _order=order)
        assert res.error == "WATCHDOG" and res.fault_addr == PROG + 64, order
        assert res.executed == [0] and res.sems[:2] == [1, 0]
        assert [line.split(":")[0] for line in res.blocked] == ["decoder", "tensor"]
        assert "SEM wait(s0>=2)" in res.blocked[0] and "s0=1" in res.blocked[0]


def test_end_wait_never_holds():
    p = Program(SMALL)
    p.sem(signal="a")
    p.end(wait=("a", 2))
    res = run(SMALL, image(p), PROG)
    assert res.error == "WATCHDOG" and res.fault_addr == PROG + 32 and not res.done
    assert res.executed == [0]


def test_deadlock_reports_queues_in_order():
    """With the decoder waiting at END for the engines, the first blocked agent is
    looked for in the order dma_in, dma_out, tensor, vector, not program order."""
    p = Program(SMALL)
    p.act(parts=1, n=1, wait=("x", 1))                                    # vector
    p.matmul(k=1, m=1, n=1, wait=("x", 1))                                # tensor
    p.dma(addr=0, rows=1, row_bytes=4, store=True, wait=("x", 1))         # dma_out
    p.sem(signal="y")
    p.end()
    res = run(SMALL, image(p), PROG)
    assert res.error == "WATCHDOG" and res.fault_addr == PROG + 64
    assert [line.split(":")[0] for line in res.blocked] == ["decoder", "dma_out", "tensor",
                                                            "vector"]
    assert "waits for the engines" in res.blocked[0]
    # a blocked DMA load, later in the program, comes before all of them
    p = Program(SMALL)
    p.act(parts=1, n=1, wait=("x", 1))
    p.matmul(k=1, m=1, n=1, wait=("x", 1))
    p.dma(addr=0, rows=1, row_bytes=4, store=True, wait=("x", 1))
    p.dma(addr=0, rows=1, row_bytes=4, wait=("x", 1))
    p.end()
    res = run(SMALL, image(p), PROG)
    assert res.error == "WATCHDOG" and res.fault_addr == PROG + 96
    assert [line.split(":")[0] for line in res.blocked] == ["decoder", "dma_in", "dma_out",
                                                            "tensor", "vector"]


# ---------------------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------------------

def words(*instrs):
    return b"".join((i if isinstance(i, int) else i.encode()).to_bytes(32, "little")
                    for i in instrs)


def test_illegal_instruction_faults():
    sem = Instruction("SEM", signal=0)
    end = Instruction("END")
    cases = [
        (words(sem, 0, end), "OPCODE", 1),
        (words(sem, 9, end), "OPCODE", 1),
        (words(sem, sem, Instruction("SEM").encode() | 1 << 100, end), "RESERVED", 2),
        (words(sem, Instruction("END").encode() | 3 << 27), "RESERVED", 1),
        (words(Instruction("SEM", signal=16), end), "SEM_RANGE", 0),
        (words(sem, Instruction("MATMUL", Matmul(k=1, m=1, n=1), wait=(20, 0))),
         "SEM_RANGE", 1),
    ]
    for data, code, index in cases:
        for order in ("engines", "decoder"):
            res = run(CFG, image(data), PROG, _order=order)
            assert not res.done and res.error == code and res.detail == ""
            assert res.fault_addr == PROG + 32 * index
            assert res.executed == list(range(index)) and res.sems[0] == index


def test_fetch_faults():
    p = Program(SMALL)
    p.sem(signal="a")
    p.sem(signal="a")
    data = p.encode()
    dram = np.zeros(PROG + len(data) + 16, dtype=np.uint8)
    dram[PROG:PROG + len(data)] = np.frombuffer(data, dtype=np.uint8)
    res = run(SMALL, dram, PROG)
    assert res.error == "FETCH" and res.fault_addr == PROG + 64 and res.executed == [0, 1]
    res = run(SMALL, dram, len(dram) - len(dram) % 32 + 32)
    assert res.error == "FETCH" and res.executed == []
    with pytest.raises(ValueError, match="multiple of 32"):
        run(SMALL, dram, PROG + 4)


def test_program_is_read_only():
    """A DMA store over the program does not change what the decoder reads."""
    p = Program(SMALL)
    p.dma(addr=PROG + 32, rows=1, row_bytes=64, offset=0, store=True, signal="st")
    p.sem(wait=("st", 1), signal="a")
    p.end()
    res = run(SMALL, image(p), PROG)     # SBUF is zero: the store writes zeros over SEM/END
    assert_ok(res)
    assert not res.dram[PROG + 32:PROG + 96].any() and res.sems[:2] == [1, 1]


ENGINE_FAULTS = [
    (Dma(addr=0xFF0, rows=1, row_bytes=32), {}, "DMA", "WINDOW"),
    (Dma(addr=0x100, rows=1, row_bytes=8), {"win_base": 0x200}, "DMA", "WINDOW"),
    (Dma(addr=0x100, rows=2, row_bytes=8, row_stride=0x300), {"win_limit": 0x400},
     "DMA", "WINDOW"),
    (Dma(addr=0x100, rows=5, row_bytes=8), {}, "DMA", "RANGE"),
    (Dma(addr=0x100, rows=1, row_bytes=0), {}, "DMA", "RANGE"),
    (Dma(addr=0x100, rows=1, row_bytes=8, mem="psum"), {}, "DMA", "TARGET"),
    (Dma(addr=0xFF8, rows=1, row_bytes=16, store=True), {"win_limit": 1 << 20}, "DMA", "DECERR"),
    (Dma(addr=0x2000, rows=1, row_bytes=16), {"win_limit": 1 << 20}, "DMA", "DECERR"),
    (Matmul(k=1, m=1, n=1, dtype="bf16"), {}, "TENSOR", "DTYPE"),
    (Matmul(k=1, m=1, n=1, dtype="dtype3"), {}, "TENSOR", "DTYPE"),
    (Matmul(k=4, m=1, n=1, p0=1), {}, "TENSOR", "K_RANGE"),
    (Matmul(k=1, m=5, n=1), {}, "TENSOR", "M_RANGE"),
    (Matmul(k=1, m=1, n=300), {}, "TENSOR", "N_RANGE"),
    (Matmul(k=1, m=1, n=1, bank=4), {}, "TENSOR", "PSUM_RANGE"),
    (Matmul(k=1, m=1, n=8, x_off=4090), {}, "TENSOR", "SBUF_RANGE"),
    (Act(parts=1, n=1, dst_type="TYPE5", src_fp=False), {}, "VECTOR", "TYPES"),
    (Act(parts=1, n=1), {}, "VECTOR", "TYPES"),              # FP32 source, no float
    (Act(parts=0, n=1, dst_type="INT32", src_fp=False), {}, "VECTOR", "PARTS"),
    (Act(parts=1, n=1, dst_type="INT32", src_fp=False, dst_off=2), {}, "VECTOR", "DST_RANGE"),
]


@pytest.mark.parametrize("cmd,kw,code,detail", ENGINE_FAULTS,
                         ids=[f"{c}-{d}-{i}" for i, (_, _, c, d) in enumerate(ENGINE_FAULTS)])
def test_engine_faults(cmd, kw, code, detail):
    op = {Dma: "dma", Matmul: "matmul", Act: "act"}[type(cmd)]
    p = Program(SMALL)
    p.dma(addr=0x300, rows=4, row_bytes=8, row_stride=8, offset=16, signal="ok")
    getattr(p, op)(cmd, wait=("ok", 1), signal="bad")
    # what waits for the faulting instruction never runs; what does not may have run
    # before the fault (the decoder runs ahead) unless engines are always served first
    p.dma(addr=0x80, rows=1, row_bytes=8, store=True, wait=("bad", 1))
    p.sem(signal="later")
    p.matmul(k=1, m=1, n=1)
    p.end()
    dram = image(p, seed=6)
    for order in ORDERS:
        res = run(SMALL, dram, PROG, _order=order, **kw)
        assert not res.done and (res.error, res.detail) == (code, detail), order
        assert res.fault_addr == PROG + 32, order
        assert 0 in res.executed and set(res.executed) <= {0, 3, 4}, order
        assert res.sems[:2] == [1, 0]
        assert np.array_equal(res.dram, dram)
        assert np.array_equal(res.sbuf[:, 16:24], dram[0x300:0x320].reshape(4, 8))
        if order == "engines":
            assert res.executed == [0] and res.sems[2] == 0 and not res.psum.any()


def test_dma_window_and_decerr_boundaries():
    ok = Dma(addr=0x200, rows=2, row_bytes=8, row_stride=0x10)     # bytes 0x200..0x218
    for kw, expect in [({"win_base": 0x200, "win_limit": 0x218}, ("NONE", "")),
                       ({"win_base": 0x201}, ("DMA", "WINDOW")),
                       ({"win_limit": 0x217}, ("DMA", "WINDOW"))]:
        p = Program(SMALL)
        p.dma(ok)
        p.end()
        res = run(SMALL, image(p), PROG, **kw)
        assert (res.error, res.detail) == expect
    # exactly to the end of the image is fine; one byte more is DECERR
    for row_bytes, expect in [(16, "NONE"), (17, "DMA")]:
        p = Program(SMALL)
        p.dma(addr=DRAM_BYTES - 16, rows=1, row_bytes=row_bytes)
        p.end()
        res = run(SMALL, image(p), PROG, win_limit=1 << 32)
        assert res.error == expect


def test_run_arguments():
    p = Program(SMALL)
    p.end()
    with pytest.raises(ValueError):
        run(SMALL, image(p).astype(np.int16), PROG)
    with pytest.raises(ValueError):
        run(SMALL, image(p), PROG, _order="sideways")
    with pytest.raises(RuntimeError, match="steps"):
        run(SMALL, image(full_queue_program(SMALL)), PROG, max_steps=2)


def test_end_does_not_signal():
    """END's sig_en is legal but ignored (the controller never signals for END)."""
    data = words(Instruction("SEM", signal=1), Instruction("END", wait=(1, 1), signal=2))
    res = run(SMALL, image(data), PROG)
    assert_ok(res)
    assert res.executed == [0, 1] and res.sems[:3] == [0, 1, 0]
