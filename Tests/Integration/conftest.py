"""Shared fixtures and helpers for srvd's integration tests.

The tests drive a prebuilt srvd binary (SRVD_BIN, default .build/debug/srvd) over real
sockets on loopback addresses only (127.0.0.0/8 and ::1), and compare it with NSD where
that is useful. Every process a test starts is killed in teardown, even when the test fails.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from launcher import (
    SHIPPED_ZONE,
    SRVCTL_BIN,
    SRVD_BIN,
    START_TIMEOUT,
    V4,
    V6,
    Srvd,
    find_tool,
    free_port,
    require_executable,
    spawn,
    terminate,
)

QUERY_TIMEOUT = 3.0


@pytest.fixture(scope="session")
def srvd_bin() -> str:
    return require_executable(SRVD_BIN, "srvd binary (SRVD_BIN)")


@pytest.fixture(scope="session")
def srvctl_bin() -> str:
    return require_executable(SRVCTL_BIN, "srvctl binary (SRVCTL_BIN)")


def require_tool(name: str) -> str:
    path = find_tool(name)
    if not path:
        # `make test` installs every tool, so there a missing one is a failure, not a skip.
        if os.environ.get("SRVD_TESTS_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is not installed (make deps installs it)")
        pytest.skip(f"{name} is not installed")
    return path


# --------------------------------------------------------------------------- srvd


@pytest.fixture
def make_srvd(srvd_bin: str, tmp_path_factory: pytest.TempPathFactory):
    """Factory: `make_srvd(zones={"x.zone": text}, **options)` returns an unstarted Srvd
    (launcher.Srvd's options; TCP idle timeout 10 s unless given). Every instance is stopped
    at teardown."""
    created: list[Srvd] = []

    def make(zones: dict[str, str] | None = None, **options) -> Srvd:
        options.setdefault("tcp_idle_timeout", 10)
        s = Srvd(tmp_path_factory.mktemp("srvd"), binary=srvd_bin, **options)
        for name, text in (zones or {}).items():
            s.write_zone(name, text)
        created.append(s)
        return s

    yield make
    for s in created:
        s.stop()


def srv_set(owner: str, count: int, *, port: int = 2380, target: str = "m", net: str = "127.0.2") -> str:
    """Zone file lines for an SRV RRset of `count` records at `owner` whose targets
    (`target`00, `target`01, ...) each have one A record in `net`.0/24."""
    lines = [f"{owner} IN SRV 0 0 {port} {target}{i:02d}" for i in range(count)]
    lines += [f"{target}{i:02d} IN A {net}.{i}" for i in range(count)]
    return "\n".join(lines) + "\n"


BIG_ZONE = f"""\
$ORIGIN big.example.
$TTL 300
@   IN SOA ns1 hostmaster 1 3600 900 604800 60
    IN NS  ns1
ns1 IN A   127.0.0.1
{srv_set("_etcd-server._tcp", 40)}"""


@pytest.fixture(scope="module")
def lab_srvd(srvd_bin: str, tmp_path_factory: pytest.TempPathFactory):
    """srvd serving the shipped lab.example zone, and big.example with a 40-record SRV set,
    on 127.0.0.1 and ::1, TCP idle timeout 1 s."""
    s = Srvd(tmp_path_factory.mktemp("lab"), binary=srvd_bin, listen=[f"{V4}:0", f"[{V6}]:0"], tcp_idle_timeout=1)
    s.copy_zone(SHIPPED_ZONE)
    s.write_zone("big.example.zone", BIG_ZONE)
    try:
        yield s.start()
    finally:
        s.stop()


def run_srvd(srvd_bin: str, *args: str, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs srvd to completion (check-zone, or a serve that must fail)."""
    return subprocess.run(
        [srvd_bin, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd
    )


# --------------------------------------------------------------------------- NSD


NSD_CONF = """\
server:
  ip-address: {host}@{port}
  zonesdir: "{dir}"
  database: ""
  pidfile: "{dir}/nsd.pid"
  username: ""
  xfrdfile: "{dir}/xfrd.state"
  zonelistfile: "{dir}/zone.list"
  server-count: 1
  logfile: "{dir}/nsd.log"
  verbosity: 1
remote-control:
  control-enable: no
"""

NSD_ZONE = """\
zone:
  name: {name}
  zonefile: {file}
"""


class Nsd:
    """NSD serving some zone files, as the reference implementation for differential tests."""

    def __init__(self, workdir: Path, zones: dict[str, str]) -> None:
        """`zones` maps zone name to zone file text."""
        self.workdir = workdir
        self.zones = zones
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, attempts: int = 3) -> "Nsd":
        binary = require_tool("nsd")
        conf = self.workdir / "nsd.conf"
        for name, text in self.zones.items():
            (self.workdir / f"{name}.zone").write_text(text)
        for _ in range(attempts):  # the chosen port can be taken before NSD binds it
            self.port = free_port(V4)
            text = NSD_CONF.format(host=V4, port=self.port, dir=self.workdir)
            text += "".join(NSD_ZONE.format(name=n, file=f"{n}.zone") for n in self.zones)
            conf.write_text(text)
            self.proc = spawn([binary, "-c", str(conf), "-d"], self.workdir / "nsd.stderr")
            if self._wait_ready():
                return self
            terminate(self.proc)
        pytest.fail(f"NSD did not start:\n{self.log()}")

    def _wait_ready(self) -> bool:
        apex = next(iter(self.zones))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = query(self.port, apex, "SOA", timeout=0.5)
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    return True
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.05)
        return False

    def log(self) -> str:
        out = []
        for f in ("nsd.stderr", "nsd.log"):
            p = self.workdir / f
            if p.exists():
                out.append(p.read_text(errors="replace"))
        return "\n".join(out)

    def stop(self) -> None:
        if self.proc:
            terminate(self.proc)


