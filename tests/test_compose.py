"""docker-compose.yml, the Dockerfile and the bundle agree with each other and with the local stack.

`docker-compose config` (Debian's docker-compose 1.29, which needs no Docker engine) validates and
resolves the file for every profile; the checks below then read the resolved file, so defaults,
anchors and relative paths are what compose itself makes of them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path, PurePosixPath

import pytest
import yaml

import vigil_exporter
from vigil_exporter.tools.stack import configs
from vigil_exporter.tools.stack.compose import VARIANTS, render_variants
from vigil_exporter.tools.stack.stack import DEFAULT_PORTS
from vigil_exporter.validation import parse_duration

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROFILES = {"default": [], "ha": ["ha"], "scale-out": ["scale-out"], "all": ["ha", "scale-out"]}
ONE_SHOT = {"alertmanager-config"}  # runs once; others wait for service_completed_successfully

# Contract: job -> (compose service, port) of prometheus/prometheus.yml's targets.
JOBS = {"vigil": ("vigil", 9477), "vigil-demo": ("demo", 8080),
        "prometheus": ("prometheus", 9090), "alertmanager": ("alertmanager", 9093)}


def compose(*args: str, env_file: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed: run the test command (bash scripts/test.sh)"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIGIL_", "COMPOSE_", "POSTGRES_", "GF_", "PROMETHEUS_",
                                "VICTORIAMETRICS_"))}
    return subprocess.run([binary, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
                           "--env-file", str(env_file), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def empty_env(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def resolved(empty_env) -> dict[str, dict]:
    """The compose file as docker-compose resolves it, per profile set (defaults only)."""
    out = {}
    for name, profiles in PROFILES.items():
        flags = [arg for p in profiles for arg in ("--profile", p)]
        done = compose(*flags, "config", env_file=empty_env)
        assert done.returncode == 0, f"docker-compose config ({name}) failed:\n{done.stderr}"
        out[name] = yaml.safe_load(done.stdout)
        out[name]["x-stderr"] = done.stderr
    return out


@pytest.fixture(scope="module")
def full(resolved) -> dict:
    return resolved["all"]


def services(config: dict) -> dict[str, dict]:
    return config["services"]


def bundle_yaml(relative: str) -> dict:
    return yaml.safe_load((ROOT / relative).read_text())


def container_port(service: dict) -> int:
    """The container side of a service's (first) published port."""
    spec = service["ports"][0]
    text = spec if isinstance(spec, str) else f"{spec.get('published')}:{spec['target']}"
    return int(re.split(r"[:/]", text.split("/")[0])[-1])


def host_port(service: dict) -> int:
    spec = service["ports"][0]
    return int(spec.split(":")[-2]) if isinstance(spec, str) else int(spec["published"])


def bind_mounts(service: dict) -> list[tuple[str, str, str]]:
    """(host path, container path, mode) of every bind mount of a service."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
        else:
            source, target = volume.get("source", ""), volume["target"]
            mode = "ro" if volume.get("read_only") else "rw"
        if source.startswith("/"):
            mounts.append((source, target, mode))
    return mounts


def host_path_for(service: dict, container_path: str) -> Path | None:
    """The host file behind a container path, through the service's bind mounts."""
    path = PurePosixPath(container_path)
    for source, target, _ in sorted(bind_mounts(service), key=lambda m: -len(m[1])):
        try:
            return Path(source) / path.relative_to(target)
        except ValueError:
            continue
    return None


def flag(service: dict, name: str) -> str | None:
    for arg in service.get("command") or []:
        if isinstance(arg, str) and arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


# --- docker-compose itself -----------------------------------------------------------------------

@pytest.mark.parametrize("profile", PROFILES)
def test_docker_compose_config_validates(profile, resolved):
    # `resolved` ran `docker-compose [--profile P] config`, which failed the fixture if invalid
    assert resolved[profile]["services"]
    assert "WARNING" not in resolved[profile]["x-stderr"]  # e.g. a variable without default


