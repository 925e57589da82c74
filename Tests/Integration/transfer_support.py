"""Helpers for the zone-transfer tests (test_transfer.py): srvd as a primary, NSD and Knot
as secondaries, and a raw AXFR/IXFR client that keeps every TCP message and every record in
wire order.

No conftest fixtures (srvd is started by launcher.py), so the secondary configurations
rendered here can be read, and copied, on their own:
`nsd_conf()` and `knot_conf()` are what the tests run, and what the README shows.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

from conftest import recv_exact
from launcher import SRVCTL_BIN, START_TIMEOUT, Srvd, find_tool, free_port, spawn, tail, terminate, wait_until

HOST = "127.0.0.1"
ZONE = "lab.example."


# --------------------------------------------------------------------------- TSIG


def new_secret() -> str:
    """A random hmac-sha256 TSIG secret, base64."""
    return base64.b64encode(os.urandom(32)).decode()


def keyring(name: str, secret: str) -> dict[dns.name.Name, dns.tsig.Key]:
    key_name = dns.name.from_text(name)
    return {key_name: dns.tsig.Key(key_name, secret, dns.tsig.HMAC_SHA256)}


# --------------------------------------------------------------------------- zone files


def lab_zone(serial: int = 100, www: str = "192.0.2.10", extra: str = "") -> str:
    """The lab.example zone the tests serve: 8 records (SOA, NS, 2 MX-free hosts, ...)."""
    return f"""\
