"""Shared agents must never run code (issue 21): a corpus of hostile agent folders, checkpoints,
run folders and Doom scenarios, all made here by code, each refused with one line and a non-zero
exit before anything runs. Every payload writes a canary file if it ever runs; no test may find one."""
import json
import os
import random
import stat
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import rlkit
from rlkit import arena, checkpoint, compare, train, watch
from rlkit.config import cli
from rlkit.errors import RunError, UsageError
from tests.conftest import ROOT

DOOM = ROOT / "agents" / "doom-basic" / "agent.safetensors"
C4 = ROOT / "agents" / "connect-four" / "agent.safetensors"


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    """A real CartPole run (two checkpoints) to make hostile copies of."""
    return train.main(["env=cartpole", "total_steps=512", "checkpoint_every=256", "keep_checkpoints=5",
                       "progress=false", f"run_dir={tmp_path_factory.mktemp('good') / 'run'}"])


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """A payload module on the import path and an executable script: both write the canary."""
    mark = tmp_path / "CANARY"
    (tmp_path / "hostile_payload.py").write_text(
        f"open({str(mark)!r}, 'w').write('module imported')\nfrom gymnasium.envs.classic_control import *\n")
    script = tmp_path / "pwn.sh"
    script.write_text(f"#!/bin/sh\necho ran > {mark}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield mark
    sys.modules.pop("hostile_payload", None)
    assert not mark.exists(), f"hostile code ran: {mark.read_text()}"


def read(path):
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}


def forge(src, dst, config=None, spaces=None, meta=None, tensors=None, keep_digest=False) -> Path:
    """A copy of checkpoint `src` with its config/spaces edited by functions (or replaced by values),
    other header entries or tensors replaced; signed with a fresh digest, as an attacker would,
    unless `keep_digest` (damage: the header stays as it was, digest and format included)."""
    old_meta, old_tensors = read(src)
    for key, edit in (("config", config), ("spaces", spaces)):
        if edit is not None:
            value = json.loads(old_meta[key])
            old_meta[key] = json.dumps(edit(value) if callable(edit) else edit)
    old_meta.update(meta or {})
    old_tensors.update(tensors or {})
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if keep_digest:
        save_file(old_tensors, str(dst), metadata=old_meta)
        return dst
    return checkpoint.write(dst, old_tensors, {k: v for k, v in old_meta.items() if k != "digest"})


def setting(path: str, value):
    def edit(cfg):
        node = cfg
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
        return cfg
    return edit


def refused(main, argv, capsys, match: str = ""):
    """Run a command as `python -m` does (through rlkit.config.cli): it must exit non-zero with one
    `error:` line and no traceback."""
    old = sys.argv
    sys.argv = ["rlkit", *argv]
    try:
        with pytest.raises(SystemExit) as exit_:
            cli(main)
    finally:
        sys.argv = old
    err = capsys.readouterr().err.strip()
    assert exit_.value.code not in (0, None), err
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err
    return err


def agent_folder(tmp_path, name, ckpt) -> Path:
    folder = tmp_path / "agents" / name
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(ckpt, folder / "agent.safetensors")
    return folder


# --- 1. code from env.id (Gymnasium imports the module before a ':') ---------------------------

MODULE_IDS = ["hostile_payload:CartPole-v1", "hostile_payload:Anything-v0", "agents.cartpole-pro.payload:CartPole-v1",
              "os:system", "hostile_payload.sub:X-v0", " hostile_payload:CartPole-v1"]


@pytest.mark.parametrize("env_id", MODULE_IDS)
def test_a_module_id_in_an_agent_is_refused_on_watch(env_id, cartpole, tmp_path, canary, capsys):
    folder = agent_folder(tmp_path, "cartpole-pro", forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors",
                                                          config=setting("env.id", env_id)))
    refused(watch.main, [f"agent={folder}", "record=none", "episodes=1"], capsys,
            "is not a registered Gymnasium id (a file may not name a module)")


