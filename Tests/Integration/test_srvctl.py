"""srvctl against a running srvd: register, deregister, members, records and wait, in human
and --json output, and error exits carrying the server's own message."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns.rcode  # noqa: E402
import pytest  # noqa: E402

from api_support import (  # noqa: E402
    SrvdServer,
    answer_list,
    answer_set,
    answer_ttls,
    run_srvctl,
)
from launcher import SHIPPED_ZONE, SRVCTL_BIN, Srvd, free_port, require_executable, wait_until  # noqa: E402

ZONE_ARG = "lab.example"
MEMBERS = "/v1/zones/lab.example/members"


# What srvctl sees as /etc/resolv.conf in these tests: no resolver, so `wait` checks srvd
# alone (the machine's own resolver knows nothing of lab.example). The tests of the
# resolver views pass their own.
NO_RESOLVERS = "# no nameserver: srvctl checks srvd itself\n"


def ctl(server: SrvdServer, *args: str, json_out: bool = False, resolv_conf: str | None = NO_RESOLVERS, **kw) -> subprocess.CompletedProcess:
    """srvctl with --server and --token-file pointing at `server`."""
    extra = ["--server", server.url, "--token-file", str(server.token_path)]
    return run_srvctl(*args, *extra, *(["--json"] if json_out else []), resolv_conf=resolv_conf, **kw)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"srvctl failed ({result.returncode}):\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def failed_with(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0, f"srvctl succeeded although it should fail:\n{result.stdout}"
    assert message in result.stderr, f"stderr lacks the server's message {message!r}:\n{result.stderr}"


def server_error(server: SrvdServer, method: str, path: str, **kw) -> str:
    """The error message srvd itself gives for a request (which must be refused)."""
    r = server.request(method, path, **kw)
    assert r.status >= 400, r
    return r.json["error"]


def closed_udp_port() -> int:
    """A loopback port with nothing listening on it (UDP or TCP) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        try:
            t.bind(("127.0.0.1", port))
        except OSError:
            pass
    return port


def test_srvctl_binary_exists():
    require_executable(SRVCTL_BIN, "srvctl")


# --------------------------------------------------------------------------- register


def test_register_human_output(srvd):
    r = ok(ctl(srvd, "register", ZONE_ARG, "infra3", "--address", "127.0.0.13", "fd00::13"))
    a = srvd.query("infra3.lab.example.", "A")  # right after srvctl returns
    aaaa = srvd.query("infra3.lab.example.", "AAAA")
    member = srvd.ok(srvd.get(f"{MEMBERS}/infra3"), 200)
    assert answer_set(a, "A") == {"127.0.0.13"}
    assert answer_set(aaaa, "AAAA") == {"fd00::13"}
    assert member["addresses"] == ["127.0.0.13", "fd00::13"]
    assert member["peerPort"] == 2380 and member["clientPort"] == 2379 and member["tls"] is False and "service" not in member
    assert "infra3.lab.example." in r.stdout
    assert str(member["serial"]) in r.stdout, r.stdout
    for record in member["records"]:
        assert record in r.stdout, f"{record!r} not in output:\n{r.stdout}"

    # Again with another address: replaced, not duplicated.
    r = ok(ctl(srvd, "register", ZONE_ARG, "infra3", "--address", "127.0.0.23"))
    assert "infra3.lab.example. 30 IN A 127.0.0.23" in r.stdout
    assert answer_set(srvd.query("infra3.lab.example.", "A"), "A") == {"127.0.0.23"}
    peers = answer_list(srvd.query("_etcd-server._tcp.lab.example.", "SRV", tcp=True), "SRV")
    assert peers.count("0 0 2380 infra3.lab.example.") == 1, peers


