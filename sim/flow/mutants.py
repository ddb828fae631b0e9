"""The mutation catalogue of ``make mutate`` (``sim/flow/mutate.py``): small, realistic
gateware bugs, each with the tests that should catch it.

Every entry is data: an id, the block it belongs to, a file under ``hdl/``, the exact
original text and its replacement, a one-line description and the pytest selections
(node ids or files) that should kill it, fastest first; an *equivalent* mutant (one
that cannot change any promised behaviour) also carries ``equivalent=``, the written
argument why, and is left out of the score. The original must occur exactly
once in the file: the runner refuses to run otherwise, naming the mutant, so the
catalogue cannot drift silently away from the code it mutates (an engineer who changes
the mutated line updates the entry with it).

Selections prefer the Amaranth-simulator unit tests (``tests/test_*_amaranth.py``,
seconds); a Verilator testbench (``tests/test_rtl_*.py``, a model build of tens of
seconds plus the run) is named only when no fast test sees the block, and then only the
one or two cases that should see the bug, on the smallest configuration that has it.

``PROBES`` says, per mutated file, which components to elaborate before any test runs:
a mutant that no longer imports or elaborates is reported as such (it counts as killed,
but the report tells it apart from a mutant a test caught).
"""

from dataclasses import dataclass

__all__ = ["Mutant", "MUTANTS", "BLOCKS", "PROBES"]


@dataclass(frozen=True)
class Mutant:
    """One mutation: replace ``original`` (exactly one occurrence in ``file``) by
    ``replacement``; ``tests`` are pytest arguments, fastest first.

    ``equivalent``: empty, or the written argument why the mutant cannot change any
    behaviour the block promises (an *equivalent mutant*). Such a mutant still runs,
    as a check on the argument: surviving, it is reported as ``equivalent`` and left
    out of the score (killed / (total - equivalent)); killed, the argument is wrong
    and the report says so."""
    id: str
    block: str
    file: str
    original: str
    replacement: str
    description: str
    tests: tuple
    equivalent: str = ""


#: The blocks of ``hdl/`` a mutant may belong to (each must have at least one mutant).
BLOCKS = ("arbiter", "fifo", "sbuf", "psum", "pe", "systolic", "fp", "dsp",
          "tensor_engine", "vector", "vector_units", "dma", "axi", "host", "regmap",
          "controller", "uart", "board", "chip")

# the test files, once
_ARB = "tests/test_controller_amaranth.py::test_round_robin"
_CTL = "tests/test_controller_amaranth.py"
_FIFO = "tests/test_fifo_amaranth.py"
_SBUF = "tests/test_sbuf_amaranth.py"
_PSUM = "tests/test_psum_amaranth.py"
_PE = "tests/test_pe_amaranth.py"
_SYS = "tests/test_systolic_amaranth.py"
_FP = "tests/test_fp_amaranth.py"
_FTZ = "tests/test_fp_ftz_amaranth.py"
_DSP = "tests/test_dsp_amaranth.py"
_VU = "tests/test_vector_units_amaranth.py"
_ACT = "tests/test_vector_amaranth.py"
_DMA = "tests/test_dma_amaranth.py"
_HOST = "tests/test_host_amaranth.py"
_TE = "tests/test_rtl_tensor.py::test_tensor[{}-4x4]"
_VEC = "tests/test_rtl_vector.py::test_vector[{}-4x4-fp]"
_DMAR = "tests/test_rtl_dma.py::test_dma[{}-4x4]"
_UART = "tests/test_uart_amaranth.py"
_BOARDA = "tests/test_board_amaranth.py"
_BOARD = "tests/test_rtl_board.py::test_board_over_uart"
_ULX3S = "tests/test_rtl_board.py::test_ulx3s_top_pins"
_CHIP = "tests/test_rtl_chip.py::test_chip[chip_sim2-{}]"
_CHIPA = "tests/test_chip_amaranth.py"


def _m(id, block, file, original, replacement, description, *tests, equivalent=""):
    return Mutant(id, block, file, original, replacement, description, tuple(tests),
                  equivalent)


