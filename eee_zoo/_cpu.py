"""What a CPU result's floats depend on besides the code and the seed: the processor, the instruction set torch's
kernels dispatch to (ATen's, oneDNN's, MKL's), the thread count and the model's memory layout (``channels_last``
convolutions sum in another order). Each changes how sums are split and ordered, so the same run on another CPU,
with another thread count or layout, differs in the last bits, and a 100-step attack amplifies that into other
images broken (see the README's "Same seed, same result" and ``benchmarks/reproducibility/``)."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch

__all__ = ["arithmetic_text", "cpu_arithmetic", "cpu_name", "layout_record", "session_record"]


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what :func:`platform.processor` says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_arithmetic() -> dict[str, str]:
    """``{"cpu", "cpu_capability", "threads"}``: the processor, the instruction set ATen dispatches to
    (``AVX512``, ``AVX2``, ...; ``ATEN_CPU_CAPABILITY`` lowers it) and torch's intra-op thread count."""
    return {
        "cpu": cpu_name(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "threads": str(torch.get_num_threads()),
    }


def layout_record(model: torch.nn.Module) -> dict[str, str]:
    """``{"layout": "channels_last"}`` for a model whose convolutions are stored NHWC
    (``model.to(memory_format=torch.channels_last)``), else ``{}``: PyTorch's default layout, unrecorded, so that
    records from before the option read as they did."""
    for p in model.parameters():
        if p.dim() == 4 and p.shape[2] * p.shape[3] > 1:  # the first spatial kernel (a 1x1 one is both layouts)
            nhwc = p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
            return {"layout": "channels_last"} if nhwc else {}
    return {}


def session_record(device: torch.device, model: torch.nn.Module) -> dict[str, str]:
    """Where and how one session attacked: :func:`device_record`, :func:`cpu_arithmetic`, :func:`layout_record`."""
    return {**device_record(device), **cpu_arithmetic(), **layout_record(model)}


def session_text(arithmetic: dict[str, str]) -> str:
    """Where one session of a run attacked, from its record (``{"device", "gpu"?, "cpu", ...}``):
    ``"cuda:0 (NVIDIA H200): Intel(R) Xeon(R) Processor, AVX512, 16 thread(s)"``."""
    return f"{device_text(arithmetic)}: {arithmetic_text(arithmetic)}"


def device_record(device: torch.device) -> dict[str, str]:
    """``{"device"}``, with ``"gpu"`` (its name) on a CUDA device: the device half of a session's record."""
    gpu = {"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}
    return {"device": str(device), **gpu}


def device_text(arithmetic: dict[str, str]) -> str:
    """The device of a session's record, with the GPU's name where it was recorded (since 2026-12-04)."""
    return f"{arithmetic['device']} ({arithmetic['gpu']})" if arithmetic.get("gpu") else arithmetic["device"]


def arithmetic_text(arithmetic: dict[str, str]) -> str:
    """:func:`cpu_arithmetic`'s record as one phrase: ``"Intel(R) Xeon(R) Processor, AVX512, 2 thread(s)"``, with
    ``", channels_last"`` where the model was stored so."""
    layout = f", {arithmetic['layout']}" if arithmetic.get("layout") else ""
    return f"{arithmetic['cpu']}, {arithmetic['cpu_capability']}, {arithmetic['threads']} thread(s){layout}"
