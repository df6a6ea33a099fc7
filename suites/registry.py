"""Which environments exist: the suites, their env ids, and name resolution.

Nothing here imports MuJoCo or ale-py: listing, resolving and classifying env ids works
without the `mujoco` and `atari` extras (only `suites.make` needs them).

Suites (`SUITES`):

- `classic`: Gymnasium's classic control tasks with a policy-learning signal.
- `mujoco`: Gymnasium v5 MuJoCo locomotion and control tasks.
- `atari5`: the Atari-5 subset of Aitchison, Sweetser and Hutter, "Atari-5: Distilling
  the Arcade Learning Environment down to Five Games", ICML 2023: five games whose
  scores predict the median human-normalised score over all 57.
- `atari57`: the 57 games of the standard Atari benchmark (Mnih et al. 2015; Badia et
  al. 2020), i.e. the games of DQN Zoo's random/human table
  (`suites/data/atari57_random_human.csv`).

- `minatar`: MinAtar's five games (Young and Tian 2019, arXiv 1903.03176), the
  `minatar` package's Gymnasium ids with the minimal action set (`MinAtar/<Game>-v1`;
  `-v0`, all 6 actions, is of the `minatar` kind too).

Any other id that Gymnasium can make (a registered id, or `module:EnvId`) is accepted;
its family, "gym" or "gym-pixels", comes from its spaces (`suites.anyenv`, which makes
the env once to read them).

`atari` is a suite *kind*, not a list: any `ALE/<Game>-v5` id that ale-py 0.12.1
registers belongs to it (`ALE_GAMES`, 104 games). Asked to list it, `resolve("atari")`
returns atari57.

Atari ids are Gymnasium's v5 ids, `ALE/<Game>-v5`, where `<Game>` is ale-py's ROM id in
PascalCase (`battle_zone` <-> `ALE/BattleZone-v5`; ale-py's own rule,
`rom.title().replace("_", "")`).
"""

from __future__ import annotations

import difflib
import importlib
import re

CLASSIC: tuple[str, ...] = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0")

MUJOCO: tuple[str, ...] = (
    "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5",
    "InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5",
)

# ale-py 0.12.1's ROM ids that it registers as ALE/<Game>-v5 (all its ROMs but the
# multi-player-only combat, joust, maze_craze, warlords). tests/test_suites.py checks
# this tuple against gymnasium's registry after `gym.register_envs(ale_py)`.
ALE_GAMES: tuple[str, ...] = (
    "adventure", "air_raid", "alien", "amidar", "assault", "asterix", "asteroids", "atlantis",
    "atlantis2", "backgammon", "bank_heist", "basic_math", "battle_zone", "beam_rider",
    "berzerk", "blackjack", "bowling", "boxing", "breakout", "carnival", "casino",
    "centipede", "chopper_command", "crazy_climber", "crossbow", "darkchambers", "defender",
    "demon_attack", "donkey_kong", "double_dunk", "earthworld", "elevator_action", "enduro",
    "entombed", "et", "fishing_derby", "flag_capture", "freeway", "frogger", "frostbite",
    "galaxian", "gopher", "gravitar", "hangman", "haunted_house", "hero", "human_cannonball",
    "ice_hockey", "jamesbond", "journey_escape", "kaboom", "kangaroo", "keystone_kapers",
    "king_kong", "klax", "koolaid", "krull", "kung_fu_master", "laser_gates", "lost_luggage",
    "mario_bros", "miniature_golf", "montezuma_revenge", "mr_do", "ms_pacman",
    "name_this_game", "othello", "pacman", "phoenix", "pitfall", "pitfall2", "pong", "pooyan",
    "private_eye", "qbert", "riverraid", "road_runner", "robotank", "seaquest", "sir_lancelot",
    "skiing", "solaris", "space_invaders", "space_war", "star_gunner", "superman", "surround",
    "tennis", "tetris", "tic_tac_toe_3d", "time_pilot", "trondead", "turmoil", "tutankham",
    "up_n_down", "venture", "video_checkers", "video_chess", "video_cube", "video_pinball",
    "wizard_of_wor", "word_zapper", "yars_revenge", "zaxxon",
)

