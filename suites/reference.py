"""Reference scores and suite normalisation: (score - random) / (reference - random).

0 is a uniform random policy, 1 the suite's reference. The numbers live in CSV files
under `suites/data/` (package data), each with its source (see suites/data/README.md):

- Atari (`atari57_random_human.csv`, columns game,random,human): DQN Zoo's table,
  github.com/google-deepmind/dqn_zoo, `dqn_zoo/atari_data.py` (`_ATARI_DATA`): random
  (uniform random actions) and human (professional game tester) scores, averaged over at
  least 3 episodes, each episode starting with 1-30 no-op actions and capped at 108,000
  frames. The reference is the human score: Atari scores are human-normalised. Checked
  value for value against dqn_zoo's file. Our env adds sticky actions (p = 0.25), which
  the table's protocol did not use; this is the usual practice.
- Classic and MuJoCo: `random` from `random_returns.csv`, measured by
  `python -m suites.measure_random` (uniform random policy, 100 episodes, seeds 0-99; the
  file records date and versions); `reference` from `reference_returns.csv`, each row
  naming its source (Gymnasium's `reward_threshold`, D4RL's REF_MAX_SCORE, the best
  published score in the project's reference table, or a bound of the return).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from suites.registry import _ALE_ID_TO_GAME, _KIND, ATARI57_GAMES, UnknownEnvError, ale_game

DATA = Path(__file__).resolve().parent / "data"
ATARI_SOURCE = ("DQN Zoo (google-deepmind/dqn_zoo, dqn_zoo/atari_data.py): random and "
                "human scores, 1-30 no-op starts, 108,000-frame cap; human-normalised")


@dataclass(frozen=True)
class Reference:
    """The normalisation pair of one env: `random` maps to 0, `reference` to 1."""

    random: float
    """Mean return of a uniform random policy."""
    reference: float
    """The suite's reference return (Atari: the human score)."""
    source: str
    """Where both numbers come from."""


class NoReferenceError(ValueError):
    """An env without reference scores: an ALE game outside the atari57 table, MinAtar
    (no verified published table yet), or any other Gymnasium id. A sweep spec's
    `references:` can give one (recorded in each run's config.json)."""


NO_PAIR_HINT = "no reference pair: give one in the spec's `references:`"


def _read(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


@cache
def atari_table() -> dict[str, tuple[float, float]]:
    """{ROM id: (random, human)} from atari57_random_human.csv (57 games)."""
    return {r["game"]: (float(r["random"]), float(r["human"]))
            for r in _read("atari57_random_human.csv")}


@cache
def _references() -> dict[str, Reference]:
    """Classic and MuJoCo references: random_returns.csv joined with reference_returns.csv."""
    randoms = {r["env_id"]: r for r in _read("random_returns.csv")}
    out = {}
    for row in _read("reference_returns.csv"):
        env_id = row["env_id"]
        rnd = randoms[env_id]
        source = (f"random: mean of {rnd['episodes']} uniform-random episodes "
                  f"(seeds {rnd['seeds']}, suites/measure_random.py, {rnd['date']}, "
                  f"{rnd['versions']}); reference: {row['source']}")
        out[env_id] = Reference(float(rnd["random"]), float(row["reference"]), source)
    return out


def reference(env_id: str) -> Reference:
    """The (random, reference, source) pair that `normalise` uses for `env_id`.

    Raises NoReferenceError for an env without a pair (an ALE game outside atari57,
    MinAtar, any other Gymnasium id). Decided by name alone: nothing is made or imported.
    """
    kind = "atari" if env_id in _ALE_ID_TO_GAME else _KIND.get(env_id)
    if kind is None and ":" not in str(env_id):
        from suites import anyenv

        if not anyenv.registered(env_id):
            raise UnknownEnvError(env_id)
    if kind not in ("atari", "classic", "mujoco"):
        raise NoReferenceError(f"{env_id}: {NO_PAIR_HINT}")
    if kind == "atari":
        game = ale_game(env_id)
        if game not in atari_table():
            raise NoReferenceError(
                f"no reference scores for {env_id}: the Atari table (DQN Zoo) covers the "
                f"{len(ATARI57_GAMES)} games of atari57")
        rnd, human = atari_table()[game]
        return Reference(rnd, human, ATARI_SOURCE)
    return _references()[env_id]


def normalise(env_id: str, score):
    """(score - random) / (reference - random) with `reference(env_id)`.

    `score`: a number (returns a float) or an array (returns an ndarray of float64 of
    the same shape).
    """
    ref = reference(env_id)
    x = np.asarray(score, dtype=np.float64)
    out = (x - ref.random) / (ref.reference - ref.random)
    return float(out) if out.ndim == 0 else out
