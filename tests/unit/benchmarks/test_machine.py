"""The benchmark's description of the machine it ran on, and its model-only ceiling."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.host import machine
from benchmarks.pipeline import model_ceiling

# Two cores' lines as Linux writes them; only the first core's are read.
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_tile amx_int8 avx_vnni

processor\t: 1
model name\t: Another Processor
flags\t\t: fpu sse2
"""


def test_the_cpu_and_its_int8_instructions_come_from_the_first_core(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    found = machine(cpuinfo)
    assert found["cpu"] == "Intel(R) Xeon(R) Processor"
    assert found["int8_instructions"] == ["avx2", "avx512_vnni", "avx_vnni", "amx_int8"]


def test_a_cpu_without_them_lists_none(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx\n")
    assert machine(cpuinfo)["int8_instructions"] == []


class RememberingModel:
    """Scores a text it has not seen in ``cost_s``, one it has seen for nothing (as the
    encoder's memory of the token ids it embedded does)."""

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.seen: set[str] = set()

    def score(self, texts: list[str]) -> list[float]:
        new = [text for text in texts if text not in self.seen]
        time.sleep(self.cost_s * len(new))
        self.seen.update(new)
        return [0.0] * len(texts)


def test_the_ceiling_times_only_texts_the_model_has_not_seen() -> None:
    model = RememberingModel(cost_s=0.002)  # 500 new texts a second at most
    rate = model_ceiling(model, [f"line {i}" for i in range(200)], batch=50)  # type: ignore[arg-type]
    # Counting the warm-up's 50 texts again, free, read about 650 a second.
    assert 400 < rate <= 500
