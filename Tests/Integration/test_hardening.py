"""Hardening: systemd's notify protocol, TCP connection limits, the deadline for
half-received messages, and response rate limiting, each against the real binary."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from conftest import V4, spawn, wait_until

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
    """True when the server closes `s` (EOF or reset) within `within` seconds."""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
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
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="200000")
    cmd = [srvd_bin, "serve", "--zones", str(tmp_path / "zones"), "--data-dir", str(tmp_path / "data"),
           "--dns", f"{V4}:0", "--admin", f"{V4}:0", "--watch-interval", "0"]
    log = tmp_path / "srvd.log"
    proc = spawn(cmd, log, env=env)
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
        assert proc.wait(timeout=10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_without_systemd_srvd_keeps_running(make_srvd):
    """Regression: the systemd service returned at once without $NOTIFY_SOCKET, which
    stopped the whole server."""
    srvd = make_srvd({"h.example.zone": ZONE}).start()
    time.sleep(1.5)
    assert srvd.proc.poll() is None, srvd.log()
    assert udp_query(srvd.port).rcode() == dns.rcode.NOERROR


# --------------------------------------------------------------------------- TCP limits


def test_per_client_and_total_connection_limits(make_srvd):
    srvd = make_srvd(
        {"h.example.zone": ZONE}, extra_args=["--tcp-max-per-client", "4", "--tcp-max-connections", "6"]
    ).start()
    held = []
    try:
        for _ in range(4):
            held.append(socket.create_connection((V4, srvd.port), timeout=3, source_address=(V4, 0)))
        # The fifth from the same address is closed at once...
        extra = socket.create_connection((V4, srvd.port), timeout=3, source_address=(V4, 0))
        held.append(extra)
        assert closed_by_peer(extra, 3)
        # ...while another client is served, over TCP and UDP.
        assert tcp_query(srvd.port, source="127.0.0.2").rcode() == dns.rcode.NOERROR
        assert udp_query(srvd.port).rcode() == dns.rcode.NOERROR
        # Two more from other addresses fill the total of 6; the seventh is closed.
        for source in ("127.0.0.3", "127.0.0.4"):
            held.append(socket.create_connection((V4, srvd.port), timeout=3, source_address=(source, 0)))
        time.sleep(0.2)
        seventh = socket.create_connection((V4, srvd.port), timeout=3, source_address=("127.0.0.5", 0))
        held.append(seventh)
        assert closed_by_peer(seventh, 3)
    finally:
        for s in held:
            s.close()
    # Slots come back when connections close.
    wait_until(lambda: _served(srvd.port, "127.0.0.5"), 5, what="a slot to come back")


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
