"""Metrics server: the runtime's Prometheus registry served at ``/metrics`` (127.0.0.1 by default).

Serving runs in its own thread and only reads the registry: it never touches the broker. A
non-loopback address is refused unless ``allow_remote`` is set: metrics tell anyone who can read
them the account's equity and positions. The WSGI server is prometheus-client's app on the
standard library's server, polled every 50 ms, so shutting down takes milliseconds rather than
``start_http_server``'s fixed half second.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from pydantic import Field, field_validator

from tradeguard import ConfiguredPlugin, PluginSettings, Runtime, hookimpl

log = logging.getLogger("tradeguard.metrics")
POLL_SECONDS = 0.05


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes go to the debug log, not standard error: a line every few seconds per scraper is noise."""
        log.debug(format, *args)


class MetricsServerSettings(PluginSettings):
    host: str = Field(default="127.0.0.1", description="address to serve /metrics on")
    port: int = Field(default=9464, ge=0, le=65535, description="TCP port; 0 picks a free one")
    allow_remote: bool = Field(default=False, description="allow a non-loopback host")

    @field_validator("host")
    @classmethod
    def _address(cls, value: str) -> str:
        if value != "localhost":
            ipaddress.ip_address(value)  # raises with the value named
        return value


class _Labelled:
    """The runtime's registry with constant labels added to every sample: in a fleet, each account's series say
    which account and fleet they are, so one Prometheus (or a federation of them) tells them apart."""

    def __init__(self, registry: Any, labels: dict[str, str]) -> None:
        self.registry, self.labels = registry, labels

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                labelled.add_sample(s.name, {**s.labels, **self.labels}, s.value, s.timestamp, s.exemplar)
            yield labelled


def _fleet_labelled(runtime: Runtime) -> Any:
    """What /metrics serves: the registry, labelled ``account`` and ``fleet`` when the account is in a fleet."""
    fleet = runtime.settings.fleet
    if not fleet.enabled:
        return runtime.metrics.registry
    labels = {"account": fleet.label(runtime.broker.account().login), "fleet": fleet.name}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Labelled(runtime.metrics.registry, labels))
    return registry


class MetricsServer(ConfiguredPlugin):
    settings_model = MetricsServerSettings
    stage = 6

    def __init__(self) -> None:
        super().__init__()
        self.server: Any = None
        self.port = 0

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        cfg = self.cfg
        loopback = cfg.host == "localhost" or ipaddress.ip_address(cfg.host).is_loopback
        if not loopback and not cfg.allow_remote:
            raise ValueError(f"metrics_server.host = {cfg.host!r}: not a loopback address (set allow_remote)")
        from prometheus_client import make_wsgi_app

        app = make_wsgi_app(_fleet_labelled(runtime))
        try:
            self.server = make_server(cfg.host, cfg.port, app, server_class=_Server, handler_class=_QuietHandler)
        except OSError as exc:  # most often another process (another instance?) serves there already
            raise OSError(
                f"metrics_server: cannot listen on {cfg.host}:{cfg.port} ({exc.strerror}); choose "
                "another metrics_server.port (0 takes a free one)"
            ) from exc
        threading.Thread(
            target=self.server.serve_forever, args=(POLL_SECONDS,), name="tradeguard-metrics", daemon=True
        ).start()
        self.port = self.server.server_address[1]
        log.info("metrics served", extra={"address": f"http://{cfg.host}:{self.port}/metrics"})

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
