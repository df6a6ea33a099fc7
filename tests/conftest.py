"""Shared test helpers."""

import csv
from pathlib import Path

import pytest
import torch


def eval_returns(run_dir) -> list[tuple[int, float]]:
    """(step, eval/return) rows of a run directory, in order."""
    with open(Path(run_dir) / "metrics.csv") as f:
        return [(int(r["step"]), float(r["value"])) for r in csv.DictReader(f)
                if r["metric"] == "eval/return"]


@pytest.fixture
def read_eval_returns():
    return eval_returns


@pytest.fixture
def captured_figures(monkeypatch) -> list:
    """Each figure analysis.plots.save closes, drawn and kept for inspection (the list fills
    as the test draws)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = []
    real_close = plt.close

    def keep(fig=None):
        if fig is not None and hasattr(fig, "axes"):
            fig.canvas.draw()
            kept.append(fig)
        return real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    return kept


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: one intra-op thread (as the training loop uses) is fastest, and
    avoids OpenMP spin-waiting when the machine is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tree_snapshot(root) -> dict[str, tuple]:
    """Every path under `root` (root included) with its kind, size, mtime, mode and, for
    files, a sha256: equal snapshots mean nothing was written, created, removed or touched."""
    import hashlib
    import os

    root = Path(root)

    def entry(p: Path) -> tuple:
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        return (p.is_dir(), st.st_size, st.st_mtime_ns, st.st_mode, digest)

    out = {".": entry(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = entry(p)
    return out


@pytest.fixture
def snapshot():
    return tree_snapshot


def _mount_tmpfs(path: Path, options: str) -> str | None:
    """Mount a tmpfs at `path`; None on success, else why it could not be mounted."""
    import shutil
    import subprocess

    if shutil.which("mount") is None:
        return "no mount command"
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                         capture_output=True, text=True)
    return None if res.returncode == 0 else (res.stderr.strip() or f"mount exited {res.returncode}")


def _umount(path: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path_factory):
    """A folder nothing can be written in: a read-only tmpfs (as root, whom permissions do
    not stop), or a mode-555 folder for another user. Skips where neither is possible."""
    import os

    path = tmp_path_factory.mktemp("ro") / "mnt"
    if os.geteuid() != 0:
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    why = _mount_tmpfs(path, "size=64k,ro")
    if why:
        pytest.skip(f"cannot mount a read-only tmpfs here ({why})")
    yield path
    _umount(path)


@pytest.fixture
def small_disk(tmp_path_factory):
    """mount(size) -> a folder on a fresh tmpfs of that size (e.g. "4m"), unmounted after
    the test; skips where mounting is not permitted (not root, a restricted container)."""
    mounts = []

    def mount(size: str) -> Path:
        path = tmp_path_factory.mktemp("disk") / "mnt"
        why = _mount_tmpfs(path, f"size={size}")
        if why:
            pytest.skip(f"cannot mount a tmpfs for a full-disk test here ({why}); the "
                        "simulated-ENOSPC tests cover the same paths")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        _umount(path)


def fill_disk(folder) -> Path:
    """Fill the file system of `folder` with one file until no byte more fits; return it."""
    import errno

    filler = Path(folder) / "filler"
    with open(filler, "wb", buffering=0) as f:
        block = b"\0" * 65536
        while True:
            try:
                f.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    return filler
