"""The machine a benchmark ran on, as its JSON records it."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# CPU flags of the int8 matrix instructions ONNX Runtime's kernels use where present. The
# model-only ceiling moves with them far more than the rest of the pipeline does (README,
# Benchmark), so a run's ratios are read with them.
INT8_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """The CPU's model name and flags, from the first core's lines of ``cpuinfo``."""
    name = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        # The first core's model name comes before its flags.
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return name, flags


def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    name, flags = cpu(cpuinfo)
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": name,
        "int8_instructions": [flag for flag in INT8_FLAGS if flag in flags],
        "gpu": gpu,
        "python": platform.python_version(),
    }
