"""The ncore instruction set: one fixed 256-bit instruction format.

A program is a sequence of 32-byte instructions in DRAM, little-endian (bit 0 of an
instruction is bit 0 of its first byte). Every instruction has the same 32-bit header,
which carries the NeuronCore synchronisation model: an instruction may *wait* until a
semaphore reaches a value before it starts, and *signal* (increment) a semaphore when
it has finished. The 224-bit body is the command of the engine the opcode names,
encoded with the very layouts the engines take (:class:`hdl.formats.DmaDesc`,
:class:`hdl.formats.MatmulCmd`, :class:`hdl.formats.ActCmd`) in its low bits; the
body bits above the command must be zero.

This module is the single definition read by the controller (``hdl/controller.py``),
the assembler and disassembler (``sim/isa/asm.py``) and the instruction-set simulator
(``sim/model/iss.py``). The full description is in ``docs/isa.md``.
"""

from amaranth.lib import data, enum

from .formats import ActCmd, DmaDesc, MatmulCmd

__all__ = [
    "Opcode", "Instr", "INSTR_BITS", "INSTR_BYTES", "HEADER_BITS", "BODY_BITS",
    "BODY_WIDTH", "SEM_BITS", "SEM_VALUE_BITS", "MAX_SEMS", "CoreError", "SemCmd",
    "CORE_BITS", "MAX_CORES",
]

#: Width of one instruction.
INSTR_BITS = 256
INSTR_BYTES = INSTR_BITS // 8
#: Width of the common header and of the command body.
HEADER_BITS = 32
BODY_BITS = INSTR_BITS - HEADER_BITS
#: Bits of a semaphore index (so at most 32 semaphores) and of a semaphore value.
SEM_BITS = 5
MAX_SEMS = 1 << SEM_BITS
SEM_VALUE_BITS = 16
#: Bits of a core index on a chip (:class:`hdl.chip.Chip`), so at most 8 cores.
CORE_BITS = 3
MAX_CORES = 1 << CORE_BITS


class Opcode(enum.Enum, shape=4):
    """What an instruction does. Values 0 and 6..15 are illegal (0 so that a program
    running into zeroed memory stops with an error instead of doing something)."""
    DMA = 1         #: body is a :class:`~hdl.formats.DmaDesc`; ``store`` picks the DMA-in or DMA-out queue
    MATMUL = 2      #: body is a :class:`~hdl.formats.MatmulCmd` (tensor queue)
    ACT = 3         #: body is an :class:`~hdl.formats.ActCmd` (vector queue)
    SEM = 4         #: no command: wait and/or signal in the decoder, in program order
    END = 5         #: wait, then wait for every engine to finish; raise done


class SemCmd(data.Struct):
    """The body of a SEM: where its signal goes.

    Members
    -------
    remote : 1 bit
        0: ``sig_sem`` of this core counts up (as every other instruction signals).
        1: ``sig_sem`` of core ``core`` of the chip counts up instead (a cross-core
        signal; ``sig_en`` must be 1, else RESERVED). A core that does not exist, or a
        core that is not on a chip, stops this one with ``PEER``.
    core : :data:`CORE_BITS` bits
        The core signalled (0 when ``remote`` is 0, else RESERVED).
    """
    remote: 1
    core: CORE_BITS


#: Bits of the body a command of each opcode uses (the rest must be zero).
BODY_WIDTH = {
    Opcode.DMA: DmaDesc.as_shape().size,
    Opcode.MATMUL: MatmulCmd.as_shape().size,
    Opcode.ACT: ActCmd.as_shape().size,
    Opcode.SEM: SemCmd.as_shape().size,
    Opcode.END: 0,
}
assert max(BODY_WIDTH.values()) <= BODY_BITS


class Instr(data.Struct):
    """One instruction (256 bits).

    Members
    -------
    opcode : :class:`Opcode`
    wait_en : 1 bit
        Wait, before starting, until semaphore ``wait_sem`` is at least ``wait_val``.
    wait_sem : 5 bits
    wait_val : 16 bits
        Compared unsigned with the semaphore's value.
    sig_en : 1 bit
        Add one to semaphore ``sig_sem`` when the instruction has finished (all of its
        writes are visible to every engine).
    sig_sem : 5 bits
    body : 224 bits
        The command, in the low bits (:data:`BODY_WIDTH`); the others must be zero.
    """
    opcode: Opcode
    wait_en: 1
    wait_sem: SEM_BITS
    wait_val: SEM_VALUE_BITS
    sig_en: 1
    sig_sem: SEM_BITS
    body: BODY_BITS


assert Instr.as_shape().size == INSTR_BITS


class CoreError(enum.Enum, shape=4):
    """Why the core stopped (the ``code`` field of the ERROR register). ``detail`` holds
    the refusing engine's own code for DMA, TENSOR and VECTOR."""
    NONE = 0
    OPCODE = 1      #: opcode 0 or 6..15
    RESERVED = 2    #: a body bit above the command, or a header field of an unused
                    #: wait/signal, is not zero
    SEM_RANGE = 3   #: ``wait_sem`` or ``sig_sem`` is not below the configured semaphore count
    FETCH = 4       #: the bus answered SLVERR/DECERR to an instruction fetch
    DMA = 5         #: a descriptor was refused or the bus answered an error (detail: DmaError)
    TENSOR = 6      #: the tensor engine refused a matmul (detail: TensorError)
    VECTOR = 7      #: the vector engine refused an ACT (detail: ActError)
    WATCHDOG = 8    #: nothing moved for WATCHDOG cycles (a wait that cannot complete)
    PEER = 9        #: a SEM signals a core of the chip that does not exist (or the core
                    #: is not on a chip)
