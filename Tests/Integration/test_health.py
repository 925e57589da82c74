"""Health checks (issue 14): srvd probes a member itself, and a member failing its check
leaves `_etcd-client` (clients stop dialling it) but keeps its addresses and `_etcd-server`
(peers still need them). Checked against a real srvd on loopback with a TCP listener and an
HTTP server this test starts and stops.

- `"check": {"tcp": PORT, "interval": 1, "threshold": 2}`: two failed probes in a row make
  the member critical; one passing probe brings the record back; each transition is one
  change (serial + 1) and the member's body says `health` and `checkError`.
- An HTTP check passes on 2xx and fails on anything else.
- A bad check is a 400 naming the field, and changes nothing.
"""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from api_support import SrvdServer, answer_list, run_srvctl
from launcher import wait_until

ZONE = "lab.example."
MEMBERS = "/v1/zones/lab.example/members"


def targets(server: SrvdServer, owner: str) -> set[str]:
    return {rd.split()[3] for rd in answer_list(server.query(owner, "SRV", tcp=True), "SRV")}


def serial(server: SrvdServer) -> int:
    return server.ok(server.get("/v1/zones"), 200)["zones"][0]["serial"]


def health(server: SrvdServer, name: str) -> dict:
    return server.ok(server.get(f"{MEMBERS}/{name}"), 200)


class Listener:
    """A TCP port on 127.0.0.x that accepts while open."""

    def __init__(self, host: str):
        self.host = host
        self.sock: socket.socket | None = None
        probe = socket.socket()
        probe.bind((host, 0))
        self.port = probe.getsockname()[1]
        probe.close()

    def open(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        self.sock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                conn, _ = s.accept()
                conn.close()
            except OSError:
                return

    def close(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None


def test_a_failing_tcp_check_withdraws_only_the_client_record(srvd):
    listener = Listener("127.0.0.71")
    listener.open()
    try:
        body = {"addresses": ["127.0.0.71"], "check": {"tcp": listener.port, "interval": 1, "threshold": 2}}
        created = srvd.ok(srvd.put_member("hc1", body), 201)
        assert created["check"] == {"tcp": listener.port, "interval": 1, "threshold": 2}
        fqdn = f"hc1.{ZONE}"
        wait_until(lambda: health(srvd, "hc1").get("health") == "passing", timeout=10, what="the first probe passes")
        assert fqdn in targets(srvd, "_etcd-client._tcp." + ZONE)
        before = serial(srvd)

        listener.close()
        wait_until(lambda: health(srvd, "hc1").get("health") == "critical", timeout=10, what="the member turns critical")
        got = health(srvd, "hc1")
        assert "refused" in (got.get("checkError") or ""), got
        assert fqdn not in targets(srvd, "_etcd-client._tcp." + ZONE)
        assert fqdn in targets(srvd, "_etcd-server._tcp." + ZONE), "peers still need the member"
        assert answer_list(srvd.query(fqdn, "A"), "A") == ["127.0.0.71"]
        assert serial(srvd) == before + 1, "the withdrawal is one change"
        out = run_srvctl("members", "lab.example", "--server", srvd.url, "--token-file", str(srvd.token_path))
        assert "critical" in out.stdout, out.stdout
        metrics = srvd.request("GET", "/metrics", auth=False).body.decode()
        assert 'srvd_members_health{health="critical"} 1' in metrics, [l for l in metrics.splitlines() if "health" in l]

        listener.open()
        wait_until(lambda: fqdn in targets(srvd, "_etcd-client._tcp." + ZONE), timeout=10, what="the client record comes back")
        assert health(srvd, "hc1").get("health") == "passing"
        assert serial(srvd) == before + 2
    finally:
        listener.close()


class _Status(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_an_http_check_wants_a_2xx_answer(srvd):
    handler = type("Handler", (_Status,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.72", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.72:{server.server_address[1]}/health"
        srvd.ok(srvd.put_member("hc2", {"addresses": ["127.0.0.72"], "check": {"http": url, "interval": 1, "threshold": 1}}), 201)
        wait_until(lambda: health(srvd, "hc2").get("health") == "passing", timeout=10, what="the HTTP check passes")
        handler.status = 503
        wait_until(lambda: health(srvd, "hc2").get("health") == "critical", timeout=10, what="a 503 fails the check")
        assert "503" in (health(srvd, "hc2").get("checkError") or "")
        assert f"hc2.{ZONE}" not in targets(srvd, "_etcd-client._tcp." + ZONE)
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "check, field",
    [
        ({}, "check"),
        ({"tcp": "client", "http": "http://127.0.0.1:1/"}, "check"),
        ({"tcp": "nope"}, None),
        ({"tcp": 0}, "check.tcp"),
        ({"http": "ftp://x/"}, "check.http"),
        ({"tcp": "client", "interval": 0}, "check.interval"),
        ({"tcp": "client", "threshold": "3"}, "check.threshold"),
        ({"tcp": "client", "timeout": 3}, "check.timeout"),
        ("tcp", "check"),
    ],
)
def test_a_bad_check_is_refused_and_changes_nothing(srvd, check, field):
    before = serial(srvd)
    r = srvd.put_member("hc3", {"addresses": ["127.0.0.73"], "check": check})
    assert r.status == 400, r
    if field is not None:
        assert r.json.get("field") == field, r.json
    assert srvd.get(f"{MEMBERS}/hc3").status == 404
    assert serial(srvd) == before
