"""benchmarks/estep_profile.py: finding the innermost loops in a disassembly."""

import importlib.util
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def _estep_profile():
    spec = importlib.util.spec_from_file_location(
        "fastem_benchmark_estep_profile",
        REPOSITORY / "benchmarks" / "estep_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_innermost_loops_are_backward_jumps_with_no_loop_inside():
    listing = [
        (0x00, "xor    %eax,%eax"),
        (0x02, "vmovupd (%rdi),%zmm0"),         # outer loop starts here
        (0x08, "vfmadd231pd %zmm1,%zmm2,%zmm0"),  # inner loop starts here
        (0x0e, "dec    %rcx"),
        (0x11, "jne    0x8"),                    # inner: 0x8-0x11
        (0x13, "add    $0x40,%rdi"),
        (0x17, "jne    0x2"),                    # outer: 0x2-0x17, contains inner
        (0x19, "jmp    0x30"),                   # forward: not a loop
        (0x1b, "vaddpd %zmm0,%zmm0,%zmm0"),       # a second innermost loop
        (0x21, "jb     0x1b"),
        (0x23, "ret"),
    ]
    loops = _estep_profile().innermost_loops(listing)
    assert sorted(loops) == [(2, 4), (8, 9)]
