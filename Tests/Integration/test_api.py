"""The admin HTTP API of srvd, end to end: a real srvd on loopback port 0, driven over HTTP
with the standard library and checked over DNS with dnspython and dig.

Every change must show up in the very next DNS query after the HTTP response: those
assertions never poll. Every refused request must change nothing: the zones list (serial),
the records listing and the members are compared before and after.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns.rcode  # noqa: E402
from pathlib import Path  # noqa: E402
import pytest  # noqa: E402

from api_support import (  # noqa: E402
    unchanged,
    FILE_SERIAL,
    OPENAPI_SOURCE,
    ROUTES,
    ZONE,
    ZONE_TTL,
    Reply,
    SrvdServer,
    answer_list,
    answer_set,
    answer_ttls,
    dig,
    metric_value,
    openapi_operations,
    parse_metrics,
)
from launcher import SRVD_BIN  # noqa: E402

MEMBERS = "/v1/zones/lab.example/members"
RECORDS = "/v1/zones/lab.example/records"
NOFIELD = object()

FILE_RRSETS = {
    ("lab.example.", "SOA", 30, ("ns1.lab.example. hostmaster.lab.example. 2026112101 3600 900 604800 30",)),
    ("lab.example.", "NS", 30, ("ns1.lab.example.",)),
    ("ns1.lab.example.", "A", 30, ("127.0.0.1",)),
    ("infra0.lab.example.", "A", 30, ("127.0.0.10",)),
    ("infra1.lab.example.", "A", 30, ("127.0.0.11",)),
    ("infra2.lab.example.", "A", 30, ("127.0.0.12",)),
    ("_etcd-server._tcp.lab.example.", "SRV", 30, tuple(f"0 0 2380 infra{i}.lab.example." for i in range(3))),
    ("_etcd-client._tcp.lab.example.", "SRV", 30, tuple(f"0 0 2379 infra{i}.lab.example." for i in range(3))),
}


# --------------------------------------------------------------------------- helpers




def assert_error(reply: Reply, status: int, field=NOFIELD) -> dict:
    """A JSON error of `status` with `field` (NOFIELD: the key must be absent)."""
    assert reply.status == status, f"expected {status}, got {reply!r}"
    ctype = reply.header("content-type") or ""
    assert ctype.split(";")[0].strip() == "application/json", f"error not sent as JSON: {ctype!r} {reply!r}"
    body = reply.json
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"].strip(), f"no error message: {body}"
    assert "\n" not in body["error"], f"error is not one sentence: {body['error']!r}"
    assert set(body) <= {"error", "field"}, f"unexpected keys in error body: {body}"
    if field is NOFIELD:
        assert "field" not in body, f"no field should be blamed: {body}"
    else:
        assert body.get("field") == field, f"expected field {field!r}: {body}"
    return body


def member_records(name: str, addresses: list[str], *, peer=2380, client=2379, tls=False, service=None, ttl=ZONE_TTL) -> set[str]:
    fqdn = f"{name}.{ZONE}"
    suffix = ("-ssl" if tls else "") + (f"-{service}" if service else "")
    out = set()
    for a in addresses:
        out.add(f"{fqdn} {ttl} IN {'AAAA' if ':' in a else 'A'} {a}")
    out.add(f"_etcd-server{suffix}._tcp.{ZONE} {ttl} IN SRV 0 0 {peer} {fqdn}")
    out.add(f"_etcd-client{suffix}._tcp.{ZONE} {ttl} IN SRV 0 0 {client} {fqdn}")
    return out


def srv_targets(server: SrvdServer, owner: str) -> list[str]:
    """Every SRV record at `owner` (TCP: the sets can be large), as 'prio weight port target'."""
    r = server.query(owner, "SRV", tcp=True)
    return answer_list(r, "SRV")


def rrset_tuples(listing: dict) -> set[tuple]:
    return {(s["owner"], s["type"], s["ttl"], tuple(sorted(s["rdata"]))) for s in listing["rrsets"]}


def normalize(rrsets: set[tuple]) -> set[tuple]:
    return {(o, t, ttl, tuple(sorted(r))) for o, t, ttl, r in rrsets}


# --------------------------------------------------------------------------- unauthenticated endpoints


def test_healthz_metrics_and_openapi_need_no_token(srvd):
    r = srvd.request("GET", "/healthz", auth=False)
    assert r.status == 200, r
    assert r.json == {"status": "ok"}

    r = srvd.request("GET", "/metrics", auth=False)
    assert r.status == 200, r
    assert (r.header("content-type") or "").startswith("text/plain"), r.headers
    assert "srvd_zone_serial" in r.text

    r = srvd.request("GET", "/openapi.yaml", auth=False)
    assert r.status == 200, r


def test_openapi_source_documents_every_route():
    text = OPENAPI_SOURCE.read_text()
    assert text.startswith("openapi: 3.0"), text[:100]
    ops = openapi_operations(text)
    missing = [r for r in ROUTES if r not in ops]
    assert not missing, f"openapi.yaml does not document {missing}"
    assert "bearerAuth" in text


def test_served_openapi_documents_every_route(srvd):
    r = srvd.request("GET", "/openapi.yaml", auth=False)
    assert r.status == 200, r
    text = r.text
    assert text.lstrip().startswith("openapi: 3.0"), text[:200]
    ops = openapi_operations(text)
    missing = [f"{m.upper()} {p}" for m, p in ROUTES if (m, p) not in ops]
    assert not missing, f"the served /openapi.yaml does not document: {missing}"
    for schema in ("Error", "MemberSpec", "Member", "RRSet", "bearerAuth"):
        assert schema in text, f"served document lacks {schema}"


# --------------------------------------------------------------------------- auth


def _v1_requests(server: SrvdServer) -> list[tuple[str, str, dict]]:
    spec = {"addresses": ["127.0.0.99"]}
    return [
        ("GET", "/v1/status", {}),
        ("GET", "/v1/zones", {}),
        ("GET", MEMBERS, {}),
        ("GET", f"{MEMBERS}/infra3", {}),
        ("PUT", f"{MEMBERS}/infra3", {"body": spec}),
        ("PUT", f"{MEMBERS}/infra9", {"body": spec}),
        ("DELETE", f"{MEMBERS}/infra3", {}),
        ("GET", RECORDS, {}),
        ("PUT", f"{RECORDS}/txt1/TXT", {"body": {"rdata": ['"x"']}}),
        ("PUT", f"{RECORDS}/infra0/A", {"body": {"rdata": ["127.0.0.99"]}}),
        ("DELETE", f"{RECORDS}/infra0/A", {}),
        ("DELETE", f"{RECORDS}/infra1/A", {}),
    ]


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda t: None, id="missing"),
        pytest.param(lambda t: "Bearer 0000000000000000000000000000000000000000000000000000000000000000", id="wrong-token"),
        pytest.param(lambda t: f"Bearer {t}x", id="token-plus-one"),
        pytest.param(lambda t: f"Bearer {t[:-1]}", id="token-minus-one"),
        pytest.param(lambda t: "Bearer ", id="empty-token"),
        pytest.param(lambda t: "Bearer", id="scheme-only"),
        pytest.param(lambda t: f"Basic {t}", id="basic-scheme"),
        pytest.param(lambda t: f"Token {t}", id="token-scheme"),
        pytest.param(lambda t: t, id="no-scheme"),
    ],
)
def test_v1_refuses_without_the_right_bearer_token(srvd, make_header):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    header = make_header(srvd.token)
    with unchanged(srvd):
        for method, path, kw in _v1_requests(srvd):
            if header is None:
                r = srvd.request(method, path, auth=False, **kw)
            else:
                r = srvd.request(method, path, authorization=header, **kw)
            assert_error(r, 401)
    # DNS still shows what was there.
    assert answer_set(srvd.query("infra3.lab.example.", "A"), "A") == {"127.0.0.13"}
    assert answer_set(srvd.query("infra0.lab.example.", "A"), "A") == {"127.0.0.10"}


def test_admin_token_file_is_used(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-for-the-admin-api-0123\n")
    token_file.chmod(0o600)
    server = SrvdServer(tmp_path / "srvd", token_file=token_file)
    try:
        server.start()
        assert server.token == "s3cret-token-for-the-admin-api-0123"
        r = server.get("/v1/status", authorization="Bearer s3cret-token-for-the-admin-api-0123")
        assert r.status == 200, r
        r = server.put_member("infra3", {"addresses": ["127.0.0.13"]})
        assert r.status == 201, r
        assert_error(server.get("/v1/status", authorization="Bearer s3cret-token-for-the-admin-api-0123!"), 401)
        assert not (server.data / "admin.token").exists(), "srvd created DATA_DIR/admin.token although --admin-token-file was given"
    finally:
        server.stop()


@pytest.mark.parametrize(
    "content",
    [None, "", "\n  \n", "x" * 31 + "\n", "tok\u00e9n-" + "x" * 40, "tok en-" + "x" * 40],
    ids=["missing", "empty", "blank", "31-characters", "not-ascii", "inner-space"],
)
def test_unusable_admin_token_file_exits_78(tmp_path, content):
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content, encoding="utf-8")
    server = SrvdServer(tmp_path / "srvd", token_file=token_file)
    try:
        code = server.run_to_exit()
        assert code == 78, f"expected exit 78, got {code}:\n{server.log()}"
        assert "serving DNS" not in server.log()
    finally:
        server.stop()


def test_generated_token_is_0600_64_hex_and_reused(tmp_path):
    server = SrvdServer(tmp_path / "srvd")
    try:
        server.start()
        path = server.data / "admin.token"
        assert path.exists(), "srvd did not create DATA_DIR/admin.token"
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"admin.token has mode {oct(mode)}"
        content = path.read_text()
        assert re.fullmatch(r"[0-9a-f]{64}\n", content), repr(content)
        token = content.strip()
        assert server.get("/v1/status", authorization=f"Bearer {token}").status == 200
        server.ok(server.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
        assert server.stop() == 0

        server.start()
        assert path.read_text() == content, "admin.token was rewritten on restart"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        r = server.get(f"{MEMBERS}/infra3", authorization=f"Bearer {token}")
        assert r.status == 200, r
        assert_error(server.get("/v1/status", authorization="Bearer " + "0" * 64), 401)

        # Also after a crash.
        server.kill()
        server.start()
        assert path.read_text() == content
        assert server.get("/v1/status", authorization=f"Bearer {token}").status == 200
    finally:
        server.stop()


# --------------------------------------------------------------------------- members


def test_register_member_is_served_by_the_next_query(srvd):
    before = srvd.serial()
    assert before == FILE_SERIAL
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13", "fd00::13"]})
    # The very next DNS queries, no polling.
    soa_dig = dig(srvd.port, ZONE, "SOA")
    a_dig = dig(srvd.port, "infra3.lab.example.", "A")
    aaaa = srvd.query("infra3.lab.example.", "AAAA")
    server_srv = srvd.query("_etcd-server._tcp.lab.example.", "SRV")
    client_srv = srvd.query("_etcd-client._tcp.lab.example.", "SRV")

    assert r.status == 201, r
    body = r.json
    assert body == {
        "zone": "lab.example.",
        "name": "infra3",
        "fqdn": "infra3.lab.example.",
        "addresses": ["127.0.0.13", "fd00::13"],
        "peerPort": 2380,
        "clientPort": 2379,
        "tls": False,
        "ttl": 30,
        "records": body["records"],
        "serial": before + 1,
        "served": True,
    }, body
    assert len(body["records"]) == 4 and set(body["records"]) == member_records("infra3", ["127.0.0.13", "fd00::13"])
    assert "service" not in body

    assert soa_dig.split()[2] == str(before + 1), soa_dig
    assert a_dig == "127.0.0.13"
    assert answer_set(aaaa, "AAAA") == {"fd00::13"}
    assert "0 0 2380 infra3.lab.example." in answer_list(server_srv, "SRV")
    assert "0 0 2379 infra3.lab.example." in answer_list(client_srv, "SRV")
    # The file's members are still there.
    assert len(answer_list(server_srv, "SRV")) == 4
    assert answer_ttls(aaaa, "AAAA") == {30}
    assert srvd.serial() == before + 1


def test_register_member_with_every_field(srvd):
    spec = {"addresses": ["10.0.1.10", "fd00::10"], "peerPort": 12380, "clientPort": 12379, "tls": False, "service": "blue", "ttl": 30}
    r = srvd.put_member("infra3", spec)
    a = srvd.query("infra3.lab.example.", "A")
    aaaa = srvd.query("infra3.lab.example.", "AAAA")
    peers = srvd.query("_etcd-server-blue._tcp.lab.example.", "SRV")
    clients = srvd.query("_etcd-client-blue._tcp.lab.example.", "SRV")
    assert r.status == 201, r
    body = r.json
    assert body["service"] == "blue" and body["ttl"] == 30 and body["peerPort"] == 12380 and body["clientPort"] == 12379
    assert body["tls"] is False
    assert set(body["records"]) == member_records("infra3", spec["addresses"], peer=12380, client=12379, service="blue", ttl=30)
    assert answer_set(a, "A") == {"10.0.1.10"} and answer_ttls(a, "A") == {30}
    assert answer_set(aaaa, "AAAA") == {"fd00::10"}
    assert answer_list(peers, "SRV") == ["0 0 12380 infra3.lab.example."] and answer_ttls(peers, "SRV") == {30}
    assert answer_list(clients, "SRV") == ["0 0 12379 infra3.lab.example."]
    # Not added to the default cluster's SRV sets.
    assert "infra3" not in " ".join(srv_targets(srvd, "_etcd-server._tcp.lab.example."))


ALL_SUFFIXES = ["", "-ssl", "-blue", "-ssl-blue"]


@pytest.mark.parametrize(
    "tls,service,suffix",
    [(False, None, ""), (True, None, "-ssl"), (False, "blue", "-blue"), (True, "blue", "-ssl-blue")],
    ids=["plain", "tls", "service", "tls+service"],
)
def test_srv_owner_names_follow_tls_and_service(srvd, tls, service, suffix):
    spec = {"addresses": ["127.0.0.13"], "tls": tls}
    if service:
        spec["service"] = service
    r = srvd.put_member("infra3", spec)
    answers = {s: (srv_targets(srvd, f"_etcd-server{s}._tcp.lab.example."), srv_targets(srvd, f"_etcd-client{s}._tcp.lab.example.")) for s in ALL_SUFFIXES}
    assert r.status == 201, r
    assert set(r.json["records"]) == member_records("infra3", ["127.0.0.13"], tls=tls, service=service)
    for s, (peers, clients) in answers.items():
        has_peer = "0 0 2380 infra3.lab.example." in peers
        has_client = "0 0 2379 infra3.lab.example." in clients
        assert has_peer == (s == suffix), f"_etcd-server{s}._tcp: {peers}"
        assert has_client == (s == suffix), f"_etcd-client{s}._tcp: {clients}"


def test_longest_service_name_is_accepted(srvd):
    service = "s" * 46  # _etcd-server-ssl- (17) + 46 = 63 octets, the label limit
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "tls": True, "service": service})
    peers = srv_targets(srvd, f"_etcd-server-ssl-{service}._tcp.lab.example.")
    assert r.status == 201, r
    assert peers == ["0 0 2380 infra3.lab.example."]


def test_limits_of_valid_values_are_accepted(srvd):
    cases = [
        ("p1", {"addresses": ["127.0.0.21"], "peerPort": 1, "clientPort": 65535, "ttl": 0}),
        ("p2", {"addresses": ["127.0.0.22"], "peerPort": 65535, "clientPort": 1, "ttl": 2147483647}),
        ("a" * 63, {"addresses": ["127.0.0.23"]}),
        ("x.y.deep", {"addresses": ["::1"]}),
    ]
    serial = srvd.serial()
    for name, spec in cases:
        r = srvd.put_member(name, spec)
        assert r.status == 201, (name, r)
        serial += 1
        assert r.json["serial"] == serial
        assert r.json["ttl"] == spec.get("ttl", ZONE_TTL)
    assert answer_ttls(srvd.query("p2.lab.example.", "A"), "A") == {2147483647}
    assert answer_ttls(srvd.query("p1.lab.example.", "A"), "A") == {0}
    assert answer_set(srvd.query("a" * 63 + ".lab.example.", "A"), "A") == {"127.0.0.23"}
    assert answer_set(srvd.query("x.y.deep.lab.example.", "AAAA"), "AAAA") == {"::1"}


def test_identical_reregistration_is_200_without_a_serial_bump(srvd):
    spec = {"addresses": ["127.0.0.13", "fd00::13"], "service": "blue", "ttl": 30}
    first = srvd.put_member("infra3", spec)
    assert first.status == 201, first
    serial = first.json["serial"]
    with unchanged(srvd):
        again = srvd.put_member("infra3", spec)
        # Spelled with defaults made explicit: still the same member.
        explicit = srvd.put_member("infra3", {**spec, "peerPort": 2380, "clientPort": 2379, "tls": False})
    assert again.status == 200, again
    assert explicit.status == 200, explicit
    assert again.json == first.json
    assert explicit.json == first.json
    assert srvd.soa_serial() == serial
    assert srv_targets(srvd, "_etcd-server-blue._tcp.lab.example.") == ["0 0 2380 infra3.lab.example."]
    assert srv_targets(srvd, "_etcd-client-blue._tcp.lab.example.") == ["0 0 2379 infra3.lab.example."]


def test_reregistration_replaces_the_member(srvd):
    first = srvd.put_member("infra3", {"addresses": ["127.0.0.13", "fd00::13"]})
    assert first.status == 201, first
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.23"], "peerPort": 12380})
    a = srvd.query("infra3.lab.example.", "A")
    aaaa = srvd.query("infra3.lab.example.", "AAAA")
    peers = srv_targets(srvd, "_etcd-server._tcp.lab.example.")
    clients = srv_targets(srvd, "_etcd-client._tcp.lab.example.")
    soa = srvd.soa_serial()

    assert r.status == 200, r
    assert r.json["serial"] == first.json["serial"] + 1 == soa
    assert r.json["addresses"] == ["127.0.0.23"]
    assert set(r.json["records"]) == member_records("infra3", ["127.0.0.23"], peer=12380)
    assert answer_set(a, "A") == {"127.0.0.23"}
    assert aaaa.rcode() == dns.rcode.NOERROR and answer_set(aaaa, "AAAA") == set(), "the old AAAA is still served"
    mine = [s for s in peers if s.endswith(" infra3.lab.example.")]
    assert mine == ["0 0 12380 infra3.lab.example."], peers
    assert [s for s in clients if s.endswith(" infra3.lab.example.")] == ["0 0 2379 infra3.lab.example."], clients
    assert len(peers) == 4 and len(clients) == 4
    listed = srvd.members()["members"]
    assert [m["name"] for m in listed] == ["infra3"]


def test_reregistration_moves_srv_records_to_the_new_owner(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "service": "blue"}), 201)
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "tls": True})
    old_peers = srvd.query("_etcd-server-blue._tcp.lab.example.", "SRV")
    old_clients = srvd.query("_etcd-client-blue._tcp.lab.example.", "SRV")
    new_peers = srvd.query("_etcd-server-ssl._tcp.lab.example.", "SRV")
    assert r.status == 200, r
    assert old_peers.rcode() == dns.rcode.NXDOMAIN and not old_peers.answer, old_peers
    assert old_clients.rcode() == dns.rcode.NXDOMAIN and not old_clients.answer, old_clients
    assert answer_list(new_peers, "SRV") == ["0 0 2380 infra3.lab.example."]
    assert "service" not in r.json and r.json["tls"] is True


def test_zone_and_name_spellings_address_the_same_member(srvd):
    r = srvd.put("/v1/zones/lab.example./members/infra3.lab.example.", {"addresses": ["127.0.0.13"]})
    assert r.status == 201, r
    assert r.json["name"] == "infra3" and r.json["fqdn"] == "infra3.lab.example." and r.json["zone"] == "lab.example."
    serial = r.json["serial"]
    with unchanged(srvd):
        again = srvd.put(f"{MEMBERS}/infra3", {"addresses": ["127.0.0.13"]})
    assert again.status == 200, again
    a = srvd.ok(srvd.get("/v1/zones/lab.example./members/infra3"), 200)
    b = srvd.ok(srvd.get(f"{MEMBERS}/infra3.lab.example."), 200)
    assert a == b == r.json
    listed = srvd.ok(srvd.get("/v1/zones/lab.example./members"), 200)
    assert listed["zone"] == "lab.example." and len(listed["members"]) == 1
    r = srvd.delete("/v1/zones/lab.example./members/infra3.lab.example.")
    assert r.status == 204, r
    assert srvd.serial() == serial + 1


def test_get_and_list_members(srvd):
    empty = srvd.members()
    assert empty == {"zone": "lab.example.", "serial": FILE_SERIAL, "members": []}
    three = srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    four = srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14", "fd00::14"], "tls": True, "service": "blue", "ttl": 30}), 201)
    serial = four["serial"]

    listed = srvd.members()
    assert listed["zone"] == "lab.example." and listed["serial"] == serial
    by_name = {m["name"]: m for m in listed["members"]}
    assert set(by_name) == {"infra3", "infra4"} and len(listed["members"]) == 2
    for m in listed["members"]:
        assert "serial" not in m, m
    assert by_name["infra3"] == {k: v for k, v in three.items() if k != "serial"}
    assert by_name["infra4"] == {k: v for k, v in four.items() if k != "serial"}

    one = srvd.ok(srvd.get(f"{MEMBERS}/infra3"), 200)
    assert one == {**three, "serial": serial}, "GET of one member: the member body with the current serial"
    four_again = srvd.ok(srvd.get(f"{MEMBERS}/infra4"), 200)
    assert four_again == four


def test_delete_member(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13", "fd00::13"], "service": "blue"}), 201)
    srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"]}), 201)
    serial = srvd.serial()

    r = srvd.delete(f"{MEMBERS}/infra3")
    a = srvd.query("infra3.lab.example.", "A")
    peers = srvd.query("_etcd-server-blue._tcp.lab.example.", "SRV")
    soa = srvd.soa_serial()
    assert r.status == 204, r
    assert r.body == b""
    assert soa == serial + 1
    assert a.rcode() == dns.rcode.NXDOMAIN, a
    assert peers.rcode() == dns.rcode.NXDOMAIN, peers
    # The other member and the file's records stay.
    assert answer_set(srvd.query("infra4.lab.example.", "A"), "A") == {"127.0.0.14"}
    assert len(srv_targets(srvd, "_etcd-server._tcp.lab.example.")) == 4

    assert_error(srvd.get(f"{MEMBERS}/infra3"), 404)
    with unchanged(srvd):
        assert_error(srvd.delete(f"{MEMBERS}/infra3"), 404)
        assert_error(srvd.delete(f"{MEMBERS}/never-registered"), 404)
    assert [m["name"] for m in srvd.members()["members"]] == ["infra4"]


def test_zones_and_status(srvd):
    zones = srvd.ok(srvd.get("/v1/zones"), 200)
    assert zones == {"zones": [{"name": "lab.example.", "serial": FILE_SERIAL, "records": 12, "rrsets": 8, "members": 0, "conflicts": []}]}
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13", "fd00::13"], "service": "blue"}), 201)
    zones = srvd.ok(srvd.get("/v1/zones"), 200)
    assert zones == {"zones": [{"name": "lab.example.", "serial": FILE_SERIAL + 1, "records": 16, "rrsets": 12, "members": 1, "conflicts": []}]}

    status = srvd.ok(srvd.get("/v1/status"), 200)
    version = subprocess.run([SRVD_BIN, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    assert status == {"version": version, "dns": [f"127.0.0.1:{srvd.port}"], "zones": 1}, status
    assert version


# --------------------------------------------------------------------------- member errors

ADDR = ["127.0.0.13"]
LONG_NAME = ".".join(["a" * 60] * 4)  # 4 * 61 = 244 octets + lab.example. = over 255


MEMBER_ERRORS = [
    # (id, name, request kwargs, status, field)
    ("malformed-json", "infra3", {"raw": b'{"addresses": ['}, 400, NOFIELD),
    ("empty-body", "infra3", {"raw": b""}, 400, NOFIELD),
    ("not-an-object", "infra3", {"raw": b'["127.0.0.13"]'}, 400, NOFIELD),
    ("json-string", "infra3", {"raw": b'"127.0.0.13"'}, 400, NOFIELD),
    ("unknown-field", "infra3", {"body": {"addresses": ADDR, "peer_port": 2380}}, 400, "peer_port"),
    ("addresses-string", "infra3", {"body": {"addresses": "127.0.0.13"}}, 400, "addresses"),
    ("address-number", "infra3", {"body": {"addresses": [2130706445]}}, 400, "addresses[0]"),
    ("peerPort-string", "infra3", {"body": {"addresses": ADDR, "peerPort": "2380"}}, 400, "peerPort"),
    ("peerPort-fraction", "infra3", {"body": {"addresses": ADDR, "peerPort": 2380.5}}, 400, "peerPort"),
    ("clientPort-bool", "infra3", {"body": {"addresses": ADDR, "clientPort": True}}, 400, "clientPort"),
    ("tls-string", "infra3", {"body": {"addresses": ADDR, "tls": "yes"}}, 400, "tls"),
    ("service-number", "infra3", {"body": {"addresses": ADDR, "service": 5}}, 400, "service"),
    ("ttl-string", "infra3", {"body": {"addresses": ADDR, "ttl": "30"}}, 400, "ttl"),
    ("address-octet-256", "infra3", {"body": {"addresses": ["127.0.0.256"]}}, 400, "addresses[0]"),
    ("address-second-bad", "infra3", {"body": {"addresses": ["127.0.0.13", "not-an-ip"]}}, 400, "addresses[1]"),
    ("address-bad-ipv6", "infra3", {"body": {"addresses": ["fd00::1::2"]}}, 400, "addresses[0]"),
    ("address-prefix", "infra3", {"body": {"addresses": ["10.0.0.1/24"]}}, 400, "addresses[0]"),
    ("address-empty", "infra3", {"body": {"addresses": [""]}}, 400, "addresses[0]"),
    ("address-hostname", "infra3", {"body": {"addresses": ["infra0.lab.example."]}}, 400, "addresses[0]"),
    ("addresses-empty", "infra3", {"body": {"addresses": []}}, 400, "addresses"),
    ("addresses-missing", "infra3", {"body": {}}, 400, "addresses"),
    ("addresses-missing-ports", "infra3", {"body": {"peerPort": 2380}}, 400, "addresses"),
    ("peerPort-0", "infra3", {"body": {"addresses": ADDR, "peerPort": 0}}, 400, "peerPort"),
    ("peerPort-65536", "infra3", {"body": {"addresses": ADDR, "peerPort": 65536}}, 400, "peerPort"),
    ("peerPort-negative", "infra3", {"body": {"addresses": ADDR, "peerPort": -1}}, 400, "peerPort"),
    ("clientPort-0", "infra3", {"body": {"addresses": ADDR, "clientPort": 0}}, 400, "clientPort"),
    ("clientPort-70000", "infra3", {"body": {"addresses": ADDR, "clientPort": 70000}}, 400, "clientPort"),
    ("name-label-64", "a" * 64, {"body": {"addresses": ADDR}}, 400, "name"),
    ("name-over-255", LONG_NAME, {"body": {"addresses": ADDR}}, 400, "name"),
    ("name-empty-label", "a..b", {"body": {"addresses": ADDR}}, 400, "name"),
    ("name-outside-zone", "infra3.other.example.", {"body": {"addresses": ADDR}}, 400, "name"),
    ("service-dot", "infra3", {"body": {"addresses": ADDR, "service": "a.b"}}, 400, "service"),
    ("service-empty", "infra3", {"body": {"addresses": ADDR, "service": ""}}, 400, "service"),
    ("service-47", "infra3", {"body": {"addresses": ADDR, "service": "s" * 47}}, 400, "service"),
    ("ttl-negative", "infra3", {"body": {"addresses": ADDR, "ttl": -1}}, 400, "ttl"),
    ("ttl-2^31", "infra3", {"body": {"addresses": ADDR, "ttl": 2147483648}}, 400, "ttl"),
    ("ttl-beyond-int64", "infra3", {"body": {"addresses": ADDR, "ttl": 99999999999999999999}}, 400, "ttl"),
    ("peerPort-beyond-int64", "infra3", {"body": {"addresses": ADDR, "peerPort": 99999999999999999999}}, 400, "peerPort"),
    ("no-content-type", "infra3", {"body": {"addresses": ADDR}, "content_type": None}, 415, NOFIELD),
    ("text-plain", "infra3", {"body": {"addresses": ADDR}, "content_type": "text/plain"}, 415, NOFIELD),
    ("form-encoded", "infra3", {"raw": b"addresses=127.0.0.13", "content_type": "application/x-www-form-urlencoded"}, 415, NOFIELD),
]


@pytest.mark.parametrize("name,kw,status,field", [c[1:] for c in MEMBER_ERRORS], ids=[c[0] for c in MEMBER_ERRORS])
def test_member_put_errors_change_nothing(srvd, name, kw, status, field):
    # An existing member at the same name must survive a refused replacement untouched.
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.33"], "service": "blue"}), 201)
    with unchanged(srvd):
        r = srvd.request("PUT", f"{MEMBERS}/{name}", **kw)
        assert_error(r, status, field)
    assert answer_set(srvd.query("infra3.lab.example.", "A"), "A") == {"127.0.0.33"}


def _padded(body: bytes, size: int) -> bytes:
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_body_over_64_KiB_is_413(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.33"]}), 201)
    with unchanged(srvd):
        r = srvd.request("PUT", f"{MEMBERS}/infra3", raw=_padded(b'{"addresses": ["127.0.0.13"]}', 65537))
        assert_error(r, 413)
        r = srvd.request("PUT", f"{MEMBERS}/infra4", raw=_padded(b'{"addresses": ["127.0.0.14"]}', 200_000))
        assert_error(r, 413)
        r = srvd.request("PUT", f"{RECORDS}/txt1/TXT", raw=_padded(b'{"rdata": ["\\"x\\""]}', 65537))
        assert_error(r, 413)


def test_chunked_body_over_64_KiB_is_413(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.33"]}), 201)
    with unchanged(srvd):
        r = srvd.request("PUT", f"{MEMBERS}/infra3", raw=_padded(b'{"addresses": ["127.0.0.13"]}', 65537), chunked=True)
        assert_error(r, 413)
        r = srvd.request("PUT", f"{RECORDS}/txt1/TXT", raw=_padded(b'{"rdata": ["\\"x\\""]}', 300_000), chunked=True)
        assert_error(r, 413)
    # A small chunked body is fine.
    r = srvd.request("PUT", f"{MEMBERS}/infra4", raw=b'{"addresses": ["127.0.0.14"]}', chunked=True)
    assert r.status == 201, r


def test_body_of_exactly_64_KiB_is_accepted(srvd):
    r = srvd.request("PUT", f"{MEMBERS}/infra3", raw=_padded(b'{"addresses": ["127.0.0.13"]}', 65536))
    assert r.status == 201, r
    assert answer_set(srvd.query("infra3.lab.example.", "A"), "A") == {"127.0.0.13"}


def test_json_content_type_with_parameters_is_accepted(srvd):
    r = srvd.request("PUT", f"{MEMBERS}/infra3", body={"addresses": ["127.0.0.13"]}, content_type="application/json; charset=utf-8")
    assert r.status == 201, r


def test_not_found_errors_change_nothing(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    with unchanged(srvd):
        assert_error(srvd.put("/v1/zones/nope.example/members/infra3", {"addresses": ADDR}), 404)
        assert_error(srvd.put("/v1/zones/other.example./members/infra3", {"addresses": ADDR}), 404)
        assert_error(srvd.get("/v1/zones/nope.example/members"), 404)
        assert_error(srvd.get("/v1/zones/nope.example/members/infra3"), 404)
        assert_error(srvd.delete("/v1/zones/nope.example/members/infra3"), 404)
        assert_error(srvd.get("/v1/zones/nope.example/records"), 404)
        assert_error(srvd.put("/v1/zones/nope.example/records/x/TXT", {"rdata": ['"x"']}), 404)
        assert_error(srvd.delete("/v1/zones/nope.example/records/x/TXT"), 404)
        assert_error(srvd.get(f"{MEMBERS}/infra9"), 404)
        assert_error(srvd.delete(f"{MEMBERS}/infra9"), 404)
        assert_error(srvd.get("/v1/no-such-route"), 404)
        assert_error(srvd.get("/v1/zones/lab.example/no-such-thing"), 404)
        assert_error(srvd.request("GET", "/no-such-route", auth=False), 404)


def test_invalid_member_name_in_get_and_delete_is_400(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    with unchanged(srvd):
        assert_error(srvd.get(f"{MEMBERS}/{'a' * 64}"), 400, "name")
        assert_error(srvd.delete(f"{MEMBERS}/{'a' * 64}"), 400, "name")
        assert_error(srvd.delete(f"{MEMBERS}/a..b"), 400, "name")


# --------------------------------------------------------------------------- records API


def test_records_listing_is_every_served_rrset(srvd):
    listing = srvd.records()
    assert listing["zone"] == "lab.example." and listing["serial"] == FILE_SERIAL
    assert {s["source"] for s in listing["rrsets"]} == {"file"}
    assert rrset_tuples(listing) == normalize(FILE_RRSETS)
    assert len(listing["rrsets"]) == len(FILE_RRSETS)

    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13", "fd00::13"], "service": "blue"}), 201)
    srvd.ok(srvd.put(f"{RECORDS}/txt1/TXT", {"ttl": 60, "rdata": ['"hello"']}), 201)
    listing = srvd.records()
    sources = {(s["owner"], s["type"]): s["source"] for s in listing["rrsets"]}
    assert len(sources) == len(listing["rrsets"]), "an RRset is listed twice"
    assert sources[("infra3.lab.example.", "A")] == "member"
    assert sources[("infra3.lab.example.", "AAAA")] == "member"
    assert sources[("_etcd-server-blue._tcp.lab.example.", "SRV")] == "member"
    assert sources[("_etcd-client-blue._tcp.lab.example.", "SRV")] == "member"
    assert sources[("txt1.lab.example.", "TXT")] == "api"
    assert sources[("infra0.lab.example.", "A")] == "file"
    assert len(listing["rrsets"]) == len(FILE_RRSETS) + 5
    # Every listed RRset is what DNS serves.
    for s in listing["rrsets"]:
        r = srvd.query(s["owner"], s["type"], tcp=True)
        assert r.rcode() == dns.rcode.NOERROR, (s, r)
        served = answer_set(r, s["type"], s["owner"])
        assert served == {x.lower() for x in s["rdata"]}, (s, served)
        assert answer_ttls(r, s["type"]) == {s["ttl"]}, s


def test_put_txt_rrset(srvd):
    before = srvd.serial()
    r = srvd.put(f"{RECORDS}/txt1/TXT", {"ttl": 60, "rdata": ['"etcd cluster lab"', '"v=1"']})
    txt = srvd.query("txt1.lab.example.", "TXT")
    soa = srvd.soa_serial()
    assert r.status == 201, r
    assert r.json == {"owner": "txt1.lab.example.", "type": "TXT", "ttl": 60, "rdata": r.json["rdata"], "source": "api", "serial": before + 1}
    assert sorted(r.json["rdata"]) == sorted(['"etcd cluster lab"', '"v=1"'])
    assert soa == before + 1
    assert answer_set(txt, "TXT") == {'"etcd cluster lab"', '"v=1"'} and answer_ttls(txt, "TXT") == {60}

    r = srvd.put(f"{RECORDS}/txt1.lab.example./TXT", {"rdata": ['"replaced"']})
    txt = srvd.query("txt1.lab.example.", "TXT")
    soa = srvd.soa_serial()
    assert r.status == 200, r
    assert r.json == {"owner": "txt1.lab.example.", "type": "TXT", "ttl": ZONE_TTL, "rdata": ['"replaced"'], "source": "api", "serial": before + 2}
    assert soa == before + 2
    assert answer_set(txt, "TXT") == {'"replaced"'}
    listed = [s for s in srvd.records()["rrsets"] if s["owner"] == "txt1.lab.example."]
    assert listed == [{**{k: v for k, v in r.json.items() if k != "serial"}, "served": True}]


def test_put_srv_rrset(srvd):
    r = srvd.put(f"{RECORDS}/_etcd-server-green._tcp/SRV", {"ttl": 60, "rdata": ["0 0 2380 infra0.lab.example.", "0 0 2380 infra1"]})
    srv = srvd.query("_etcd-server-green._tcp.lab.example.", "SRV")
    assert r.status == 201, r
    assert r.json["owner"] == "_etcd-server-green._tcp.lab.example." and r.json["source"] == "api"
    assert sorted(r.json["rdata"]) == ["0 0 2380 infra0.lab.example.", "0 0 2380 infra1.lab.example."]
    assert answer_set(srv, "SRV") == {"0 0 2380 infra0.lab.example.", "0 0 2380 infra1.lab.example."}


def test_put_caa_at_the_apex(srvd):
    before = srvd.serial()
    r = srvd.put("/v1/zones/lab.example./records/@/CAA", {"rdata": ['0 issue "letsencrypt.org"']})
    caa = srvd.query(ZONE, "CAA")
    soa = srvd.soa_serial()
    assert r.status == 201, r
    assert r.json["owner"] == "lab.example." and r.json["type"] == "CAA" and r.json["source"] == "api"
    assert answer_set(caa, "CAA") == {'0 issue "letsencrypt.org"'}
    assert soa == before + 1
    # The apex keeps its SOA and NS.
    assert answer_set(srvd.query(ZONE, "NS"), "NS") == {"ns1.lab.example."}


def test_put_rrset_in_rfc3597_syntax(srvd):
    r = srvd.put(f"{RECORDS}/opaque/TYPE65400", {"rdata": ["\\# 4 0a000001"]})
    unknown = srvd.query("opaque.lab.example.", "TYPE65400")
    assert r.status == 201, r
    assert r.json["owner"] == "opaque.lab.example." and r.json["source"] == "api"
    assert r.json["type"] == "TYPE65400"
    assert answer_set(unknown, "TYPE65400") == {"\\# 4 0a000001"}

    # A known type written generically is stored as that type.
    r = srvd.put(f"{RECORDS}/generic/A", {"rdata": ["\\# 4 0a000001"]})
    a = srvd.query("generic.lab.example.", "A")
    assert r.status == 201, r
    assert r.json["rdata"] == ["10.0.0.1"]
    assert answer_set(a, "A") == {"10.0.0.1"}


def test_put_over_a_file_rrset(srvd):
    r = srvd.put(f"{RECORDS}/infra0/A", {"rdata": ["127.0.0.20"]})
    a = srvd.query("infra0.lab.example.", "A")
    assert r.status == 200, r
    assert r.json == {"owner": "infra0.lab.example.", "type": "A", "ttl": ZONE_TTL, "rdata": ["127.0.0.20"], "source": "api", "serial": FILE_SERIAL + 1}
    assert answer_set(a, "A") == {"127.0.0.20"}
    listed = [s for s in srvd.records()["rrsets"] if (s["owner"], s["type"]) == ("infra0.lab.example.", "A")]
    assert listed == [{**{k: v for k, v in r.json.items() if k != "serial"}, "served": True}]
    # DELETE then stops serving the RRset altogether (the file's version does not come back).
    r = srvd.delete(f"{RECORDS}/infra0/A")
    a = srvd.query("infra0.lab.example.", "A")
    assert r.status == 204, r
    assert a.rcode() == dns.rcode.NXDOMAIN and not a.answer, a


def test_delete_api_rrset(srvd):
    srvd.ok(srvd.put(f"{RECORDS}/txt1/TXT", {"rdata": ['"x"']}), 201)
    before = srvd.serial()
    r = srvd.delete(f"{RECORDS}/txt1/TXT")
    txt = srvd.query("txt1.lab.example.", "TXT")
    soa = srvd.soa_serial()
    assert r.status == 204, r
    assert txt.rcode() == dns.rcode.NXDOMAIN, txt
    assert soa == before + 1
    assert not [s for s in srvd.records()["rrsets"] if s["owner"] == "txt1.lab.example."]
    with unchanged(srvd):
        assert_error(srvd.delete(f"{RECORDS}/txt1/TXT"), 404)


def test_delete_file_rrset_hides_it(srvd):
    before = srvd.serial()
    r = srvd.delete(f"{RECORDS}/infra0.lab.example./A")
    a = srvd.query("infra0.lab.example.", "A")
    soa = srvd.soa_serial()
    assert r.status == 204, r
    assert a.rcode() == dns.rcode.NXDOMAIN and not a.answer, a
    assert soa == before + 1
    assert ("infra0.lab.example.", "A") not in {(s["owner"], s["type"]) for s in srvd.records()["rrsets"]}
    # The other file data is untouched.
    assert answer_set(srvd.query("infra1.lab.example.", "A"), "A") == {"127.0.0.11"}
    with unchanged(srvd):
        assert_error(srvd.delete(f"{RECORDS}/infra0/A"), 404)
    # Putting it back makes it new again.
    r = srvd.put(f"{RECORDS}/infra0/A", {"rdata": ["127.0.0.10"]})
    assert r.status == 201, r
    assert answer_set(srvd.query("infra0.lab.example.", "A"), "A") == {"127.0.0.10"}


def test_delete_rrset_that_is_not_served_is_404(srvd):
    with unchanged(srvd):
        assert_error(srvd.delete(f"{RECORDS}/nothing-here/A"), 404)
        assert_error(srvd.delete(f"{RECORDS}/infra0/AAAA"), 404)
        assert_error(srvd.delete(f"{RECORDS}/@/MX"), 404)


def _records_setup(server: SrvdServer) -> None:
    server.ok(server.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    server.ok(server.put_member("infra4", {"addresses": ["127.0.0.14"], "service": "blue"}), 201)
    server.ok(server.put(f"{RECORDS}/alias/CNAME", {"rdata": ["infra0"]}), 201)


RECORD_ERRORS = [
    # (id, method, path, request kwargs, status, field)
    ("member-A-put", "PUT", "infra3/A", {"body": {"rdata": ["127.0.0.99"]}}, 409, None),
    ("member-A-delete", "DELETE", "infra3/A", {}, 409, None),
    ("member-srv-put", "PUT", "_etcd-server-blue._tcp/SRV", {"body": {"rdata": ["0 0 2380 infra0"]}}, 409, None),
    ("member-srv-delete", "DELETE", "_etcd-client-blue._tcp/SRV", {}, 409, None),
    ("shared-srv-put", "PUT", "_etcd-server._tcp/SRV", {"body": {"rdata": ["0 0 2380 infra0"]}}, 409, None),
    ("shared-srv-delete", "DELETE", "_etcd-client._tcp/SRV", {}, 409, None),
    ("soa-put", "PUT", "@/SOA", {"body": {"rdata": ["ns1 hostmaster 1 3600 900 604800 60"]}}, 422, None),
    ("soa-delete", "DELETE", "lab.example./SOA", {}, 422, None),
    ("owner-outside-put", "PUT", "www.other.example./A", {"body": {"rdata": ["127.0.0.1"]}}, 422, None),
    ("owner-outside-delete", "DELETE", "www.other.example./A", {}, 422, None),
    ("owner-parent-put", "PUT", "example./TXT", {"body": {"rdata": ['"x"']}}, 422, None),
    ("cname-beside-data", "PUT", "infra0/CNAME", {"body": {"rdata": ["infra1"]}}, 409, None),
    ("cname-beside-member", "PUT", "infra3/CNAME", {"body": {"rdata": ["infra1"]}}, 409, None),
    ("data-at-cname", "PUT", "alias/TXT", {"body": {"rdata": ['"x"']}}, 409, None),
    ("bad-rdata-second", "PUT", "x/A", {"body": {"rdata": ["127.0.0.1", "127.0.0.300"]}}, 400, "rdata[1]"),
    ("bad-rdata-srv", "PUT", "_x._tcp/SRV", {"body": {"rdata": ["0 0 notaport infra0"]}}, 400, "rdata[0]"),
    ("bad-rdata-two-lines", "PUT", "x/A", {"body": {"rdata": ["127.0.0.1\n127.0.0.2"]}}, 400, "rdata[0]"),
    ("unknown-type", "PUT", "x/BOGUS", {"body": {"rdata": ["1"]}}, 400, "type"),
    ("unknown-type-delete", "DELETE", "infra0/BOGUS", {}, 400, "type"),
    ("malformed-json", "PUT", "x/TXT", {"raw": b'{"rdata": ["x"'}, 400, NOFIELD),
    ("not-an-object", "PUT", "x/TXT", {"raw": b'[]'}, 400, NOFIELD),
    ("unknown-field", "PUT", "x/TXT", {"body": {"rdata": ['"x"'], "class": "IN"}}, 400, "class"),
    ("rdata-string", "PUT", "x/TXT", {"body": {"rdata": '"x"'}}, 400, "rdata"),
    ("rdata-number", "PUT", "x/A", {"body": {"rdata": [1]}}, 400, "rdata[0]"),
    ("ttl-string", "PUT", "x/TXT", {"body": {"rdata": ['"x"'], "ttl": "60"}}, 400, "ttl"),
    ("ttl-negative", "PUT", "x/TXT", {"body": {"rdata": ['"x"'], "ttl": -1}}, 400, "ttl"),
    ("ttl-2^31", "PUT", "x/TXT", {"body": {"rdata": ['"x"'], "ttl": 2147483648}}, 400, "ttl"),
    ("ttl-fraction", "PUT", "x/TXT", {"body": {"rdata": ['"x"'], "ttl": 60.5}}, 400, "ttl"),
    ("no-content-type", "PUT", "x/TXT", {"body": {"rdata": ['"x"']}, "content_type": None}, 415, NOFIELD),
]


@pytest.mark.parametrize("method,owner_type,kw,status,field", [c[1:] for c in RECORD_ERRORS], ids=[c[0] for c in RECORD_ERRORS])
def test_records_errors_change_nothing(srvd, method, owner_type, kw, status, field):
    _records_setup(srvd)
    with unchanged(srvd):
        r = srvd.request(method, f"{RECORDS}/{owner_type}", **kw)
        if field is None:
            assert r.status == status, f"{method} {owner_type}: expected {status}, got {r!r}"
            assert_error(r, status, r.json.get("field", NOFIELD))
        else:
            assert_error(r, status, field)


def test_member_where_a_cname_is_is_409(srvd):
    srvd.ok(srvd.put(f"{RECORDS}/alias/CNAME", {"rdata": ["infra0"]}), 201)
    with unchanged(srvd):
        r = srvd.put_member("alias", {"addresses": ["127.0.0.13"]})
        assert r.status == 409, r
        assert_error(r, 409, r.json.get("field", NOFIELD))
    assert answer_set(srvd.query("alias.lab.example.", "CNAME"), "CNAME") == {"infra0.lab.example."}


# --------------------------------------------------------------------------- every change bumps the serial


def test_every_accepted_change_bumps_the_serial_by_one(srvd):
    changes = [
        ("PUT", f"{MEMBERS}/infra3", {"addresses": ["127.0.0.13"]}, 201),
        ("PUT", f"{MEMBERS}/infra3", {"addresses": ["127.0.0.23"]}, 200),
        ("PUT", f"{MEMBERS}/infra4", {"addresses": ["127.0.0.14"], "tls": True}, 201),
        ("PUT", f"{RECORDS}/txt1/TXT", {"rdata": ['"a"']}, 201),
        ("PUT", f"{RECORDS}/txt1/TXT", {"rdata": ['"b"']}, 200),
        ("DELETE", f"{RECORDS}/txt1/TXT", None, 204),
        ("DELETE", f"{RECORDS}/infra2/A", None, 204),
        ("DELETE", f"{MEMBERS}/infra3", None, 204),
    ]
    serial = srvd.serial()
    for method, path, body, status in changes:
        r = srvd.request(method, path, body=body) if body is not None else srvd.request(method, path)
        soa = srvd.soa_serial()  # the very next query
        assert r.status == status, (method, path, r)
        serial += 1
        assert soa == serial, f"{method} {path}: SOA serial {soa}, expected {serial}"
        if r.body:
            assert r.json.get("serial", serial) == serial
    assert dig(srvd.port, ZONE, "SOA").split()[2] == str(serial)
    assert srvd.serial() == serial
    assert srvd.records()["serial"] == serial


# --------------------------------------------------------------------------- metrics


def test_metrics(srvd):
    srvd.query("infra0.lab.example.", "A")
    srvd.query("nothing.lab.example.", "A", tcp=True)
    srvd.query("_etcd-server._tcp.lab.example.", "SRV")
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}), 201)
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.23"]}), 200)
    srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"]}), 201)
    assert srvd.delete(f"{MEMBERS}/infra3").status == 204
    serial = srvd.serial()

    r = srvd.request("GET", "/metrics", auth=False)
    assert r.status == 200, r
    assert (r.header("content-type") or "").startswith("text/plain")
    samples = parse_metrics(r.text)
    q = "srvd_dns_queries_total"
    assert metric_value(samples, q, transport="udp", rcode="NOERROR", qtype="A") == 1, r.text
    assert metric_value(samples, q, transport="tcp", rcode="NXDOMAIN", qtype="A") == 1, r.text
    assert metric_value(samples, q, transport="udp", rcode="NOERROR", qtype="SRV") == 1, r.text
    for s in samples:
        if s.name == q:
            assert set(s.labels) == {"transport", "rcode", "qtype"}, s
    assert metric_value(samples, "srvd_registrations_total", result="created") == 2, r.text
    assert metric_value(samples, "srvd_registrations_total", result="replaced") == 1, r.text
    assert metric_value(samples, "srvd_registrations_total", result="deleted") == 1, r.text
    assert metric_value(samples, "srvd_zone_serial", zone="lab.example.") == serial, r.text
    assert metric_value(samples, "srvd_zone_reload_failures_total") == 0, r.text
    assert "# TYPE srvd_dns_queries_total counter" in r.text
    assert "# TYPE srvd_zone_serial gauge" in r.text


# --------------------------------------------------------------------------- URL details


def test_path_segments_are_percent_decoded(srvd):
    """RFC 3986 §2.1: %69nfra3 is the name infra3."""
    r = srvd.put_member("%69nfra3", {"addresses": ["127.0.0.13"]})
    assert r.status == 201, r
    assert r.json["name"] == "infra3"
    assert answer_set(srvd.query("infra3.lab.example.", "A"), "A") == {"127.0.0.13"}
    assert srvd.get(f"{MEMBERS}/infr%61%33").status == 200


def test_zone_is_named_as_its_file_spells_it(srvd):
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13"]}, zone="LAB.Example")
    assert r.status == 201, r
    assert r.json["zone"] == "lab.example."
    assert r.json["fqdn"] == "infra3.lab.example."
    records = srvd.get("/v1/zones/LAB.EXAMPLE./records")
    assert records.json["zone"] == "lab.example."


def test_openapi_is_served_by_a_binary_installed_alone(tmp_path):
    """The document is compiled into srvd, not read from the build folder."""
    alone = tmp_path / "bin" / "srvd"
    alone.parent.mkdir()
    alone.write_bytes(Path(SRVD_BIN).read_bytes())
    alone.chmod(0o755)
    server = SrvdServer(tmp_path / "srvd", binary=str(alone))
    try:
        server.start()
        r = server.request("GET", "/openapi.yaml", auth=False)
        assert r.status == 200, r
        assert r.text == OPENAPI_SOURCE.read_text()
    finally:
        server.stop()
