"""Any Gymnasium env: ids outside the named suites, and MinAtar's registration.

An id that no named suite lists is accepted when Gymnasium can make it, as `gym.make`
does: a registered id (`LunarLander-v3`, `CartPole-v0`) or `module:EnvId`, for which
the module is imported first (it registers `EnvId`). Its family (the "suite" used for
SUITE_DEFAULTS, normalisation and report grouping) comes from its spaces, read once per
process from one `gym.make` (`spaces_of`):

- `gym-pixels`: a uint8 image observation ([H, W, C] or [C, H, W]; channels-last is
  transposed to [C, H, W] by `suites.make`): the CNN torso;
- `gym`: anything else (a vector, or a float image): the MLP torso, or the small CNN for a
  3-D float observation (`algos.networks.make_torso`).

Ids that belong to a named suite's namespace but not to its list stay unknown: ale-py's
other versions (`PongNoFrameskip-v4`, `ALE/Pong-v4`) would skip the Atari protocol of
`suites.atari`, and are not registered here unless ale_py was imported.
"""

from __future__ import annotations

import difflib
import importlib
from functools import cache

import gymnasium as gym
import numpy as np

MINATAR_HINT = "MinAtar envs need the minatar extra: pip install -e '.[minatar]'"
FAMILIES: tuple[str, ...] = ("gym", "gym-pixels")


def register_minatar() -> None:
    """Register MinAtar's Gymnasium ids (`MinAtar/<Game>-v0`/`-v1`). minatar 1.0.15 declares
    them as a `gymnasium.envs` entry point, which Gymnasium 1.x no longer loads, so
    importing the package registers nothing: `minatar.gym.register_envs()` does."""
    try:
        import minatar.gym
    except ImportError as e:
        raise ImportError(f"{MINATAR_HINT} ({e})") from e
    if "MinAtar/Breakout-v1" not in gym.registry:
        minatar.gym.register_envs()


def split_id(env_id: str) -> tuple[str | None, str]:
    """`"pkg.mod:MyEnv-v0"` -> ("pkg.mod", "MyEnv-v0"); a plain id -> (None, id)."""
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        return module, name
    return None, env_id


def _foreign(name: str) -> bool:
    """An id whose entry point is ale-py's: the atari suite's protocol is ALE/<Game>-v5."""
    spec = gym.registry.get(name)
    ep = getattr(spec, "entry_point", "") if spec is not None else ""
    return isinstance(ep, str) and ep.startswith("ale_py")


def registered(env_id: str) -> bool:
    """True when Gymnasium knows `env_id` (importing `module` of `module:EnvId` first).
    A module that does not import makes the id unknown (ImportError is not raised)."""
    module, name = split_id(env_id)
    if module is not None:
        if not module or not name:
            return False
        try:
            importlib.import_module(module)
        except ImportError:
            return False
    return name in gym.registry and not _foreign(name)


def registry_matches(name: str, n: int = 3, cutoff: float = 0.6) -> list[tuple[float, str]]:
    """(similarity, id) of Gymnasium's registered ids closest to `name` (case-insensitive),
    ale-py's left out."""
    _, bare = split_id(name)
    q = bare.lower()
    scored = []
    for key in gym.registry:
        if _foreign(key):
            continue
        s = difflib.SequenceMatcher(None, q, key.lower()).ratio()
        if s >= cutoff:
            scored.append((s, key))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return scored[:n]


@cache
def spaces_of(env_id: str) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) of one `gym.make(env_id)`, closed at once."""
    try:
        env = gym.make(env_id)
    except ImportError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to build is the user's env's
        raise ValueError(f"cannot make env {env_id!r} to read its spaces: "
                         f"{type(e).__name__}: {e}") from e
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def is_image(space: gym.Space) -> bool:
    """A uint8 Box of rank 3: an image, [H, W, C] or [C, H, W]."""
    return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
            and len(space.shape) == 3)


def channels_last(shape: tuple[int, ...]) -> bool:
    """[H, W, C] with few channels (RGB, grey, a small stack) rather than [C, H, W]."""
    return len(shape) == 3 and shape[-1] <= 4 < shape[0]


def family(env_id: str) -> str:
    """"gym-pixels" for a uint8 image observation, else "gym" (see the module doc)."""
    obs, _ = spaces_of(env_id)
    return "gym-pixels" if is_image(obs) else "gym"
