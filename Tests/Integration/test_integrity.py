"""Integrity at the edges (the integrity issue): what an authenticated, well-formed request
could do to registered members, what a zone file edited behind srvd's back does to stored
data, one srvd per data folder, durability that is really on disk, and the token check.

Each test here failed on the build before the zone rules were written once; each names
the promise it guards.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import dns.tsigkeyring  # noqa: E402
import dns.update  # noqa: E402
import pytest  # noqa: E402

from api_support import (  # noqa: E402
    SrvdServer,
    answer_set,
    http_request,
    metric_value,
    parse_metrics,
)
from launcher import SHIPPED_ZONE, wait_until  # noqa: E402

ZONE = "lab.example."
UPDATE_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
MEMBERS = "/v1/zones/lab.example/members"
RECORDS = "/v1/zones/lab.example/records"

# The shipped zone plus a TXT at "static", a name a member must not take.
ZONE_TEXT = SHIPPED_ZONE.read_text() + '\nstatic  IN TXT "file data"\n'


def make_server(tmp_path: Path, zone_text: str = ZONE_TEXT, **kw) -> SrvdServer:
    zones = tmp_path / "zones"
    zones.mkdir(parents=True, exist_ok=True)
    (zones / "lab.example.zone").write_text(zone_text)
    return SrvdServer(tmp_path, zones_dir=zones, **kw)


@pytest.fixture
def srvd(tmp_path):
    server = make_server(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def register(server: SrvdServer, name: str, address: str) -> dict:
    return server.ok(server.put_member(name, {"addresses": [address]}), 201, 200)


def resolves(server: SrvdServer, name: str, address: str) -> bool:
    """The member's address and its SRV record are both served."""
    a = answer_set(server.query(f"{name}.{ZONE}", "A"), "A")
    srv = answer_set(server.query(f"_etcd-server._tcp.{ZONE}", "SRV"), "SRV")
    return a == {address} and any(s.endswith(f" {name}.{ZONE}") for s in srv)


def error_of(reply, status: int) -> str:
    assert reply.status == status, f"expected {status}, got {reply!r}"
    body = reply.json
    assert isinstance(body.get("error"), str), body
    return body["error"]


def reload(server: SrvdServer) -> None:
    server.proc.send_signal(signal.SIGHUP)


# --------------------------------------------------------------------------- DNAME


def test_a_dname_put_through_the_api_survives_a_restart_and_can_be_deleted(tmp_path):
    """Regression: a DNAME the API accepted made the next start serve the file alone
    (every member gone), could not be deleted, and froze later zone-file edits."""
    server = make_server(tmp_path, extra_args=["--watch-interval", "0"]).start()
    try:
        register(server, "m1", "127.0.0.21")
        server.ok(server.put(f"{RECORDS}/d/DNAME", {"ttl": 60, "rdata": ["target.example."]}), 201)
        r = server.query(f"x.d.{ZONE}", "A")
        assert [rr.rdtype for rr in r.answer][:2] == [dns.rdatatype.DNAME, dns.rdatatype.CNAME], r
        server.stop()
        server.start()
        assert resolves(server, "m1", "127.0.0.21"), server.log()
        assert server.zone_summary()["conflicts"] == []
        # A later edit of the zone file is served.
        zone_file = server.zones / "lab.example.zone"
        zone_file.write_text(zone_file.read_text() + 'edited IN TXT "after the DNAME"\n')
        reload(server)
        wait_until(lambda: answer_set(server.query(f"edited.{ZONE}", "TXT"), "TXT"), 10, "the edit to be served", interval=0.02, errors=())
        r = server.delete(f"{RECORDS}/d/DNAME")
        assert r.status == 204, r
        assert not server.query(f"x.d.{ZONE}", "A").answer
        assert resolves(server, "m1", "127.0.0.21")
    finally:
        server.stop()


# --------------------------------------------------------------------------- members