def test_a_module_id_is_refused_on_resume_and_by_the_api(cartpole, tmp_path, canary, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    forge(checkpoint.latest(cartpole), run / "checkpoints" / "final.safetensors",
          config=setting("env.id", "hostile_payload:CartPole-v1"))
    refused(train.main, [f"resume={run}", "total_steps=10000"], capsys, "no intact checkpoint")
    with pytest.raises(UsageError, match="not a registered Gymnasium id"):
        rlkit.load_agent(run / "checkpoints" / "final.safetensors").make_env()


def test_an_unregistered_id_is_refused_with_the_valid_ones(cartpole, tmp_path, capsys):
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors", config=setting("env.id", "Evil-v0"))
    refused(watch.main, [f"agent={bad}", "record=none"], capsys, "choose from: CartPole-v0, CartPole-v1")


@pytest.mark.slow
def test_the_reported_exploit_end_to_end(cartpole, tmp_path):
    """The issue's reproduction, as a user runs it: a folder under agents/ with payload.py."""
    folder = tmp_path / "agents" / "cartpole-pro"
    folder.mkdir(parents=True)
    mark = tmp_path / "CANARY"
    (folder / "payload.py").write_text(f"open({str(mark)!r}, 'w').write('pwned')\n"
                                       "from gymnasium.envs.classic_control import *\n")
    forge(checkpoint.latest(cartpole), folder / "agent.safetensors",
          config=setting("env.id", "agents.cartpole-pro.payload:CartPole-v1"))
    import subprocess

    result = subprocess.run([sys.executable, "-m", "rlkit.watch", "agent=agents/cartpole-pro", "record=none",
                             "episodes=1"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not mark.exists()


# --- 2. a program from a Doom scenario (a .cfg's vizdoom_path is executed by DoomGame.init) -----

def evil_cfg(folder: Path, body="vizdoom_path = pwn.sh", name="evil.cfg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / name
    cfg.write_text(f"doom_scenario_path = basic.wad\n{body}\navailable_buttons = {{ ATTACK }}\n")
    return cfg


@pytest.mark.parametrize("where", ["relative", "absolute", "cwd", "symlink", "dotdot-name"])
def test_a_scenario_path_in_an_agent_is_refused(where, tmp_path, canary, capsys, monkeypatch):
    cfg = evil_cfg(tmp_path / "agents" / "doom-pro")
    (tmp_path / "agents" / "doom-pro" / "pwn.sh").symlink_to(tmp_path / "pwn.sh")
    monkeypatch.chdir(tmp_path)
    scenario = {"relative": os.path.relpath(cfg.with_suffix(""), ROOT / "envs" / "doom"), "absolute": str(cfg),
                "cwd": "agents/doom-pro/evil.cfg", "dotdot-name": "../../basic"}.get(where)
    if where == "symlink":
        (tmp_path / "basic.cfg").symlink_to(cfg)
        scenario = str(tmp_path / "basic.cfg")
    folder = agent_folder(tmp_path, "doom-pro2", forge(DOOM, tmp_path / "x.safetensors",
                                                      config=setting("env.scenario", scenario)))
    refused(watch.main, [f"agent={folder}", "record=none", "episodes=1"], capsys,
            "is not a scenario name (a file may not name a .cfg by path)")


CFG_BODIES = {
    "vizdoom_path": "vizdoom_path = pwn.sh",
    "upper case": "ViZDoom_Path = pwn.sh",
    "no underscore": "vizdoompath=pwn.sh",
    "game_args": "game_args += +exec pwn.sh",
    "gameargs": "GameArgs = -file pwn.sh",
    "wad outside": "doom_scenario_path = ../outside.wad",
    "absolute iwad": "doom_game_path = /usr/share/games/doom/doom.wad",
    "engine config": "doom_config_path = engine.ini",  # its AutoExec section runs console scripts from anywhere
    "vertical tab": "vizdoom_path\v= pwn.sh",            # ViZDoom splits lines at \n only and trims \v
    "form feed": "game_args\f+= +logfile x",
    "carriage return": "vizdoom_path\r= pwn.sh",
}


@pytest.mark.parametrize("case", sorted(CFG_BODIES))
def test_a_scenario_from_the_command_line_may_not_start_a_program_or_reach_outside(case, tmp_path, canary, capsys):
    cfg = evil_cfg(tmp_path / "mine", CFG_BODIES[case])
    (tmp_path / "mine" / "pwn.sh").symlink_to(tmp_path / "pwn.sh")
    match = {"wad outside": "outside its own folder", "absolute iwad": "outside its own folder",
             "vertical tab": "control character '\\x0b'", "form feed": "control character '\\x0c'"}.get(
        case, "which makes ViZDoom start a program, run an engine config or pass engine arguments; refused")
    refused(train.main, ["env=doom", f"env.scenario={cfg}", "total_steps=64", f"run_dir={tmp_path / 'r'}",
                         "progress=false"], capsys, match)
    assert not (tmp_path / "r").exists()


def test_a_symlinked_file_out_of_the_scenario_folder_is_refused(tmp_path, canary, capsys):
    cfg = evil_cfg(tmp_path / "mine", "doom_game_path = doom2.wad")
    (tmp_path / "mine" / "doom2.wad").symlink_to("/etc/hostname")
    refused(train.main, ["env=doom", f"env.scenario={cfg}", f"run_dir={tmp_path / 'r'}"], capsys,
            "outside its own folder")


def test_a_clean_scenario_of_ones_own_still_plays(tmp_path):
    """The checks refuse what is dangerous, not custom scenarios: a copy of Basic beside its WAD."""
    import shutil

    import vizdoom

    from rlkit.envs.doom import DoomEnv

    mine = tmp_path / "mine"
    mine.mkdir()
    for f in ("basic.cfg", "basic.wad"):
        shutil.copy(Path(vizdoom.scenarios_path) / f, mine / f)
    env = DoomEnv(str(mine / "basic.cfg"))
    assert env.reset(seed=0)[0].shape == (1, 64, 64)
    env.close()


# --- 3. interpolations in loaded configs ---------------------------------------------------------

@pytest.mark.parametrize("value", ["${oc.env:RLKIT_TEST_SECRET}", "${oc.env:RLKIT_UNSET_VARIABLE}", "${evil:x}",
                                   "${run_dir}", "runs/${oc.env:RLKIT_TEST_SECRET}/x"])
def test_interpolations_in_a_checkpoint_are_refused_on_resume(value, cartpole, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RLKIT_TEST_SECRET", "hunter2")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    forge(checkpoint.latest(cartpole), run / "checkpoints" / "final.safetensors", config=setting("run_dir", value))
    err = refused(train.main, [f"resume={run}", "total_steps=100000"], capsys, "interpolations")
    assert "hunter2" not in err and not (run / "config.yaml").exists()


def test_an_interpolation_in_a_list_is_refused(tmp_path, capsys):
    bad = forge(DOOM, tmp_path / "x.safetensors", config=setting("env.size", ["${oc.env:HOME}", 64]))
    refused(watch.main, [f"agent={bad}", "record=none"], capsys, "interpolations")


def test_interpolations_in_a_run_folder_never_reach_compares_results(cartpole, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.setenv("RLKIT_TEST_SECRET", "hunter2")
    run = tmp_path / "shared"
    shutil.copytree(cartpole, run)
    text = (run / "config.yaml").read_text().replace("seed: 1", "seed: ${oc.env:RLKIT_TEST_SECRET}")
    (run / "config.yaml").write_text(text)
    out = tmp_path / "out"
    refused(compare.main, [f"runs=[{run}]", f"out={out}"], capsys, "interpolations")
    assert not any("hunter2" in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())


# --- 4. sizes, shapes and types ---------------------------------------------------------------

def deep(n):
    node = cfg = {}
    for _ in range(n):
        node["x"] = {}
        node = node["x"]
    return cfg


CONFIGS = {
    "10M layers": (setting("model", {"name": "mlp", "hidden": 64, "layers": 10_000_000}), "model.layers must be in"),
    "huge hidden": (setting("model.hidden", 10**9), "model.hidden must be in"),
    "zero hidden": (setting("model.hidden", 0), "model.hidden must be > 0"),
    "a list": ([1, 2, 3], "must be a mapping of keys, got list"),
    "no env": (lambda c: {k: v for k, v in c.items() if k != "env"}, "has no env.name"),
    "600 deep": (lambda c: {**c, "x": deep(600)}, "larger or deeper than any config"),
    "unknown env": (setting("env.name", "no_such_game"), "names env 'no_such_game'"),
    "unknown key": (setting("algo.evil", 1), "the key 'algo.evil', which rlkit does not know"),
    "string lr": (setting("algo.lr", "fast"), "algo.lr must be a number"),
    "nan lr": (setting("algo.lr", float("nan")), "algo.lr must be a finite number"),
    "negative seed": (setting("seed", -1), "seed must be >= 0"),
    "family mismatch": (setting("env.family", "board"), "is a classic game, not 'board'"),
    "group as value": (setting("algo", 3), "has no algo.name"),
    "value as group": (setting("seed", {"a": 1}), "the key 'seed.a', which rlkit does not know"),
    "long text": (setting("run_dir", "x" * 5000), "texts over 1000 characters"),
    "object key": (lambda c: {**c, "__class__": 1}, "which is not a name"),
    "bad key": (lambda c: {**c, "a b": 1}, "which is not a name"),
    "bad target_kl": (setting("algo.target_kl", "abc"), "algo.target_kl must be a number or null"),
    "heads": (setting("model", {"name": "transformer", "patch": 12, "dim": 64, "layers": 2, "heads": 3,
                                "dropout": 0.0}), "model.dim (64) must be a multiple of model.heads (3)"),
    "unknown runner": (setting("runner.name", "evil"), "names runner 'evil'"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_config_outside_the_rules_is_refused_fast(case, cartpole, tmp_path, capsys):
    edit, match = CONFIGS[case]
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors", config=edit)
    start = time.perf_counter()
    refused(watch.main, [f"agent={bad}", "record=none", "episodes=1"], capsys, match)
    assert time.perf_counter() - start < 10


SPACES = {
    "10**9 actions": ({"num_actions": 10**9}, "actions; valid: 1 to 65536"),
    "huge observation": ({"obs_shape": [100000, 100000]}, "observation shape"),
    "negative shape": ({"obs_shape": [-4]}, "observation shape"),
    "garbage dtype": ({"obs_dtype": "object"}, "observation dtype 'object'"),
    "other shape": ({"obs_shape": [8]}, "weights do not fit the network"),
    "missing": (None, "are not {obs_shape, obs_dtype, num_actions}"),
}


@pytest.mark.parametrize("case", sorted(SPACES))
def test_spaces_outside_the_rules_are_refused(case, cartpole, tmp_path, capsys):
    change, match = SPACES[case]
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors",
                spaces=(lambda s: {**s, **change}) if change else {"obs_shape": [4]})
    refused(watch.main, [f"agent={bad}", "record=none"], capsys, match)


# --- 5. damaged checkpoints --------------------------------------------------------------------

def test_finite_garbage_in_the_weights_fails_the_digest(cartpole, tmp_path, capsys):
    meta, tensors = read(checkpoint.latest(cartpole))
    name = next(k for k in tensors if k.startswith("model."))
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors",
                tensors={name: tensors[name] + 0.5}, keep_digest=True)
    refused(watch.main, [f"agent={bad}", "record=none"], capsys, "do not match the digest")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(value, cartpole, tmp_path, capsys):
    meta, tensors = read(checkpoint.latest(cartpole))
    name = next(k for k in tensors if k.startswith("model."))
    broken = tensors[name].clone()
    broken.view(-1)[0] = value
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors", tensors={name: broken})
    refused(watch.main, [f"agent={bad}", "record=none"], capsys, f"tensor {name} holds non-finite values")


@pytest.mark.parametrize("entry, value, match", [
    ("counters", '{"step": -1, "update": 1}', "counters"), ("counters", '{"step": "x"}', "counters"),
    ("rng", "[]", "RNG"), ("format", "rlkit-checkpoint-9", "format is 'rlkit-checkpoint-9'"),
    ("optim_groups", "{", "not a valid rlkit checkpoint")])
def test_header_entries_rlkit_never_writes_are_refused(entry, value, match, cartpole, tmp_path, capsys):
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors", meta={entry: value},
                keep_digest=entry == "format")
    refused(watch.main, [f"agent={bad}", "record=none"], capsys, match)


def test_a_tensor_name_rlkit_never_writes_is_refused(cartpole, tmp_path, capsys):
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors", tensors={"optim.x": torch.zeros(1)})
    refused(watch.main, [f"agent={bad}", "record=none"], capsys, "unexpected tensor 'optim.x'")


def test_resume_falls_back_past_damaged_checkpoints_and_keeps_them(cartpole, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cartpole, run)
    final = run / "checkpoints" / "final.safetensors"
    meta, tensors = read(final)
    name = next(k for k in tensors if k.startswith("model."))
    forge(final, final, tensors={name: torch.full_like(tensors[name], float("nan"))})
    damaged = final.read_bytes()
    (run / "checkpoints" / "step_1536 (copy).safetensors").write_bytes(b"stray")
    assert checkpoint.latest(run) == final  # the stray file is not a checkpoint name rlkit writes
    assert train.main([f"resume={run}", "total_steps=768", "progress=false"]) == run
    err = capsys.readouterr().err
    assert "note: skipped 1 damaged checkpoint(s) (renamed to *.damaged), using step_256.safetensors" in err
    assert "non-finite" in err
    assert (run / "checkpoints" / "final.safetensors.damaged").read_bytes() == damaged
    assert checkpoint.load(final)["counters"]["step"] == 768
    checkpoint.prune(run, 0)  # stray names are left alone
    assert (run / "checkpoints" / "step_1536 (copy).safetensors").is_file()


def test_a_non_finite_loss_names_an_intact_checkpoint_as_the_last_good_one(cartpole, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cartpole, run)
    final = run / "checkpoints" / "final.safetensors"
    meta, tensors = read(final)
    name = next(k for k in tensors if k.startswith("model."))
    forge(final, final, tensors={name: torch.full_like(tensors[name], float("nan"))}, keep_digest=True)
    policy = torch.nn.Linear(1, 1)
    with pytest.raises(RunError, match=r"the last good checkpoint is .*step_256.safetensors"):
        train.check_finite(policy, {"loss/policy": float("nan")}, 300, run)


# --- the fuzzer --------------------------------------------------------------------------------

VALUES = [None, True, -1, 0, 1, 2**63, 10**9, -10**9, 0.5, -0.0, 1e308, float("nan"), float("inf"), "", "x",
          "${oc.env:HOME}", "🎮", "ä" * 50, "../../etc/passwd", "os:system", [], [1], ["a", 2], [[1]], {}, {"a": 1},
          "RES_160X120", "CartPole-v1", 64, [64, 64], "hostile_payload:CartPole-v1", "transformer", "doom"]


def mutate(cfg: dict, rng: random.Random):
    """One random change to a config: a value replaced, a key dropped or added, a group replaced,
    nesting added, keys renamed with unicode."""
    paths = []

    def walk(node, prefix):
        for k, v in node.items():
            paths.append((node, k))
            if isinstance(v, dict):
                walk(v, prefix + [k])
    walk(cfg, [])
    node, key = rng.choice(paths)
    kind = rng.randrange(6)
    if kind == 0:
        node[key] = rng.choice(VALUES)
    elif kind == 1:
        del node[key]
    elif kind == 2:
        node[rng.choice(["extra", "tuned", "ké", "_target_", "__init__"])] = rng.choice(VALUES)
    elif kind == 3:
        node[key] = deep(rng.randrange(1, 50))
    elif kind == 4:
        node[key + rng.choice(["é", " ", "${x}", ""])] = node.pop(key)
    else:
        node[key] = rng.choice(VALUES) if not isinstance(node[key], (int, float)) or isinstance(node[key], bool) \
            else node[key] * rng.choice([-1, 10**6, 0, 1.5])
    return cfg


@pytest.mark.slow
def test_fuzzed_headers_never_end_in_a_traceback_or_run_code(cartpole, tmp_path, canary):
    """500 seeded mutations of a valid checkpoint's config (and some of its spaces): each loads, or
    is refused with one UsageError line, within 10 s; nothing else escapes, and nothing runs."""
    rng = random.Random(21)
    meta, tensors = read(checkpoint.latest(cartpole))
    base = json.loads(meta["config"])
    outcomes = {"loaded": 0, "refused": 0}
    path = tmp_path / "fuzz.safetensors"
    for case in range(500):
        cfg = json.loads(json.dumps(base))
        for _ in range(rng.randrange(1, 4)):
            cfg = mutate(cfg, rng) if isinstance(cfg, dict) and cfg else cfg
        extra = {}
        if case % 10 == 0:
            spaces = json.loads(meta["spaces"])
            spaces[rng.choice(list(spaces))] = rng.choice(VALUES)
            extra["spaces"] = json.dumps(spaces)
        checkpoint.write(path, tensors, {**{k: v for k, v in meta.items() if k != "digest"},
                                         "config": json.dumps(cfg), **extra})
        start = time.perf_counter()
        try:
            rlkit.load_agent(path)
            outcomes["loaded"] += 1
        except UsageError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
        assert time.perf_counter() - start < 10, cfg
    assert outcomes["refused"] > 300 and outcomes["loaded"] > 10, outcomes


# --- found by attacking the loader (issue 21's review) -------------------------------------------

MORE_CONFIGS = {
    "missing value": (setting("env.id", "???"), "missing values (???)"),
    "value as a group": (setting("env.max_episode_steps", {"a": 1}), "'env.max_episode_steps.a', which rlkit does not"),
    "huge integer": (setting("seed", 2**4000), "an integer beyond 64 bits"),
    "unicode device": (setting("device", "cuda:²"), "device must be one of"),
}


@pytest.mark.parametrize("case", sorted(MORE_CONFIGS))
def test_more_configs_outside_the_rules(case, cartpole, tmp_path, capsys):
    edit, match = MORE_CONFIGS[case]
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors", config=edit)
    err = refused(watch.main, [f"agent={bad}", "record=none"], capsys, match)
    assert str(bad) in err  # the file is named


def test_a_group_replaced_by_a_value_is_refused(tmp_path, capsys):
    bad = forge(C4, tmp_path / "x.safetensors", config=setting("env.selfplay", 5))
    refused(watch.main, [f"agent={bad}"], capsys,
            "'env.selfplay', which rlkit does not know as a value (it is a group)")


def test_a_tensor_dtype_rlkit_never_writes_is_refused(cartpole, tmp_path, capsys):
    meta, tensors = read(checkpoint.latest(cartpole))
    name = next(k for k in tensors if k.startswith("model."))
    bad = forge(checkpoint.latest(cartpole), tmp_path / "x.safetensors",
                tensors={name: tensors[name].to(torch.float8_e4m3fn)})
    refused(watch.main, [f"agent={bad}", "record=none"], capsys, "torch.float8_e4m3fn, which rlkit never writes")


def test_a_board_agent_whose_game_does_not_fit_its_network_is_refused(tmp_path, capsys):
    bad = forge(C4, tmp_path / "x.safetensors", config=setting("env.game", "tictactoe"))
    refused(watch.main, [f"agent={bad}"], capsys, "the agent takes observations (6, 7, 2) and 7 actions, but "
                                                   "tictactoe gives (3, 3, 2) and 9")
    go = forge(ROOT / "agents" / "go" / "agent.safetensors", tmp_path / "go.safetensors",
               config=setting("env.board_size", 13))  # a 9x9 network said to be 13x13's
    refused(arena.main, ["env=go", "env.board_size=13", f"agents=[{go},random]", "games=1"], capsys,
            "the agent takes observations (9, 9, 17) and 82 actions, but go gives (13, 13, 17) and 170")


def test_resume_never_writes_through_a_symbolic_link(cartpole, tmp_path, capsys):
    import shutil

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    shutil.copytree(cartpole, run)
    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to(victim)
    refused(train.main, [f"resume={run}", "total_steps=1024"], capsys, "config.yaml is a symbolic link")
    (run / "config.yaml").unlink()
    other = tmp_path / "other"
    shutil.copytree(cartpole, other)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(other / "checkpoints")
    refused(train.main, [f"resume={run}", "total_steps=1024"], capsys, "checkpoints is a symbolic link")
    assert victim.read_text() == "precious" and sorted(p.name for p in (other / "checkpoints").iterdir()) == \
        ["final.safetensors", "step_256.safetensors"]


def test_an_events_file_from_the_future_does_not_hang_resume(cartpole, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cartpole, run)
    (run / "events.out.tfevents.99999999999.host.1.0").write_bytes(b"")
    start = time.perf_counter()
    train.main([f"resume={run}", "total_steps=768", "progress=false"])
    assert time.perf_counter() - start < 60


def test_sizes_a_resumed_file_asks_for_are_refused_before_they_are_allocated(cartpole, tmp_path, capsys):
    import shutil

    for name, edit, match in (
            ("wide", setting("model.hidden", 16384), "weights do not fit the network its config describes"),
            ("long", lambda c: {**setting("num_envs", 4096)(c), "algo": {**c["algo"], "num_steps": 1000000}},
             "GiB; at most 16 GiB: lower algo.num_steps or num_envs"),
    ):
        run = tmp_path / name
        shutil.copytree(cartpole, run)
        final = run / "checkpoints" / "final.safetensors"
        forge(final, final, config=edit)
        (run / "checkpoints" / "step_256.safetensors").unlink()
        start = time.perf_counter()
        refused(train.main, [f"resume={run}", "total_steps=10000"], capsys, match)
        assert time.perf_counter() - start < 30
    with pytest.raises(UsageError, match=r"env.selfplay.eval_games must be in \[0, 10000\]"):
        rlkit.load_agent(forge(C4, tmp_path / "x.safetensors", config=setting("env.selfplay.eval_games", 10**6)))


def test_ray_and_compile_in_a_checkpoint_are_not_turned_on_by_resume(cartpole, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cartpole, run)
    final = run / "checkpoints" / "final.safetensors"
    forge(final, final, config=lambda c: {**c, "compile": True, "runner": {"name": "ray", "workers": 2,
          "cpus_per_worker": 1.0, "max_restarts": 10, "start_timeout": 300}})
    train.main([f"resume={run}", "total_steps=768", "progress=false"])
    assert "ran with runner=ray, compile=true, which a checkpoint cannot turn on" in capsys.readouterr().err
    cfg = checkpoint.load(final)["config"]
    assert cfg.runner.name == "local" and cfg.compile is False


@pytest.mark.slow
def test_damaged_optimizer_rng_and_pool_parts_are_refused_on_resume(tmp_path, capsys):
    run = train.main(["env=connect_four", "num_envs=4", "algo.num_steps=8", "total_steps=32", "progress=false",
                      "env.selfplay.eval_games=2", f"run_dir={tmp_path / 'c4'}"])
    final = run / "checkpoints" / "final.safetensors"
    pristine = final.read_bytes()
    meta, tensors = read(final)
    groups = json.loads(meta["optim_groups"])
    rng = json.loads(meta["rng"])
    pool = json.loads(meta["pool"])
    exp_avg = next(k for k in tensors if k.endswith(".exp_avg"))
    cases = {
        "betas": ({"optim_groups": json.dumps([{**groups[0], "betas": "ab"}])}, {}),
        "amsgrad": ({"optim_groups": json.dumps([{**groups[0], "amsgrad": True}])}, {}),
        "exp_avg shape": ({}, {exp_avg: torch.zeros(1)}),
        "python rng": ({"rng": json.dumps({**rng, "python": [3, [2**80] + rng["python"][1][1:], None]})}, {}),
        "no members": ({"pool": json.dumps({**pool, "members": {}})}, {}),
        "score 1.5": ({"pool": json.dumps({**pool, "members": {k: {**m, "score": 1.5}
                                                                for k, m in pool["members"].items()}})}, {}),
        "pool rng": ({"pool": json.dumps({**pool, "rng": {**pool["rng"], "state": {"state": 2**200, "inc": 1}}})},
                     {}),
    }
    for case, (meta_edit, tensor_edit) in cases.items():
        final.write_bytes(pristine)
        forge(final, final, meta=meta_edit, tensors=tensor_edit)
        err = refused(train.main, [f"resume={run}", "total_steps=64"], capsys, "cannot resume")
        assert case and "does not fit this run" in err


def test_a_damaged_events_file_or_config_in_a_run_folder_is_one_line_for_compare(cartpole, tmp_path, capsys):
    import shutil
    import struct

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    run = tmp_path / "run"
    shutil.copytree(cartpole, run)
    for events in run.glob("events.out.tfevents.*"):
        events.unlink()
    header = struct.pack("<Q", 2**40)
    (run / "events.out.tfevents.1.host.1.0").write_bytes(header + struct.pack("<I", masked_crc32c(header)))
    refused(compare.main, [f"runs=[{run}]", f"out={tmp_path / 'out'}"], capsys,
            "its TensorBoard events cannot be read")
    (run / "events.out.tfevents.1.host.1.0").unlink()
    (run / "config.yaml").write_text("[" * 200000)
    refused(compare.main, [f"runs=[{run}]", f"out={tmp_path / 'out'}"], capsys, "is not valid YAML")
