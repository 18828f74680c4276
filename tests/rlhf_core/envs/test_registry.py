"""Environments by id, and the behaviours that make clips differ in quality."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlhf_core.envs.behaviours import Behaviour, behaviour_mix, cartpole_controller, minigrid_shortest_path, with_noise
from rlhf_core.envs.episodes import rollout
from rlhf_core.envs.registry import DEFAULT_ENV_ID, EnvError, env_info, make_env


def test_minigrid_gives_full_grid_pixels_and_a_15_step_clip():
    info = env_info(DEFAULT_ENV_ID)
    assert info.pixels and info.obs_shape == (48, 48, 3) and info.obs_dtype == "uint8"
    assert info.n_actions == 7 and info.family == "minigrid"
    assert info.segment_length() == 15  # 1.5 s at 10 fps


def test_cartpole_gives_vectors_and_a_75_step_clip():
    info = env_info("CartPole-v1")
    assert not info.pixels and info.obs_shape == (4,)
    assert info.n_actions == 2 and info.segment_length() == 75  # 1.5 s at 50 fps


def test_continuous_actions_are_described_with_their_bounds():
    info = env_info("Pendulum-v1")
    assert (info.continuous, info.n_actions, info.action_low, info.action_high) == (True, 1, (-2.0,), (2.0,))
    assert info.family == "pendulum" and info.segment_length() == 45
    assert not env_info("CartPole-v1").continuous


def test_action_spaces_the_studio_cannot_take_are_refused_with_the_reason():
    gym.register("StudioTest/Tuple-v0", entry_point=_TupleActions)
    with pytest.raises(EnvError, match="Tuple action space; the studio takes a Discrete one or a one-dimensional Box"):
        make_env("StudioTest/Tuple-v0")


class _TupleActions(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode


def test_unknown_ids_are_refused_with_a_suggestion():
    with pytest.raises(EnvError, match="unknown environment 'NoSuchEnv-v0'.*CartPole-v1"):
        make_env("NoSuchEnv-v0")


def test_frames_render_for_clips():
    env = make_env("CartPole-v1")
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8


def _returns(env_id: str, act, n: int) -> list[float]:
    rng = np.random.default_rng(0)
    return [rollout(env_id, Behaviour("b", act), seed=s, rng=rng, render=False).true_return for s in range(n)]


def test_minigrid_scripted_behaviour_reaches_the_goal_and_random_rarely_does():
    scripted = _returns(DEFAULT_ENV_ID, minigrid_shortest_path, 10)
    random = _returns(DEFAULT_ENV_ID, behaviour_mix(DEFAULT_ENV_ID)[0].act, 10)
    assert min(scripted) > 0.9  # reached the goal quickly every time
    assert np.mean(random) < np.mean(scripted) - 0.3


def test_cartpole_controller_balances_and_noise_degrades_it():
    assert _returns("CartPole-v1", cartpole_controller, 3) == [500.0] * 3
    noisy = _returns("CartPole-v1", with_noise(cartpole_controller, 1.0), 5)
    assert max(noisy) < 100


def test_behaviour_mix_has_random_and_noisy_scripted_members():
    names = [b.name for b in behaviour_mix("CartPole-v1")]
    assert names[0] == "random" and all(n.startswith("scripted(eps=") for n in names[1:]) and len(names) >= 3
    assert [b.name for b in behaviour_mix("Acrobot-v1")] == ["random"]  # no scripted behaviour known


def test_noise_level_is_validated():
    with pytest.raises(ValueError, match="epsilon must lie in"):
        with_noise(cartpole_controller, 1.5)


@pytest.mark.parametrize("env_id", ["MiniGrid-DoorKey-5x5-v0", DEFAULT_ENV_ID])
def test_cached_minigrid_frames_equal_freshly_drawn_ones(env_id):
    # DoorKey changes the grid itself (the key is picked up, the door opens), so the cache key
    # must follow the grid's contents, not only the agent
    env = make_env(env_id, render=False)
    game = env.unwrapped
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    grids = set()
    for _ in range(1500):
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        np.testing.assert_array_equal(obs, game.get_frame(highlight=game.highlight, tile_size=8))
        grids.add(game.grid.encode().tobytes())
        if terminated or truncated:
            obs, _ = env.reset()
    cached = env.env  # ImgObsWrapper -> the caching RGB wrapper
    assert 0 < cached.frames_drawn < 400  # far fewer drawings than steps
    if env_id.startswith("MiniGrid-DoorKey"):
        assert len(grids) > 1
    small = make_env(env_id, render=False)
    small.env.max_bytes = 10 * obs.nbytes  # a small budget: the oldest frames are forgotten
    small.reset(seed=1)
    for _ in range(300):
        frame, _, terminated, truncated, _ = small.step(int(rng.integers(small.action_space.n)))
        np.testing.assert_array_equal(frame, small.unwrapped.get_frame(highlight=True, tile_size=8))
        assert small.env._bytes <= small.env.max_bytes and len(small.env._frames) <= 10
        if terminated or truncated:
            small.reset()
    assert small.env.frames_drawn > 10
    first, _ = env.reset(seed=0)
    first[:] = 0  # a caller's copy: changing it leaves the cache alone
    again, _ = env.reset(seed=0)
    np.testing.assert_array_equal(again, game.get_frame(highlight=game.highlight, tile_size=8))


def test_pendulum_clips_come_from_random_and_scripted_swing_ups_that_differ_in_return():
    rng = np.random.default_rng(0)
    by_name = {}
    for behaviour in behaviour_mix("Pendulum-v1"):
        episodes = [rollout("Pendulum-v1", behaviour, seed=s, rng=rng, render=False) for s in range(3)]
        by_name[behaviour.name] = np.mean([ep.true_return for ep in episodes])
        ep = episodes[0]
        assert ep.actions.shape == (200, 1) and ep.actions.dtype == np.float32
        assert np.all(np.abs(ep.actions) <= 2.0)
    # the swing-up holds the pendulum up (about -150 per episode); random torques do not (about -1200)
    assert by_name["scripted(eps=0.1)"] > -400 > -900 > by_name["random"]
