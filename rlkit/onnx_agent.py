"""Agents as ONNX graphs: written by `python -m rlkit.export to=onnx|int8`, played by every
command that takes an agent (`rlkit.load_agent("doom.onnx")`, `rlkit.watch agent=doom.onnx`).

The graph takes `obs` [B, *shape] in the dtype the game gives (frames stay uint8; the scaling to
[0, 1] is inside the graph) and, for board games, `mask` [B, actions] (bool); it gives `logits`
[B, actions] (illegal actions at -1e9) and `value` [B]. The agent's config and spaces ride in
the model's metadata (`rlkit`, JSON), so an exported file is an agent on its own.

An ONNX file is data, loaded as every rlkit file is: parsed as protobuf, its tensors held in
the file itself (a graph that points to external data, which would read other files, is
refused), its config and spaces validated by the same rules as a checkpoint's, and its inputs
and outputs checked against them; ONNX Runtime then runs it from bytes on its built-in CPU
operators, with no custom-operator library."""
from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlkit.errors import UsageError
from rlkit.nets import Memoryless

FORMAT = "rlkit-onnx-1"
MAX_BYTES = 1 << 30
DTYPES = {"uint8": 2, "int8": 3, "bool": 9, "float32": 1, "float64": 11, "int32": 6, "int64": 7}  # onnx.TensorProto
INSTALL = "pip install -e '.[export]' (onnx, onnxruntime, onnxscript)"


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise UsageError(f"ONNX export and ONNX agents need {module}: {INSTALL}") from None


class _Graph(nn.Module):
    """What is exported: a memoryless policy as (obs[, mask]) -> (logits, value)."""

    def __init__(self, policy, masked: bool):
        super().__init__()
        self.policy, self.masked = policy, masked

    def forward(self, obs, mask=None):
        return self.policy(obs, mask if self.masked else None)


def write_onnx(policy, cfg, spaces: dict, obs: np.ndarray, masks: np.ndarray | None, path: Path) -> Path:
    """The policy as an ONNX graph with the agent's config and spaces in its metadata; `obs`
    (and `masks`) are example inputs (the agent's own observations)."""
    onnx = _need("onnx")
    _need("onnxscript")
    from omegaconf import OmegaConf

    masked = masks is not None
    example = (torch.as_tensor(obs[:2]),) + ((torch.as_tensor(masks[:2]),) if masked else ())
    names = ["obs", "mask"] if masked else ["obs"]
    batch = torch.export.Dim("batch", min=1, max=65536)
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR  # "torchvision is not installed" notes
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_Graph(policy.eval(), masked), example, input_names=names,
                                    output_names=["logits", "value"], dynamo=True, verbose=False,
                                    dynamic_shapes=tuple({0: batch} for _ in names), external_data=False)
        program.save(os.path.join(tmp, "m.onnx"))
        model = onnx.load(os.path.join(tmp, "m.onnx"))
    quiet.setLevel(level)
    meta = {"format": FORMAT, "config": OmegaConf.to_container(cfg, resolve=True), "spaces": spaces}
    return save_with_meta(model, meta, path)


def save_with_meta(model, meta: dict, path: Path) -> Path:
    """`model` with rlkit's metadata, written atomically (temporary file, then rename)."""
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "rlkit", json.dumps(meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)
    return path


WEIGHTED = ("Conv", "Gemm", "MatMul")
CALIBRATION = 2048  # observations int8 is calibrated on (rlkit.export holds as many again out to check it)


def ends(graph) -> list[str]:
    """The weighted layers that stay fp32 in an int8 agent: the first (it reads the raw input,
    where a small object such as Pong's ball is a few pixels) and the heads (the last weighted
    layers before an output: logits close together would round to the same step). They hold a
    small share of the weights; the layers between hold the rest."""
    weighted = [n for n in graph.node if n.op_type in WEIGHTED]
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def feeds_weighted(node) -> bool:
        todo, seen = list(node.output), set()
        while todo:
            for user in consumers.get(todo.pop(), []):
                if user.op_type in WEIGHTED:
                    return True
                if id(user) not in seen:
                    seen.add(id(user))
                    todo.extend(user.output)
        return False

    return list(dict.fromkeys([weighted[0].name, *(n.name for n in weighted if not feeds_weighted(n))]))


def quantize(fp32: Path, obs: np.ndarray, masks: np.ndarray | None, path: Path) -> Path:
    """int8 weights and activations (ONNX Runtime's static QDQ quantization, per-channel weights),
    calibrated on the agent's own observations, but for the first layer and the heads (`ends`);
    the metadata of `fp32` is kept."""
    onnx = _need("onnx")
    ort_q = _need("onnxruntime.quantization").quantization
    from onnxruntime.quantization.shape_inference import quant_pre_process

    meta = read_meta(onnx.load(str(fp32)), fp32)

    class Reader(ort_q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"obs": obs[i:i + 64], **({"mask": masks[i:i + 64]} if masks is not None else {})}
                                 for i in range(0, len(obs), 64)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre, out = os.path.join(tmp, "pre.onnx"), os.path.join(tmp, "q.onnx")
        quant_pre_process(str(fp32), pre, skip_symbolic_shape=True)
        ort_q.quantize_static(pre, out, Reader(), quant_format=ort_q.QuantFormat.QDQ, per_channel=True,
                              activation_type=ort_q.QuantType.QUInt8, weight_type=ort_q.QuantType.QInt8,
                              calibrate_method=ort_q.CalibrationMethod.MinMax,
                              nodes_to_exclude=ends(onnx.load(pre).graph))
        model = onnx.load(out)
    return save_with_meta(model, {**meta, "int8": True}, path)


