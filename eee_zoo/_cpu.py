"""What a CPU result's floats depend on besides the code and the seed: the processor, the instruction set torch's
kernels dispatch to (ATen's, oneDNN's, MKL's) and the thread count. Each changes how sums are split and ordered, so
the same run on another CPU, or with another thread count, differs in the last bits, and a 100-step attack amplifies
that into other images broken (see the README's "Same seed, same result" and ``benchmarks/reproducibility/``)."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch

__all__ = ["arithmetic_text", "cpu_arithmetic", "cpu_name"]


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
    """:func:`cpu_arithmetic`'s record as one phrase: ``"Intel(R) Xeon(R) Processor, AVX512, 2 thread(s)"``."""
    return f"{arithmetic['cpu']}, {arithmetic['cpu_capability']}, {arithmetic['threads']} thread(s)"
