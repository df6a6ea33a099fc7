"""A small golden report: three variants x two Atari games x three seeds with known
human-normalised scores, 200 bootstrap replications, seed 0.

Points are checked by hand in the comments; the intervals are rliable's (the fast engine
equals it, tests/test_analysis_bootstrap.py) with numpy's legacy RandomState stream,
which numpy keeps fixed (NEP 19). If a table layout changes on purpose, regenerate the
expected text with the same fixture.
"""

import pytest

from analysis import report
from analysis.synthetic import write_sweep

TABLE = {"ALE/Pong-v5": (-20.7, 14.6), "ALE/Breakout-v5": (1.7, 30.5)}  # random, human
SCORES = {  # human-normalised final scores by variant, env, seed
    "vmpo": {"ALE/Breakout-v5": [1.2, 0.9, 1.5], "ALE/Pong-v5": [0.8, 1.1, 0.95]},
    "vmpo-no-alpha": {"ALE/Breakout-v5": [0.4, 0.7, 0.5], "ALE/Pong-v5": [0.9, 0.2, 0.6]},
    "ppo": {"ALE/Breakout-v5": [1.0, 0.6, 0.8], "ALE/Pong-v5": [0.7, 0.75, 1.3]},
}

# vmpo: sorted .8 .9 .95 1.1 1.2 1.5, IQM = mean(.9 .95 1.1 1.2) = 1.0375, mean 1.075,
# optimality gap = 1 - mean(1 .9 1 .8 1 .95) = .058333; P(vmpo > ppo) = (8/9 + 6/9) / 2.
GOLDEN = {
    "aggregate.csv": """\
suite,variant,metric,point,lower,upper,n_runs,n_tasks,n_seeds,complete
atari,ppo,IQM,0.8125,0.6625,1.025,6,2,3,true
atari,ppo,Median,0.858333,0.7,1.05833,6,2,3,true
atari,ppo,Mean,0.858333,0.71625,1.05,6,2,3,true
atari,ppo,Optimality Gap,0.191667,0.0666667,0.291875,6,2,3,true
atari,vmpo,IQM,1.0375,0.8875,1.2625,6,2,3,true
atari,vmpo,Median,1.075,0.949375,1.22563,6,2,3,true
atari,vmpo,Mean,1.075,0.95,1.25,6,2,3,true
atari,vmpo,Optimality Gap,0.0583333,0.00833333,0.108542,6,2,3,true
atari,vmpo-no-alpha,IQM,0.55,0.349375,0.75,6,2,3,true
atari,vmpo-no-alpha,Median,0.55,0.4,0.716667,6,2,3,true
atari,vmpo-no-alpha,Mean,0.55,0.366667,0.7,6,2,3,true
atari,vmpo-no-alpha,Optimality Gap,0.45,0.283333,0.616667,6,2,3,true
""",
    "probability_of_improvement.csv": """\
suite,kind,x,y,point,lower,upper,n_x,n_y,n_tasks,complete
atari,baseline,vmpo,ppo,0.777778,0.388889,1,6,6,2,true
atari,baseline,vmpo,vmpo-no-alpha,0.944444,0.777778,1,6,6,2,true
atari,ablation,vmpo,vmpo-no-alpha,0.944444,0.777778,1,6,6,2,true
""",
    "ablation.csv": """\
suite,variant,point,lower,upper,n_runs,full,full_point,full_lower,full_upper,full_n_runs,n_tasks,p_full_better,p_lower,p_upper,complete
atari,vmpo-no-alpha,0.55,0.349375,0.75,6,vmpo,1.0375,0.8875,1.2625,6,2,0.944444,0.777778,1,true
""",
    "per_env.csv": """\
suite,env,variant,n,mean,lower,upper,std,norm_mean,norm_lower,norm_upper,complete
atari,ALE/Breakout-v5,ppo,3,24.74,10.4314,39.0486,5.76,0.8,0.303172,1.29683,true
atari,ALE/Breakout-v5,vmpo,3,36.26,14.7971,57.7229,8.64,1.2,0.454759,1.94524,true
atari,ALE/Breakout-v5,vmpo-no-alpha,3,17.06,6.1316,27.9884,4.39927,0.533333,0.153875,0.912792,true
atari,ALE/Pong-v5,ppo,3,11.6583,-17.5351,40.8518,11.7519,0.916667,0.0896565,1.74368,true
atari,ALE/Pong-v5,vmpo,3,12.835,-0.318509,25.9885,5.295,0.95,0.577379,1.32262,true
atari,ALE/Pong-v5,vmpo-no-alpha,3,-0.696667,-31.4924,30.0991,12.397,0.566667,-0.305734,1.43907,true
""",
}


def _final(v, e, s):
    r, h = TABLE[e]
    return r + SCORES[v][e][s] * (h - r)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    write_sweep(d / "results", "golden",
                variants={"vmpo": "vmpo", "vmpo-no-alpha": "vmpo", "ppo": "ppo"},
                envs={e: "atari" for e in TABLE}, seeds=range(3), final=_final, steps=1000,
                n_evals=4, frameskip={e: 4 for e in TABLE})
    assert report.main([str(d / "results"), "--out", str(d / "out"), "--reps", "200",
                        "--seed", "0", "--jobs", "1"]) == 0
    return d / "out"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_tables(out, name):
    assert (out / name).read_text() == GOLDEN[name]


def test_golden_markdown(out):
    md = (out / "aggregate.md").read_text().splitlines()
    assert md[0] == ("| suite | variant | runs (seeds x envs) | IQM | Median | Mean | "
                     "Optimality Gap |")
    assert md[3] == ("| atari | vmpo | 6 (3x2) | 1.04 [0.887, 1.26] | 1.07 [0.949, 1.23] | "
                     "1.07 [0.95, 1.25] | 0.0583 [0.00833, 0.109] |")
    tex = (out / "aggregate.tex").read_text()
    assert "atari & vmpo-no-alpha & 6 (3x2) & 0.55 [0.349, 0.75]" in tex
    assert "\\caption{Aggregate normalised final scores" in tex
