"""Where and with what a run was made: config.json's "provenance" (docs/design.md).

Standard library only; torch is imported inside `cpu_info`, the one place that needs it.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable


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


def cpu_info() -> str:
    """The CPU's model name (/proc/cpuinfo; else `platform.processor()`) and the vector ISA
    torch's CPU kernels use, e.g. "AMD EPYC (torch AVX512)". Runs of the same seed and code
    agree to the last digit on one CPU model and not across models (other BLAS kernels,
    other rounding): this says which."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor() or "unknown CPU"
    try:
        import torch

        return f"{model} (torch {torch.backends.cpu.get_cpu_capability()})"
    except Exception:  # noqa: BLE001 - provenance never stops a run
        return model


def provenance() -> dict[str, Any]:
    """Where and with what a run was made: git, package versions, host, CPU, SLURM ids."""
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
        "cpu": cpu_info(),
        "slurm": slurm,
    }
