"""The run directory: the contract between training, sweeps and analysis.

    <results>/<sweep>/<run_id>/
      config.json     {"run_id","sweep","algo","variant","suite","env","seed","steps",
                       "frameskip","config": {...resolved...},
                       "provenance": {git commit, dirty, versions, host, slurm ids}}
      metrics.csv     long format, append-only: step,metric,value,wall_time
      status.json     {"state": "running"|"done"|"failed", "step": N, "error": "..."}
      checkpoint.pt   written atomically (temp file + rename)

`step` counts agent environment steps summed over the vector envs; frames are
`step * frameskip` (frameskip is recorded in config.json). `steps` in config.json is
the run's budget in agent steps.

Every file but metrics.csv is replaced atomically (write a temp file in the same
folder, fsync, rename), so a reader never sees half a file. metrics.csv is appended
to and flushed row by row; a run killed mid-write can leave a partial last line,
which readers drop. On resume the rows past the checkpoint's step are cut away
(`truncate_metrics`), so a resumed run never writes a step twice and never goes back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

CONFIG = "config.json"
METRICS = "metrics.csv"
STATUS = "status.json"
CHECKPOINT = "checkpoint.pt"
METRICS_HEADER = ("step", "metric", "value", "wall_time")
STATES = ("running", "done", "failed")
EVAL_RETURN = "eval/return"


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the same object gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short hex digest of `canonical_json(obj)`: the run_id of a resolved run config."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` through a temp file and a rename: a reader sees the old or the new file."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike) -> Any | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def parse_metrics(text: str) -> list[tuple[int, str, float, float]]:
    """Rows of a metrics.csv text; a partial last line (a run killed mid-write) is dropped."""
    rows = []
    lines = text.split("\n")
    complete = lines[:-1] if lines and lines[-1] != "" else lines  # last chunk has no "\n"
    for line in complete:
        if not line or line.startswith("step,"):
            continue
        parts = line.split(",")
        if len(parts) != 4:
            continue
        rows.append((int(parts[0]), parts[1], float(parts[2]), float(parts[3])))
    return rows


def git_info(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The commit and dirty flag of the checkout that holds this package (None outside git)."""
    cwd = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions(names: Iterable[str] = (
    "torch", "numpy", "gymnasium", "mujoco", "ale-py", "submitit", "vmpo-bench"
)) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict[str, Any]:
    """Where and with what a run was made: git, package versions, host, SLURM ids."""
    slurm = {
        k: os.environ[k]
        for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")
        if k in os.environ
    }
    return {
        "git": git_info(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": package_versions(),
        "host": socket.gethostname(),
        "slurm": slurm,
    }


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
        return read_json(self.config_path)

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_path, config)

    # -- status ---------------------------------------------------------------
    def read_status(self) -> dict | None:
        return read_json(self.status_path)

    def write_status(self, state: str, step: int, error: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"status state must be one of {STATES}, got {state!r}")
        atomic_write_json(self.status_path, {"state": state, "step": int(step), "error": error})

    # -- metrics --------------------------------------------------------------
    def read_metrics(self) -> list[tuple[int, str, float, float]]:
        try:
            return parse_metrics(self.metrics_path.read_text())
        except FileNotFoundError:
            return []

    def truncate_metrics(self, max_step: int) -> None:
        """Keep only complete rows with step <= max_step (atomic rewrite), header first."""
        rows = [r for r in self.read_metrics() if r[0] <= max_step]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(METRICS_HEADER)
        for r in rows:
            w.writerow(_format_row(*r))
        atomic_write_bytes(self.metrics_path, buf.getvalue().encode())

    def open_metrics(self) -> "MetricsWriter":
        return MetricsWriter(self.metrics_path)


def _format_row(step: int, metric: str, value: float, wall_time: float) -> tuple:
    return (int(step), metric, repr(float(value)), f"{wall_time:.3f}")


class MetricsWriter:
    """Appends `step,metric,value,wall_time` rows and flushes after every `write`."""

    def __init__(self, path: Path) -> None:
        new = not path.exists() or path.stat().st_size == 0
        self._f = open(path, "a", newline="")
        if new:
            self._f.write(",".join(METRICS_HEADER) + "\n")
            self._f.flush()

    def write(self, step: int, metrics: dict[str, float], wall_time: float) -> None:
        lines = []
        for name, value in metrics.items():
            if "," in name or "\n" in name:
                raise ValueError(f"metric name {name!r} may not contain ',' or newlines")
            lines.append(",".join(str(x) for x in _format_row(step, name, value, wall_time)))
        if lines:
            self._f.write("\n".join(lines) + "\n")
            self._f.flush()

    def close(self) -> None:
        self._f.close()


def first_non_finite(metrics: dict[str, float]) -> str | None:
    """Name of the first metric whose value is NaN or +-Inf, or None."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            return name
    return None
