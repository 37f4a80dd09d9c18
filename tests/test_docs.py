"""Generated references are fresh, and the docs name only metrics that exist."""
from __future__ import annotations

import re
from pathlib import Path

from vigil_exporter.tools import docgen

ROOT = Path(__file__).resolve().parent.parent


def test_metrics_and_configuration_references_are_fresh(postgres_pair, redis_pair):
    servers = docgen.Servers(postgres_pair.primary.url, redis_pair.primary.url,
                             postgres_pair.replica.url, redis_pair.replica.url)
    for path, text in docgen.build(servers).items():
        assert path.read_text() == text, (
            f"{path.relative_to(ROOT)} is stale: run python -m vigil_exporter.tools.docgen "
            "--postgres URL --redis URL (see docs/metrics.md)")


def test_every_legacy_name_maps_to_a_documented_metric():
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs/metrics.md").read_text(), re.M))
    for old, new, _ in docgen.LEGACY_NAMES:
        assert new.split("{")[0] in documented, (old, new)


def test_configuration_reference_documents_every_key():
    text = (ROOT / "docs/configuration.md").read_text()
    for key in ("collectors.business.queries[].sql", "collectors.redis.instances.<name>.url",
                "collectors.database.databases.<name>.url", "web.config_file", "listen_address"):
        assert f"`{key}`" in text, key
