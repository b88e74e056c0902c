"""Board games: PettingZoo's observation as is, seats and reward bookkeeping on scripted
games, masking in the rollout and the learners, and both board encoders."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rlkit.config import load_config
from rlkit.envs.board import Game, make_game
from rlkit.envs.selfplay import Fixed, SelfPlay, play_match
from rlkit.nets import make_policy
from rlkit.players import Player, RandomPlayer


def env_cfg(name="tictactoe", *overrides):
    return load_config([f"env={name}", *overrides]).env


class Script(Player):
    """Plays the given moves in order, whatever the board."""

    def __init__(self, moves):
        self.moves = list(moves)

    def act_batch(self, observations, masks):
        return np.array([self.moves.pop(0) for _ in range(len(observations))])


@pytest.mark.parametrize("game", ["tictactoe", "connect_four", "go"])
def test_observation_and_mask_are_exactly_pettingzoos_last(game):
    cfg = env_cfg(game, "env.board_size=5") if game == "go" else env_cfg(game)
    ours, theirs = Game(cfg), make_game(cfg)
    ours.reset(seed=3)
    theirs.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(6):
        obs, mask = ours.observe()
        last = theirs.last()[0]
        assert obs.dtype == last["observation"].dtype
        np.testing.assert_array_equal(obs, last["observation"])
        np.testing.assert_array_equal(mask, last["action_mask"].astype(bool))
        action = int(rng.choice(np.flatnonzero(mask)))
        ours.step(action)
        theirs.step(action)


def test_illegal_move_is_refused():
    g = Game(env_cfg())
    g.reset()
    g.step(4)
    with pytest.raises(ValueError, match="illegal move 4"):
        g.step(4)


def test_learner_seat_sees_its_own_pieces_and_a_loss_by_the_opponents_reply_is_its_reward():
    # Learner plays second (seat 1): X (opponent) takes 0, 1, 2 while the learner plays 3, 4.
    envs = SelfPlay(env_cfg(), 1, Fixed(Script([0, 1, 2, 8])), seats="second")
    obs, info = envs.reset(seed=0)  # the opponent opens with 0
    assert obs[0, 0, 0, 1] == 1 and obs[0, 0, 0, 0] == 0  # its X is in the learner's "theirs" plane
    assert info["action_mask"][0].tolist() == [False] + [True] * 8
    obs, r, term, trunc, info = envs.step([3])
    assert r[0] == 0 and not term[0]
    assert obs[0, 1, 0, 0] == 1  # the learner's own move is in its "mine" plane
    obs, r, term, trunc, info = envs.step([4])  # the opponent's reply 2 completes 0-1-2
    assert r[0] == -1 and term[0] and not trunc[0]
    assert info["final_info"]["episode"]["r"][0] == -1
    assert info["final_info"]["episode"]["l"][0] == 2  # the learner's own moves
    final = info["final_obs"][0]
    assert final[0, :, 1].tolist() == [1, 1, 1]  # final board from the learner's side
    assert obs[0].sum() == 1 and obs[0, 2, 2, 1] == 1  # a new game, opened by the opponent at 8


def test_learner_win_and_seat_bookkeeping_over_many_games():
    envs = SelfPlay(env_cfg(), 16, Fixed(RandomPlayer(0)))
    obs, info = envs.reset(seed=1)
    rng = np.random.default_rng(1)
    results = []
    for _ in range(200):
        seats = info["seat"].copy()
        # It is always the learner's turn: its stones never outnumber the opponent's when second.
        mine, theirs = obs[..., 0].sum((1, 2)), obs[..., 1].sum((1, 2))
        assert np.all(theirs - mine == seats)  # first: as many stones each; second: one fewer
        actions = [rng.choice(np.flatnonzero(m)) for m in info["action_mask"]]
        obs, r, term, _, info = envs.step(actions)
        results += list(r[term])
    assert set(results) <= {-1.0, 0.0, 1.0} and len(results) > 100
    assert 0.1 < np.mean(np.array(results) == 1) < 0.9


def test_play_match_alternates_seats_and_scores_from_the_first_players_side():
    from rlkit.players import Minimax

    scores = play_match(env_cfg(), RandomPlayer(0), Minimax(0), 20, seed=0)
    assert len(scores) == 20 and max(scores) <= 0.5  # random never beats perfect play
    scores = play_match(env_cfg(), Minimax(0), Minimax(1), 10)
    assert scores == [0.5] * 10  # perfect play draws, in both seats


def test_rollout_stores_masks_and_policy_never_samples_illegal_moves():
    from rlkit.rollout import Rollout

    cfg = load_config(["env=tictactoe", "model=mlp", "num_envs=4"])
    envs = SelfPlay(cfg.env, 4, Fixed(RandomPlayer(0)))
    policy = make_policy(cfg.model, envs.single_observation_space, envs.single_action_space, board=True)
    with torch.no_grad():  # a strong preference for cell 4, which is often taken
        policy.actor.bias[4] = 50.0
    rollout = Rollout(envs, torch.device("cpu"), 24, seed=0, gamma=1.0)
    batch, episodes = rollout.collect(policy)  # SelfPlay.step raises on an illegal move
    assert batch["masks"].shape == (24, 4, 9) and batch["masks"].dtype == torch.bool
    taken = batch["masks"].gather(2, batch["actions"].unsqueeze(-1))
    assert taken.all() and not batch["masks"].all()
    assert episodes and all(r in (-1.0, 0.0, 1.0) for r, _ in episodes)


def test_learners_use_the_mask_when_re_evaluating():
    from rlkit.nets import logp_entropy_value as evaluate

    cfg = load_config(["env=tictactoe", "model=mlp"])
    envs = SelfPlay(cfg.env, 2, Fixed(RandomPlayer(0)))
    policy = make_policy(cfg.model, envs.single_observation_space, envs.single_action_space, board=True)
    obs = torch.zeros(2, 3, 3, 2)
    masks = torch.zeros(2, 9, dtype=torch.bool)
    masks[:, [2, 5]] = True
    logp, entropy, _ = evaluate(policy, obs, torch.tensor([2, 5]), masks)
    assert torch.allclose(entropy, torch.full((2,), np.log(2)), atol=1e-2)  # two legal moves only
    assert torch.all(logp > np.log(0.4))


def test_sampling_and_learning_read_the_same_log_probabilities():
    # PPO's ratio is exp(learner's log-prob - sampler's): for the same weights it must be exactly 1.
    from torch.distributions import Categorical

    from rlkit.nets import logp_entropy_value as evaluate
    from rlkit.rollout import act

    torch.manual_seed(0)
    cfg = load_config(["env=connect_four", "model=cnn"])
    policy = make_policy(cfg.model, gym.spaces.Box(0, 1, (6, 7, 2), np.int8), gym.spaces.Discrete(7), board=True)
    policy.actor.weight.data.normal_(0, 1)  # far from uniform
    obs = torch.randint(0, 2, (16, 6, 7, 2), dtype=torch.int8)
    masks = torch.rand(16, 7) < 0.6
    masks[:, 3] = True
    with torch.no_grad():
        action, logp, _, _ = act(policy, obs, masks, -torch.log(-torch.log(torch.rand(16, 7))),
                                 policy.initial_state(16), torch.zeros(16, dtype=torch.bool))
        again, entropy, _ = evaluate(policy, obs, action, masks)
        logits = policy(obs, masks)[0]
    assert masks.gather(1, action[:, None]).all()
    assert torch.equal(logp, again) and logp.dtype == torch.float32
    reference = Categorical(logits=logits)
    assert torch.allclose(logp, reference.log_prob(action), atol=1e-5)
    assert torch.allclose(entropy, reference.entropy(), atol=1e-5) and entropy.min() > 0.01


@pytest.mark.parametrize("model", ["cnn", "transformer"])
@pytest.mark.parametrize("game", ["tictactoe", "connect_four"])
def test_board_cnn_and_transformer_policies(model, game):
    cfg = load_config([f"env={game}", f"model={model}"])
    g = Game(cfg.env)
    policy = make_policy(cfg.model, g.observation_space, gym.spaces.Discrete(g.num_actions), board=True)
    obs, mask = g.observe()
    logits, value = policy(torch.as_tensor(np.stack([obs, obs])), torch.as_tensor(np.stack([mask, mask])))
    assert logits.shape == (2, g.num_actions) and value.shape == (2,)
    # each cell is its own token / keeps its place: moving a stone changes the output
    other = obs.copy()
    other[0, 0, 0] = 1
    assert not torch.allclose(policy(torch.as_tensor(other[None]))[0], policy(torch.as_tensor(obs[None]))[0])
    # a short PPO update goes through the masked batch
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    from rlkit.algos import ppo

    batch = {"obs": torch.as_tensor(np.stack([obs] * 4)).reshape(2, 2, *obs.shape),
             "actions": torch.zeros(2, 2, dtype=torch.long), "logprobs": torch.full((2, 2), -2.0),
             "values": torch.zeros(2, 2), "rewards": torch.ones(2, 2), "dones": torch.zeros(2, 2),
             "last_value": torch.zeros(2), "masks": torch.as_tensor(np.stack([mask] * 4)).reshape(2, 2, -1)}
    stats = ppo.update(policy, opt, batch, OmegaConf.merge(cfg.algo, {"minibatches": 1, "epochs": 1}))
    assert np.isfinite(stats["loss/policy"])


@pytest.mark.parametrize("game", ["connect_four", "tictactoe", "go"])
def test_symmetric_maps_moves_as_pettingzoos_rules_do(game):
    """For each of a board's symmetries, the mapped moves played on a second board give exactly the
    image of the first board (every plane, Go's history too) and the image of its legal moves."""
    from rlkit.symmetry import BoardSymmetries

    cfg = env_cfg(game, "env.board_size=5") if game == "go" else env_cfg(game)
    probe = Game(cfg)
    sym = BoardSymmetries(game, probe.observation_space.shape, probe.num_actions)
    assert len(sym.views) == (2 if game == "connect_four" else 8)
    rng = np.random.default_rng(1)
    for view, (came_from, goes_to) in zip(sym.views, sym.maps):
        original, image = Game(cfg), Game(cfg)
        for _ in range(7):
            obs, mask = original.observe()
            image_obs, image_mask = image.observe()
            expected = BoardSymmetries.view(torch.as_tensor(obs)[None], *view)[0].numpy()
            np.testing.assert_array_equal(image_obs, expected)
            np.testing.assert_array_equal(image_mask, mask[came_from.numpy()])
            move = int(rng.choice(np.flatnonzero(mask)))
            original.step(move)
            image.step(int(goes_to[move]))


@pytest.mark.parametrize("game", ["connect_four", "tictactoe"])
def test_a_symmetric_policy_plays_every_image_of_a_position_alike(game):
    from rlkit.symmetry import Symmetric

    cfg = load_config([f"env={game}"])
    probe = Game(cfg.env)
    torch.manual_seed(0)
    policy = make_policy(cfg.model, probe.observation_space, gym.spaces.Discrete(probe.num_actions), board=True)
    sym = Symmetric(policy, game, probe.observation_space.shape, probe.num_actions)
    obs = torch.randint(0, 2, (5, *probe.observation_space.shape)).to(torch.as_tensor(probe.observe()[0]).dtype)
    mask = torch.rand(5, probe.num_actions) < 0.7
    with torch.no_grad():
        logits, value = sym(obs, mask)
        for view, (came_from, goes_to) in zip(sym.symmetries.views[1:], sym.symmetries.maps[1:]):
            image = sym.symmetries.view(obs, *view)
            image_logits, image_value = sym(image, mask[:, came_from])
            torch.testing.assert_close(image_logits[:, goes_to], logits)
            torch.testing.assert_close(image_value, value)
            plain_logits, _ = policy(image, mask[:, came_from])  # the network alone is not symmetric
            assert not torch.allclose(plain_logits[:, goes_to], policy(obs, mask)[0], atol=1e-4)


@pytest.mark.parametrize("game", ["connect_four", "tictactoe"])
def test_augmented_batch_holds_each_games_image_weighted_exactly_for_a_symmetric_policy(game):
    """env.selfplay.augment: the image columns are the original games under one symmetry each
    (boards, moves, masks and next boards mapped; rewards, dones, values copied, so advantages
    equal), and a symmetric policy rates every image's move as the acting policy rated the
    original (a decoupled weight of 1); a plain network does not."""
    from rlkit.algos.ppo import advantages
    from rlkit.nets import logp_entropy_value as evaluate
    from rlkit.rollout import Rollout
    from rlkit.symmetry import Symmetric

    cfg = load_config([f"env={game}", "model=cnn"])
    envs = SelfPlay(cfg.env, 6, Fixed(RandomPlayer(0)))
    torch.manual_seed(0)
    plain = make_policy(cfg.model, envs.single_observation_space, envs.single_action_space, board=True)
    sym = Symmetric(plain, game, envs.single_observation_space.shape, envs.single_action_space.n)
    batch, _ = Rollout(envs, torch.device("cpu"), 10, seed=0, gamma=1.0).collect(sym)
    symmetries = sym.symmetries
    out = symmetries.augment(sym, batch, generator=torch.Generator().manual_seed(0))
    assert out["obs"].shape[1] == 12 and out["next_obs"].shape[0] == 12 and out["last_value"].shape == (12,)
    assert torch.equal(out["prox_logprobs"][:, :6], batch["logprobs"])
    images = out["prox_logprobs"][:, 6:]
    torch.testing.assert_close(images, out["logprobs"][:, 6:], atol=1e-5, rtol=1e-5)
    adv, _ = advantages(out["rewards"], out["values"], out["dones"], out["last_value"], 1.0, 0.95)
    original_adv, _ = advantages(batch["rewards"], batch["values"], batch["dones"], batch["last_value"], 1.0, 0.95)
    assert torch.equal(adv[:, :6], original_adv)
    # Which original each image column shows, and under which view: find it by matching the boards.
    for j in range(6, 12):
        found = [(i, v) for i in range(6) for v in range(1, len(symmetries.views))
                 if torch.equal(symmetries.view(batch["obs"][:, i], *symmetries.views[v]), out["obs"][:, j])
                 and torch.equal(symmetries.maps[v][1][batch["actions"][:, i]], out["actions"][:, j])]
        assert found, f"image column {j} is no symmetric image of an original game"
        i, v = found[0]
        came_from = symmetries.maps[v][0]
        assert torch.equal(out["masks"][:, j], batch["masks"][:, i][:, came_from])
        assert torch.equal(out["next_obs"][j], symmetries.view(batch["next_obs"][i:i + 1], *symmetries.views[v])[0])
        for k in ("rewards", "dones", "values", "logprobs"):
            assert torch.equal(out[k][:, j], batch[k][:, i])
        assert out["last_value"][j] == batch["last_value"][i]  # bootstraps from its own game's value
        assert torch.equal(adv[:, j], original_adv[:, i])
        assert out["masks"][:, j].gather(1, out["actions"][:, j, None]).all()  # the image's move is legal there
    plain_prox = symmetries.augment(plain, batch, generator=torch.Generator().manual_seed(0))["prox_logprobs"][:, 6:]
    with torch.no_grad():
        own = evaluate(plain, batch["obs"].flatten(0, 1), batch["actions"].flatten(), batch["masks"].flatten(0, 1))[0]
    assert not torch.allclose(plain_prox.flatten(), own, atol=1e-3)


@pytest.mark.slow
def test_augmented_selfplay_training_runs_and_reinforce_is_refused(train):
    from rlkit.config import UsageError

    run = train("env=connect_four", "model=cnn", "num_envs=4", "algo.num_steps=8", "total_steps=64",
                "env.selfplay.augment=true", "env.selfplay.snapshot_every=10000")
    assert (run / "checkpoints" / "final.safetensors").exists()
    with pytest.raises(UsageError, match=r"augment=true needs an algorithm whose update can weight the images as "
                                         r"samples the acting policy did not play \(ppo\); reinforce cannot"):
        train("env=connect_four", "algo=reinforce", "env.selfplay.augment=true", "total_steps=64", name="bad")


@pytest.mark.parametrize("game,moves,marks", [
    ("tictactoe", [4, 0, 8], {(1, 1): "X", (0, 0): "O", (2, 2): "X"}),
    ("connect_four", [3, 3, 0], {(5, 3): "X", (4, 3): "O", (5, 0): "X"}),
    ("go", ["D4", "E5", "pass"], {(5, 3): "X", (4, 4): "O"}),  # 9x9 rows count down from 9 at the top
])
def test_the_drawn_board_shows_the_first_seats_stones_as_x(game, moves, marks):
    """`rlkit.play` and `rlkit.watch` draw X for the first seat after every move, whoever is to
    move (Go's planes put the last move's side first, the other games' the mover's)."""
    from rlkit.envs.board import parse_move

    g = Game(env_cfg(game))
    g.reset(0)
    for m in moves:
        g.step(parse_move(game, m, 9) if game == "go" else m)
        rows = g.draw().splitlines()
        if game == "go":
            cells = [row.split()[1:] for row in rows[:-1]]
        elif game == "connect_four":
            cells = [row.split() for row in rows[:-1]]
        else:
            cells = [[c.strip() for c in row.split("|")] for row in rows[::2]]
        drawn = {(r, c): v for r, row in enumerate(cells) for c, v in enumerate(row) if v in "XO"}
        assert set(drawn.items()) <= set(marks.items())  # every stone so far in its colour
    assert drawn == marks
