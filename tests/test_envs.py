import numpy as np
import pytest

from rlkit.config import UsageError, load_config, options
from rlkit.envs import make_env, make_vec

DOOM = [e for e in options("env") if load_config([f"env={e}"]).env.family == "doom"]


def test_all_seven_doom_scenarios_are_there():
    assert set(DOOM) >= {"doom", "defend_the_center", "health_gathering", "deadly_corridor", "my_way_home",
                         "take_cover", "defend_the_line"}


@pytest.mark.parametrize("name", DOOM)
def test_doom_scenario_steps_with_uint8_stacked_frames(name):
    env = make_env(load_config([f"env={name}", "env.size=[40,48]"]).env)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 1, 40, 48) and obs.dtype == np.uint8
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    env.close()


def test_doom_rgb_resolution_stack_and_skip_come_from_config():
    cfg = load_config(["env.grayscale=false", "env.frame_stack=2", "env.size=[30,40]",
                       "env.resolution=RES_320X240", "env.frame_skip=2"]).env
    env = make_env(cfg)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 3, 30, 40)
    assert env.unwrapped.game.get_screen_width() == 320
    tics = env.unwrapped.game.get_episode_time()
    env.step(0)
    assert env.unwrapped.game.get_episode_time() - tics == 2
    env.close()


def test_doom_basic_timeout_is_a_truncation_and_reward_is_scaled():
    env = make_env(load_config(["env.size=[40,40]", "env.reward_scale=0.5"]).env)
    env.reset(seed=0)
    total, steps = 0.0, 0
    while True:
        _, reward, terminated, truncated, info = env.step(0)  # only strafe: never kills, so times out
        total, steps = total + reward, steps + 1
        if terminated or truncated:
            break
    assert truncated and not terminated
    assert info["episode"]["r"] == pytest.approx(total / 0.5)  # game score, before the scaling
    env.close()


def test_bad_doom_settings_are_one_line_errors():
    with pytest.raises(UsageError, match="unknown doom scenario 'nope'; choose from: basic"):
        make_env(load_config(["env.scenario=nope"]).env)
    with pytest.raises(UsageError, match="unknown doom resolution 'RES_1X1'"):
        make_env(load_config(["env.resolution=RES_1X1"]).env)


def test_atari_deepmind_preprocessing():
    env = make_env(load_config(["env=breakout"]).env)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    ale = env.unwrapped.ale
    lives, rewards, life_loss_seen = ale.lives(), set(), False
    for _ in range(2000):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.add(float(reward))
        if terminated and "episode" not in info:
            # a life lost ends the learner's episode but not the game
            assert 0 < ale.lives() < lives and not ale.game_over()
            life_loss_seen = True
            env.reset()
        if "episode" in info:
            break
    assert life_loss_seen
    assert rewards <= {-1.0, 0.0, 1.0}  # clipped
    env.close()


def test_any_ale_game_by_id_and_bad_ids():
    env = make_env(load_config(["env=atari", "env.game=space_invaders"]).env)
    assert env.unwrapped.spec.id == "ALE/SpaceInvaders-v5"
    env.close()
    with pytest.raises(UsageError, match="unknown Atari game 'Nope'; choose from: .*pong"):
        make_env(load_config(["env=atari", "env.game=Nope"]).env)


def test_lunarlander_and_cartpole_vector_envs():
    for name, shape in (("cartpole", (3, 4)), ("lunarlander", (3, 8))):
        envs = make_vec(load_config([f"env={name}", "num_envs=3"]))
        obs, _ = envs.reset(seed=0)
        assert obs.shape == shape
        envs.close()


def test_masked_cartpole_sees_position_and_angle_only():
    """env=cartpole_masked: the same game as CartPole, observed without its velocities (position and
    angle scaled by env.obs_scale)."""
    import gymnasium as gym
    import numpy as np

    from rlkit.config import UsageError, load_config
    from rlkit.envs import make_env

    masked, plain = make_env(load_config(["env=cartpole_masked"]).env), gym.make("CartPole-v1")
    assert masked.observation_space.shape == (2,)
    obs, _ = masked.reset(seed=3)
    full, _ = plain.reset(seed=3)
    scale = np.array([2.0, 20.0], np.float32)
    assert np.allclose(masked.observation_space.high, plain.observation_space.high[[0, 2]] * scale)
    for action in [0, 1, 1, 0, 1]:
        assert np.array_equal(obs, full[[0, 2]] * scale)
        obs, *_ = masked.step(action)
        full, *_ = plain.step(action)
    with pytest.raises(UsageError, match=r"env.keep=\[7\] picks features of a flat observation; this one is \(4,\)"):
        make_env(load_config(["env=cartpole_masked", "env.keep=[7]"]).env)
    with pytest.raises(UsageError, match="env.obs_scale has 3 factors for 2 observation features"):
        make_env(load_config(["env=cartpole_masked", "env.obs_scale=[1,2,3]"]).env)
    with pytest.raises(UsageError, match=r"env.obs_scale must be a list of 1 to 64 floats from 1e-06 .*, got \[0.0\]"):
        load_config(["env=cartpole", "env.obs_scale=[0.0]"])
