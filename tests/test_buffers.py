"""SequenceReplay: what goes in comes out as the right sequences (across the ring's
wrap), no sequence starts at a reset step or bootstraps across an episode end, the
state_dict round-trips the data, and a non-continuing rollout (a resumed run) closes
the stored streams."""

import io

import numpy as np
import pytest
import torch

from algos.base import Batch
from algos.buffers import SequenceReplay
from algos.returns import nstep_returns


class FakeEnvs:
    """B envs whose observation is [env id, global step, episode id] with episodes of
    random length, ending by termination or truncation, under Gymnasium's NEXT_STEP
    autoreset (the step after an end is a reset step: reward 0, not valid)."""

    def __init__(self, B: int, seed: int = 0, obs_offset: float = 0.0) -> None:
        self.B, self.rng = B, np.random.default_rng(seed)
        self.t = 0
        self.episode = np.arange(B) * 1000.0 + obs_offset
        self.left = self.rng.integers(2, 9, size=B)
        self.prev_done = np.zeros(B, dtype=bool)
        self.obs = self._obs()

    def _obs(self) -> np.ndarray:
        return np.stack([np.arange(self.B, dtype=np.float32), np.full(self.B, self.t, np.float32),
                         self.episode.astype(np.float32)], axis=1)

    def rollout(self, T: int, with_logp: bool = False) -> Batch:
        B = self.B
        obs = np.empty((T + 1, B, 3), np.float32)
        actions = np.empty((T, B, 2), np.float32)
        rewards = np.empty((T, B), np.float32)
        term = np.zeros((T, B), bool)
        trunc = np.zeros((T, B), bool)
        valid = np.empty((T, B), bool)
        for t in range(T):
            obs[t] = self.obs
            valid[t] = ~self.prev_done
            actions[t] = self.rng.standard_normal((B, 2))
            rewards[t] = np.where(valid[t], self.rng.standard_normal(B), 0.0)
            self.left -= valid[t]
            done = valid[t] & (self.left <= 0)
            kind = self.rng.random(B) < 0.5
            term[t] = done & kind
            trunc[t] = done & ~kind
            self.t += 1
            # the reset step starts a new episode
            restart = self.prev_done
            self.episode = np.where(restart, self.episode + 1, self.episode)
            self.left = np.where(restart, self.rng.integers(2, 9, size=B), self.left)
            self.prev_done = done
            self.obs = self._obs()
        obs[T] = self.obs
        extras = {"log_prob": torch.from_numpy(rewards * 0.1)} if with_logp else {}
        return Batch(torch.from_numpy(obs), torch.from_numpy(actions), torch.from_numpy(rewards),
                     torch.from_numpy(term), torch.from_numpy(trunc), torch.from_numpy(valid), extras)


def _stream(batches):
    """Concatenate rollouts per env into full streams (obs [N+1, B, ...], fields [N, B])."""
    obs = torch.cat([b.obs[:-1] for b in batches] + [batches[-1].obs[-1:]])
    cat = {k: torch.cat([getattr(b, k) for b in batches]) for k in
           ("actions", "rewards", "terminated", "truncated", "valid")}
    return obs, cat


@pytest.mark.parametrize("capacity", [1000, 60])  # 60: the ring wraps several times
def test_sequences_match_the_stored_streams(capacity):
    envs = FakeEnvs(3, seed=1)
    buf = SequenceReplay(capacity, 3)
    batches = [envs.rollout(7) for _ in range(12)]
    for b in batches:
        buf.add(b)
    obs, cat = _stream(batches)
    assert len(buf) == min(84, buf.slots) * 3
    rng = np.random.default_rng(0)
    L = 4
    t, e = buf.sample_starts(500, L, rng)
    seq = buf.gather(t, e, L)
    assert seq["obs"].shape == (L + 1, 500, 3) and seq["actions"].shape == (L, 500, 2)
    for i in range(500):
        ti, ei = int(t[i]), int(e[i])
        assert torch.equal(seq["obs"][:, i], obs[ti:ti + L + 1, ei])
        for k in ("actions", "rewards", "terminated", "truncated", "valid"):
            assert torch.equal(seq[k][:, i], cat[k][ti:ti + L, ei]), k
    # only stored data, never a reset step as the start
    assert (t >= 84 - buf.filled).all() and (t + L <= 84).all()
    assert seq["valid"][0].all()
    # observation's own record: env id and global step agree with (e, t)
    assert torch.equal(seq["obs"][0, :, 0], torch.from_numpy(e).float())
    assert torch.equal(seq["obs"][0, :, 1], torch.from_numpy(t).float())


