"""vmpo-bench's learners (see docs/design.md and README.md)."""

import os as _os

# One run per core: numpy's BLAS (OpenBLAS or MKL) gets one thread unless the user set
# otherwise, as the sweeps' executors set for every run they start. Set here, before
# numpy is first imported by `python -m algos.train`: with two BLAS threads on a loaded
# 2-core machine, the numpy minibatch and acting paths ran 10-20x slower (threads
# spinning against the other runs). torch's own threads come from RunConfig.torch_threads.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")