@pytest.mark.parametrize(
    "owner, rtype, rdata",
    [
        ("_tcp", "NS", ["ns.elsewhere.test."]),
        ("m1", "NS", ["ns.elsewhere.test."]),
        ("_tcp", "DNAME", ["elsewhere.test."]),
        ("_etcd-server._tcp", "DNAME", ["elsewhere.test."]),
        ("@", "DNAME", ["elsewhere.test."]),
        ("m1", "CNAME", ["ns1"]),
        ("m1", "DNAME", ["elsewhere.test."]),
    ],
    ids=["ns-above-srv", "ns-at-member", "dname-above-srv", "dname-at-srv", "dname-at-apex", "cname-at-member", "dname-at-member"],
)
def test_a_write_that_would_hide_a_member_is_409_naming_it(srvd, owner, rtype, rdata):
    register(srvd, "m1", "127.0.0.21")
    before = srvd.snapshot()
    message = error_of(srvd.put(f"{RECORDS}/{owner}/{rtype}", {"rdata": rdata}), 409)
    assert "m1.lab.example." in message, message
    assert srvd.snapshot() == before
    assert resolves(srvd, "m1", "127.0.0.21")


def test_a_delegation_below_the_members_is_fine(srvd):
    register(srvd, "m1", "127.0.0.21")
    srvd.ok(srvd.put(f"{RECORDS}/child/NS", {"rdata": ["ns.elsewhere.test."]}), 201)
    assert resolves(srvd, "m1", "127.0.0.21")


@pytest.mark.parametrize(
    "name, status, words",
    [
        ("ns1", 409, "ns1.lab.example. holds records from the zone file (A)"),
        ("static", 409, "static.lab.example. holds records from the zone file (TXT)"),
        ("infra0", 409, "holds records from the zone file"),
        ("*", 400, "not a host name"),
        ("_x", 400, "not a host name"),
        ("a_b", 400, "not a host name"),
        ("-a", 400, "not a host name"),
        ("a.*", 400, "not a host name"),
    ],
)
def test_a_member_cannot_take_file_data_or_a_name_that_is_no_host_name(srvd, name, status, words):
    before = srvd.snapshot()
    ns1 = answer_set(srvd.query(f"ns1.{ZONE}", "A"), "A")
    message = error_of(srvd.put_member(name, {"addresses": ["127.0.0.99"]}), status)
    assert words in message, message
    assert srvd.snapshot() == before
    assert answer_set(srvd.query(f"ns1.{ZONE}", "A"), "A") == ns1 == {"127.0.0.1"}


def test_a_member_below_a_delegation_is_refused(srvd):
    srvd.ok(srvd.put(f"{RECORDS}/child/NS", {"rdata": ["ns.elsewhere.test."]}), 201)
    message = error_of(srvd.put_member("a.child", {"addresses": ["127.0.0.99"]}), 409)
    assert "delegation at child.lab.example." in message


def test_data_the_api_adds_below_a_cut_or_dname_is_refused(srvd):
    srvd.ok(srvd.put(f"{RECORDS}/child/NS", {"rdata": ["ns.elsewhere.test."]}), 201)
    srvd.ok(srvd.put(f"{RECORDS}/ns.child/A", {"rdata": ["127.0.0.53"]}), 201)  # glue is fine
    assert "never be served" in error_of(srvd.put(f"{RECORDS}/x.child/TXT", {"rdata": ['"hidden"']}), 409)
    srvd.ok(srvd.put(f"{RECORDS}/d/DNAME", {"rdata": ["elsewhere.test."]}), 201)
    assert "DNAME" in error_of(srvd.put(f"{RECORDS}/x.d/TXT", {"rdata": ['"hidden"']}), 409)
    # A DNAME cannot go above existing data either (RFC 6672 §2.3).
    srvd.ok(srvd.put(f"{RECORDS}/a.y/TXT", {"rdata": ['"below"']}), 201)
    assert "RFC 6672" in error_of(srvd.put(f"{RECORDS}/y/DNAME", {"rdata": ["elsewhere.test."]}), 409)


# --------------------------------------------------------------------------- conflicts


