"""rlkit.export: ONNX, int8, pruned and distilled agents, and exported files taken as data."""
import csv
import json
import re

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from rlkit.agent import load_agent, load_player, rebuild_spaces
from rlkit.config import load_config
from rlkit.envs.selfplay import play_match
from rlkit.errors import UsageError
from rlkit.export import main as export
from rlkit.nets import make_policy
from rlkit.onnx_agent import _need, agreement, load_onnx, save_with_meta
from rlkit.players import RandomPlayer
from rlkit.shrink import distill, games, parameters, prune, student_config
from tests.conftest import ROOT, run_cli

DOOM = ROOT / "agents" / "doom-basic"


@pytest.fixture(scope="module")
def doom(tmp_path_factory):
    """Every format of the shipped Doom Basic agent, at tiny settings."""
    out = tmp_path_factory.mktemp("export") / "doom"
    made = export(["agent=doom-basic", "to=all", f"out={out}", "samples=512", "finetune_steps=256", "epochs=2",
                   "progress=false"])
    return out, made


@pytest.fixture(scope="module")
def teacher():
    agent = load_agent(DOOM)
    return agent, games(agent, 256, seed=7, progress=False)[0]  # observations the export never saw


def test_onnx_agent_gives_pytorchs_outputs(doom, teacher):
    out, made = doom
    agent, obs = teacher
    exported = load_agent(out / "agent.onnx")
    with torch.inference_mode():
        values = agent.policy(torch.as_tensor(obs), None)[1]
    check = agreement(agent.policy, exported.policy, obs, None)
    assert check["logits"] < 1e-4 and check["value"] < 1e-4 * max(1.0, float(values.abs().max()))
    assert check["greedy_agree"] == 1.0 and made["onnx"]["logits"] < 1e-4
    probs, value = exported.explain(obs[0])
    want, want_value = agent.explain(obs[0])
    assert np.allclose(probs, want, atol=1e-5) and value == pytest.approx(want_value, rel=1e-4)
    assert exported.cfg.env.name == "doom" and exported.observation_space == agent.observation_space


def test_int8_is_quantized_smaller_and_plays_alike(doom, teacher):
    out, _ = doom
    agent, obs = teacher
    model = onnx.load(str(out / "agent-int8.onnx"))
    ops = {n.op_type for n in model.graph.node}
    int8 = {t.name for t in model.graph.initializer if numpy_helper.to_array(t).dtype == np.int8 and t.dims}
    fp32 = {t.name for t in model.graph.initializer if numpy_helper.to_array(t).dtype == np.float32 and t.dims}
    layers = ["encoder.convs.0.0", "encoder.convs.0.2", "encoder.convs.0.4", "encoder.fc.0", "actor", "critic"]
    quantized = [any(name.startswith(f"policy.{layer}.weight") for name in int8) for layer in layers]
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and quantized == [False, True, True, True, False, False]
    assert {"policy.encoder.convs.0.0.weight", "policy.actor.weight", "policy.critic.weight"} <= fp32  # the ends
    assert (out / "agent.onnx").stat().st_size > 3.5 * (out / "agent-int8.onnx").stat().st_size
    assert agreement(agent.policy, load_agent(out / "agent-int8.onnx").policy, obs, None)["greedy_agree"] >= 0.99


def test_pruned_and_distilled_are_smaller_agents(doom):
    out, made = doom
    pruned, distilled = load_agent(out / "pruned"), load_agent(out / "distilled")
    assert list(pruned.cfg.model.channels) == [16, 32, 32] and pruned.cfg.model.hidden == 256
    assert (out / "pruned" / "run" / "checkpoints" / "final.safetensors").is_file()  # it was fine-tuned
    assert pruned.cfg.total_steps == 256 and "fine-tuned 256" in (out / "pruned" / "README.md").read_text()
    full = parameters(load_agent(DOOM).policy)
    for agent in (pruned, distilled):
        assert parameters(agent.policy) < full / 3.5
    assert made["distilled"]["parameters"] == parameters(distilled.policy)
    assert (out / "results.md").exists() is False  # measure=false


