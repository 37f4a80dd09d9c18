"""Basic auth and the web config as the exporter-toolkit does them: no user enumeration by
timing, checks cached, the toolkit's TLS keys applied or warned about (issue 18, "Web config and
auth"). The 72-byte password, headers on a 401 and a wrong-password flood at shutdown are in
test_hardening_shutdown.py."""
from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess

import bcrypt
import pytest
from aiohttp import web

from vigil_exporter import webconfig
from vigil_exporter.webconfig import BasicAuth, TokenBucket


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def auth():
    """A checker whose bcrypt calls are recorded: (password, hash) per call."""
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=5))
    checker = BasicAuth({"prometheus": hashed})
    checker.calls = []
    check = checker._check
    checker._check = lambda password, hashed: checker.calls.append((password, hashed)) or check(
        password, hashed)
    yield checker
    checker.close()


async def test_an_unknown_user_costs_one_bcrypt_check_like_a_wrong_password(auth):
    """No enumeration by timing, checked by structure rather than by the clock: an unknown user
    pays one bcrypt check against a dummy hash of the known users' cost, as a known user with a
    wrong password pays one against the real hash."""
    assert await auth.allowed(basic("prometheus", "wrong")) is False
    assert await auth.allowed(basic("nobody-at-all", "wrong")) is False
    assert [hashed for _, hashed in auth.calls] == [auth.users["prometheus"], auth._dummy]
    assert webconfig._cost(auth._dummy) == webconfig._cost(auth.users["prometheus"]) == 5
    assert not bcrypt.checkpw(b"wrong", auth._dummy)


async def test_a_good_password_is_checked_once(auth):
    for _ in range(21):
        assert await auth.allowed(basic("prometheus", "right")) is True
    assert auth.calls == [(b"right", auth.users["prometheus"])]  # then from the cache
    assert await auth.allowed(basic("prometheus", "wrong")) is False
    assert len(auth.calls) == 2  # a wrong password is never taken from the cache


