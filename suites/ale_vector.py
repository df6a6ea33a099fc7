"""ale-py's AtariVectorEnv with a `reset` that takes any non-negative seed.

Imported only when an Atari env is made with vectorization "auto"/"ale" (it imports
ale_py). ale-py 0.12.1 passes reset seeds to C++ as 32-bit ints: `reset(seed=2**31)`
raises a TypeError, while the Gymnasium path (and the training loop, which reseeds with
`seed + 7919 * step` on resume) uses seeds well past 2**31. Here sub-env i gets
`(seed + i) mod 2**31`: unchanged below 2**31, so small seeds mean the same on both
paths; above it, seeds s and s + 2**31 give the same episodes. Stepping is untouched
(no per-step overhead).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ale_py.vector_env import AtariVectorEnv

SEED_MODULUS = 2**31


class SeededAtariVectorEnv(AtariVectorEnv):
    """AtariVectorEnv whose `reset(seed=...)` folds seeds into ale-py's int32 range."""

    def reset(self, *, seed: int | np.ndarray | None = None,
              options: dict[str, Any] | None = None):
        if seed is not None:
            if isinstance(seed, (int, np.integer)):
                mask = (options or {}).get("reset_mask")
                n = self.num_envs if mask is None else int(np.count_nonzero(mask))
                seed = (int(seed) + np.arange(n, dtype=np.int64)) % SEED_MODULUS
            else:
                seed = np.asarray(seed, dtype=np.int64) % SEED_MODULUS
        return super().reset(seed=seed, options=options)
