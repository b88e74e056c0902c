"""Smaller, faster agents from a trained one:

    python -m rlkit.export agent=doom-basic to=onnx                     # exports/doom-basic.onnx
    python -m rlkit.export agent=doom-basic to=int8 out=doom-int8.onnx
    python -m rlkit.export agent=pong to=pruned keep=0.5 finetune_steps=100000
    python -m rlkit.export agent=connect-four to=pruned keep=1 keep_units=0.16 finetune=distill
    python -m rlkit.export agent=connect-four to=distilled channels=[32,32] hidden=64
    python -m rlkit.export agent=doom-basic to=all measure=true         # every format, and a table of them

`agent`: a shipped agent's name, a run folder or a checkpoint file. `to`:
- `onnx`: the policy as an ONNX graph (observation and, for board games, legal-action mask in;
  logits and value out), checked against PyTorch on the agent's own observations before it is kept;
- `int8`: that graph with int8 weights and activations (ONNX Runtime's static quantization,
  calibrated on the agent's own observations);
- `pruned`: `keep` of every convolution's channels and `keep_units` of the dense layer's units
  (default: `keep`) kept (a smaller dense network),
  then trained `finetune_steps` more with the agent's own algorithm and settings (`finetune=rl`),
  or taught the unpruned agent's outputs as `distilled` is (`finetune=distill`: `samples`, `epochs`);
- `distilled`: a student network (`channels`: widths, their number its depth; `hidden`; by default
  half the teacher's) taught the agent's action distributions over `samples` observations of its
  own games, for `epochs` passes;
- `all`: each of these into the folder `out`.
ONNX files are agents (`rlkit.watch agent=doom.onnx`, `rlkit.load_agent`, `rlkit.play`,
`rlkit.arena`); pruned and distilled ones are agent folders. `measure=true` scores and times the
agent as trained and what was made (with `to=int8`, the fp32 ONNX graph it came from as well)
and writes the table beside them: `out/results.md` for `to=all`, else `OUT-results.md`
(rlkit.export_bench)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf

from rlkit import checkpoint, provenance
from rlkit.agent import load_agent, spaces_of
from rlkit.config import RunError, UsageError, cli, command_options
from rlkit.onnx_agent import CALIBRATION, agreement, load_onnx, quantize, write_onnx
from rlkit.shrink import distill, encoder_of, games, parameters, prune, student_config
from rlkit.watch import resolve

FORMATS = ("onnx", "int8", "pruned", "distilled", "all")
FINETUNE = ("rl", "distill")
DEFAULTS = {"agent": "", "to": "", "out": "", "keep": 0.5, "keep_units": 0.0, "finetune_steps": 50_000,
            "channels": [], "hidden": 0, "samples": 20_000, "epochs": 10, "seed": 0, "measure": False,
            "episodes": 100, "games": 200, "threads": 1, "deterministic": False, "progress": True, "finetune": "rl",
            "calls": 1000}
RANGES = {"keep": (0.01, 1.0), "keep_units": (0.0, 1.0), "finetune_steps": (0, 10**9), "hidden": (0, 16384),
          "samples": (64, 10**7), "epochs": (1, 10**4), "seed": (0, 2**31 - 1), "episodes": (1, 10**5),
          "games": (2, 10**5), "threads": (1, 256), "calls": (1, 10**6)}
TOLERANCE = 1e-4  # ONNX against PyTorch: logits and values, relative to their size where that is over 1


def name_of(path: Path) -> str:
    path = path.resolve()
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.name if path.is_dir() else path.stem


def default_out(name: str, to: str) -> Path:
    return Path("exports") / (f"{name}.onnx" if to == "onnx" else f"{name}-int8.onnx" if to == "int8"
                              else name if to == "all" else f"{name}-{to}")


def write_agent(folder: Path, policy, cfg, spaces: dict, card: str) -> Path:
    """An agent folder (agent.safetensors, config.yaml, README.md) for a network without a run."""
    with tempfile.TemporaryDirectory() as tmp:
        full = checkpoint.save(Path(tmp) / "full.safetensors", policy, torch.optim.Adam(policy.parameters()), cfg,
                               spaces, {"step": 0})
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint.export(full, folder / "agent.safetensors")
    return finish_folder(folder, cfg, card)


def finish_folder(folder: Path, cfg, card: str) -> Path:
    OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    (folder / "README.md").write_text(card)
    return folder


def card(title: str, source: str, argv: list[str], lines: list[str]) -> str:
    body = "\n".join(f"- {line}" for line in lines)
    return (f"# {title}\n\nMade from `{source}` by\n\n    python -m rlkit.export {' '.join(argv)}\n\n{body}\n"
            f"- made: {provenance.stamp()}\n")


def export_onnx(agent, spaces, obs, masks, out: Path) -> dict:
    write_onnx(agent.policy, agent.cfg, spaces, obs, masks, out)
    check = agreement(agent.policy, load_onnx(out)[0], obs, masks)
    with torch.inference_mode():
        logits, value = agent.policy(torch.as_tensor(obs[:256]),
                                     None if masks is None else torch.as_tensor(masks[:256]))
    legal = logits[logits > -1e8]
    if check["logits"] > TOLERANCE * max(1.0, float(legal.abs().max())) or \
            check["value"] > TOLERANCE * max(1.0, float(value.abs().max())):
        out.unlink()
        raise RunError(f"the ONNX graph's outputs differ from PyTorch's by {check['logits']:.2g} (logits) and "
                       f"{check['value']:.2g} (value) on the agent's own observations; nothing was written")
    return check


def export_pruned(agent, spaces, opts, obs, masks, out: Path, argv, source: str) -> dict:
    units = opts["keep_units"] or opts["keep"]
    small, small_cfg = prune(agent.policy, agent.cfg, opts["keep"], (agent.observation_space, agent.action_space),
                             units)
    lines = [f"structured pruning: keep={opts['keep']:g} of each convolution's channels and {units:g} of the dense "
             f"layer's units, "
             f"{parameters(agent.policy):,} -> {parameters(small):,} parameters"]
    if opts["finetune"] == "distill":  # taught the unpruned agent's outputs, as a student is
        small, stats = distill(agent.policy, small_cfg, (agent.observation_space, agent.action_space), obs, masks,
                               opts["epochs"], seed=opts["seed"], progress=opts["progress"], student=small)
        lines.append(f"fine-tuned by distillation from the unpruned agent: {len(obs):,} observations of its own games, "
                     f"{opts['epochs']} epochs; held out: KL {stats['kl']:.4f}, greedy action agrees on "
                     f"{stats['greedy_agree']:.1%}")
        write_agent(out, small, small_cfg, spaces, card(f"{source}, pruned", source, argv, lines))
        return {"parameters": parameters(small), **stats}
    if not opts["finetune_steps"]:
        write_agent(out, small, small_cfg, spaces, card(f"{source}, pruned", source, argv, lines + ["not fine-tuned"]))
        return {"parameters": parameters(small)}
    from rlkit.train import train

    run_cfg = OmegaConf.merge(small_cfg, {"total_steps": opts["finetune_steps"], "run_dir": str(out / "run"),
                                          "resume": None, "minutes": 0.0, "video_every": 0, "seed": opts["seed"],
                                          "amp": "auto",  # not the agent's own: bf16 is slow on CPUs without bf16 units
                                          "progress": opts["progress"]})
    run_dir, stopped = train(run_cfg, weights={k: v.detach().clone() for k, v in small.state_dict().items()})
    if stopped:
        raise RunError(f"fine-tuning stopped early; its run is in {run_dir} (continue it with "
                       f"python -m rlkit.train resume={run_dir})")
    checkpoint.export(run_dir / "checkpoints" / "final.safetensors", out / "agent.safetensors")
    lines.append(f"fine-tuned {opts['finetune_steps']:,} agent steps with algo={run_cfg.algo.name} (its run: run/)")
    finish_folder(out, run_cfg, card(f"{source}, pruned", source, argv, lines))
    return {"parameters": parameters(small)}


def export_distilled(agent, spaces, opts, obs, masks, out: Path, argv, source: str) -> dict:
    cfg = student_config(agent.policy, agent.cfg, opts["channels"] or None, opts["hidden"] or None)
    student, stats = distill(agent.policy, cfg, (agent.observation_space, agent.action_space), obs, masks,
                             opts["epochs"], seed=opts["seed"], progress=opts["progress"])
    lines = [f"student: channels={list(cfg.model.channels)} hidden={cfg.model.hidden}, "
             f"{parameters(agent.policy):,} -> {parameters(student):,} parameters",
             f"taught on {len(obs):,} observations of the teacher's own games, {opts['epochs']} epochs; held out: "
             f"KL {stats['kl']:.4f}, greedy action agrees on {stats['greedy_agree']:.1%}"]
    write_agent(out, student, cfg, spaces, card(f"{source}, distilled", source, argv, lines))
    return {"parameters": parameters(student), **stats}


def check_options(opts) -> None:
    if opts["to"] not in FORMATS:
        raise UsageError(f"give to=FORMAT, one of: {', '.join(FORMATS)}")
    if opts["to"] in ("onnx", "int8") and opts["out"] and not opts["out"].endswith(".onnx"):
        raise UsageError(f"to={opts['to']} writes one ONNX file: out= must end in .onnx, got {opts['out']!r}")
    bad = [c for c in opts["channels"] if not (isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 1024)]
    if bad or len(opts["channels"]) > 8:
        raise UsageError(f"channels must be a list of up to 8 widths from 1 to 1024, got {opts['channels']!r}")


def main(argv: list[str]) -> dict:
    opts, _ = command_options(argv, DEFAULTS, {"finetune": FINETUNE}, ranges=RANGES)
    check_options(opts)
    src = resolve(opts["agent"])
    if src.suffix == ".onnx":
        raise UsageError(f"agent={opts['agent']} is already exported; export from its PyTorch agent (a shipped "
                         f"agent's name, a run folder or a checkpoint file)")
    agent, to, name = load_agent(src), opts["to"], name_of(src)
    if to != "pruned" and agent.policy.recurrent:
        raise UsageError(f"to={to} takes agents without memory (model.core=none); {name} has "
                         f"model.core={agent.cfg.model.core}")
    if to in ("pruned", "distilled", "all"):
        encoder_of(agent.policy, "pruned" if to == "all" else to)
    out = Path(opts["out"] or default_out(name, to))
    if out.exists():
        raise UsageError(f"out={out} already exists; choose another path (nothing was changed)")
    spaces = spaces_of(agent.observation_space, agent.action_space)
    taught = to in ("distilled", "all") or opts["finetune"] == "distill"
    obs, masks = games(agent, opts["samples"] if taught else min(opts["samples"], 2 * CALIBRATION),
                       opts["seed"], opts["progress"])
    made, folder = {}, out if to == "all" else None
    try:
        if to in ("onnx", "int8", "all"):
            onnx_file = folder / "agent.onnx" if folder else out if to == "onnx" else fp32_beside(out)
            made["onnx"] = export_onnx(agent, spaces, obs, masks, onnx_file)
            if to in ("int8", "all"):
                cal = min(CALIBRATION, len(obs) // 2)  # the rest are held out for the check
                int8 = quantize(onnx_file, obs[:cal], None if masks is None else masks[:cal],
                                folder / "agent-int8.onnx" if folder else out)
                made["int8"] = agreement(agent.policy, load_onnx(int8)[0], obs[cal:],
                                         None if masks is None else masks[cal:])
        if to in ("pruned", "all"):
            made["pruned"] = export_pruned(agent, spaces, opts, obs, masks, folder / "pruned" if folder else out,
                                           argv, name)
        if to in ("distilled", "all"):
            made["distilled"] = export_distilled(agent, spaces, opts, obs, masks,
                                                 folder / "distilled" if folder else out, argv, name)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        fp32_beside(out).unlink(missing_ok=True)
        raise
    for kind, stats in made.items():
        print(f"{kind}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v:,}"
                                      for k, v in stats.items()))
    print(f"wrote {out}")
    try:
        if opts["measure"]:
            from rlkit.export_bench import measure

            files = {"onnx": folder / "agent.onnx", "int8": folder / "agent-int8.onnx", "pruned": folder / "pruned",
                     "distilled": folder / "distilled"} if folder else \
                {"onnx": fp32_beside(out), "int8": out} if to == "int8" else {to: out}
            print(measure(src, files, opts, made, folder / "results.md" if folder else out.with_name(
                f"{out.stem}-results.md")))
    finally:
        fp32_beside(out).unlink(missing_ok=True)  # to=int8: the fp32 graph it was made from
    return made


def fp32_beside(out: Path) -> Path:
    """Where `to=int8` keeps the fp32 graph it quantizes while it works."""
    return out.with_name(f"{out.stem}-fp32.tmp.onnx")


if __name__ == "__main__":
    cli(main)
