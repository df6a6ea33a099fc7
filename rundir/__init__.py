"""The run directory: the contract between training, sweeps and analysis (docs/design.md).

This package is the format alone: file names, atomic writes, the metrics.csv rows, status
checks, `RunDir`, the folder lock. It imports the standard library only (torch inside
`atomic_torch_save`, and inside `provenance.cpu_info` for its ISA, when called), so sweeps and
analysis read runs without importing the learning package `algos` or torch.
`algos.results` is this module under its older name.

    <results>/<sweep>/<run_id>/
      config.json     {"run_id","sweep","algo","variant","suite","env","seed","steps",
                       "frameskip","config": {...resolved...},
                       "provenance": {git commit, dirty, versions, host, cpu, slurm ids}}
      metrics.csv     long format, append-only: step,metric,value,wall_time
      status.json     {"state": "running"|"done"|"failed", "step": N, "error": "...",
                       "resumed_at": [steps at which it resumed from a checkpoint]}
      checkpoint.pt   written atomically (temp file + rename)
      tb/             TensorBoard events, a view of metrics.csv (written by algos.tracking)

`step` counts agent environment steps summed over the vector envs; frames are
`step * frameskip` (frameskip is recorded in config.json). `steps` in config.json is
the run's budget in agent steps.

Every file but metrics.csv is replaced atomically (write a temp file in the same
folder, fsync, rename), so a reader never sees half a file; a process killed mid-write
leaves the old file and a `.<name>.*.tmp`, which the next run in that folder removes
(`RunDir.remove_temp_files`). metrics.csv is appended to row by row (unbuffered); a
failed append (a full disk) is cut back to the last whole row, and a run killed
mid-write can leave a partial last line, which readers drop. On resume the rows past
the checkpoint's step are cut away (`truncate_metrics`), so a resumed run never writes
a step twice and never goes back. A resumed run reseeds its envs at the checkpoint's
step, so it differs from an uninterrupted run of the same seed from there on:
status.json's `resumed_at` lists those steps (absent in runs written before it was kept:
read as none).

A file that exists but does not hold what it should (not JSON, a status.json without a
valid state, a metrics.csv row that is not `step,metric,value,wall_time`) raises
`CorruptFile`, which names the file and what would be valid.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rundir.provenance import cpu_info, git_info, package_versions, provenance  # noqa: F401 - part of the package's API

CONFIG = "config.json"
METRICS = "metrics.csv"
STATUS = "status.json"
CHECKPOINT = "checkpoint.pt"
METRICS_HEADER = ("step", "metric", "value", "wall_time")
STATES = ("running", "done", "failed")
EVAL_RETURN = "eval/return"
RUN_FILES = (CONFIG, METRICS, STATUS, CHECKPOINT)


class CorruptFile(ValueError):
    """A file that exists but cannot be read as what it should hold.

    `path` is the file, `problem` what is wrong, `expected` what would be valid."""

    def __init__(self, path: str | os.PathLike, problem: str, expected: str) -> None:
        self.path, self.problem, self.expected = Path(path), problem, expected
        super().__init__(f"{path}: {problem}; expected {expected}")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the same object gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short hex digest of `canonical_json(obj)`: the run_id of a resolved run config."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def temp_prefix(name: str) -> str:
    """The prefix of the temp files `atomic_write_bytes` writes for a file named `name`."""
    return f".{name}."


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder and a rename.

    On failure the temp file is removed and `path` is left as it was; an OSError (a
    full disk, say) names `path`."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)
        raise


def remove_temp_files(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Remove what a process killed inside `atomic_write_bytes` left in `folder` for the
    files `names`; return the paths removed. Call it only where no other process can be
    writing those files (the caller holds the folder's lock)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    prefixes = tuple(temp_prefix(n) for n in names)
    for e in entries:
        if e.name.startswith(prefixes) and e.name.endswith(".tmp") and e.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
                removed.append(Path(e.path))
    return removed


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` through a temp file and a rename: a reader sees the old or the new file."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike, expected: str = "a JSON object") -> Any | None:
    """The JSON in `path`, None if there is no such file; CorruptFile if it is no JSON."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise CorruptFile(path, "is a folder", expected) from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise CorruptFile(path, f"is not UTF-8 text ({e.reason} at byte {e.start})", expected) from None
    except json.JSONDecodeError as e:
        raise CorruptFile(path, f"is not valid JSON ({e})", expected) from None


