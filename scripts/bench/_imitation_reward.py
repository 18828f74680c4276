"""Baseline side of scripts/bench/reward_learning.py, run inside imitation's own venv.

Trains imitation's preference-comparisons reward model (BasicRewardNet with a RunningNorm
input layer, PreferenceModel, CrossEntropyRewardLoss, BasicRewardTrainer) on the pairs and
labels written by the benchmark, and writes each evaluation segment's predicted return.

Usage: python _imitation_reward.py IN.npz OUT.npz
"""

from __future__ import annotations

import sys
import time

import gymnasium as gym
import numpy as np
import torch as th
from imitation.algorithms import preference_comparisons as pc
from imitation.data import rollout
from imitation.data.types import TrajectoryWithRew
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.util.networks import RunningNorm


def main() -> None:
    th.set_num_threads(2)
    data = dict(np.load(sys.argv[1]))
    obs, acts, n_actions = data["obs"].astype(np.float32), data["acts"], int(data["n_actions"])
    epochs = int(data["epochs"])
    flat = obs.reshape(obs.shape[0], obs.shape[1], -1)
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=flat.shape[2:], dtype=np.float32)
    act_space = gym.spaces.Discrete(n_actions)
    frags = [
        TrajectoryWithRew(
            obs=flat[i], acts=acts[i], infos=None, terminal=True, rews=np.zeros(acts.shape[1], dtype=np.float32)
        )
        for i in range(len(flat))
    ]
    rng = np.random.default_rng(0)
    th.manual_seed(0)
    net = BasicRewardNet(obs_space, act_space, use_next_state=True, normalize_input_layer=RunningNorm)
    model = pc.PreferenceModel(net)
    trainer = pc.BasicRewardTrainer(model, pc.CrossEntropyRewardLoss(), rng=rng, epochs=epochs)
    dataset = pc.PreferenceDataset()
    pairs = [(frags[a], frags[b]) for a, b in zip(data["train_a"], data["train_b"], strict=True)]
    dataset.push(pairs, data["train_pref"].astype(np.float32))
    start = time.perf_counter()
    trainer.train(dataset)
    fit_seconds = time.perf_counter() - start
    with th.no_grad():
        returns = np.array([float(model.rewards(rollout.flatten_trajectories([frags[i]])).sum()) for i in data["eval"]])
    np.savez(sys.argv[2], returns=returns, fit_seconds=fit_seconds)


if __name__ == "__main__":
    main()
