"""Scoped API tokens end to end (issue 15): `/v1/tokens` and `srvctl token` against the real
binary. Every route under `/v1` (and `/new`) is asked by every kind of caller: the admin
token file, a scoped admin token, a member token in scope, member tokens out of scope by
zone and by name, a revoked token and an unknown one. A refused request must change nothing
(`unchanged()`, plus the token and discovery listings); a revocation holds from the next
request on; tokens survive a restart and `kill -9`; no listing shows a secret, and the
store holds only digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402

from api_support import ROUTES, Reply, SrvdServer, answer_set, run_srvctl, unchanged  # noqa: E402

ZONE = "lab.example"
MEMBERS = f"/v1/zones/{ZONE}/members"
RECORDS = f"/v1/zones/{ZONE}/records"

OTHER_ZONE = """\
$ORIGIN other.example.
$TTL 30
@    IN SOA ns1 hostmaster 1 3600 900 604800 30
     IN NS  ns1
ns1  IN A   127.0.0.1
"""

MEMBER = "/v1/zones/{zone}/members/{name}"
RENEW = "/v1/zones/{zone}/members/{name}/renew"
# What a member token may do in scope: one member's routes, and what `srvctl wait` reads.
MEMBER_ROUTES = {("get", MEMBER), ("put", MEMBER), ("delete", MEMBER), ("post", RENEW)}
WAIT_READS = {("get", "/v1/status"), ("get", "/v1/zones/{zone}/members")}
# The routes a bearer token decides: everything under /v1, and /new.
GUARDED = sorted({r for r in ROUTES if r[1].startswith("/v1/")} | {("get", "/new")})

CALLERS = ["admin-file", "admin-scoped", "member", "member-other-zone", "member-other-name", "revoked", "unknown"]
MAY_ONLY = re.compile(r"this token may only GET, PUT, DELETE and renew members \S+ in \S+\.$")


def expected(caller: str, route: tuple[str, str]) -> int | str:
    """'2xx', 403 or 401."""
    if caller in ("revoked", "unknown"):
        return 401
    if caller.startswith("admin"):
        return "2xx"
    if caller == "member":
        return "2xx" if route in MEMBER_ROUTES | WAIT_READS else 403
    if caller == "member-other-name":
        # Its zone is lab.example: it may read the listing, not touch infra*.
        return "2xx" if route in WAIT_READS else 403
    assert caller == "member-other-zone"
    return "2xx" if route == ("get", "/v1/status") else 403


# --------------------------------------------------------------------------- helpers


def make_token(server: SrvdServer, body: dict, *, token: str | None = None) -> tuple[str, str]:
    """(id, secret) of a new token, made with the admin token unless another is given."""
    kw = {"token": token} if token else {}
    r = server.request("POST", "/v1/tokens", body=body, **kw)
    assert r.status == 201, r
    assert r.header("cache-control") == "no-store", r.headers
    j = r.json
    assert re.fullmatch(r"[0-9a-f]{16}", j["id"]), j
    assert re.fullmatch(rf"srvd_{j['id']}_[0-9a-f]{{64}}", j["token"]), j
    return j["id"], j["token"]


def member_token(server: SrvdServer, zones=(ZONE,), names=("infra*",)) -> tuple[str, str]:
    return make_token(server, {"role": "member", "zones": list(zones), "names": list(names)})


def tokens_listing(server: SrvdServer) -> list[dict]:
    return server.ok(server.get("/v1/tokens"), 200)["tokens"]


def discovery_listing(server: SrvdServer) -> list[str]:
    return sorted(t["token"] for t in server.ok(server.get("/v1/discovery"), 200)["tokens"])


def check_refusal(reply: Reply, status: int, what: str) -> None:
    assert reply.status == status, f"{what}: expected {status}, got {reply!r}"
    challenge = reply.header("www-authenticate") or ""
    assert challenge.startswith('Bearer realm="srvd"'), f"{what}: {reply.headers}"
    if what.startswith("GET /new"):
        # /new answers in plain text, as the rest of it does.
        assert (reply.header("content-type") or "").startswith("text/plain"), reply.headers
        return
    body = reply.json
    assert set(body) <= {"error", "field"} and body["error"], body
    if status == 403:
        assert 'error="insufficient_scope"' in challenge, challenge
        assert MAY_ONLY.search(body["error"]), f"{what}: the error does not say what the token may do: {body}"
        assert "\n" not in body["error"]
    else:
        assert 'error="invalid_token"' in challenge, challenge


@pytest.fixture
def server(tmp_path):
    """srvd serving lab.example and other.example."""
    s = SrvdServer(tmp_path / "srvd")
    s.write_zone("other.example.zone", OTHER_ZONE)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def callers(server: SrvdServer) -> dict[str, str]:
    """A bearer value for every kind of caller."""
    _, admin = make_token(server, {"role": "admin"})
    _, member = member_token(server)
    _, other_zone = member_token(server, zones=["other.example"])
    _, other_name = member_token(server, names=["db*"])
    revoked_id, revoked = member_token(server)
    # Used once, then revoked.
    server.ok(server.put_member("infra-revoked", {"addresses": ["127.0.0.70"]}), 201)
    assert server.request("GET", f"{MEMBERS}/infra-revoked", token=revoked).status == 200
    assert server.delete(f"/v1/tokens/{revoked_id}").status == 204
    unknown = f"srvd_{secrets.token_hex(8)}_{secrets.token_hex(32)}"
    return {
        "admin-file": server.token, "admin-scoped": admin, "member": member, "member-other-zone": other_zone,
        "member-other-name": other_name, "revoked": revoked, "unknown": unknown,
    }


def exercise(server: SrvdServer, caller: str, token: str, n: int, fixtures: dict[str, str]) -> dict[tuple[str, str], tuple[str, Reply]]:
    """Every guarded route once with `token`. A caller allowed to create something creates its
    own (member infraN, record txtN, a discovery token, an API token) and removes it again;
    a caller that must be refused aims at what exists already, so that a wrong 2xx would
    show as a change."""
    out: dict[tuple[str, str], tuple[str, Reply]] = {}

    def ask(route, method, path, body=None):
        r = server.request(method, path, body=body, token=token)
        out[route] = (f"{method} {path}", r)
        return r

    mine = expected(caller, ("put", MEMBER)) == "2xx"
    # infra0-2 are the zone file's: a member there would be a 409, not a 2xx.
    name = f"infra{50 + n}" if mine else "infra5"
    ask(("get", "/v1/status"), "GET", "/v1/status")
    ask(("get", "/v1/zones"), "GET", "/v1/zones")
    ask(("put", MEMBER), "PUT", f"{MEMBERS}/{name}", {"addresses": [f"127.0.0.{100 + n}"], "lease": 60})
    ask(("get", MEMBER), "GET", f"{MEMBERS}/{name}")
    ask(("post", RENEW), "POST", f"{MEMBERS}/{name}/renew")
    ask(("get", "/v1/zones/{zone}/members"), "GET", MEMBERS)
    ask(("get", "/v1/zones/{zone}/records"), "GET", RECORDS)
    txt = f"txt{n}" if expected(caller, ("put", "/v1/zones/{zone}/records/{owner}/{type}")) == "2xx" else "keep"
    ask(("put", "/v1/zones/{zone}/records/{owner}/{type}"), "PUT", f"{RECORDS}/{txt}/TXT", {"rdata": [f'"by {caller}"']})
    ask(("delete", "/v1/zones/{zone}/records/{owner}/{type}"), "DELETE", f"{RECORDS}/{txt}/TXT")
    r = ask(("post", "/v1/discovery"), "POST", "/v1/discovery", {"size": 1})
    disc = r.json["token"] if r.status == 201 else fixtures["discovery"]
    ask(("get", "/v1/discovery"), "GET", "/v1/discovery")
    ask(("get", "/v1/discovery/{token}"), "GET", f"/v1/discovery/{disc}")
    ask(("delete", "/v1/discovery/{token}"), "DELETE", f"/v1/discovery/{disc}")
    r = ask(("post", "/v1/tokens"), "POST", "/v1/tokens", {"role": "member", "zones": [ZONE], "names": ["x"]})
    tid = r.json["id"] if r.status == 201 else fixtures["token_id"]
    ask(("get", "/v1/tokens"), "GET", "/v1/tokens")
    ask(("delete", "/v1/tokens/{id}"), "DELETE", f"/v1/tokens/{tid}")
    r = ask(("get", "/new"), "GET", "/new?size=1")
    if r.status == 200:
        assert server.delete(f"/v1/discovery/{r.text.rsplit('/', 1)[-1]}").status == 204
    ask(("delete", MEMBER), "DELETE", f"{MEMBERS}/{name}")
    assert set(out) == set(GUARDED), f"not every route was asked: {set(GUARDED) - set(out)}"
    return out


# --------------------------------------------------------------------------- every route × caller


def test_openapi_documents_the_token_routes():
    assert {("post", "/v1/tokens"), ("get", "/v1/tokens"), ("delete", "/v1/tokens/{id}")} <= set(ROUTES)


@pytest.mark.parametrize("caller", CALLERS)
def test_every_route_for_every_caller(server, caller):
    tokens = callers(server)
    # What refused requests aim at: it must all be there, unchanged, afterwards.
    server.ok(server.put_member("infra5", {"addresses": ["127.0.0.15"], "lease": 600}), 201)
    server.ok(server.put(f"{RECORDS}/keep/TXT", {"rdata": ['"kept"']}), 201)
    fixtures = {
        "discovery": server.ok(server.request("POST", "/v1/discovery", body={"size": 3}), 201)["token"],
        "token_id": tokens_listing(server)[1]["id"],  # the member token's
    }
    # Callers that may write nothing: everything they ask must leave srvd as it was.
    refused = caller not in ("admin-file", "admin-scoped", "member")
    before = (tokens_listing(server), discovery_listing(server))
    with unchanged(server) if refused else contextlib.nullcontext():
        results = exercise(server, caller, tokens[caller], CALLERS.index(caller), fixtures)
    failures = []
    for route in GUARDED:
        what, reply = results[route]
        want = expected(caller, route)
        if want == "2xx":
            if not 200 <= reply.status < 300:
                failures.append(f"{what}: expected 2xx, got {reply!r}")
        else:
            try:
                check_refusal(reply, want, what)
            except AssertionError as e:
                failures.append(str(e))
    assert not failures, f"{caller}:\n" + "\n".join(failures)
    after = (tokens_listing(server), discovery_listing(server))
    if refused:
        # lastUsed may move for a token that got a read through (member-other-*); nothing
        # else may.
        strip = lambda ts: [{k: v for k, v in t.items() if k != "lastUsed"} for t in ts]  # noqa: E731
        assert strip(after[0]) == strip(before[0]), "a refused caller changed the tokens"
        assert after[1] == before[1], "a refused caller changed the discovery tokens"
    # What the refused requests aimed at still resolves.
    assert answer_set(server.query("infra5.lab.example.", "A"), "A") == {"127.0.0.15"}


def test_out_of_scope_errors_blame_the_zone_or_the_name(server):
    _, member = member_token(server, names=["infra*", "db0"])
    spec = {"addresses": ["127.0.0.20"]}
    with unchanged(server):
        r = server.put("/v1/zones/other.example/members/infra0x", spec, token=member)
        assert r.status == 403 and r.json == {
            "error": "other.example. is not one of this token's zones: this token may only GET, PUT, DELETE and renew members infra* or db0 in lab.example.",
            "field": "zone",
        }, r
        r = server.put(f"{MEMBERS}/db1", spec, token=member)
        assert r.status == 403 and r.json["field"] == "name" and r.json["error"].startswith("db1 matches none of this token's names"), r
        r = server.get("/v1/zones", token=member)
        assert r.status == 403 and "field" not in r.json and r.json["error"].startswith("GET /v1/zones needs an admin token: "), r
        # Another zone's member named absolutely, the apex, and a name only ending in infra.
        for name in ["infra0.other.example.", "lab.example.", "xinfra0"]:
            assert server.put(f"{MEMBERS}/{name}", spec, token=member).status == 403, name
    # Every spelling of a member in scope is judged as the handler reads it.
    for path in [f"{MEMBERS}/infra7", "/v1/zones/LAB.EXAMPLE./members/INFRA7", f"{MEMBERS}/infra7.lab.example.", "/v1/zones/lab%2Eexample/members/infr%61%37"]:
        r = server.put(path, {"addresses": ["127.0.0.17"]}, token=member)
        assert r.status in (200, 201), (path, r)
    assert answer_set(server.query("infra7.lab.example.", "A"), "A") == {"127.0.0.17"}


def test_discovery_protocol_paths_ignore_tokens(server):
    """`/discovery/...` stays etcd's protocol: the token in the path is the capability."""
    _, member = member_token(server)
    disc = server.ok(server.request("POST", "/v1/discovery", body={"size": 1}), 201)["token"]
    for kw in ({"auth": False}, {"token": member}, {"token": "srvd_" + "0" * 16 + "_" + "0" * 64}):
        r = server.request("GET", f"/discovery/{disc}/_config/size", **kw)
        assert r.status == 200 and r.json["node"]["value"] == "1", (kw, r)


