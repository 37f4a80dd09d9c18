"""Bad input gets a clear error: every class of configuration that used to end in a traceback,
in a crash of `serve` after `check-config` said the file was valid, or in silent acceptance
(issue 18, "Bad input gets a clear error")."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vigil_exporter.config import ConfigError, load


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


def test_a_binary_config_file_exits_2_without_a_traceback(tmp_path):
    """One real process: the exit status and stderr as a shell sees them."""
    path = tmp_path / "vigil.yml"
    path.write_bytes(NOT_UTF8["binary"])
    result = subprocess.run([sys.executable, "-m", "vigil_exporter", "check-config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith(f"{path}: not UTF-8 text")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", NOT_UTF8)
def test_a_config_file_that_is_not_utf8_yaml_is_named(tmp_path, vigil_cli, name):
    path = tmp_path / "vigil.yml"
    path.write_bytes(NOT_UTF8[name])
    result = vigil_cli("check-config", path)
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
def test_values_serve_cannot_run_fail_check_config(tmp_path, vigil_cli, text, fault):
    path = tmp_path / "vigil.yml"
    path.write_text(text)
    result = vigil_cli("check-config", path)
    assert result.returncode == 2, result.stdout
    assert f"{path}: {fault}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_names_an_address_it_cannot_bind(vigil_cli):
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = vigil_cli("serve", "--listen", f"127.0.0.1:{port}")
    finally:
        taken.close()
    assert result.returncode == 2
    assert f"listen_address: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_host_that_does_not_resolve_is_a_fault_of_check_config_and_of_serve(
        tmp_path, vigil_cli, monkeypatch):
    """Loading the configuration resolves nothing (a resolver can hang); check-config asks, and
    refuses a host the resolver says does not exist, as serve cannot listen on it."""
    import socket

    path = tmp_path / "vigil.yml"
    path.write_text("listen_address: no-such-host.invalid:9477\n")
    resolve = socket.getaddrinfo

    def not_at_load(*args, **kwargs):
        raise AssertionError("getaddrinfo while loading the configuration")
    monkeypatch.setattr(socket, "getaddrinfo", not_at_load)
    load(path, environ={})
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    result = vigil_cli("check-config", path)
    assert result.returncode == 2, result.stderr
    assert f'{path}: listen_address: the host "no-such-host.invalid" does not resolve here' \
        in result.stderr
    assert "warning" not in result.stderr and "Traceback" not in result.stderr
    result = vigil_cli("serve", "--config", path)
    assert result.returncode == 2
    assert f"{path}: listen_address: cannot listen on no-such-host.invalid:9477" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_resolver_that_does_not_answer_holds_check_config_a_bounded_time(tmp_path, vigil_cli,
                                                                           monkeypatch):
    """No answer, or "try again later", is not proof that serve cannot run: a warning."""
    import socket
    import threading

    from vigil_exporter import config as config_module
    never = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: never.wait())
    monkeypatch.setattr(config_module, "RESOLVE_TIMEOUT", 0.1)
    path = tmp_path / "vigil.yml"
    path.write_text("listen_address: slow.example:9477\n")
    try:
        result = vigil_cli("check-config", path)
    finally:
        never.set()
    assert result.returncode == 0, result.stderr
    assert f'{path}: warning: listen_address: the host "slow.example" does not resolve here ' \
        "(no answer within 0.1 s)" in result.stderr

    def try_again(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    monkeypatch.setattr(socket, "getaddrinfo", try_again)
    result = vigil_cli("check-config", path)
    assert result.returncode == 0 and "warning: " in result.stderr, result.stderr


def test_a_relative_bearer_token_file_is_read_beside_the_config_file(tmp_path, vigil_cli):
    """It was read from the working directory, unlike web.config_file."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "webhook-token").write_text("t0ken-for-alertmanager-0123456789\n")
    path = folder / "vigil.yml"
    path.write_text("alerts:\n  bearer_token_file: webhook-token\n")
    result = vigil_cli("check-config", path)  # run in tmp_path, not in etc/
    assert result.returncode == 0, result.stderr
    from vigil_exporter.app import webhook_authorizer
    assert webhook_authorizer(load(path, environ={})["alerts"], str(path)) is not None


