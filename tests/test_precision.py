"""amp=auto|bf16|fp16|off: what each picks on which hardware, the older true/false spellings, and
fp16's gradient scaling."""
import pytest
import torch
from omegaconf import OmegaConf

from rlkit import precision
from rlkit.algos.common import step
from rlkit.config import UsageError, load_config
from rlkit.encoders import MLP, ImpalaCNN, NatureCNN, Transformer
from rlkit.schema import check_types

CPU = torch.device("cpu")
CNN, IMPALA = NatureCNN((4, 84, 84)), ImpalaCNN((4, 84, 84))


@pytest.mark.parametrize(("units", "chosen"), [("AMX", "bf16"), ("AVX-512 BF16", "bf16"), (None, "off")])
def test_auto_takes_bf16_only_on_a_cpu_with_bf16_units(monkeypatch, units, chosen):
    monkeypatch.setattr(precision, "cpu_bf16", lambda: units)
    assert precision.choose("auto", CPU, CNN)[0] == precision.choose("auto", CPU, IMPALA)[0] == chosen
    assert precision.choose("bf16", CPU, CNN)[0] == "bf16"  # asked for, it is given either way
    assert precision.choose("off", CPU, CNN)[0] == "off"


@pytest.mark.parametrize("encoder", [MLP((4,), 8), Transformer((4, 84, 84), dim=16, layers=1, heads=2)],
                         ids=["mlp", "transformer"])
def test_auto_keeps_the_encoders_that_bf16_slows_in_fp32(monkeypatch, encoder):
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "AMX")
    assert precision.choose("auto", CPU, encoder) == ("off", f"a {type(encoder).__name__} encoder: auto autocasts "
                                                             "only convolutional ones")
    assert precision.choose("bf16", CPU, encoder)[0] == "bf16"


def test_auto_on_cuda_takes_bf16_where_the_gpu_has_it_else_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    for native, chosen in [(True, "bf16"), (False, "fp16")]:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: n)
        assert precision.choose("auto", torch.device("cuda"), CNN) == (chosen, "a GPU has bf16" if native else
                                                                  "a GPU has no bf16; fp16 with a gradient scaler")


def test_apply_sets_the_dtype_and_a_scaler_only_for_fp16(monkeypatch):
    from rlkit.nets import make_policy

    cfg = load_config(["env=doom"])
    policy = make_policy(cfg.model, *_spaces())
    monkeypatch.setattr(precision, "cpu_bf16", lambda: None)
    assert precision.apply(policy, "auto", CPU) == "precision: fp32 (this CPU has no bf16 units; amp=auto)"
    assert policy.amp_dtype is None and policy.grad_scaler is None
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "AMX")
    assert precision.apply(policy, "auto", CPU) == \
        "precision: bf16 autocast of the encoder (this CPU has AMX; amp=auto)"
    assert policy.amp_dtype is torch.bfloat16 and policy.grad_scaler is None


def test_fp16_off_cuda_is_refused_in_one_line_before_the_run_folder_exists(tmp_path):
    from rlkit.train import main

    with pytest.raises(UsageError) as e:
        main(["env=cartpole", "amp=fp16", "device=cpu", f"run_dir={tmp_path / 'x'}"])
    assert str(e.value) == "amp=fp16 runs on CUDA (with a gradient scaler); on cpu choose from: auto, bf16, off"
    assert not (tmp_path / "x").exists()


def test_older_true_and_false_read_as_bf16_and_off():
    assert load_config(["amp=true"]).amp == "bf16"
    assert load_config(["amp=false"]).amp == "off"
    assert load_config([]).amp == "auto"
    base = load_config([])
    stored = OmegaConf.merge(base, {"amp": True})  # a run folder or agent saved before amp=auto
    check_types(stored, base)
    assert stored.amp == "bf16"


def test_the_run_says_which_precision_it_chose(train, monkeypatch, capsys):
    import json

    monkeypatch.setattr(precision, "cpu_bf16", lambda: "AMX")
    run = train("env=cartpole", "total_steps=256", "num_envs=2", "algo.num_steps=128")
    said = capsys.readouterr().out
    assert "precision: fp32 (a MLP encoder: auto autocasts only convolutional ones; amp=auto)" in said
    assert json.loads((run / "summary.json").read_text())["precision"] == "fp32"  # what rlkit.bench's rows say
    run = train("env=cartpole", "amp=bf16", "total_steps=256", "num_envs=2", "algo.num_steps=128", name="bf16")
    assert json.loads((run / "summary.json").read_text())["precision"] == "bf16"


def _spaces():
    import gymnasium as gym
    import numpy as np

    return gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(3)


def _scaled_step(loss_scale: float, size: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One step of a linear layer with a gradient scaler (on the CPU, as it would on CUDA), and
    the same step unscaled: (weights after it, weights after the plain step, the scale after)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1)
    plain = torch.nn.Linear(3, 1)
    plain.load_state_dict(layer.state_dict())
    x = size * torch.randn(8, 3)
    layer.grad_scaler = torch.amp.GradScaler("cpu", init_scale=loss_scale)
    plain.grad_scaler = None
    for net in (layer, plain):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        step(net, opt, net(x).pow(2).mean(), max_grad_norm=10.0)
    return layer.weight.detach(), plain.weight.detach(), layer.grad_scaler.get_scale()


def test_a_scaled_step_equals_the_plain_one_and_an_overflow_skips_it():
    scaled, plain, scale = _scaled_step(2.0**10)
    torch.testing.assert_close(scaled, plain)  # the scale is a power of two: unscaling is exact
    assert scale == 2.0**10  # no overflow: the scale stays until its growth interval
    torch.manual_seed(0)
    before = torch.nn.Linear(3, 1).weight.detach().clone()
    overflowed, plain, scale = _scaled_step(2.0**100, size=1e8)  # the scaled gradients overflow fp32
    torch.testing.assert_close(overflowed, before)  # so the step is skipped
    assert not torch.equal(plain, before) and scale == 2.0**99  # and the scale halved
