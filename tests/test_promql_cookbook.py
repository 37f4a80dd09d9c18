"""Every query of docs/promql-cookbook.md runs against the live stack and returns data."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COOKBOOK = Path(__file__).resolve().parent.parent / "docs" / "promql-cookbook.md"
QUERIES = re.findall(r"```promql\n(.*?)\n```", COOKBOOK.read_text(), re.S)
# Queries that are right to return nothing on a healthy stack.
MAY_BE_EMPTY = {
    "vigil_collector_success == 0 or vigil_business_query_success == 0",
    "tenant:vigil_tenant_limit_usage:ratio > 0.9",
    'count by (severity) (ALERTS{alertstate="firing"})',
}


def test_cookbook_has_queries():
    assert len(QUERIES) >= 30


@pytest.mark.parametrize("query", QUERIES)
def test_cookbook_query_returns_data(live_stack, query):
    deadline = time.monotonic() + 90
    result = live_stack.query(query)  # a parse error raises here
    while not result and query not in MAY_BE_EMPTY and time.monotonic() < deadline:
        time.sleep(1)
        result = live_stack.query(query)
    assert result or query in MAY_BE_EMPTY, f"no data for: {query}"
