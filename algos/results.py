"""Moved: the run-directory format is the top-level package `rundir` (docs/design.md).

This older name stays for imports written before the move (and pickles naming it):
`algos.results` is the module `rundir` itself, not a copy, so `algos.results.X is rundir.X`
and patching one (a test's `os`, say) patches both.
"""

import sys

import rundir

sys.modules[__name__] = rundir