def test_register_json_with_every_option(srvd):
    r = ok(ctl(
        srvd, "register", "lab.example.", "infra4", "--address", "127.0.0.14", "fd00::14", "--peer-port", "12380",
        "--client-port", "12379", "--tls", "--service", "blue", "--ttl", "30", json_out=True,
    ))
    peers = srvd.query("_etcd-server-ssl-blue._tcp.lab.example.", "SRV")
    clients = srvd.query("_etcd-client-ssl-blue._tcp.lab.example.", "SRV")
    printed = json.loads(r.stdout)
    assert printed == srvd.ok(srvd.get(f"{MEMBERS}/infra4"), 200), "--json must print the server's member body"
    assert printed["tls"] is True and printed["service"] == "blue" and printed["ttl"] == 30
    assert printed["peerPort"] == 12380 and printed["clientPort"] == 12379
    assert answer_list(peers, "SRV") == ["0 0 12380 infra4.lab.example."] and answer_ttls(peers, "SRV") == {30}
    assert answer_list(clients, "SRV") == ["0 0 12379 infra4.lab.example."]


@pytest.mark.parametrize(
    "args,body,name",
    [
        (["--address", "not-an-ip"], {"addresses": ["not-an-ip"]}, "infra5"),
        (["--address", "127.0.0.15", "--peer-port", "0"], {"addresses": ["127.0.0.15"], "peerPort": 0}, "infra5"),
        (["--address", "127.0.0.15", "--client-port", "70000"], {"addresses": ["127.0.0.15"], "clientPort": 70000}, "infra5"),
        (["--address", "127.0.0.15", "--service", "a.b"], {"addresses": ["127.0.0.15"], "service": "a.b"}, "infra5"),
        (["--address", "127.0.0.15", "--ttl=-1"], {"addresses": ["127.0.0.15"], "ttl": -1}, "infra5"),
        (["--address", "127.0.0.15"], {"addresses": ["127.0.0.15"]}, "a" * 64),
    ],
    ids=["address", "peer-port", "client-port", "service", "ttl", "name"],
)
def test_register_error_prints_the_server_message(srvd, args, body, name):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    before = srvd.snapshot()
    message = server_error(srvd, "PUT", f"{MEMBERS}/{name}", body=body)
    r = ctl(srvd, "register", ZONE_ARG, name, *args)
    failed_with(r, message)
    assert srvd.snapshot() == before


def test_register_in_unknown_zone_fails_with_the_server_message(srvd):
    message = server_error(srvd, "PUT", "/v1/zones/nope.example/members/infra3", body={"addresses": ["127.0.0.13"]})
    failed_with(ctl(srvd, "register", "nope.example", "infra3", "--address", "127.0.0.13"), message)


# --------------------------------------------------------------------------- deregister


