"""`--udp-threads N`: N SO_REUSEPORT sockets per DNS address, a recvmmsg thread and an
answer cache each, every one serving the snapshot the registry last swapped in. The kernel
spreads datagrams over the sockets by the client's address and port, so queries from many
source ports reach every thread. Correctness only: speed is bench/'s (BENCHMARKS.md)."""

from __future__ import annotations

import socket
import subprocess

import dns.message
import dns.query
import dns.rcode
import pytest

from api_support import SrvdServer
from launcher import SRVD_BIN, V4

ZONE = "lab.example."


def udp_sockets(port: int) -> int:
    """How many UDP sockets listen on 127.0.0.1:port (ss(8) lists each one)."""
    out = subprocess.run(["ss", "-Hulpn", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    return sum(1 for line in out.splitlines() if f"{V4}:{port}" in line)


def ask(port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    """One query from a fresh socket: a new source port, and so, in time, every thread."""
    q = dns.message.make_query(name, rdtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((V4, 0))
        return dns.query.udp(q, V4, port=port, timeout=3, sock=s)


@pytest.fixture
def threaded(tmp_path):
    server = SrvdServer(tmp_path, extra_args=["--udp-threads", "4"], udp_engine="recvmmsg").start()
    try:
        yield server
    finally:
        server.stop()


def test_every_thread_answers_and_sees_every_swap(threaded):
    assert udp_sockets(threaded.port) == 4, "four sockets share the port"
    assert "udpThreads=4" in threaded.log()
    for _ in range(100):
        r = ask(threaded.port, f"infra0.{ZONE}")
        assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].to_text() == "127.0.0.10", r
    for i in range(3):
        name = f"t{i}"
        threaded.ok(threaded.put_member(name, {"addresses": [f"127.0.0.{40 + i}"]}), 201)
        # The API answered: every thread's next answer, cached or not, shows the member.
        for _ in range(40):
            r = ask(threaded.port, f"{name}.{ZONE}")
            assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].to_text() == f"127.0.0.{40 + i}", (name, r)
        threaded.ok(threaded.delete(f"/v1/zones/lab.example/members/{name}"), 204)
        for _ in range(40):
            assert ask(threaded.port, f"{name}.{ZONE}").rcode() == dns.rcode.NXDOMAIN, name


def test_a_second_server_cannot_join_the_port(threaded, tmp_path):
    """SO_REUSEPORT would let another process of the same user share the port unnoticed:
    srvd takes the port without it first, so a second srvd is refused as before."""
    other = tmp_path / "other"
    other.mkdir()
    r = subprocess.run(
        [SRVD_BIN, "serve", "--zones", str(threaded.zones), "--data-dir", str(other), "--dns", f"{V4}:{threaded.port}",
         "--admin", f"{V4}:0", "--udp-threads", "2", "--udp-engine", "recvmmsg"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "address is in use" in r.stderr, r.stderr[-2000:]
    assert udp_sockets(threaded.port) == 4


@pytest.mark.parametrize("value", ["0", "257", "x"])
def test_bad_thread_counts_are_refused(tmp_path, value):
    r = subprocess.run([SRVD_BIN, "serve", "--zones", str(tmp_path), "--data-dir", str(tmp_path), "--udp-threads", value],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 64 and "--udp-threads" in r.stderr, r.stderr
