"""TLS and basic auth from an exporter-toolkit web config; secrets never leak."""
from __future__ import annotations

import base64
import ssl
import subprocess
import urllib.error
import urllib.request
from urllib.parse import quote

import bcrypt
import pytest

PASSWORD = "s3cret-Passw0rd"
DB_PASSWORD = "db-Pa55/word-xyz"  # a "/" as generated passwords have: redaction parses


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
                   check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def secured(certificate, redis_server, start_exporter):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode()
    web_config = certificate / "web.yml"
    web_config.write_text(f"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
                          f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    config = {"collectors": {
        "system": {"enabled": False}, "business": {"enabled": False},
        "redis": {"interval": "1s", "instances": {"cache": {
            "url": f"redis://:{quote(DB_PASSWORD, safe='')}@127.0.0.1:{redis_server.port}/0"}}},
        "database": {"interval": "1s", "databases": {"main": {
            "url": f"postgresql://vigil:{DB_PASSWORD}@127.0.0.1:1/vigil"}}}}}
    context = ssl.create_default_context(cafile=str(certificate / "cert.pem"))
    # every request of the component goes over TLS with this context; ready once /health/live
    # (open without credentials) answers over it
    running = start_exporter(config, args=("--web.config.file", str(web_config)),
                             ssl_context=context, ready_path="/health/live")
    yield running, context
    running.stop()


def _auth(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_tls_with_right_password(secured):
    running, context = secured
    with running.get("/metrics", headers=_auth("prometheus", PASSWORD)) as r:
        assert r.status == 200
        assert b"vigil_build_info" in r.read()


@pytest.mark.parametrize("headers", [{}, _auth("prometheus", "wrong"), _auth("nobody", PASSWORD),
                                     {"Authorization": "Basic !!notbase64"}])
def test_wrong_or_missing_credentials_get_401(secured, headers):
    running, context = secured
    with pytest.raises(urllib.error.HTTPError) as caught:
        running.get("/metrics", headers=headers)
    assert caught.value.code == 401
    assert "Basic" in caught.value.headers["WWW-Authenticate"]


def test_liveness_stays_open_for_healthchecks(secured):
    running, context = secured
    with running.get("/health/live") as r:
        assert r.status == 200


def test_plain_http_is_refused(secured):
    running, _ = secured
    assert running.url.startswith("https://")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://{running.address}/metrics", timeout=2).read()
    with pytest.raises(urllib.error.URLError):  # nor TLS without trusting the certificate
        urllib.request.urlopen(running.url + "/metrics", timeout=2).read()


def test_no_password_in_any_output(secured):
    import time
    running, context = secured
    time.sleep(2.5)  # a few failing rounds of the database collector
    headers = _auth("prometheus", PASSWORD)
    outputs = [_body(running, path, headers) for path in ("/metrics", "/health", "/info", "/")]
    outputs.append(running.log())
    assert any("127.0.0.1:1" in output for output in outputs)  # the URL is shown, redacted
    for output in outputs:
        assert DB_PASSWORD not in output and quote(DB_PASSWORD, safe="") not in output
        assert "word-xyz" not in output  # nor the part after the "/"
        assert PASSWORD not in output


def _body(running, path, headers) -> str:
    try:
        return running.text(path, headers=headers)
    except urllib.error.HTTPError as exc:  # /health is 503 here: the database is unreachable
        return exc.read().decode()


def test_bad_web_config_exits_2(tmp_path):
    bad = tmp_path / "web.yml"
    bad.write_text("basic_auth_users:\n  alice: plaintext\ntls_server_config:\n  cert_file: x\n")
    result = subprocess.run(["python", "-m", "vigil_exporter", "serve", "--web.config.file", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "basic_auth_users.alice: expected a bcrypt hash: " in result.stderr
    assert "tls_server_config.key_file: is required" in result.stderr
    assert "Traceback" not in result.stderr
