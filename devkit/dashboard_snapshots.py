"""``python -m devkit.dashboard_snapshots``: both Grafana dashboards drawn from a real run.

Starts a throwaway Prometheus that scrapes the services ``warden run`` starts (every 2 s, with
the repo's alert and recording rules, so the recording-rule panels and "Alerts firing" have
data), runs ``warden run`` on the local stack, and when its report is out draws
deploy/grafana/dashboards/chatwarden.json and outcomes.json over the replay into
docs/dashboard-ops.png and docs/dashboard-outcomes.png (devkit/dashboards.py), then stops
Prometheus and removes its data.

The run gets its own topics (``WARDEN_KAFKA__TOPIC_SUFFIX``, hence its own consumer groups) and
its own metrics ports, so it neither disturbs nor counts anyone else's run on the shared stack.
``warden run`` publishes the sample from its own process through ingest's publisher and serves
its ingest metrics (adapter ``replay``): the ops dashboard's Ingest row scrapes that process.

    python -m devkit.dashboard_snapshots [--speed 30] [--out docs]
    python -m devkit.dashboard_snapshots render DASHBOARD.json --prometheus URL \
        --start T --end T --png P
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import httpx

from core.errors import StackError, WardenError
from core.net import free_port
from core.settings import Settings
from devkit.dashboards import (
    DASHBOARDS,
    REPO,
    RULES,
    DashboardError,
    PanelReport,
    Prometheus,
    render,
    window_for,
)

SNAPSHOTS = {"chatwarden.json": "dashboard-ops.png", "outcomes.json": "dashboard-outcomes.png"}
REPORT_HEADER = "=== ChatWarden run report ==="
# The services `warden run` starts, by Prometheus job (the job names of deploy/prometheus); its
# own process is the ingest.
RUN_SERVICES = ("ingest", "scorer", "actioner", "explainer", "images")


def prometheus_config(targets: Mapping[str, str], scrape_s: float, rules: Sequence[Path]) -> str:
    """A Prometheus config (JSON is valid YAML) scraping each job's one ``host:port`` target and
    Prometheus itself, evaluating ``rules`` (absolute paths: relative ones would resolve from
    the config file's folder) as often as it scrapes."""
    jobs = [
        {"job_name": job, "static_configs": [{"targets": [target]}]}
        for job, target in targets.items()
    ]
    config = {
        "global": {"scrape_interval": f"{scrape_s:g}s", "evaluation_interval": f"{scrape_s:g}s"},
        "rule_files": [str(path.resolve()) for path in rules],
        "scrape_configs": jobs,
    }
    return json.dumps(config, indent=2)


class LocalPrometheus:
    """``prometheus`` on a free loopback port with its data in a temporary folder."""

    def __init__(self, binary: str = "prometheus") -> None:
        path = shutil.which(binary)
        if path is None:
            raise StackError(f"{binary} is not installed (Debian: apt-get install prometheus)")
        self.dir = Path(tempfile.mkdtemp(prefix="warden-dashboards-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "prometheus.log"
        self.args = [
            path,
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, config: str, timeout_s: float = 60) -> None:
        (self.dir / "prometheus.yml").write_text(config)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise StackError(f"prometheus not ready after {timeout_s:g} s (log: {self.log})")

    def stop(self, keep: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if keep:
            sys.stdout.write(f"Prometheus data kept: {' '.join(self.args)}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def run_pipeline(warden: Path, env: Mapping[str, str], speed: float) -> tuple[float, float, int]:
    """Run ``warden run`` with its output passed through; returns when the replay began, when
    the report came out (the services still up) and the exit code."""
    process = subprocess.Popen(  # noqa: S603
        [str(warden), "run", "--speed", f"{speed:g}"],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    began = reported = None
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("replaying ") and began is None:
            began = time.time()
        if line.strip() == REPORT_HEADER:
            reported = time.time()
    code = process.wait()
    if began is None or reported is None:
        raise DashboardError(f"warden run exited with {code} before its report; no snapshot")
    return began, reported, code


def snapshot(
    out_dir: Path, speed: float, scrape_s: float, lead_s: float = 20.0, keep: bool = False
) -> int:
    """The whole procedure of the module docstring; returns ``warden run``'s exit code."""
    warden = Path(sys.executable).parent / "warden"
    settings = Settings()
    subprocess.run([str(warden), "stack", "up"], check=True)  # noqa: S603
    suffix = f".dash{int(time.time())}"
    ports = {service: free_port() for service in RUN_SERVICES}
    if not settings.images.enabled:
        del ports["images"]
    env = dict(os.environ)
    env.update({f"WARDEN_METRICS__{s.upper()}_PORT": str(p) for s, p in ports.items()})
    env.update({"WARDEN_KAFKA__TOPIC_SUFFIX": suffix, "PYTHONUNBUFFERED": "1"})
    subprocess.run([str(warden), "topics", "create"], env=env, check=True)  # noqa: S603
    host = settings.metrics.host if settings.metrics.host not in ("", "0.0.0.0") else "127.0.0.1"  # noqa: S104
    targets = {service: f"{host}:{port}" for service, port in ports.items()}
    prometheus = LocalPrometheus()
    targets["prometheus"] = f"127.0.0.1:{prometheus.port}"
    try:
        prometheus.start(prometheus_config(targets, scrape_s, RULES))
        began, reported, code = run_pipeline(warden, env, speed)
        # Instant panels read the last scrape before the report, while the services still ran.
        window = window_for(began - lead_s, reported, scrape_s)
        note = (
            "Drawn by devkit/dashboard_snapshots.py from this dashboard's own PromQL queries "
            "(devkit/dashboards.py, matplotlib; not Grafana's renderer) against Prometheus "
            f"scraping a real `warden run --speed {speed:g}` of ingest/samples/livestream.jsonl "
            f"on the local stack, {datetime.fromtimestamp(reported):%Y-%m-%d}."
        )
        client = Prometheus(prometheus.url)
        for name, png in SNAPSHOTS.items():
            reports = render(DASHBOARDS / name, client, window, out_dir / png, note=note)
            sys.stdout.write(f"{out_dir / png}: {summary(reports)}\n")
        sys.stdout.write(f"window: --start {window.start:.3f} --end {window.end:.3f}\n")
    finally:
        prometheus.stop(keep)
    return code


def summary(reports: Sequence[PanelReport]) -> str:
    """Which panels came back empty or failed, for the person taking the picture."""
    lines = [f"{sum(r.series > 0 for r in reports)}/{len(reports)} panels have data"]
    lines += [f"  no data: {r.title}" for r in reports if not r.series and not r.error]
    lines += [f"  error:   {r.title}: {r.error}" for r in reports if r.error]
    return "\n".join(lines)


def _timestamp(text: str) -> float:
    with contextlib.suppress(ValueError):
        return float(text)
    return datetime.fromisoformat(text).timestamp()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.dashboard_snapshots")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for the PNGs")
    parser.add_argument("--speed", type=float, default=30.0, help="`warden run --speed`")
    parser.add_argument("--scrape", type=float, default=2.0, help="scrape interval, seconds")
    parser.add_argument(
        "--keep", action="store_true", help="keep Prometheus's data to render again later"
    )
    commands = parser.add_subparsers(dest="command")
    one = commands.add_parser("render", help="draw one dashboard from a running Prometheus")
    one.add_argument("dashboard", type=Path, help="Grafana dashboard JSON")
    one.add_argument("--prometheus", required=True, help="Prometheus base URL")
    one.add_argument("--start", required=True, help="ISO-8601 or Unix seconds")
    one.add_argument("--end", required=True, help="ISO-8601 or Unix seconds")
    one.add_argument("--var", action="append", default=[], help="NAME=VALUE (.* for All)")
    one.add_argument("--png", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    try:
        if args.command != "render":
            return snapshot(args.out, args.speed, args.scrape, keep=args.keep)
        window = window_for(_timestamp(args.start), _timestamp(args.end), args.scrape)
        note = (
            "Drawn by devkit/dashboards.py (matplotlib) from this dashboard's own PromQL "
            f"queries against {args.prometheus}; not Grafana's renderer."
        )
        chosen = dict(item.split("=", 1) for item in args.var)
        client = Prometheus(args.prometheus)
        reports = render(args.dashboard, client, window, args.png, chosen=chosen, note=note)
        sys.stdout.write(summary(reports) + "\n")
        return 0
    except (WardenError, subprocess.CalledProcessError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code if isinstance(exc, WardenError) else 1


if __name__ == "__main__":
    sys.exit(main())
