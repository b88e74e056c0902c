"""ViZDoom's actions as players use them (combinations, delta buttons, buttons in place of a
scenario's) and reward shaping that leaves the scenario's own score as what is logged."""
import itertools

import pytest

from rlkit.config import UsageError, load_config
from rlkit.envs import check_game, make_env
from rlkit.envs.doom import MAX_COMBOS, action_table
from rlkit.video import action_names


def doom(*overrides: str):
    return make_env(load_config(["env.size=[40,40]", *overrides]).env)


def test_combos_are_every_choice_of_one_button_per_group_once():
    rows, names = action_table(["TURN_LEFT", "TURN_RIGHT", "ATTACK", "MOVE_FORWARD"], "combos", [5])
    assert len(rows) == 3 * 2 * 2 and names[0] == "NOOP" and rows[0] == [0, 0, 0, 0]
    assert len({tuple(r) for r in rows}) == len(rows)  # no combination twice
    assert not any(r[0] and r[1] for r in rows)  # never left and right at once
    pressed = {tuple(r) for r in rows}
    for left, right, attack, forward in itertools.product((0, 1), repeat=4):
        assert ((left, right, attack, forward) in pressed) == (not (left and right))
    assert "TURN_LEFT+ATTACK+MOVE_FORWARD" in names


def test_delta_buttons_take_each_value_with_both_signs():
    rows, names = action_table(["ATTACK", "TURN_LEFT_RIGHT_DELTA"], "combos", [2, 8])
    assert sorted({r[1] for r in rows}) == [-8, -2, 0, 2, 8] and len(rows) == 2 * 5
    assert "ATTACK+TURN_LEFT_RIGHT_DELTA-8" in names
    one = action_table(["ATTACK", "TURN_LEFT_RIGHT_DELTA"], "buttons", [2, 8])[0]
    assert one == [[1, 0], [0, 8]]  # one button an action: a delta button at its largest value


def test_too_many_combinations_is_a_one_line_error_naming_the_ways_out():
    buttons = [f"SELECT_WEAPON{i}" for i in range(1, 11)]  # 2 ** 10 combinations
    assert 2 ** len(buttons) > MAX_COMBOS
    with pytest.raises(UsageError, match="make 1024 combinations .*env.buttons=.*env.actions=buttons"):
        action_table(buttons, "combos", [5])


def test_a_combination_presses_its_buttons_together_in_the_game():
    import vizdoom as vzd

    env = doom("env=defend_the_center", "env.actions=combos")
    game, names = env.unwrapped.game, env.unwrapped.action_names
    assert action_names(env) == names  # what the watch overlay shows
    env.reset(seed=0)
    for _ in range(3):  # the weapon comes up at the start of an episode
        env.step(names.index("NOOP"))
    angle, ammo = game.get_game_variable(vzd.GameVariable.ANGLE), game.get_game_variable(vzd.GameVariable.AMMO2)
    env.step(names.index("TURN_LEFT+ATTACK"))
    env.step(names.index("NOOP"))  # the shot leaves the weapon a few tics after the trigger
    assert game.get_game_variable(vzd.GameVariable.ANGLE) != angle  # turned ...
    assert game.get_game_variable(vzd.GameVariable.AMMO2) == ammo - 1  # ... and fired, in one action
    env.close()


def test_buttons_in_place_of_the_scenarios():
    env = doom("env.scenario=deathmatch", "env.actions=combos", "env.buttons=[ATTACK,TURN_LEFT_RIGHT_DELTA]",
               "env.deltas=[3]")
    assert env.unwrapped.buttons == ["ATTACK", "TURN_LEFT_RIGHT_DELTA"] and env.action_space.n == 2 * 3
    env.close()
    with pytest.raises(UsageError, match="unknown doom button 'JUMPP'; choose from: .*ATTACK"):
        doom("env.buttons=[ATTACK,JUMPP]")


def test_shaping_reaches_the_learner_but_not_the_logged_score():
    from vizdoom import GameVariable

    env = doom("env=health_gathering", "env.reward_scale=1", "env.shaping=[HEALTH:0.5]")
    game = env.unwrapped.game
    env.reset(seed=0)
    start, total = game.get_game_variable(GameVariable.HEALTH), 0.0
    while True:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
        if terminated or truncated:
            break
    score = info["episode"]["r"]
    assert score == pytest.approx(game.get_total_reward())  # the scenario's own score is what is logged
    assert total == pytest.approx(score + 0.5 * (game.get_game_variable(GameVariable.HEALTH) - start))
    env.close()


@pytest.mark.parametrize("term, message", [("HEALTH", "must be VARIABLE:weight"), ("HP:1", "unknown doom game "
                                                                                         "variable 'HP'")])
def test_bad_shaping_is_a_one_line_error_on_the_command_line_and_in_a_loaded_file(term, message):
    with pytest.raises(UsageError, match=message):
        doom(f"env.shaping=[{term}]")
    cfg = load_config([]).env
    cfg.shaping = [term]
    with pytest.raises(UsageError, match=message):
        check_game(cfg)


def test_game_variables_are_channels_beside_the_frame():
    """env.variables=[HEALTH:100]: one more channel per stacked frame, all of it health / 100 of
    white, following the game as health drops (health gathering's acid floor)."""
    from vizdoom import GameVariable

    env = doom("env=health_gathering", "env.frame_stack=1", "env.variables=[HEALTH:200]")
    assert env.observation_space.shape == (2, 40, 40)
    obs, _ = env.reset(seed=0)
    seen = []
    for _ in range(40):
        health = env.unwrapped.game.get_game_variable(GameVariable.HEALTH)
        assert obs.shape == (2, 40, 40) and (obs[1] == obs[1, 0, 0]).all()
        assert obs[1, 0, 0] == round(min(health / 200, 1) * 255)
        seen.append(int(obs[1, 0, 0]))
        obs, *_ = env.step(0)
    assert len(set(seen)) > 1  # the channel moves with the game
    env.close()
    stacked = doom("env=health_gathering", "env.variables=[HEALTH:100,ARMOR:100]")
    assert stacked.observation_space.shape == (4, 3, 40, 40)  # frames stacked, each with its variables
    stacked.close()


@pytest.mark.parametrize("term, message", [("HEALTH", "must be VARIABLE:full"), ("HEALTH:0", "must be > 0"),
                                           ("HP:1", "unknown doom game variable 'HP'"),
                                           ("HEALTH:1e400", "with a finite number")])
def test_bad_variables_are_a_one_line_error(term, message):
    with pytest.raises(UsageError, match=message):
        doom(f"env.variables=[{term}]")
