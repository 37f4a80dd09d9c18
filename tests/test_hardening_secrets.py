"""No output shows a password: config errors for URLs that do not parse, log lines for URLs whose
password holds characters a regular expression would stop at (issue 18, "Secrets")."""
from __future__ import annotations

import asyncio
import io
import logging

import pytest

from vigil_exporter import logs
from vigil_exporter.config import ConfigError, load

SECRET = "Xy7/q@9:Zk"  # "/", "@" and ":" as generated passwords have them

# URLs that are not valid: each one must be refused without showing the password.
MALFORMED = [
    f"postgresql:/vigil:{SECRET}@db.example/vigil",     # one slash
    f"vigil:{SECRET}@db.example/vigil",                 # no scheme
    f"postgresql//vigil:{SECRET}@db.example/vigil",     # no colon
    f"postgresql:vigil:{SECRET}@db.example:5432/vigil",  # no slashes
]


def _config_file(tmp_path, url: str):
    path = tmp_path / "vigil.yml"
    path.write_text(f'collectors:\n  database:\n    databases:\n      main:\n        url: "{url}"\n')
    return path


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_url_is_refused_without_its_password(tmp_path, vigil_cli, url):
    path = _config_file(tmp_path, url)
    result = vigil_cli("check-config", path)
    assert result.returncode == 2
    assert "collectors.database.databases.main.url: expected an SQLAlchemy URL" in result.stderr
    for piece in (SECRET, "Xy7", "Zk"):
        assert piece not in result.stderr + result.stdout


@pytest.mark.parametrize("url", MALFORMED)
@pytest.mark.parametrize("through_file", [False, True])
def test_malformed_url_from_the_environment_is_refused_without_its_password(tmp_path, url,
                                                                            through_file):
    if through_file:
        secret_file = tmp_path / "url"
        secret_file.write_text(url + "\n")
        environ = {"VIGIL_DATABASE_URL_FILE": str(secret_file)}
    else:
        environ = {"VIGIL_DATABASE_URL": url}
    with pytest.raises(ConfigError) as caught:
        load(None, environ=environ)
    assert "VIGIL_DATABASE_URL" in str(caught.value)  # the variable is named, not "defaults"
    assert SECRET not in str(caught.value) and "Xy7" not in str(caught.value)


@pytest.mark.parametrize("password", ["a/b/c-123", "p@ss/w0rd", "x:y/z", "pct%2Fencoded"])
def test_redacted_urls_come_from_the_parsed_url(password):
    url = f"postgresql://vigil:{password}@db.example:5432/vigil"
    shown = logs.redact_url(url)
    assert shown.startswith("postgresql://vigil:***@")
    assert password not in shown
    for text in (f"connection to {url} failed", f"url='{url}'", f"({url})", url):
        assert password not in logs.redact(text)


def test_registered_secrets_are_hidden_in_any_text():
    """Once the configuration has named a URL, its password is hidden wherever it appears,
    even where no URL syntax is left around it (a driver quoting it alone)."""
    load(None, environ={"VIGIL_REDIS_URL": "redis://:r3dis%2Fpass@127.0.0.1:1/0"})
    assert "r3dis/pass" not in logs.redact('password authentication failed: "r3dis/pass"')
    assert "r3dis%2Fpass" not in logs.redact("redis://:r3dis%2Fpass@127.0.0.1:1/0 is down")


def test_failure_and_recovery_lines_never_show_the_password(redis_server):
    """The collectors' own log lines, through the JSON formatter the exporter uses."""
    from vigil_exporter.collectors.database import DatabaseCollector
    from vigil_exporter.collectors.redis import RedisCollector

    password = "Gen/Pass/w0rd"
    stream = io.StringIO()
    logs.setup("info", stream=stream, json_lines=True)
    try:
        database = DatabaseCollector(DatabaseCollector.config_schema.validate({
            "interval": "1s", "timeout": "1s", "databases": {"main": {
                "url": f"postgresql://vigil:{password}@127.0.0.1:1/vigil"}}}, "", _errors()))
        redis = RedisCollector(RedisCollector.config_schema.validate({
            "interval": "1s", "timeout": "2s", "instances": {"cache": {
                "url": f"redis://:{password.replace('/', '%2F')}@127.0.0.1:1/0",
                "socket_timeout": "0.5s"}}}, "", _errors()))

        async def rounds():
            for collector in (database, redis):
                await collector.collect()
                await collector.close()
        asyncio.run(rounds())
    finally:
        logging.getLogger().handlers.clear()
    output = stream.getvalue()
    assert "database main failing" in output and "redis:cache failing" in output
    assert password not in output and "Gen%2FPass" not in output


def _errors():
    from vigil_exporter.validation import Errors
    return Errors()
