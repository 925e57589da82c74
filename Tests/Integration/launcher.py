"""The one way the integration tests start srvd, and the process helpers every support module
shares (free ports, spawning, terminating, waiting, the binaries' paths).

Every srvd listens on what the test asks for (port 0 by default, for DNS and the admin API)
and `Srvd.start()` learns the ports from its log, so that instances run side by side and a
restart of the same object serves the same folders again.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, Protocol, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED_ZONE = REPO / "zones" / "lab.example.zone"

# Read once: the whole run tests one build.
SRVD_BIN = os.environ.get("SRVD_BIN", str(REPO / ".build" / "debug" / "srvd"))
SRVCTL_BIN = os.environ.get("SRVCTL_BIN", str(REPO / ".build" / "debug" / "srvctl"))

V4 = "127.0.0.1"
V6 = "::1"

# Generous: a debug build on a busy CI machine can be slow to start.
START_TIMEOUT = 30.0

T = TypeVar("T")


# --------------------------------------------------------------------------- tools and binaries


def find_tool(name: str) -> str | None:
    """`name` on PATH, or in /usr/sbin (not on a non-root PATH, where nsd and ip live)."""
    return shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)


def require_executable(path: str, what: str) -> str:
    """A missing binary fails the test rather than skipping it: `make test` builds and
    installs every one."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{what} not found or not executable: {path} (set SRVD_BIN/SRVCTL_BIN, or make test)")
    return path


# --------------------------------------------------------------------------- waiting


def wait_until(
    probe: Callable[[], T],
    timeout: float = 10.0,
    what: str | Callable[[], str] = "condition",
    interval: float = 0.05,
    *,
    errors: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Polls `probe` until it returns something truthy; fails the test at the deadline.

    An exception in `errors` counts as "not yet" and is reported at the deadline; pass
    `errors=()` where any exception is itself the failure (a wait for something that should
    already work, e.g. an edit to be served). `what` describes the wait in the failure
    message; a callable is called only then, so it can carry the logs."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except errors as e:
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what() if callable(what) else what}{detail}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- processes


def free_port(host: str = V4) -> int:
    """A port that is free for both UDP and TCP on `host` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGKILL if pytest dies, so no server outlives a crashed or killed
    test run. PDEATHSIG follows the spawning thread: spawn only from the main one."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(
    cmd: list[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = False,
) -> subprocess.Popen:
    """Starts a server with stdout and stderr appended to `log_path`. `new_session` gives it
    its own process group, for wrappers (a shell, `ip netns exec`) whose children must be
    killed with it."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=cwd,
            start_new_session=new_session, preexec_fn=die_with_parent,
        )


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL if the process does not go; the exit status (None if there was
    no process). Only ever a process the test started."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def kill(proc: subprocess.Popen | None) -> None:
    """SIGKILL: no chance to flush or clean up."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- srvd


class Spawner(Protocol):
    """What runs srvd elsewhere than in the test's own network (etcd_support.Netns)."""

    def spawn(
        self, argv: list[str], log_path: Path, *, env: dict[str, str] | None = None, label: str = ""
    ) -> subprocess.Popen: ...


_DNS_LINE = re.compile(r"address=(\S+):(\d+) transport=(\w+) .*serving DNS")
_ADMIN_LINE = re.compile(r"address=(\S+):(\d+) .*serving the admin API")


def _host(address: str) -> str:
    """The host of HOST:PORT or [HOST]:PORT."""
    return address.rsplit(":", 1)[0].strip("[]")


class SrvdStartError(AssertionError):
    pass


