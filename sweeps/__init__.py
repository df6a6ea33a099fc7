"""Sweeps: one YAML spec fans variants x envs x seeds out over SLURM (Submitit job
arrays) or over the local cores.

    python sweeps/launch.py SPEC [--executor auto|slurm|local|debug] [--results DIR]
                                 [--dry-run] [--status] [--retry-failed]

Modules:
    spec.py      the spec schema: load, validate (errors name the key path), expand into runs
    state.py     the sweep folder: manifest.json, and each run's state read from its run
                 directory, cross-checked with its job (SLURM or a local launcher)
    job.py       the job every executor runs: a Submitit Checkpointable that trains (or
                 resumes) its runs with `algos.train.run`; requeued on timeout/preemption
    executors.py SLURM (job arrays), local (a pool of subprocesses), debug (in-process)
    plan.py      the dry-run plan and the core-hours estimate (throughput.csv)
    launch.py    the command line

Sweeps know nothing of losses: a run is an `algos.train.RunSpec` and a run directory.
"""