def test_an_os_error_once_listening_is_not_blamed_on_the_listen_address(vigil_cli,
                                                                          monkeypatch):
    """Every OSError while serving used to be "listen_address: cannot listen"; only the bind
    is the address's fault."""
    from vigil_exporter import server

    def disk_full(stop=None):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(server, "until_stopped", disk_full)
    result = vigil_cli("serve", "--listen", "127.0.0.1:0")
    assert result.returncode != 0
    assert "No space left on device" in result.stderr
    assert "listen_address" not in result.stderr


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


# ------------------------------------------------------------------ business queries

def _query(name: str, sql: str = "SELECT 1 AS value", **extra) -> str:
    import json
    return json.dumps({"collectors": {"business": {"queries": [
        {"name": name, "help": "X.", "sql": sql, **extra}]}}})


@pytest.mark.parametrize("name", ["vigil_db_up", "process_open_fds", "vigil_redis_up",
                                  "vigil_collector_success", "python_gc_objects_collected_total",
                                  "vigil_build_info", "vigil_business_query_success"])
def test_a_query_named_like_a_built_in_family_is_refused(tmp_path, name):
    assert "collectors.business.queries[0].name: " + f'"{name}" is named like a family the ' \
        "exporter serves itself" in faults_of(tmp_path, _query(name))


def test_a_query_named_like_a_default_querys_family_is_refused(tmp_path):
    faults = faults_of(tmp_path, _query("vigil_tenant_agents_total", type="counter"))
    assert 'is the family of the default query "vigil_tenant_agents"' in faults


def test_built_in_prefixes_cover_every_family_the_exporter_serves():
    """BUILT_IN_PREFIXES is complete: every family of the metrics reference's exporter section
    that is not a default business query starts with one of them."""
    from pathlib import Path

    from vigil_exporter.collectors.business import BUILT_IN_PREFIXES, default_queries
    text = (Path(__file__).parent.parent / "docs/metrics.md").read_text()
    exporter = text.split("## Exporter", 1)[1].split("\n## ", 1)[0]
    names = {line.split("`")[1] for line in exporter.splitlines() if line.startswith("| `")}
    defaults = {q["name"] for q in default_queries()}
    assert names - defaults
    assert [n for n in names - defaults if not n.startswith(BUILT_IN_PREFIXES)] == []


ESCAPES = ["COMMIT; BEGIN READ WRITE; DELETE FROM t; COMMIT; SELECT 1 AS value",
           "SELECT 1 AS value; DELETE FROM t",
           "DELETE FROM t; SELECT 1 AS value -- ; in a comment",
           "SELECT ';' AS value; DROP TABLE t"]


@pytest.mark.parametrize("sql", ESCAPES)
def test_a_query_of_several_statements_is_refused(tmp_path, sql):
    assert "collectors.business.queries[0].sql: expected one SQL statement" in \
        faults_of(tmp_path, _query("vigil_x", sql))


@pytest.mark.parametrize("sql", ["SELECT ';' AS value;", "SELECT $$;$$ AS value",
                                 'SELECT 1 AS "a;b" -- trailing; comment', "SELECT 1 AS value /* ; */"])
def test_semicolons_inside_strings_and_comments_are_not_statements(tmp_path, sql):
    path = tmp_path / "vigil.yml"
    path.write_text(_query("vigil_x", sql))
    load(path, environ={})


async def test_the_read_only_transaction_cannot_be_left_on_postgresql(postgres_server):
    """Even a query that never went through the configuration check runs as one prepared
    statement: the escape fails and no row is deleted."""
    from vigil_exporter.collectors.business import Query, query_engine, run_query

    postgres_server.sql("DROP TABLE IF EXISTS vigil_guard; CREATE TABLE vigil_guard (x int); "
                        "INSERT INTO vigil_guard VALUES (1), (2)")
    engine = query_engine({"url": postgres_server.url}, 1)
    try:
        for sql in ESCAPES[:2]:
            query = Query("vigil_x", "X.", sql.replace(" t", " vigil_guard"), "value", (), "gauge",
                          60, 5, 10, "queries[0]")
            with pytest.raises(Exception, match="multiple commands"):
                await run_query(engine, query)
    finally:
        await engine.dispose()
    assert postgres_server.scalar("SELECT count(*) FROM vigil_guard") == 2


