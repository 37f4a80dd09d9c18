"""Bad input gets a clear error: every class of configuration that used to end in a traceback,
in a crash of `serve` after `check-config` said the file was valid, or in silent acceptance
(issue 18, "Bad input gets a clear error")."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vigil_exporter.config import ConfigError, load


def check_config(path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigil_exporter", "check-config", str(path), *args],
                          capture_output=True, text=True, timeout=60)


def faults_of(tmp_path, text: str | bytes, environ: dict | None = None) -> str:
    path = tmp_path / "vigil.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as caught:
        load(path, environ=environ or {})
    return str(caught.value)


# ------------------------------------------------------------------ files that are not UTF-8 YAML

NOT_UTF8 = {
    "latin-1": "log_level: info\n# caf\xe9\n".encode("latin-1"),
    "utf-16": "log_level: info\n".encode("utf-16"),
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("name", NOT_UTF8)
def test_a_config_file_that_is_not_utf8_yaml_is_named(tmp_path, name):
    path = tmp_path / "vigil.yml"
    path.write_bytes(NOT_UTF8[name])
    result = check_config(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{path}: ")


def test_a_secret_file_that_is_not_utf8_is_named(tmp_path):
    secret = tmp_path / "url"
    secret.write_bytes(b"postgresql://vigil:\xff\xfe@db/vigil")
    with pytest.raises(ConfigError) as caught:
        load(None, environ={"VIGIL_DATABASE_URL_FILE": str(secret)})
    assert str(caught.value).startswith("VIGIL_DATABASE_URL_FILE: ")
    assert "not UTF-8" in str(caught.value)


@pytest.mark.parametrize("text,key", [
    ("collectors: []\n", "collectors: expected a mapping"),
    ("collectors:\n  database: []\n", "collectors.database: expected a mapping"),
    ("collectors:\n  database:\n    databases: [a]\n", "collectors.database.databases: expected"),
    ("web: 3\n", "web: expected a mapping"),
])
def test_a_section_of_the_wrong_type_is_a_fault(tmp_path, text, key):
    assert key in faults_of(tmp_path, text)
    # also when an environment variable sets a key inside it: not silently replaced
    assert key in faults_of(tmp_path, text, {"VIGIL_DATABASE_URL": "sqlite:///x.db"})


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    text = "log_level: info\ncollectors:\n  redis:\n    interval: 5s\n    interval: 1m\n"
    assert "line 5, column 5: not valid YAML: duplicate key 'interval' (first on line 4)" \
        in faults_of(tmp_path, text)


# ------------------------------------------------------------------ what check-config passes, serve runs

@pytest.mark.parametrize("text,fault", [
    ("listen_address: 127.0.0.1:70000\n", "listen_address: expected a port from 0 to 65535"),
    ("listen_address: no-such-host.invalid:9477\n",
     'listen_address: cannot resolve the host "no-such-host.invalid"'),
    ("collectors:\n  redis:\n    instances:\n      c:\n        url: redis://127.0.0.1:abc/0\n",
     "collectors.redis.instances.c.url: not a usable Redis URL: the port is not a whole number"),
    ("collectors:\n  redis:\n    interval: .inf\n",
     "collectors.redis.interval: expected a duration from 100ms to 365d, got inf"),
    ("collectors:\n  redis:\n    interval: 0.0001\n",
     "collectors.redis.interval: expected a duration from 100ms to 365d, got 0.0001"),
    ("collectors:\n  business:\n    queries:\n      - {name: vigil_x, help: X, sql: SELECT 1 AS "
     "value, interval: 1ms}\n", "collectors.business.queries[0].interval: expected a duration from"),
    ("collectors:\n  system:\n    timeout: .nan\n", "collectors.system.timeout: expected a duration"),
    ("web:\n  shutdown_timeout: 1y\n", "web.shutdown_timeout: expected a duration from 1ms to 1m"),
])
def test_values_serve_cannot_run_fail_check_config(tmp_path, text, fault):
    path = tmp_path / "vigil.yml"
    path.write_text(text)
    result = check_config(path)
    assert result.returncode == 2, result.stdout
    assert f"{path}: {fault}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_names_an_address_it_cannot_bind(tmp_path):
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = subprocess.run([sys.executable, "-m", "vigil_exporter", "serve", "--listen",
                                 f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60,
                                cwd=tmp_path)
    finally:
        taken.close()
    assert result.returncode == 2
    assert f"listen_address: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ the environment

def test_errors_from_environment_variables_name_the_variable(tmp_path):
    path = tmp_path / "vigil.yml"
    path.write_text("log_level: info\n")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={"VIGIL_LISTEN_ADDRESS": "nowhere", "VIGIL_LOG_LEVEL": "loud"})
    lines = str(caught.value).splitlines()
    assert any(line.startswith("VIGIL_LISTEN_ADDRESS: listen_address: expected") for line in lines)
    assert any(line.startswith("VIGIL_LOG_LEVEL: log_level: expected") for line in lines)
    assert not any(line.startswith(str(path)) for line in lines)
    with pytest.raises(ConfigError) as caught:
        load(None, environ={}, overrides={"listen_address": "127.0.0.1:99999"})
    assert str(caught.value).startswith("--listen: listen_address: expected a port")


@pytest.mark.parametrize("environ", [{"VIGIL_DATABASE_URL": ""}, {"VIGIL_DATABASE_URL": "  "},
                                     {"VIGIL_DATABASE_URL_FILE": ""}, {"VIGIL_DATABASE_URL_FILE": "EMPTY"}])
def test_an_empty_database_url_that_was_set_is_an_error(tmp_path, environ):
    if environ.get("VIGIL_DATABASE_URL_FILE") == "EMPTY":
        (tmp_path / "empty").write_text("\n")
        environ = {"VIGIL_DATABASE_URL_FILE": str(tmp_path / "empty")}
    with pytest.raises(ConfigError) as caught:
        load(None, environ=environ)
    assert str(caught.value).startswith(next(iter(environ)) + ": ")
    assert "empty" in str(caught.value)
