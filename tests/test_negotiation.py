"""Accept-Encoding as RFC 9110 reads it: gzip only where a client accepts it."""
from __future__ import annotations

import pytest

from vigil_exporter.exposition import accepts_gzip

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