$ORIGIN lab.example.
$TTL 300
@       IN SOA ns1 hostmaster {serial} 3600 600 86400 300
@       IN NS  ns1
@       IN MX  10 mail
ns1     IN A   127.0.0.1
www     IN A   {www}
mail    IN A   192.0.2.20
txt     IN TXT "hello" "world"
alias   IN CNAME www
{extra}"""


def large_zone(hosts: int = 1500, serial: int = 100) -> tuple[str, int]:
    """lab.example with `hosts` A records and as many TXT records (~150 kB on the wire, more
    than one 64 KiB TCP message can hold). Returns (text, number of records in the zone)."""
    lines = [
        "$ORIGIN lab.example.",
        "$TTL 300",
        f"@ IN SOA ns1 hostmaster {serial} 3600 600 86400 300",
        "@ IN NS ns1",
        "ns1 IN A 127.0.0.1",
    ]
    for i in range(hosts):
        lines.append(f"host{i:04d} IN A 10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        lines.append(f'host{i:04d} IN TXT "record {i:04d} of a large zone, padded to make the transfer long ......"')
    return "\n".join(lines) + "\n", 3 + 2 * hosts


# --------------------------------------------------------------------------- records


Record = tuple[str, int, str, str]  # (absolute owner, TTL, type, rdata text with absolute names)


def zone_records(text: str, origin: str = ZONE) -> set[Record]:
    """The records of a zone file, in the same form as `Xfr.records`."""
    import dns.zone

    z = dns.zone.from_text(text, origin=origin, relativize=False)
    return {
        (name.to_text(), ttl, dns.rdatatype.to_text(rd.rdtype), rd.to_text())
        for name, ttl, rd in z.iterate_rdatas()
    }


def record_of(rrset: dns.rrset.RRset, rdata) -> Record:
    return (rrset.name.to_text(), rrset.ttl, dns.rdatatype.to_text(rdata.rdtype), rdata.to_text())


def soa_serial(record: Record) -> int:
    assert record[2] == "SOA", f"not an SOA: {record}"
    return int(record[3].split()[2])


def is_soa(record: Record) -> bool:
    return record[2] == "SOA"


@dataclass
class Xfr:
    """One zone transfer as it came over the wire."""

    rcode: int
    messages: list[dns.message.Message] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)  # answer records in order
    closed_early: bool = False  # the server closed the connection before the end

    @property
    def tsig_errors(self) -> list[int]:
        return [m.tsig[0].error if m.tsig else -1 for m in self.messages]

    def describe(self, limit: int = 30) -> str:
        recs = "\n  ".join(" ".join(map(str, r)) for r in self.records[:limit])
        more = f"\n  ... {len(self.records) - limit} more" if len(self.records) > limit else ""
        return (
            f"rcode={dns.rcode.to_text(self.rcode)} messages={len(self.messages)} records={len(self.records)}"
            f" closed_early={self.closed_early} tsig_errors={self.tsig_errors}\n  {recs}{more}"
        )

    # ---- interpretation

    def zone(self) -> set[Record]:
        """The records of a full (AXFR-style) transfer, without the closing SOA."""
        assert self.is_full(), f"not a full transfer:\n{self.describe()}"
        return set(self.records[:-1])

    def is_full(self) -> bool:
        r = self.records
        return (
            len(r) >= 3 and is_soa(r[0]) and not is_soa(r[1]) and r[-1] == r[0]
            and not any(is_soa(x) for x in r[1:-1])
        )

    def is_single_soa(self) -> bool:
        return len(self.records) == 1 and is_soa(self.records[0])

    def diffs(self) -> list[tuple[int, list[Record], int, list[Record]]]:
        """An incremental IXFR (RFC 1995 section 4) as [(old serial, deleted, new serial,
        added)]; asserts the framing: SOA new, (SOA old, deletions, SOA new, additions)+, SOA new."""
        r = self.records
        assert len(r) >= 2 and is_soa(r[0]) and is_soa(r[1]), f"not an incremental transfer:\n{self.describe()}"
        assert r[-1] == r[0], f"incremental transfer does not end with the first SOA:\n{self.describe()}"
        out = []
        i = 1
        while i < len(r) - 1:
            old = r[i]
            assert is_soa(old), f"record {i} should open a difference sequence with an SOA:\n{self.describe()}"
            i += 1
            deleted = []
            while i < len(r) - 1 and not is_soa(r[i]):
                deleted.append(r[i])
                i += 1
            assert i < len(r) - 1, f"difference sequence from {soa_serial(old)} has no new SOA:\n{self.describe()}"
            new = r[i]
            i += 1
            added = []
            while i < len(r) - 1 and not is_soa(r[i]):
                added.append(r[i])
                i += 1
            out.append((soa_serial(old), deleted, soa_serial(new), added))
        return out

    def soas_of_diffs(self) -> list[tuple[Record, Record]]:
        r = self.records
        soas = [x for x in r[1:-1] if is_soa(x)]
        return list(zip(soas[0::2], soas[1::2]))


def apply_diffs(zone: set[Record], xfr: Xfr) -> set[Record]:
    """Applies an incremental IXFR to `zone` strictly: every deletion must be present, every
    addition absent (RFC 1995), and each sequence's old SOA must be the zone's current SOA."""
    zone = set(zone)
    for (old_soa, new_soa), (old, deleted, new, added) in zip(xfr.soas_of_diffs(), xfr.diffs()):
        current = [x for x in zone if is_soa(x)]
        assert current == [old_soa], f"sequence {old}->{new}: old SOA {old_soa} but the zone has {current}"
        zone.discard(old_soa)
        for x in deleted:
            assert x in zone, f"sequence {old}->{new} deletes {x}, which is not in the zone"
            zone.discard(x)
        for x in added:
            assert x not in zone, f"sequence {old}->{new} adds {x}, which is already in the zone"
            zone.add(x)
        zone.add(new_soa)
    return zone


# --------------------------------------------------------------------------- raw XFR client


def xfr_query(
    zone: str, rdtype: str, serial: int | None = None, keys: dict | None = None, keyname: str | None = None
) -> dns.message.Message:
    q = dns.message.make_query(zone, rdtype)
    if rdtype == "IXFR":
        q.authority.append(dns.rrset.from_text(zone, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    if keys:
        q.use_tsig(keys, keyname=keyname, algorithm=dns.tsig.HMAC_SHA256)
    return q


def xfr(
    port: int,
    rdtype: str = "AXFR",
    *,
    zone: str = ZONE,
    serial: int | None = None,
    keys: dict | None = None,
    keyname: str | None = None,
    verify: bool = True,
    source: str | None = None,
    host: str = HOST,
    timeout: float = 10.0,
    query: dns.message.Message | None = None,
) -> Xfr:
    """Sends one AXFR/IXFR over TCP and reads every response message until the transfer is
    complete (RFC 5936 / RFC 1995 framing), an error rcode arrives, or the server closes.

    With `keys` the query is TSIG-signed and, if `verify`, every response message is verified
    (dnspython raises on a bad or missing signature in a multi-message sequence); with
    `verify=False` TSIG records are parsed but not checked (to read TSIG error responses)."""
    q = query or xfr_query(zone, rdtype, serial, keys, keyname)
    wire = q.to_wire()
    result = Xfr(rcode=-1)
    tsig_ctx = None
    first_serial: int | None = None
    mode: str | None = None  # "axfr", "ixfr-full", "ixfr-incr"
    phase = "deleting"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        s.sendall(struct.pack("!H", len(wire)) + wire)
        while True:
            header = recv_exact(s, 2)
            if header is None:
                result.closed_early = True
                return result
            (length,) = struct.unpack("!H", header)
            body = recv_exact(s, length)
            if body is None:
                result.closed_early = True
                return result
            m = dns.message.from_wire(
                body,
                keyring=(keys if verify else False) if keys else False,
                request_mac=q.mac if keys else b"",
                xfr=True,
                tsig_ctx=tsig_ctx,
                multi=True,
                one_rr_per_rrset=True,
            )
            tsig_ctx = m.tsig_ctx
            assert m.id == q.id, f"response id {m.id} != query id {q.id}"
            result.messages.append(m)
            result.rcode = m.rcode()
            if m.rcode() != dns.rcode.NOERROR:
                return result
            first_message = len(result.messages) == 1
            for rrset in m.answer:
                for rd in rrset:
                    rec = record_of(rrset, rd)
                    result.records.append(rec)
                    n = len(result.records)
                    if n == 1:
                        assert is_soa(rec), f"transfer does not start with an SOA: {rec}"
                        first_serial = soa_serial(rec)
                        continue
                    if n == 2:
                        mode = "ixfr-incr" if (rdtype == "IXFR" and is_soa(rec)) else "full"
                        if mode == "ixfr-incr":
                            phase = "deleting"
                            continue
                    if mode == "full" and is_soa(rec):
                        return result
                    if mode == "ixfr-incr" and is_soa(rec):
                        if phase == "deleting":
                            phase = "adding"
                        elif soa_serial(rec) == first_serial:
                            return result
                        else:
                            phase = "deleting"
            # RFC 1995: a lone SOA (client is up to date) is the whole answer.
            if rdtype == "IXFR" and first_message and len(result.records) == 1:
                return result


def transfer_error(port: int, rdtype: str = "AXFR", **kwargs) -> str:
    """'OK' or a short description of how a transfer failed (for assertion messages)."""
    try:
        x = xfr(port, rdtype, **kwargs)
    except Exception as e:  # noqa: BLE001
        return repr(e)
    return "OK" if x.rcode == 0 and not x.closed_early else x.describe()


def udp_query(port: int, qname: str, qtype: str, host: str = HOST, timeout: float = 1.0) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(qname, qtype), host, port=port, timeout=timeout)


def answer_texts(port: int, qname: str, qtype: str) -> list[str]:
    """Sorted rdata texts of the answer (empty on NXDOMAIN/NODATA)."""
    r = udp_query(port, qname, qtype)
    t = dns.rdatatype.from_text(qtype)
    return sorted(rd.to_text() for rrset in r.answer if rrset.rdtype == t for rd in rrset)


def served_serial(port: int) -> int | None:
    try:
        r = udp_query(port, ZONE, "SOA", timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return None
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return rrset[0].serial
    return None


# --------------------------------------------------------------------------- srvd


class Primary(Srvd):
    """launcher.Srvd serving lab.example with transfer options, plus the srvctl calls the
    transfer tests make of it. The working folder is its own, so that nothing relative lands
    in the repository."""

    def __init__(
        self,
        workdir: Path,
        zone_text: str,
        *,
        allow: Iterable[str] = (),
        tsig: Iterable[str] = (),
        notify: Iterable[str] = (),
        dns_port: int = 0,
    ) -> None:
        extra: list[str] = []
        for option, values in (("--allow-transfer", allow), ("--tsig-key", tsig), ("--notify", notify)):
            for value in values:
                extra += [option, value]
        super().__init__(workdir, listen=[f"{HOST}:{dns_port}"], extra_args=extra, cwd=workdir)
        self.zone_file = self.write_zone("lab.example.zone", zone_text)

    def srvctl(self, *args: str) -> str:
        cmd = [SRVCTL_BIN, *args, *self.srvctl_api_args()]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}\n{self.log_tail()}"
        return p.stdout

    def register(self, name: str, address: str) -> str:
        return self.srvctl("register", "lab.example", name, "--address", address)

    def deregister(self, name: str) -> str:
        return self.srvctl("deregister", "lab.example", name)

    def serial(self) -> int | None:
        return served_serial(self.port)


# --------------------------------------------------------------------------- NSD


def nsd_conf(
    directory: str | Path,
    port: int,
    primary: str,
    *,
    key: tuple[str, str] | None = None,
    provide_xfr_to: str | None = None,
    host: str = HOST,
) -> str:
    """NSD 4.6 as a secondary of srvd for lab.example. `primary` is srvd's HOST@PORT; `key`
    (name, base64 secret) signs the transfers with hmac-sha256. srvd's NOTIFY is unsigned, so
    allow-notify takes NOKEY. `provide_xfr_to` lets the tests AXFR the copy back from NSD."""
    d = str(directory)
    text = f"""\
