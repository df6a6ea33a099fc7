"""Named environment sets, their vector envs and their reference scores.

The rest of the project uses only this module's names:

    SUITES                      {"classic", "mujoco", "atari5", "atari57", "minatar"} -> env ids
    resolve(name) -> list[str]  suite name -> its env ids; env id -> [env id]
    suite_of(env_id) -> str     "classic" | "mujoco" | "atari" | "minatar" | "gym" | "gym-pixels"
    frameskip(env_id) -> int    4 for Atari, 1 otherwise (frames = agent steps * frameskip)
    make(env_id, num_envs, seed, *, vectorization="auto") -> gymnasium.vector.VectorEnv
    reference(env_id) -> Reference(random, reference, source)
    normalise(env_id, score)    (score - random) / (reference - random)
    UnknownEnvError             ValueError naming the closest known names and the suites

Suites: `classic` (CartPole-v1, Acrobot-v1, Pendulum-v1, MountainCarContinuous-v0),
`mujoco` (Gymnasium v5: HalfCheetah, Hopper, Walker2d, Ant, Humanoid, Swimmer,
InvertedPendulum, InvertedDoublePendulum, Reacher), `atari5` (BattleZone, DoubleDunk,
NameThisGame, Phoenix, Qbert; Aitchison et al., ICML 2023) and `atari57`. `atari` is the
kind of every `ALE/<Game>-v5` id (and, as a name to resolve, an alias of atari57).
See `suites.registry` (names), `suites.envs` (make), `suites.atari` (the Atari protocol:
Machado et al. 2018 sticky actions, 30 no-op starts, 108k-frame cap, raw rewards) and
`suites.reference` (normalisation data and its sources).

MuJoCo and ale-py are imported only when such an env is made; a missing extra raises an
ImportError that says what to `pip install`.

`minatar`: MinAtar's five games (`MinAtar/<Game>-v1`, the minimal action sets; minatar
1.0.15, the `minatar` extra), observations [C, 10, 10] float32 0/1 (channels first, for
`algos.networks.SmallCNN`), capped at 108,000 steps (`suites.envs.MINATAR_MAX_STEPS`).
No reference pair yet: no published table of final scores could be verified (the paper
gives curves only), so MinAtar reports raw returns unless a spec's `references:` gives one.

Any other Gymnasium id: a registered id (`CartPole-v0`, `LunarLander-v3`) or
`module:EnvId` (the module is imported and registers EnvId, as `gym.make` does). Its
family comes from its spaces (`suites.anyenv`, one `gym.make` per process): "gym-pixels"
for a uint8 image (channels-last images are transposed to [C, H, W]; the Nature CNN from
36x36, SmallCNN below), "gym" otherwise (the MLP; SmallCNN for a rank-3 float
observation). SUITE_DEFAULTS: "gym" takes each algorithm's class defaults (the MuJoCo-
tuned settings: we did not guess classic's for small discrete envs, whose tuned values
are per env); "gym-pixels" takes the Atari collector without reward clipping. Such envs
have no reference pair: the report shows their raw returns and says why the normalised
aggregates leave them out; a spec's `references:` gives a pair. ale-py's ids other than
ALE/<Game>-v5 stay unknown (they would skip the Atari protocol). An unknown id's error
names the closest named ids and Gymnasium's registered ones.

Choices:
- Known env ids are exactly the classic and mujoco lists and every ALE v5 id of ale-py
  0.12.1 (other versions such as `Hopper-v4` or `PongNoFrameskip-v4` are unknown, and
  the error suggests the v5 id). Names are case-sensitive; the error's suggestions are not.
- `make` does not reset: the caller calls `envs.reset(seed=seed)`. `make` seeds the
  action spaces with `seed`.
- Observations keep the env's dtype (classic float32, MuJoCo float64, Atari uint8);
  the collector casts to float32 (one `astype` per step, about 1 us for [8, 17]).
- `make`'s "auto" is "sync" for classic/MuJoCo and ale-py's AtariVectorEnv for Atari.
- Atari reference scores exist for the 57 games of the table; `reference` on another
  ALE game raises NoReferenceError (a ValueError).
"""

from suites import anyenv
from suites.envs import make
from suites.reference import NoReferenceError, Reference, normalise, reference
from suites.registry import SUITES, EnvMakeError, UnknownEnvError, frameskip, resolve, suite_of

__all__ = [
    "SUITES", "EnvMakeError", "NoReferenceError", "anyenv", "Reference", "UnknownEnvError", "frameskip", "make",
    "normalise", "reference", "resolve", "suite_of",
]