def read_meta(model, path) -> dict:
    props = {p.key: p.value for p in model.metadata_props}
    try:
        meta = json.loads(props.get("rlkit", "null"))
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError(f"{path} is not an rlkit ONNX agent (no {FORMAT!r} metadata)")
    return meta


def _tensors(graph):
    """Every tensor a graph holds (initializers, constants, subgraphs'), to check where its data lives."""
    yield from graph.initializer
    yield from (s.values for s in graph.sparse_initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


class OnnxPolicy(Memoryless, nn.Module):
    """An ONNX graph behind the policy seam: (obs, mask) -> (logits, value) as torch tensors."""

    def __init__(self, session, masked: bool, num_actions: int):
        super().__init__()
        self.session, self.masked, self.num_actions = session, masked, num_actions

    def forward(self, obs, action_mask=None):
        feeds = {"obs": obs.cpu().numpy()}
        if self.masked:
            feeds["mask"] = np.ones((obs.shape[0], self.num_actions), bool) if action_mask is None \
                else action_mask.cpu().numpy().astype(bool)
        logits, value = self.session.run(["logits", "value"], feeds)
        return torch.from_numpy(logits).to(obs.device), torch.from_numpy(value).to(obs.device)


def session(data: bytes, threads: int = 0):
    ort = _need("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # Idle worker threads sleep instead of spinning: an agent shares the CPU with its game (inside
    # training's rollouts, spinning threads took the cores the envs step on).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def load_onnx(path: Path, threads: int = 0) -> tuple[OnnxPolicy, dict, dict]:
    """An exported agent: (policy, config, spaces), each checked before anything runs (see the module notes)."""
    from rlkit.checkpoint import check_spaces
    from rlkit.stored import stored_config

    onnx = _need("onnx")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no ONNX agent at {path}")
    if path.stat().st_size > MAX_BYTES:
        raise UsageError(f"{path} is larger than any agent rlkit exports ({MAX_BYTES >> 20} MiB)")
    data = path.read_bytes()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf raises several types for damaged files
        model = None
    if model is None or not model.graph.node:
        raise UsageError(f"{path} is not a valid ONNX file")
    if any(t.data_location == onnx.TensorProto.EXTERNAL or t.external_data for t in _tensors(model.graph)):
        raise UsageError(f"{path} points to data outside itself; an rlkit agent holds all of its weights")
    meta = read_meta(model, path)
    config, _ = stored_config(meta.get("config"), str(path))
    spaces = check_spaces(meta.get("spaces"), path)
    if config.model.core != "none":
        raise UsageError(f"{path}: an ONNX agent has no memory, but its config says model.core={config.model.core}")
    masked = config.env.family == "board"
    want = {"obs": (DTYPES[spaces["obs_dtype"]], len(spaces["obs_shape"]) + 1)}
    if masked:
        want["mask"] = (DTYPES["bool"], 2)
    have = {i.name: (i.type.tensor_type.elem_type, len(i.type.tensor_type.shape.dim)) for i in model.graph.input}
    outputs = [o.name for o in model.graph.output]
    if have != want or outputs != ["logits", "value"]:
        raise UsageError(f"{path}: its graph takes {sorted(have)} and gives {outputs}, not what its config's "
                         f"game needs ({sorted(want)} -> logits, value)")
    try:
        run = session(data, threads)
    except Exception as e:
        raise UsageError(f"{path}: ONNX Runtime cannot run it ({str(e).splitlines()[0][:160]})") from None
    return OnnxPolicy(run, masked, spaces["num_actions"]), config, spaces


def agreement(reference, other, obs: np.ndarray, masks: np.ndarray | None, batch: int = 256) -> dict:
    """How far `other`'s outputs are from `reference`'s on `obs`: the largest difference in
    logits (legal actions), in value, and the share of observations where the greedy action agrees."""
    dl = dv = 0.0
    same = 0
    for i in range(0, len(obs), batch):
        o = torch.as_tensor(obs[i:i + batch])
        m = None if masks is None else torch.as_tensor(masks[i:i + batch])
        with torch.inference_mode():
            (la, va), (lb, vb) = reference(o, m), other(o, m)
        legal = torch.ones_like(la, dtype=torch.bool) if m is None else m
        dl = max(dl, float((la - lb).abs()[legal].max()))
        dv = max(dv, float((va - vb).abs().max()))
        same += int((la.argmax(-1) == lb.argmax(-1)).sum())
    return {"logits": dl, "value": dv, "greedy_agree": same / len(obs), "checked": len(obs)}
