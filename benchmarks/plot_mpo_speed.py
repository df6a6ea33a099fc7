"""The MPO speed figure of docs/results/mpo-speed, drawn from the benchmark logs kept there.

    python benchmarks/plot_mpo_speed.py [--dir docs/results/mpo-speed]

Left: training steps/s on HalfCheetah-v5 (one env, MPO's MuJoCo defaults, SB3 SAC matched
to them), each pair of bars from one run of `benchmarks/throughput.py` (the log it was
read from is named under the pair), with the issue's CPU target (3x SB3 SAC on the CPU)
as a line. Right: evaluation returns of MPO at seed 0 over 300k steps, trained on the
CPU and on the GPU through the CUDA graph (`halfcheetah_300k_seed0.csv`). Writes
mpo_speed.png and mpo_speed.pdf into the folder.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

# (log, label of its machine, {algo row in the log: bar label})
PAIRS = [
    ("cpu_throughput_vs_sac.log", "CPU, one core (AMD EPYC)", {"mpo": "MPO", "sb3-sac": "SB3 SAC"}),
    ("gpu_throughput_vs_sac.log", "H200 (envs on the CPU)", {"mpo": "MPO (CUDA graph)", "sb3-sac": "SB3 SAC"}),
    ("gpu_throughput_eager.log", "H200", {"mpo": "MPO eager"}),
    ("gpu_throughput_graph.log", "H200", {"mpo": "MPO (CUDA graph)"}),
]


def table(log: Path) -> dict[str, float]:
    """{algo: median train steps/s} from the table `benchmarks/throughput.py` prints last."""
    rows, inside = {}, False
    for line in log.read_text().splitlines():
        if line.startswith("algo ") and "train steps/s" in line:
            inside = True
            continue
        parts = line.split()
        if inside and len(parts) == 6 and parts[1].replace(",", "").isdigit():
            rows[parts[0]] = float(parts[1].replace(",", ""))
        elif inside and rows:
            break
    if not rows:
        raise ValueError(f"{log}: no throughput table found")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=Path(__file__).resolve().parents[1] / "docs/results/mpo-speed")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.25, 1]})
    y, labels, sac_cpu = 0.0, [], None
    for log, machine, names in PAIRS:
        rows = table(args.dir / log)
        for algo, name in names.items():
            v = rows[algo]
            colour = "#1f77b4" if algo == "mpo" else "#ff7f0e"
            ax.barh(y, v, color=colour, height=0.7)
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=9)
            labels.append((y, f"{name}\n{machine}"))
            if algo == "sb3-sac" and log.startswith("cpu"):
                sac_cpu = v
            y += 1
        ax.text(0, y - 0.35, f"  one run: {log}", fontsize=7, color="grey", va="center")
        y += 0.6
    ax.set_yticks([t for t, _ in labels], [s for _, s in labels], fontsize=8)
    ax.set_ylim(y - 0.3, -0.7)  # top to bottom, room for the last caption
    if sac_cpu:
        ax.axvline(3 * sac_cpu, color="black", ls="--", lw=1,
                   label=f"issue 13's target: 3x SB3 SAC\non the CPU ({3 * sac_cpu:,.0f} steps/s)")
        ax.legend(fontsize=8, loc="center right")
    ax.set_xlabel("training steps/s, HalfCheetah-v5 (median of 3)")
    ax.set_xlim(0, 1.25 * ax.get_xlim()[1])
    ax.set_title("MPO and SB3 SAC at MPO's defaults (1 update / 8 steps, batch 256)", fontsize=10)

    with open(args.dir / "halfcheetah_300k_seed0.csv") as f:
        runs: dict[str, list[tuple[int, float, float]]] = {}
        for r in csv.DictReader(f):
            runs.setdefault(r["learning_on"], []).append((int(r["step"]), float(r["eval_return"]),
                                                          float(r["wall_s"])))
    for i, (where, rows) in enumerate(sorted(runs.items())):
        steps, ret, wall = zip(*rows)
        ax2.plot([s / 1e3 for s in steps], ret, marker="o", color=f"C{i + 2}",
                 label=f"{where}: {wall[-1] / 60:.1f} min")
    ax2.set_xlabel("env steps (thousands)")
    ax2.set_ylabel("evaluation return (mean of 10 episodes)")
    ax2.set_title("MPO, seed 0: what it learns on either device", fontsize=10)
    ax2.legend(fontsize=8, loc="lower right", title="300k steps in (evaluations included)",
               title_fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(args.dir / f"mpo_speed.{ext}", dpi=130)
    print(f"wrote {args.dir / 'mpo_speed.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
