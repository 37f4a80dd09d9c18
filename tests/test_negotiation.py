"""Accept-Encoding as RFC 9110 reads it: gzip only where a client accepts it, in the exporter
and in the instrumentation library's /metrics (two packages, one rule)."""
from __future__ import annotations

import pytest

from vigil_exporter.exposition import accepts_gzip
from vigil_instrument import exposition as instrument

CASES = [
    ("gzip", True),
    ("GZIP", True),
    ("deflate, gzip;q=0.5", True),
    ("x-gzip", True),
    ("*", True),
    ("br;q=1.0, *;q=0.1", True),
    ("", False),
    ("identity", False),
    ("deflate, br", False),
    ("gzip;q=0", False),
    ("gzip;Q=0", False),
    ("gzip; q=0.000", False),
    ("gzip;q=abc", False),
    ("gzip;q=2", False),
    ("gzip;q=0, *", False),  # an explicit entry wins over the wildcard
    ("*;q=0", False),
    ("gzip;q=0.001", True),
]


@pytest.mark.parametrize(("header", "expected"), CASES)
def test_accepts_gzip(header, expected):
    assert accepts_gzip(header) is expected
    assert instrument.accepts_gzip(header) is expected


@pytest.mark.parametrize(("header", "gzipped"), [("gzip", True), ("gzip;q=0", False),
                                                 ("gzip;Q=0", False), ("gzip;q=abc", False)])
def test_a_service_metrics_endpoint_follows_the_q_values(header, gzipped):
    """A service's /metrics (here the WSGI app) used to gzip for any header naming gzip."""
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    Counter("served", "Served.", registry=registry).inc()
    started = []
    app = instrument.wsgi_metrics_app(registry)
    body = b"".join(app({"HTTP_ACCEPT_ENCODING": header}, lambda s, h: started.append(dict(h))))
    assert (started[0].get("Content-Encoding") == "gzip") is gzipped
    assert (b"served_total 1.0" in body) is not gzipped
