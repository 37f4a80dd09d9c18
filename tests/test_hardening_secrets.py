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
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_malformed_url_is_refused_without_its_password(tmp_path, vigil_cli, monkeypatch, url,
                                                       command):
    from vigil_exporter import server
    monkeypatch.setattr(server, "until_stopped", lambda stop=None: None)  # serve never blocks
    path = _config_file(tmp_path, url)
    result = vigil_cli(*(["check-config", path] if command == "check-config" else
                         ["serve", "--config", path, "--listen", "127.0.0.1:0"]))
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


# Shapes that made the former URL-password pattern backtrack quadratically (12 KB of "a:a:" in
# an alert annotation held the event loop 8 s), each about 1 MB.
HOSTILE = ["a:" * 500_000, "a:@" * 350_000, ":/" * 500_000 + "@x", "a:/@" * 250_000,
           "x" * 1_000_000 + ":@"]


def test_redaction_looks_at_a_bounded_part_of_the_text():
    shown = logs.redact("x " * 500_000)
    assert len(shown) <= logs.REDACT_MAX_CHARS + 64
    assert shown.endswith(f"({1_000_000 - logs.REDACT_MAX_CHARS} more characters cut)")


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_redaction_reads_each_character_of_a_hostile_text_once(monkeypatch, text):
    """Structural, not timed: the text is cut to REDACT_MAX_CHARS, then split into words once,
    and only words holding an "@" reach the credential splitter (str.find/rpartition, no
    backtracking), each once: the characters it is handed never exceed what was kept."""
    handed = []
    split = logs._split_credentials
    monkeypatch.setattr(logs, "_split_credentials", lambda word: handed.append(len(word))
                        or split(word))
    shown = logs.redact(text)
    assert sum(handed) <= logs.REDACT_MAX_CHARS + 64
    assert len(shown) <= logs.REDACT_MAX_CHARS + 64


def test_hostile_text_is_redacted_without_holding_the_caller():
    """The reviewer's input end to end, in a child process with a deadline far above what a
    linear pass needs (milliseconds) and far below what the quadratic pattern took (hours)."""
    import subprocess
    import sys
    script = ("from vigil_exporter.logs import redact\n"
              "for n in (6_000, 500_000):\n"
              "    redact('a:' * n); redact('a:@' * n); redact(':/' * n + '@x')\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
