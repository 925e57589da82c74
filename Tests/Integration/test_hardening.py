"""Hardening: systemd's notify protocol, TCP connection limits, the deadline for
half-received messages, and response rate limiting, each against the real binary."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from launcher import V4, Srvd, wait_until

ZONE = """\
$ORIGIN h.example.
$TTL 300
@   IN SOA ns1 hostmaster 1 3600 900 604800 60
    IN NS  ns1
ns1 IN A   127.0.0.1
www IN A   127.0.0.80
"""


def query_bytes(name: str = "www.h.example.", rdtype: str = "A", qid: int = 1) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=False)
    q.id = qid
    return q.to_wire()


def tcp_query(port: int, source: str = V4, timeout: float = 3) -> dns.message.Message:
    with socket.create_connection((V4, port), timeout=timeout, source_address=(source, 0)) as s:
        wire = query_bytes()
        s.sendall(struct.pack("!H", len(wire)) + wire)
        length = struct.unpack("!H", recv_exactly(s, 2))[0]
        return dns.message.from_wire(recv_exactly(s, length))


def recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def udp_query(port: int, source: str = V4, timeout: float = 2) -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(query_bytes(), (V4, port))
        return dns.message.from_wire(s.recv(4096))


def closed_by_peer(s: socket.socket, within: float) -> bool:
    """True when the server closes `s` (EOF or reset) within `within` seconds. Peeks, so
    what the server sent stays to be read."""
    s.settimeout(within)
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# --------------------------------------------------------------------------- systemd


def test_notify_protocol_ready_watchdog_stopping(srvd_bin: str, tmp_path: Path):
    """READY=1 comes once DNS answers; WATCHDOG=1 at half of WATCHDOG_USEC; STOPPING=1 on
    SIGTERM, then a clean exit."""
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "h.example.zone").write_text(ZONE)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    srvd = Srvd(tmp_path, binary=srvd_bin, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "200000"})
    proc = srvd.spawn()
    try:
        messages = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(sock.recv(4096).decode())
        ready = next(m for m in messages if m.startswith("READY=1"))
        assert f"MAINPID={proc.pid}" in ready
        port = int(ready.split("serving DNS on ")[1].split(":")[1].split()[0])
        # Ready means ready: the very first query is answered.
        assert udp_query(port).rcode() == dns.rcode.NOERROR
        started = time.monotonic()
        watchdogs = 0
        while time.monotonic() - started < 1.0:
            if sock.recv(4096).decode() == "WATCHDOG=1":
                watchdogs += 1
        assert 3 <= watchdogs <= 15, f"{watchdogs} keep-alives in 1 s for a 0.2 s watchdog"
        proc.terminate()
        rest = []
        while "STOPPING=1" not in rest:
            rest.append(sock.recv(4096).decode())
        assert proc.wait(timeout=10) == 0, srvd.log()
    finally:
        srvd.kill()
        sock.close()


def test_without_systemd_srvd_keeps_running(make_srvd):
    """Regression: the systemd service returned at once without $NOTIFY_SOCKET, which
    stopped the whole server."""
    srvd = make_srvd({"h.example.zone": ZONE}).start()
    time.sleep(1.5)
    assert srvd.proc.poll() is None, srvd.log()
    assert udp_query(srvd.port).rcode() == dns.rcode.NOERROR


# --------------------------------------------------------------------------- TCP limits


def connect(port: int, source: str = V4) -> socket.socket:
    return socket.create_connection((V4, port), timeout=3, source_address=(source, 0))


def ask(s: socket.socket, qid: int = 1) -> dns.message.Message:
    """One query on an open connection, and its answer."""
    wire = query_bytes(qid=qid)
    s.sendall(struct.pack("!H", len(wire)) + wire)
    length = struct.unpack("!H", recv_exactly(s, 2))[0]
    return dns.message.from_wire(recv_exactly(s, length))


def still_open(sockets: list[socket.socket]) -> list[bool]:
    """Which of `sockets` srvd has not closed, after a moment for closes to arrive."""
    time.sleep(0.2)
    return [not closed_by_peer(s, 0.001) for s in sockets]


def test_per_client_and_total_connection_limits(make_srvd):
    """RFC 7766 §6.2.3: at a limit srvd closes the longest-idle connection to admit the new
    one, rather than refusing it: for the per-client limit one from the same address, for
    the total limit any."""
    srvd = make_srvd(
        {"h.example.zone": ZONE}, tcp_idle_timeout=30, log_level="debug",
        extra_args=["--tcp-max-per-client", "4", "--tcp-max-connections", "6"],
    ).start()
    held = []
    try:
        for _ in range(4):
            held.append(connect(srvd.port))
            time.sleep(0.05)
        # A fifth from the same address is served; the oldest of the four is closed.
        fifth = connect(srvd.port)
        held.append(fifth)
        assert ask(fifth).rcode() == dns.rcode.NOERROR
        assert closed_by_peer(held[0], 3)
        assert still_open(held[1:4]) == [True] * 3
        # Another client is served, over TCP and UDP, and takes nobody's place.
        assert tcp_query(srvd.port, source="127.0.0.2").rcode() == dns.rcode.NOERROR
        assert udp_query(srvd.port).rcode() == dns.rcode.NOERROR
        time.sleep(0.3)  # for srvd to see that connection close
        # Two more from other addresses fill the total of 6 (held[1:5] and these)...
        for source in ("127.0.0.3", "127.0.0.4"):
            held.append(connect(srvd.port, source))
        assert still_open(held[1:7]) == [True] * 6
        # ...and a seventh client is served in the place of the longest-idle of all,
        # held[1], though its address is another.
        seventh = connect(srvd.port, "127.0.0.5")
        held.append(seventh)
        assert ask(seventh).rcode() == dns.rcode.NOERROR
        assert closed_by_peer(held[1], 3)
        assert still_open(held[2:8]) == [True] * 6
        assert "closed the longest-idle TCP connection to make room" in srvd.log()
    finally:
        for s in held:
            s.close()
    # Slots come back when connections close.
    wait_until(lambda: _served(srvd.port, "127.0.0.5"), 5, what="a slot to come back")


def test_four_hundred_idle_connections_from_one_address_do_not_block_its_retry(make_srvd):
    """The integrity issue: 400 idle connections from one address (default limits, 32 per
    client), then that address's TC→TCP retry. It is answered, as NSD answers it."""
    srvd = make_srvd({"h.example.zone": ZONE}, tcp_idle_timeout=30).start()
    held = []
    try:
        for _ in range(400):
            held.append(connect(srvd.port))
        retry = connect(srvd.port)
        held.append(retry)
        assert ask(retry).rcode() == dns.rcode.NOERROR
        # A second query on the same connection works too: it was admitted, not just
        # answered on its way out.
        assert ask(retry, qid=2).rcode() == dns.rcode.NOERROR
        # At most 31 of the idle ones are left (the retry holds the 32nd slot): the most
        # recent ones, not the oldest.
        open_now = still_open(held[:400])
        assert sum(open_now) <= 31, sum(open_now)
        assert not any(open_now[:300])
    finally:
        for s in held:
            s.close()


