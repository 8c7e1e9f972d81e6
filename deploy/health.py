"""``warden health SERVICE``: exit 0 while the service on this machine says it is ready.

The probe of every container healthcheck (docker-compose.yml) and Kubernetes probe
(deploy/k8s/): each service serves Prometheus metrics on its ``WARDEN_METRICS__<SERVICE>_PORT``
with ``warden_ready{service="<service>"}`` 1 while it can do its work (joined its consumer
group, its dependencies answer) and 0 while it starts, rebalances, has lost the broker or stops.
One reading of that gauge, with a short time-out; nothing else is touched, so a probe every few
seconds costs the service one metrics page.

``--live`` asks only whether the process answers at all (a Kubernetes liveness probe): a
service that lost its broker is not ready, but restarting it would not bring the broker back.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import click
from prometheus_client.parser import text_string_to_metric_families

from core.commandline import settings_from
from core.settings import MetricsSettings

# The services with a metrics port: `warden health NAME` reads WARDEN_METRICS__<NAME>_PORT.
SERVICES = tuple(
    name.removesuffix("_port") for name in MetricsSettings.model_fields if name.endswith("_port")
)


def metrics_port(metrics: MetricsSettings, service: str) -> int:
    """The port ``service`` serves its metrics on."""
    return int(getattr(metrics, f"{service}_port"))


def readiness(page: str, service: str) -> float | None:
    """The value of ``warden_ready{service=...}`` on a metrics page; None when absent."""
    for family in text_string_to_metric_families(page):
        if family.name != "warden_ready":
            continue
        for sample in family.samples:
            if sample.labels.get("service") == service:
                return float(sample.value)
    return None


def probe(host: str, port: int, service: str, *, live: bool, timeout_s: float) -> str | None:
    """None when healthy, else why not (one line)."""
    url = f"http://{host}:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            page = reply.read(4 * 1024 * 1024).decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as exc:
        return f"{service}: no metrics at {url} ({getattr(exc, 'reason', exc)})"
    if live:
        return None
    value = readiness(page, service)
    if value is None:
        return f'{service}: {url} has no warden_ready{{service="{service}"}}'
    if value != 1:
        return f"{service}: not ready (warden_ready {value:g})"
    return None


@click.command()
@click.argument("service", type=click.Choice(SERVICES))
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the service runs.")
@click.option("--port", type=int, default=None, help="Its metrics port (default: settings).")
@click.option("--live", is_flag=True, help="Only that it answers (liveness), ready or not.")
@click.option("--timeout", "timeout_s", type=float, default=3.0, show_default=True)
@click.pass_context
def health(
    ctx: click.Context, service: str, host: str, port: int | None, live: bool, timeout_s: float
) -> None:
    """Exit 0 when SERVICE's metrics say warden_ready 1 (with --live: when they answer), else 1
    with the reason on stderr. The healthcheck of the containers and Kubernetes probes."""
    settings = settings_from(ctx)
    where = port if port is not None else metrics_port(settings.metrics, service)
    problem = probe(host, where, service, live=live, timeout_s=timeout_s)
    if problem is not None:
        click.echo(f"warden: {problem}", err=True)
        sys.exit(1)
    click.echo(f"{service}: {'alive' if live else 'ready'}")
