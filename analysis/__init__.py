"""Analysis of vmpo-bench run directories: the rliable report and the V-MPO ablation figures.

    python analysis/report.py [RESULTS ...] [--out DIR] [--reps N] [--seed N]
                              [--baseline VARIANT] [--allow-incomplete]

Modules, one job each: load (find sweeps, read run directories), completeness (expected
vs present runs), scores (normalised final scores, rliable matrices, curves), bootstrap
(rliable's stratified bootstrap and a vectorised engine equal to it), aggregate (every
estimate as a table), tables (CSV/Markdown/LaTeX), plots (PNG/PDF), published (published
figures to compare with), report (the CLI and the order of work), report_md (report.md's
text), report_sections (seeds needed, held-out envs), claims (the paper's ablation claims,
checked), outdir (a report folder written whole), auc_ranking, duals, power, labels,
tuning and its tuning_* modules, expected_max, synthetic (run directories for tests and
benchmarks). Analysis reads only run directories, through `rundir` (the format), and never
imports the learning code (`algos`) or torch.

In a notebook, `load_runs(path)` gives every evaluation of every run under a results
root, a sweep folder or a run directory as one pandas DataFrame (the learning curves,
with raw and normalised returns):

    from analysis import load_runs
    df = load_runs("results/quickstart")
    df.groupby(["variant", "env", "step"])["return"].mean()
"""

from analysis.load import RUN_COLUMNS, load_runs

__all__ = ["RUN_COLUMNS", "load_runs"]