# --------------------------------------------------------------------------- creation


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"zones": [ZONE], "names": ["x"]}, 400, "role"),
        ({"role": "owner"}, 400, "role"),
        ({"role": "member", "names": ["x"]}, 400, "zones"),
        ({"role": "member", "zones": [ZONE]}, 400, "names"),
        ({"role": "member", "zones": [ZONE], "names": ["infra 0"]}, 400, "names[0]"),
        ({"role": "member", "zones": [ZONE, "nowhere.example"], "names": ["x"]}, 422, "zones[1]"),
        ({"role": "admin", "names": ["x"]}, 400, "names"),
        ({"role": "admin", "expires": 3600}, 400, "expires"),
    ],
)
def test_bad_creations_are_refused_and_make_nothing(server, body, status, field):
    r = server.request("POST", "/v1/tokens", body=body)
    assert r.status == status and r.json.get("field") == field, r
    assert tokens_listing(server) == []


def test_token_management_needs_admin(server):
    member_id, member = member_token(server)
    for method, path, body in [("POST", "/v1/tokens", {"role": "admin"}), ("GET", "/v1/tokens", None), ("DELETE", f"/v1/tokens/{member_id}", None)]:
        check_refusal(server.request(method, path, body=body, token=member), 403, f"{method} {path}")
    assert [t["id"] for t in tokens_listing(server)] == [member_id]
    # A scoped admin token may, and what it makes works.
    _, admin = make_token(server, {"role": "admin"})
    made_id, made = make_token(server, {"role": "member", "zones": [ZONE], "names": ["infra8"]}, token=admin)
    assert server.put(f"{MEMBERS}/infra8", {"addresses": ["127.0.0.18"]}, token=made).status == 201
    assert server.request("DELETE", f"/v1/tokens/{made_id}", token=admin).status == 204
    check_refusal(server.get(f"{MEMBERS}/infra8", token=made), 401, "GET after revocation")


