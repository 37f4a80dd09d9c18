"""Run the real exporter (`python -m vigil_exporter serve`) as a child process for the tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.servers import free_port, tempdir

ROOT = Path(__file__).resolve().parent.parent


class Exporter:
    def __init__(self, config: dict, args: tuple[str, ...] = (), env: dict | None = None,
                 workdir: Path | None = None, command: str = "serve"):
        self.workdir = workdir or tempdir("exporter")
        self.port = free_port()
        self.config_path = self.workdir / "vigil.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.args = args
        self.command = command
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        self.env = {**inherited, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, wait: str = "/health/live", timeout: float = 20.0) -> Exporter:
        self.log_file = open(self.workdir / "exporter.log", "ab")
        argv = [sys.executable, "-m", "vigil_exporter", self.command, "--config", str(self.config_path),
                "--listen", f"127.0.0.1:{self.port}", *self.args]
        self.proc = subprocess.Popen(argv, cwd=self.workdir, env=self.env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_for(wait, timeout)
        return self

    def wait_for(self, path: str, timeout: float = 20.0, status: int = 200) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exporter exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get(path, timeout=1).status == status:
                    return
            except urllib.error.HTTPError as exc:
                if exc.code == status:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.url}{path} did not answer {status} in {timeout}s:\n{self.log()}")

    def get(self, path: str, headers: dict | None = None, timeout: float = 5.0, context=None):
        request = urllib.request.Request(self.url + path, headers=headers or {})
        return urllib.request.urlopen(request, timeout=timeout, context=context)

    def text(self, path: str = "/metrics", **kwargs) -> str:
        with self.get(path, **kwargs) as response:
            return response.read().decode()

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM; return how long the process took to exit."""
        if not self.proc or self.proc.poll() is not None:
            return 0.0
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()
        return time.monotonic() - start

    def log(self) -> str:
        path = self.workdir / "exporter.log"
        return path.read_text(errors="replace") if path.exists() else ""


def sample_value(exposition: str, name: str, **labels) -> float | None:
    """The value of one sample in a text exposition, or None."""
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def family_names(exposition: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families
    return {s.name for f in text_string_to_metric_families(exposition) for s in f.samples}
