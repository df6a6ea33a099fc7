"""Shared test helpers."""

import csv
from pathlib import Path

import pytest


def eval_returns(run_dir) -> list[tuple[int, float]]:
    """(step, eval/return) rows of a run directory, in order."""
    with open(Path(run_dir) / "metrics.csv") as f:
        return [(int(r["step"]), float(r["value"])) for r in csv.DictReader(f)
                if r["metric"] == "eval/return"]


@pytest.fixture
def read_eval_returns():
    return eval_returns