class Srvd:
    """One `srvd serve` over a zones folder and a data folder.

    `listen` are the --dns addresses (port 0: the kernel chooses), `admin` the --admin
    address (None: srvd's default, which the tests never want since it is a fixed port),
    `env` variables added to the test's environment (systemd's NOTIFY_SOCKET, say), `spawner`
    what starts the process when it must run elsewhere (a network namespace).
    `start()` waits until every DNS listener (a UDP and a TCP line each), the admin API and
    its token file are there, and learns the ports. The log file is appended to, so a
    restart keeps the earlier runs' lines; `log()` shows the current run.

    SRVD_UDP_ENGINE picks the UDP engine unless `udp_engine` does: `make integration` runs
    the transport and differential tests a second time with nio, so that both engines stay
    checked against dig and NSD.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        binary: str | None = None,
        zones_dir: Path | None = None,
        data_dir: Path | None = None,
        listen: Iterable[str] = (f"{V4}:0",),
        admin: str | None = f"{V4}:0",
        token_file: Path | None = None,
        tcp_idle_timeout: int | None = None,
        watch_interval: float = 0,
        log_level: str = "info",
        udp_engine: str | None = None,
        extra_args: Iterable[str] = (),
        log_path: Path | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        spawner: Spawner | None = None,
    ) -> None:
        self.binary = binary or SRVD_BIN
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.zones = Path(zones_dir) if zones_dir is not None else self.workdir / "zones"
        self.zones.mkdir(parents=True, exist_ok=True)
        self.data = Path(data_dir) if data_dir is not None else self.workdir / "data"
        self.listen = list(listen)
        self.admin = admin
        self.token_file = token_file
        self.tcp_idle_timeout = tcp_idle_timeout
        self.watch_interval = watch_interval
        self.log_level = log_level
        self.udp_engine = udp_engine or os.environ.get("SRVD_UDP_ENGINE")
        self.extra_args = list(extra_args)
        self.log_path = Path(log_path) if log_path is not None else self.workdir / "srvd.log"
        self.cwd = cwd
        self.env = dict(env or {})
        self.spawner = spawner
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0
        self.udp_ports: dict[str, int] = {}
        self.tcp_ports: dict[str, int] = {}
        self.admin_port = 0
        self._token: str | None = None

    # files ---------------------------------------------------------------------------

    def write_zone(self, filename: str, text: str) -> Path:
        """Writes `zones/filename` atomically (a new inode, so the folder watch sees it and a
        reload never reads half a file)."""
        path = self.zones / filename
        tmp = self.zones / f".{filename}.tmp"  # dot files are not zone files
        tmp.write_text(text)
        os.replace(tmp, path)
        return path

    def copy_zone(self, source: Path, filename: str | None = None) -> Path:
        return self.write_zone(filename or source.name, source.read_text())

    # process -------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [self.binary, "serve", "--zones", str(self.zones), "--data-dir", str(self.data)]
        for address in self.listen:
            cmd += ["--dns", address]
        if self.admin is not None:
            cmd += ["--admin", self.admin]
        if self.token_file is not None:
            cmd += ["--admin-token-file", str(self.token_file)]
        if self.tcp_idle_timeout is not None:
            cmd += ["--tcp-idle-timeout", str(self.tcp_idle_timeout)]
        cmd += ["--watch-interval", str(self.watch_interval), "--log-level", self.log_level]
        if self.udp_engine:
            cmd += ["--udp-engine", self.udp_engine]
        return cmd + self.extra_args

    def spawn(self) -> subprocess.Popen:
        """Starts srvd without waiting for it."""
        assert not self.running(), "srvd is already running"
        require_executable(self.binary, "srvd")
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._token = None
        self.udp_ports, self.tcp_ports, self.admin_port = {}, {}, 0
        env = {**os.environ, **self.env} if self.env else None
        if self.spawner is not None:
            self.proc = self.spawner.spawn(self.command(), self.log_path, env=env, label="srvd")
        else:
            self.proc = spawn(self.command(), self.log_path, env=env, cwd=self.cwd)
        return self.proc

    def start(self) -> "Srvd":
        """Starts srvd and waits until it serves everything it was asked to."""
        proc = self.spawn()

        def ready() -> bool:
            if proc.poll() is not None:
                raise SrvdStartError(f"srvd exited with {proc.returncode} while starting:\n{self.log()}")
            return self._learn_ports()

        try:
            wait_until(ready, START_TIMEOUT, lambda: f"srvd to listen on {self.listen}; log:\n{self.log()}",
                       interval=0.02, errors=())
        except BaseException:
            self.kill()
            raise
        return self

    def _learn_ports(self) -> bool:
        listeners = self.listeners()
        if len(listeners) < 2 * len(self.listen):
            return False
        admin = None
        if self.admin is not None:
            admin = _ADMIN_LINE.search(self.log())
            # srvd writes the token before it listens; checked anyway, since API clients
            # read it the moment start() returns.
            if admin is None or not self.token_path.exists():
                return False
        self.udp_ports = {host: port for transport, host, port in listeners if transport == "udp"}
        self.tcp_ports = {host: port for transport, host, port in listeners if transport == "tcp"}
        self.admin_port = int(admin.group(2)) if admin else 0
        return True

    def restart(self, timeout: float = 10.0) -> "Srvd":
        self.stop(timeout)
        return self.start()

    def run_to_exit(self, timeout: float = 20.0) -> int:
        """Starts srvd expecting it to stop by itself (a start-up failure); its exit status."""
        proc = self.spawn()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"srvd kept running although it should have exited:\n{self.log()}") from None

    def signal(self, sig: int) -> None:
        assert self.running(), f"srvd is not running:\n{self.log()}"
        self.proc.send_signal(sig)

    def reload(self, timeout: float = 20.0) -> None:
        """SIGHUP, then waits for the `zones reloaded` log line it causes."""
        before = self.count_in_log("zones reloaded")
        self.signal(signal.SIGHUP)

        def reloaded() -> bool:
            if self.count_in_log("zones reloaded") > before:
                return True
            if not self.running():
                pytest.fail(f"srvd exited after SIGHUP (status {self.proc.returncode}):\n{self.log()}")
            return False

        wait_until(reloaded, timeout, lambda: f"srvd to log `zones reloaded`; log:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if needed; the exit status (None if never started). Safe to
        call twice."""
        return terminate(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        kill(self.proc)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # log ----------------------------------------------------------------------------

    def log(self) -> str:
        """The current run's log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return f"--- srvd log ({self.log_path}) ---\n" + "\n".join(self.log().splitlines()[-lines:])

    def count_in_log(self, text: str) -> int:
        return self.log().count(text)

    def listeners(self) -> list[tuple[str, str, int]]:
        """(transport, host, port) of every `serving DNS` line logged so far."""
        return [(m.group(3), m.group(1).strip("[]"), int(m.group(2))) for m in _DNS_LINE.finditer(self.log())]

    # addresses ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The DNS port (UDP and TCP share it) of the first listen address."""
        return self.port_for(_host(self.listen[0]))

    def port_for(self, host: str) -> int:
        udp, tcp = self.udp_ports[host], self.tcp_ports[host]
        assert udp == tcp, f"UDP port {udp} and TCP port {tcp} differ on {host}"
        return udp

    @property
    def admin_host(self) -> str:
        return _host(self.admin) if self.admin else V4

    @property
    def url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"

    @property
    def token_path(self) -> Path:
        return Path(self.token_file) if self.token_file is not None else self.data / "admin.token"

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.token_path.read_text().strip()
        return self._token

    def srvctl_api_args(self) -> list[str]:
        """srvctl's options to reach this srvd's admin API."""
        return ["--server", self.url, "--token-file", str(self.token_path)]