def test_deregister(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"]}), 201)
    serial = srvd.serial()
    r = ok(ctl(srvd, "deregister", ZONE_ARG, "infra3"))
    a = srvd.query("infra3.lab.example.", "A")
    assert a.rcode() == dns.rcode.NXDOMAIN, a
    assert "infra3" in r.stdout
    assert srvd.serial() == serial + 1
    assert srvd.get(f"{MEMBERS}/infra3").status == 404

    message = server_error(srvd, "DELETE", f"{MEMBERS}/infra3")
    before = srvd.snapshot()
    failed_with(ctl(srvd, "deregister", ZONE_ARG, "infra3"), message)
    assert srvd.snapshot() == before

    r = ok(ctl(srvd, "deregister", ZONE_ARG, "infra4", json_out=True))
    if r.stdout.strip():
        json.loads(r.stdout)  # whatever it prints with --json is JSON
    assert srvd.members()["members"] == []


# --------------------------------------------------------------------------- members, records


def test_members_human_and_json(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13", "fd00::13"]}), 201)
    srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"], "peerPort": 12380, "clientPort": 12379, "tls": True, "service": "blue", "ttl": 30}), 201)
    r = ok(ctl(srvd, "members", ZONE_ARG))
    lines = r.stdout.splitlines()
    row3 = next((l for l in lines if l.split() and l.split()[0] == "infra3"), None)
    row4 = next((l for l in lines if l.split() and l.split()[0] == "infra4"), None)
    assert row3 and row4, r.stdout
    assert "127.0.0.13" in row3 and "fd00::13" in row3 and "2380" in row3 and "2379" in row3
    assert "127.0.0.14" in row4 and "12380" in row4 and "12379" in row4 and "blue" in row4 and "30" in row4.split()

    r = ok(ctl(srvd, "members", ZONE_ARG, json_out=True))
    assert json.loads(r.stdout) == srvd.members()


def test_members_of_unknown_zone_fails_with_the_server_message(srvd):
    message = server_error(srvd, "GET", "/v1/zones/nope.example/members")
    failed_with(ctl(srvd, "members", "nope.example"), message)


def test_records_human_and_json(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "service": "blue"}), 201)
    srvd.ok(srvd.put("/v1/zones/lab.example/records/txt1/TXT", {"ttl": 60, "rdata": ['"hello"']}), 201)
    listing = srvd.records()
    r = ok(ctl(srvd, "records", ZONE_ARG))
    for s in listing["rrsets"]:
        for rdata in s["rdata"]:
            line = f"{s['owner']} {s['ttl']} IN {s['type']} {rdata}"
            assert line in r.stdout, f"{line!r} missing from:\n{r.stdout}"
    assert str(listing["serial"]) in r.stdout

    r = ok(ctl(srvd, "records", ZONE_ARG, json_out=True))
    assert json.loads(r.stdout) == srvd.records()


def test_records_label_each_record_by_who_put_it_there(srvd):
    """Regression: the zone file's own SRV records were labelled `member` once a member
    joined their RRset."""
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    lines = ok(ctl(srvd, "records", ZONE_ARG)).stdout.splitlines()
    assert "_etcd-server._tcp.lab.example. 30 IN SRV 0 0 2380 infra0.lab.example. ; file" in lines, lines
    assert "_etcd-server._tcp.lab.example. 30 IN SRV 0 0 2380 infra3.lab.example. ; member" in lines, lines
    assert "infra3.lab.example. 30 IN A 127.0.0.13 ; member" in lines, lines


def test_register_takes_the_name_after_the_addresses_and_comma_lists(srvd):
    r = ok(ctl(srvd, "register", ZONE_ARG, "--address", "127.0.0.13", "infra3"))
    assert "registered infra3.lab.example." in r.stdout
    ok(ctl(srvd, "register", ZONE_ARG, "infra4", "--address", "127.0.0.14,fd00::14"))
    assert srvd.ok(srvd.get(f"{MEMBERS}/infra4"), 200)["addresses"] == ["127.0.0.14", "fd00::14"]
    r = ctl(srvd, "register", ZONE_ARG, "--address", "127.0.0.15")
    assert r.returncode != 0 and "give the member's name" in r.stderr, r.stderr
    r = ctl(srvd, "register", ZONE_ARG, "m", "--address", "0.0.0.0")
    assert r.returncode != 0 and "not an address a peer can dial" in r.stderr, r.stderr


def test_status_waits_for_srvd_to_answer(tmp_path):
    """The README's walkthrough starts srvd in the background and goes on at once: status
    --wait bridges the moment before the token file and the listeners exist."""
    admin = free_port()
    srvd = Srvd(tmp_path, listen=[f"127.0.0.1:{free_port()}"], admin=f"127.0.0.1:{admin}")
    srvd.copy_zone(SHIPPED_ZONE)
    started = time.monotonic()
    srvd.spawn()  # not start(): status --wait is what waits here
    try:
        r = run_srvctl("status", "--wait", "30s", "--server", f"http://127.0.0.1:{admin}",
                       "--token-file", str(tmp_path / "data" / "admin.token"))
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "lab.example. serial 2026112101" in r.stdout, r.stdout
        assert time.monotonic() - started < 30
    finally:
        srvd.stop()
    r = run_srvctl("status", "--wait", "1s", "--server", "http://127.0.0.1:9", "--token-file", str(tmp_path / "data" / "admin.token"))
    assert r.returncode != 0 and "srvd was not ready within 1s" in r.stderr and "is srvd running" in r.stderr, r.stderr