# --------------------------------------------------------------------------- DNS via dnspython


def make_query(
    qname: str | dns.name.Name,
    qtype: str | int,
    *,
    edns: int | None = None,
    payload: int | None = None,
    rdclass: str | int = "IN",
    flags: int = 0,
    qid: int | None = None,
) -> dns.message.QueryMessage:
    """A query with RD clear (srvd is authoritative only). `edns`: None for no OPT record,
    else the EDNS version; `payload` defaults to dnspython's 1232 when EDNS is on."""
    use_edns = edns if edns is not None else (0 if payload is not None else False)
    kwargs = {"payload": payload} if payload is not None else {}
    return dns.message.make_query(qname, qtype, rdclass=rdclass, use_edns=use_edns, flags=flags, id=qid, **kwargs)


def query(
    port: int,
    qname: str,
    qtype: str | int,
    *,
    tcp: bool = False,
    host: str = V4,
    timeout: float = QUERY_TIMEOUT,
    **query_options,
) -> dns.message.Message:
    """One query over UDP (TC responses are returned, not retried) or TCP."""
    q = make_query(qname, qtype, **query_options)
    return exchange(port, q, tcp=tcp, host=host, timeout=timeout)


def exchange(port: int, q: dns.message.Message, *, tcp: bool = False, host: str = V4, timeout: float = QUERY_TIMEOUT) -> dns.message.Message:
    if tcp:
        return dns.query.tcp(q, host, timeout=timeout, port=port)
    return dns.query.udp(q, host, timeout=timeout, port=port, ignore_trailing=False, raise_on_truncation=False)


# --------------------------------------------------------------------------- raw sockets


def udp_raw(port: int, wire: bytes, *, host: str = V4, timeout: float = QUERY_TIMEOUT) -> bytes | None:
    """Sends one datagram; returns the reply, or None when nothing comes within `timeout`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, (host, port))
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def tcp_connect(port: int, *, host: str = V4, timeout: float = QUERY_TIMEOUT) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.create_connection((host, port), timeout=timeout)
    assert s.family == family
    return s


def frame(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """Reads exactly n bytes; None if the peer closes first."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(sock: socket.socket) -> bytes | None:
    """Reads one length-prefixed DNS message; None at EOF."""
    head = recv_exact(sock, 2)
    if head is None:
        return None
    (length,) = struct.unpack("!H", head)
    return recv_exact(sock, length)


