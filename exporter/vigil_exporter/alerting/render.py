"""Deploy-time rendering of alertmanager.yml: webhook URLs from the environment.

Alertmanager 0.25 (Debian 12) reads Slack URLs and SMTP passwords from files but has no
`url_file` for webhooks, so a webhook URL that is a secret (a paging key, a heartbeat token) is
filled in here: for a receiver named `pager`, VIGIL_AM_PAGER_URL or the file named by
VIGIL_AM_PAGER_URL_FILE replaces the `url` of its webhook_configs.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

PLACEHOLDER_DOMAIN = ".invalid"  # RFC 2606: never resolves, so an unrendered URL cannot leak


def url_variable(receiver: str) -> str:
    return "VIGIL_AM_" + re.sub(r"\W", "_", receiver).upper() + "_URL"


def receiver_url(receiver: str, environ) -> str | None:
    name = url_variable(receiver)
    if environ.get(name):
        return environ[name].strip()
    if environ.get(name + "_FILE"):
        return Path(environ[name + "_FILE"]).read_text().strip()
    return None


def render_config(text: str, environ) -> tuple[str, list[str]]:
    """The rendered YAML and the receivers still pointing at a placeholder URL."""
    config = yaml.safe_load(text)
    unrendered = []
    for receiver in config.get("receivers") or []:
        url = receiver_url(receiver["name"], environ)
        for hook in receiver.get("webhook_configs") or []:
            if url:
                hook["url"] = url
            elif (urlsplit(hook.get("url", "")).hostname or "").endswith(PLACEHOLDER_DOMAIN):
                unrendered.append(receiver["name"])
    header = "# Rendered by `vigil alerts render-config`: do not edit, contains deploy-time URLs.\n"
    return header + yaml.safe_dump(config, sort_keys=False, width=120), sorted(set(unrendered))