MUTANTS = [
    # ---- arbiter ------------------------------------------------------------------------
    _m("arb-no-rotate", "arbiter", "hdl/arbiter.py",
       "order = [(l + 1 + i) % n for i in range(n)]",
       "order = [(l + i) % n for i in range(n)]",
       "round robin starts at the last granted requester, not the one after it "
       "(the winner keeps the highest priority)",
       _ARB, f"{_SBUF}::test_read_fairness_three_clients", _SBUF, _PSUM),
    _m("arb-fixed-priority", "arbiter", "hdl/arbiter.py",
       "order = [(l + 1 + i) % n for i in range(n)]",
       "order = list(range(n))",
       "fixed priority instead of round robin: requester 0 can starve the others",
       _ARB, _SBUF, _PSUM),
    _m("arb-advance-unused", "arbiter", "hdl/arbiter.py",
       "        with m.If(self.i_advance):\n",
       "        with m.If(1):\n",
       "the priority rotates even when the grant was not used (a hazard-held grant is "
       "lost)",
       _ARB, f"{_PSUM}::test_hazard_holds_the_grant", _PSUM),

    # ---- FIFOs ----------------------------------------------------------------------------
    _m("fifo-full-check", "fifo", "hdl/fifo.py",
       "m.d.comb += self.i.ready.eq(stored != depth)",
       "m.d.comb += self.i.ready.eq(stored <= depth)",
       "StreamFIFO full test off by one: it accepts an entry when already full",
       _FIFO, _SYS),
    _m("fifo-capacity-short", "fifo", "hdl/fifo.py",
       "m.d.comb += self.i.ready.eq(stored != depth)",
       "m.d.comb += self.i.ready.eq(stored < depth - 1)",
       "StreamFIFO refuses its last free entry (capacity depth - 1)",
       _FIFO, _SYS),
    _m("fifo-level-no-latch", "fifo", "hdl/fifo.py",
       "m.d.comb += self.level.eq(stored + a_valid + self.o.valid)",
       "m.d.comb += self.level.eq(stored + self.o.valid)",
       "StreamFIFO level forgets the entry in the RAM output latch",
       _FIFO, _SYS),
    _m("fifo-read-bubble", "fifo", "hdl/fifo.py",
       "m.d.comb += r_issue.eq((produce != consume) & (~a_valid | b_take))",
       "m.d.comb += r_issue.eq((produce != consume) & ~a_valid)",
       "StreamFIFO reads the RAM only when its latch is empty: a bubble every other "
       "entry (half throughput)",
       _FIFO, f"{_SYS}::test_full_rate_no_bubbles", _SYS),

    # ---- SBUF -------------------------------------------------------------------------------
    _m("sbuf-credit-off-by-one", "sbuf", "hdl/sbuf.py",
       "rarb.i_req[c].eq(req.valid & (credits < depth)),",
       "rarb.i_req[c].eq(req.valid & (credits <= depth)),",
       "SBUF grants a read with its response FIFO already fully booked (a stalled "
       "reader loses data)",
       f"{_SBUF}::test_stalled_reader_blocks_only_itself",
       f"{_SBUF}::test_smallest_resp_depth_back_to_back_reads", _SBUF),
    _m("sbuf-pmask-ignored", "sbuf", "hdl/sbuf.py",
       "w_en_q.eq(Cat((w_strb & w_pmask[p].replicate(wb)) for p in range(cfg.rows))),",
       "w_en_q.eq(Cat(w_strb for p in range(cfg.rows))),",
       "SBUF writes every partition, ignoring the write's partition mask",
       f"{_SBUF}::test_strobes_and_partition_masks", _SBUF),
    _m("sbuf-read-not-transparent", "sbuf", "hdl/sbuf.py",
       "rp = mem.read_port(transparent_for=(wp,))",
       "rp = mem.read_port()",
       "SBUF read port not transparent: a read in the cycle of a write to its word "
       "returns the old data",
       f"{_SBUF}::test_read_vs_write_same_address", _SBUF),

    # ---- PSUM -------------------------------------------------------------------------------
    _m("psum-hazard-window-short", "psum", "hdl/psum.py",
       "for st in stages[:A]).any()",
       "for st in stages[:A - 1]).any()",
       "PSUM hazard check misses a write in the last in-flight stage (read-after-write "
       "and accumulate hazards off by one)",
       f"{_PSUM}::test_accumulate_hazard", f"{_PSUM}::test_read_versus_write_in_flight",
       _PSUM),
    _m("psum-write-ignores-read-hazard", "psum", "hdl/psum.py",
       "wr_hazard.eq((op_acc & in_flight(op_addr)) | rd_waits),",
       "wr_hazard.eq(op_acc & in_flight(op_addr)),",
       "PSUM accepts writes while a granted read waits on a hazard (the read can "
       "starve)",
       f"{_PSUM}::test_read_hazard_holds_writes", _PSUM),
    _m("psum-mask-ignored", "psum", "hdl/psum.py",
       'wp.en.eq(last["valid"] & last["mask"][p] & ~ResetSignal()),',
       'wp.en.eq(last["valid"] & ~ResetSignal()),',
       "PSUM writes every partition, ignoring the write's column mask",
       f"{_PSUM}::test_mask_selects_partitions", _PSUM),
    _m("sbuf-write-in-reset", "sbuf", "hdl/sbuf.py",
       "wp.en.eq(w_en_q[p * wb:(p + 1) * wb] & ~in_reset.replicate(wb)),",
       "wp.en.eq(w_en_q[p * wb:(p + 1) * wb]),",
       "SBUF writes while the reset is asserted (undefined pipeline registers at power-up)",
       "tests/test_sbuf_amaranth.py::test_no_write_in_reset"),
    _m("psum-credit-off-by-one", "psum", "hdl/psum.py",
       "room = [req.valid & (credits[c] < depth) for c, (req, _) in enumerate(readers)]",
       "room = [req.valid & (credits[c] <= depth) for c, (req, _) in enumerate(readers)]",
       "PSUM grants a read with its response FIFO already fully booked",
       f"{_PSUM}::test_stalled_reader_blocks_nobody", _PSUM),
    _m("psum-copy-ignores-bank", "psum", "hdl/psum.py",
       "wpb.en.eq(wp.en & (wp.addr[ebits:] == k)),",
       "wpb.en.eq(wp.en),",
       "PSUM writes every bank's port-B copy, not only the write's bank (a read of one "
       "bank returns the last write to that entry of any bank)",
       f"{_PSUM}::test_two_readers_different_banks_same_cycle", _PSUM),
    _m("psum-read-wait-bank0-only", "psum", "hdl/psum.py",
       "m.d.comb += rd_waits.eq(Cat(w for _, _, _, w in rd_banks).any())",
       "m.d.comb += rd_waits.eq(rd_banks[0][3])",
       "PSUM holds the writes only for a read waiting on a hazard in bank 0 (a read of "
       "another bank can starve behind writes to its entry)",
       f"{_PSUM}::test_read_hazard_holds_writes", _PSUM),
    _m("psum-read-one-bank-per-cycle", "psum", "hdl/psum.py",
       "room[c] & wants(req.payload.bank, k) for c, (req, _) in enumerate(readers)))",
       "room[c] & wants(req.payload.bank, k) & ~Cat(b[0].o_grant for b in rd_banks).any()\n"
       "                for c, (req, _) in enumerate(readers)))",
       "PSUM grants at most one read per cycle across the banks, the lowest bank first "
       "(the shared read pipeline of before, without its fairness)",
       f"{_PSUM}::test_two_readers_different_banks_same_cycle", _PSUM),
    _m("psum-int-add-on-fp", "psum", "hdl/psum.py",
       'm.d.sync += [s2_data.eq(s1_data), s2_int.eq(s1_acc & ~stages[1]["accfp"])]',
       "m.d.sync += [s2_data.eq(s1_data), s2_int.eq(s1_acc)]",
       "PSUM's integer accumulate also runs for FP32 accumulates (its result is then "
       "replaced by the FP adder's)",
       _PSUM,
       equivalent="With float types elaborated, a write whose accfp is set takes "
       "adder.o_sum at the last stage (`with m.If(last['accfp'])`), overriding the "
       "integer pipeline's value, which is delayed to exactly that stage; so the "
       "integer sum the mutant computes for it is never written, and integer "
       "accumulates and overwrites (accfp clear) are unchanged. Without float types "
       "there is no adder, and the mutant would add where the original overwrites, "
       "but only for a write with both acc and fp set, which has no meaning on such a "
       "build and which no writer makes: the tensor engine sets fp only for BF16/FP16 "
       "matmuls, which an INT-only build refuses (TYPES), and no other engine writes "
       "PSUM (a DMA load into PSUM is refused, TARGET)."),

    # ---- PE, systolic array --------------------------------------------------------------
    _m("pe-first-no-clear", "pe", "hdl/pe.py",
       "                with m.Elif(tok.first):\n                    m.d.sync += w.eq(0)\n",
       "",
       "a tile's first weight token no longer clears the PE's other buffer entries "
       "(stale weights in columns beyond M)",
       f"{_PE}::test_token_addressing_and_first_clears", _PE, _SYS),
    _m("pe-sel-ignored", "pe", "hdl/pe.py",
       "        with m.If(self.i_sel):\n            m.d.comb += weight.eq(w1)\n",
       "",
       "the PE always multiplies with weight buffer 0 (double buffering broken)",
       f"{_PE}::test_pipeline_and_double_buffer", _PE, _SYS),
    _m("pe-addend-skew", "pe", "hdl/pe.py",
       'addend = delay(product, self.product_latency - product_at, "addend")',
       'addend = delay(product, self.product_latency - product_at + 1, "addend")',
       "the INT8 product meets the partial sum one cycle late",
       _PE, _SYS),
    _m("systolic-credit-off-by-one", "systolic", "hdl/systolic.py",
       "self.i_x.ready.eq(loaded.bit_select(xbuf, 1) & (inflight < depth)),",
       "self.i_x.ready.eq(loaded.bit_select(xbuf, 1) & (inflight <= depth)),",
       "the array admits a moving column with no room left in its output FIFO",
       _SYS,
       equivalent="The credit bound only guards the output StreamFIFO, whose capacity "
       "is depth + 2 (RAM, output latch, output register). The mutant lets inflight "
       "(columns admitted, results not yet taken) reach depth + 1, which its counter "
       "holds (Signal(range(depth + 1)), depth a power of two >= 2, so depth + 1 fits). "
       "A result is refused only when it arrives while the RAM holds depth entries; "
       "the FIFO's RAM can only reach depth entries while both the latch and the "
       "output register are full (a read is issued every cycle the latch is empty or "
       "moves on), so the FIFO then holds depth + 2 and, with the arriving result, "
       "depth + 3 would be in flight: more than depth + 1, impossible. So no result "
       "is ever refused or lost and results keep their order; only i_x.ready may rise "
       "one column earlier under a stalled consumer, and the array promises no exact "
       "throttling cycle (its contract: a column is accepted only when its result is "
       "sure to have room, which still holds)."),
    _m("systolic-last-ignored", "systolic", "hdl/systolic.py",
       "m.d.comb += w_done.eq(self.i_w.payload.last | (wcol == cols - 1))",
       "m.d.comb += w_done.eq(wcol == cols - 1)",
       "a weight tile narrower than the array (M < cols) is never complete",
       f"{_SYS}::test_odd_shapes", _SYS),
    _m("systolic-absent-type-not-zeroed", "systolic", "hdl/systolic.py",
       "lane.x.eq(Mux(x_zero, 0, x_data[k]) if floats else x_data[k]),",
       "lane.x.eq(x_data[k]),",
       "a moving column of a type the configuration lacks is used as data instead of "
       "zeros",
       _SYS, "tests/test_rtl_systolic.py::test_systolic[test_absent_dtype-4x4-int8-bf16]"),

    # ---- floating point -----------------------------------------------------------------
    _m("fp-add-round-half-up", "fp", "hdl/fp.py",
       "rnd = R[3] & (R[:3].any() | R[4])",
       "rnd = R[3]",
       "FP32 adder rounds ties up (away from zero) instead of to even",
       f"{_FP}::test_directed_all_pairs", _FP),
    _m("fp-add-sticky-lost", "fp", "hdl/fp.py",
       's3 = stage("s3", MX=s2["MX"], MY=(MY >> dd) | sticky,',
       's3 = stage("s3", MX=s2["MX"], MY=(MY >> dd),',
       "FP32 adder drops the sticky bit of the aligned operand",
       f"{_FP}::test_random_with_near_exponents", _FP),
    _m("fp-add-zero-sign", "fp", "hdl/fp.py",
       'Mux(zero, sx & ~s4["sub"], sx)',
       "Mux(zero, sx, sx)",
       "x + (-x) gives the larger operand's sign (-0) instead of +0",
       f"{_FP}::test_directed_all_pairs", _FP),
    _m("fp-mul-inf-times-zero", "fp", "hdl/fp.py",
       "nan2.eq(nan1 | (inf1 & zero1)), inf2.eq(inf1 & ~nan1),",
       "nan2.eq(nan1), inf2.eq(inf1 & ~nan1),",
       "BF16/FP16 multiplier: Inf * 0 is Inf instead of NaN",
       f"{_FP}::test_mul_directed_and_random", _FP),
    _m("fp-mul-subnormal-ties-away", "fp", "hdl/fp.py",
       "m.d.comb += rounded.eq(Y4[1:] + (Y4[0] & (sticky4 | Y4[1])))",
       "m.d.comb += rounded.eq(Y4[1:] + Y4[0])",
       "BF16 products that round to an FP32 subnormal round ties away from zero",
       f"{_FP}::test_mul_directed_and_random", _FP),
    _m("fp-add-ftz-threshold", "fp", "hdl/fp.py",
       "force = force | (er <= 0)",
       "force = force | (er < 0)",
       "flush-to-zero adder: a result with biased exponent exactly 0 is not flushed",
       _FTZ),

    # ---- DSP multipliers -----------------------------------------------------------------
    _m("dsp-unsigned", "dsp", "hdl/dsp.py",
       "shape = _signed_shape if signed else unsigned",
       "shape = unsigned",
       "RegisteredMultiplier ignores signed=True (INT8 products of negative operands)",
       f"{_DSP}::test_products", _DSP),
    _m("dsp-no-product-register", "dsp", "hdl/dsp.py",
       "m.d.sync += [a.eq(self.i_a), b.eq(self.i_b), p.eq(a * b)]\n"
       "        m.d.comb += self.o_p.eq(p)\n",
       "m.d.sync += [a.eq(self.i_a), b.eq(self.i_b), p.eq(a * b)]\n"
       "        m.d.comb += self.o_p.eq(a * b)\n",
       "RegisteredMultiplier without its product register: latency 1, not 2",
       f"{_DSP}::test_products", _PE, _SYS),
    _m("dsp-ecp5-signedb", "dsp", "hdl/dsp.py",
       "i_SIGNEDA=sgn, i_SIGNEDB=sgn,",
       "i_SIGNEDA=sgn, i_SIGNEDB=Const(0, 1),",
       "ECP5 MULT18X18D: operand B treated as unsigned",
       _DSP, "tests/test_rtl_fp.py::test_fp_unit[dsp_multipliers_ecp5]"),

    # ---- tensor engine ---------------------------------------------------------------------
    _m("te-done-before-psum-accepts", "tensor_engine", "hdl/tensor_engine.py",
       "self.status.done.eq(out_q.r_rdy & self.psum_wr.ready & out_q.r_data[-1]),",
       "self.status.done.eq(out_q.r_rdy & out_q.r_data[-1]),",
       "[planted] a matmul is reported done while PSUM has not yet accepted its last "
       "column",
       "tests/test_tensor_engine_amaranth.py::test_done_once_when_psum_accepts_last_column",
       _TE.format("test_read_at_done"), _TE.format("test_random_sequences")),
    _m("te-psum-range-off-by-one", "tensor_engine", "hdl/tensor_engine.py",
       "(cmd.psum_off + cmd.n > cfg.psum_depth)",
       "(cmd.psum_off + cmd.n >= cfg.psum_depth)",
       "[planted] PSUM range check refuses a legal matmul ending exactly at "
       "psum_off + n == psum_depth",
       _TE.format("test_read_at_done"), _TE.format("test_illegal_commands")),
    _m("te-m-zero-accepted", "tensor_engine", "hdl/tensor_engine.py",
       "with m.Elif((cmd.m == 0) | (cmd.m > cfg.cols)):",
       "with m.Elif(cmd.m > cfg.cols):",
       "a matmul with M = 0 is not refused",
       _TE.format("test_illegal_commands")),
    _m("te-error-last-refusal", "tensor_engine", "hdl/tensor_engine.py",
       "with m.Elif(consume & ~legal & ~self.status.error):",
       "with m.Elif(consume & ~legal):",
       "status.error_code holds the last refusal, not the first",
       _TE.format("test_illegal_commands")),
    _m("te-k-rows-not-zeroed", "tensor_engine", "hdl/tensor_engine.py",
       "Mux(k < sel_k, shifted[k * ew:(k + 1) * ew], 0))",
       "Mux(k <= sel_k, shifted[k * ew:(k + 1) * ew], 0))",
       "the fetcher passes partition p0 + K to array row K instead of zero (K < rows)",
       _TE.format("test_random_sequences")),
    _m("te-stride-ignored", "tensor_engine", "hdl/tensor_engine.py",
       '"step": step << wide,',
       '"step": 1 << wide,',
       "the moving fetcher reads consecutive elements whatever the command's x_skip says",
       _TE.format("test_random_sequences")),
    _m("te-stride-range-short", "tensor_engine", "hdl/tensor_engine.py",
       "x_end = (cmd.x_off + (cmd.n - 1) * x_step + 1) << wide",
       "x_end = (cmd.x_off + cmd.n) << wide",
       "the SBUF range check of a strided moving tile ignores its step (reads past the "
       "partition)",
       "tests/test_tensor_engine_amaranth.py::test_check_edges"),

    # ---- vector units --------------------------------------------------------------------------
    _m("vu-narrow-ties-away", "vector_units", "hdl/vector_units.py",
       "m.d.comb += mag.eq(s1_keep + (s1_g & (s1_sticky | s1_keep[0])))",
       "m.d.comb += mag.eq(s1_keep + s1_g)",
       "FP32 -> BF16/FP16 rounds ties away from zero instead of to even",
       f"{_VU}::test_narrow_one_format", _VU),
    _m("vu-narrow-fp16-subnormal-bound", "vector_units", "hdl/vector_units.py",
       "with m.Elif(e >= 113):",
       "with m.Elif(e > 113):",
       "FP16 cast takes the smallest normal binade (e = 113) down the subnormal path",
       f"{_VU}::test_narrow_one_format", _VU,
       equivalent="Only e == 113 (with FP16) changes path. The subnormal path then "
       "shifts by sh = 126 - 113 = 13: W = Cat(0, M) >> 13, so keep = W[1:] = M >> 13 "
       "= the hidden bit (1, which lands on keep bit 10, i.e. exponent field 1 = "
       "113 - 112) above f[13:23], exactly the normal path's Cat(f[13:23], e - 112); "
       "g = W[0] = M[12] = f[12]; sticky = M & ((1 << 12) - 1) = f[:12] != 0; inf is "
       "0 on both paths (e < 143). Same keep, guard, sticky and inf, so the same "
       "rounding and result, bit for bit."),
    _m("vu-narrow-nan-keeps-sign", "vector_units", "hdl/vector_units.py",
       "m.d.comb += result.eq(Mux(s1_fmt, 0x7E00, 0x7FC0))",
       "m.d.comb += result.eq(Cat(Mux(s1_fmt, 0x7E00, 0x7FC0)[:15], s1_sign))",
       "a negative NaN narrows to a negative canonical NaN",
       f"{_VU}::test_narrow_one_format", _VU),
    _m("vu-requant-round-half-up", "vector_units", "hdl/vector_units.py",
       'bias = Mux(s2["shift"] == 0, 0, half - p[48])',
       'bias = Mux(s2["shift"] == 0, 0, half)',
       "requantiser rounds negative ties up (towards +inf) instead of away from zero",
       f"{_VU}::test_requantizer_extremes_every_shift", _VU),
    _m("vu-requant-relu-at-zero", "vector_units", "hdl/vector_units.py",
       'lo_v = Mux(s4["relu"], s4["zp"], -128)',
       'lo_v = Mux(s4["relu"], 0, -128)',
       "requantiser's ReLU clamps at 0 instead of at the zero point",
       f"{_VU}::test_requantizer_random", _VU),
    _m("vu-requant-clamp-int8-early", "vector_units", "hdl/vector_units.py",
       "rc.eq(Mux(r > 255, 255, Mux(r < -256, -256, r)))",
       "rc.eq(Mux(r > 127, 127, Mux(r < -128, -128, r)))",
       "requantiser saturates to INT8 before adding the zero point",
       f"{_VU}::test_requantizer_random", _VU),
    _m("vu-requant-second-product-dropped", "vector_units", "hdl/vector_units.py",
       "m.d.sync += p.eq(p1 + p2)",
       "m.d.sync += p.eq(p1)",
       "requantiser's ADD form ignores the second operand's product",
       f"{_VU}::test_requantizer_two_products_and_clip", _VU),

    # ---- vector engine ----------------------------------------------------------------------------
    _m("vec-relu-nan", "vector", "hdl/vector.py",
       "m.d.sync += relued.eq(Mux(cmd.relu & summed[31] & ~nan, 0, summed))",
       "m.d.sync += relued.eq(Mux(cmd.relu & summed[31], 0, summed))",
       "[planted] ReLU turns a negative NaN into 0 instead of passing the NaN",
       _VEC.format("test_casts_and_relu"), _VEC.format("test_random_commands")),
    _m("vec-int-relu-always", "vector", "hdl/vector.py",
       "relu32 = Mux(cmd.relu & acc[31], 0, acc)",
       "relu32 = Mux(acc[31], 0, acc)",
       "INT32 results get ReLU whether or not the command asks for it",
       _VEC.format("test_int32_relu_only_when_asked"),
       "tests/test_rtl_vector.py::test_vector[test_casts_and_relu-8x4]"),
    _m("act-in-place-partitions", "vector", "hdl/vector.py",
       "in_place = ((c.src_p0 == c.dst_p0) & (c.dst_off == lo_b)",
       "in_place = ((c.dst_off == lo_b)",
       "ActChecker treats an overlapping copy onto other partitions as in place",
       f"{_ACT}::test_act_checker_directed_overlaps", _ACT),
    _m("act-src-range-off-by-one", "vector", "hdl/vector.py",
       "range_bad.append(end > src_elems)",
       "range_bad.append(end >= src_elems)",
       "ActChecker refuses a source tile ending exactly at the end of its memory",
       _ACT),
    _m("act-priority-swapped", "vector", "hdl/vector.py",
       "ActError.TYPES, ActError.PARTS, ActError.SRC_RANGE, ActError.DST_RANGE,",
       "ActError.TYPES, ActError.PARTS, ActError.DST_RANGE, ActError.SRC_RANGE,",
       "ActChecker reports DST_RANGE before SRC_RANGE when both fail",
       _ACT),
    _m("act-bias-alignment-unchecked", "vector", "hdl/vector.py",
       "c.bias & ((c.bias_off[:2] != 0) | (c.bias_off + 4 > cfg.sbuf_bytes)),",
       "c.bias & (c.bias_off + 4 > cfg.sbuf_bytes),",
       "ActChecker accepts a bias offset that is not 4-byte aligned",
       _ACT),
    _m("vec-last-partial-word-dropped", "vector", "hdl/vector.py",
       "completes.eq((b_next + cmd_des == W) | (pk_i + 1 == n_m1)),",
       "completes.eq(b_next + cmd_des == W),",
       "the vector engine never writes a tile's last, partial SBUF word",
       _VEC.format("test_random_commands")),
    _m("vec-max-unsigned", "vector", "hdl/vector.py",
       "i_take2 = is_max & (u2.as_signed() > u1.as_signed())",
       "i_take2 = is_max & (u2 > u1)",
       "integer MAX compares its operands as unsigned numbers",
       _VEC.format("test_two_operands_and_widening"), _VEC.format("test_random_commands")),
    _m("vec-fmax-second-nan-lost", "vector", "hdl/vector.py",
       "f_take2 = ~f32_nan(u1) & (f32_nan(u2) | (f32_key(u2) > f32_key(u1)))",
       "f_take2 = ~f32_nan(u1) & (f32_key(u2) > f32_key(u1))",
       "float MAX drops a NaN second operand instead of returning it",
       _VEC.format("test_two_operands_and_widening")),
    _m("vec-src2-step-ignored", "vector", "hdl/vector.py",
       "p2.eq(p2 + cmd.src2_skip + 1)]",
       "p2.eq(p2 + 1)]",
       "the second operand's reads ignore its stride (src2_skip)",
       _VEC.format("test_random_commands")),
    _m("vec-fp16-subnormal-exponent", "vector", "hdl/vector.py",
       "Cat(Const(0, 13), sub_frac, (112 - lz4)[:8], s)",
       "Cat(Const(0, 13), sub_frac, (113 - lz4)[:8], s)",
       "an FP16 subnormal operand widens to twice its value",
       _VEC.format("test_two_operands_and_widening")),
    _m("act-float-add-bias-accepted", "vector", "hdl/vector.py",
       "(c.op.as_value() == 3) | (c.src_fp & (c.op == ActOp.ADD) & c.bias),",
       "(c.op.as_value() == 3),",
       "ActChecker runs a float ADD that also asks for a bias (which it cannot add)",
       _ACT),
    _m("act-in-place-wider-result", "vector", "hdl/vector.py",
       "& (des <= ((skip + 1) << es_log)))",
       ")",
       "ActChecker lets a result wider than its operand overwrite operands not yet read",
       _ACT),

    # ---- DMA ----------------------------------------------------------------------------------------
    _m("dma-error-last", "dma", "hdl/dma.py",
       "with m.If(valid & resp[1] & (code == DmaError.NONE)):",
       "with m.If(valid & resp[1]):",
       "[planted] a descriptor meeting SLVERR then DECERR (or the reverse) reports the "
       "last error, not the first",
       _DMAR.format("test_two_bus_errors"), _DMAR.format("test_bus_errors")),
    _m("dma-partition-range-off-by-one", "dma", "hdl/dma.py",
       "| (desc.partition + desc.rows > parts)",
       "| (desc.partition + desc.rows >= parts)",
       "DMA refuses a tile ending exactly at the last partition",
       _DMAR.format("test_refused_descriptors"), _DMAR.format("test_load_sweep")),
    _m("dma-window-limit-off-by-one", "dma", "hdl/dma.py",
       "window_bad = ((desc.addr < self.i_win_base) | (hi > self.i_win_limit)",
       "window_bad = ((desc.addr < self.i_win_base) | (hi >= self.i_win_limit)",
       "DMA refuses a tile ending exactly at the window limit",
       _DMAR.format("test_window_edges"), _DMAR.format("test_refused_descriptors")),
    _m("dma-writes-after-error", "dma", "hdl/dma.py",
       "| (code != DmaError.NONE)),",
       "),",
       "after a read error the rest of a load is still written to SBUF",
       _DMAR.format("test_load_error_stops_writes"), _DMAR.format("test_bus_errors")),
    _m("dma-burst-crosses-4k", "dma", "hdl/dma.py",
       "n.eq(Mux(to4k < n1, to4k, n1)),",
       "n.eq(n1),",
       "DMA bursts may cross a 4 KiB boundary",
       _DMAR.format("test_load_sweep"), _DMAR.format("test_store_sweep")),
    _m("dma-load-passes-store", "dma", "hdl/dma.py",
       "i_start.eq(i_wait & (idesc.store | (st_open == 0))),",
       "i_start.eq(i_wait),",
       "a load's bursts do not wait for an earlier store of the same engine: it may "
       "read DRAM bytes before the store has written them",
       _DMAR.format("test_memory_order_within_engine"), _DMAR.format("test_random_mixed")),
    _m("dma-b-not-held", "dma", "hdl/dma.py",
       "m.d.comb += [axi.bready.eq(~b_done), b_fire.eq(axi.bvalid & axi.bready),",
       "m.d.comb += [axi.bready.eq(1), b_fire.eq(axi.bvalid & axi.bready),",
       "the next store's B responses are taken while the previous store waits to "
       "complete: they are counted (and their errors reported) for the wrong descriptor",
       _DMAR.format("test_error_with_next_in_flight"), _DMAR.format("test_random_mixed")),
    _m("dma-no-overlap", "dma", "hdl/dma.py",
       "i_start.eq(i_wait & (idesc.store | (st_open == 0))),",
       "i_start.eq(i_wait & ~in_load & ~in_store & (idesc.store | (st_open == 0))),",
       "[planted] the next descriptor's bursts wait until the data stage is idle: the "
       "DRAM latency is exposed once per descriptor again",
       _DMAR.format("test_descriptors_overlap")),
    _m("realign-err-not-sticky", "dma", "hdl/dma.py",
       "self.o.payload.err.eq(err | (need_in & self.i.payload.err)),",
       "self.o.payload.err.eq(need_in & self.i.payload.err),",
       "Realigner flags only the word that met the error, not the rest of the row",
       f"{_DMA}::test_realigner_err_sticky", _DMA),
    _m("realign-last-word-dropped", "dma", "hdl/dma.py",
       "need_out.eq(~at_last & (need_out | t0)),",
       "need_out.eq(~(t == t_last_m1) & (need_out | t0)),",
       "Realigner never emits a row's last output word",
       f"{_DMA}::test_realigner_reference_spot_checks", _DMA),
    _m("realign-first-strobe-full", "dma", "hdl/dma.py",
       "first_strb.eq((Const((1 << B) - 1, B) << row.out_off)[:B]),",
       "first_strb.eq(Const((1 << B) - 1, B)),",
       "Realigner strobes the bytes before the row's start in its first word",
       f"{_DMA}::test_realigner_reference_spot_checks", _DMA),

    # ---- AXI: read-latency shim, AXIJoin ----------------------------------------------------------
    _m("axi-latency-off-by-one", "axi", "hdl/axi.py",
       "ripe = (now - stamp)[:16] >= self._latency",
       "ripe = (now - stamp)[:16] > self._latency",
       "AXIReadLatency holds each AR one cycle longer than its latency",
       f"{_DMA}::test_read_latency_exact", f"{_DMA}::test_read_latency_ar", _DMA),
    _m("axijoin-fetch-priority", "axi", "hdl/core.py",
       "pick_f = go & f.arvalid & (~d.arvalid | ~last_fetch)",
       "pick_f = go & f.arvalid",
       "AXIJoin: instruction fetch always wins AR (DMA-in can starve)",
       f"{_CTL}::test_axi_join"),
    _m("axijoin-rready-dma-only", "axi", "hdl/core.py",
       "m.d.comb += o.rready.eq(Mux(to_f, f.rready, d.rready))",
       "m.d.comb += o.rready.eq(d.rready)",
       "AXIJoin: R beats for the fetcher are taken with DMA-in's RREADY",
       f"{_CTL}::test_axi_join"),

    # ---- host interface, register map --------------------------------------------------------------
    _m("host-start-during-error", "host", "hdl/host.py",
       "accept.eq(start & ~busy & ~st_error & ~fault),",
       "accept.eq(start & ~busy & ~fault),",
       "START is accepted while STATUS.ERROR is set",
       f"{_HOST}::test_fault_error_and_soft_reset", _HOST),
    _m("host-error-overwritten", "host", "hdl/host.py",
       "            with m.If(~st_error):\n",
       "            with m.If(1):\n",
       "ERROR/FAULT_ADDR capture every fault, not the first after SOFT_RESET",
       f"{_HOST}::test_fault_error_and_soft_reset", _HOST),
    _m("host-w1c-clear-wins", "host", "hdl/host.py",
       "m.d.sync += s.eq((s & ~clear) | sets.pop(key, 0))",
       "m.d.sync += s.eq((s | sets.pop(key, 0)) & ~clear)",
       "IRQ_STATUS: a write-1-to-clear in the cycle of a hardware set loses the set",
       f"{_HOST}::test_w1c_set_wins_over_clear_in_the_same_cycle",
       f"{_HOST}::test_w1c_and_irq", _HOST),
    _m("host-snapshot-on-hi", "host", "hdl/host.py",
       'with m.If(r_hit[f"{name}_LO"]):',
       'with m.If(r_hit[f"{name}_HI"]):',
       "counter HI snapshot taken when HI is read, not LO (a 64-bit read tears)",
       f"{_HOST}::test_counters", _HOST),
    _m("host-no-slverr", "host", "hdl/host.py",
       "bus.bresp.eq(Mux(w_ok, AXIResp.OKAY, AXIResp.SLVERR))]",
       "bus.bresp.eq(AXIResp.OKAY)]",
       "writes to unmapped or read-only registers answer OKAY instead of SLVERR",
       f"{_HOST}::test_slverr", _HOST),
    _m("regmap-win-limit-reset", "regmap", "hdl/regmap.py",
       "reset=1 << config.axi_addr_width),",
       "reset=(1 << config.axi_addr_width) - 1),",
       "WIN_LIMIT resets one byte short of the whole address space",
       f"{_HOST}::test_reset_values", _HOST),
    _m("regmap-ftz-overlaps", "regmap", "hdl/regmap.py",
       'Field("FTZ", 24 + len(DTYPES), 1,',
       'Field("FTZ", 23 + len(DTYPES), 1,',
       "CONFIG.FTZ placed on the top bit of N_SEMS",
       f"{_HOST}::test_regmap_config", _HOST),

    # ---- controller ----------------------------------------------------------------------------------
    _m("sem-lost-increment", "controller", "hdl/controller_parts.py",
       "inc = sum(s.en & (s.sem == i) for s in signals)",
       "inc = Cat(*(s.en & (s.sem == i) for s in signals)).any()",
       "[planted] two engines signalling one semaphore in the same cycle count once",
       f"{_CTL}::test_semaphores_two_signals_same_cycle_add_two",
       f"{_CTL}::test_semaphores_count_every_signal"),
    _m("sem-wait-strict", "controller", "hdl/controller_parts.py",
       "m.d.comb += self.o_wait_ok[k].eq(~w.en | (sems[w.sem] >= w.val))",
       "m.d.comb += self.o_wait_ok[k].eq(~w.en | (sems[w.sem] > w.val))",
       "a semaphore wait needs one signal more than its value",
       f"{_CTL}::test_semaphores_count_every_signal", _CTL),
    _m("watchdog-off-by-one", "controller", "hdl/controller_parts.py",
       "(idle_cycles >= self.i_limit))",
       "(idle_cycles > self.i_limit))",
       "watchdog fires one cycle after its limit",
       f"{_CTL}::test_watchdog_fires_after_limit_idle_cycles"),
    _m("watchdog-ignores-progress", "controller", "hdl/controller_parts.py",
       "with m.If(~run | prog):",
       "with m.If(~run):",
       "watchdog counts from the start of the run, whatever the progress",
       f"{_CTL}::test_watchdog_fires_after_limit_idle_cycles"),
    _m("faults-last-wins", "controller", "hdl/controller_parts.py",
       "with (m.If if k == 0 else m.Elif)(src.valid):",
       "with m.If(src.valid):",
       "FaultCapture keeps the highest-index fault source, not the first",
       f"{_CTL}::test_fault_capture_priority_and_hold"),
    _m("decoder-priority-swapped", "controller", "hdl/controller_parts.py",
       "        with m.Elif(rsv | hdr_rsv | sem_rsv):\n"
       "            m.d.comb += nxt_code.eq(CoreError.RESERVED)\n"
       "        with m.Elif(sem_bad):\n"
       "            m.d.comb += nxt_code.eq(CoreError.SEM_RANGE)\n",
       "        with m.Elif(sem_bad):\n"
       "            m.d.comb += nxt_code.eq(CoreError.SEM_RANGE)\n"
       "        with m.Elif(rsv | hdr_rsv | sem_rsv):\n"
       "            m.d.comb += nxt_code.eq(CoreError.RESERVED)\n",
       "decoder reports SEM_RANGE before RESERVED",
       f"{_CTL}::test_decoder_fault_codes"),
    _m("decoder-sem-bound", "controller", "hdl/controller_parts.py",
       "sem_bad = ((nxt.wait_en & (nxt.wait_sem >= n_sems))",
       "sem_bad = ((nxt.wait_en & (nxt.wait_sem > n_sems))",
       "a wait on semaphore n_sems is not refused",
       f"{_CTL}::test_decoder_fault_codes"),
    _m("decoder-end-not-quiet", "controller", "hdl/controller_parts.py",
       "with m.If(wait_ok & self.i_quiet):",
       "with m.If(wait_ok):",
       "END retires while engines still work",
       f"{_CTL}::test_decoder_sem_and_end_wait"),
    _m("fetch-crosses-burst-boundary", "controller", "hdl/controller_parts.py",
       "m.d.comb += n_req.eq(fb - pc[5:5 + lfb])",
       "m.d.comb += n_req.eq(fb)",
       "instruction fetch bursts are not cut at the burst boundary (may cross 4 KiB)",
       f"{_CTL}::test_fetcher_bursts_stop_at_boundaries", f"{_CTL}::test_fetcher"),
    _m("fetch-err-first-beat-lost", "controller", "hdl/controller_parts.py",
       "new_err = rerr | ax.rresp[1]",
       "new_err = ax.rresp[1]",
       "an error on an instruction's earlier beat is forgotten by its last beat",
       f"{_CTL}::test_fetcher_error_on_early_beat", f"{_CTL}::test_fetcher"),
    _m("issue-ignores-inflight-room", "controller", "hdl/controller_parts.py",
       "self.o.valid.eq(self.i_enable & q.o.valid & ok & kept & f.i.ready),",
       "self.o.valid.eq(self.i_enable & q.o.valid & ok & kept),",
       "IssueQueue issues with its in-flight FIFO full (a completion record is lost)",
       f"{_CTL}::test_issue_queue_full_backpressure_and_flush", _CTL),

    # ---- UART host bridge -------------------------------------------------------------------
    _m("uart-rx-sample-late", "uart", "hdl/uart.py",
       "m.d.sync += timer.eq(d // 2 - 1)",
       "m.d.sync += timer.eq(d - 1)",
       "the receiver samples each bit at its end instead of its middle (no margin for a "
       "host clock that is a little fast)",
       _UART),
    _m("uart-tx-no-stop-bit", "uart", "hdl/uart.py",
       "m.d.sync += [frame.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),\n"
       "                         left.eq(10), timer.eq(d - 1)]",
       "m.d.sync += [frame.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),\n"
       "                         left.eq(9), timer.eq(d - 1)]",
       "the transmitter drops the stop bit's time: the next start bit follows the last "
       "data bit",
       _UART),
    _m("uart-len-zero-is-zero", "uart", "hdl/uart.py",
       "    return Cat(length, length == 0)",
       "    return Cat(length, Const(0, 1))",
       "a length byte of 0 means no word (LiteX sends 0 for 256 words)",
       _UART),
    _m("uart-bad-cmd-not-reported", "uart", "hdl/uart.py",
       "                            m.d.sync += ev.bad_cmd.eq(1)\n",
       "                            pass\n",
       "an unknown command is dropped silently (the board's host-error LED stays dark)",
       _UART, _BOARD),

    # ---- board: DRAM window, host decoder, board top -------------------------------------
    _m("bram-host-lane", "board", "hdl/board.py",
       "h_strb = (h_wstrb << (4 * lane_of(h_waddr)))[:nb]",
       "h_strb = h_wstrb[:nb]",
       "a host write always goes to the first 32-bit lane of the memory word",
       _BOARDA, _BOARD),
    _m("decoder-dram-wrong-base", "board", "hdl/board.py",
       "dram = addr[db:] == HOST_DRAM_BASE >> db",
       "dram = addr[db:] == 0",
       "the host decoder maps the DRAM window over the registers' addresses",
       _BOARDA, _BOARD),
    _m("boardcore-bad-cmd-dark", "board", "hdl/board.py",
       "with m.If(ev.bad_cmd | ev.timeout | ev.bus_error | ev.range_error",
       "with m.If(ev.timeout | ev.bus_error | ev.range_error",
       "an unknown command does not light the host-error LED",
       _BOARD, _ULX3S),
    _m("ulx3s-button-no-reset", "board", "hdl/tops/ulx3s.py",
       'ResetSignal("por").eq(~locked | self.btn_reset)',
       'ResetSignal("por").eq(~locked)',
       "the PWR button does not reset the board logic",
       _ULX3S),
    _m("ulx3s-led-swap", "board", "hdl/tops/ulx3s.py",
       'LEDS = ("busy", "done", "error", "host_error", "irq", None, None, "heartbeat")',
       'LEDS = ("busy", "done", "host_error", "error", "irq", None, None, "heartbeat")',
       "LEDs 2 and 3 swapped on the board (the table in docs/board.md is wrong then)",
       "tests/test_board_top.py", _ULX3S),
    _m("chip-peer-partition", "chip", "hdl/chip.py",
       "pw.payload.pmask.eq(1 << head.part)",
       "pw.payload.pmask.eq(1)",
       "every beat of a peer store lands in the target's partition 0",
       _CHIPA, _CHIP.format("test_chain")),
    _m("chip-signal-wrong-core", "chip", "hdl/chip.py",
       "reqs = [s.valid & (s.payload.core == t) for s in self.i_signal]",
       "reqs = [s.valid & (s.payload.core != t) for s in self.i_signal]",
       "a cross-core signal goes to the wrong core",
       _CHIPA, _CHIP.format("test_chain")),
    _m("chip-b-order-mixed", "chip", "hdl/chip.py",
       "(dram_out[k] == 0) & (loc_out[k] < depth))",
       "(loc_out[k] < depth))",
       "a core's peer burst is granted while its DRAM writes are unanswered (B order lost)",
       _CHIPA),
    _m("dma-peer-core-unchecked", "chip", "hdl/dma.py",
       "| (p_core >= self.i_cores)",
       "",
       "the DMA lets a peer store to a core the chip lacks through (the interconnect "
       "then answers DECERR instead of the descriptor being refused with PEER)",
       _CHIP.format("test_refusals")),
]


