"""Live views of a run beside metrics.csv: TensorBoard always, Weights & Biases on request.

metrics.csv stays the record (analysis reads nothing else); these are views of the same
rows, written by the training loop right after each row goes to metrics.csv:

- TensorBoard: `<run_dir>/tb/<variant>.<env>.seed<seed>/events.out.tfevents.*`. TensorBoard
  names a run by its folder relative to `--logdir`, and run directories are named by
  run_id hashes, so `tensorboard --logdir results/<sweep>` lists each run as
  `<run_id>/tb/<variant>.<env>.seed<seed>` (filter by variant, env or seed in its run
  selector). Characters other than letters, digits and `._+-` become `_`
  (`ALE/Pong-v5` -> `ALE_Pong-v5`). Every metrics.csv row of a step is one event holding
  every metric of that row as a scalar at that step (values are float32 in TensorBoard).
  Resume: the writer starts with `purge_step` = the checkpoint's step + 1 (0 for a run
  trained again from step 0), which TensorBoard's readers apply: the scalars a killed
  process wrote past the checkpoint are hidden, as metrics.csv cuts those rows, so no
  step is shown twice. (The older event file keeps its bytes: a reader that ignores
  TensorBoard's purge would see them.) Off with `VMPO_BENCH_TENSORBOARD=0`.
- Weights & Biases: `python -m algos.train ... --track` or `VMPO_BENCH_TRACK=wandb` in the
  environment (what a sweep's jobs inherit). Neither is part of the config, so run ids do
  not change. The W&B run is named like the TensorBoard folder, grouped by sweep, its id
  the run_id (a resumed run continues it; W&B ignores a step at or below the last it
  holds, so the steps a killed process logged past its checkpoint stay there). Without
  WANDB_MODE and without W&B credentials (WANDB_API_KEY or a netrc entry for its host)
  it logs offline into `<run_dir>/wandb/` (`wandb sync` uploads it later), so a machine
  with no network never waits on one. `wandb` is not a dependency: asking for it
  without the package is a usage error naming `pip install wandb`.

Cost (benchmarks/tensorboard_cost.py, 2 shared cores): 0.14-0.19 ms of CPU per row of
14-23 metrics, most of it tensorboard's pure-Python CRC-32C of each record in its writer
thread (one event per row: `add_scalar` per metric costs ~5x more). That is at most
~1.6% of a run's CPU time where rows are most frequent for the work (V-MPO on CartPole:
a row every 256 steps), 0.7% for PPO on CartPole, 0.07% for MPO on Pendulum; steps/s
with and without it agree within this machine's noise.
"""

from __future__ import annotations

import netrc
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from algos.config import ConfigError

TB_FOLDER = "tb"
TRACK_ENV = "VMPO_BENCH_TRACK"
TENSORBOARD_ENV = "VMPO_BENCH_TENSORBOARD"
TRACKERS = ("wandb",)
WANDB_HINT = "pip install wandb"
FLUSH_SECS = 10  # TensorBoard's default is 120 s: too long to watch a short run live


def run_name(resolved: dict) -> str:
    """`<variant>.<env>.seed<seed>`, safe as a folder name: the TensorBoard and W&B run name."""
    raw = f"{resolved['variant']}.{resolved['env']}.seed{resolved['seed']}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", raw)


def tensorboard_dir(run_dir: str | os.PathLike, resolved: dict) -> Path:
    """The folder of a run's TensorBoard event files."""
    return Path(run_dir) / TB_FOLDER / run_name(resolved)


def tracker_from_env(value: str | None = None) -> str | None:
    """The tracker `VMPO_BENCH_TRACK` asks for (None: none); ConfigError for another value."""
    value = os.environ.get(TRACK_ENV, "") if value is None else value
    value = value.strip().lower()
    if value in ("", "0", "none", "false", "off"):
        return None
    if value in ("1", "true", "on"):
        return TRACKERS[0]
    if value not in TRACKERS:
        raise ConfigError(TRACK_ENV, f"expected one of {', '.join(TRACKERS)} (or empty for "
                                     f"none), got {value!r}")
    return value


def require_wandb():
    """The `wandb` module, or a ConfigError saying what to install."""
    try:
        import wandb
    except ImportError as e:
        raise ConfigError("track", f"Weights & Biases tracking needs the wandb package, which "
                                   f"is not installed ({e}); {WANDB_HINT}, or leave out "
                                   f"--track / {TRACK_ENV}") from None
    return wandb


