"""CPU per message by stage of the scorer, from its metrics (``warden bench``'s table).

The scorer reports CPU time by stage (``warden_scorer_stage_seconds_total{stage}``) and by
thread (``warden_thread_cpu_seconds{thread}``); two readings around a drain give microseconds
of CPU per message for each stage.
"""

from __future__ import annotations

from scorers.stages import INLINE_MODEL

STAGE_METRIC = "warden_scorer_stage_seconds_total"
THREAD_METRIC = "warden_thread_cpu_seconds"
# Stages timed on the event-loop thread and on the model thread (scorers.stages.StageClock).
LOOP_STAGES = (
    "decode",
    "redis",
    "shared_cache",
    INLINE_MODEL,
    "detectors",
    "encode",
    "produce",
    "ack",
    "metrics",
)
MODEL_STAGES = ("cache_lookup", "features", "encoder", "booster", "assemble", "verdicts")
# The rows of the per-stage table, in the order a message meets them.
STAGE_ROWS = (
    "fetch",
    "consume",
    "decode",
    "redis",
    "shared_cache",
    "cache_lookup",
    "features",
    "encoder",
    "booster",
    "assemble",
    "verdicts",
    "model_other",
    "detectors",
    "encode",
    "produce",
    "ack",
    "metrics",
    "other_threads",
)
# Shown below the table: already inside the stages above (the stage that triggered each one).
INCLUDED_ROWS = ("gc",)


def stage_costs(
    before: dict[str, float], after: dict[str, float], messages: int
) -> dict[str, float]:
    """Microseconds of CPU per message by stage, between two :meth:`Worker.cpu` readings.

    ``fetch`` is faust's consumer thread (aiokafka fetching and parsing records); ``consume``
    what the event-loop thread spent outside the timed stages (faust's per-event path, the
    producer's I/O, asyncio itself); ``encoder`` the model thread's share of the embedding plus
    the encoder's sessions (threads, or the encoder's own process) and any thread Python does not
    know (native pools);
    ``other_threads`` the rest (the metrics server); ``total`` the process's CPU, and
    ``outside_encoder`` the total less ``encoder``.
    """

    def spent(name: str) -> float:
        return max(0.0, after.get(name, 0.0) - before.get(name, 0.0))

    threads = {
        name.removeprefix("thread:"): spent(name)
        for name in {*before, *after}
        if name.startswith("thread:") and name != "thread:process"
    }
    process = spent("thread:process")
    main = threads.pop("main", 0.0)
    # The model's CPU: its thread's, and the batches it scored on the event loop (all cached).
    model = threads.pop("model", 0.0) + spent(INLINE_MODEL)
    # The encoder's session threads, in the scorer or in its encoder process.
    encoder_threads = threads.pop("encoder", 0.0) + threads.pop("encoder_process", 0.0)
    fetch = sum(v for k, v in threads.items() if "consumer" in k.lower())
    others = sum(v for k, v in threads.items() if "consumer" not in k.lower())
    native = max(0.0, process - main - model - encoder_threads - fetch - others)
    seconds = {name: spent(name) for name in (*LOOP_STAGES, *MODEL_STAGES)}
    seconds["fetch"] = fetch
    seconds["consume"] = max(0.0, main - sum(seconds[n] for n in LOOP_STAGES))
    seconds["model_other"] = max(0.0, model - sum(seconds[n] for n in MODEL_STAGES))
    seconds["encoder"] += encoder_threads + native
    seconds["other_threads"] = others
    per = 1e6 / max(1, messages)
    out = {name: round(per * seconds[name], 1) for name in STAGE_ROWS}
    for name in INCLUDED_ROWS:
        out[name] = round(per * spent(name), 1)
    out["total"] = round(per * process, 1)
    out["outside_encoder"] = round(per * (process - seconds["encoder"]), 1)
    return out


def stage_table(costs: dict[str, dict[str, float]]) -> str:
    """The per-stage costs of each workload as a Markdown table (us of CPU per message)."""
    workloads = list(costs)
    lines = [
        "| stage (us CPU / message) | " + " | ".join(workloads) + " |",
        "|---" * (len(workloads) + 1) + "|",
    ]
    for row in (*STAGE_ROWS, "outside_encoder", "total", *INCLUDED_ROWS):
        values = [costs[w].get(row, 0.0) for w in workloads]
        if any(values) or row in ("outside_encoder", "total"):
            cells = " | ".join(f"{v:,.1f}" for v in values)
            name = f"{row} (inside the rows above)" if row in INCLUDED_ROWS else row
            lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
