"""Stratified-bootstrap interval estimates: rliable's, and a vectorised twin equal to it.

rliable (`rliable.library.get_interval_estimates`) loops over bootstrap replications in
Python and draws each replication's run indices from numpy's *global* RNG with
`np.random.choice(num_runs, scores.shape)`. At 10,000 runs and 50,000 replications that
loop is the long pole of the report (see benchmarks/analysis_speed.py), so this module
has two engines:

- ``"rliable"``: seeds the global RNG (`np.random.seed(seed)`) and calls rliable as-is.
- ``"fast"`` (default): draws the same index stream from a private
  `np.random.RandomState(seed)` in blocks of replications (one `randint` call for many
  replications yields exactly the values of many `choice` calls), applies the statistic
  to all replications of a block at once, and takes arch's percentile interval
  (`np.percentile` at 100*alpha and 100*(1-alpha), alpha = (1-size)/2). The statistics
  repeat rliable's arithmetic in the same order, so both engines give equal numbers;
  tests/test_analysis_bootstrap.py checks it for every statistic.

Shapes: a score matrix is ``(num_runs, num_tasks)``; a curve tensor is
``(num_runs, num_tasks, num_points)``. Every function returns
``(point, lower, upper)`` as float64 arrays of shape ``(k,)`` where k is 1 for a scalar
statistic, the number of thresholds for a profile and the number of points for a curve.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
from rliable import library as rly
from rliable import metrics as rlm

ENGINES = ("fast", "rliable")
METRICS = ("IQM", "Median", "Mean", "Optimality Gap")
# Elements (indices) drawn per block in the fast engine: bounds memory at ~100 MB.
_BLOCK_ELEMENTS = 4_000_000

_RLIABLE_FUNCS: dict[str, Callable[[np.ndarray], float]] = {
    "IQM": rlm.aggregate_iqm,
    "Median": rlm.aggregate_median,
    "Mean": rlm.aggregate_mean,
    "Optimality Gap": rlm.aggregate_optimality_gap,
}


def derive_seed(seed: int, *key: object) -> int:
    """A 32-bit seed for one bootstrap from the report seed and a key (suite, metric...).

    Each estimate gets its own stream, so it does not depend on which other variants or
    suites are in the report, nor on the order they are computed in.
    """
    text = "|".join([str(int(seed)), *map(str, key)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


# ----------------------------------------------------------------------------------
# Vectorised statistics: rows are bootstrap replications. Each repeats the arithmetic of
# the rliable/scipy function it stands for, in the same order, so results are equal.
# ----------------------------------------------------------------------------------
def _iqm_rows(x: np.ndarray) -> np.ndarray:
    """(R, N) -> (R,): scipy.stats.trim_mean(row, 0.25) for each row."""
    n = x.shape[1]
    lo = int(0.25 * n)
    hi = n - lo
    part = np.partition(x, (lo, hi - 1), axis=1)
    return np.mean(part[:, lo:hi], axis=1)


def _stat_rows(metric: str, s: np.ndarray) -> np.ndarray:
    """(R, runs, tasks) -> (R,): one aggregate metric of each replication."""
    r = s.shape[0]
    if metric == "IQM":
        return _iqm_rows(s.reshape(r, -1))
    if metric == "Mean":
        return np.mean(np.mean(s, axis=1), axis=1)
    if metric == "Median":
        return np.median(np.mean(s, axis=1), axis=1)
    if metric == "Optimality Gap":
        return 1 - np.mean(np.minimum(s, 1).reshape(r, -1), axis=1)
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _percentile_interval(results: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """arch's percentile interval of (R, k) replications: rows (lower, upper), each (k,)."""
    alpha = (1.0 - size) / 2
    pct = [100 * alpha, 100 * (1.0 - alpha)]
    lower, upper = np.percentile(results, pct, axis=0)
    return np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)


