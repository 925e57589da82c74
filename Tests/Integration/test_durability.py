"""Durability of the registration store: a change acknowledged with 2xx survives SIGKILL,
and a store srvd cannot trust stops it (exit 74) before it serves anything."""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns.rcode  # noqa: E402
import pytest  # noqa: E402

from api_support import (  # noqa: E402
    SrvdServer,
    answer_list,
    answer_set,
    http_request,
)
from launcher import free_port, wait_until  # noqa: E402

MEMBERS = "/v1/zones/lab.example/members"
EXIT_STORE = 74


def address(i: int) -> str:
    return f"127.0.{i // 250 + 1}.{i % 250 + 1}"


class Ledger:
    """What the clients sent and what srvd acknowledged, per member name, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[str, tuple[str, int]] = {}  # name -> (address, serial) of the last 2xx
        self.sent_after_ack: dict[str, set[str]] = {}  # name -> addresses sent later, unanswered
        self.count = 0
        self.errors: list[str] = []

    def sending(self, name: str, addr: str) -> None:
        with self.lock:
            self.sent_after_ack.setdefault(name, set()).add(addr)

    def acknowledged(self, name: str, addr: str, serial: int) -> None:
        with self.lock:
            self.acked[name] = (addr, serial)
            self.sent_after_ack[name] = set()
            self.count += 1


def register_loop(server: SrvdServer, ledger: Ledger, ops: list[tuple[str, str]], stop: threading.Event) -> None:
    """PUTs `ops` one after the other until srvd dies (or `stop`)."""
    for name, addr in ops:
        if stop.is_set():
            return
        ledger.sending(name, addr)
        try:
            r = http_request(server.admin_port, "PUT", f"{MEMBERS}/{name}", body={"addresses": [addr]}, token=server.token)
        except Exception:  # noqa: BLE001 - srvd was killed mid-request (reset, refused, ...)
            return
        if 200 <= r.status < 300:
            ledger.acknowledged(name, addr, r.json["serial"])
        else:
            with ledger.lock:
                ledger.errors.append(f"{name}: {r!r}")
            return


def kill_midway(server: SrvdServer, ledger: Ledger, threads: list[threading.Thread], after: int, stop: threading.Event) -> None:
    for t in threads:
        t.start()
    try:
        wait_until(lambda: ledger.count >= after or not any(t.is_alive() for t in threads), 60, f"{after} acknowledged PUTs", interval=0.02, errors=())
        assert ledger.count >= after, f"only {ledger.count} PUTs acknowledged; errors: {ledger.errors[:3]}"
        assert any(t.is_alive() for t in threads), "the loop finished before the kill; nothing was in flight"
        server.kill()  # SIGKILL while PUTs are in flight
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not ledger.errors, ledger.errors[:5]


def check_survivors(server: SrvdServer, ledger: Ledger, max_in_flight: int) -> None:
    """Every acknowledged member is listed and resolves (A and both SRV) with the last
    acknowledged address, or with one sent later whose answer the kill cut off."""
    listed = {m["name"]: m for m in server.members()["members"]}
    peers = set(answer_list(server.query("_etcd-server._tcp.lab.example.", "SRV", tcp=True), "SRV"))
    clients = set(answer_list(server.query("_etcd-client._tcp.lab.example.", "SRV", tcp=True), "SRV"))
    missing, wrong = [], []
    for name, (addr, _serial) in sorted(ledger.acked.items()):
        allowed = {addr} | ledger.sent_after_ack.get(name, set())
        fqdn = f"{name}.lab.example."
        if name not in listed:
            missing.append(f"{name}: not listed by the API")
            continue
        if set(listed[name]["addresses"]) - allowed or len(listed[name]["addresses"]) != 1:
            wrong.append(f"{name}: API lists {listed[name]['addresses']}, acknowledged {addr}")
        served = answer_set(server.query(fqdn, "A"), "A")
        if len(served) != 1 or not served <= allowed:
            wrong.append(f"{name}: DNS A {served or 'none'}, acknowledged {addr}")
        if f"0 0 2380 {fqdn}" not in peers:
            missing.append(f"{name}: not in _etcd-server._tcp SRV")
        if f"0 0 2379 {fqdn}" not in clients:
            missing.append(f"{name}: not in _etcd-client._tcp SRV")
    assert not missing and not wrong, f"{len(missing)} missing, {len(wrong)} wrong after SIGKILL: {(missing + wrong)[:10]}"
    # Nothing but what was sent; at most the in-flight requests beyond what was acknowledged.
    sent_names = set(ledger.acked) | {n for n, s in ledger.sent_after_ack.items() if s}
    assert set(listed) <= sent_names, sorted(set(listed) - sent_names)[:10]
    assert len(set(listed) - set(ledger.acked)) <= max_in_flight
    # The serial never goes back behind an acknowledged change.
    top = max(serial for _addr, serial in ledger.acked.values())
    assert server.serial() >= top, (server.serial(), top)
    assert server.soa_serial() == server.serial()


def test_acknowledged_registrations_survive_sigkill_sequential(tmp_path):
    server = SrvdServer(tmp_path / "srvd")
    try:
        server.start()
        # 300 operations: new members, and every fifth one re-registers an earlier member
        # with a new address (a replacement must survive too, not the older version).
        ops: list[tuple[str, str]] = []
        for i in range(300):
            if i % 5 == 4:
                j = i - 3
                ops.append((f"m{j:03d}", address(1000 + i)))
            else:
                ops.append((f"m{i:03d}", address(i)))
        ledger, stop = Ledger(), threading.Event()
        thread = threading.Thread(target=register_loop, args=(server, ledger, ops, stop), daemon=True)
        kill_midway(server, ledger, [thread], after=120, stop=stop)
        assert ledger.count < len(ops)

        server.start()
        check_survivors(server, ledger, max_in_flight=1)
    finally:
        server.stop()


def test_acknowledged_registrations_survive_sigkill_concurrent(tmp_path):
    server = SrvdServer(tmp_path / "srvd")
    try:
        server.start()
        ledger, stop = Ledger(), threading.Event()
        threads = []
        for t in range(8):
            ops = [(f"t{t}-{k:02d}", address(t * 40 + k)) for k in range(40)]
            threads.append(threading.Thread(target=register_loop, args=(server, ledger, ops, stop), daemon=True))
        kill_midway(server, ledger, threads, after=120, stop=stop)
        assert ledger.count < 320

        server.start()
        check_survivors(server, ledger, max_in_flight=8)
    finally:
        server.stop()


def test_restart_after_sigkill_keeps_deletions_and_records(tmp_path):
    server = SrvdServer(tmp_path / "srvd")
    try:
        server.start()
        server.ok(server.put_member("infra3", {"addresses": ["127.0.0.13"], "tls": True, "service": "blue", "ttl": 30}), 201)
        server.ok(server.put_member("infra4", {"addresses": ["127.0.0.14"]}), 201)
        assert server.delete(f"{MEMBERS}/infra4").status == 204
        server.ok(server.put("/v1/zones/lab.example/records/txt1/TXT", {"rdata": ['"kept"']}), 201)
        assert server.delete("/v1/zones/lab.example/records/infra0/A").status == 204
        before = server.snapshot()
        server.kill()

        server.start()
        assert server.snapshot() == before
        assert answer_list(server.query("_etcd-server-ssl-blue._tcp.lab.example.", "SRV"), "SRV") == ["0 0 2380 infra3.lab.example."]
        assert server.query("infra4.lab.example.", "A").rcode() == dns.rcode.NXDOMAIN
        assert server.query("infra0.lab.example.", "A").rcode() == dns.rcode.NXDOMAIN
        assert answer_set(server.query("txt1.lab.example.", "TXT"), "TXT") == {'"kept"'}
    finally:
        server.stop()


# --------------------------------------------------------------------------- unusable stores


def populated_store(tmp_path) -> SrvdServer:
    """A data dir holding a real store with members, srvd stopped cleanly."""
    server = SrvdServer(tmp_path / "srvd")
    try:
        server.start()
        for i in range(3):
            server.ok(server.put_member(f"m{i}", {"addresses": [address(i)]}), 201)
    finally:
        assert server.stop() == 0, server.log()
    db = server.data / "srvd.sqlite"
    assert db.exists()
    # Fold any WAL left behind into the main file, so the damage below hits the data.
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert not (server.data / "srvd.sqlite-wal").exists()
    return server


def assert_refuses_store(server: SrvdServer, *words: str) -> str:
    """Starts srvd on a fixed DNS port and expects exit 74, a message on stderr naming the
    store and containing one of `words`, and nothing listening for DNS."""
    port = free_port()
    server.listen = [f"127.0.0.1:{port}"]
    code = server.run_to_exit()
    log = server.log()
    assert code == EXIT_STORE, f"expected exit {EXIT_STORE}, got {code}:\n{log}"
    assert "srvd.sqlite" in log, f"the message does not name the store:\n{log}"
    assert any(w in log.lower() for w in words), f"the message does not say {words}:\n{log}"
    assert "serving DNS" not in log and "serving the admin API" not in log, log
    # Nothing holds the DNS port: UDP can be bound by anyone, TCP connections are refused.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", port))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    return log


def test_store_with_garbage_header_exits_74(tmp_path):
    server = populated_store(tmp_path)
    db = server.data / "srvd.sqlite"
    with open(db, "r+b") as f:
        f.write(os.urandom(100))
    assert_refuses_store(server, "damaged", "corrupt", "not a database", "not a srvd store")


def test_store_of_random_bytes_exits_74(tmp_path):
    server = SrvdServer(tmp_path / "srvd")
    server.data.mkdir(parents=True)
    (server.data / "srvd.sqlite").write_bytes(os.urandom(64 * 1024))
    assert_refuses_store(server, "damaged", "corrupt", "not a database", "not a srvd store")


def test_truncated_store_exits_74(tmp_path):
    server = populated_store(tmp_path)
    db = server.data / "srvd.sqlite"
    size = db.stat().st_size
    assert size > 8192
    with open(db, "r+b") as f:
        f.truncate(size // 2 + 100)  # cut mid-page
    assert_refuses_store(server, "damaged", "corrupt", "not a database", "malformed")


def test_sqlite_file_that_is_not_a_srvd_store_exits_74(tmp_path):
    server = SrvdServer(tmp_path / "srvd")
    server.data.mkdir(parents=True)
    con = sqlite3.connect(server.data / "srvd.sqlite")
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    con.execute("INSERT INTO notes (text) VALUES ('someone else''s database')")
    con.commit()
    con.close()
    assert_refuses_store(server, "not a srvd store")


def test_store_from_a_newer_srvd_exits_74(tmp_path):
    server = populated_store(tmp_path)
    con = sqlite3.connect(server.data / "srvd.sqlite")
    con.execute("INSERT INTO grdb_migrations (identifier) VALUES ('v999')")
    con.commit()
    con.close()
    log = assert_refuses_store(server, "newer srvd")
    assert "newer srvd" in log


def test_intact_store_still_starts_after_the_checks(tmp_path):
    """The control case for the tests above: the same populated store, untouched, serves."""
    server = populated_store(tmp_path)
    try:
        server.start()
        assert {m["name"] for m in server.members()["members"]} == {"m0", "m1", "m2"}
        for i in range(3):
            assert answer_set(server.query(f"m{i}.lab.example.", "A"), "A") == {address(i)}
    finally:
        server.stop()