# --------------------------------------------------------------------------- revocation, listing, store


def test_revocation_holds_from_the_next_request(server):
    tid, member = member_token(server)
    assert server.put(f"{MEMBERS}/infra3", {"addresses": ["127.0.0.13"]}, token=member).status == 201
    assert server.delete(f"/v1/tokens/{tid}").status == 204
    with unchanged(server):
        r = server.delete(f"{MEMBERS}/infra3", token=member)
        check_refusal(r, 401, "DELETE member")
        check_refusal(server.get(f"{MEMBERS}/infra3", token=member), 401, "GET member")
    assert answer_set(server.query("infra3.lab.example.", "A"), "A") == {"127.0.0.13"}
    r = server.delete(f"/v1/tokens/{tid}")
    assert r.status == 404 and r.json["field"] == "id", r
    assert tokens_listing(server) == []


def test_listing_shows_scope_and_use_never_a_secret(server):
    admin_id, admin = make_token(server, {"role": "admin"})
    member_id, member = member_token(server, zones=["Lab.Example.", "other.example"], names=["Infra*", "db0", "infra*"])
    listing = tokens_listing(server)
    assert [t["id"] for t in listing] == [admin_id, member_id]
    assert listing[0]["role"] == "admin" and listing[0]["zones"] == [] and listing[0]["names"] == []
    assert listing[1]["role"] == "member"
    assert listing[1]["zones"] == ["lab.example.", "other.example."]
    assert listing[1]["names"] == ["infra*", "db0"]
    for t in listing:
        assert set(t) <= {"id", "role", "zones", "names", "created", "lastUsed"}, t
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t["created"]), t
        assert "lastUsed" not in t, t
    assert server.get(f"{MEMBERS}", token=member).status == 200
    listing = tokens_listing(server)
    assert "lastUsed" in listing[1] and "lastUsed" not in listing[0], listing
    text = server.get("/v1/tokens").text
    for secret in (admin, member):
        assert secret not in text and secret[-64:] not in text


