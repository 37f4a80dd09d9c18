"""Bounded tenants: with very many tenants, export the ones that matter plus aggregates of the
rest, so that the series a target exports stay bounded whatever the number of tenants.

A tenant matters when its usage is close to one of its limits: at or above `min_limit_share`
of any limit, or among the `top` tenants with the highest share. Every family of a business
query with the tenant label keeps only those tenants; the others are counted and summed per
query (`vigil_business_omitted_series`, `vigil_business_omitted_value`), and
`vigil_business_tenants` counts the tenants exported and omitted. docs/tenants.md weighs this
against exporting every tenant.

The selection is made where the exposition is rendered (a worker thread), from the latest
families of the usage and limit queries, so a tenant that crosses the share appears with the
next render after the query that saw it. Filtered families are kept while neither their source
family nor the selection changes, so a render does not filter again what it filtered before.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from vigil_exporter.collectors.base import Job
from vigil_exporter.validation import Bool, Errors, Float, Int, List, Object, Str

# The usage / limit pairs of the default queries, as the tenant:vigil_tenant_limit_usage:ratio
# recording rule pairs them (prometheus/rules/business.libsonnet).
DEFAULT_LIMITS = (
    ("vigil_tenant_agents", "vigil_tenant_agents_limit"),
    ("vigil_tenant_channels", "vigil_tenant_channels_limit"),
    ("vigil_tenant_messages_today", "vigil_tenant_messages_per_day_limit"),
    ("vigil_tenant_api_calls_today", "vigil_tenant_api_calls_per_day_limit"),
    ("vigil_tenant_storage_bytes", "vigil_tenant_storage_limit_bytes"),
    ("vigil_tenant_connections", "vigil_tenant_connections_limit"),
)

SCHEMA = Object({
    "enabled": Bool(False, "Export only the tenants close to a limit, plus aggregates of the "
                           "others (docs/tenants.md)."),
    "label": Str("tenant", "Label that names the tenant in the business queries."),
    "min_limit_share": Float(0.8, "Export every tenant whose usage is at least this share of "
                                  "any of its limits.", above=0),
    "top": Int(100, "Also export this many tenants with the highest share of a limit.",
               minimum=0),
    "limits": List(Object({
        "usage": Str(help="Name of the business query with the usage."),
        "limit": Str(help="Name of the business query with the limit of that usage."),
    }), lambda: [{"usage": u, "limit": lim} for u, lim in DEFAULT_LIMITS],
        "Usage and limit queries whose ratio is a tenant's share of a limit (default: the "
        "default queries' pairs)."),
})


def check_limits(bounded: dict, query_names: set[str], path: str, errors: Errors) -> None:
    """Every query a pair names must exist (when the option is on)."""
    if not bounded["enabled"]:
        return
    for i, pair in enumerate(bounded["limits"]):
        for key in ("usage", "limit"):
            if pair[key] not in query_names:
                errors.add(f"{path}.limits[{i}].{key}",
                           f'expected the name of a business query, got "{pair[key]}"')


class BoundedTenants:
    """What the business collector serves when the option is on."""

    def __init__(self, config: dict, tenant_queries: Iterable[str]):
        self.label = config["label"]
        self.min_share = config["min_limit_share"]
        self.top = config["top"]
        self.pairs = [(pair["usage"], pair["limit"]) for pair in config["limits"]]
        self.tenant_queries = frozenset(tenant_queries)  # queries with the tenant label
        self._selected: frozenset[str] = frozenset()
        self._selection_key: tuple = ()
        # id(source family) -> (source, selection, filtered, tenants, omitted series, sum)
        self._filtered: dict[int, tuple] = {}

    def serve(self, jobs: list[Job]) -> Iterator[Metric]:
        latest = {job.name: job.families for job in jobs}
        selected = self.select(latest)
        filtered, everyone = {}, set()
        omitted_series = GaugeMetricFamily(
            "vigil_business_omitted_series", "Series of tenants that bounded_tenants left out "
            "of the query's family.", labels=["query"])
        omitted_sum = GaugeMetricFamily(
            "vigil_business_omitted_value", "Sum of the values of the series that "
            "bounded_tenants left out of the query's family.", labels=["query"])
        for job in jobs:
            if job.name not in self.tenant_queries:
                yield from job.families
                continue
            for family in job.families:
                entry = self._filter(family, selected)
                filtered[id(family)] = entry
                everyone |= entry[3]
                omitted_series.add_metric([job.name], entry[4])
                omitted_sum.add_metric([job.name], entry[5])
                yield entry[2]
        self._filtered = filtered
        tenants = GaugeMetricFamily("vigil_business_tenants", "Tenants in the business "
                                    "queries, by whether bounded_tenants exports them.",
                                    labels=["state"])
        exported = len(everyone & selected)
        tenants.add_metric(["exported"], exported)
        tenants.add_metric(["omitted"], len(everyone) - exported)
        yield from (tenants, omitted_series, omitted_sum)

    def select(self, latest: dict[str, list[Metric]]) -> frozenset[str]:
        """The tenants at or above the share of any limit, and the top N by share."""
        sources = [latest.get(name, []) for pair in self.pairs for name in pair]
        key = tuple(id(family) for families in sources for family in families)
        if key == self._selection_key:
            return self._selected
        shares: dict[str, float] = {}
        for usage_name, limit_name in self.pairs:
            usage = self._per_tenant(latest.get(usage_name, []))
            for tenant, limit in self._per_tenant(latest.get(limit_name, [])).items():
                if limit > 0:
                    share = usage.get(tenant, 0.0) / limit
                    if share > shares.get(tenant, -1.0):
                        shares[tenant] = share
        chosen = {tenant for tenant, share in shares.items() if share >= self.min_share}
        chosen.update(tenant for tenant, _ in heapq.nsmallest(
            self.top, shares.items(), key=lambda item: (-item[1], item[0])))
        if chosen != self._selected:  # the same object while equal: filtered families stay
            self._selected = frozenset(chosen)
        self._selection_key = key
        return self._selected

    def _per_tenant(self, families: list[Metric]) -> dict[str, float]:
        """Values by tenant, summed over the other labels (a direction, say)."""
        values: dict[str, float] = {}
        for family in families:
            for labels, value, _ in _series(family):
                tenant = labels.get(self.label, "")
                values[tenant] = values.get(tenant, 0.0) + value
        return values

    def _filter(self, family: Metric, selected: frozenset[str]) -> tuple:
        kept = self._filtered.get(id(family))
        if kept is not None and kept[0] is family and kept[1] is selected:
            return kept
        rows = hasattr(family, "pairs")  # a business RowFamily: filtered into another one
        result = (type(family)(family.name, family.documentation, family.type) if rows
                  else Metric(family.name, family.documentation, family.type, family.unit))
        tenants, omitted, omitted_sum = set(), 0, 0.0
        for labels, value, sample in _series(family):
            tenant = labels.get(self.label, "")
            tenants.add(tenant)
            if tenant not in selected:
                omitted += 1
                omitted_sum += value
            elif rows:
                result.add(labels, value)
            else:
                result.samples.append(sample)
        return family, selected, result, tenants, omitted, omitted_sum


def _series(family: Metric):
    """(labels, value, sample) of each series; a RowFamily's without making its samples (with
    50,000 tenants, making 900,000 samples took the bounded view 20 s of a loaded CPU)."""
    if hasattr(family, "pairs"):
        return ((labels, value, None) for labels, value in family.pairs())
    return ((sample.labels, sample.value, sample) for sample in family.samples)
