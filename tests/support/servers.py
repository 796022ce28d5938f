"""Real servers on loopback for the app tests: uvicorn apps, Redis, Prometheus. Each stops itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from builders.images import SHARED_CONTEXTS
from tests.support.paths import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ProcessLookupError:
            raise
        except Exception as error:  # retried until the deadline, then reported
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last_error})")


class Process:
    """A child process whose output goes to a log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(
        self, name: str, args: list[str], log_dir: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd or ROOT
        )
        self.returncode: int | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): it keeps its sockets but answers nothing, like a hung server."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Die at once (SIGKILL), as a crashed or OOM-killed server does."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()
        self.returncode = self.proc.returncode

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.returncode = self.proc.returncode
        return self.returncode


def stopped_cleanly(process: Process) -> bool:
    """uvicorn finished its graceful shutdown (it re-raises SIGTERM afterwards, so -15 is a clean exit too)."""
    code = process.stop()
    return code in (0, -signal.SIGTERM) and "Application shutdown complete." in process.log()


class UvicornApp(Process):
    """An ASGI app from apps/ served by `uvicorn <target>`; DockerfileApp runs the image's own command instead."""

    def __init__(
        self,
        name: str,
        app_dir: str,
        target: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        health: str = "/healthz",
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--app-dir",
            app_dir,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            *(extra_args or []),
        ]
        super().__init__(name, args, log_dir, env={"PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
        try:
            wait_until(self._healthy(health), 20, f"{name} at {self.url}")
        except (TimeoutError, ProcessLookupError):
            self.stop()
            raise RuntimeError(f"{name} did not start:\n{self.log()}") from None

    def _healthy(self, health: str):
        def check() -> bool:
            if not self.alive():
                raise ProcessLookupError(f"{self.name} exited with {self.proc.returncode}")
            return httpx.get(self.url + health, timeout=1).status_code == 200

        return check


def dockerfile_command(app_dir: str) -> list[str]:
    """The CMD of apps/<app>/Dockerfile (exec form), i.e. what the image runs."""
    for line in (ROOT / app_dir / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            return json.loads(line[len("CMD ") :])
    raise ValueError(f"{app_dir}/Dockerfile has no exec-form CMD")


def dockerfile_named_contexts(app_dir: str) -> list[str]:
    """The named build contexts an app's Dockerfile copies from (`COPY --from=<name> ...`)."""
    found = []
    for line in (ROOT / app_dir / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and words[1].startswith("--from="):
            name = words[1].removeprefix("--from=")
            if name not in SHARED_CONTEXTS:
                raise ValueError(f"{app_dir}/Dockerfile copies from {name!r}, not a context of {dict(SHARED_CONTEXTS)}")
            found.append(name)
    return found


class DockerfileApp(Process):
    """An app from apps/ started with its Dockerfile's own CMD, from its directory, on a free loopback port.

    Only what cannot work outside the image changes: `python`/`uvicorn` run from this venv, and the
    listen address is loopback (HOST/PORT for serve.py; --host/--port values for a uvicorn command).
    """

    def __init__(
        self,
        name: str,
        app_dir: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        health: str = "/healthz",
        wait: bool = True,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = dockerfile_command(app_dir)
        program, *args = command
        if program == "python":
            argv = [sys.executable, *args]
        elif program == "uvicorn":
            argv = [sys.executable, "-m", "uvicorn", *args]
        else:
            raise ValueError(f"{app_dir}/Dockerfile runs {program!r}: only python and uvicorn commands are known")
        for flag, value in (("--host", "127.0.0.1"), ("--port", str(self.port))):
            if flag in argv:
                argv[argv.index(flag) + 1] = value
        self.argv = argv
        # The image copies shared code from named build contexts into its own folder; here it is imported
        # from where it lives.
        shared = os.pathsep.join(str(ROOT / SHARED_CONTEXTS[c]) for c in dockerfile_named_contexts(app_dir))
        super().__init__(
            name,
            argv,
            log_dir,
            env={
                "PYTHONDONTWRITEBYTECODE": "1",
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                **({"PYTHONPATH": shared} if shared else {}),
                **(env or {}),
            },
            cwd=ROOT / app_dir,
        )
        if wait:
            self.wait_healthy(health)

    def wait_healthy(self, health: str = "/healthz", timeout: float = 20) -> None:
        def check() -> bool:
            if not self.alive():
                raise ProcessLookupError(f"{self.name} exited with {self.proc.returncode}")
            return httpx.get(self.url + health, timeout=1).status_code == 200

        try:
            wait_until(check, timeout, f"{self.name} at {self.url}")
        except (TimeoutError, ProcessLookupError):
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{self.log()}") from None

    def rss_bytes(self) -> int:
        """Resident memory of the server process, from /proc."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {self.proc.pid}")


def hashr_app(name: str, service: str, log_dir: Path, env: Mapping[str, str] | None = None, **kwargs) -> DockerfileApp:
    """The worker or the frontend, as the worker image runs it (`python serve.py`, SERVICE picks which)."""
    return DockerfileApp(name, "apps/worker", log_dir, env={"SERVICE": service, **(env or {})}, **kwargs)


class RedisServer(Process):
    """Debian's redis-server on a free loopback port: no persistence, or the deployed arguments (`args`, the
    container's command line) with its data in `data_dir`."""

    def __init__(
        self, log_dir: Path, port: int | None = None, args: list[str] | None = None, data_dir: Path | None = None
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run .ci/run, or apt-get install redis-server")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        config = args[1:] if args else ["--save", "", "--appendonly", "no"]
        where = ["--dir", str(data_dir)] if data_dir else []
        super().__init__(
            f"redis-{self.port}",
            [binary, *config, *where, "--port", str(self.port), "--bind", "127.0.0.1"],
            log_dir,
        )
        wait_until(self._ping, 10, "redis-server")

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")


class PrometheusServer(Process):
    """Debian's prometheus on a free loopback port, scraping the given targets every `scrape_interval`."""

    def __init__(
        self,
        log_dir: Path,
        targets: list[str],
        scrape_interval: str = "1s",
        port: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """`labels`: added to every scraped series, as the in-cluster job's relabeling adds `namespace`."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: run .ci/run, or apt-get install prometheus")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scrape_interval = scrape_interval
        config = log_dir / f"prometheus-{self.port}.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {scrape_interval}\n"
            f"  evaluation_interval: {scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: istio-proxies\n"
            "    static_configs:\n"
            f"      - targets: {targets!r}\n" + (f"        labels: {json.dumps(dict(labels))}\n" if labels else "")
        )
        data = log_dir / f"prometheus-data-{self.port}"
        super().__init__(
            f"prometheus-{self.port}",
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            log_dir,
        )
        try:
            wait_until(lambda: httpx.get(self.url + "/-/ready", timeout=1).status_code == 200, 30, "prometheus")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"prometheus did not start:\n{self.log()}") from None


def memory_growth_under(
    client: httpx.Client, server: DockerfileApp, requests: Sequence[tuple[str, str, dict, bytes]], count: int = 2_000
) -> int:
    """Resident memory a server gains over `count` more of `requests` (after 200 to warm up); none may be a 5xx."""
    for i in range(200):
        method, path, headers, body = requests[i % len(requests)]
        client.request(method, path, headers=headers, content=body)
    before = server.rss_bytes()
    for i in range(count):
        method, path, headers, body = requests[i % len(requests)]
        status = client.request(method, path, headers=headers, content=body).status_code
        assert status < 500, (method, path[:40], status)
    return server.rss_bytes() - before