STATUS_EXPECTED = ('{"state": "running"|"done"|"failed", "step": an int >= 0, "error": a string '
                   'or null, "resumed_at" (optional): a list of ints > 0}')


def check_status(obj: Any, path: str | os.PathLike) -> dict:
    """A status.json object checked for its fields; CorruptFile naming what is wrong."""
    if not isinstance(obj, dict):
        raise CorruptFile(path, f"holds {type(obj).__name__}, not an object", STATUS_EXPECTED)
    if obj.get("state") not in STATES:
        raise CorruptFile(path, f"state {obj.get('state')!r} is not one of {', '.join(STATES)}",
                          STATUS_EXPECTED)
    step = obj.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CorruptFile(path, f"step {step!r} is not an int >= 0", STATUS_EXPECTED)
    if obj.get("error") is not None and not isinstance(obj.get("error"), str):
        raise CorruptFile(path, f"error {obj.get('error')!r} is not a string or null", STATUS_EXPECTED)
    resumed = obj.get("resumed_at", [])
    if not isinstance(resumed, list) or any(isinstance(x, bool) or not isinstance(x, int) or x <= 0
                                            for x in resumed):
        raise CorruptFile(path, f"resumed_at {resumed!r} is not a list of ints > 0", STATUS_EXPECTED)
    return obj


METRICS_EXPECTED = ("the header step,metric,value,wall_time, then rows of an int step >= 0, "
                    "a metric name, a number and a number, steps never decreasing")


def parse_metrics(text: str, strict: bool = False,
                  path: str | os.PathLike = METRICS) -> list[tuple[int, str, float, float]]:
    """Rows of a metrics.csv text; a partial last line (a run killed mid-write) is dropped.

    strict: every complete line must be the header (first line only) or a row
    `step,metric,value,wall_time`, steps never decreasing; anything else raises
    CorruptFile naming `path` and the line. Not strict: lines of other shapes are
    skipped (a bad step still raises ValueError)."""
    rows = []
    complete = text.split("\n")[:-1]  # what follows the last "\n" is empty or a partial line
    last_step = 0
    for no, line in enumerate(complete, 1):
        if strict:
            if no == 1 and line == ",".join(METRICS_HEADER):
                continue
            try:
                s, m, v, w = line.split(",")
                row = (int(s), m, float(v), float(w))
                ok = row[0] >= last_step and m != "" and s.strip() == s
            except ValueError:
                ok = False
            if not ok:
                shown = line if len(line) <= 80 else line[:77] + "..."
                what = "header" if no == 1 else "row"
                raise CorruptFile(path, f"line {no} is not a valid {what}: {shown!r}",
                                  METRICS_EXPECTED)
            last_step = row[0]
            rows.append(row)
            continue
        if not line or line.startswith("step,"):
            continue
        parts = line.split(",")
        if len(parts) != 4:
            continue
        rows.append((int(parts[0]), parts[1], float(parts[2]), float(parts[3])))
    return rows


def tail_rows(run_dir: str | os.PathLike, tail_bytes: int = 65536
              ) -> list[tuple[int, str, float, float]]:
    """The complete rows among the last `tail_bytes` of a run directory's metrics.csv
    (parse_metrics' rows; [] when absent or unreadable): what a progress line or a wall
    time needs, without reading a long run's whole file."""
    try:
        with open(Path(run_dir) / METRICS, "rb") as f:
            f.seek(0, os.SEEK_END)
            start = max(0, f.tell() - tail_bytes)
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    if start:  # the first line is cut where the read began
        text = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        return parse_metrics(text)
    except ValueError:
        return []


def last_wall_time(run_dir: str | os.PathLike) -> float:
    """The wall_time of the last metrics.csv row (seconds of training, carried over
    resumes), NaN if there is none."""
    rows = tail_rows(run_dir, 4096)
    return rows[-1][3] if rows else float("nan")


def writable_dir_problem(path: str | os.PathLike, need_write: bool = True) -> str | None:
    """Why `path` cannot be used as a folder to write in (None if it can): it or a parent
    is a file, or (need_write) the nearest existing folder is read-only or not writable."""
    p = Path(os.path.abspath(path))
    if p.exists() and not p.is_dir():
        return f"{path} is a file, not a folder"
    anc = p
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        return f"{anc} is a file, so {path} cannot be a folder"
    if need_write and not os.access(anc, os.W_OK | os.X_OK):
        try:
            ro = bool(os.statvfs(anc).f_flag & os.ST_RDONLY)
        except OSError:
            ro = False
        why = "is on a read-only file system" if ro else "is not writable (permission denied)"
        return f"{anc} {why}" + ("" if anc == p else f", so {path} cannot be made there")
    return None


