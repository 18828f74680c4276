"""Child of scripts/bench/wrapper.py: environment steps per second of a VecEnv under no reward
wrapper, under ours (LearnedRewardVecEnv) and under imitation's RewardVecEnvWrapper, on the same
reward model. Runs in whichever venv calls it (imitation's, or ours without imitation).

argv: MODEL_FOLDER MEAN STD ENV_ID N_ENVS STEPS REPEATS; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from stable_baselines3.common.env_util import make_vec_env

from rlhf_core.rewards.learned import LearnedReward
from rlhf_core.rewards.models import load_reward_model
from rlhf_core.rewards.wrapper import LearnedRewardVecEnv


def steps_per_second(venv, steps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    venv.reset()
    low, high = venv.action_space.low, venv.action_space.high
    actions = rng.uniform(low, high, size=(steps, venv.num_envs, *venv.action_space.shape)).astype(np.float32)
    start = time.perf_counter()
    for t in range(steps):
        venv.step(actions[t])
    return steps * venv.num_envs / (time.perf_counter() - start)


def main() -> None:
    folder, mean, std, env_id, n_envs, steps, repeats = sys.argv[1:8]
    reward = LearnedReward(load_reward_model(__import__("pathlib").Path(folder)))
    reward.mean, reward.std = float(mean), float(std)
    results: dict[str, list[float]] = {"none": [], "ours": [], "imitation": []}
    for _ in range(int(repeats)):
        results["none"].append(steps_per_second(make_vec_env(env_id, n_envs=int(n_envs)), int(steps)))
        ours = LearnedRewardVecEnv(make_vec_env(env_id, n_envs=int(n_envs)), reward)
        results["ours"].append(steps_per_second(ours, int(steps)))
        try:
            from imitation.rewards.reward_wrapper import RewardVecEnvWrapper
        except ImportError:
            continue

        def reward_fn(obs, acts, next_obs, dones):  # noqa: ANN001, ANN202  (imitation's RewardFn)
            return reward(obs, acts, next_obs)

        theirs = RewardVecEnvWrapper(make_vec_env(env_id, n_envs=int(n_envs)), reward_fn)
        results["imitation"].append(steps_per_second(theirs, int(steps)))
    print(json.dumps({k: float(np.median(v)) if v else None for k, v in results.items()}))


if __name__ == "__main__":
    main()