def test_at_the_total_limit_a_new_client_is_served(make_srvd):
    """The total limit reached by idle connections of other addresses: a new client takes
    the place of the longest-idle one."""
    srvd = make_srvd(
        {"h.example.zone": ZONE}, tcp_idle_timeout=30,
        extra_args=["--tcp-max-connections", "60", "--tcp-max-per-client", "10"],
    ).start()
    held = []
    try:
        for i in range(60):
            held.append(connect(srvd.port, f"127.0.3.{i % 6 + 1}"))
            time.sleep(0.01)  # so the order srvd sees is the order here
        time.sleep(0.2)
        # The first connection makes itself the most recently active.
        assert ask(held[0]).rcode() == dns.rcode.NOERROR
        assert tcp_query(srvd.port, source="127.0.4.1").rcode() == dns.rcode.NOERROR
        assert closed_by_peer(held[1], 3)
        assert still_open([held[0]] + held[2:]) == [True] * 59
    finally:
        for s in held:
            s.close()


def _served(port: int, source: str) -> bool:
    try:
        return tcp_query(port, source=source).rcode() == dns.rcode.NOERROR
    except OSError:
        return False


def test_hundreds_of_idle_connections_do_not_starve_anyone(make_srvd):
    """300 idle connections from 30 addresses (default limits): UDP and new TCP clients are
    still answered."""
    srvd = make_srvd({"h.example.zone": ZONE}).start()
    held = []
    try:
        for i in range(300):
            held.append(socket.create_connection((V4, srvd.port), timeout=3, source_address=(f"127.0.1.{i % 30 + 1}", 0)))
        for _ in range(20):
            assert udp_query(srvd.port).rcode() == dns.rcode.NOERROR
        assert tcp_query(srvd.port, source="127.0.2.1").rcode() == dns.rcode.NOERROR
    finally:
        for s in held:
            s.close()