#: Per mutated file, code that builds the components to elaborate before the tests
#: (``cfg`` is the 4x4 configuration with every operand type, ``cfg8`` the INT8-only
#: 4x4; each expression's value is converted to RTLIL, or just built when it is not a
#: component).
PROBES = {
    "hdl/arbiter.py": "from hdl.arbiter import RoundRobin; objs = [RoundRobin(3)]",
    "hdl/fifo.py": "from hdl.fifo import StreamFIFO, SyncStreamFIFO; "
                   "objs = [StreamFIFO(8, 4), SyncStreamFIFO(8, 4)]",
    "hdl/sbuf.py": "from hdl.sbuf import SBUF; objs = [SBUF(cfg8, n_read=2, n_write=2)]",
    "hdl/psum.py": "from hdl.psum import PSUM; objs = [PSUM(cfg, n_read=2, n_write=1)]",
    "hdl/pe.py": "from hdl.pe import PE; "
                 "objs = [PE(col=0, cols=2), PE(col=1, cols=2, floats=True)]",
    "hdl/systolic.py": "from hdl.systolic import SystolicArray; "
                       "objs = [SystolicArray(cfg8), SystolicArray(cfg)]",
    "hdl/fp.py": "from hdl.fp import FP32Adder, FPMul16; objs = [FP32Adder(), "
                 "FP32Adder(subnormals=False), FPMul16(int8=True), "
                 "FPMul16(subnormals=False)]",
    "hdl/dsp.py": "from hdl.dsp import RegisteredMultiplier; "
                  "objs = [RegisteredMultiplier(8, 8), (RegisteredMultiplier(8, 8), 'ecp5')]",
    "hdl/tensor_engine.py": "from hdl.tensor_engine import TensorEngine; "
                            "objs = [TensorEngine(cfg)]",
    "hdl/vector.py": "from hdl.vector import VectorEngine; objs = [VectorEngine(cfg)]",
    "hdl/vector_units.py": "from hdl.vector_units import F32Narrow, Requantizer; "
                           "objs = [F32Narrow(), Requantizer()]",
    "hdl/dma.py": "from hdl.dma import DMAEngine; objs = [DMAEngine(cfg8)]",
    "hdl/axi.py": "from hdl.axi import AXIReadLatency; from hdl.interfaces import "
                  "axi_signature; objs = [AXIReadLatency(axi_signature(cfg8))]",
    "hdl/core.py": "from hdl.core import AXIJoin; objs = [AXIJoin(cfg8)]",
    "hdl/host.py": "from hdl.host import HostInterface; objs = [HostInterface(cfg)]",
    "hdl/regmap.py": "from hdl.regmap import RegisterMap, markdown; "
                     "objs = [RegisterMap(cfg), markdown(cfg)]",
    "hdl/controller_parts.py": "from hdl.controller import Controller; "
                               "objs = [Controller(cfg8)]",
    "hdl/uart.py": "from hdl.uart import UARTBridge; "
                   "objs = [UARTBridge(divisor=4, timeout=100)]",
    "hdl/board.py": "from hdl.board import BlockRamDram, HostDecoder; "
                    "objs = [BlockRamDram(cfg8, size=1 << 12), HostDecoder(dram_size=1 << 12)]",
    "hdl/tops/ulx3s.py": "from hdl.tops.ulx3s import ULX3STop; objs = [(ULX3STop(cfg), 'ecp5')]",
    "hdl/chip.py": "from hdl.chip import Chip; objs = [Chip(cfg8, cores=2)]",
}
