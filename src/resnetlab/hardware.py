"""What the CPU offers, decided in one place: training, the benchmarks and deployment ask here (and
tests monkeypatch these functions to play the other kind of machine)."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

from .errors import UsageError

# The lscpu flags that choose a fast path, in the order they are printed beside every measurement.
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as ``lscpu`` shows them (empty where /proc/cpuinfo does not exist)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA) without its VNNI kernels, and below its bf16 and its AMX
# kernels, lowest first.
_WITHOUT_VNNI = ("SSE41", "AVX", "AVX2", "AVX512_CORE")
_BELOW_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
_BELOW_AMX = (*_BELOW_BF16, "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16")


def onednn_cap() -> str | None:
    """The instruction set oneDNN is capped at by ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``), if any:
    the convolutions then run without the kernels above it, whatever the CPU has."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return cap if cap and cap != "DEFAULT" else None


def native_bf16() -> bool:
    """bf16 arithmetic in hardware (AVX512-BF16 or AMX) that oneDNN may use. ``torch.ops.mkldnn.
    _is_mkldnn_bf16_supported()`` is true on any AVX-512 CPU, where bf16 is emulated and slower than
    fp32: it is not asked. A oneDNN cap below AVX512_CORE_BF16 leaves bf16 emulated: not native."""
    if onednn_cap() in _BELOW_BF16:
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def has_amx() -> bool:
    """AMX tiles that oneDNN may use (not capped below AVX512_CORE_AMX)."""
    return bool(torch.cpu._is_amx_tile_supported()) and onednn_cap() not in _BELOW_AMX


def has_vnni() -> bool:
    """int8 dot products in hardware (AVX512-VNNI or AVX-VNNI) that the runtimes' oneDNN may use: without
    them, int8 weights must be quantized with a reduced range (7 bits) to avoid saturating 16-bit
    intermediate sums. A oneDNN cap without VNNI (e.g. AVX2) leaves kernels that saturate."""
    if onednn_cap() in _WITHOUT_VNNI:
        return False
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def describe() -> str:
    """One line for every measurement: the CPU's name and the flags that matter."""
    flags = [f for f in FLAGS if f in cpu_flags()]
    cap, capability = onednn_cap(), os.environ.get("ATEN_CPU_CAPABILITY")  # the latter: ATen's and inductor's
    limits = [f"oneDNN capped at {cap}"] if cap else []
    limits += [f"ATEN_CPU_CAPABILITY={capability}"] if capability else []
    return f"{cpu_name()} [{', '.join([' '.join(flags) or 'no AVX2', *limits])}]"


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``; a one-line error when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to this PyTorch build; use --device cpu or auto")
    return torch.device(name)


# The fast training path per CPU kind: (precision, torch.compile, channels-last, the reason the log prints).
# Each row is the fastest path measured on that kind (benchmarks/bench_train.py; docs/performance.md).
FAST_PATHS: dict[str, tuple[str, bool, bool, str]] = {
    "amx": ("bf16", True, True, "AMX: native bf16, the fastest measured path (docs/performance.md)"),
    "avx512_bf16": ("bf16", True, True, "AVX512-BF16: native bf16 (docs/performance.md)"),
    "other": ("fp32", True, False, "no native bf16 (emulated, slower than fp32): fp32 + compile (docs/performance.md)"),
}


def cpu_kind() -> str:
    """``amx``, ``avx512_bf16`` (native bf16 without AMX) or ``other``: the row of ``FAST_PATHS``."""
    if not native_bf16():
        return "other"
    return "amx" if has_amx() else "avx512_bf16"


def matmul_weight_grad(precision: str, device: torch.device) -> bool:
    """Whether training makes the small-map 3×3 convolutions ``nn.conv.MatmulGradConv2d``: bf16 on AMX, where
    oneDNN's weight gradient at ≤ 7×7 positions is slow (measured; no gain found elsewhere)."""
    return precision == "bf16" and device.type == "cpu" and has_amx()


def fast_path(device: torch.device) -> tuple[str, bool, bool, str]:
    """(precision, compile, channels_last, reason) that ``--precision auto`` chooses on ``device``."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return ("bf16" if bf16 else "fp32", True, True, f"CUDA {'with' if bf16 else 'without'} bf16")
    return FAST_PATHS[cpu_kind()]
