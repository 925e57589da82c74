"""Starting each system under test (the reflector, NSD, Knot, srvd) and waiting until it answers."""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from .common import REPO, BenchError, find_tool, free_port, log
from .dns_checks import udp_ask
from .procs import Cleanup


SYSTEMS = ["reflect", "nsd", "knot", "srvd"]


# Measured only when named in --systems: srvd with UDP on NIO's datagram channel, to show
# what the recvmmsg engine buys; srvd with two UDP threads (`--udp-threads 2`, pinned to the
# same CPU as every server here, so it shows what a second thread costs, not what a second
# core gives: see BENCHMARKS.md). Plain `srvd` runs one UDP thread, as NSD and Knot run one
# worker here.
OPTIONAL_SYSTEMS = ["srvd-nio", "srvd-2t"]


LABELS = {
    "reflect": "ceiling: ../shared/tools/reflect.c (echo via recvmmsg/sendmmsg)",
    "nsd": "NSD (`server-count: 1`, `rrl-ratelimit: 0`)",
    "knot": "Knot (`udp-workers: 1`, `tcp-workers: 1`, `background-workers: 1`)",
    "srvd": "srvd",
    "srvd-nio": "srvd",
    "srvd-2t": "srvd",
}


class Server:
    """One server process (with whatever it forks), in its own session so that it gets no
    Ctrl-C of ours, pinned with taskset."""

    def __init__(self, name, argv, workdir, cpu, port, origin):
        self.name, self.port, self.origin = name, port, origin
        self.log_path = workdir / f"{name}.log"
        self.argv = ["taskset", "-c", str(cpu), *argv]
        self.proc = None
        self.started_at = None
        self.stopped = False

    def start(self):
        logf = open(self.log_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        Cleanup.procs.append(self)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=15):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + l for l in lines[-n:])

    def wait_ready(self, timeout, expect_soa=True):
        """Polls with a SOA query until the server answers it (any answer for the reflector).
        Returns the seconds from start to the first good answer. Gives up early when the
        server exits or its log says the zone will not load (NSD and Knot keep running then)."""
        deadline = time.monotonic() + timeout
        log_scan = LogScan(self.log_path, LOAD_FAILED.get(self.name))
        next_scan = 0.0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise BenchError(f"{self.name} {exit_reason(self.proc.returncode)} before answering\n"
                                     f"{self.log_tail()}")
                if time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + 0.5
                    if log_scan.failed():
                        raise BenchError(f"{self.name} could not load the zone: {log_scan.reason()}\n"
                                         f"{self.log_tail(5)}")
                r = udp_ask(s, self.port, self.origin, "SOA", timeout=0.05)
                if r is not None and (not expect_soa or (r.rcode == 0 and r.msg.answer)):
                    return time.monotonic() - self.started_at
                time.sleep(0.01)
        raise BenchError(f"{self.name} did not answer the SOA query on 127.0.0.1:{self.port} "
                         f"within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self):
        """SIGTERM to the server's process group, SIGKILL after 5 s; idempotent."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ignored SIGTERM for 5 s; killing it")
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever it forked and left behind
        except ProcessLookupError:
            pass
        self.proc.wait()


def exit_reason(code):
    if code < 0:
        try:
            return f"died of {signal.Signals(-code).name}"
        except ValueError:
            return f"died of signal {-code}"
    return f"exited with status {code}"


# Log lines after which a server that is still running will never serve the zone.
LOAD_FAILED = {
    "nsd": re.compile(r"zone \S+ file .* read with \d+ errors"),
    "knot": re.compile(r"zone event 'load' failed|failed to load zone"),
}


class LogScan:
    """Reads a growing log from where it stopped last time, for LOAD_FAILED lines."""

    def __init__(self, path, pattern):
        self.path, self.pattern, self.offset = path, pattern, 0
        self.first_error, self.fatal = None, None

    def failed(self):
        if self.pattern is None:
            return False
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return False
        end = data.rfind(b"\n") + 1  # whole lines only
        self.offset += end
        for line in data[:end].decode(errors="replace").splitlines():
            if self.first_error is None and re.search(r"\berror\b", line):
                self.first_error = line
            if self.fatal is None and self.pattern.search(line):
                self.fatal = line
        return self.fatal is not None

    def reason(self):
        def short(line):  # drop the time stamp, the program and file:line prefixes
            line = re.sub(r"^.*?\berror:?\s*", "", line)
            return re.sub(r"^/\S+:\d+:\s*", "", line).strip()
        first = short(self.first_error) if self.first_error else ""
        fatal = short(self.fatal)
        return f"{first} ({fatal})" if first and first != fatal else fatal


def start_system(name, args, work, zone_dir, zone_file, origin, reflect_bin=None, admin_port=0):
    """Writes the system's configuration under work/NAME and starts it on a free port."""
    port = free_port()
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    if name == "reflect":
        argv = [str(reflect_bin), str(port)]
    elif name == "nsd":
        conf = d / "nsd.conf"
        conf.write_text(f"""server:
    server-count: 1
    rrl-ratelimit: 0
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    database: ""
    username: ""
    chroot: ""
    zonesdir: "{d}"
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    zonelistfile: "{d}/zone.list"
    xfrdir: "{d}"
    zonefiles-write: 0
    verbosity: 0
    hide-version: yes
remote-control:
    control-enable: no
zone:
    name: "{origin}"
    zonefile: "{zone_file}"
    provide-xfr: 127.0.0.1 NOKEY
""")
        argv = [find_tool("nsd"), "-d", "-c", str(conf)]
    elif name == "knot":
        conf = d / "knot.conf"
        conf.write_text(f"""server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{d}"
acl:
  - id: local_transfer
    address: 127.0.0.1
    action: transfer
template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: {origin}
    file: "{zone_file}"
    acl: local_transfer
""")
        argv = [find_tool("knotd"), "-c", str(conf)]
    elif name in ("srvd", "srvd-nio", "srvd-2t"):
        argv = [str(args.srvd_bin), "serve", "--zones", str(zone_dir), "--data-dir", str(d / "data"),
                "--dns", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin_port}", "--log-level", "warning",
                "--udp-threads", "2" if name == "srvd-2t" else "1"]
        argv += args.srvd_extra + (["--udp-engine", "nio"] if name == "srvd-nio" else [])
        if args.scale:
            argv += ["--allow-transfer", "127.0.0.1/32"]  # AXFR, beside NSD's and Knot's
    else:
        raise BenchError(f"unknown system {name}")
    srv = Server(name, argv, d, args.server_cpu, port, origin)
    srv.admin_port, srv.data_dir = admin_port, d / "data"
    return srv.start()


def build_reflector(work):
    src = Path(os.environ.get("REFLECT_SRC", REPO.parent / "shared" / "tools" / "reflect.c"))
    if not src.is_file():
        raise BenchError(f"reflector source {src} not found (set REFLECT_SRC, or leave out reflect with --systems)")
    (work / "bin").mkdir(exist_ok=True)
    out = work / "bin" / "reflect"
    r = subprocess.run(["gcc", "-O2", "-o", str(out), str(src)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise BenchError(f"cannot build the reflector:\n{r.stdout}")
    return out