server:
  ip-address: {host}@{port}
  zonesdir: "{d}"
  database: ""
  pidfile: "{d}/nsd.pid"
  username: ""
  xfrdfile: "{d}/xfrd.state"
  zonelistfile: "{d}/zone.list"
  server-count: 1
  logfile: "{d}/nsd.log"
  verbosity: 2
remote-control:
  control-enable: no
"""
    if key:
        text += f"""\
key:
  name: {key[0]}
  algorithm: hmac-sha256
  secret: "{key[1]}"
"""
    text += f"""\
zone:
  name: lab.example
  zonefile: lab.example.zone
  request-xfr: {primary} {key[0] if key else "NOKEY"}
  allow-notify: {primary.split("@")[0]} NOKEY
"""
    if provide_xfr_to:
        # store-ixfr keeps the increments NSD received, so an IXFR query to NSD shows
        # whether srvd sent increments (NSD stores nothing for a full transfer).
        text += f"  provide-xfr: {provide_xfr_to} NOKEY\n  store-ixfr: yes\n"
    return text


class Secondary:
    """Common part of NSD and Knot: a process, a port, logs."""

    name = "secondary"
    log_files: tuple[str, ...] = ()

    def __init__(self, workdir: Path, *, key: tuple[str, str] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.proc: subprocess.Popen | None = None
        # Chosen up front so srvd can be started first, with --notify 127.0.0.1:PORT.
        self.port = free_port()
        self.primary_port = 0

    @property
    def notify_target(self) -> str:
        return f"{HOST}:{self.port}"

    def log(self) -> str:
        out = []
        for f in self.log_files:
            p = self.workdir / f
            if p.exists():
                out.append(p.read_text(errors="replace"))
        return "\n".join(out)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {self.name} {f} ---\n{tail(self.workdir / f, lines)}" for f in self.log_files)

    def stop(self) -> None:
        terminate(self.proc)

    def serial(self) -> int | None:
        return served_serial(self.port)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def wait_serial(self, serial: int, timeout: float, diag: Callable[[], str] = lambda: "") -> None:
        def probe() -> bool:
            self.check_alive()
            return self.serial() == serial

        wait_until(probe, timeout, lambda: f"{self.name} to serve serial {serial} (serves {self.serial()})\n"
                   f"{self.log_tail()}\n{diag()}")

    def _wait_listening(self) -> bool:
        """True once the process answers on its port (any rcode); False if it died."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                udp_query(self.port, ZONE, "SOA", timeout=0.3)
                return True
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        return False