def _blocks(reps: int, per_rep: int):
    """Split `reps` into consecutive block sizes of about _BLOCK_ELEMENTS indices each."""
    step = max(1, _BLOCK_ELEMENTS // max(1, per_rep))
    start = 0
    while start < reps:
        yield min(step, reps - start)
        start += step


def _draw(rs: np.random.RandomState, n: int, shape: tuple) -> np.ndarray:
    """`rs.randint(0, n, shape)` as int32: the same values as rliable's int64
    `np.random.choice(n, shape)` draws (tests check it), at a third of the cost."""
    return rs.randint(0, n, size=shape, dtype=np.int32)


def _fast_replications(scores: np.ndarray, reps: int, seed: int,
                       stat: Callable[[np.ndarray], np.ndarray],
                       points_first: bool = False) -> np.ndarray:
    """Replications of `stat` under rliable's stratified bootstrap of `scores`.

    scores: (runs, tasks, ...). Each replication resamples runs independently at every
    (task, ...) cell, exactly as rliable's StratifiedBootstrap.update_indices does
    (indices drawn replication after replication, each in C order of scores.shape).
    stat: (R, runs, tasks, ...) -> (R, k); with points_first the last axis of `scores`
    is moved to position 1 before `stat` sees it: (R, points, runs, tasks).
    Returns (reps, k).
    """
    rs = np.random.RandomState(seed)
    shape = scores.shape
    inner = int(np.prod(shape[1:], dtype=np.int64))
    flat = scores.reshape(-1)
    offsets = np.arange(inner, dtype=np.int64).reshape(shape[1:])
    out = []
    for b in _blocks(reps, scores.size):
        idx = _draw(rs, shape[0], (b, *shape)).astype(np.int64)
        idx *= inner
        idx += offsets  # flat index of scores[run, task, ...]
        if points_first:
            idx = np.moveaxis(idx, -1, 1)
        out.append(stat(np.take(flat, idx)))
    return np.concatenate(out, axis=0)


# ----------------------------------------------------------------------------------
# Public estimators
# ----------------------------------------------------------------------------------
def aggregate(scores: np.ndarray, metric: str, reps: int, seed: int,
              engine: str = "fast", size: float = 0.95):
    """Point estimate and interval of an aggregate metric.

    scores: (runs, tasks) normalised final scores. metric: one of METRICS.
    Returns (point, lower, upper), each of shape (1,).
    """
    _check(engine, metric=metric)
    scores = np.asarray(scores, dtype=np.float64)
    func = _RLIABLE_FUNCS[metric]
    if engine == "rliable":
        return _rliable(scores, lambda x: np.array([func(x)]), reps, seed, size)
    point = np.array([func(scores)], dtype=np.float64)
    res = _fast_replications(scores, reps, seed, lambda s: _stat_rows(metric, s)[:, None])
    return (point, *_percentile_interval(res, size))


def curve(scores: np.ndarray, reps: int, seed: int, engine: str = "fast",
          size: float = 0.95, metric: str = "IQM"):
    """An aggregate metric at each point of a learning curve, with intervals.

    scores: (runs, tasks, points). As in rliable's sample-efficiency example the
    statistic is `np.array([func(scores[..., t]) for t in range(points)])`, and the
    bootstrap resamples runs independently at every (task, point) cell.
    Returns (point, lower, upper), each of shape (points,).
    """
    _check(engine, metric=metric)
    scores = np.asarray(scores, dtype=np.float64)
    func = _RLIABLE_FUNCS[metric]

    def rl(x):
        return np.array([func(x[..., t]) for t in range(x.shape[-1])])

    if engine == "rliable":
        return _rliable(scores, rl, reps, seed, size)

    def stat(s):  # (R, T, runs, tasks) -> (R, T)
        r, t = s.shape[0], s.shape[1]
        return _stat_rows(metric, s.reshape(r * t, *s.shape[2:])).reshape(r, t)

    point = rl(scores).astype(np.float64)
    res = _fast_replications(scores, reps, seed, stat, points_first=True)
    return (point, *_percentile_interval(res, size))


def profile(scores: np.ndarray, taus: np.ndarray, reps: int, seed: int,
            engine: str = "fast", size: float = 0.95):
    """Performance profile (fraction of runs with score > tau) with intervals.

    scores: (runs, tasks); taus: (T,). Equal to
    `rliable.library.create_performance_profile` (score distributions). The fast engine
    counts, per replication, how often each original score is drawn (a (R, N) matrix of
    integers) and multiplies by the (N, T) 0/1 matrix `score > tau`: exact integer counts.
    Returns (point, lower, upper), each (T,).
    """
    _check(engine)
    scores = np.asarray(scores, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    if engine == "rliable":
        np.random.seed(seed)
        pt, ci = rly.create_performance_profile({"x": scores}, taus, reps=reps,
                                                confidence_interval_size=size)
        return np.asarray(pt["x"], dtype=np.float64), ci["x"][0], ci["x"][1]
    n, t = scores.shape
    size_n = n * t
    gt = (scores.reshape(-1)[:, None] > taus[None, :]).astype(np.float64)  # (N, T)
    task = np.arange(t)[None, None, :]

    def stat(idx):  # idx: (R, runs, tasks) run indices -> (R, T) fractions
        r = idx.shape[0]
        flat = (idx * t + task).reshape(r, -1) + (np.arange(r) * size_n)[:, None]
        counts = np.bincount(flat.ravel(), minlength=r * size_n).reshape(r, size_n)
        return (counts.astype(np.float64) @ gt) / size_n

    rs = np.random.RandomState(seed)
    out = [stat(_draw(rs, n, (b, n, t)).astype(np.int64)) for b in _blocks(reps, size_n)]
    point = rly.score_distributions(scores, taus).astype(np.float64)
    return (point, *_percentile_interval(np.concatenate(out), size))


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int, seed: int,
                               engine: str = "fast", size: float = 0.95):
    """P(X > Y) averaged over tasks (rliable's Mann-Whitney form) with intervals.

    x: (runs_x, tasks), y: (runs_y, tasks), the same tasks in the same order. The
    bootstrap resamples x and y independently, each stratified by task
    (rliable's StratifiedIndependentBootstrap). The fast engine computes each task's
    U statistic as #(x > y) + 0.5 #(x == y), which is what scipy's rank sums give.
    Returns (point, lower, upper), each (1,).
    """
    _check(engine)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y need the same tasks, got shapes {x.shape} and {y.shape}")
    func = rlm.probability_of_improvement
    if engine == "rliable":
        np.random.seed(seed)
        pt, ci = rly.get_interval_estimates({"x": [x, y]}, lambda a, b: np.array([func(a, b)]),
                                            reps=reps, confidence_interval_size=size)
        return np.asarray(pt["x"], dtype=np.float64), ci["x"][0], ci["x"][1]
    nx, t = x.shape
    ny = y.shape[0]
    task = np.arange(t)[None, None, :]
    rs = np.random.RandomState(seed)
    out = []
    for b in _blocks(reps, (nx + ny) * t + nx * ny * t):
        if nx == ny:  # one draw gives, per replication, x's indices then y's
            both = _draw(rs, nx, (b, 2, nx, t))
            ix, iy = both[:, 0], both[:, 1]
        else:  # different bounds: draw replication by replication, x then y
            ix = np.empty((b, nx, t), dtype=np.int64)
            iy = np.empty((b, ny, t), dtype=np.int64)
            for r in range(b):
                ix[r] = _draw(rs, nx, (nx, t))
                iy[r] = _draw(rs, ny, (ny, t))
        xs = x[ix, task][:, :, None, :]  # (b, nx, 1, t)
        ys = y[iy, task][:, None, :, :]  # (b, 1, ny, t)
        u = (xs > ys).sum(axis=(1, 2)) + 0.5 * (xs == ys).sum(axis=(1, 2))  # (b, t)
        out.append(np.mean(u / (nx * ny), axis=1)[:, None])
    point = np.array([func(x, y)], dtype=np.float64)
    return (point, *_percentile_interval(np.concatenate(out), size))


def _rliable(scores, func, reps, seed, size):
    np.random.seed(seed)
    pt, ci = rly.get_interval_estimates({"x": scores}, func, reps=reps,
                                        confidence_interval_size=size)
    return np.asarray(pt["x"], dtype=np.float64), ci["x"][0], ci["x"][1]


def _check(engine: str, metric: str | None = None) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if metric is not None and metric not in _RLIABLE_FUNCS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
