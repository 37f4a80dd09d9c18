"""A wrong configuration names the file, the key and what is expected; exit 2, no traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vigil_exporter.config import ConfigError, load

CASES = [
    ("interval-word", "collectors:\n  redis:\n    interval: soon\n",
     ['collectors.redis.interval: expected a duration like "15s", got "soon"']),
    ("typo-top-level", "colectors: {}\n",
     ['colectors: unknown key (did you mean "collectors"?)']),
    ("typo-nested", "collectors:\n  system:\n    mountpoint: ['/']\n",
     ['collectors.system.mountpoint: unknown key (did you mean "mountpoints"?)']),
    ("wrong-type", "collectors:\n  system:\n    enabled: maybe\n",
     ['collectors.system.enabled: expected true or false, got "maybe"']),
    ("bad-listen", "listen_address: nowhere\n", ["listen_address: expected a string matching"]),
    ("bad-level", "log_level: loud\n", ['log_level: expected one of "debug"']),
    ("not-yaml", "collectors: [\n", ["line 2, column 1: not valid YAML"]),
    ("top-list", "- a\n- b\n", ["expected a mapping at the top level"]),
    ("query-without-sql", "collectors:\n  business:\n    queries:\n      - name: vigil_x\n"
     "        help: X.\n", ["collectors.business.queries[0].sql: is required"]),
    ("infinite-rate", "alerts:\n  rate_limit: .inf\n",
     ["alerts.rate_limit: expected a number above 0, got inf (not a finite number)"]),
    ("every-fault-at-once", "log_level: loud\ncollectors:\n  redis:\n    interval: soon\n",
     ["log_level: expected", "collectors.redis.interval: expected"]),
]


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_config_is_reported_with_key_path(tmp_path, name, text, expected):
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "vigil_exporter", "check-config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for line in expected:
        assert f"{path}: {line}" in result.stderr, result.stderr


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yml"
    result = subprocess.run([sys.executable, "-m", "vigil_exporter", "serve", "--config", str(missing)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{missing}: cannot read the file" in result.stderr
    assert "Traceback" not in result.stderr


def test_valid_example_config_passes():
    result = subprocess.run([sys.executable, "-m", "vigil_exporter", "check-config",
                             "examples/vigil.yml"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "vigil.yml"
    path.write_text("listen_address: 127.0.0.1:1\n")
    config = load(path, environ={"VIGIL_LISTEN_ADDRESS": "127.0.0.1:2",
                                 "VIGIL_REDIS_URL": "redis://127.0.0.1:3/0"})
    assert config["listen_address"] == "127.0.0.1:2"
    assert config.collector("redis")["instances"]["main"]["url"] == "redis://127.0.0.1:3/0"


def test_no_configuration_means_embedded_sqlite():
    config = load(None, environ={})
    assert config.collector("database")["databases"] == {
        "main": config.collector("database")["databases"]["main"]}
    assert config.collector("database")["databases"]["main"]["url"] == "sqlite:///vigil.db"
    assert config.collector("redis")["instances"] == {}


def test_config_error_lists_every_fault():
    with pytest.raises(ConfigError) as caught:
        load(None, environ={}, overrides={"log_level": "loud", "listen_address": "x"})
    assert len(caught.value.faults) == 2


def test_business_database_must_exist(tmp_path):
    path = tmp_path / "vigil.yml"
    path.write_text("collectors:\n  business:\n    database: reporting\n")
    result = subprocess.run([sys.executable, "-m", "vigil_exporter", "check-config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f'{path}: collectors.business.database: expected the name of a database' in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "database-url"
    secret.write_text("postgresql://vigil:from-a-file@db:5432/app\n")
    config = load(None, environ={"VIGIL_DATABASE_URL_FILE": str(secret)})
    assert config.collector("database")["databases"]["main"]["url"].endswith("@db:5432/app")
    with pytest.raises(ConfigError) as caught:
        load(None, environ={"VIGIL_REDIS_URL_FILE": str(tmp_path / "missing")})
    assert "VIGIL_REDIS_URL_FILE" in str(caught.value)


@pytest.mark.parametrize("key", ["rate_limit", "log_lines_per_second"])
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN"])
def test_numbers_that_are_not_finite_are_refused(tmp_path, key, value):
    """An infinite rate made a 500 (ZeroDivisionError) or a crash at start (OverflowError)."""
    path = tmp_path / "vigil.yml"
    path.write_text(f"alerts:\n  {key}: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert f"{path}: alerts.{key}: expected a number above 0, got " in str(caught.value)
    assert "(not a finite number)" in str(caught.value)
