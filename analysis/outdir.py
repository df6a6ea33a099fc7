"""A report folder written whole: checked before any work, written in a temporary sibling
and renamed into place (`write_atomically`), so it is never half written. An existing
folder is replaced only if it is empty or an earlier report (it holds MARKER, report.md);
what a report killed while writing left beside it (a temp folder no live report holds, a
replaced report) is removed by the next report of that folder.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from rundir import writable_dir_problem
from analysis.load import UsageError

MARKER = "report.md"


def check_out(out: Path) -> None:
    """UsageError unless `out` can become the report folder (checked before any work)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UsageError(f"--out {str(out)!r} exists and is not a report folder (no "
                         f"{MARKER}); give a new or empty folder")
    problem = writable_dir_problem(out.parent)
    if problem:
        raise UsageError(f"--out {str(out)!r}: {problem}; give a folder that can be written")


def _prepare_out(out: Path) -> tuple[Path, int]:
    """A new temp sibling of `out` to write the report in, and a descriptor holding an
    flock on it (so that a report started later knows it is in use)."""
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    fd = os.open(tmp, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return tmp, fd


def _remove_stale(out: Path) -> None:
    """Remove what a report killed while writing `out` left beside it: temp folders no
    live report holds (`.<name>.*.tmp`) and replaced reports (`.<name>.*.old`)."""
    prefix = f".{out.name}."
    try:
        entries = list(os.scandir(out.parent))
    except FileNotFoundError:
        return
    for e in entries:
        if not (e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)):
            continue
        if e.name.endswith(".old"):
            shutil.rmtree(e.path, ignore_errors=True)
        elif e.name.endswith(".tmp"):
            try:
                fd = os.open(e.path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a report is writing it
            finally:
                os.close(fd)
            shutil.rmtree(e.path, ignore_errors=True)


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished temp folder to `out`, replacing an earlier report."""
    os.chmod(tmp, 0o755)
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def write_atomically(out: Path, write) -> list[str]:
    """Run write(tmp) -> files in a temporary sibling of `out`, then publish it as `out`
    (never half written: on any error the temporary folder is removed)."""
    tmp, fd = _prepare_out(out)
    try:
        files = write(tmp)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)
    _remove_stale(out)
    return files
