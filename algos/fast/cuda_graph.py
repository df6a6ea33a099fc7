"""A learner's update as the replay of one captured CUDA graph, kept equal to the eager
update or set aside.

MPO's update is hundreds of small kernels; eagerly, launching them bounds it on a GPU
(benchmarks/mpo_update.py --device cuda: 11.2 ms eager against 1.06 ms replayed on an
H200). A graph replays the kernels it recorded with the values it recorded: whatever
enters through a tensor the graph reads (replay rows, noise, parameters, optimiser state,
the target networks refreshed in place) is live, but a Python value is frozen at capture.
An lr schedule, an annealed coefficient or a branch in `learn` would silently stop
changing. So `GraphedUpdate`

- records at capture the Python state the update reads (the learner's config and every
  optimiser's hyper-parameters) and compares it before each replay: any change and the
  graph is dropped before it replays a stale value;
- runs the eager update on a copy of the learner (`shadow`), with the same rows and
  noise, beside the first replay and every `EVERY`-th after it, and compares the
  parameters it leaves and the stats it returns (`algos.fast.guard`: each parameter
  tensor, and the stats as one block, scaled by their largest entry; TOL 1e-4, where
  the replay of the same kernels differs from the eager update by float32 rounding of
  atomic adds, ~1e-7). On a mismatch the eager result is taken (`adopt`), the graph is
  dropped for the rest of the run, one line goes to stderr and fast/cuda_graph turns 0.

A check costs an eager update (11.2 ms on the H200) and a copy of the networks and
optimisers, against 1.06 ms per replay: every 1,000 updates, an estimated ~1.5% of the
run (not yet timed on a GPU). The capture goes through a `backend`, which the CPU tests
replace by a stand-in that freezes Python values the way a graph does.

On by default on a CUDA device (MPO); VMPO_MPO_CUDA_GRAPH=0 in the environment, or
`learner.graph = None`, takes the eager update. Like the other fast paths it is no config
field: it changes no result (a field would change every run's run_id).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from algos.fast.guard import Guard, max_rel_err

ENABLED = os.environ.get("VMPO_MPO_CUDA_GRAPH", "1") != "0"
"""Whether a learner on a CUDA device builds its `GraphedUpdate` (VMPO_MPO_CUDA_GRAPH=0: no)."""


class CudaBackend:
    """torch's whole-network capture recipe on one CUDA device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def warmup(self, fn: Callable[[], Any]) -> Any:
        """Run fn eagerly on a side stream (lazy initialisation, the optimisers' state,
        happens outside the graph)."""
        side, main = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            out = fn()
        main.wait_stream(side)
        return out

    def capture(self, fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        """Record fn's kernels (not run); the returned replay runs them and returns fn's
        output tensor, overwritten by each replay."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()

        def replay() -> torch.Tensor:
            graph.replay()
            return out

        return replay

    def prepare(self, optimizers) -> None:
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)  # backward allocates the grads in the graph's pool
            for group in opt.param_groups:
                group["capturable"] = True  # the step counts and lr stay on the device

    def tensor(self, src: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(src).to(self.device)

    def upload(self, dst: torch.Tensor, src: np.ndarray) -> None:
        dst.copy_(torch.from_numpy(src).pin_memory(), non_blocking=True)


def _python_state(learner) -> list:
    """What a graph freezes that the update reads from Python: the config's fields and
    every optimiser's hyper-parameters (a tensor hyper-parameter is read by the graph, so
    only its identity counts)."""
    groups = [{k: ("tensor", id(v)) if torch.is_tensor(v) else v for k, v in g.items() if k != "params"}
              for opt in learner.optimizers() for g in opt.param_groups]
    return [dict(vars(learner.cfg)), groups]


class GraphedUpdate:
    """One update of `learner` through a captured graph: `__call__() -> stats`.

    The learner provides: `cfg` (batch_size, nstep), `buffer` (sample_starts, gather,
    rows, take), `sample_rng`, `noise_shape()`, `learn(seq, noise)` (the eager update:
    the definition), `optimizers()`, `updates`, and the names of the modules and
    optimisers an update changes (`state_names`), which `shadow`/`adopt` copy."""

    WARMUP = 3
    """Eager updates on a side stream before the capture (torch's recipe)."""
    EVERY = 1000
    """Replays between comparisons with the eager update, after the first replay's."""
    TOL = 1e-4
    """Largest accepted error of a comparison (module docstring)."""

    def __init__(self, learner, state_names: tuple[str, ...], backend) -> None:
        self.learner, self.state_names, self.backend = learner, state_names, backend
        self.guard = Guard("cuda_graph", "the CUDA graph of the update", "the eager update",
                           self.TOL, self.EVERY)
        self.reset()

    @property
    def active(self) -> bool:
        return self.guard.active

    @property
    def captured(self) -> bool:
        return self._replay is not None

    def reset(self) -> None:
        """Forget the graph (after a load: the optimisers' states are new tensors that a
        captured graph would not update); the next updates warm up and capture again."""
        self._replay = None
        self._rows_o = self._rows_s = self._noise = None
        self._keys: list[str] = []
        self._consts: dict[str, float] = {}
        self._frozen: list | None = None
        self._warmups = 0

    def __call__(self) -> dict[str, Any]:
        L, cfg = self.learner, self.learner.cfg
        t, b = L.buffer.sample_starts(cfg.batch_size, cfg.nstep, L.sample_rng)
        if self._replay is None and self._warmups < self.WARMUP:
            self._warmups += 1
            return self.backend.warmup(lambda: L.learn(L.buffer.gather(t, b, cfg.nstep)))
        rows_o, rows_s = L.buffer.rows(t, b, cfg.nstep)
        if self._replay is None:
            self._capture(rows_o, rows_s)
        elif _python_state(L) != self._frozen:
            self.guard.step_aside(f"at update {L.updates + 1}: a Python value it froze at capture "
                                  "(a config field or an optimiser's hyper-parameter) has changed")
            self.reset()
            return L.learn(L.buffer.gather(t, b, cfg.nstep))
        self.backend.upload(self._rows_o, rows_o)
        self.backend.upload(self._rows_s, rows_s)
        if self._noise is not None:
            torch.randn(self._noise.shape, out=self._noise)  # the eager update's draws
        if self.guard.due():
            return self._checked_replay()
        return self._stats(self._replay())

    def _capture(self, rows_o: np.ndarray, rows_s: np.ndarray) -> None:
        L = self.learner
        self._rows_o, self._rows_s = self.backend.tensor(rows_o), self.backend.tensor(rows_s)
        shape = L.noise_shape()
        self._noise = None if shape is None else torch.zeros(shape, device=self._rows_o.device)
        self.backend.prepare(L.optimizers())
        self._frozen = _python_state(L)

        def body() -> torch.Tensor:
            stats = L.learn(L.buffer.take(self._rows_o, self._rows_s), self._noise)
            self._keys = [k for k, v in stats.items() if torch.is_tensor(v)]
            self._consts = {k: v for k, v in stats.items() if not torch.is_tensor(v)}
            return torch.stack([stats[k].to(torch.float32).reshape(()) for k in self._keys])

        self._replay = self.backend.capture(body)

    def _stats(self, out: torch.Tensor) -> dict[str, Any]:
        values = out.clone()  # the next replay overwrites the graph's output
        return {**dict(zip(self._keys, values.unbind())), **self._consts}

    def _checked_replay(self) -> dict[str, Any]:
        """The replay beside the eager update of a copy from the same state and inputs."""
        L = self.learner
        twin = self.shadow()
        noise = None if self._noise is None else self._noise.clone()
        ref = twin.learn(L.buffer.take(self._rows_o, self._rows_s), noise)
        got = self._stats(self._replay())
        keys = [k for k in ref if torch.is_tensor(ref[k])]
        blocks_got = [p.detach().cpu().numpy() for _, p in self._parameters(L)]
        blocks_ref = [p.detach().cpu().numpy() for _, p in self._parameters(twin)]
        if keys:
            blocks_got.append(np.array([float(got.get(k, np.nan)) for k in keys]))
            blocks_ref.append(np.array([float(ref[k]) for k in keys]))
        err = max_rel_err(blocks_got, blocks_ref)
        if self.guard.record(err, f"at update {L.updates + 1}"):
            return got
        self.adopt(twin)
        self.reset()
        return ref

    def _parameters(self, learner) -> list[tuple[str, torch.Tensor]]:
        return [(f"{n}.{k}", p) for n in self.state_names
                if isinstance(getattr(learner, n), torch.nn.Module)
                for k, p in getattr(learner, n).named_parameters()]

    def shadow(self):
        """A copy of the learner whose networks, duals and optimisers (`state_names`) are
        its own, the rest (replay, config, ...) shared."""
        L = self.learner
        twin = copy.copy(L)
        twin.__dict__.update(copy.deepcopy({n: getattr(L, n) for n in self.state_names}))
        return twin

    def adopt(self, twin) -> None:
        """Copy the twin's networks, duals and optimiser states into the learner, in place
        (its optimisers keep pointing at its own parameters)."""
        for n in self.state_names:
            getattr(self.learner, n).load_state_dict(getattr(twin, n).state_dict())

    def stats(self) -> dict[str, float]:
        return self.guard.stats()