class Nsd(Secondary):
    name = "NSD"
    log_files = ("nsd.stderr", "nsd.log")

    def config(self) -> str:
        return nsd_conf(self.workdir, self.port, f"{HOST}@{self.primary_port}", key=self.key, provide_xfr_to=HOST)

    def start(self, primary_port: int) -> "Nsd":
        self.primary_port = primary_port
        binary = find_tool("nsd")
        assert binary, "nsd is not installed"
        conf = self.workdir / "nsd.conf"
        conf.write_text(self.config())
        self.proc = spawn([binary, "-c", str(conf), "-d"], self.workdir / "nsd.stderr")
        if not self._wait_listening():
            raise AssertionError(f"NSD did not start on port {self.port}:\n{self.log_tail()}")
        return self


# --------------------------------------------------------------------------- Knot


def knot_conf(
    directory: str | Path,
    port: int,
    primary_port: int,
    *,
    key: tuple[str, str] | None = None,
    provide_xfr_to: str | None = None,
    host: str = HOST,
    primary_host: str = HOST,
) -> str:
    """Knot DNS 3.2 as a secondary of srvd for lab.example (knot.conf(5) of 3.2: the zone's
    primaries are still called `master`). NOTIFY from srvd is unsigned, so the notify ACL
    matches its address only; `key` (name, base64 secret) signs the transfers."""
    d = str(directory)
    text = f"""\
server:
  listen: {host}@{port}
  rundir: "{d}"
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1

log:
  - target: stderr
    any: info

database:
  storage: "{d}"
"""
    if key:
        text += f"""
key:
  - id: {key[0]}
    algorithm: hmac-sha256
    secret: {key[1]}
"""
    text += f"""
remote:
  - id: primary
    address: {primary_host}@{primary_port}
"""
    if key:
        text += f"    key: {key[0]}\n"
    text += f"""
acl:
  - id: notify_from_primary
    address: {primary_host}
    action: notify
"""
    if provide_xfr_to:
        text += f"""  - id: transfer_to_tests
    address: {provide_xfr_to}
    action: transfer
"""
    acls = "[notify_from_primary, transfer_to_tests]" if provide_xfr_to else "notify_from_primary"
    text += f"""
zone:
  - domain: lab.example.
    storage: "{d}"
    file: lab.example.zone
    master: primary
    acl: {acls}
"""
    return text