@dataclass
class RunDir:
    """One run's folder. Writers: `algos.train`; readers: sweeps and analysis."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def status_path(self) -> Path:
        return self.path / STATUS

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    # -- config ---------------------------------------------------------------
    def read_config(self) -> dict | None:
        cfg = read_json(self.config_path, "the JSON object algos.train writes")
        if cfg is not None and not isinstance(cfg, dict):
            raise CorruptFile(self.config_path, f"holds {type(cfg).__name__}, not an object",
                              "the JSON object algos.train writes")
        return cfg

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_path, config)

    # -- status ---------------------------------------------------------------
    def read_status(self) -> dict | None:
        """status.json, None if absent; CorruptFile if it is not a valid status."""
        st = read_json(self.status_path, STATUS_EXPECTED)
        return None if st is None else check_status(st, self.status_path)

    def write_status(self, state: str, step: int, error: str | None = None,
                     resumed_at: list[int] | tuple[int, ...] = ()) -> None:
        """`resumed_at`: the steps at which the run resumed from a checkpoint, oldest first."""
        if state not in STATES:
            raise ValueError(f"status state must be one of {STATES}, got {state!r}")
        atomic_write_json(self.status_path, {"state": state, "step": int(step), "error": error,
                                             "resumed_at": [int(x) for x in resumed_at]})

    # -- metrics --------------------------------------------------------------
    def read_metrics(self, strict: bool = False) -> list[tuple[int, str, float, float]]:
        """The rows of metrics.csv ([] if absent); strict: CorruptFile on a bad line."""
        try:
            data = self.metrics_path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            if not strict:
                raise
            raise CorruptFile(self.metrics_path, f"is not UTF-8 text (byte {e.start})",
                              METRICS_EXPECTED) from None
        return parse_metrics(text, strict=strict, path=self.metrics_path)

    def truncate_metrics(self, max_step: int) -> None:
        """Keep only complete rows with step <= max_step (atomic rewrite), header first."""
        rows = [r for r in self.read_metrics(strict=True) if r[0] <= max_step]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(METRICS_HEADER)
        for r in rows:
            w.writerow(_format_row(*r))
        atomic_write_bytes(self.metrics_path, buf.getvalue().encode())

    def open_metrics(self) -> "MetricsWriter":
        return MetricsWriter(self.metrics_path)

    # -- housekeeping ---------------------------------------------------------
    def remove_temp_files(self) -> list[Path]:
        """Remove the temp files a killed writer left here (see `remove_temp_files`)."""
        return remove_temp_files(self.path, RUN_FILES)

    def lock(self) -> "FolderLock | None":
        """An exclusive lock on this (existing) folder, held until released or the process
        ends; None if another process holds it. Where the file system cannot lock a
        folder (some network file systems) the lock is a no-op."""
        return FolderLock.try_acquire(self.path)


class FolderLock:
    """flock on a folder's own file descriptor: no lock file is written."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def try_acquire(cls, folder: Path) -> "FolderLock | None":
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            return cls(None)  # no flock on this file system: go on unlocked
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _format_row(step: int, metric: str, value: float, wall_time: float) -> tuple:
    return (int(step), metric, repr(float(value)), f"{wall_time:.3f}")


class MetricsWriter:
    """Appends `step,metric,value,wall_time` rows, each `write` one unbuffered append.

    An append that fails (a full disk) is cut back to the last whole row before the
    error propagates, so metrics.csv never holds half a row but for a process killed
    inside the write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        if self._size == 0:
            self._append((",".join(METRICS_HEADER) + "\n").encode())

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            if e.filename is None:
                e.filename = str(self.path)
            raise
        self._size += len(data)

    def write(self, step: int, metrics: dict[str, float], wall_time: float) -> None:
        lines = []
        for name, value in metrics.items():
            if "," in name or "\n" in name:
                raise ValueError(f"metric name {name!r} may not contain ',' or newlines")
            lines.append(",".join(str(x) for x in _format_row(step, name, value, wall_time)))
        if lines:
            self._append(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def first_non_finite(metrics: dict[str, float]) -> str | None:
    """Name of the first metric whose value is NaN or +-Inf, or None."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            return name
    return None