class TensorBoardLog:
    """Writes each metrics row as one event of scalars at its step (see the module doc)."""

    def __init__(self, log_dir: Path, purge_step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        from torch.utils.tensorboard import SummaryWriter

        log_dir.mkdir(parents=True, exist_ok=True)
        _after_last_event_file(log_dir)
        self._summary, self._value = Summary, Summary.Value
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step, flush_secs=FLUSH_SECS)
        # one event per row: SummaryWriter.add_scalar makes one per metric (5x the cost)
        self._file = self.writer._get_file_writer()

    def write(self, step: int, metrics: dict[str, float]) -> None:
        value = self._value
        self._file.add_summary(self._summary(value=[value(tag=k, simple_value=v)
                                                    for k, v in metrics.items()]), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _after_last_event_file(log_dir: Path) -> None:
    """Wait, if need be, until the clock is past the second of the newest event file here.

    Event files are named `events.out.tfevents.<unix second>.<host>.<pid>.<n>` and
    TensorBoard reads them in name order; the resumed writer's purge applies only if its
    file sorts after the one it purges, which the second ensures (pids do not sort)."""
    newest = 0
    for p in log_dir.glob("events.out.tfevents.*"):
        parts = p.name.split(".")
        if len(parts) > 3 and parts[3].isdigit():
            newest = max(newest, int(parts[3]))
    while int(time.time()) <= newest:
        time.sleep(0.05)


class WandbLog:
    """Logs each metrics row with `wandb.log(row, step=step)`."""

    def __init__(self, wandb, run_dir: Path, resolved: dict, sweep: str | None,
                 project: str | None = None, entity: str | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.wandb = wandb
        # WANDB_MODE, where set, is wandb's to read; else offline unless credentials exist
        mode = None if os.environ.get("WANDB_MODE") or _has_wandb_credentials() else "offline"
        if mode == "offline" and warn:
            warn(f"wandb: no credentials found: logging offline into {run_dir / 'wandb'} "
                 "(`wandb sync` uploads it later; set WANDB_MODE to choose)")
        kwargs: dict[str, Any] = dict(
            project=project or os.environ.get("WANDB_PROJECT") or "vmpo-bench",
            entity=entity or os.environ.get("WANDB_ENTITY") or None,
            name=run_name(resolved), group=sweep or None,
            id=resolved["run_id"], resume="allow", dir=str(run_dir),
            tags=[resolved["algo"], resolved["suite"], resolved["env"]],
            config={**resolved, "sweep": sweep},
        )
        if mode:
            kwargs["mode"] = mode
        try:
            self.run = wandb.init(**kwargs)
        except Exception as e:  # noqa: BLE001 - no network, a bad key: go on offline
            if mode == "offline":
                raise
            if warn:
                warn(f"wandb: init failed ({type(e).__name__}: {e}); logging offline into "
                     f"{run_dir / 'wandb'}")
            self.run = wandb.init(**{**kwargs, "mode": "offline"})

    def write(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.run.finish()


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = re.sub(r"^https?://", "", os.environ.get("WANDB_BASE_URL", "api.wandb.ai")).split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class Trackers:
    """The live views of one run: `write` a metrics row to each, `flush`, `close` all."""

    def __init__(self, logs: list) -> None:
        self.logs = logs

    def write(self, step: int, metrics: dict[str, float]) -> None:
        for log in self.logs:
            log.write(step, metrics)

    def flush(self) -> None:
        for log in self.logs:
            log.flush()

    def closers(self) -> list[Callable[[], None]]:
        return [log.close for log in self.logs]


def tensorboard_enabled() -> bool:
    return os.environ.get(TENSORBOARD_ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def open_trackers(run_dir: str | os.PathLike, resolved: dict, sweep: str | None,
                  purge_step: int, track: str | None, wandb_project: str | None = None,
                  wandb_entity: str | None = None) -> Trackers:
    """TensorBoard (unless VMPO_BENCH_TENSORBOARD=0) and the tracker `track` asks for.

    `purge_step`: the first step this process may write (the checkpoint's step + 1, or 0);
    TensorBoard hides what earlier processes wrote from there on. A missing tensorboard
    package prints one warning and trains on (metrics.csv is the record)."""
    run_dir = Path(run_dir)
    logs: list = []
    if tensorboard_enabled():
        try:
            logs.append(TensorBoardLog(tensorboard_dir(run_dir, resolved), purge_step))
        except ImportError as e:
            _warn(f"warning: no TensorBoard event files for this run ({e}); "
                  "pip install tensorboard")
    if track == "wandb":
        logs.append(WandbLog(require_wandb(), run_dir, resolved, sweep, wandb_project,
                             wandb_entity, warn=_warn))
    elif track is not None:
        raise ConfigError("track", f"expected one of {', '.join(TRACKERS)}, got {track!r}")
    return Trackers(logs)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
