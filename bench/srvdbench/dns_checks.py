"""DNS for the harness, through dnspython: the queries for readiness, the registration probes
and the --scale measurements, the seed zone and the query mix it gives, and dig's view of
every answer of the mix.

The socket I/O is done here rather than by dns.query so that the clocks stop when the last
octet arrives: dnspython then parses the message after the measurement, and a large answer
or transfer times the server, not the parser.
"""

import re
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.zone

from .common import BenchError

HOST = "127.0.0.1"


@dataclass
class Reply:
    """A parsed response and its size on the wire (dnspython keeps no size)."""

    msg: dns.message.Message
    size: int

    @property
    def rcode(self):
        return self.msg.rcode()

    @property
    def aa(self):
        return bool(self.msg.flags & dns.flags.AA)

    @property
    def tc(self):
        return bool(self.msg.flags & dns.flags.TC)

    def answers(self, rdtype):
        """The answer section's rdata of `rdtype`, as text."""
        want = dns.rdatatype.from_text(rdtype)
        return [rd.to_text() for rrset in self.msg.answer if rrset.rdtype == want for rd in rrset]


def make_query(name, rdtype):
    """A query with a random ID, without recursion desired (the servers are authoritative)
    and without EDNS."""
    return dns.message.make_query(name, rdtype, flags=0, use_edns=False)


def parse(data):
    try:
        return dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None


def udp_exchange(sock, port, q, timeout, wire=None):
    """Sends query `q` (its `wire` when already encoded) and waits for the reply with its ID
    (the reflector's echo of the query counts): (seconds from send to the reply's arrival, the
    monotonic time it arrived, Reply), or None on timeout. The clock stops before dnspython
    encodes or parses anything: on this harness's machines each costs about as much as the
    server's answer."""
    wire = q.to_wire() if wire is None else wire
    sock.settimeout(timeout)
    t0 = time.perf_counter()
    sock.sendto(wire, (HOST, port))
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = sock.recv(65535)
        except (socket.timeout, ConnectionRefusedError):
            return None
        seconds, arrived = time.perf_counter() - t0, time.monotonic()
        m = parse(data)
        if m is not None and m.id == q.id:
            return seconds, arrived, Reply(m, len(data))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)


def udp_ask(sock, port, name, rdtype, timeout):
    """One query; its Reply, or None on timeout."""
    got = udp_exchange(sock, port, make_query(name, rdtype), timeout)
    return got[2] if got else None


def udp_time(sock, port, name, rdtype, timeout=30):
    """(seconds from send to the answer, Reply) of one UDP query; None on timeout."""
    got = udp_exchange(sock, port, make_query(name, rdtype), timeout)
    return (got[0], got[2]) if got else None


def recv_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise BenchError(f"connection closed after {got} of {n} octets")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(sock):
    """One DNS message over TCP: its two-octet length, then the message."""
    (length,) = struct.unpack(">H", recv_exact(sock, 2))
    return recv_exact(sock, length)


def tcp_ask(port, name, rdtype, timeout=30):
    """One query over a new TCP connection (as a resolver does after a truncated UDP answer):
    (seconds from connect to the whole response read, Reply)."""
    q = make_query(name, rdtype)
    wire = q.to_wire()
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(struct.pack(">H", len(wire)) + wire)
        data = read_frame(s)
    seconds = time.perf_counter() - t0
    m = parse(data)
    if m is None:
        raise BenchError(f"TCP answer of {len(data)} octets does not parse")
    if m.id != q.id:
        raise BenchError(f"TCP answer with ID {m.id}, expected {q.id}")
    return seconds, Reply(m, len(data))


RCODE_WORDS = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def answer_shape(r):
    """What the answer to the big SRV query held, in words for the table."""
    if r is None:
        return "no answer"
    rcode = RCODE_WORDS.get(r.rcode, f"rcode {r.rcode}")
    records = sum(len(rrset) for rrset in r.msg.answer)
    return f"{rcode}{', TC' if r.tc else ''}, {records} answer records, {r.size:,} octets"


