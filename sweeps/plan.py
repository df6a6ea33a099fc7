"""What a launch would do (--dry-run) and what a sweep has done (--status), as text.

The core-hours estimate divides each run's budget by a measured training throughput
(agent env steps per second of one run, evaluation excluded) from `throughput.csv`,
looked up by (algo, env), then (algo, suite family); a row marked `placeholder` is a
conservative guess awaiting a benchmark, and the plan says which figures are
placeholders. Evaluation is added (`eval_steps`: evaluations x eval envs x the env's
time limit, at the env's fastest on-policy training rate: an upper bound where episodes
end early), except to a row marked `includes_eval` (a whole run's measured rate).
A row's rate holds at the config it was measured at; a row with `ms_per_gradient_step`
and that config's `gradient_steps_per_env_step` (both fitted from finished runs by
benchmarks/run_costs.py) also costs a config's gradient steps per env step beyond or
short of it (`update_delta_s`: a tuning search over epochs and minibatch sizes moves a
V-MPO run's wall time 5x). G is nominal: num_envs x rollout_length samples per batch, so
an upper bound where autoreset steps are masked out. Core-hours = hours per run x cores
per run (SLURM: cpus_per_task; local: one core per run). Each run also costs
RUN_OVERHEAD_S of start-up (Python, torch and the envs; measured here), which matters
for small budgets only.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .spec import Run, Spec
from .state import STATES, RunState

THROUGHPUT = Path(__file__).resolve().parent / "throughput.csv"
RUN_OVERHEAD_S = 6.0   # start-up of one run (interpreter, torch import, envs): ~5-8 s here
MAX_ROWS = 40          # a longer plan shows variant x suite instead of variant x env


@dataclass
class Rate:
    steps_per_sec: float
    source: str
    placeholder: bool
    includes_eval: bool = False  # a whole run's rate, its evaluations included
    ms_per_gradient_step: float | None = None  # what one more gradient step costs
    gradient_steps_per_env_step: float | None = None  # the G the rate was measured at


def load_throughput(path: Path = THROUGHPUT) -> dict[tuple[str, str], Rate]:
    """{(algo, env id or suite family): Rate} from throughput.csv."""
    table: dict[tuple[str, str], Rate] = {}
    if not path.exists():
        return table
    with open(path) as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        for row in rows:
            try:
                sps = float(row["steps_per_sec"])
            except (KeyError, TypeError, ValueError):
                continue
            key = (row["algo"].strip(), (row.get("env") or "").strip() or row["suite"].strip())
            try:  # the cost model's pair: both or neither, finite and >= 0
                ms, g = (_optional_figure(row, k) for k in ("ms_per_gradient_step",
                                                             "gradient_steps_per_env_step"))
            except ValueError:
                continue  # as a bad steps_per_sec: the row is not used
            yes = ("1", "yes", "true")
            table[key] = Rate(sps, (row.get("source") or "").strip(),
                              (row.get("placeholder") or "").strip().lower() in yes,
                              (row.get("includes_eval") or "").strip().lower() in yes,
                              ms if g is not None else None, g if ms is not None else None)
    return table


def _optional_figure(row: dict, key: str) -> float | None:
    """A finite float >= 0 from an optional column, None if empty; ValueError otherwise."""
    text = (row.get(key) or "").strip()
    if not text:
        return None
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} {text!r}")
    return value


def rate_for(run: Run, table: dict[tuple[str, str], Rate]) -> Rate | None:
    return table.get((run.algo, run.env)) or table.get((run.algo, run.suite))


ONPOLICY = ("ppo", "trpo", "vmpo")
DEFAULT_EPISODE_STEPS = 1000   # where the registry gives no time limit (Atari: real episodes)


def _episode_steps(env: str) -> int:
    import gymnasium as gym

    import suites  # noqa: F401 - registers the envs

    try:
        return int(gym.spec(env).max_episode_steps or DEFAULT_EPISODE_STEPS)
    except Exception:  # noqa: BLE001 - an env the registry lacks here (ALE without ale-py)
        return DEFAULT_EPISODE_STEPS


def eval_steps(run: Run) -> int:
    """Env steps the run's evaluations take, at most: evaluations (one per eval_every
    and one at the end) x waves x eval envs x the env's time limit (the eval envs step in
    lockstep until the longest episode of a wave ends; `algos.rollout.eval_env_count`)."""
    from algos.config import RunConfig
    from algos.rollout import eval_env_count

    every = int(run.overrides.get("eval_every", RunConfig.eval_every))
    episodes = int(run.overrides.get("eval_episodes", RunConfig.eval_episodes))
    n_evals = -(-run.steps // every) if every > 0 else 1
    envs = eval_env_count(episodes)
    return n_evals * -(-episodes // envs) * envs * _episode_steps(run.env)


def eval_rate(run: Run, table: dict[tuple[str, str], Rate]) -> Rate | None:
    """Evaluation steps/s: the env's fastest on-policy training figure (evaluation is bound
    by the simulator as on-policy training is; MPO's figure is bound by its update)."""
    rates = [r for a in ONPOLICY for r in (table.get((a, run.env)) or table.get((a, run.suite)),)
             if r and not r.includes_eval]
    return max(rates, key=lambda r: r.steps_per_sec) if rates else rate_for(run, table)