def test_store_holds_only_digests(server):
    secrets_made = [make_token(server, {"role": "admin"})[1], member_token(server)[1]]
    server.stop()  # the WAL is checkpointed or not: both files are searched
    files = [p for p in server.data.iterdir() if p.name.startswith("srvd.sqlite")]
    assert files, list(server.data.iterdir())
    raw = b"".join(p.read_bytes() for p in files)
    for secret in secrets_made:
        assert secret.encode() not in raw and secret[-64:].encode() not in raw, "the store holds a secret"
        assert hashlib.sha256(secret.encode()).digest() in raw, "the store lacks the secret's SHA-256 digest"


def test_tokens_survive_restart_and_kill(server):
    member_id, member = member_token(server)
    admin_id, admin = make_token(server, {"role": "admin"})
    revoked_id, revoked = member_token(server)
    assert server.delete(f"/v1/tokens/{revoked_id}").status == 204
    assert server.put(f"{MEMBERS}/infra3", {"addresses": ["127.0.0.13"]}, token=member).status == 201
    listing = tokens_listing(server)
    # lastUsed moves with use (and is saved at most once a minute): compared apart.
    strip = lambda ts: [{k: v for k, v in t.items() if k != "lastUsed"} for t in ts]  # noqa: E731
    for restart in (server.restart, lambda: (server.kill(), server.start())):
        restart()
        after = tokens_listing(server)
        assert strip(after) == strip(listing)
        assert "lastUsed" in next(t for t in after if t["id"] == member_id), "the first use was not saved"
        assert server.get(f"{MEMBERS}/infra3", token=member).status == 200
        assert server.get("/v1/zones", token=admin).status == 200
        check_refusal(server.get(f"{MEMBERS}/infra3", token=revoked), 401, "revoked after restart")
        check_refusal(server.get("/v1/zones", token=member), 403, "member after restart")
    assert {t["id"] for t in listing} == {member_id, admin_id}


