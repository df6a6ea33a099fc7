"""Fast paths: re-implementations of torch definitions that are cheaper where the
definition is bound by per-op dispatch (small MLPs on the CPU) or by repeated work.

Each one runs under `algos.fast.guard.Guard`: it is used only while a check on the run's
own inputs, parameters and config shows it equal to its definition (at construction and
at intervals), and otherwise steps aside to the definition with one line on stderr and
a logged metric `fast/<name>` = 0. The algorithm files (ppo.py, mpo.py, ...) show the
definitions; nothing here is needed to read what an algorithm computes.

    numpy_actor.py   NumpyActor: acting (all four learners) <- networks.policy_act
    numpy_ac.py      NumpyActorCritic: an MLP actor-critic's forward/backward in numpy
    ppo_step.py      NumpyPPOStep: PPO's minibatch epochs in numpy <- autograd of ppo_loss
    flat_adam.py     FlatAdam: Adam on one flat vector, its CPU step in numpy <- torch.optim.Adam
    mpo_targets.py   SampledQ: MPO's target critic on sampled actions <- QCritic.sampled
    cuda_graph.py    MPO's update replayed as one captured CUDA graph <- the eager update
"""