# The 57 games of DQN Zoo's table (suites/data/atari57_random_human.csv), as ROM ids.
# tests/test_suites.py checks this tuple against the CSV's `game` column.
ATARI57_GAMES: tuple[str, ...] = (
    "alien", "amidar", "assault", "asterix", "asteroids", "atlantis", "bank_heist",
    "battle_zone", "beam_rider", "berzerk", "bowling", "boxing", "breakout", "centipede",
    "chopper_command", "crazy_climber", "defender", "demon_attack", "double_dunk", "enduro",
    "fishing_derby", "freeway", "frostbite", "gopher", "gravitar", "hero", "ice_hockey",
    "jamesbond", "kangaroo", "krull", "kung_fu_master", "montezuma_revenge", "ms_pacman",
    "name_this_game", "phoenix", "pitfall", "pong", "private_eye", "qbert", "riverraid",
    "road_runner", "robotank", "seaquest", "skiing", "solaris", "space_invaders",
    "star_gunner", "surround", "tennis", "time_pilot", "tutankham", "up_n_down", "venture",
    "video_pinball", "wizard_of_wor", "yars_revenge", "zaxxon",
)

ATARI5_GAMES: tuple[str, ...] = ("battle_zone", "double_dunk", "name_this_game", "phoenix", "qbert")

# MinAtar 1.0.15's games (minatar/gym.py registers MinAtar/<Game>-v0 and -v1 for each).
MINATAR_GAMES: tuple[str, ...] = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
MINATAR: tuple[str, ...] = tuple(f"MinAtar/{g}-v1" for g in MINATAR_GAMES)
MINATAR_ALL: tuple[str, ...] = MINATAR + tuple(f"MinAtar/{g}-v0" for g in MINATAR_GAMES)


def ale_id(game: str) -> str:
    """`ALE/<Game>-v5` for an ale-py ROM id: `ale_id("battle_zone") == "ALE/BattleZone-v5"`."""
    return f"ALE/{game.title().replace('_', '')}-v5"


_ALE_ID_TO_GAME: dict[str, str] = {ale_id(g): g for g in ALE_GAMES}

SUITES: dict[str, tuple[str, ...]] = {
    "classic": CLASSIC,
    "mujoco": MUJOCO,
    "atari5": tuple(ale_id(g) for g in ATARI5_GAMES),
    "atari57": tuple(ale_id(g) for g in ATARI57_GAMES),
    "minatar": MINATAR,
}

# Suite names `resolve` accepts beyond SUITES' keys: "atari" lists atari57.
_ALIASES: dict[str, str] = {"atari": "atari57"}

_KIND: dict[str, str] = {**{e: "classic" for e in CLASSIC}, **{e: "mujoco" for e in MUJOCO},
                         **{e: "minatar" for e in MINATAR_ALL}}

# The families of named suites: a spec's `budgets:` key, SUITE_DEFAULTS' key.
NAMED_KINDS: tuple[str, ...] = ("atari", "classic", "minatar", "mujoco")


class UnknownEnvError(ValueError):
    """An env id or suite name that `suites` does not know.

    The message names the closest known env ids / suite names (difflib, case-insensitive,
    also matching bare game names such as "Pong" or "halfcheetah"), and the closest ids
    of Gymnasium's registry, and lists the suites.
    """

    def __init__(self, name: str, message: str | None = None) -> None:
        self.name = name
        self.suggestions = close_matches(name)
        if message is None:
            hint = f"; did you mean {' or '.join(self.suggestions)}?" if self.suggestions else "."
            message = f"unknown env or suite {name!r}{hint} Suites: {_suites_text()}"
        super().__init__(message)


