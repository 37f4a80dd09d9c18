"""A small client for the query endpoints of Prometheus's HTTP API (VictoriaMetrics serves the
same), for the commands that read from Prometheus rather than expose to it."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


class PrometheusError(Exception):
    """A query that did not give a result; the message is one line for the user."""


class Unreachable(PrometheusError):
    """Nothing answered at the URL (refused, timed out, not HTTP)."""


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str, at: float | None = None) -> dict:
        """An instant query: the answer's `data` ({"resultType": ..., "result": [...]})."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        return self._request("/api/v1/query", params)

    def query_range(self, expr: str, start: float, end: float, step: float | str) -> dict:
        return self._request("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}",
                                                  "end": f"{end:.3f}", "step": step})

    def runtime_info(self) -> dict | None:
        """/api/v1/status/runtimeinfo (storage retention and more), or None where the server
        has no such page (VictoriaMetrics)."""
        try:
            return self._request("/api/v1/status/runtimeinfo", None)
        except Unreachable:
            raise
        except PrometheusError:
            return None

    def _request(self, path: str, params: dict | None) -> dict:
        """POST `params` (GET without); the answer's `data`."""
        data = None if params is None else urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         method="GET" if params is None else "POST")
        what = path if params is None else repr(params["query"])
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                document = json.load(response)
        except urllib.error.HTTPError as exc:
            document = _error_document(exc)
            if document is None:
                raise PrometheusError(f"{self.url}{path}: HTTP {exc.code} for {what}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise Unreachable(f"cannot reach Prometheus at {self.url}: "
                              f"{getattr(exc, 'reason', exc)}") from None
        if document.get("status") != "success":
            raise PrometheusError(f"{document.get('errorType')}: {document.get('error')} "
                                  f"for {what}")
        return document["data"]


def _error_document(exc: urllib.error.HTTPError) -> dict | None:
    """Prometheus answers a bad query with 400 and a JSON error document."""
    try:
        document = json.load(exc)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
