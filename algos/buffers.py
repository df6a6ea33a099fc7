"""Replay storage for off-policy learners (MPO): rollouts kept time-major, per env.

`SequenceReplay` stores the collector's rollouts `[T, B]` as B per-env streams in ring
buffers of `capacity // B` steps each, so that a sample can be a *sequence* of
consecutive steps of one env, and n-step or Retrace targets are computed over it with
the functions of `algos.returns` (the same masks as on-policy data: `valid`,
`terminated`, `truncated`).

Layout (per env; t counts the env's steps since the buffer was created):
    obs[t]                               ring of C + 1 slots (obs of step t, and the
                                         observation after the newest step)
    actions, rewards, terminated, truncated, valid, extras[k]   [t]   ring of C slots
A sample of length L starting at step t of env b is obs[t..t+L] ([L+1]) and the step
fields [t..t+L-1] ([L]); starts are drawn uniformly over the stored steps with
`valid[t]` (NEXT_STEP reset steps are not transitions: no sequence starts at one).
Episode ends inside a sequence are cut by the returns functions, so nothing bootstraps
across a reset.

Continuity: a rollout's obs[0] is the previous rollout's obs[T] (the collector runs on).
When it is not (a resumed run restarts its envs), `add` first closes the stored
streams: the last stored step of every env that did not already end is marked
`truncated` (its stored next observation is the real one, so it bootstraps from it), and
one padding step with `valid = False` separates the old data from the new.

Memory: the arrays live on the learner's `device`, allocated on the first `add` (on the
CPU as numpy-backed tensors whose untouched pages cost nothing). 1M steps of a 17-dim
float32 observation and 6-dim actions take about 100 MB; pixel observations (4x84x84
uint8) take 28 KB per step, so 1M of them would take 28 GB - size `capacity`
accordingly for pixels.

Sampling on a GPU costs no host-device synchronisation: the starts are drawn on the
host from a host copy of the `valid` flags (1 byte per step; the same numpy generator,
hence the same samples, on every device), their index arrays go to the device from
pinned memory without blocking, and the sequences are gathered there. A rollout is
copied to the device once, in `add`.

`state_dict()` holds copies of the stored part of every array plus the counters, so a
checkpoint round-trips the data exactly (a resumed run keeps its replay).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from algos.base import Batch

_STEP_FIELDS = ("actions", "rewards", "terminated", "truncated", "valid")


class SequenceReplay:
    """A replay buffer of rollouts from `num_envs` envs, `capacity` steps in all."""

    def __init__(self, capacity: int, num_envs: int, extras: tuple[str, ...] = (),
                 device: torch.device | str = "cpu") -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if capacity < num_envs * 2:
            raise ValueError(f"capacity must be >= 2 * num_envs, got {capacity}")
        self.num_envs = num_envs
        self.slots = capacity // num_envs  # C: steps per env
        self.extra_keys = tuple(extras)
        self.device = torch.device(device)
        self.arrays: dict[str, torch.Tensor] | None = None  # on self.device
        self.valid_host: np.ndarray | None = None  # [C, B] bool: arrays["valid"] on the host
        self.next_obs: np.ndarray | None = None  # [B, ...]: the newest stored obs, on the host
        self.head = 0  # t of the next step to write (same for every env)
        self.filled = 0  # steps stored per env (<= C)
        self._sampleable = False  # cached: a valid start existed (stays so as data grows)

    # -- sizes ------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.slots * self.num_envs

    def __len__(self) -> int:
        """Steps stored, over all envs (reset and padding steps included)."""
        return self.filled * self.num_envs

    # -- writing ----------------------------------------------------------------
    def _zeros(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        if self.device.type == "cpu":  # calloc'd: pages are touched only when written
            return torch.from_numpy(np.zeros(shape, dtype=torch.empty((), dtype=dtype).numpy().dtype))
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def _allocate(self, batch: Batch) -> None:
        C, B = self.slots, self.num_envs

        def like(x: torch.Tensor, n: int) -> torch.Tensor:
            return self._zeros((n, B, *x.shape[2:]), x.dtype)

        self.arrays = {"obs": like(batch.obs, C + 1)}
        for k in _STEP_FIELDS:
            self.arrays[k] = like(getattr(batch, k), C)
        for k in self.extra_keys:
            self.arrays[k] = like(batch.extras[k], C)
        self.valid_host = np.zeros((C, B), dtype=bool)

    def _index(self, idx: np.ndarray) -> torch.Tensor:
        """Host indices as a tensor on the device (from pinned memory, without blocking)."""
        t = torch.from_numpy(idx)
        if self.device.type == "cpu":
            return t
        return t.pin_memory().to(self.device, non_blocking=True)

    def add(self, batch: Batch) -> None:
        """Append a rollout (obs [T+1, B, ...], step fields [T, B, ...])."""
        T, B = batch.num_steps, batch.num_envs
        if B != self.num_envs:
            raise ValueError(f"batch has {B} envs, the buffer {self.num_envs}")
        if T + 1 > self.slots:
            raise ValueError(f"a rollout of {T} steps does not fit {self.slots} slots per env")
        missing = [k for k in self.extra_keys if k not in batch.extras]
        if missing:
            raise KeyError(f"batch lacks extras {missing}")
        if self.arrays is None:
            self._allocate(batch)
        a, dev = self.arrays, self.device
        obs = batch.obs.cpu()
        if self.filled > 0 and not np.array_equal(self.next_obs, obs[0].numpy()):
            self._close_streams()
        C1, C = self.slots + 1, self.slots
        # obs[0] goes where the previous rollout's obs[T] is (the same observation)
        idx_o = self._index((self.head + np.arange(T + 1)) % C1)
        a["obs"].index_copy_(0, idx_o, obs.to(dev, non_blocking=True))
        idx_h = (self.head + np.arange(T)) % C
        idx = self._index(idx_h)
        for k in _STEP_FIELDS:
            a[k].index_copy_(0, idx, getattr(batch, k).to(dev, non_blocking=True))
        for k in self.extra_keys:
            a[k].index_copy_(0, idx, batch.extras[k].to(dev, non_blocking=True))
        self.valid_host[idx_h] = batch.valid.cpu().numpy()
        self.next_obs = obs[-1].numpy().copy()
        self.head += T
        self.filled = min(self.filled + T, C)

    def _close_streams(self) -> None:
        """End every stored stream before data that does not continue it (see module doc)."""
        a, C = self.arrays, self.slots
        last = (self.head - 1) % C
        open_ = ~(a["terminated"][last] | a["truncated"][last])
        a["truncated"][last] |= open_ & a["valid"][last]
        # padding step at t = head: obs[head] stays (the real next obs of step head-1)
        p = self.head % C
        for k in ("actions", "rewards", "terminated", "truncated", "valid", *self.extra_keys):
            a[k][p] = 0
        self.valid_host[p] = False
        self.head += 1
        self.filled = min(self.filled + 1, C)

    # -- sampling ---------------------------------------------------------------
    def can_sample(self, length: int) -> bool:
        """Whether a sequence of `length` steps can be drawn (checked by scanning the
        stored steps until it first holds, then cached: every rollout adds valid steps)."""
        if self.filled < length + 1:
            return False
        if not self._sampleable:
            self._sampleable = self._valid_start_exists(length)
        return self._sampleable

    def _valid_start_exists(self, length: int) -> bool:
        if self.arrays is None:
            return False
        lo, hi = self.head - self.filled, self.head - length  # starts t in [lo, hi]
        if hi < lo:
            return False
        t = np.arange(lo, hi + 1) % self.slots
        return bool(self.valid_host[t].any())

    def sample_starts(self, n: int, length: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(t [n], env [n]): uniform over stored steps t with valid[t] whose sequence of
        `length` steps (and the observation after it) is stored."""
        lo, hi = self.head - self.filled, self.head - length
        if self.arrays is None or hi < lo:
            raise ValueError(f"not enough data for sequences of {length} steps")
        valid = self.valid_host
        ts, bs = [], []
        got = 0
        for _ in range(1000):
            m = max(2 * (n - got), 16)
            t = rng.integers(lo, hi + 1, size=m)
            b = rng.integers(0, self.num_envs, size=m)
            ok = valid[t % self.slots, b]
            ts.append(t[ok])
            bs.append(b[ok])
            got += int(ok.sum())
            if got >= n:
                break
        else:
            raise ValueError("no valid sequence start in the buffer")
        return np.concatenate(ts)[:n], np.concatenate(bs)[:n]

    def sample(self, n: int, length: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """n sequences of `length` steps, on the device: obs [length+1, n, ...], actions
        [length, n, ...], rewards/terminated/truncated/valid [length, n], extras [length, n, ...]."""
        t, b = self.sample_starts(n, length, rng)
        return self.gather(t, b, length)

    def gather(self, t: np.ndarray, b: np.ndarray, length: int) -> dict[str, torch.Tensor]:
        """The sequences starting at steps t [n] of envs b [n] (see `sample`)."""
        rows_o, rows_s = self.rows(t, b, length)
        return self.take(self._index(rows_o), self._index(rows_s))

    def rows(self, t: np.ndarray, b: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Host row indices of the sequences starting at steps t [n] of envs b [n], into the
        flattened [slots+1, B] observation layout [length+1, n] and the [slots, B] step
        layout [length, n] (int64; `take` reads them)."""
        B = self.num_envs
        steps = t[None, :] + np.arange(length + 1)[:, None]  # [L+1, n]
        rows_o = (steps % (self.slots + 1)) * B + b[None, :]
        rows_s = (steps[:-1] % self.slots) * B + b[None, :]
        return rows_o, rows_s

    def take(self, rows_o: torch.Tensor, rows_s: torch.Tensor) -> dict[str, torch.Tensor]:
        """The stored rows at device indices from `rows` (no host read: a CUDA graph can
        replay it with new indices copied into the same index tensors)."""
        a = self.arrays
        out = {"obs": a["obs"].flatten(0, 1)[rows_o]}
        for k in (*_STEP_FIELDS, *self.extra_keys):
            out[k] = a[k].flatten(0, 1)[rows_s]
        return out

    # -- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """CPU copies of the stored slots (the whole ring once it has wrapped) and counters."""
        state: dict[str, Any] = {"slots": self.slots, "num_envs": self.num_envs,
                                 "head": self.head, "filled": self.filled, "arrays": None}
        if self.arrays is not None:
            wrapped = self.head > self.slots
            state["shapes"] = {k: (tuple(v.shape), _numpy_dtype_name(v.dtype)) for k, v in self.arrays.items()}
            state["arrays"] = {
                k: (v if wrapped else v[: self.head + (k == "obs")]).to("cpu", copy=True)
                for k, v in self.arrays.items()
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["slots"] != self.slots or state["num_envs"] != self.num_envs:
            raise ValueError(f"replay state of {state['num_envs']} envs x {state['slots']} slots "
                             f"does not fit this buffer ({self.num_envs} x {self.slots})")
        self.head, self.filled = int(state["head"]), int(state["filled"])
        self._sampleable = False
        if state["arrays"] is None:
            self.arrays = self.valid_host = self.next_obs = None
            return
        self.arrays = {}
        for k, (shape, _dtype) in state["shapes"].items():
            saved = state["arrays"][k]
            arr = self._zeros(tuple(shape), saved.dtype)
            arr[: saved.shape[0]] = saved.to(self.device)
            self.arrays[k] = arr
        self.valid_host = self.arrays["valid"].cpu().numpy().copy()
        self.next_obs = self.arrays["obs"][self.head % (self.slots + 1)].cpu().numpy().copy()


def _numpy_dtype_name(dtype: torch.dtype) -> str:
    return str(torch.empty((), dtype=dtype).numpy().dtype)