def big_zone(records: int) -> str:
    """ZONE and `records` TXT records of 250 octets: an AXFR of megabytes."""
    text = "x" * 250
    return ZONE + "".join(f'big{i} IN TXT "{text}"\n' for i in range(records))


def start_transfer(port: int) -> socket.socket:
    """Asks for an AXFR of h.example. and reads none of it, on a socket with a tiny receive
    buffer: srvd has megabytes still to write."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(3)
    s.connect((V4, port))
    wire = dns.message.make_query("h.example.", "AXFR", use_edns=False).to_wire()
    s.sendall(struct.pack("!H", len(wire)) + wire)
    return s


def read_transfer(s: socket.socket) -> int:
    """Reads an AXFR to its closing SOA; returns the number of records."""
    s.settimeout(20)
    records = 0
    while True:
        length = struct.unpack("!H", recv_exactly(s, 2))[0]
        m = dns.message.from_wire(recv_exactly(s, length))
        first = records == 0
        records += sum(len(rrset) for rrset in m.answer)
        if not first and m.answer and m.answer[-1].rdtype == dns.rdatatype.SOA:
            return records


def test_a_busy_connection_is_not_closed_to_make_room(make_srvd):
    """A connection with answers still being written (a big AXFR its client reads slowly)
    has a query in flight and is not idle, however long ago it last sent anything: the
    limit closes an idle connection instead, and when every one is busy the new connection
    is closed at once, as before."""
    records = 32000  # 8 MB, more than the kernel's socket buffers hold
    srvd = make_srvd(
        {"h.example.zone": big_zone(records)}, tcp_idle_timeout=30, log_level="debug",
        extra_args=["--tcp-max-per-client", "2", "--allow-transfer", "127.0.0.0/8"],
    ).start()
    held = []
    try:
        first = start_transfer(srvd.port)
        held.append(first)
        idle = connect(srvd.port)
        held.append(idle)
        time.sleep(1)  # for the transfer to be built and to fill the write buffers
        # The transfer is the older, but busy: the idle connection makes room.
        third = connect(srvd.port)
        held.append(third)
        assert ask(third).rcode() == dns.rcode.NOERROR
        assert closed_by_peer(idle, 3)
        assert still_open([first, third]) == [True, True]
        # A second transfer takes the place of `third`, idle again once answered.
        second = start_transfer(srvd.port)
        held.append(second)
        assert closed_by_peer(third, 3)
        time.sleep(1)
        # Both connections are busy: the new one is closed at once.
        refused = connect(srvd.port)
        held.append(refused)
        assert closed_by_peer(refused, 3)
        assert still_open([first, second]) == [True, True]
        # The transfers come through whole (SOA, NS, two A, the TXTs, SOA)...
        assert read_transfer(first) == records + 5
        assert read_transfer(second) == records + 5
        # ...after which their connections are idle like any other.
        time.sleep(0.2)
        last = connect(srvd.port)
        held.append(last)
        assert ask(last).rcode() == dns.rcode.NOERROR
        assert closed_by_peer(first, 3)
        assert "every connection at the limit is busy" in srvd.log()
    finally:
        for s in held:
            s.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_clients_that_pipeline_without_reading_cannot_make_srvd_buffer_without_bound(make_srvd):
    """Four clients each pipeline 2000 queries whose answers are 15 KB (30 MB of answers
    each) and read nothing. srvd neither reads on nor answers ahead while answers wait to
    be sent, so its memory stays put; others are answered meanwhile; a message srvd itself
    stopped reading halfway is not cut off by --tcp-message-timeout; and once the clients
    read, every query is answered."""
    fat = "".join(f'fat IN TXT "{i:03d}{"y" * 246}"\n' for i in range(60))
    srvd = make_srvd({"h.example.zone": ZONE + fat}, tcp_idle_timeout=30).start()
    count = 2000
    stream = b"".join(
        struct.pack("!H", len(w)) + w for w in (query_bytes("fat.h.example.", "TXT", qid=i) for i in range(count)))
    floods = []
    for _ in range(4):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect((V4, srvd.port))
        floods.append(s)
    try:
        assert tcp_query(srvd.port, source="127.0.0.2").rcode() == dns.rcode.NOERROR  # warm up
        before = rss_mib(srvd.proc.pid)
        senders = [threading.Thread(target=s.sendall, args=(stream,)) for s in floods]
        for t in senders:
            t.start()
        peak = before
        started = time.monotonic()
        while time.monotonic() - started < 3:  # longer than --tcp-message-timeout (2 s)
            peak = max(peak, rss_mib(srvd.proc.pid))
            time.sleep(0.1)
        # Without the bound srvd would read and answer all 8000 at once: 120 MB.
        assert peak - before < 20, f"RSS grew {peak - before:.0f} MiB"
        # Everyone else is answered.
        assert udp_query(srvd.port, source="127.0.0.2").rcode() == dns.rcode.NOERROR
        assert tcp_query(srvd.port, source="127.0.0.2").rcode() == dns.rcode.NOERROR
        answered = [0] * len(floods)

        def drain(i: int) -> None:
            for expected in range(count):
                length = struct.unpack("!H", recv_exactly(floods[i], 2))[0]
                qid, _, _, ancount = struct.unpack("!HHHH", recv_exactly(floods[i], length)[:8])
                assert (qid, ancount) == (expected, 60)
                answered[i] += 1

        readers = [threading.Thread(target=drain, args=(i,)) for i in range(len(floods))]
        for t in readers:
            t.start()
        for t in readers + senders:
            t.join()
        assert answered == [count] * len(floods)
        assert rss_mib(srvd.proc.pid) - before < 20
    finally:
        for s in floods:
            s.close()


def test_a_half_received_message_has_a_deadline(make_srvd):
    """A client that starts a message and stops is cut off after --tcp-message-timeout,
    long before the idle timeout; an idle connection between messages is not."""
    srvd = make_srvd({"h.example.zone": ZONE}, tcp_idle_timeout=30, extra_args=["--tcp-message-timeout", "1"]).start()
    slow = socket.create_connection((V4, srvd.port), timeout=3)
    idle = socket.create_connection((V4, srvd.port), timeout=3)
    try:
        wire = query_bytes()
        slow.sendall(struct.pack("!H", len(wire)) + wire[:5])
        started = time.monotonic()
        assert closed_by_peer(slow, 5)
        assert time.monotonic() - started < 4
        assert not closed_by_peer(idle, 0.5)
        # The idle connection still works.
        idle.sendall(struct.pack("!H", len(wire)) + wire)
        length = struct.unpack("!H", recv_exactly(idle, 2))[0]
        assert dns.message.from_wire(recv_exactly(idle, length)).rcode() == dns.rcode.NOERROR
    finally:
        slow.close()
        idle.close()


# --------------------------------------------------------------------------- rate limiting


def flood(port: int, count: int, source: str = V4) -> tuple[int, int]:
    """Sends `count` identical queries as fast as possible; returns (full answers,
    truncated answers) received within a second of the last send."""
    full = truncated = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        wire = query_bytes()
        for _ in range(count):
            s.sendto(wire, (V4, port))
        s.settimeout(1)
        try:
            while True:
                m = dns.message.from_wire(s.recv(4096))
                if m.flags & dns.flags.TC:
                    assert not m.answer
                    truncated += 1
                else:
                    full += 1
        except socket.timeout:
            pass
    return full, truncated


def test_response_rate_limiting_drops_and_slips(make_srvd):
    srvd = make_srvd({"h.example.zone": ZONE}, extra_args=["--rrl-limit", "20", "--rrl-slip", "2"]).start()
    full, truncated = flood(srvd.port, 400)
    # At most two one-second windows of 20 full answers; about half the rest truncated.
    assert 20 <= full <= 40, (full, truncated)
    assert 100 <= truncated <= 220, (full, truncated)
    # Another /24 has its own budget.
    assert udp_query(srvd.port, source="127.0.5.1").answer
    # TCP is never limited: the slipped client gets its answer there.
    assert tcp_query(srvd.port).answer
    metrics = _metrics(srvd)
    assert _value(metrics, "srvd_rrl_dropped_total") > 100
    assert _value(metrics, "srvd_rrl_slipped_total") >= truncated


def test_rate_limiting_can_be_turned_off(make_srvd):
    """With --rrl-limit 0, a thousand identical queries in a second all get full answers
    (sent in windows of 25, so the socket buffers are not what drops them)."""
    srvd = make_srvd({"h.example.zone": ZONE}, extra_args=["--rrl-limit", "0"]).start()
    full = truncated = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        wire = query_bytes()
        for _ in range(40):
            for _ in range(25):
                s.sendto(wire, (V4, srvd.port))
            for _ in range(25):
                m = dns.message.from_wire(s.recv(4096))
                if m.flags & dns.flags.TC:
                    truncated += 1
                else:
                    full += 1
    assert (full, truncated) == (1000, 0)


def admin_port(srvd) -> int:
    """The admin API's port, once srvd has logged it (it may come after the DNS lines)."""
    import re

    pattern = re.compile(r"address=127\.0\.0\.1:(\d+) \[srvd\] serving the admin API")
    wait_until(lambda: pattern.search(srvd.log()), 10, what="the admin API to listen")
    return int(pattern.search(srvd.log()).group(1))