# --------------------------------------------------------------------------- token


def test_wrong_token_fails_with_the_server_message(srvd, tmp_path):
    bad = tmp_path / "bad.token"
    bad.write_text("0" * 64 + "\n")
    message = server_error(srvd, "GET", MEMBERS, authorization="Bearer " + "0" * 64)
    for args in (["members", ZONE_ARG], ["register", ZONE_ARG, "infra3", "--address", "127.0.0.13"], ["deregister", ZONE_ARG, "infra0"]):
        r = run_srvctl(*args, "--server", srvd.url, "--token-file", str(bad))
        failed_with(r, message)
    assert srvd.members()["members"] == []


def test_token_from_environment_and_default_path(srvd):
    r = run_srvctl("members", ZONE_ARG, "--server", srvd.url, env={"SRVD_TOKEN_FILE": str(srvd.token_path)})
    ok(r)
    # Default: data/admin.token relative to the working directory; srvd's data dir is
    # WORKDIR/data here.
    r = run_srvctl("register", ZONE_ARG, "infra3", "--address", "127.0.0.13", "--server", srvd.url, cwd=srvd.workdir)
    ok(r)
    assert answer_set(srvd.query("infra3.lab.example.", "A"), "A") == {"127.0.0.13"}


# --------------------------------------------------------------------------- wait


def test_wait_succeeds_when_members_resolve(srvd):
    for i in (3, 4):
        srvd.ok(srvd.put_member(f"infra{i}", {"addresses": [f"127.0.0.1{i}"]}), 201)
    started = time.monotonic()
    r = ok(ctl(srvd, "wait", ZONE_ARG, "--members", "2", "--timeout", "20s"))
    assert time.monotonic() - started < 10
    assert "infra3" in r.stdout and "infra4" in r.stdout

    r = ok(ctl(srvd, "wait", ZONE_ARG, "--members", "2", "--timeout", "20s", json_out=True))
    printed = json.loads(r.stdout)
    assert {m["name"] for m in printed["members"]} == {"infra3", "infra4"}