@functools.lru_cache(maxsize=None)
def _gradient_steps(algo: str, env: str, overrides_json: str) -> float | None:
    from algos.train import RunSpec, algo_module, resolve

    fn = getattr(algo_module(algo), "gradient_steps_per_env_step", None)
    if fn is None:
        return None
    cfg = resolve(RunSpec(algo=algo, env=env, seed=0, steps=1, overrides=json.loads(overrides_json)))
    return float(fn(cfg["config"]))


def gradient_steps_of(algo: str, env: str, overrides: dict) -> float | None:
    """Gradient steps per agent env step of the resolved config of `algo` on `env` with
    `overrides` (the algorithm's `gradient_steps_per_env_step`; {} for its defaults), None
    where the algorithm does not say. Resolved once per distinct config: a plan costs
    every run several times (table, executor order, confirmation)."""
    return _gradient_steps(algo, env, json.dumps(overrides, sort_keys=True))


def gradient_steps(run: Run) -> float | None:
    """`gradient_steps_of` the run's config."""
    return gradient_steps_of(run.algo, run.env, run.overrides)


def update_delta_s(run: Run, rate: Rate) -> float:
    """Seconds `run` spends on gradient steps beyond (negative: short of) the config its
    throughput row was measured at: steps x (G - G_row) x ms_per_gradient_step / 1000,
    where G is gradient steps per env step (`gradient_steps`) and G_row the row's
    `gradient_steps_per_env_step`; 0 where the row or the algorithm does not say."""
    if rate.ms_per_gradient_step is None or rate.gradient_steps_per_env_step is None:
        return 0.0
    g = gradient_steps(run)
    if g is None:
        return 0.0
    return run.steps * (g - rate.gradient_steps_per_env_step) * rate.ms_per_gradient_step / 1000


def run_hours(run: Run, table: dict[tuple[str, str], Rate]) -> float | None:
    """Estimated wall hours of one run (training, evaluation and start-up), None without
    a figure. Training: steps at the row's rate, plus `update_delta_s` for a config that
    takes more or fewer gradient steps than the one the row was measured at; never
    below a tenth of the row's time (a fit's slope applied far below the defaults could
    otherwise cancel the simulator's share)."""
    rate = rate_for(run, table)
    if rate is None:
        return None
    base = run.steps / rate.steps_per_sec
    train = max(base + update_delta_s(run, rate), 0.1 * base)
    ev = 0.0 if rate.includes_eval else eval_steps(run) / eval_rate(run, table).steps_per_sec
    return (train + ev + RUN_OVERHEAD_S) / 3600