def soa_tail(port, origin):
    """The last 20 octets of the zone's SOA RDATA (serial, refresh, retry, expire, minimum),
    never compressed: the AXFR reader knows the transfer is over when a message ends in them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        r = udp_ask(s, port, origin, "SOA", timeout=5)
    soas = [rd for rrset in (r.msg.answer if r else []) if rrset.rdtype == dns.rdatatype.SOA for rd in rrset]
    if not soas:
        raise BenchError(f"no SOA answer from {HOST}:{port}")
    soa = soas[0]
    return struct.pack(">IIIII", soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum)


def axfr(port, origin, timeout=120):
    """A whole AXFR over one TCP connection, read as fast as it comes: (seconds from connect to
    the last octet, {octets, messages, records}). The end is the message that finishes with
    the SOA's fixed fields; once timed, the messages are parsed and checked: SOA first and
    last, no other SOA, every message NOERROR."""
    tail = soa_tail(port, origin)
    q = make_query(origin, "AXFR")
    wire = q.to_wire()
    messages = []
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(struct.pack(">H", len(wire)) + wire)
        while True:
            data = read_frame(s)
            messages.append(data)
            # Only the header's RCODE and ANCOUNT while the clock runs: parsing every message
            # here would time dnspython. A lone first message holding one SOA is not the end.
            rcode, ancount = data[3] & 0xF, struct.unpack_from(">H", data, 6)[0]
            if rcode or (len(messages) > 1 or ancount > 1) and data.endswith(tail):
                break
    seconds = time.perf_counter() - t0
    records, soas, octets = 0, 0, 0
    for i, data in enumerate(messages):
        octets += 2 + len(data)
        try:
            m = dns.message.from_wire(data, one_rr_per_rrset=True)
        except dns.exception.DNSException as e:
            raise BenchError(f"message {i + 1} does not parse: {e}") from None
        if m.id != q.id or m.rcode():
            rcode = {2: "SERVFAIL", 5: "REFUSED"}.get(m.rcode(), f"rcode {m.rcode()}")
            raise BenchError(f"message {i + 1}: {rcode}" if m.id == q.id else f"message {i + 1}: ID {m.id}, expected {q.id}")
        for rrset in m.answer:
            for _ in rrset:
                if rrset.rdtype == dns.rdatatype.SOA:
                    if records != 0 and soas != 1:
                        raise BenchError("AXFR: a SOA record in the middle of the transfer")
                    soas += 1
                elif soas != 1:
                    raise BenchError("AXFR: records before the first SOA or after the last")
                records += 1
    if soas != 2:
        raise BenchError(f"AXFR: {soas} SOA records, expected 2 (first and last)")
    return seconds, {"octets": octets, "messages": len(messages), "records": records}


# ---------------------------------------------------------------------------------------------
# The zone, the query mix and what each query must get


def zone_rrsets(text):
    """(origin, {(owner, type): {rdata}}) of a zone file, names absolute and lower case, as dig
    prints them."""
    try:
        zone = dns.zone.from_text(text, origin=None, relativize=False, check_origin=False)
    except dns.zone.UnknownOrigin:
        raise BenchError("the seed zone has no $ORIGIN") from None
    except dns.exception.DNSException as e:
        raise BenchError(f"the seed zone does not parse: {e}") from None
    rrsets = {}
    for name, _ttl, rdata in zone.iterate_rdatas():
        key = (name.to_text().lower(), dns.rdatatype.to_text(rdata.rdtype))
        rrsets.setdefault(key, set()).add(rdata.to_text().lower())
    return zone.origin.to_text().lower(), rrsets


def query_mix(zone_text):
    """The issue's mix in equal parts, one line of each part per member (18 lines for 3 members):
    SRV _etcd-server._tcp, SRV _etcd-client._tcp, SRV _etcd-server-ssl._tcp (NXDOMAIN), A of a
    member, A of a missing name (NXDOMAIN), AAAA of a member (NODATA). Returns (origin,
    [(name, type, expected rcode, expected answer rdata set)])."""
    origin, rrsets = zone_rrsets(zone_text)
    names = {owner for owner, _ in rrsets}
    server, client = f"_etcd-server._tcp.{origin}", f"_etcd-client._tcp.{origin}"
    ssl = f"_etcd-server-ssl._tcp.{origin}"
    members = sorted(r.split()[3] for r in rrsets.get((server, "SRV"), ()))
    if not members or (client, "SRV") not in rrsets:
        raise BenchError("the seed zone needs SRV records at _etcd-server._tcp and _etcd-client._tcp")
    if ssl in names:
        raise BenchError(f"the seed zone has {ssl}, which the mix asks as a missing name")
    mix = []
    for i, m in enumerate(members):
        if (m, "A") not in rrsets or (m, "AAAA") in rrsets:
            raise BenchError(f"member {m} needs an A record and no AAAA record in the seed zone")
        missing = f"missing{i}.{origin}"
        assert missing not in names
        mix += [
            (server, "SRV", "NOERROR", rrsets[(server, "SRV")]),
            (client, "SRV", "NOERROR", rrsets[(client, "SRV")]),
            (ssl, "SRV", "NXDOMAIN", set()),
            (m, "A", "NOERROR", rrsets[(m, "A")]),
            (missing, "A", "NXDOMAIN", set()),
            (m, "AAAA", "NOERROR", set()),  # NODATA
        ]
    return origin, mix


def verify_with_dig(server, mix):
    """Asks each query of the mix with dig; returns a list of problems (empty when all is right):
    the rcode, the AA bit, the answer RRset, and for negative answers the SOA in authority."""
    problems = []
    for name, qtype, rcode, rdatas in mix:
        r = subprocess.run(["dig", "+norec", "+time=2", "+tries=2", "-p", str(server.port), "@127.0.0.1",
                            name, qtype, "+noall", "+comments", "+answer", "+authority"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        what = f"{name} {qtype}"
        status = re.search(r"status: (\w+)", r.stdout)
        flags = re.search(r";; flags: ([a-z ]*);", r.stdout)
        if r.returncode != 0 or not status or not flags:
            problems.append(f"{what}: no answer ({r.stdout.strip().splitlines()[-1:] or r.returncode})")
            continue
        sections, section = {"ANSWER": [], "AUTHORITY": []}, None
        for line in r.stdout.splitlines():
            m = re.match(r";; (\w+) SECTION:", line)
            if m:
                section = m.group(1)
            elif line and not line.startswith(";") and section in sections:
                sections[section].append(line.split())
        answer = {(f[0].lower(), f[3].upper(), " ".join(f[4:]).lower()) for f in sections["ANSWER"]}
        want = {(name, qtype, rd) for rd in rdatas}
        if status.group(1) != rcode:
            problems.append(f"{what}: rcode {status.group(1)}, expected {rcode}")
        elif "aa" not in flags.group(1).split():
            problems.append(f"{what}: answer without the AA bit")
        elif answer != want:
            problems.append(f"{what}: answer {sorted(answer)}, expected {sorted(want)}")
        elif not rdatas and not any(f[3].upper() == "SOA" for f in sections["AUTHORITY"]):
            problems.append(f"{what}: negative answer without the zone's SOA in authority (RFC 2308)")
    return problems



def check_scale_answers(srv, n):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in (0, n // 2, n - 1):
            k = i + 1
            want = f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}"
            r = udp_ask(s, srv.port, f"member{i}.lab.example.", "A", timeout=2)
            if not r or r.rcode != 0 or r.answers("A") != [want]:
                return f"member{i} A: {r and (r.rcode, [rrset.to_text() for rrset in r.msg.answer])}"
        r = udp_ask(s, srv.port, f"member{n}.lab.example.", "A", timeout=2)
        if not r or r.rcode != 3:
            return f"member{n} A (missing): rcode {r and r.rcode}, expected NXDOMAIN"
    return None


class MemberProbe:
    """The A query for a member about to be registered, encoded before its PUT is sent, so
    that the delay from the PUT's response to the answer holds no encoding."""

    def __init__(self, name, addr):
        self.name, self.addr = name, addr
        self.query = make_query(name, "A")
        self.wire = self.query.to_wire()

    def run(self, sock, port, t_response):
        """('immediate'|'later'|'never', seconds from the PUT's response to the right DNS
        answer)."""
        q, wire, first = self.query, self.wire, True
        while time.monotonic() - t_response < 2:
            got = udp_exchange(sock, port, q, 1, wire)
            if got and got[2].rcode == 0 and self.addr in got[2].answers("A"):
                return ("immediate" if first else "later"), got[1] - t_response
            first = False
            q = make_query(self.name, "A")  # a new ID, as every retry of a resolver has
            wire = None
            time.sleep(0.001)
        return "never", None