# ------------------------------------------------------------------ web config at start-up

@pytest.mark.parametrize("text,fault", [
    (b"\x00\x01\x02binary\xff", "not UTF-8 text"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n"
     "  max_version: TLS12\n", 'tls_server_config.min_version: "TLS13" is above max_version "TLS12"'),
    ("http_server_config:\n  headers:\n    Content-Type: text/html\n",
     "http_server_config.headers.Content-Type: cannot be configured"),
    ('http_server_config:\n  headers:\n    X-XSS-Protection: "1\\r\\nSet-Cookie: a=b"\n',
     "http_server_config.headers.X-XSS-Protection: must not contain control characters"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
     "http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin"),
    ("basic_auth_users:\n  a: x\n  a: y\n", "duplicate key 'a'"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_allowed_sans: [x]\n",
     "tls_server_config.client_allowed_sans: needs client_auth_type: RequireAndVerifyClientCert"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_FOO]\n",
     "tls_server_config.cipher_suites[0]: expected one of"),
])
def test_a_web_config_that_would_fail_every_request_is_refused_at_start(tmp_path, vigil_cli, text,
                                                                       fault):
    web = tmp_path / "web.yml"
    web.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = vigil_cli("serve", "--listen", "127.0.0.1:0", "--web.config.file", web)
    assert result.returncode == 2
    assert f"{web}: " in result.stderr and fault in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_web_config_file_from_the_config_is_used_and_checked(tmp_path, vigil_cli):
    (tmp_path / "web.yml").write_text("http_server_config:\n  headers:\n    Content-Type: x\n")
    path = tmp_path / "vigil.yml"
    path.write_text("web:\n  config_file: web.yml\n")
    result = vigil_cli("check-config", path)
    assert result.returncode == 2
    assert "http_server_config.headers.Content-Type: cannot be configured" in result.stderr


# ------------------------------------------------------------------ Accept-Encoding, the docs

@pytest.mark.parametrize("header,gzip", [
    ("gzip;Q=0", False), ("gzip;q=abc", False), ("gzip; q=0.000", False), ("gzip;q=1.5", False),
    ("gzip;q=0.001", True), ("GZIP", True), ("*;q=0, gzip", True), ("gzip;q=0, *", False),
    ("identity, *;q=0.5", True), ("", False)])
def test_accept_encoding_q_values_follow_rfc_9110(header, gzip):
    from vigil_exporter.exposition import accepts_gzip
    assert accepts_gzip(header) is gzip


def test_the_configuration_reference_shows_every_default_exactly():
    """A default copied from docs/configuration.md is the default: "|" in a regex stays "|"."""
    from pathlib import Path

    import yaml

    from vigil_exporter.config import root_schema
    from vigil_exporter.validation import List, Map, Object
    text = (Path(__file__).parent.parent / "docs/configuration.md").read_text()
    shown = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.replace("\\|", "\x00").split("|")[1:-1]]
        if len(cells) == 4 and cells[2].startswith("`"):
            shown[cells[0].strip("`")] = yaml.safe_load(cells[2].strip("`").replace("\x00", "|"))

    def walk(schema, prefix):
        for name, field in schema.fields.items():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(field, Object):
                yield from walk(field, path)
            elif isinstance(field, Map) and isinstance(field.value, Object):
                yield from walk(field.value, path + ".<name>")
            elif isinstance(field, List) and isinstance(field.item, Object):
                yield from walk(field.item, path + "[]")
            elif not field.required and field.default is not None:
                yield path, field.default() if callable(field.default) else field.default
    defaults = dict(walk(root_schema(), ""))
    assert "collectors.system.devices.exclude" in defaults
    for path, value in defaults.items():
        if value in ({}, [], ""):
            continue
        assert shown.get(path) == value, path