def _metrics(srvd) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port(srvd)}/metrics", timeout=5) as r:
        return r.read().decode()


def _value(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --------------------------------------------------------------------------- admin API


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=srvd test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "srv.key",
        "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext")
    return folder / "ca.pem", folder / "srv.pem", folder / "srv.key"


def test_admin_api_over_tls(make_srvd, tmp_path: Path, srvctl_bin: str):
    import ssl
    import urllib.error
    import urllib.request

    ca, cert, key = make_certificates(tmp_path)
    srvd = make_srvd({"h.example.zone": ZONE}, extra_args=["--admin-tls-cert", str(cert), "--admin-tls-key", str(key)]).start()
    port = admin_port(srvd)
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=5) as r:
        assert r.status == 200
    # Without the CA the certificate is not trusted; plain HTTP gets no answer.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=5)
    with pytest.raises(Exception):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    token = srvd.data / "admin.token"
    ok = subprocess.run([srvctl_bin, "register", "h.example", "m1", "--address", "127.0.0.31", "--server",
                         f"https://127.0.0.1:{port}", "--token-file", str(token), "--ca-file", str(ca)],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert udp_query(srvd.port).rcode() == dns.rcode.NOERROR


def test_tls_needs_both_certificate_and_key(srvd_bin: str, tmp_path: Path):
    r = subprocess.run([srvd_bin, "serve", "--admin-tls-cert", str(tmp_path / "x.pem")], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "--admin-tls-cert and --admin-tls-key go together" in r.stderr
