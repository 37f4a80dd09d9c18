"""Basic auth and the web config as the exporter-toolkit does them: no user enumeration by
timing, checks cached, the toolkit's TLS keys applied or warned about (issue 18, "Web config and
auth"). The 72-byte password, headers on a 401 and a wrong-password flood at shutdown are in
test_hardening_shutdown.py."""
from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
import time

import bcrypt
import pytest

from vigil_exporter import webconfig
from vigil_exporter.webconfig import BasicAuth, TokenBucket


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def auth():
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10))
    checker = BasicAuth({"prometheus": hashed})
    yield checker
    checker.close()


async def _seconds(auth: BasicAuth, header: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        assert await auth.allowed(header) is False
        best = min(best, time.perf_counter() - started)
    return best


async def test_unknown_users_take_as_long_as_wrong_passwords(auth):
    known = await _seconds(auth, basic("prometheus", "wrong"))
    unknown = await _seconds(auth, basic("nobody-at-all", "wrong"))
    assert known > 0.01  # bcrypt cost 10 really ran
    assert 0.5 < unknown / known < 2.0, (unknown, known)


async def test_a_good_password_is_checked_once(auth):
    assert await auth.allowed(basic("prometheus", "right")) is True
    started = time.perf_counter()
    for _ in range(20):
        assert await auth.allowed(basic("prometheus", "right")) is True
    assert time.perf_counter() - started < 0.01  # 20 checks without bcrypt


async def test_too_many_waiting_checks_are_refused_at_once():
    cheap = BasicAuth({"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))})
    try:
        results = await asyncio.gather(*(cheap.allowed(basic("prometheus", f"w{i}"))
                                         for i in range(BasicAuth.QUEUE + 10)))
    finally:
        cheap.close()
    assert results.count(None) == 10 and results.count(False) == BasicAuth.QUEUE


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


def test_one_curve_is_applied_several_are_warned_about(certificate):
    assert _load(certificate, "  curve_preferences: [CurveP256]\n").warnings == []
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
