"""Fault injection for tests/test_faults.py: with this folder on PYTHONPATH, Python
imports this module at start-up, and VMPO_FAILPOINT makes the process SIGKILL itself at a
chosen moment of a write (the project's code is not changed):

    fsync:SUBSTRING:N   inside the N-th os.fsync of a file whose path contains SUBSTRING
                        (atomic_write_bytes fsyncs its temp file before the rename), after
                        cutting the temp file to half its size: a kill during the write
    rename:SUFFIX:N     right after the N-th os.rename to a path ending in SUFFIX (the
                        report's publish step renames the old report to `.<name>.*.old`)

Without VMPO_FAILPOINT nothing is changed.
"""

import os
import signal

_SPEC = os.environ.get("VMPO_FAILPOINT")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if _SPEC:
    _kind, _target, _nth = _SPEC.rsplit(":", 2)
    _count = [0]

    if _kind == "fsync":
        _real_fsync = os.fsync

        def fsync(fd):
            try:
                name = os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}")
            except OSError:
                name = ""
            if _target in name:
                _count[0] += 1
                if _count[0] == int(_nth):
                    os.ftruncate(fd, os.fstat(fd).st_size // 2)
                    _die()
            return _real_fsync(fd)

        os.fsync = fsync
    elif _kind == "rename":
        _real_rename = os.rename

        def rename(src, dst, *args, **kwargs):
            _real_rename(src, dst, *args, **kwargs)
            if str(dst).endswith(_target):
                _count[0] += 1
                if _count[0] == int(_nth):
                    _die()

        os.rename = rename
    else:
        raise SystemExit(f"VMPO_FAILPOINT: unknown kind {_kind!r} in {_SPEC!r}")