class Knot(Secondary):
    name = "Knot"
    log_files = ("knotd.stderr",)

    def config(self) -> str:
        return knot_conf(self.workdir, self.port, self.primary_port, key=self.key, provide_xfr_to=HOST)

    def start(self, primary_port: int) -> "Knot":
        self.primary_port = primary_port
        binary = find_tool("knotd")
        assert binary, "knotd is not installed"
        conf = self.workdir / "knot.conf"
        conf.write_text(self.config())
        self.proc = spawn([binary, "-c", str(conf)], self.workdir / "knotd.stderr")
        if not self._wait_listening():
            raise AssertionError(f"knotd did not start on port {self.port}:\n{self.log_tail()}")
        return self


# --------------------------------------------------------------------------- NOTIFY catcher


class NotifyCatcher:
    """A UDP socket standing in for a secondary: receives srvd's NOTIFY and acknowledges it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]

    @property
    def notify_target(self) -> str:
        return f"{HOST}:{self.port}"

    def receive(self, timeout: float) -> dns.message.Message | None:
        """The next NOTIFY (acknowledged with NOERROR), or None at the deadline."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            try:
                m = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            self.sock.sendto(dns.message.make_response(m).to_wire(), addr)
            return m
        return None

    def stop(self) -> None:
        self.sock.close()


def tcp_accepts(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
