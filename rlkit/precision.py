"""Mixed precision, `amp=auto|bf16|fp16|off`: the dtype the policy's encoder is autocast to on
this device, and the gradient scaler fp16 needs. The cores and heads stay fp32 (rlkit.nets).

`auto` autocasts a convolutional encoder (the CNNs on frames and boards, IMPALA's): to bf16 where the
hardware multiplies in it (CUDA GPUs with native bf16; CPUs with AMX or AVX-512 BF16), to fp16 with
a gradient scaler on CUDA GPUs without bf16. Everything else runs in fp32: on a CPU without bf16
units bf16 is emulated and slower, and the small MLP and Transformer encoders ran slower in bf16
even on a CPU with AMX (BENCHMARKS.md). Older configs' `amp: true` and
`amp: false` read as `bf16` and `off` (rlkit.schema.ALIASES)."""
from __future__ import annotations

import torch

from rlkit.encoders import BoardCNN, ImpalaCNN, NatureCNN
from rlkit.errors import UsageError

CONVOLUTIONAL = (NatureCNN, ImpalaCNN, BoardCNN)  # the encoders `auto` autocasts

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


def cpu_bf16() -> str | None:
    """The CPU's bf16 units by name (AMX, AVX-512 BF16), or None."""
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    return "AVX-512 BF16" if torch.cpu._is_avx512_bf16_supported() else None


def check(amp: str, device: torch.device) -> None:
    """A precision the device cannot run is a UsageError."""
    if amp == "fp16" and device.type != "cuda":
        raise UsageError(f"amp=fp16 runs on CUDA (with a gradient scaler); on {device.type} choose from: "
                         f"auto, bf16, off")


def choose(amp: str, device: torch.device, encoder: torch.nn.Module) -> tuple[str, str]:
    """(`bf16`, `fp16` or `off`, why) for `amp` on `device` with this encoder."""
    check(amp, device)
    if amp != "auto":
        return amp, "asked for"
    if not isinstance(encoder, CONVOLUTIONAL):
        return "off", f"a {type(encoder).__name__} encoder: auto autocasts only convolutional ones"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", f"{name} has bf16"
        return "fp16", f"{name} has no bf16; fp16 with a gradient scaler"
    if device.type == "cpu":
        units = cpu_bf16()
        return ("bf16", f"this CPU has {units}") if units else ("off", "this CPU has no bf16 units")
    return "off", f"not chosen automatically on {device.type}"


def name(policy: torch.nn.Module) -> str:
    """The precision `policy`'s encoder runs at: bf16, fp16 or fp32."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(policy.amp_dtype, "fp32")


def apply(policy: torch.nn.Module, amp: str, device: torch.device) -> str:
    """Set `policy` to run at `amp`'s precision on `device`; returns the line that says which and why."""
    chosen, why = choose(amp, device, policy.encoder)
    policy.amp_dtype = DTYPES[chosen]
    policy.grad_scaler = torch.amp.GradScaler("cuda") if chosen == "fp16" else None
    what = "fp32" if chosen == "off" else f"{chosen} autocast of the encoder"
    return f"precision: {what} ({why}; amp={amp})"