def test_env_example_is_accepted_and_documents_every_variable(empty_env):
    done = compose("--profile", "ha", "--profile", "scale-out", "config", "--quiet",
                   env_file=ROOT / ".env.example")
    assert done.returncode == 0, done.stderr
    used = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    documented = set(re.findall(r"^#?\s*(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used - documented == set(), "variables of docker-compose.yml missing in .env.example"
    assert {"COMPOSE_PROFILES"} | used >= documented, "unused variables in .env.example"


def test_profiles_add_exactly_their_services(full):
    by_profile: dict[str, set[str]] = {}
    for name, service in services(full).items():
        for profile in service.get("profiles") or ["default"]:
            by_profile.setdefault(profile, set()).add(name)
    assert by_profile == {
        "default": {"postgres", "redis", "vigil", "demo", "alertmanager-config", "alertmanager",
                    "prometheus", "grafana"},
        "ha": {"prometheus-2", "alertmanager-2"},
        "scale-out": {"victoriametrics"},
    }


# --- images, health, ordering, data --------------------------------------------------------------

# Full patch versions, never a floating tag. PostgreSQL stays on 16 (a new major needs a
# pg_upgrade of the volume); the others follow their current releases (docs/deployment.md).
PINNED = {
    "postgres": r"postgres:16\.\d+-bookworm$",
    "redis": r"redis:7\.4\.\d+-bookworm$",
    "prometheus": r"prom/prometheus:v3\.\d+\.\d+$",
    "prometheus-2": r"prom/prometheus:v3\.\d+\.\d+$",
    "alertmanager": r"prom/alertmanager:v0\.\d+\.\d+$",
    "alertmanager-2": r"prom/alertmanager:v0\.\d+\.\d+$",
    "grafana": r"grafana/grafana:12\.\d+\.\d+$",  # 11.4 predates the CVE-2025-4123 fix
    "victoriametrics": r"victoriametrics/victoria-metrics:v1\.\d+\.\d+$",
}


VIGIL_IMAGE = f"vigil:{vigil_exporter.__version__}"


def test_every_image_has_an_explicit_pinned_tag(full):
    for name, service in services(full).items():
        image = service["image"]
        if name in ("vigil", "demo", "alertmanager-config"):
            assert image == VIGIL_IMAGE, name
        else:
            assert re.match(PINNED[name], image), f"{name}: {image} is not pinned as expected"


def test_the_images_are_the_documented_ones(full):
    """docs/deployment.md's service table names the very tags compose runs."""
    documented = set(re.findall(r"`([\w./-]+:[\w.-]+)`", (ROOT / "docs/deployment.md").read_text()))
    for name, service in services(full).items():
        assert service["image"] in documented, f"{name}: {service['image']} not in docs/deployment.md"
    pairs = {services(full)[a]["image"] == services(full)[b]["image"]
             for a, b in (("prometheus", "prometheus-2"), ("alertmanager", "alertmanager-2"))}
    assert pairs == {True}, "an HA pair runs two versions"


@pytest.mark.parametrize("profile", PROFILES)
def test_the_vigil_image_is_built_once(profile, resolved):
    """One service builds the image; the others run it and never pull it (several services
    building one image at once fail with Compose v2 and buildx)."""
    config = services(resolved[profile])
    builders = [name for name, service in config.items() if "build" in service]
    assert builders == ["vigil"], builders
    assert config["vigil"]["build"]["context"] == str(ROOT)
    assert config["vigil"]["image"] == VIGIL_IMAGE
    assert config["vigil"].get("pull_policy") in (None, "missing")  # builds when missing
    users = [name for name, service in config.items() if service["image"] == VIGIL_IMAGE]
    assert set(users) == {"vigil", "demo", "alertmanager-config"}
    for name in set(users) - {"vigil"}:
        assert config[name].get("pull_policy") == "never", f"{name} would pull {VIGIL_IMAGE}"


APP_SIDE = {"vigil", "demo", "postgres", "redis"}
MONITORING_SIDE = {"prometheus", "prometheus-2", "alertmanager", "alertmanager-2", "grafana",
                   "victoriametrics"}


def dependencies(config: dict, name: str) -> set[str]:
    """Every service `name` waits for, directly or through others."""
    found, todo = set(), [name]
    while todo:
        for dependency in services(config)[todo.pop()].get("depends_on") or {}:
            if dependency not in found:
                found.add(dependency)
                todo.append(dependency)
    return found


def test_the_monitoring_side_starts_whatever_the_app_side_does(full):
    """A database that never turns healthy keeps the exporter and the demo unhealthy; the
    monitoring must start anyway, or nothing alerts (JobDown is what fires)."""
    for name in MONITORING_SIDE & set(services(full)):
        waits_for = dependencies(full, name)
        assert not waits_for & APP_SIDE, f"{name} waits for {sorted(waits_for & APP_SIDE)}"


def test_healthchecks_and_depends_on_conditions_everywhere(full):
    for name, service in services(full).items():
        if name in ONE_SHOT:
            assert service["healthcheck"] in ({"disable": True}, {"test": ["NONE"]})
            assert service["restart"] == "no"
        else:
            test = service["healthcheck"]["test"]
            assert test[0] == "CMD" and len(test) > 1, name
            assert service["restart"] == "unless-stopped", name
        for dependency, condition in (service.get("depends_on") or {}).items():
            expected = ("service_completed_successfully" if dependency in ONE_SHOT
                        else "service_started" if name in MONITORING_SIDE
                        else "service_healthy")
            assert condition == {"condition": expected}, f"{name} -> {dependency}"
    order = services(full)
    assert "depends_on" not in order["prometheus"]
    assert set(order["demo"]["depends_on"]) == {"postgres", "redis", "vigil"}
    assert set(order["grafana"]["depends_on"]) == {"prometheus"}


def test_python_healthchecks_use_the_standard_library(full):
    for name in ("vigil", "demo"):
        test = services(full)[name]["healthcheck"]["test"]
        assert test[1:3] == ["python", "-c"] and "urllib.request" in test[3]
        port = container_port(services(full)[name])
        assert f"127.0.0.1:{port}/" in test[3]
    assert "/health/live" in services(full)["vigil"]["healthcheck"]["test"][3]


DATA_DIRS = {"postgres": "/var/lib/postgresql/data", "redis": "/data", "vigil": "/var/lib/vigil",
             "prometheus": "/prometheus", "prometheus-2": "/prometheus",
             "alertmanager": "/alertmanager", "alertmanager-2": "/alertmanager",
             "grafana": "/var/lib/grafana", "victoriametrics": "/victoria-metrics-data"}


def test_data_lives_in_named_volumes(full):
    declared = set(full["volumes"])
    for name, directory in DATA_DIRS.items():
        volumes = [v for v in services(full)[name]["volumes"]
                   if isinstance(v, str) and v.split(":")[1] == directory]
        assert volumes, f"{name}: no volume at {directory}"
        assert volumes[0].split(":")[0] in declared, f"{name}: {volumes[0]} is not a named volume"
    assert "--appendonly" in services(full)["redis"]["command"]
    data_dirs = {flag(services(full)["prometheus"], "--storage.tsdb.path"),
                 flag(services(full)["alertmanager"], "--storage.path"),
                 flag(services(full)["victoriametrics"], "-storageDataPath")}
    assert data_dirs == {"/prometheus", "/alertmanager", "/victoria-metrics-data"}


def test_every_mounted_file_exists_and_the_bundle_is_read_only(full):
    for name, service in services(full).items():
        for source, _target, mode in bind_mounts(service):
            assert Path(source).exists(), f"{name}: mounts {source}, which does not exist"
            assert Path(source).resolve().is_relative_to(ROOT), f"{name}: {source}"
            assert mode == "ro", f"{name}: {source} must be mounted read-only"
    for secret in full["secrets"].values():
        assert Path(secret["file"]).is_file(), secret


def test_published_ports_match_the_docs_and_the_local_stack(full):
    expected = {"vigil": (9477, 9477), "demo": (8080, 8080), "prometheus": (9090, 9090),
                "alertmanager": (9093, 9093), "grafana": (3001, 3000),
                "prometheus-2": (9091, 9090), "alertmanager-2": (9095, 9093),
                "victoriametrics": (8428, 8428)}
    for name, (published, target) in expected.items():
        service = services(full)[name]
        assert (host_port(service), container_port(service)) == (published, target), name
        assert service["ports"][0].startswith("127.0.0.1:"), f"{name}: bind to 127.0.0.1"
        local = configs.SERVICE_COMPONENTS.get(name)
        if local:
            assert DEFAULT_PORTS[local] == published, f"vigil stack up's port for {local}"
    assert "postgres" not in [n for n, s in services(full).items() if s.get("ports")]


def test_secrets_are_not_in_the_files(full):
    text = COMPOSE_FILE.read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|TOKEN)\w*:\s*\S", line) and \
                not re.search(r"_FILE:\s*/run/secrets/", line):
            assert "${" in line, f"literal secret in docker-compose.yml: {line.strip()}"
    for path in (ROOT / "deploy" / "secrets.example").iterdir():
        if path.name != "README.md":
            text = path.read_text()
            assert any(mark in text for mark in (".invalid", "replace", "change-me")), path
            assert not text.endswith("\n"), f"{path}: a secret file ends without a newline"
    for name, service in services(full).items():
        for key, value in (service.get("environment") or {}).items():
            assert not re.search(r"://[^/@\s]*:[^@\s]+@", str(value)), f"{name}: {key} holds a password"
        assert not any(re.search(r"://[^/@\s]*:[^@\s]+@", str(arg)) for arg in
                       service.get("command") or []), f"{name}: a password on the command line"


# --- agreement with prometheus.yml, Grafana and Alertmanager -------------------------------------

def _prometheus_configs() -> dict[str, dict]:
    out = {"prometheus/prometheus.yml": bundle_yaml("prometheus/prometheus.yml")}
    for name in VARIANTS:
        out[f"deploy/prometheus/{name}"] = bundle_yaml(f"deploy/prometheus/{name}")
    return out


def listening_port(name: str, service: dict) -> int:
    if name == "victoriametrics":
        return int(flag(service, "-httpListenAddr").rsplit(":", 1)[1])
    return container_port(service)


def test_prometheus_targets_are_compose_services_on_their_ports(full):
    for source, config in _prometheus_configs().items():
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        for job_name in JOBS:
            assert job_name in jobs, f"{source}: no job {job_name}"
        for job in config["scrape_configs"]:
            for static in job["static_configs"]:
                for target in static["targets"]:
                    host, _, port = target.rpartition(":")
                    # never localhost: the HA replicas scrape each other by name
                    assert host in services(full), f"{source}: {target} is no compose service"
                    assert int(port) == listening_port(host, services(full)[host]), target
                    if job["job_name"] in JOBS:
                        assert JOBS[job["job_name"]] == (host, int(port)) or \
                            host in configs.HA_REPLICAS.values(), f"{source}: {target}"
        for manager in config["alerting"]["alertmanagers"]:
            for target in manager["static_configs"][0]["targets"]:
                host, _, port = target.rpartition(":")
                assert host in ("alertmanager", "alertmanager-2"), target
                assert int(port) == container_port(services(full)[host])
        for remote in config.get("remote_write") or []:
            url = urllib.parse.urlsplit(remote["url"])
            assert url.port == listening_port(url.hostname, services(full)[url.hostname])


def test_prometheus_config_files_and_rules_resolve_inside_the_container(full):
    service = services(full)["prometheus"]
    default = flag(service, "--config.file")
    assert default == "/etc/prometheus/prometheus.yml"
    assert host_path_for(service, default) == ROOT / "prometheus" / "prometheus.yml"
    for source, config in _prometheus_configs().items():
        config_dir = PurePosixPath("/etc/prometheus") if source.startswith("prometheus/") \
            else PurePosixPath("/etc/vigil/prometheus")
        assert host_path_for(service, str(config_dir / Path(source).name)) == ROOT / source
        for rule_file in config["rule_files"]:
            path = host_path_for(service, str(config_dir / rule_file))
            assert path and path.is_file(), f"{source}: rule file {rule_file} is not mounted"
    ha_default = flag(services(full)["prometheus-2"], "--config.file")
    assert host_path_for(service, ha_default) == ROOT / "deploy/prometheus/prometheus.ha.yml"
    # the values .env.example offers for VIGIL_PROMETHEUS_CONFIG exist in the container
    offered = re.findall(r"VIGIL_PROMETHEUS_CONFIG=(\S+)", (ROOT / ".env.example").read_text())
    assert len(offered) == 3
    for value in offered:
        assert host_path_for(service, value).is_file(), value


def test_prometheus_variants_are_fresh_and_valid(tmp_path):
    for name, text in render_variants(ROOT).items():
        assert (ROOT / "deploy/prometheus" / name).read_text() == text, \
            f"deploy/prometheus/{name} is stale: run `python -m vigil_exporter.tools.stack.compose`"
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run the test command (bash scripts/test.sh)"
    for name in VARIANTS:
        done = subprocess.run([promtool, "check", "config", "--syntax-only",
                               str(ROOT / "deploy/prometheus" / name)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_variants_change_only_what_their_profile_needs():
    base = bundle_yaml("prometheus/prometheus.yml")
    ha = bundle_yaml("deploy/prometheus/prometheus.ha.yml")
    rw = bundle_yaml("deploy/prometheus/prometheus.remote-write.yml")
    assert ha["global"] == rw["global"] == base["global"]
    assert ha["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093", "alertmanager-2:9093"]
    assert [j["job_name"] for j in ha["scrape_configs"]] == \
        [j["job_name"] for j in base["scrape_configs"]]
    assert [j["job_name"] for j in rw["scrape_configs"]] == \
        [j["job_name"] for j in base["scrape_configs"]] + ["victoriametrics"]
    assert rw["remote_write"][0]["url"] == "http://victoriametrics:8428/api/v1/write"
    assert "remote_write" not in ha and "remote_write" not in base


ROUTED = {"prometheus": "prometheus", "prometheus-2": "prometheus",
          "alertmanager": "alertmanager", "alertmanager-2": "alertmanager"}


def route_prefixes(config: dict) -> dict[str, str]:
    """--web.route-prefix of every Prometheus and Alertmanager service: set explicitly, equal
    within each pair. Without it both servers move every route under their external URL's path."""
    found = {name: flag(services(config)[name], "--web.route-prefix") for name in ROUTED}
    assert None not in found.values(), f"--web.route-prefix missing: {found}"
    by_kind = {}
    for name, prefix in found.items():
        assert prefix.startswith("/"), (name, prefix)
        assert by_kind.setdefault(ROUTED[name], prefix) == prefix, f"{name}: {prefix}"
    return by_kind


def test_health_checks_follow_the_route_prefix(full):
    prefixes = route_prefixes(full)
    for name, kind in ROUTED.items():
        service = services(full)[name]
        test = service["healthcheck"]["test"]
        ready = f"http://127.0.0.1:{container_port(service)}{prefixes[kind].rstrip('/')}/-/ready"
        assert test[-1] == ready, (name, test)


def test_prometheus_reaches_alertmanager_and_itself_under_their_route_prefixes(full):
    """path_prefix (alerts) and metrics_path (self-scrapes) derived from the route prefixes,
    in prometheus.yml and in every profile's config."""
    prefixes = route_prefixes(full)
    for path in [ROOT / "prometheus/prometheus.yml", *(ROOT / "deploy/prometheus").glob("*.yml")]:
        config = yaml.safe_load(path.read_text())
        derived = configs.prometheus_routes(config, prefixes["prometheus"], prefixes["alertmanager"])
        assert config == derived, f"{path.name}: path_prefix or metrics_path differ from the route prefixes"


def test_an_external_url_with_a_path_moves_no_route(tmp_path):
    """VIGIL_*_URL with a sub-path (.env.example's example) changes the links only."""
    env = tmp_path / "proxy.env"
    env.write_text("VIGIL_PROMETHEUS_URL=https://ops.example.com/prometheus\n"
                   "VIGIL_ALERTMANAGER_URL=https://ops.example.com/alertmanager\n")
    done = compose("--profile", "ha", "config", env_file=env)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert flag(services(config)["prometheus"], "--web.external-url") == \
        "https://ops.example.com/prometheus"
    assert route_prefixes(config) == {"prometheus": "/", "alertmanager": "/"}
    test_health_checks_follow_the_route_prefix(config)


def grafana_provisioning(config: dict) -> dict[str, list]:
    """The datasources (and deleteDatasources) of every file mounted into Grafana's
    provisioning directory."""
    out: dict[str, list] = {"datasources": [], "deleteDatasources": []}
    for source, target, _ in bind_mounts(services(config)["grafana"]):
        if target.startswith("/etc/grafana/provisioning/datasources/"):
            document = yaml.safe_load(Path(source).read_text())
            assert document["apiVersion"] == 1, source
            for key in out:
                out[key] += document.get(key) or []
    return out


def test_victoriametrics_datasource_only_with_its_profile(full, tmp_path):
    """Without the profile Grafana offers no VictoriaMetrics (and deletes one provisioned
    before); with .env.example's scale-out lines it does."""
    default = grafana_provisioning(full)
    assert [d["name"] for d in default["datasources"]] == ["Prometheus"]
    assert [d["name"] for d in default["deleteDatasources"]] == ["VictoriaMetrics"]
    lines = [line.lstrip("#") for line in (ROOT / ".env.example").read_text().splitlines()
             if line.startswith("#VIGIL_GRAFANA_VICTORIAMETRICS_DATASOURCE=")]
    assert lines, ".env.example does not say how to provision VictoriaMetrics"
    env = tmp_path / "scale-out.env"
    env.write_text(lines[0] + "\n")
    done = compose("--profile", "scale-out", "config", env_file=env)
    assert done.returncode == 0, done.stderr
    scaled = yaml.safe_load(done.stdout)
    provisioned = {d["name"]: d for d in grafana_provisioning(scaled)["datasources"]}
    assert set(provisioned) == {"Prometheus", "VictoriaMetrics"}
    assert grafana_provisioning(scaled)["deleteDatasources"] == []
    url = urllib.parse.urlsplit(provisioned["VictoriaMetrics"]["url"])
    assert url.port == listening_port(url.hostname, services(scaled)[url.hostname])
    assert provisioned["VictoriaMetrics"]["isDefault"] is False
    assert provisioned["VictoriaMetrics"]["jsonData"]["timeInterval"] == \
        provisioned["Prometheus"]["jsonData"]["timeInterval"]


def test_grafana_provisioning_agrees_with_the_services(full):
    grafana = services(full)["grafana"]
    scrape_interval = bundle_yaml("prometheus/prometheus.yml")["global"]["scrape_interval"]
    mounted = {target for _, target, _ in bind_mounts(grafana)}
    for path in sorted((ROOT / "grafana/provisioning/datasources").glob("*.y*ml")):
        assert f"/etc/grafana/provisioning/datasources/{path.name}" in mounted, \
            f"{path} is not mounted into Grafana"
    by_url = {}
    for datasource in grafana_provisioning(full)["datasources"]:
        url = urllib.parse.urlsplit(datasource["url"])
        assert url.hostname in services(full), datasource["url"]
        assert url.port == listening_port(url.hostname, services(full)[url.hostname])
        if url.hostname in ROUTED:
            assert url.path.rstrip("/") == route_prefixes(full)[url.hostname].rstrip("/")
        assert datasource["jsonData"]["timeInterval"] == scrape_interval, datasource["name"]
        by_url[url.hostname] = datasource
    assert by_url["prometheus"]["isDefault"] is True
    assert "victoriametrics" not in by_url  # only with its profile (next test)
    # dashboards: the provider's path is where grafana/dashboards is mounted
    for provider in bundle_yaml("grafana/provisioning/dashboards/vigil.yml")["providers"]:
        assert host_path_for(grafana, provider["options"]["path"]) == ROOT / "grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path_for(grafana, home).is_file(), home
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "admin"


def test_alertmanager_config_agrees_with_the_services(full):
    config = bundle_yaml("alertmanager/alertmanager.yml")
    render = services(full)["alertmanager-config"]
    argv = render["command"]
    assert argv[:2] == ["alerts", "render-config"]
    assert host_path_for(render, argv[2]) == ROOT / "alertmanager" / "alertmanager.yml"
    rendered_volume = next(v.split(":")[0] for v in render["volumes"]
                           if isinstance(v, str) and v.split(":")[1] == str(
                               PurePosixPath(argv[argv.index("--output") + 1]).parent))
    for name in ("alertmanager", "alertmanager-2"):
        service = services(full)[name]
        config_file = PurePosixPath(flag(service, "--config.file"))
        volume = next(v for v in service["volumes"] if v.split(":")[1] == str(config_file.parent))
        assert volume.split(":")[0] == rendered_volume, name
        for pattern in config.get("templates") or []:
            directory = host_path_for(service, str(config_file.parent / pattern))
            assert directory and list(directory.parent.glob(directory.name)), pattern
        # every *_file of the config is a Docker secret of the service
        targets = {s["target"] for s in service["secrets"]}
        files = {v for k, v in config.get("global", {}).items() if k.endswith("_file")}
        assert files <= targets, f"{name}: secrets missing for {files - targets}"
    # webhooks that stay inside the stack point at a compose service, on its port and route
    internal = []
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs") or []:
            url = urllib.parse.urlsplit(hook["url"])
            if url.hostname.endswith(".invalid"):
                continue
            assert url.hostname in services(full), hook["url"]
            assert url.port == container_port(services(full)[url.hostname]), hook["url"]
            internal.append(url)
    assert [(u.hostname, u.port, u.path) for u in internal] == [
        ("vigil", 9477, "/alerts/webhook")]
    from vigil_exporter.alerting.receiver import WEBHOOK_PATH
    assert internal[0].path == WEBHOOK_PATH


def test_alertmanager_cluster_of_the_ha_profile(full):
    first, second = services(full)["alertmanager"], services(full)["alertmanager-2"]
    listen = flag(first, "--cluster.listen-address")
    assert flag(second, "--cluster.peer") == f"alertmanager:{listen.rsplit(':', 1)[1]}"
    assert flag(second, "--cluster.listen-address") == listen


def secret_text(full, service: dict, variable: str) -> str:
    """The content of the Docker secret a service's `*_FILE` variable names."""
    target = service["environment"][variable]
    for secret in service["secrets"]:
        if secret.get("target", f"/run/secrets/{secret['source']}") == target or \
                f"/run/secrets/{secret['source']}" == target:
            return Path(full["secrets"][secret["source"]]["file"]).read_text()
    raise AssertionError(f"{variable}={target} is no secret of the service")


def test_exporter_config_agrees_with_the_services(full):
    config = bundle_yaml("deploy/vigil.compose.yml")
    vigil = services(full)["vigil"]
    assert host_path_for(vigil, "/etc/vigil/vigil.yml") == ROOT / "deploy/vigil.compose.yml"
    assert vigil["command"][:3] == ["serve", "--config", "/etc/vigil/vigil.yml"]
    assert int(config["listen_address"].rsplit(":", 1)[1]) == container_port(vigil)
    urls = [db["url"] for db in config["collectors"]["database"]["databases"].values()]
    urls += [r["url"] for r in config["collectors"]["redis"]["instances"].values()]
    database_url = secret_text(full, vigil, "VIGIL_DATABASE_URL_FILE")
    urls.append(database_url)
    ports = {"postgres": 5432, "redis": 6379}
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname in services(full), url
        assert parts.port == ports[parts.hostname], url
    assert PurePosixPath(config["alerts"]["log_file"]).parent == PurePosixPath("/var/lib/vigil")
    postgres = services(full)["postgres"]
    env_url = urllib.parse.urlsplit(database_url)
    assert (env_url.username, env_url.password, env_url.path) == (
        postgres["environment"]["POSTGRES_USER"],
        secret_text(full, postgres, "POSTGRES_PASSWORD_FILE"),
        "/" + postgres["environment"]["POSTGRES_DB"])
    done = subprocess.run([sys.executable, "-m", "vigil_exporter", "check-config",
                           str(ROOT / "deploy/vigil.compose.yml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_demo_service_uses_the_same_database_and_redis(full):
    demo, vigil = services(full)["demo"], services(full)["vigil"]
    argv = demo["command"]
    assert argv[0] == "demo"
    assert "--database-url" not in argv
    assert demo["environment"]["VIGIL_DATABASE_URL_FILE"] == \
        vigil["environment"]["VIGIL_DATABASE_URL_FILE"]
    assert demo["secrets"] == vigil["secrets"]
    assert argv[argv.index("--redis-url") + 1].startswith("redis://redis:6379/")
    assert argv[argv.index("--listen") + 1].endswith(f":{container_port(demo)}")


def test_the_local_stack_plays_every_compose_service(full):
    """vigil stack up runs a component for every service but Grafana and the one-shot job."""
    local = set(services(full)) - {"grafana"} - ONE_SHOT
    assert local == set(configs.SERVICE_COMPONENTS)
    # Redis runs with the same memory limit (the Redis memory alerts need one)
    from vigil_exporter.tools.stack.components import Redis
    argv = Redis("redis", Path("/nonexistent"), 6379).command()
    compose_argv = services(full)["redis"]["command"]
    limit = compose_argv[compose_argv.index("--maxmemory") + 1]
    assert argv[argv.index("--maxmemory") + 1] == limit


# --- the image -----------------------------------------------------------------------------------

def test_dockerfile_small_non_root_with_a_python_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(re.match(r"python:3\.11\.\d+-slim(-\w+)?$", f) for f in froms), froms
    assert len(set(froms)) == 1, f"the build and the final stage on one base: {froms}"
    assert re.search(r"^USER\s+(?!0\b|root\b)\S+", text, re.M)
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.M | re.S)
    assert healthcheck and "urllib.request" in healthcheck.group(1)
    assert "http://127.0.0.1:9477/health/live" in text
    assert "curl" not in text.lower().replace("no curl", "")
    assert re.search(r"^ENTRYPOINT \[\"vigil\"\]", text, re.M)
    # the libraries' bytecode ships in the image: compiling it on every start costs ~10 MiB RSS
    assert "__pycache__" not in text and "compileall" in text
    assert re.search(r"pip install '\.\[asyncpg\]'", text), "both PostgreSQL drivers in the image"
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "the build context is an allowlist"
    assert {"!exporter", "!pyproject.toml", "!README.md"} <= set(patterns)


def test_every_mount_of_the_local_stack_exists():
    for relative in configs.BUNDLE_FILES:
        assert (ROOT / relative).is_file(), relative


def test_local_stack_retention_is_the_compose_default(full):
    from vigil_exporter.tools.stack.components import RETENTION

    for prometheus in ("prometheus", "prometheus-2"):
        assert flag(services(full)[prometheus], "--storage.tsdb.retention.time") == \
            RETENTION["prometheus"]
        assert flag(services(full)[prometheus], "--storage.tsdb.retention.size") == \
            RETENTION["prometheus_size"]
    assert parse_duration(RETENTION["prometheus"]) >= 90 * 86400, "90 days of usage reports"
    assert flag(services(full)["victoriametrics"], "-retentionPeriod") == \
        RETENTION["victoriametrics"]


def test_a_site_folder_replaces_the_generated_files(tmp_path):
    """VIGIL_SITE (docs/customising.md) mounts a site folder's rules, Alertmanager config and
    dashboards where compose mounts the committed ones; the rest of the bundle stays."""
    site = tmp_path / "site"
    for folder in ("prometheus/generated", "alertmanager/templates", "grafana/dashboards"):
        (site / folder).mkdir(parents=True)
    env_file = tmp_path / "site.env"
    env_file.write_text(f"VIGIL_SITE={site}\n")
    done = compose("--profile", "ha", "config", env_file=env_file)
    assert done.returncode == 0, done.stderr
    resolved = services(yaml.safe_load(done.stdout))
    for name in ("prometheus", "prometheus-2"):
        assert host_path_for(resolved[name], "/etc/prometheus/generated/site_alerts.yml") == \
            site / "prometheus/generated/site_alerts.yml"
        assert host_path_for(resolved[name], "/etc/prometheus/prometheus.yml") == \
            ROOT / "prometheus/prometheus.yml"
    assert host_path_for(resolved["alertmanager-config"], "/etc/vigil/alertmanager/x.yml") == \
        site / "alertmanager/x.yml"
    for name in ("alertmanager", "alertmanager-2"):
        assert host_path_for(resolved[name], "/etc/alertmanager/templates/slack.tmpl") == \
            site / "alertmanager/templates/slack.tmpl"
    assert host_path_for(resolved["grafana"], "/var/lib/grafana/dashboards/vigil/system.json") == \
        site / "grafana/dashboards/system.json"