def test_pruning_keeps_the_function_of_what_it_keeps():
    """Channels and units with zero weights contribute nothing; pruning exactly those must give
    the same outputs: the slicing (through the flatten into the dense layer) is right."""
    cfg = load_config(["env=doom"])
    obs_space, act_space = rebuild_spaces({"obs_shape": [4, 1, 64, 64], "obs_dtype": "uint8", "num_actions": 3})
    torch.manual_seed(0)
    policy = make_policy(cfg.model, obs_space, act_space)
    convs = [m for m in policy.encoder.convs.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for layer in [*convs, policy.encoder.fc[0]]:
            dead = torch.randperm(layer.weight.shape[0])[: layer.weight.shape[0] // 2]
            layer.weight[dead] = 0
            layer.bias[dead] = 0
    small, small_cfg = prune(policy, cfg, 0.5, (obs_space, act_space))
    assert list(small_cfg.model.channels) == [16, 32, 32] and small_cfg.model.hidden == 256
    obs = torch.randint(0, 256, (8, 4, 1, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        (la, va), (lb, vb) = policy(obs), small(obs)
    assert torch.allclose(la, lb, atol=1e-5) and torch.allclose(va, vb, atol=1e-5)
    full, _ = prune(policy, cfg, 1.0, (obs_space, act_space))
    assert parameters(full) == parameters(policy)
    _, units_cfg = prune(policy, cfg, 1.0, (obs_space, act_space), keep_units=0.25)  # the dense layer alone
    assert list(units_cfg.model.channels) == [32, 64, 64] and units_cfg.model.hidden == 128


def test_distillation_teaches_the_student(teacher):
    agent, _ = teacher
    obs, _ = games(agent, 1024, seed=11, progress=False)
    cfg = student_config(agent.policy, agent.cfg, [8, 16], 64)
    spaces = (agent.observation_space, agent.action_space)
    _, untaught = distill(agent.policy, cfg, spaces, obs, None, epochs=1, lr=1e-12, progress=False)
    student, taught = distill(agent.policy, cfg, spaces, obs, None, epochs=30, progress=False)
    assert len([m for m in student.encoder.convs.modules() if isinstance(m, torch.nn.Conv2d)]) == 2
    assert taught["kl"] < 0.4 * untaught["kl"] and taught["greedy_agree"] > 0.75, (taught, untaught)


def test_board_game_onnx_agent_keeps_masks_and_plays(tmp_path):
    out = tmp_path / "c4.onnx"
    export(["agent=connect-four", "to=onnx", f"out={out}", "samples=128", "progress=false"])
    agent = load_agent(ROOT / "agents" / "connect-four")
    exported = load_agent(out)
    obs, masks = games(agent, 64, seed=3, progress=False)
    assert agreement(agent.policy, exported.policy, obs, masks)["logits"] < 1e-4
    probs, _ = exported.explain(obs[-1], masks[-1])
    assert (probs[~masks[-1]] == 0).all() and probs.sum() == pytest.approx(1.0)
    player = load_player(str(out), agent.cfg.env, greedy=True)
    scores = play_match(agent.cfg.env, player, RandomPlayer(seed=0), 10, seed=0)
    assert np.mean(scores) > 0.8


def _doctored(doom, tmp_path, change) -> str:
    model = onnx.load(str(doom[0] / "agent.onnx"))
    change(model)
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    return str(path)


def _meta(model) -> dict:
    return json.loads(next(p.value for p in model.metadata_props if p.key == "rlkit"))


def _set_meta(model, **changes) -> None:
    meta = _meta(model)
    for key, value in changes.items():
        target = meta
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "rlkit", json.dumps(meta)


def _external(model) -> None:
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"


@pytest.mark.parametrize("change, says", [
    (_external, "points to data outside itself"),
    (lambda m: m.metadata_props.__delitem__(slice(None)), "not an rlkit ONNX agent"),
    (lambda m: _set_meta(m, **{"config.env.scenario": "${oc.env:HOME}"}), "interpolations"),
    (lambda m: _set_meta(m, **{"config.env.name": "evil"}), "names env 'evil'"),
    (lambda m: _set_meta(m, **{"spaces.obs_dtype": "float32"}), "its graph takes"),
    (lambda m: _set_meta(m, **{"config.model.core": "lstm"}), "has no memory"),
    (lambda m: _set_meta(m, **{"spaces.num_actions": 10**9}), "actions"),
])
def test_a_doctored_onnx_file_is_refused(doom, tmp_path, change, says):
    with pytest.raises(UsageError, match=says):
        load_onnx(_doctored(doom, tmp_path, change))


def test_damaged_onnx_file_is_one_line_error(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    result = run_cli("rlkit.watch", f"agent={bad}", "record=none", "episodes=1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {bad} is not a valid ONNX file"]


def test_metadata_survives_save_with_meta(doom, tmp_path):
    model = onnx.load(str(doom[0] / "agent-int8.onnx"))
    assert _meta(model)["int8"] is True
    save_with_meta(model, {**_meta(model), "extra": 1}, tmp_path / "m.onnx")
    assert load_onnx(tmp_path / "m.onnx")[1].env.name == "doom"


@pytest.mark.parametrize("args, says", [
    (["agent=doom-basic"], "give to=FORMAT, one of: onnx, int8, pruned, distilled, all"),
    (["agent=doom-basic", "to=tflite"], "give to=FORMAT, one of"),
    (["agent=doom-basic", "to=onnx", "out=doom.txt"], "out= must end in .onnx"),
    (["agent=doom-basic", "to=onnx", "calls=0"], "calls must be"),
    (["agent=doom-basic", "to=pruned", "keep=0"], "keep must be a number from 0.01 to 1"),
    (["agent=doom-basic", "to=pruned", "keep_units=2"], "keep_units must be a number from 0 to 1"),
    (["agent=doom-basic", "to=distilled", "channels=[8,0]"], "channels must be a list"),
    (["agent=nobody", "to=onnx"], "no agent 'nobody'"),
    ([f"agent={DOOM}", "to=pruned", f"out={ROOT / 'README.md'}"], "already exists"),
])
def test_bad_export_options_are_refused(args, says):
    with pytest.raises(UsageError, match=re.escape(says)):
        export(args)


def test_a_bad_option_is_one_line_and_exit_code_2():
    result = run_cli("rlkit.export", "agent=doom-basic", "to=tflite")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["error: give to=FORMAT, one of: onnx, int8, pruned, distilled, all"]


def test_export_refuses_what_it_cannot_export(doom, train):
    with pytest.raises(UsageError, match="already exported"):
        export(["agent=" + str(doom[0] / "agent.onnx"), "to=int8"])
    run = train("env=cartpole", "total_steps=256", "algo.num_steps=64", "model.core=lstm", name="lstm")
    with pytest.raises(UsageError, match="without memory"):
        export([f"agent={run}", "to=onnx", "out=never.onnx"])
    with pytest.raises(UsageError, match="model=cnn on frames or boards"):
        export([f"agent={run}", "to=pruned", "out=never"])
    assert not (ROOT / "never.onnx").exists() and not (ROOT / "never").exists()


def test_a_missing_package_names_the_extra():
    with pytest.raises(UsageError, match=r"pip install -e '\.\[export\]'"):
        _need("onnx_that_is_not_installed")


def test_pruned_network_taught_by_distillation(tmp_path, teacher):
    agent, obs = teacher
    export([f"agent={DOOM}", "to=pruned", "finetune=distill", "samples=1024", "epochs=20", "keep=0.5",
            f"out={tmp_path / 'p'}", "progress=false"])
    pruned = load_agent(tmp_path / "p")
    assert list(pruned.cfg.model.channels) == [16, 32, 32] and not (tmp_path / "p" / "run").exists()
    assert "fine-tuned by distillation" in (tmp_path / "p" / "README.md").read_text()
    untaught, _ = prune(agent.policy, agent.cfg, 0.5, (agent.observation_space, agent.action_space))
    taught = agreement(agent.policy, pruned.policy, obs, None)["greedy_agree"]
    assert taught > 0.9 and taught > agreement(agent.policy, untaught, obs, None)["greedy_agree"]


def test_compare_agents_plays_exported_formats_on_the_same_seeds(doom, tmp_path, capsys):
    """`rlkit.compare agents=`: greedy ONNX plays exactly as PyTorch on the same seeds, so its paired
    difference is 0; a file is refused by runs= with a pointer to agents=, and agents of two games together."""
    from rlkit.compare import main as compare

    out, _ = doom
    compare([f"agents=[doom-basic,{out / 'agent.onnx'},{out / 'distilled'}]", "episodes=4", "deterministic=true",
             f"out={tmp_path}", "progress=false"])
    rows = list(csv.DictReader(open(tmp_path / "agents.csv")))
    assert [r["agent"] for r in rows] == ["doom-basic", str(out / "agent.onnx"), str(out / "distilled")]
    assert float(rows[1]["mean"]) == float(rows[0]["mean"]) and float(rows[1]["diff_low"]) == 0 == float(
        rows[1]["diff_high"])
    assert float(rows[2]["diff"]) == pytest.approx(float(rows[2]["mean"]) - float(rows[0]["mean"]))
    assert "| doom-basic |" in (tmp_path / "agents.md").read_text() and "4 episodes, greedy" in capsys.readouterr().out
    compare([f"runs=[{out / 'agent.onnx'},{out / 'agent-int8.onnx'}]", "episodes=2", "deterministic=true",
             f"out={tmp_path / 'files'}", "progress=false"])  # runs= of agent files: played the same way
    assert [r["agent"] for r in csv.DictReader(open(tmp_path / "files" / "agents.csv"))] == [
        str(out / "agent.onnx"), str(out / "agent-int8.onnx")]
    with pytest.raises(UsageError, match="agents play as they are; drop 'env=doom'"):
        compare([f"runs=[{out / 'agent.onnx'}]", "env=doom"])
    with pytest.raises(UsageError, match="is an agent, not a run folder: runs=.* not both"):
        compare([f"runs=[{out / 'agent.onnx'},/nonexistent/*]"])
    with pytest.raises(UsageError, match="must all play one game; these play connect_four, doom"):
        compare(["agents=[doom-basic,connect-four]", "progress=false"])


def test_measure_times_and_scores_what_one_format_made(tmp_path):
    """`to=int8 measure=true`: rows for the agent as trained, the fp32 graph and int8, in OUT-results.md;
    the fp32 graph it worked from is not left behind."""
    out = tmp_path / "doom-int8.onnx"
    export(["agent=doom-basic", "to=int8", f"out={out}", "samples=256", "measure=true", "episodes=2", "calls=5",
            "deterministic=true", "progress=false"])
    table = (tmp_path / "doom-int8-results.md").read_text()
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["| format", "| fp32 (PyTorch)", "| onnx (ONNX Runtime)", "| int8 (ONNX Runtime)"]
    assert "median of 5 calls" in table and "int8 against PyTorch on 128 observations" in table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doom-int8-results.md", "doom-int8.onnx"]
