"""algos.memory.keep_freed_memory: large blocks come from the heap and stay there."""

import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, sys
import numpy as np
from algos.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
on = sys.argv[1] == "on"
if on and not keep_freed_memory():
    print("refused")
    sys.exit(0)
a = np.ones(100 * 2**20 // 8)            # 100 MiB
during = libc.mallinfo2()
del a
after = libc.mallinfo2()
print(during.hblkhd, after.fordblks)
"""


def _probe(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    if out == ["refused"]:
        pytest.skip("this glibc refuses a 1 GiB M_MMAP_THRESHOLD")
    return int(out[0]), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_large_blocks_stay_in_the_heap():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("no glibc >= 2.33 (mallinfo2)")
    mapped_off, free_off = _probe("off")
    mapped_on, free_on = _probe("on")
    mib = 2**20
    # glibc's default: the 100 MiB block is its own mmap, unmapped on free
    assert mapped_off >= 100 * mib and free_off < 100 * mib
    # kept: served from the heap (no mmapped block), and still there once freed
    assert mapped_on < 100 * mib and free_on >= 100 * mib