def test_wait_returns_once_the_last_member_registers(srvd):
    proc = subprocess.Popen(
        [SRVCTL_BIN, "wait", ZONE_ARG, "--members", "3", "--timeout", "30s", "--server", srvd.url, "--token-file", str(srvd.token_path),
         "--dns", f"127.0.0.1:{srvd.port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        for i in (3, 4):
            srvd.ok(srvd.put_member(f"infra{i}", {"addresses": [f"127.0.0.1{i}"]}), 201)
        time.sleep(1.0)  # srvctl checks about every 250 ms: it must still be waiting
        assert proc.poll() is None, f"wait returned with 2 of 3 members: {proc.communicate()}"
        ok(ctl(srvd, "register", ZONE_ARG, "infra5", "--address", "127.0.0.15"))
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, f"wait failed ({proc.returncode}):\n{out}\n{err}"
        assert "infra5" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_wait_times_out(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    started = time.monotonic()
    r = ctl(srvd, "wait", ZONE_ARG, "--members", "2", "--timeout", "1s")
    elapsed = time.monotonic() - started
    assert r.returncode != 0
    assert "timed out" in r.stderr, r.stderr
    assert 0.9 <= elapsed < 15, elapsed


def test_wait_with_service(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "service": "blue"}), 201)
    srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"], "service": "blue", "tls": True}), 201)
    srvd.ok(srvd.put_member("infra5", {"addresses": ["127.0.0.15"]}), 201)
    r = ok(ctl(srvd, "wait", ZONE_ARG, "--members", "2", "--service", "blue", "--timeout", "20s"))
    assert "infra3" in r.stdout and "infra4" in r.stdout and "infra5" not in r.stdout

    r = ctl(srvd, "wait", ZONE_ARG, "--members", "3", "--service", "blue", "--timeout", "1s")
    assert r.returncode != 0 and "timed out" in r.stderr, (r.stdout, r.stderr)
    # Without --service only members without a service count: there is one.
    r = ctl(srvd, "wait", ZONE_ARG, "--members", "2", "--timeout", "1s")
    assert r.returncode != 0 and "timed out" in r.stderr, (r.stdout, r.stderr)
    ok(ctl(srvd, "wait", ZONE_ARG, "--members", "1", "--timeout", "20s"))


def test_wait_checks_dns_not_only_the_api(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    ok(ctl(srvd, "wait", ZONE_ARG, "--members", "1", "--timeout", "20s", "--dns", f"127.0.0.1:{srvd.port}"))
    # A DNS server that does not answer: registered is not enough.
    dead = closed_udp_port()
    r = ctl(srvd, "wait", ZONE_ARG, "--members", "1", "--timeout", "1s", "--dns", f"127.0.0.1:{dead}")
    assert r.returncode != 0 and "timed out" in r.stderr, (r.stdout, r.stderr)


def test_wait_uses_the_dns_address_srvd_reports(srvd):
    """Without --dns, wait asks the first address srvd reports in /v1/status."""
    status = srvd.ok(srvd.get("/v1/status"), 200)
    assert status["dns"] == [f"127.0.0.1:{srvd.port}"]
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    r = ok(ctl(srvd, "wait", ZONE_ARG, "--members", "1", "--timeout", "20s"))
    assert f"127.0.0.1:{srvd.port}" in r.stdout, r.stdout


@pytest.fixture
def other_zone_server(tmp_path):
    """A second srvd on 127.0.0.78:53 that serves only other.example: as a resolver in
    /etc/resolv.conf it answers REFUSED for lab.example, as one that does not forward the
    zone would."""
    zones = tmp_path / "other-zones"
    zones.mkdir()
    (zones / "other.example.zone").write_text("$TTL 30\n@ SOA ns hostmaster 1 3600 900 604800 30\n@ NS ns\nns A 127.0.0.78\n")
    server = SrvdServer(tmp_path / "other", zones_dir=zones, listen=["127.0.0.78:53"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_wait_checks_every_resolver_of_resolv_conf_too(srvd, other_zone_server):
    """Ready means ready through the resolvers etcd asks, not only srvd: a resolver that does
    not serve the zone keeps `wait` from returning, and the error names both servers."""
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    r = ctl(srvd, "wait", ZONE_ARG, "--members", "1", "--timeout", "1s", resolv_conf="nameserver 127.0.0.78\n")
    assert r.returncode != 0, r.stdout
    assert "resolver 127.0.0.78:53 (from /etc/resolv.conf) answers REFUSED" in r.stderr, r.stderr
    assert f"while srvd at 127.0.0.1:{srvd.port} does" in r.stderr and f"--dns 127.0.0.1:{srvd.port}" in r.stderr, r.stderr
    # A resolver where nothing listens: said plainly, not as a timeout of the query.
    r = ctl(srvd, "wait", ZONE_ARG, "--members", "1", "--timeout", "1s", resolv_conf="nameserver 127.0.0.79\n")
    assert r.returncode != 0 and "refused the query: nothing listens on UDP port 53" in r.stderr, r.stderr
    # --dns checks that one server alone, whatever resolv.conf says.
    ok(ctl(srvd, "wait", ZONE_ARG, "--members", "1", "--timeout", "20s", "--dns", f"127.0.0.1:{srvd.port}", resolv_conf="nameserver 127.0.0.78\n"))


def test_verify_names_a_resolver_that_does_not_serve_the_zone(srvd, other_zone_server):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    r = ctl(srvd, "verify", ZONE_ARG, resolv_conf="nameserver 127.0.0.78\n")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"srvd at 127.0.0.1:{srvd.port}:" in r.stdout and "ok: etcd would bootstrap" in r.stdout, r.stdout
    assert "resolver 127.0.0.78:53 (from /etc/resolv.conf):" in r.stdout, r.stdout
    assert "error [resolver-does-not-serve-zone]" in r.stdout and f"--dns 127.0.0.1:{srvd.port}" in r.stdout, r.stdout
    r = ctl(srvd, "verify", ZONE_ARG, json_out=True, resolv_conf="nameserver 127.0.0.78\n")
    report = json.loads(r.stdout)
    assert report["ok"] is False
    assert [(v["role"], v["report"]["ok"]) for v in report["views"]] == [("srvd", True), ("resolver", False)], report
    assert [p["code"] for p in report["views"][1]["report"]["problems"]] == ["resolver-does-not-serve-zone"]


def test_verify_warns_about_long_ttls(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "lab.example.zone").write_text(
        "$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 300\n@ NS ns1\nns1 A 127.0.0.1\n")
    server = SrvdServer(tmp_path, zones_dir=zones).start()
    try:
        server.ok(server.put_member("infra3", {"addresses": ["127.0.0.13"], "ttl": 300}), 201)
        r = ctl(server, "verify", ZONE_ARG, "--dns", f"127.0.0.1:{server.port}", json_out=True, resolv_conf=None)
        codes = {p["code"]: p for p in json.loads(r.stdout)["problems"]}
        assert "long-ttl" in codes and "300 s" in codes["long-ttl"]["message"], codes
        assert "long-negative-ttl" in codes and "300 s" in codes["long-negative-ttl"]["message"], codes
        # The default member TTL is min($TTL, 30): no warning for records, only for the SOA.
        server.ok(server.put_member("infra3", {"addresses": ["127.0.0.13"]}), 200)
        assert server.ok(server.get("/v1/zones/lab.example/members/infra3"), 200)["ttl"] == 30
        r = ctl(server, "verify", ZONE_ARG, "--dns", f"127.0.0.1:{server.port}", json_out=True, resolv_conf=None)
        codes = {p["code"] for p in json.loads(r.stdout)["problems"]}
        assert "long-ttl" not in codes and "long-negative-ttl" in codes
    finally:
        server.stop()


def test_member_ttl_option_sets_the_default(tmp_path):
    server = SrvdServer(tmp_path, extra_args=["--member-ttl", "7"]).start()
    try:
        assert server.ok(server.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)["ttl"] == 7
        assert server.ok(server.put_member("infra4", {"addresses": ["127.0.0.14"], "ttl": 90}), 201)["ttl"] == 90
        (a,) = server.query("infra3.lab.example.", "A").answer
        assert a.ttl == 7
    finally:
        server.stop()


def test_wait_after_restart_sees_persisted_members(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    srvd.stop()
    srvd.start()
    wait_until(lambda: srvd.get("/healthz", auth=False).status == 200, 10, "srvd to answer /healthz", interval=0.02, errors=())
    ok(ctl(srvd, "wait", ZONE_ARG, "--members", "1", "--timeout", "20s"))


def test_an_unreachable_server_fails_at_once(tmp_path):
    """A refused connection is reported straight away, not retried until a timeout."""
    token = tmp_path / "token"
    token.write_text("x" * 64 + "\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    started = time.monotonic()
    p = run_srvctl("members", "lab.example", "--server", f"http://127.0.0.1:{port}", "--token-file", str(token))
    assert p.returncode != 0
    assert "nothing accepts connections at" in p.stderr and "is srvd running" in p.stderr and "errno" not in p.stderr, p.stderr
    assert time.monotonic() - started < 10
