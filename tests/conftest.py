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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: one intra-op thread (as the training loop uses) is fastest, and
    avoids OpenMP spin-waiting when the machine is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