def test_sampling_covers_every_valid_start_and_no_invalid_one():
    envs = FakeEnvs(2, seed=2)
    buf = SequenceReplay(10_000, 2)
    batches = [envs.rollout(10) for _ in range(5)]
    for b in batches:
        buf.add(b)
    _, cat = _stream(batches)
    t, e = buf.sample_starts(20_000, 3, np.random.default_rng(1))
    got = set(zip(t.tolist(), e.tolist()))
    expected = {(ti, ei) for ti in range(50 - 3 + 1) for ei in range(2) if cat["valid"][ti, ei]}
    assert got == expected


@pytest.mark.parametrize("n", [1, 3, 5])
def test_nstep_targets_on_sampled_sequences_never_cross_an_episode_end(n):
    """The first-step n-step target of every sampled sequence equals the target computed
    on the whole stream (which cuts at episode ends), with V = a function of the obs."""
    envs = FakeEnvs(3, seed=3)
    buf = SequenceReplay(10_000, 3)
    batches = [envs.rollout(16) for _ in range(4)]
    for b in batches:
        buf.add(b)
    obs, cat = _stream(batches)
    def value_of(o):
        return o[..., 1] * 0.01 + o[..., 2] * 0.1 - o[..., 0]

    full = nstep_returns(cat["rewards"], value_of(obs), cat["terminated"], cat["truncated"],
                         0.9, n, cat["valid"])
    t, e = buf.sample_starts(300, n, np.random.default_rng(2))
    seq = buf.gather(t, e, n)
    g = nstep_returns(seq["rewards"], value_of(seq["obs"]), seq["terminated"], seq["truncated"],
                      0.9, n, seq["valid"])[0]
    ref = full[torch.from_numpy(t), torch.from_numpy(e)]
    assert torch.allclose(g, ref, atol=1e-5)
    assert (cat["terminated"] | cat["truncated"]).sum() > 10  # episode ends were in the data


@pytest.mark.parametrize("rollouts", [3, 40])  # before and after the ring wraps
def test_state_dict_round_trips_through_torch_save(rollouts):
    envs = FakeEnvs(2, seed=4)
    buf = SequenceReplay(100, 2, extras=("log_prob",))
    for _ in range(rollouts):
        buf.add(envs.rollout(6, with_logp=True))
    f = io.BytesIO()
    torch.save(buf.state_dict(), f)
    f.seek(0)
    other = SequenceReplay(100, 2, extras=("log_prob",))
    other.load_state_dict(torch.load(f, weights_only=False))
    assert (other.head, other.filled, len(other)) == (buf.head, buf.filled, len(buf))
    for k in buf.arrays:
        np.testing.assert_array_equal(other.arrays[k], buf.arrays[k], err_msg=k)
    a = buf.sample(64, 3, np.random.default_rng(5))
    b = other.sample(64, 3, np.random.default_rng(5))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # both continue identically
    nxt = envs.rollout(6, with_logp=True)
    buf.add(nxt)
    other.add(nxt)
    for k in buf.arrays:
        np.testing.assert_array_equal(other.arrays[k], buf.arrays[k], err_msg=k)


def test_state_dict_is_a_copy():
    envs = FakeEnvs(1, seed=5)
    buf = SequenceReplay(50, 1)
    buf.add(envs.rollout(5))
    state = buf.state_dict()
    before = state["arrays"]["rewards"].clone()
    buf.add(envs.rollout(5))
    assert torch.equal(state["arrays"]["rewards"], before)


