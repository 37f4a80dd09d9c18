"""Generated references are fresh, and the docs name only metrics that exist."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import tomllib

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


# Every distribution of this repository, by the path it installs from.
DISTRIBUTIONS = {".": "vigil-exporter", "./packages/vigil-instrument": "vigil-instrument",
                 "./packages/vigil-demo": "vigil-demo"}
INSTALL_DOCS = ["README.md", "docs/*.md", "packages/*/README.md"]


def install_commands(text: str) -> list[str]:
    """The arguments of each `pip install` in a Markdown text: inline code (which may wrap onto
    the next line) or a shell line, up to the end of the code, a comment or the next command."""
    text = re.sub(r"pip install\s*\n\s*", "pip install ", text)
    return [match.group(1).strip() for match in re.finditer(r"pip install\s+([^`\n#&;|]+)", text)]


def declared_extras(path: Path) -> set[str]:
    project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    return set(project.get("optional-dependencies", {}))


def test_every_install_command_installs_this_project():
    """A doc that installs Vigil installs it from the checkout, by a path that holds one of its
    distributions and with extras that distribution declares: a name looked up on a package index
    (`vigil[render]`, `vigil-exporter`) would install someone else's project, or nothing."""
    checked = []
    for path in sorted({p for pattern in INSTALL_DOCS for p in ROOT.glob(pattern)}):
        for arguments in install_commands(path.read_text()):
            for requirement in shlex.split(arguments):
                if requirement.startswith("-"):
                    continue  # -e, -q, --upgrade...
                where = f"{path.relative_to(ROOT)}: pip install {arguments}"
                target, _, extras = requirement.partition("[")
                if not target.startswith("."):
                    assert not target.lower().startswith("vigil"), (
                        f"{where}: {target!r} is looked up on a package index, where this project "
                        "is not published; install it from the checkout (pip install . or ./packages/...)")
                    continue
                assert target.rstrip("/") in DISTRIBUTIONS, f"{where}: {target!r} is no distribution of Vigil"
                wanted = {extra.strip() for extra in extras.rstrip("]").split(",") if extra.strip()}
                missing = wanted - declared_extras(ROOT / target)
                assert not missing, f"{where}: {DISTRIBUTIONS[target.rstrip('/')]} declares no extra {missing}"
                checked.append(requirement)
    assert "./packages/vigil-instrument[flask]" in checked  # the library's install section is read