def test_stored_data_that_conflicts_with_an_edited_file_is_parked_listed_and_deletable(tmp_path):
    server = make_server(tmp_path).start()
    try:
        for i, name in enumerate(["m1", "m2", "m3"]):
            register(server, name, f"127.0.0.{21 + i}")
        server.ok(server.put(f"{RECORDS}/note/TXT", {"rdata": ['"stored"']}), 201)
        server.stop()
        # Edited while srvd was down: a CNAME where m1 is, file data at m2's name, and a
        # CNAME where the API's TXT is.
        zone_file = server.zones / "lab.example.zone"
        zone_file.write_text(zone_file.read_text() + "m1 IN CNAME ns1\nm2 IN TXT \"mine\"\nnote IN CNAME ns1\n")
        server.start()
        assert resolves(server, "m3", "127.0.0.23"), "a member without a conflict must stay served"
        assert answer_set(server.query(f"m1.{ZONE}", "CNAME"), "CNAME") == {f"ns1.{ZONE}"}
        conflicts = server.zone_summary()["conflicts"]
        assert {(c.get("member"), c.get("owner"), c.get("type")) for c in conflicts} == {
            ("m1.lab.example.", None, None), ("m2.lab.example.", None, None), (None, "note.lab.example.", "TXT")
        }, conflicts
        assert all(c["error"] and c["rule"] for c in conflicts), conflicts
        log = server.log()
        for item in ("member m1.lab.example.", "member m2.lab.example.", "RRset note.lab.example. TXT"):
            assert item in log, f"the log does not name {item}:\n{log}"
        assert metric_value(parse_metrics(server.metrics()), "srvd_zone_conflicts", zone=ZONE) == 3
        # Listed, served or not.
        members = {m["name"]: m for m in server.members()["members"]}
        assert members["m1"]["served"] is False and "CNAME" in members["m1"]["conflict"]
        assert members["m3"]["served"] is True and "conflict" not in members["m3"]
        parked = [s for s in server.records()["rrsets"] if s.get("served") is False]
        assert [(s["owner"], s["type"], s["source"]) for s in parked] == [("note.lab.example.", "TXT", "api")], parked
        assert server.ok(server.get(f"{MEMBERS}/m1"), 200)["served"] is False
        # Deleting a parked item changes nothing served, so the serial stays.
        serial = server.serial()
        assert server.delete(f"{MEMBERS}/m1").status == 204
        assert server.delete(f"{RECORDS}/note/TXT").status == 204
        assert server.serial() == serial
        assert [c.get("member") for c in server.zone_summary()["conflicts"]] == ["m2.lab.example."]
        server.stop()
        server.start()
        assert [c.get("member") for c in server.zone_summary()["conflicts"]] == ["m2.lab.example."]
        # The file fixed: m2 is served again at the next reload.
        zone_file.write_text(zone_file.read_text().replace('m2 IN TXT "mine"\n', ""))
        reload(server)
        wait_until(lambda: resolves(server, "m2", "127.0.0.22"), 10, "m2 to be served again", interval=0.02, errors=())
        assert server.zone_summary()["conflicts"] == []
    finally:
        server.stop()


def test_a_conflicting_edit_while_running_is_served_and_parks_only_the_clash(tmp_path):
    """Regression: an edit that clashed with one registration kept the whole old zone."""
    server = make_server(tmp_path).start()
    try:
        register(server, "m1", "127.0.0.21")
        register(server, "m2", "127.0.0.22")
        zone_file = server.zones / "lab.example.zone"
        zone_file.write_text(zone_file.read_text() + "m1 IN CNAME ns1\nnew IN A 127.0.0.77\n")
        reload(server)
        wait_until(lambda: answer_set(server.query(f"new.{ZONE}", "A"), "A"), 10, "the edit to be served", interval=0.02, errors=())
        assert resolves(server, "m2", "127.0.0.22")
        assert [c.get("member") for c in server.zone_summary()["conflicts"]] == ["m1.lab.example."]
    finally:
        server.stop()