class EnvMakeError(UnknownEnvError):
    """A registered Gymnasium id whose env cannot be made here (a missing dependency, a
    broken user env), or whose spaces the learners cannot take. Raised where its family
    is inferred; a usage error like an unknown id."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, f"env {name!r}: {reason}")


def _suites_text() -> str:
    return (f"classic ({', '.join(CLASSIC)}), mujoco ({', '.join(MUJOCO)}), "
            f"atari5 ({', '.join(SUITES['atari5'])}), atari57 (alias atari; 57 games), "
            f"minatar ({', '.join(MINATAR)}), any ALE/<Game>-v5 id of ale-py "
            f"({len(ALE_GAMES)} games), or any id Gymnasium can make (registered, or "
            f"module:EnvId, the module registering EnvId)")


def _bare(name: str) -> str:
    """'ALE/Pong-v5' -> 'pong', 'HalfCheetah-v5' -> 'halfcheetah', 'battle_zone' -> 'battlezone'."""
    name = name.lower()
    name = name.removeprefix("ale/")
    name = re.sub(r"(noframeskip)?-v\d+$", "", name)
    return name.replace("_", "").replace("-", "")


def close_matches(name: str, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The known env ids and suite names closest to `name`, best first: at most `n`,
    each with a similarity >= `cutoff` and within 0.1 of the best one's. Gymnasium's
    registered ids (`suites.anyenv.registry_matches`) compete on the full name."""
    from suites import anyenv

    candidates = [*SUITES, *_ALIASES, *CLASSIC, *MUJOCO, *MINATAR, *_ALE_ID_TO_GAME]
    q, qb = name.lower(), _bare(name)
    scored = []
    for c in candidates:
        score = max(difflib.SequenceMatcher(None, q, c.lower()).ratio(),
                    difflib.SequenceMatcher(None, qb, _bare(c)).ratio() if qb else 0.0)
        if score >= cutoff:
            scored.append((-score, c))
    known = {c for _, c in scored}
    # Gymnasium's ids compete at a small handicap: a named suite's id wins a near tie
    # (HalfCheeta-v5 suggests HalfCheetah-v5, not also the registry's v2 and v3).
    scored += [(-(s - 0.05), c) for s, c in anyenv.registry_matches(name, n, cutoff)
               if c not in known and s - 0.05 >= cutoff]
    scored.sort()
    # Keep only the near-best: a clear match should not come with far-fetched ones.
    return [c for s, c in scored[:n] if -s >= -scored[0][0] - 0.1]


def resolve(name: str) -> list[str]:
    """Env ids of a suite name, or `[name]` for a known env id.

    `resolve("classic") -> ["CartPole-v1", ...]`; `resolve("atari")` lists atari57;
    `resolve("ALE/Adventure-v5") -> ["ALE/Adventure-v5"]` (any ALE v5 id, also outside
    atari57); any id Gymnasium can make -> [that id]. Raises UnknownEnvError for
    anything else.
    """
    if name in SUITES:
        return list(SUITES[name])
    if name in _ALIASES:
        return list(SUITES[_ALIASES[name]])
    suite_of(name)  # raises UnknownEnvError
    return [name]


def suite_of(env_id: str) -> str:
    """"classic" | "mujoco" | "atari" | "minatar" for a named suite's id (by name alone),
    else "gym" | "gym-pixels" for an id Gymnasium can make (from its spaces, one
    `gym.make` per process: `suites.anyenv.family`): the family used for SUITE_DEFAULTS,
    normalisation and grouping in reports. Raises UnknownEnvError for an unknown id (or
    a suite name), EnvMakeError for a registered id that cannot be made."""
    kind = _KIND.get(env_id)
    if kind is not None:
        return kind
    if env_id in _ALE_ID_TO_GAME:
        return "atari"
    from suites import anyenv

    if not isinstance(env_id, str):
        raise UnknownEnvError(env_id)
    module, name = anyenv.split_id(env_id)
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise EnvMakeError(env_id, f"module {module!r} (of module:EnvId) cannot be "
                                       f"imported: {e}") from None
    if not anyenv.registered(env_id):
        raise UnknownEnvError(env_id)
    try:
        fam = anyenv.family(env_id)
        _check_spaces(env_id)
    except ImportError as e:
        raise EnvMakeError(env_id, f"a dependency is missing ({e})") from None
    except ValueError as e:
        raise EnvMakeError(env_id, str(e).removeprefix(f"env {env_id!r}: ")) from None
    return fam


def _check_spaces(env_id: str) -> None:
    """ValueError unless the learners can take the env's spaces: a Box observation, and
    Discrete or 1-D Box actions (`algos.base.EnvSpec`)."""
    import gymnasium as gym

    from suites import anyenv

    obs, act = anyenv.spaces_of(env_id)
    if not isinstance(obs, gym.spaces.Box):
        raise ValueError(f"its observation space is {obs}; the learners take a Box "
                         "(wrap a Dict/Tuple space, e.g. FlattenObservation, in your own id)")
    if not (isinstance(act, gym.spaces.Discrete)
            or (isinstance(act, gym.spaces.Box) and len(act.shape) == 1)):
        raise ValueError(f"its action space is {act}; the learners take Discrete or a 1-D Box")


def ale_game(env_id: str) -> str:
    """ale-py's ROM id of an ALE v5 env id: `ale_game("ALE/BattleZone-v5") == "battle_zone"`."""
    game = _ALE_ID_TO_GAME.get(env_id)
    if game is None:
        raise UnknownEnvError(env_id)
    return game


def frameskip(env_id: str) -> int:
    """Emulator frames per agent step: 4 for Atari (frames = agent steps * 4), 1 otherwise."""
    return 4 if suite_of(env_id) == "atari" else 1