def test_a_rollout_that_does_not_continue_closes_the_streams():
    envs = FakeEnvs(2, seed=6)
    buf = SequenceReplay(1000, 2)
    first = envs.rollout(8)
    buf.add(first)
    head = buf.head
    last_done = first.terminated[-1] | first.truncated[-1]
    last_valid = first.valid[-1]
    resumed = FakeEnvs(2, seed=7, obs_offset=0.5).rollout(8)  # another env state: obs differ
    buf.add(resumed)
    assert buf.head == head + 1 + 8  # one padding step
    a = buf.arrays
    # every open stream's last step is now truncated (bootstraps from its real next obs)
    assert (a["truncated"][head - 1] | a["terminated"][head - 1])[(last_valid & ~last_done).numpy()].all()
    np.testing.assert_array_equal(a["obs"][head], first.obs[-1].numpy())  # kept
    assert not a["valid"][head].any()  # the padding step is not a transition
    np.testing.assert_array_equal(a["obs"][head + 1], resumed.obs[0].numpy())
    # no sampled sequence bootstraps across the seam
    t, e = buf.sample_starts(2000, 4, np.random.default_rng(0))
    seq = buf.gather(t, e, 4)
    done = (seq["terminated"] | seq["truncated"]).cumsum(0) > 0
    crossing = (torch.from_numpy(t)[None, :] + torch.arange(4)[:, None]) >= head
    # steps at/after the seam are only reached after an episode end
    started_before = torch.from_numpy(t) < head
    prior_end = torch.cat([torch.zeros(1, 2000, dtype=torch.bool), done[:-1]])
    assert (prior_end | ~crossing | ~started_before[None, :]).all()


def test_continuing_rollouts_add_no_padding():
    envs = FakeEnvs(2, seed=8)
    buf = SequenceReplay(1000, 2)
    for _ in range(3):
        buf.add(envs.rollout(5))
    assert buf.head == 15


def test_memory_of_one_million_mujoco_steps_is_about_100_mb():
    T, B = 4, 1
    batch = Batch(torch.zeros(T + 1, B, 17), torch.zeros(T, B, 6), torch.zeros(T, B),
                  torch.zeros(T, B, dtype=torch.bool), torch.zeros(T, B, dtype=torch.bool),
                  torch.ones(T, B, dtype=torch.bool))
    buf = SequenceReplay(1_000_000, 1)
    buf.add(batch)  # allocates (lazily touched pages)
    total = sum(a.nbytes for a in buf.arrays.values())
    assert 90e6 < total < 110e6  # 17*4 + 6*4 + 4 + 3 bytes per step


def test_errors():
    with pytest.raises(ValueError):
        SequenceReplay(1, 1)
    buf = SequenceReplay(20, 2)
    with pytest.raises(ValueError, match="envs"):
        buf.add(FakeEnvs(3).rollout(2))
    with pytest.raises(ValueError, match="does not fit"):
        buf.add(FakeEnvs(2).rollout(12))
    assert not buf.can_sample(3)
    with pytest.raises(ValueError, match="does not fit"):
        SequenceReplay(40, 2).load_state_dict(SequenceReplay(20, 2).state_dict())


def test_the_host_copies_follow_the_ring_through_wraps_and_seams():
    """valid_host (what the sampler reads) equals arrays["valid"], and next_obs the stored
    observation after the newest step, after wrap-arounds and a stream break; a loaded
    state rebuilds both."""
    envs = FakeEnvs(2, seed=11)
    buf = SequenceReplay(40, 2)  # 20 slots per env: wraps every ~2 rollouts of 8
    for i in range(7):
        buf.add(envs.rollout(8) if i != 4 else FakeEnvs(2, seed=12, obs_offset=0.5).rollout(8))
        np.testing.assert_array_equal(buf.valid_host, buf.arrays["valid"].numpy())
        np.testing.assert_array_equal(buf.next_obs, buf.arrays["obs"][buf.head % (buf.slots + 1)].numpy())
    other = SequenceReplay(40, 2)
    other.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(other.valid_host, buf.valid_host)
    np.testing.assert_array_equal(other.next_obs, buf.next_obs)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a, b = buf.sample(64, 3, rng_a), other.sample(64, 3, rng_b)
    assert all(torch.equal(a[k], b[k]) for k in a)