def _fmt_steps(n: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def _fmt_hours(h: float) -> str:
    if h < 1 / 60:
        return f"{h * 3600:.0f}s"
    if h < 1:
        return f"{h * 60:.1f}min"
    return f"{h:.1f}h"


def plan_text(spec: Spec, executor: str, executor_why: str, parallelism: int, folder: Path,
              states: list[RunState], launch: list[RunState], retry_failed: bool,
              table: dict[tuple[str, str], Rate] | None = None) -> str:
    table = load_throughput() if table is None else table
    lines = [(f"sweep {spec.name} ({spec.source}): {len(spec.variants)} variant(s) x {len(spec.envs)} env(s) "
             f"x {len(spec.seeds)} seed(s) = {len(spec.runs)} runs"),
             f"executor: {executor} ({executor_why})"
             + (f", {parallelism} run(s) at once" if executor == "local" else ""),
             f"results: {folder}"]
    cells: dict[tuple[str, str], list[Run]] = {}
    for r in spec.runs:
        cells.setdefault((r.variant, r.env), []).append(r)
    by_suite = len(cells) > MAX_ROWS
    if by_suite:
        cells = {}
        for r in spec.runs:
            cells.setdefault((r.variant, r.suite), []).append(r)
    col = "suite (envs)" if by_suite else "env"
    lines += ["", f"  {'variant':<16} {col:<28} {'runs':>5} {'steps/run':>9} {'env steps':>9} {'h/run':>8}"]
    total_steps = 0.0
    core_h = 0.0
    longest = 0.0
    missing: set[tuple[str, str]] = set()
    placeholders: set[tuple[str, str]] = set()
    scaled: set[tuple[str, str]] = set()
    for (variant, where), rs in cells.items():
        steps = sum(r.steps for r in rs)
        total_steps += steps
        hours = [run_hours(r, table) for r in rs]
        if any(h is None for h in hours):
            missing.add((rs[0].algo, rs[0].suite))
            hrun = "?"
        else:
            cores = rs[0].slurm.cpus_per_task if executor == "slurm" else 1
            core_h += sum(hours) * cores
            per_task = rs[0].slurm.runs_per_task if executor == "slurm" else 1
            longest = max(longest, max(hours) * per_task)
            hrun = _fmt_hours(sum(hours) / len(hours))
            if any(rate_for(r, table).placeholder for r in rs):
                placeholders.add((rs[0].algo, rs[0].suite))
                hrun += "*"
            if any(update_delta_s(r, rate_for(r, table)) for r in rs):
                scaled.add((rs[0].algo, rs[0].suite))
        label = f"{where} ({len({r.env for r in rs})})" if by_suite else where
        steps_run = {r.steps for r in rs}
        per = _fmt_steps(rs[0].steps) if len(steps_run) == 1 else "mixed"
        lines.append(f"  {variant:<16} {label:<28} {len(rs):>5} {per:>9} "
                     f"{_fmt_steps(steps):>9} {hrun:>8}")
    lines.append("")
    est = (f"~{core_h:.3g} core-hours" + (" for the runs with a throughput figure" if missing else "")
           if core_h else "no core-hours estimate")
    lines.append(f"total: {len(spec.runs)} runs, {_fmt_steps(total_steps)} env steps, {est}"
                 + (" (training, evaluation and start-up)" if core_h else ""))
    if executor == "local" and core_h:
        lines.append(f"  wall clock on {parallelism} core(s): ~{_fmt_hours(max(core_h / parallelism, longest))}")
    if executor == "slurm":
        for res in sorted({r.slurm for r in spec.runs}, key=lambda s: s.time):
            rs = [r for r in spec.runs if r.slurm == res]
            task_h = max((run_hours(r, table) * res.runs_per_task
                          for r in rs if rate_for(r, table)), default=0.0)
            ntasks = -(-len(rs) // res.runs_per_task)
            note = ""
            if task_h * 60 > res.time:
                note = (f"; an array task needs ~{_fmt_hours(task_h)} > the {res.time} min limit: "
                        "it will be requeued and resume from checkpoints")
            lines.append(f"  slurm: {len(rs)} runs in {ntasks} array task(s) of {res.time} min, "
                         f"{res.cpus_per_task} cpu(s)" + (f", {res.gpus_per_task} gpu(s)" if res.gpus_per_task else "")
                         + f", {res.runs_per_task} run(s) per task, at most {res.array_parallelism} at once{note}")
    if scaled:
        lines.append("  configs with more or fewer gradient steps per env step than their "
                     f"throughput row's are costed at {THROUGHPUT.name}'s ms_per_gradient_step: "
                     + ", ".join(f"{a}/{s}" for a, s in sorted(scaled)))
    if placeholders or missing:
        src = THROUGHPUT.name
        if placeholders:
            lines.append(f"  * placeholder throughput (no benchmark yet) in {src}: "
                         + ", ".join(f"{a}/{s}" for a, s in sorted(placeholders)))
        if missing:
            lines.append(f"  no throughput figure in {src} for: " + ", ".join(f"{a}/{s}" for a, s in sorted(missing)))
    counts = {s: sum(1 for x in states if x.state == s) for s in STATES}
    if any(counts[s] for s in STATES if s != "new"):
        lines.append("")
        lines.append("already in " + str(folder) + ": " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s]))
    skipped = len(states) - len(launch)
    verb = "would launch"
    lines.append(f"{verb} {len(launch)} run(s), skip {skipped}"
                 + ("" if retry_failed or not counts["failed"] else
                    f" (incl. {counts['failed']} failed: --retry-failed relaunches them)"))
    return "\n".join(lines)


