"""Synthetic run directories in the exact format `algos.train` writes, for tests and benchmarks.

`write_run` writes one run directory (config.json, metrics.csv, status.json) with given
evaluation returns; `write_sweep` writes a variant x env x seed grid whose final scores
come from a function, so tests know every score. Files are written plainly (no fsync):
these are fixtures, and the benchmark writes 10,000 of them. The formats are those of
`rundir` (`atomic_write_json`'s indent-2 sorted JSON; metrics rows
`step,metric,repr(value),wall_time:.3f`); tests/test_analysis_load.py reads them back
with `rundir.RunDir`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from rundir import CONFIG, METRICS, METRICS_HEADER, STATUS, stable_hash

# Metrics a training loop logs besides evaluations (names as algos/ logs them).
TRAIN_METRICS = ("loss/total", "loss/policy", "loss/value", "loss/eta", "loss/alpha",
                 "dual/eta", "dual/alpha", "stats/kl", "train/episode_return", "time/sps")


def _json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def run_config(*, sweep: str, algo: str, variant: str, suite: str, env: str, seed: int,
               steps: int, frameskip: int = 1, commit: str = "0" * 40,
               config: Mapping | None = None) -> dict:
    """A config.json object with every field docs/design.md lists (provenance included);
    `config` adds to (or replaces) the resolved config's fields."""
    resolved = {"algo": algo, "variant": variant, "env": env, "seed": seed, "steps": steps}
    return {
        "run_id": stable_hash({**resolved, "sweep": sweep}),
        "sweep": sweep, "algo": algo, "variant": variant, "suite": suite, "env": env,
        "seed": seed, "steps": steps, "frameskip": frameskip,
        "config": {"lr": 1e-4, "num_envs": 8, **(config or {})},
        "provenance": {
            "git": {"commit": commit, "dirty": False},
            "python": "3.11.7", "platform": "Linux-synthetic",
            "versions": {"numpy": "2.4.6", "torch": "2.13.0", "gymnasium": "1.4.0"},
            "host": "synthetic-host", "cpu": "Synthetic CPU (torch AVX2)", "slurm": {},
        },
    }


def write_run(sweep_dir: str | Path, config: dict, evals: Sequence[tuple[int, float]], *,
              state: str = "done", error: str | None = None, train_logs_per_eval: int = 0,
              partial_tail: bool = False) -> Path:
    """Write one run directory `<sweep_dir>/<run_id>/` and return its path.

    evals: (step, eval return) pairs in order. train_logs_per_eval: training log steps
    (each with every TRAIN_METRICS row) written before each evaluation. partial_tail:
    end metrics.csv with half a row, as a run killed mid-write leaves it.
    state: status.json's state, or None for no status.json (a run that never started).
    """
    rd = Path(sweep_dir) / config["run_id"]
    rd.mkdir(parents=True, exist_ok=True)
    (rd / CONFIG).write_text(_json(config))
    lines = [",".join(METRICS_HEADER)]
    prev = 0
    wall = 0.0
    for k, (step, value) in enumerate(evals):
        for j in range(train_logs_per_eval):
            s = prev + (step - prev) * (j + 1) // (train_logs_per_eval + 1)
            wall += 0.5
            for m, name in enumerate(TRAIN_METRICS):
                lines.append(f"{s},{name},{float(0.001 * (k + 1) * (m + 1))!r},{wall:.3f}")
        wall += 1.0
        lines.append(f"{step},eval/return,{float(value)!r},{wall:.3f}")
        lines.append(f"{step},eval/return_std,{1.0!r},{wall:.3f}")
        lines.append(f"{step},eval/episodes,{10.0!r},{wall:.3f}")
        prev = step
    text = "\n".join(lines) + "\n"
    if partial_tail:
        text += f"{prev + 1},eval/return,12"
    (rd / METRICS).write_text(text)
    if state is not None:
        last = evals[-1][0] if evals else 0
        (rd / STATUS).write_text(_json({"state": state, "step": int(last), "error": error}))
    return rd


def linear_evals(final: float, steps: int, n_evals: int, start: float = 0.0
                 ) -> list[tuple[int, float]]:
    """n_evals evaluations at steps*(k+1)/n_evals rising linearly from `start` to `final`."""
    out = []
    for k in range(n_evals):
        frac = (k + 1) / n_evals
        out.append((steps * (k + 1) // n_evals,
                    final if k == n_evals - 1 else start + (final - start) * frac))
    return out


def write_sweep(results: str | Path, sweep: str, *, variants: Mapping[str, str],
                envs: Mapping[str, str], seeds: Iterable[int],
                final: Callable[[str, str, int], float], steps: int | Mapping[str, int] = 10_000,
                n_evals: int = 10, frameskip: Mapping[str, int] | None = None,
                configs: Mapping[str, Mapping] | None = None,
                start: Callable[[str, str, int], float] | None = None,
                states: Mapping[tuple[str, str, int], str] | None = None,
                manifest: str | None = None, train_logs_per_eval: int = 0) -> Path:
    """Write a grid of runs under `<results>/<sweep>/` and return the sweep folder.

    variants: variant -> algo; envs: env id -> suite; final(variant, env, seed): the
    run's last eval return. start(...) gives the first point of its linear curve (0 by
    default). states[(variant, env, seed)]: "done" (default), "running", "failed",
    "missing" (no run directory, but listed in the manifest), "nostatus" (no
    status.json) or "partial" (done, metrics.csv ends in half a row).
    manifest: None, "csv" or "json": also write manifest.csv / manifest.json listing
    every run of the grid, as sweeps/ does. steps: one budget, or variant -> budget.
    configs: variant -> resolved-config fields of its runs (e.g. {"topk_fraction": 1.0}).
    """
    sd = Path(results) / sweep
    sd.mkdir(parents=True, exist_ok=True)
    states = states or {}
    frameskip = frameskip or {}
    rows = []
    for variant, algo in variants.items():
        for env, suite in envs.items():
            for seed in seeds:
                budget = steps[variant] if isinstance(steps, Mapping) else steps
                cfg = run_config(sweep=sweep, algo=algo, variant=variant, suite=suite,
                                 env=env, seed=seed, steps=budget,
                                 frameskip=frameskip.get(env, 1),
                                 config=(configs or {}).get(variant))
                rows.append({"run_id": cfg["run_id"], "variant": variant, "algo": algo,
                             "env": env, "suite": suite, "seed": seed})
                st = states.get((variant, env, seed), "done")
                if st == "missing":
                    continue
                s0 = start(variant, env, seed) if start else 0.0
                evals = linear_evals(final(variant, env, seed), budget, n_evals, s0)
                if st == "running":
                    evals = evals[: max(1, n_evals // 2)]
                write_run(sd, cfg, evals,
                          state={"partial": "done", "nostatus": None}.get(st, st),
                          error="diverged: loss/total is nan" if st == "failed" else None,
                          train_logs_per_eval=train_logs_per_eval,
                          partial_tail=st == "partial")
    if manifest == "csv":
        with open(sd / "manifest.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    elif manifest == "json":
        (sd / "manifest.json").write_text(_json({"runs": rows}))
    elif manifest is not None:
        raise ValueError(f"manifest must be None, 'csv' or 'json', got {manifest!r}")
    return sd