async def test_too_many_waiting_checks_are_refused_at_once():
    cheap = BasicAuth({"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))})
    try:
        results = await asyncio.gather(*(cheap.allowed(basic("prometheus", f"w{i}"))
                                         for i in range(BasicAuth.QUEUE + 10)))
    finally:
        cheap.close()
    assert results.count(None) == 10 and results.count(False) == BasicAuth.QUEUE


async def test_checks_at_shutdown_are_a_503_not_a_closed_pools_error():
    """Kept-alive connections still send requests after the server began to shut down (and
    closed the pool): each gets a 503, as does a check that was waiting for the pool."""
    slow = BasicAuth({"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12))})
    checks = [asyncio.ensure_future(slow.allowed(basic("prometheus", f"w{i}")))
              for i in range(BasicAuth.WORKERS + 4)]
    await asyncio.sleep(0.05)  # two checks running, four waiting for the pool
    slow.close()
    results = await asyncio.gather(*checks, return_exceptions=True)
    assert results.count(False) == BasicAuth.WORKERS
    assert [type(r) for r in results if r is not False] == [web.HTTPServiceUnavailable] * 4
    with pytest.raises(web.HTTPServiceUnavailable):
        await slow.allowed(basic("prometheus", "late"))

def test_token_bucket_gives_the_burst_then_one_per_interval():
    now = [0.0]
    bucket = TokenBucket(0.5, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert [bucket.take(), bucket.take()] == [True, False]


# ------------------------------------------------------------------ the toolkit's TLS keys

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
                   check=True, capture_output=True)
    return directory


def _load(certificate, text: str) -> webconfig.WebConfig:
    path = certificate / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n" + text)
    return webconfig.load(str(path))


def test_cipher_suites_are_applied_by_their_go_names(certificate):
    config = _load(certificate, "  max_version: TLS12\n  cipher_suites:\n"
                                "    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n")
    names = {c["name"] for c in config.ssl_context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-ECDSA-AES256-GCM-SHA384"}


async def _handshake(server: ssl.SSLContext, curve: str) -> bool:
    """Whether a client offering only `curve` completes a TLS handshake with `server`."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    client.set_ecdh_curve(curve)  # OpenSSL 3: the only group the client offers
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client), 10)
        writer.close()
        return True
    except (ssl.SSLError, ConnectionError):  # the server's alert, or its reset
        return False
    finally:
        listener.close()


async def test_one_curve_is_applied_several_are_warned_about(certificate):
    config = _load(certificate, "  curve_preferences: [CurveP384]\n")
    assert config.warnings == []
    assert await _handshake(config.ssl_context, "secp384r1") is True
    assert await _handshake(config.ssl_context, "X25519") is False  # the only one applied
    assert await _handshake(_load(certificate, "").ssl_context, "X25519") is True
    warnings = _load(certificate, "  curve_preferences: [X25519, CurveP256]\n").warnings
    assert len(warnings) == 1 and "one curve at most" in warnings[0]


@pytest.mark.parametrize("mode", ["RequireAnyClientCert", "RequestClientCert"])
def test_client_certificates_python_cannot_accept_unverified_are_said_so(certificate, mode):
    config = _load(certificate, f"  client_auth_type: {mode}\n  client_ca_file: cert.pem\n")
    assert config.ssl_context.verify_mode in (ssl.CERT_REQUIRED, ssl.CERT_OPTIONAL)
    assert any("cannot accept a client certificate without verifying it" in w
               for w in config.warnings)


def test_require_any_client_cert_without_a_ca_is_refused(certificate):
    with pytest.raises(webconfig.ConfigError, match="client_ca_file: is required"):
        _load(certificate, "  client_auth_type: RequireAnyClientCert\n")


async def test_the_web_config_rate_limit_answers_429_with_the_headers(tmp_path):
    """rate_limit is applied to every request, as the exporter-toolkit's rate.Limiter: the
    burst at once, then one per interval."""
    import json

    from aiohttp.test_utils import TestClient, TestServer

    from vigil_exporter.app import make_app
    from vigil_exporter.config import load

    path = tmp_path / "vigil.yml"
    path.write_text(json.dumps({"collectors": {"system": {"enabled": False}, "business": {
        "enabled": False}, "database": {"enabled": False}}}))
    (tmp_path / "web.yml").write_text("http_server_config:\n  headers:\n"
                                      "    X-Frame-Options: deny\n"
                                      "rate_limit:\n  interval: 1h\n  burst: 2\n")
    web = webconfig.load(str(tmp_path / "web.yml"))
    async with TestClient(TestServer(make_app(load(path, environ={}), web))) as client:
        answers = [await client.get(p) for p in ("/metrics", "/health", "/metrics", "/info")]
        assert [a.status for a in answers] == [200, 200, 429, 429]
        assert answers[2].headers["X-Frame-Options"] == "deny"


def test_allowed_sans_rate_limit_and_http2_are_read(certificate):
    config = _load(certificate, "  client_auth_type: RequireAndVerifyClientCert\n"
                                "  client_ca_file: cert.pem\n  client_allowed_sans: [a.example]\n"
                                "http_server_config:\n  http2: true\n"
                                "rate_limit:\n  interval: 100ms\n  burst: 5\n")
    assert config.allowed_sans == ["a.example"]
    assert config.rate_limit == (0.1, 5)
    assert any("HTTP/1.1" in w for w in config.warnings)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and two client certificates, one with an
    allowed SAN."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "1", "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem")
    for name, san in (("server", "IP:127.0.0.1"), ("allowed", "DNS:allowed.example"),
                      ("other", "DNS:other.example")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
            f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    return d


async def test_only_clients_with_an_allowed_san_get_in(pki, tmp_path):
    import json

    import aiohttp

    from vigil_exporter.app import make_app
    from vigil_exporter.config import load
    from vigil_exporter.server import listening

    (pki / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
        "  client_allowed_sans: [allowed.example]\n")
    web = webconfig.load(str(pki / "web.yml"))
    path = tmp_path / "vigil.yml"
    path.write_text(json.dumps({"collectors": {"system": {"enabled": False}, "business": {
        "enabled": False}, "database": {"enabled": False}}}))
    statuses = {}
    async with listening(make_app(load(path, environ={}), web), "127.0.0.1", 0,
                         shutdown_timeout=1, ssl_context=web.ssl_context) as port:
        for name in ("allowed", "other"):
            client_context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
            client_context.load_cert_chain(str(pki / f"{name}.pem"), str(pki / f"{name}.key"))
            async with aiohttp.ClientSession() as session:
                async with session.get(f"https://127.0.0.1:{port}/metrics",
                                       ssl=client_context) as response:
                    statuses[name] = response.status
    assert statuses == {"allowed": 200, "other": 403}


@pytest.mark.parametrize("header", ["Basic éé==", "Basic cHJvbWV0aGV1czp3cm9uZw\u00e9",
                                    "Basic \udcff\udcfe", "Basic //79/Q=="])
async def test_a_basic_header_that_is_not_base64_ascii_is_refused(header):
    """Non-ASCII text makes b64decode raise a ValueError that is not a binascii.Error; bytes
    that are not UTF-8 a UnicodeDecodeError: both are a wrong header, not an error."""
    cheap = BasicAuth({"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))})
    try:
        assert await cheap.allowed(header) is False
    finally:
        cheap.close()


async def test_a_non_ascii_basic_header_is_a_401_over_http(tmp_path):
    """Over a raw socket: aiohttp's client would not send these bytes as they are."""
    import json

    from vigil_exporter.app import make_app
    from vigil_exporter.config import load
    from vigil_exporter.server import listening
    from vigil_exporter.webconfig import WebConfig

    path = tmp_path / "vigil.yml"
    path.write_text(json.dumps({"collectors": {"system": {"enabled": False}, "business": {
        "enabled": False}, "database": {"enabled": False}}}))
    users = {"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))}
    async with listening(make_app(load(path, environ={}), WebConfig(users=users)), "127.0.0.1", 0,
                         shutdown_timeout=1) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Authorization: Basic \u00e9\u00e9==\r\n\r\n".encode())
        answer = await reader.read()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


GOOD_HASH = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()  # $2b$04$ + 53


@pytest.mark.parametrize("hashed", [
    "$2b$03$" + GOOD_HASH[7:],        # below the cost gensalt accepts: a traceback at start
    "$2b$32$" + GOOD_HASH[7:],        # above it
    "$2b$99$" + GOOD_HASH[7:],
    "$2$04$" + GOOD_HASH[7:],         # bcrypt refuses it as an invalid salt at every check
    GOOD_HASH[:28] + "A" + GOOD_HASH[29:],  # the salt's last character holds 2 bits only
    GOOD_HASH[:-1] + "!",             # not bcrypt's base64 (a typo bcrypt would let pass)
    GOOD_HASH[:-1],                   # one character short
], ids=["cost-03", "cost-32", "cost-99", "2-prefix", "salt-bits", "alphabet", "short"])
@pytest.mark.parametrize("where", ["web", "alerts"])
def test_a_hash_bcrypt_cannot_check_is_a_config_error(tmp_path, vigil_cli, hashed, where):
    """Each was accepted before, then made a traceback at start (gensalt for the dummy hash) or
    a user refused forever with nothing said (checkpw raising "Invalid salt")."""
    web_config = tmp_path / "web.yml"
    config = tmp_path / "vigil.yml"
    users = f"basic_auth_users:\n  alice: '{hashed}'\n"
    if where == "web":
        web_config.write_text(users)
        config.write_text(f"web:\n  config_file: {web_config}\n")
        faulty, key = web_config, "basic_auth_users.alice"
    else:
        config.write_text("alerts:\n  " + users.replace("\n  ", "\n    "))
        faulty, key = config, "alerts.basic_auth_users.alice"
    result = vigil_cli("check-config", config)
    assert result.returncode == 2, result.stderr
    assert f"{faulty}: {key}: expected a bcrypt hash: $2a$, $2b$, $2x$ or $2y$, a cost from 04 " \
           "to 31" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2x$", "$2y$"])
async def test_every_bcrypt_prefix_is_accepted_and_checked(prefix):
    from vigil_exporter.config import bcrypt_hash
    from vigil_exporter.validation import Errors

    hashed = prefix + GOOD_HASH[4:]
    errors = Errors()
    assert bcrypt_hash().validate(hashed, "h", errors) == hashed and not errors.faults
    checker = BasicAuth({"prometheus": hashed.encode()})
    try:
        assert await checker.allowed(basic("prometheus", "right")) is True
        assert webconfig._cost(checker._dummy) == 4
        assert bcrypt.checkpw(b"right", checker._dummy) is False  # checkable, matching nothing
    finally:
        checker.close()
