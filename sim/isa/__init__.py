"""The instruction set in software: codec, assembler, race checker, program generator."""