def _tail_metrics(run_dir: Path, names: tuple[str, ...]) -> dict[str, float]:
    """The last value of each metric in `names` among the last rows of metrics.csv."""
    from rundir import tail_rows

    return {m: v for _, m, v, _ in tail_rows(run_dir) if m in names}


def run_progress(run_dir: Path) -> str:
    """One run's progress from its run directory: `step 350k/1M, 2,900 steps/s, train
    return 1,234, eval 1,100` (what is not logged yet is left out)."""
    from rundir import read_json

    try:
        st = read_json(run_dir / "status.json") or {}
    except Exception:  # noqa: BLE001 - a damaged file is --status's to report, not ours
        st = {}
    try:
        cfg = read_json(run_dir / "config.json") or {}
    except Exception:  # noqa: BLE001
        cfg = {}
    m = _tail_metrics(run_dir, ("time/sps", "train/episode_return", "eval/return"))
    parts = [f"step {_fmt_steps(st.get('step', 0))}" + (f"/{_fmt_steps(cfg['steps'])}" if "steps" in cfg else "")]
    if "time/sps" in m:
        parts.append(f"{m['time/sps']:,.0f} steps/s")
    if "train/episode_return" in m:
        parts.append(f"train return {m['train/episode_return']:,.1f}")
    if "eval/return" in m:
        parts.append(f"eval {m['eval/return']:,.1f}")
    return ", ".join(parts)


def hours_left(states: list[RunState], table: dict[tuple[str, str], Rate]) -> tuple[float, int]:
    """(estimated core-hours, runs without a figure) of the runs not done and not failed,
    by `run_hours`, a started run counted from its step (one core per run)."""
    hours, missing = 0.0, 0
    for st in states:
        if st.state in ("done", "failed"):
            continue
        h = run_hours(st.run, table)
        if h is None:
            missing += 1
        else:
            hours += h * (1 - min(max(st.step, 0) / st.run.steps, 1.0))
    return hours, missing


def status_text(spec: Spec, folder: Path, states: list[RunState], warnings: list[str],
                table: dict[tuple[str, str], Rate] | None = None) -> str:
    table = load_throughput() if table is None else table
    c = {s: sum(1 for x in states if x.state == s) for s in STATES}
    lines = [f"sweep {spec.name} ({folder}): {len(states)} runs: "
             + ", ".join(f"{c[s]} {s}" for s in STATES)]
    lines += [f"warning: {w}" for w in warnings]
    lines.append("")
    lines.append(f"  {'variant':<16} {'env':<28} " + " ".join(f"{s:>7}" for s in STATES))
    cells: dict[tuple[str, str], dict[str, int]] = {}
    for st in states:
        cell = cells.setdefault((st.run.variant, st.run.env), {s: 0 for s in STATES})
        cell[st.state] += 1
    for (variant, env), cell in cells.items():
        lines.append(f"  {variant:<16} {env:<28} " + " ".join(f"{cell[s]:>7}" for s in STATES))
    left = sum(1 for st in states if st.state not in ("done", "failed"))
    if left:
        hours, missing = hours_left(states, table)
        lines.append(f"left: {left} run(s), ~{hours:.3g} core-hours by the plan's estimate (a "
                     "started run from its step)" + (f"; {missing} without a throughput figure"
                                                     if missing else ""))
    running = [s for s in states if s.state == "running"]
    if running:
        lines += ["", f"running ({len(running)}):"]
        for s in running:
            lines.append(f"  {s.run.label()}: {run_progress(folder / s.run.run_id)}")
    waiting = [s for s in states if s.state == "queued" and s.step > 0]
    if waiting:
        lines += ["", f"queued to resume ({len(waiting)}; relaunched, waiting for a slot):"]
        for s in waiting:
            lines.append(f"  {s.run.label()}: from its checkpoint at or before step {s.step:,}")
    failed = [s for s in states if s.state == "failed"]
    if failed:
        lines += ["", f"failed ({len(failed)}; `--retry-failed` relaunches them):"]
        for s in failed:
            lines.append(f"  {s.run.label()} at step {s.step}: {s.error or '(no error recorded)'}")
            log = (s.job or {}).get("log")
            if log:
                lines.append(f"      log: {log}")
    stale = [s for s in states if s.state == "stale"]
    if stale:
        lines += ["", (f"stale ({len(stale)}; the next launch relaunches them, resuming from their "
                      "last checkpoints):")]
        for s in stale:
            lines.append(f"  {s.run.label()}: {s.error}")
    return "\n".join(lines)