# --------------------------------------------------------------------------- srvctl


def ctl(server: SrvdServer, *args: str, token_file=None) -> subprocess.CompletedProcess:
    return run_srvctl(*args, "--server", server.url, "--token-file", str(token_file or server.token_path))


def test_srvctl_token_create_list_revoke(server, tmp_path):
    r = ctl(server, "token", "create", "--role", "member", "--zone", ZONE, "--name", "infra*", "--name", "db0")
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert r.stdout == secret + "\n" and re.fullmatch(r"srvd_[0-9a-f]{16}_[0-9a-f]{64}", secret), r.stdout
    tid = secret[5:21]
    assert tid in r.stderr and "infra*, db0" in r.stderr and "only this once" in r.stderr, r.stderr

    token_file = tmp_path / "infra3.token"
    token_file.write_text(r.stdout)
    r = ctl(server, "register", ZONE, "infra3", "--address", "127.0.0.13", token_file=token_file)
    assert r.returncode == 0, r.stderr
    assert answer_set(server.query("infra3.lab.example.", "A"), "A") == {"127.0.0.13"}
    # srvctl wait's reads are allowed to a member token.
    r = ctl(server, "wait", ZONE, "--members", "1", "--dns", f"127.0.0.1:{server.port}", "--timeout", "10s", token_file=token_file)
    assert r.returncode == 0, r.stderr
    r = ctl(server, "register", ZONE, "web1", "--address", "127.0.0.31", token_file=token_file)
    assert r.returncode != 0 and "web1 matches none of this token's names" in r.stderr, r.stderr
    r = ctl(server, "records", ZONE, token_file=token_file)
    assert r.returncode != 0 and "needs an admin token" in r.stderr, r.stderr

    r = ctl(server, "token", "list")
    assert r.returncode == 0, r.stderr
    assert tid in r.stdout and "member" in r.stdout and "lab.example." in r.stdout and "infra*,db0" in r.stdout, r.stdout
    assert secret not in r.stdout and secret[-64:] not in r.stdout
    r = ctl(server, "token", "list", "--json")
    assert r.returncode == 0 and secret[-64:] not in r.stdout
    assert [t["id"] for t in json.loads(r.stdout)["tokens"]] == [tid]
    # The member token may not list tokens.
    r = ctl(server, "token", "list", token_file=token_file)
    assert r.returncode != 0 and "needs an admin token" in r.stderr, r.stderr

    r = ctl(server, "token", "revoke", tid)
    assert r.returncode == 0 and f"revoked token {tid}" in r.stdout, r.stderr
    r = ctl(server, "deregister", ZONE, "infra3", token_file=token_file)
    assert r.returncode != 0 and "check --token-file" in r.stderr, r.stderr
    assert answer_set(server.query("infra3.lab.example.", "A"), "A") == {"127.0.0.13"}
    r = ctl(server, "token", "revoke", tid)
    assert r.returncode != 0 and f"no API token {tid}" in r.stderr, r.stderr


def test_srvctl_token_create_admin_and_json(server):
    r = ctl(server, "token", "create", "--role", "admin", "--json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["role"] == "admin" and body["token"].startswith(f"srvd_{body['id']}_")
    for args, message in [
        (["--role", "admin", "--zone", ZONE], "leave out --zone and --name"),
        (["--role", "member", "--zone", ZONE], "needs --zone and --name"),
        (["--role", "root"], "admin or member"),
    ]:
        r = ctl(server, "token", "create", *args)
        assert r.returncode != 0 and message in r.stderr, (args, r.stderr)
    r = ctl(server, "token", "create", "--role", "member", "--zone", "nowhere.example", "--name", "x")
    assert r.returncode != 0 and "srvd serves no zone nowhere.example." in r.stderr, r.stderr
    assert len(tokens_listing(server)) == 1