# --------------------------------------------------------------------------- one srvd per data dir


def test_a_second_srvd_on_one_data_dir_exits(tmp_path):
    first = make_server(tmp_path / "a").start()
    second = make_server(tmp_path / "b", data_dir=first.data)
    try:
        code = second.run_to_exit()
        assert code != 0
        assert re.search(rf"data dir {re.escape(str(first.data))} is in use by another srvd \(pid {first.proc.pid}\)", second.log()), second.log()
        assert "serving DNS" not in second.log()
        register(first, "m1", "127.0.0.21")
    finally:
        second.stop()
        first.stop()
    # The lock goes with the process: a restart, even after SIGKILL, takes it again.
    first.start()
    first.kill()
    first.start()
    try:
        assert resolves(first, "m1", "127.0.0.21")
    finally:
        first.stop()


# --------------------------------------------------------------------------- durability


class TracedSrvd(SrvdServer):
    """srvd under strace, recording the store's writes and syncs with file names (-y)."""

    def __init__(self, *a, trace: Path, **kw):
        super().__init__(*a, **kw)
        self.trace = trace

    def command(self) -> list[str]:
        strace = shutil.which("strace") or "/usr/bin/strace"
        return [strace, "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,pwrite64", "-o", str(self.trace)] + super().command()

    def stop(self, timeout: float = 10.0):
        """SIGTERM goes to srvd itself: strace would detach and leave it running."""
        if self.proc is not None and self.proc.poll() is None:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            for pid in children.read_text().split() if children.exists() else []:
                try:
                    os.kill(int(pid), signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return super().stop(timeout)


def wal_calls(trace: Path) -> tuple[int, int]:
    """(pwrite64 calls, fsync+fdatasync calls) on the store's WAL file."""
    writes = syncs = 0
    for line in trace.read_text(errors="replace").splitlines():
        if "srvd.sqlite-wal>" not in line:
            continue
        if "pwrite64(" in line:
            writes += 1
        elif "fsync(" in line or "fdatasync(" in line:
            syncs += 1
    return writes, syncs


def test_every_acknowledged_change_is_synced_to_disk(tmp_path):
    """The README promises power-loss safety: each change's WAL frames are fsync'd before
    the 2xx. (kill -9 cannot show it: the page cache survives that.) strace writes each
    call's line as the call returns, before srvd goes on, so the calls a change made are in
    the trace by the time its answer arrives: each PUT is counted on its own, from the trace
    just before it to the trace just after its answer, whatever srvd syncs at start and stop."""
    if not (shutil.which("strace") or os.access("/usr/bin/strace", os.X_OK)):
        if os.environ.get("SRVD_TESTS_REQUIRE_TOOLS") == "1":
            pytest.fail("strace is not installed (make deps installs it)")
        pytest.skip("strace is not installed")
    zones = tmp_path / "zones"
    zones.mkdir(parents=True)
    (zones / "lab.example.zone").write_text(ZONE_TEXT)
    trace = tmp_path / "trace"
    server = TracedSrvd(
        tmp_path, zones_dir=zones, trace=trace,
        extra_args=["--tsig-key", f"upd:{UPDATE_SECRET}", "--allow-update", "upd:lab.example"])
    server.start()
    try:
        token = None

        def new_token():
            nonlocal token
            token = server.ok(server.request("POST", "/v1/discovery", body={"size": 3, "zone": "lab.example"}), 201)["token"]

        def discovery_key(i):
            # etcd's discovery client: a form body, no bearer token; the member is published too.
            server.ok(server.request(
                "PUT", f"/discovery/{token}/k{i}?prevExist=false", auth=False,
                raw=f"value=d{i}%3Dhttp%3A%2F%2F127.0.0.{41 + i}%3A2380".encode(),
                content_type="application/x-www-form-urlencoded"), 201)

        def update(i):
            # RFC 2136 UPDATE, signed: acknowledged (NOERROR) only once it is on disk.
            m = dns.update.UpdateMessage(ZONE, keyring=dns.tsigkeyring.from_text({"upd.": UPDATE_SECRET}), keyalgorithm="hmac-sha256")
            m.add(f"u{i}", 60, "TXT", f'"update {i}"')
            r = dns.query.tcp(m, "127.0.0.1", port=server.port, timeout=10)
            assert r.rcode() == dns.rcode.NOERROR, r

        changes = [lambda i=i: register(server, f"m{i}", f"127.0.0.{21 + i}") for i in range(3)]
        changes += [new_token] + [lambda i=i: discovery_key(i) for i in range(2)]
        changes += [lambda i=i: update(i) for i in range(2)]
        for i, change in enumerate(changes):
            writes_before, syncs_before = wal_calls(trace)
            change()
            writes, syncs = wal_calls(trace)
            # The trace must see the store's writes at all, or it proves nothing.
            assert writes > writes_before, f"the trace saw no WAL write for change {i + 1}"
            assert syncs > syncs_before, f"change {i + 1} was acknowledged before any sync of the WAL"
    finally:
        server.stop()


def test_a_full_disk_gives_a_json_5xx_and_changes_nothing(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    server = make_server(tmp_path / "srv", data_dir=mnt / "data")
    try:
        server.start()
        register(server, "m1", "127.0.0.21")
        filler = mnt / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        before = server.snapshot()
        failed = None
        for i in range(20):
            r = server.put_member(f"full{i}", {"addresses": [f"127.0.1.{i + 1}"]})
            if r.status >= 500:
                failed = (i, r)
                break
            assert r.status == 201, r
            before = server.snapshot()
        assert failed, "no change failed on a full disk"
        i, r = failed
        assert r.status == 507, r
        assert "nothing changed" in r.json["error"], r.json
        assert server.snapshot() == before
        assert server.query(f"full{i}.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN
        # Space again: changes go through, and what was acknowledged is all there.
        filler.unlink()
        register(server, "after", "127.0.0.99")
        server.stop()
        server.start()
        assert resolves(server, "m1", "127.0.0.21") and resolves(server, "after", "127.0.0.99")
        assert server.query(f"full{i}.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "authorization",
    [
        # U+00A0 as UTF-8 (http.client sends header text as Latin-1, octet for octet): HTTP
        # trims only spaces and tabs, the old check trimmed every Unicode space.
        "Bearer \u00c2\u00a0", "Bearer  ", "Bearer \t", "Bearer", "Bearer x",
        "Bearer " + "t" * 255, "Bearer " + "t" * 257, "Bearer " + "t" * 256 + "\u00c2\u00a0",
    ],
    ids=["no-break-space", "space", "tab", "scheme-only", "one-char", "one-short", "one-long", "token-and-nbsp"],
)
def test_a_long_token_is_compared_in_full(tmp_path, authorization):
    """Regression: with a 256-byte token, the length difference folded into 8 bits and
    `Bearer ` followed by a space was accepted."""
    token_file = tmp_path / "token"
    token_file.write_text("t" * 256 + "\n")
    server = make_server(tmp_path, token_file=token_file).start()
    try:
        r = http_request(server.admin_port, "GET", "/v1/status", authorization=authorization)
        assert r.status == 401, r
        r = http_request(server.admin_port, "GET", "/v1/status", authorization="Bearer " + "t" * 256)
        assert r.status == 200, r
    finally:
        server.stop()


# --------------------------------------------------------------------------- serials


def test_each_change_answers_with_its_own_serial(srvd):
    """Regression: the serial in a PUT's answer was read in a second step, so a change
    made meanwhile could show up in it."""
    before = srvd.serial()
    results: list[int] = []
    lock = threading.Lock()

    def put(i: int) -> None:
        r = srvd.put_member(f"c{i}", {"addresses": [f"127.0.2.{i + 1}"]})
        assert r.status == 201, r
        with lock:
            results.append(r.json["serial"])

    threads = [threading.Thread(target=put, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(before + 1, before + 25)), sorted(results)