def wait_closed(sock: socket.socket, timeout: float) -> float:
    """Waits for the peer to close the connection without sending anything more; returns the
    seconds it took. Fails if data arrives or it stays open past `timeout`."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(1)
    except socket.timeout:
        pytest.fail(f"connection still open after {timeout}s")
    except ConnectionResetError:
        data = b""
    assert data == b"", f"unexpected data {data!r} instead of close"
    return time.monotonic() - start


def header(wire: bytes) -> dict[str, int]:
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", wire[:12])
    return {"id": qid, "flags": flags, "qr": flags >> 15, "opcode": (flags >> 11) & 0xF, "aa": (flags >> 10) & 1,
            "tc": (flags >> 9) & 1, "rd": (flags >> 8) & 1, "rcode": flags & 0xF, "qd": qd, "an": an, "ns": ns, "ar": ar}


# --------------------------------------------------------------------------- wire walking


@dataclass
class WireRR:
    section: str
    owner: bytes  # the owner name as it appears on the wire (may contain a pointer)
    rtype: int
    rdata: bytes


def _skip_name(wire: bytes, pos: int) -> int:
    """Returns the offset after the (possibly compressed) name at `pos`."""
    while True:
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def wire_records(wire: bytes) -> list[WireRR]:
    """Walks a response's sections without decompressing anything, so tests can look at
    exactly how names were encoded."""
    h = header(wire)
    pos = 12
    for _ in range(h["qd"]):
        pos = _skip_name(wire, pos) + 4
    out = []
    for section, count in (("answer", h["an"]), ("authority", h["ns"]), ("additional", h["ar"])):
        for _ in range(count):
            start = pos
            pos = _skip_name(wire, pos)
            owner = wire[start:pos]
            rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", wire[pos:pos + 10])
            pos += 10
            out.append(WireRR(section, owner, rtype, wire[pos:pos + rdlen]))
            pos += rdlen
    assert pos == len(wire), f"{len(wire) - pos} trailing bytes after the records"
    return out


def name_is_uncompressed(encoded: bytes) -> bool:
    """True when `encoded` is exactly one name written label by label, without a pointer."""
    pos = 0
    while pos < len(encoded):
        length = encoded[pos]
        if length & 0xC0:
            return False
        if length == 0:
            return pos + 1 == len(encoded)
        pos += 1 + length
    return False


# --------------------------------------------------------------------------- comparing


def section_key(rrsets: Iterable[dns.rrset.RRset]) -> list[tuple]:
    """A section as a sorted list of RRsets, order-insensitive (RRs of one owner and type
    split over several RRset objects are merged)."""
    merged: dict[tuple, set[str]] = {}
    ttls: dict[tuple, set[int]] = {}
    for rrset in rrsets:
        k = (rrset.name.to_text().lower(), dns.rdataclass.to_text(rrset.rdclass), dns.rdatatype.to_text(rrset.rdtype))
        merged.setdefault(k, set()).update(rd.to_text().lower() for rd in rrset)
        ttls.setdefault(k, set()).add(rrset.ttl)
    return sorted((*k, tuple(sorted(ttls[k])), tuple(sorted(merged[k]))) for k in merged)


def addresses(rrsets: Iterable[dns.rrset.RRset]) -> set[tuple[str, str, str]]:
    """(owner, type, address) of every A/AAAA record."""
    return {
        (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), rd.to_text())
        for rrset in rrsets
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for rd in rrset
    }


# --------------------------------------------------------------------------- dig and kdig


@dataclass
class Answer:
    """A response reduced to what the client-comparison tests assert on, whoever asked:
    dig, kdig or dnspython."""

    status: str
    flags: set[str]
    sections: dict[str, set[tuple[str, int, str, str]]]
    transport: str = ""  # the transport the final answer came over, as the tool reports it
    edns_payload: int | None = None  # the UDP payload size of the response's OPT record
    text: str = ""

    def records(self, section: str = "ANSWER") -> set[tuple[str, int, str, str]]:
        """(owner, ttl, type, rdata) of a section, names lower-cased, rdata as dnspython
        prints it."""
        return self.sections.get(section, set())

    @classmethod
    def from_message(cls, msg: dns.message.Message, transport: str = "") -> "Answer":
        sections = {}
        for title, rrsets in (("ANSWER", msg.answer), ("AUTHORITY", msg.authority), ("ADDITIONAL", msg.additional)):
            sections[title] = {
                (rrset.name.to_text().lower(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype), rd.to_text().lower())
                for rrset in rrsets
                for rd in rrset
            }
        flags = set(dns.flags.to_text(msg.flags).lower().split())
        payload = msg.payload if msg.edns >= 0 else None
        return cls(dns.rcode.to_text(msg.rcode()), flags, sections, transport, payload, msg.to_text())


def _record(line: str) -> tuple[str, int, str, str]:
    owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
    rd = dns.rdata.from_text(rdclass, rdtype, rdata)
    return (owner.lower(), int(ttl), rdtype, rd.to_text().lower())


def _parse_tool_output(text: str) -> Answer:
    """Parses dig's or kdig's default output (both print `;; X SECTION:` blocks)."""
    status = re.search(r"status: (\w+)", text)
    flags = re.search(r"^;; [Ff]lags: ([a-z ]*);", text, re.MULTILINE)
    sections: dict[str, set] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r";; (\w+) SECTION:", line)
        if m:
            current = m.group(1).upper()
            sections[current] = set()
        elif not line.strip():
            current = None
        elif current and not line.startswith(";"):
            sections[current].add(_record(line))
    transports = re.findall(r"\((UDP|TCP)\)", text)
    payload = re.search(r"; udp: (\d+)|UDP size: (\d+) B", text)  # dig, kdig
    return Answer(
        status.group(1) if status else "",
        set(flags.group(1).split()) if flags else set(),
        sections,
        transports[-1] if transports else "",
        int(payload.group(1) or payload.group(2)) if payload else None,
        text,
    )


def dig(port: int, *args: str, host: str = V4, tool: str = "dig") -> Answer:
    """Runs dig or kdig and parses its answer. Defaults: no recursion wanted, 2 s timeout,
    one try; `args` add options and the question."""
    binary = require_tool(tool)
    timeout_opts = ["+time=2", "+tries=1"] if tool == "dig" else ["+time=2", "+retry=0"]
    cmd = [binary, f"@{host}", "-p", str(port), "+norecurse", *timeout_opts, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    answer = _parse_tool_output(proc.stdout)
    answer.text += proc.stderr  # kdig warns about truncation on stderr
    return answer


@pytest.fixture
def srvd(tmp_path):
    """A srvd serving the shipped zone, with its admin API (`api_support.SrvdServer`),
    stopped after the test. Modules that need another set-up define their own."""
    from api_support import SrvdServer

    server = SrvdServer(tmp_path / "srvd")
    try:
        server.start()
        yield server
    finally:
        server.stop()
