#!/usr/bin/env bash
# Set up vmpo-bench in a virtual environment inside the repo (.venv), idempotently.
#
#   bash scripts/setup.sh            # torch, the package with its mujoco, atari, minatar and dev extras
#
# torch comes first and pinned: `pip install torch==2.13.0` takes the CPU wheel on a
# machine without CUDA where one is provided locally (and the CUDA build where CUDA is
# present); the package's own `torch>=2.2` is then satisfied and pulls nothing more.
# On a CPU-only machine whose pip would fetch a CUDA build, point PIP_INDEX_URL or
# TORCH_INDEX_URL at PyTorch's CPU wheel index before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" install torch==2.13.0 --index-url "$TORCH_INDEX_URL"
  else
    "${PIP[@]}" install torch==2.13.0
  fi
fi
"${PIP[@]}" install -e '.[mujoco,atari,minatar,dev]'
.venv/bin/python -c "import torch, gymnasium, mujoco, ale_py, minatar, submitit, rliable; print('vmpo-bench ready: torch', torch.__version__, '| cuda' if torch.cuda.is_available() else '| cpu')"
