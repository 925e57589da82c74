"""srvd's etcd v2 discovery service (issue 13) on the admin port, over HTTP on loopback.

1. Protocol parity with etcd 3.4 `--enable-v2` (Debian's /usr/bin/etcd), the reference: a
   token made on srvd (POST /v1/discovery) and the same directory made on etcd the way
   discovery.etcd.io makes it (PUT /v2/keys/discovery/<token>/_config/size value=N), then the
   same requests against both, in the order etcd's discovery client sends them and with its
   exact query strings, plus the set/update/delete and missing-key cases. Compared: status,
   Content-Type, X-Etcd-Index (on every answer) and the JSON, with every index taken
   relative to the size key's createdIndex on that side (srvd's indexes are global over its
   tokens, etcd's over its whole store, so only the differences can agree). Where srvd
   differs on purpose, srvd is tested alone and a comment says why.
2. srvd alone: the admin API for tokens (validation, show, list, delete), GET /new (bearer,
   --discovery-open, --discovery-url-base, the Host header), indexes across restarts,
   durability across kill -9, and the zone publishing of the admitted members (SRV, A/AAAA,
   over size, deletion, names that cannot be published, host names the zone has).
   Every refused request changes nothing: neither what DNS serves and the API reports
   (api_support.unchanged) nor the discovery state (tokens, keys, the index).
3. srvctl discovery new/list/show/delete.

etcd answers some things the contract did not spell out; these tests follow etcd there
(the `test_parity_*` tests, most at the end of the file): with `sorted=true` the nodes are
in key order (not createdIndex order), without it etcd's order is unspecified; a plain PUT
that replaces a key gives the node a new createdIndex; a watch answer's X-Etcd-Index is the
index when the watch began; the `cause` of a 404 is the first path component that is
missing (so `D` for any path under an unknown token), and a path below a key is 400/104
"Not a directory"; an event for a key made by a plain PUT has action "set"; a deleted key's
creation stays in the watch history.

Only loopback addresses; the one long wait is the ~30 s end of a long poll, tested once.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns.rcode  # noqa: E402
import pytest  # noqa: E402

from api_support import (  # noqa: E402
    Reply,
    SrvdServer,
    answer_list,
    answer_set,
    dig,
    run_srvctl,
    unchanged,
)
from etcd_support import ETCD34, clean_env  # noqa: E402
from launcher import SHIPPED_ZONE, free_port, require_executable, spawn, tail, terminate, wait_until  # noqa: E402

HOST = "127.0.0.1"
ZONE = "lab.example."
ZONE_ARG = "lab.example"
FORM = "application/x-www-form-urlencoded"

# Plain requests answer at once; a watch that must block is given this long to show it does.
REQUEST_TIMEOUT = 10.0
BLOCK_CHECK = 1.0
# srvd ends a long poll after about 30 s with an empty 200.
LONG_POLL_END = 30.0
LONG_POLL_TIMEOUT = 60.0

# The shipped zone's own SRV targets (zone-file data; discovery members add to them).
FILE_SERVER_SRV = {f"0 0 2380 infra{i}.lab.example." for i in range(3)}
FILE_CLIENT_SRV = {f"0 0 2379 infra{i}.lab.example." for i in range(3)}

# Member ids as etcd makes them (16 hex digits); creation order differs from key order.
ID1, ID2, ID3, ID4 = "8e9e05c52164694d", "2b1e4f7a93c0d512", "f3c2a1b0e9d8c7b6", "5d4c3b2a19081726"
ID5, ID6 = "a0b1c2d3e4f50617", "1234567890abcdef"

TOKEN_RE = re.compile(r"[0-9a-f]{32}")
RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})")
INDEX_FIELDS = ("createdIndex", "modifiedIndex", "index")
UNKNOWN_TOKEN = "0123456789abcdef0123456789abcdef"


# --------------------------------------------------------------------------- HTTP


def v2_request(
    port: int,
    method: str,
    path: str,
    query: dict[str, Any] | None = None,
    *,
    form: dict[str, str] | None = None,
    raw: bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Reply:
    """One request on a fresh connection, as etcd's v2 client sends it: the query encoded
    in key order (Go's url.Values.Encode), a form body `value=...` percent-encoded."""
    if query:
        path += "?" + urllib.parse.urlencode(sorted((k, str(v)) for k, v in query.items()))
    h = dict(headers or {})
    body = raw
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        h["Content-Type"] = FORM
    if content_type is not None:
        h["Content-Type"] = content_type
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        conn.close()


class Pending:
    """A request running in its own thread (a long poll): `done()` tells whether it has
    answered yet, `result()` waits for the answer."""

    def __init__(self, call: Callable[[], Reply]) -> None:
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.finished: float | None = None

        def run() -> None:
            try:
                self.reply = call()
            except BaseException as e:  # reported by result()
                self.error = e
            self.finished = time.monotonic()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self, timeout: float = REQUEST_TIMEOUT) -> Reply:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"no answer within {timeout} s"
        if self.error is not None:
            raise AssertionError(f"the request failed: {self.error!r}") from self.error
        assert self.reply is not None
        return self.reply

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def media_type(reply: Reply) -> str | None:
    ct = reply.header("content-type")
    return ct.split(";")[0].strip().lower() if ct else None


def etcd_index(reply: Reply) -> int:
    value = reply.header("x-etcd-index")
    assert value is not None, f"no X-Etcd-Index header: {reply.headers} {reply!r}"
    assert value.isdigit(), f"X-Etcd-Index is not a number: {value!r}"
    return int(value)


def etcd_error(reply: Reply, status: int, code: int, *, cause: str | None = None, message: str | None = None) -> dict:
    """An etcd v2 error answer: `status`, JSON {"errorCode","message","cause","index"} whose
    index is the X-Etcd-Index header."""
    assert reply.status == status, f"expected {status} (errorCode {code}), got {reply!r}"
    assert media_type(reply) == "application/json", f"not JSON: {reply.headers} {reply!r}"
    body = reply.json
    assert body.get("errorCode") == code, f"expected errorCode {code}: {body}"
    assert isinstance(body.get("message"), str) and body["message"], f"no message: {body}"
    if message is not None:
        assert body["message"] == message, body
    if cause is not None:
        assert body.get("cause") == cause, f"expected cause {cause!r}: {body}"
    assert body.get("index") == etcd_index(reply), f"index {body.get('index')} is not X-Etcd-Index {reply.header('x-etcd-index')}"
    return body


# --------------------------------------------------------------------------- etcd 3.4


class Etcd34:
    """A single-member etcd 3.4 with the v2 API on loopback, free ports, a temporary data
    dir: the reference for the protocol."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.client_port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        self.log_path = workdir / "etcd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Etcd34":
        require_executable(ETCD34, "etcd 3.4 (Debian's etcd-server)")
        version = subprocess.run([ETCD34, "--version"], capture_output=True, text=True, timeout=30, env=clean_env()).stdout
        assert "etcd Version: 3.4." in version, f"{ETCD34} is not etcd 3.4:\n{version}"
        client = f"http://{HOST}:{self.client_port}"
        peer = f"http://{HOST}:{self.peer_port}"
        cmd = [
            ETCD34, "--name", "reference", "--data-dir", str(self.workdir / "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"reference={peer}", "--enable-v2",
        ]
        self.proc = spawn(cmd, self.log_path, env=clean_env())

        def ready() -> bool:
            assert self.proc.poll() is None, f"etcd exited with {self.proc.returncode}:\n{tail(self.log_path)}"
            return v2_request(self.client_port, "GET", "/v2/keys/", timeout=2).status == 200

        wait_until(ready, 30, lambda: f"etcd 3.4 to serve the v2 API; log:\n{tail(self.log_path)}")
        return self

    def stop(self) -> None:
        terminate(self.proc)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    server = Etcd34(tmp_path_factory.mktemp("etcd34"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def parity_srvd(tmp_path_factory):
    """One srvd for the parity tests: each works in its own token, and indexes are compared
    relative to that token's size key, so they can share it."""
    server = SrvdServer(tmp_path_factory.mktemp("parity-srvd"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- srvd helpers


def new_token(server: SrvdServer, **spec: Any) -> dict:
    spec.setdefault("size", 3)
    r = server.request("POST", "/v1/discovery", body=spec)
    assert r.status == 201, f"POST /v1/discovery {spec}: {r!r}"
    body = r.json
    assert TOKEN_RE.fullmatch(body.get("token", "")), body
    return body


def dpath(token: str) -> str:
    return f"/discovery/{token}"


def disc(server: SrvdServer, method: str, token: str, sub: str = "", query: dict | None = None, **kw: Any) -> Reply:
    """A discovery request (no bearer token) to srvd: `sub` under D = /discovery/<token>."""
    return v2_request(server.admin_port, method, dpath(token) + sub, query, **kw)


def create(server: SrvdServer, token: str, key: str, value: str) -> dict:
    """PUT D/key?prevExist=false as etcd's client does; the created node."""
    r = disc(server, "PUT", token, f"/{key}", {"prevExist": "false"}, form={"value": value})
    assert r.status == 201, f"create {key}={value}: {r!r}"
    assert r.json["action"] == "create", r.json
    return r.json["node"]


def token_body(server: SrvdServer, token: str) -> dict:
    r = server.get(f"/v1/discovery/{token}")
    assert r.status == 200, f"GET /v1/discovery/{token}: {r!r}"
    return r.json


def current_index(server: SrvdServer) -> int:
    """srvd's etcd index now, read from a 404 under an unknown token (changes nothing)."""
    r = v2_request(server.admin_port, "GET", dpath(UNKNOWN_TOKEN) + "/_config/size")
    return etcd_error(r, 404, 100)["index"]


def discovery_state(server: SrvdServer) -> tuple:
    """What a refused discovery request must leave alone: every token's admin body, every
    token's directory (with the hidden size key) and the index."""
    listing = server.ok(server.get("/v1/discovery"), 200)
    tokens = sorted(listing["tokens"], key=lambda t: t["token"])
    dirs = {}
    for t in tokens:
        d = disc(server, "GET", t["token"], "", {"recursive": "true", "sorted": "true"})
        size = disc(server, "GET", t["token"], "/_config/size")
        dirs[t["token"]] = (d.status, d.body, size.status, size.body)
    return tokens, dirs, current_index(server)


def without_urls(state: tuple) -> tuple:
    tokens, dirs, index = state
    return [{k: v for k, v in t.items() if k != "url"} for t in tokens], dirs, index


@contextlib.contextmanager
def nothing_changes(server: SrvdServer):
    """unchanged() (DNS, zones, records, members) and the discovery state."""
    before = discovery_state(server)
    with unchanged(server):
        yield
    after = discovery_state(server)
    assert after[2] == before[2], f"the etcd index moved from {before[2]} to {after[2]}"
    assert after[0] == before[0], f"the tokens changed:\n{before[0]}\n{after[0]}"
    assert after[1] == before[1], f"a token's keys changed:\n{before[1]}\n{after[1]}"


def admin_error(reply: Reply, status: int, field: Any = "absent") -> dict:
    """srvd's own API error: {"error": sentence, "field": ...}. `field`: the expected field,
    "absent" for none, "any" to accept either."""
    assert reply.status == status, f"expected {status}, got {reply!r}"
    assert media_type(reply) == "application/json", f"error not sent as JSON: {reply.headers}"
    body = reply.json
    assert isinstance(body.get("error"), str) and body["error"].strip(), f"no error message: {body}"
    assert set(body) <= {"error", "field"}, f"unexpected keys in error body: {body}"
    if field == "absent":
        assert "field" not in body, f"no field should be blamed: {body}"
    elif field != "any":
        assert body.get("field") == field, f"expected field {field!r}: {body}"
    return body


def rfc3339(value: Any) -> float:
    assert isinstance(value, str), value
    m = RFC3339.fullmatch(value)
    assert m, f"not an RFC 3339 timestamp: {value!r}"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def srv(server: SrvdServer, owner: str) -> set[str]:
    return set(answer_list(server.query(owner, "SRV", tcp=True), "SRV"))


def a_records(server: SrvdServer, name: str, rtype: str = "A") -> set[str]:
    return answer_set(server.query(name, rtype), rtype)


# --------------------------------------------------------------------------- parity helpers


@dataclass
class Side:
    """srvd or etcd, one token/directory D on it, indexes counted from its size key."""

    name: str
    port: int
    prefix: str  # "" on srvd, "/v2/keys" on etcd
    token: str
    base: int = 0

    @property
    def d(self) -> str:
        return dpath(self.token)

    def at(self, rel: int) -> int:
        return self.base + rel

    def call(self, method: str, sub: str = "", query: dict | None = None, **kw: Any) -> Reply:
        return v2_request(self.port, method, self.prefix + self.d + sub, query, **kw)


def parity_pair(srvd_server: SrvdServer, etcd: Etcd34, size: int = 3) -> tuple[Side, Side]:
    """A token on srvd and the same directory on etcd, made as discovery.etcd.io makes it."""
    token = new_token(srvd_server, size=size)["token"]
    s = Side("srvd", srvd_server.admin_port, "", token)
    e = Side("etcd", etcd.client_port, "/v2/keys", token)
    r = e.call("PUT", "/_config/size", form={"value": str(size)})
    assert r.status == 201, f"etcd: {r!r}"
    e.base = r.json["node"]["createdIndex"]
    r = s.call("GET", "/_config/size")
    assert r.status == 200, f"srvd: GET D/_config/size of a new token: {r!r}"
    s.base = r.json["node"]["createdIndex"]
    return s, e


def normalized(value: Any, base: int) -> Any:
    """`value` with every index field made relative to `base`."""
    if isinstance(value, dict):
        return {k: (v - base if k in INDEX_FIELDS and isinstance(v, int) and not isinstance(v, bool) else normalized(v, base))
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v, base) for v in value]
    return value


def key_sorted(body: Any) -> Any:
    """A directory answer with its nodes in key order (for answers whose order etcd leaves
    unspecified)."""
    if isinstance(body, dict) and isinstance(body.get("node"), dict) and isinstance(body["node"].get("nodes"), list):
        body = json.loads(json.dumps(body))
        body["node"]["nodes"].sort(key=lambda n: n.get("key", ""))
    return body


def view(side: Side, reply: Reply) -> dict:
    """What is compared of an answer."""
    body: Any = None
    if reply.body:
        try:
            body = normalized(json.loads(reply.body), side.base)
        except ValueError:
            body = reply.body
    header = reply.header("x-etcd-index")
    return {
        "status": reply.status,
        "content-type": media_type(reply),
        "X-Etcd-Index": int(header) - side.base if header is not None and header.isdigit() else header,
        "body": body,
    }


def compare(what: str, s: Side, sr: Reply, e: Side, er: Reply, *, unordered: bool = False, header: bool = True) -> dict:
    """Asserts that srvd answered as etcd did; returns etcd's view."""
    for side, reply in ((s, sr), (e, er)):
        assert reply.header("x-etcd-index") is not None, f"{what}: {side.name} sent no X-Etcd-Index: {reply.headers} {reply!r}"
    sv, ev = view(s, sr), view(e, er)
    if unordered:
        sv["body"], ev["body"] = key_sorted(sv["body"]), key_sorted(ev["body"])
    if not header:
        sv.pop("X-Etcd-Index"), ev.pop("X-Etcd-Index")
    if sv != ev:
        diffs = [f"  {k}: srvd {sv.get(k)!r}\n  {' ' * len(k)}  etcd {ev.get(k)!r}" for k in ev if sv.get(k) != ev.get(k)]
        pytest.fail(f"{what}: srvd differs from etcd 3.4 (indexes relative to the size key):\n" + "\n".join(diffs)
                    + f"\n  raw srvd: {sr!r}\n  raw etcd: {er!r}")
    return ev


def same(what: str, s: Side, e: Side, method: str, sub: str = "", query: Callable[[Side], dict] | dict | None = None,
         **kw: Any) -> tuple[Reply, Reply]:
    """The same request to both sides (`query` may depend on the side, for indexes)."""
    replies = []
    for side in (s, e):
        q = query(side) if callable(query) else query
        replies.append(side.call(method, sub, q, **kw))
    compare(what, s, replies[0], e, replies[1])
    return replies[0], replies[1]


def same_unordered(what: str, s: Side, e: Side, method: str, sub: str = "", query: dict | None = None) -> tuple[Reply, Reply]:
    sr, er = s.call(method, sub, query), e.call(method, sub, query)
    compare(what, s, sr, e, er, unordered=True)
    return sr, er


def assert_created_order(what: str, reply: Reply) -> None:
    """srvd's contract: without sorted=true the nodes come by createdIndex."""
    nodes = reply.json["node"].get("nodes", [])
    indexes = [n["createdIndex"] for n in nodes]
    assert indexes == sorted(indexes), f"{what}: srvd's nodes are not by createdIndex: {nodes}"


# client query strings, exactly as etcd 3.4's v2 client sends them
GET_PLAIN = {"quorum": "false", "recursive": "false", "sorted": "false"}
GET_DIR = {"quorum": "false", "recursive": "true", "sorted": "true"}


def self_wait(rel: int) -> Callable[[Side], dict]:
    return lambda side: {"recursive": "false", "wait": "true", "waitIndex": side.at(rel)}


def dir_wait(rel: int) -> Callable[[Side], dict]:
    return lambda side: {"recursive": "true", "wait": "true", "waitIndex": side.at(rel)}


# =========================================================================== 1. parity


def test_parity_discovery_client_sequence(parity_srvd, etcd):
    """A member's requests in the order etcd's discovery client sends them, then the other
    members joining, with every answer compared."""
    s, e = parity_pair(parity_srvd, etcd)
    v1, v2, v3, v4 = (f"infra{i}=http://127.0.0.{10 + i}:2380" for i in range(4))

    # checkCluster: the size key, then the directory (no members yet: no `nodes`)
    same("GET D/_config/size", s, e, "GET", "/_config/size", GET_PLAIN)
    same("GET D/_config/size, no query", s, e, "GET", "/_config/size")
    _, er = same("GET D (empty)", s, e, "GET", "", GET_PLAIN)
    assert "nodes" not in er.json["node"], er.json
    same("GET D?recursive&sorted (empty)", s, e, "GET", "", GET_DIR)
    same("GET D, no query (empty)", s, e, "GET", "")

    # createSelf: PUT ?prevExist=false with a form body, then a wait on its own key at its
    # createdIndex, which must answer at once from history
    sr, er = same("PUT D/id1?prevExist=false", s, e, "PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": v1})
    assert er.status == 201 and er.json["node"]["createdIndex"] == e.at(1), er.json
    same("GET D/id1?wait=true&waitIndex=<its createdIndex>", s, e, "GET", f"/{ID1}", self_wait(1))
    same("GET D (one member)", s, e, "GET", "", GET_PLAIN)
    same("GET D?recursive&sorted (one member)", s, e, "GET", "", GET_DIR)

    # a second start of the same member: duplicate id (412/105), nothing changes
    sr, er = same("PUT D/id1?prevExist=false again", s, e, "PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": v1})
    assert er.status == 412 and er.json["errorCode"] == 105, er.json
    etcd_error(sr, 412, 105, cause=f"{s.d}/{ID1}", message="Key already exists")

    # the other members (ids whose key order differs from their creation order)
    same("PUT D/id2?prevExist=false", s, e, "PUT", f"/{ID2}", {"prevExist": "false"}, form={"value": v2})
    same("GET D/id2?wait=true&waitIndex=<its createdIndex>", s, e, "GET", f"/{ID2}", self_wait(2))
    same("PUT D/id3?prevExist=false", s, e, "PUT", f"/{ID3}", {"prevExist": "false"}, form={"value": v3})

    # etcd finding: with sorted=true the nodes are in key order, not createdIndex order
    sr, er = same("GET D?recursive=true&sorted=true&quorum=false (three members)", s, e, "GET", "", GET_DIR)
    assert [n["key"].rsplit("/", 1)[1] for n in er.json["node"]["nodes"]] == sorted([ID1, ID2, ID3]), er.json
    same("GET D?sorted=true&quorum=true", s, e, "GET", "", {"quorum": "true", "recursive": "false", "sorted": "true"})
    # without sorted=true etcd's order is unspecified (a Go map): compared as a set; srvd's
    # own contract orders by createdIndex
    sr, _ = same_unordered("GET D (three members)", s, e, "GET", "", GET_PLAIN)
    assert_created_order("GET D", sr)
    sr, _ = same_unordered("GET D, no query (three members)", s, e, "GET", "")
    assert_created_order("GET D, no query", sr)
    same("GET D/id2", s, e, "GET", f"/{ID2}")
    same("GET D/id2?quorum=false&recursive=false&sorted=false", s, e, "GET", f"/{ID2}", GET_PLAIN)

    # waitNodes: a recursive wait from a past index answers at once with the first creation
    # at or after it
    same("GET D?recursive=true&wait=true&waitIndex=<id1>", s, e, "GET", "", dir_wait(1))
    same("GET D?recursive=true&wait=true&waitIndex=<id2>", s, e, "GET", "", dir_wait(2))
    same("GET D?recursive=true&wait=true&waitIndex=<id3>", s, e, "GET", "", dir_wait(3))

    # missing keys
    sr, er = same("GET D/missing", s, e, "GET", f"/{ID4}")
    etcd_error(sr, 404, 100, cause=f"{s.d}/{ID4}", message="Key not found")
    same("GET D/missing?quorum=false&recursive=false&sorted=false", s, e, "GET", f"/{ID4}", GET_PLAIN)
    same("GET D/_config/missing", s, e, "GET", "/_config/nosuchkey")
    same("PUT D/missing?prevExist=true", s, e, "PUT", f"/{ID4}", {"prevExist": "true"}, form={"value": v4})
    same("DELETE D/missing", s, e, "DELETE", f"/{ID4}")

    # a wait for a future index blocks, on the directory (recursive) and on the key, until
    # the creation comes from another client
    pendings = {}
    for side in (s, e):
        pendings[side.name] = [
            Pending(lambda side=side: side.call("GET", "", dir_wait(4)(side), timeout=30)),
            Pending(lambda side=side: side.call("GET", f"/{ID4}", self_wait(4)(side), timeout=30)),
            # no waitIndex: the next event from now
            Pending(lambda side=side: side.call("GET", "", {"recursive": "true", "wait": "true"}, timeout=30)),
        ]
    time.sleep(BLOCK_CHECK)
    for name, ps in pendings.items():
        for what, p in zip(("recursive wait at a future index", "key wait at a future index", "recursive wait, no waitIndex"), ps):
            assert not p.done(), f"{name}: the {what} answered before anything happened: {p.reply!r}"
    same("PUT D/id4?prevExist=false (while watched)", s, e, "PUT", f"/{ID4}", {"prevExist": "false"}, form={"value": v4})
    sw = [p.result() for p in pendings["srvd"]]
    ew = [p.result() for p in pendings["etcd"]]
    # (their X-Etcd-Index: test_parity_a_blocked_watch_answers_with_the_index_it_began_at)
    compare("the blocked recursive wait, answered by the creation", s, sw[0], e, ew[0], header=False)
    compare("the blocked key wait, answered by the creation", s, sw[1], e, ew[1], header=False)
    compare("the recursive wait without waitIndex, answered by the creation", s, sw[2], e, ew[2], header=False)
    for r in sw:
        assert etcd_index(r) in (s.at(3), s.at(4)), f"a watch answer's X-Etcd-Index is neither before nor after the creation: {r!r}"
    assert ew[0].json["node"]["key"] == f"{e.d}/{ID4}", ew[0].json

    # the client's next poll, from the returned modifiedIndex + 1: nothing yet, so it blocks
    # (ended by closing the connection: the 30 s end of srvd's long poll is tested alone)
    p = Pending(lambda: s.call("GET", "", dir_wait(5)(s), timeout=BLOCK_CHECK * 2))
    time.sleep(BLOCK_CHECK)
    assert not p.done(), f"srvd: the next poll answered with nothing new: {p.reply!r}"

    # X-Etcd-Index on srvd only grows, and is the index of the last change
    assert etcd_index(s.call("GET", "", GET_DIR)) == s.at(4)


def test_parity_set_update_delete(parity_srvd, etcd):
    """The operator's requests: a plain PUT (set), an update, deletions."""
    s, e = parity_pair(parity_srvd, etcd)
    a, c = "infra0=http://127.0.0.10:2380", "infra0=http://127.0.0.10:2382"

    sr, er = same("PUT D/k (set, new)", s, e, "PUT", f"/{ID1}", form={"value": a})
    assert er.status == 201 and er.json["action"] == "set" and "prevNode" not in er.json, er.json
    sr, er = same("PUT D/k?prevExist=true (update)", s, e, "PUT", f"/{ID1}", {"prevExist": "true"}, form={"value": c})
    assert er.status == 200 and er.json["action"] == "update" and er.json["node"]["createdIndex"] == e.at(1), er.json
    assert er.json["node"]["modifiedIndex"] == e.at(2) and er.json["prevNode"]["value"] == a, er.json
    same("GET D/k after the update", s, e, "GET", f"/{ID1}")
    same("GET D?recursive&sorted after the update", s, e, "GET", "", GET_DIR)
    sr, er = same("PUT D/other?prevExist=true (missing)", s, e, "PUT", f"/{ID2}", {"prevExist": "true"}, form={"value": a})
    assert er.status == 404, er.json
    same("PUT D/k?prevExist=false (exists)", s, e, "PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": a})
    # the raw form a shell's `curl -d value=...` sends (not percent-encoded)
    same("PUT D/k2?prevExist=false, raw form body", s, e, "PUT", f"/{ID2}", {"prevExist": "false"},
         raw=b"value=infra1=http://127.0.0.11:2380", content_type=FORM)
    # several peer URLs in one value
    same("PUT D/k3?prevExist=false, two peer URLs", s, e, "PUT", f"/{ID3}", {"prevExist": "false"},
         form={"value": "infra2=http://127.0.0.12:2380,infra2=http://[::1]:2380"})
    same_unordered("GET D with three keys", s, e, "GET", "")
    same("GET D?recursive&sorted with three keys", s, e, "GET", "", GET_DIR)
    # from history: k2's creation is the event at 3 on both (at 2, etcd has the update of
    # k, which srvd leaves out on purpose: see test_srvd_long_poll_...)
    same("GET D?recursive=true&wait=true&waitIndex=3", s, e, "GET", "", dir_wait(3))
    same("GET D?recursive=true&wait=true&waitIndex=4", s, e, "GET", "", dir_wait(4))

    sr, er = same("DELETE D/k", s, e, "DELETE", f"/{ID1}")
    assert er.status == 200 and er.json["action"] == "delete" and er.json["prevNode"]["value"] == c, er.json
    assert er.json["node"]["modifiedIndex"] == e.at(5) and er.json["node"]["createdIndex"] == e.at(1), er.json
    same("DELETE D/k again", s, e, "DELETE", f"/{ID1}")
    same("GET D/k after the delete", s, e, "GET", f"/{ID1}")
    same("PUT D/k?prevExist=true after the delete", s, e, "PUT", f"/{ID1}", {"prevExist": "true"}, form={"value": a})
    same("DELETE D/k2", s, e, "DELETE", f"/{ID2}")
    same("DELETE D/k3", s, e, "DELETE", f"/{ID3}")
    # every member gone: `nodes` left out again, the directory's indexes unchanged
    _, er = same("GET D, empty again", s, e, "GET", "", GET_DIR)
    assert "nodes" not in er.json["node"], er.json
    same("GET D, no query, empty again", s, e, "GET", "")
    same("GET D/_config/size at the end", s, e, "GET", "/_config/size")
    # a key made again after its deletion is a new node
    same("PUT D/k?prevExist=false after the delete", s, e, "PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": a})
    same("GET D, made again", s, e, "GET", "", GET_DIR)


def test_parity_unknown_token(parity_srvd, etcd):
    """A token srvd never made and a directory etcd does not have: 404/100 whose cause is
    the first missing component (etcd finding), D, for every path under it; index = header."""
    token = os.urandom(16).hex()
    s = Side("srvd", parity_srvd.admin_port, "", token)
    e = Side("etcd", etcd.client_port, "/v2/keys", token)
    for what, method, sub, query in [
        ("GET D/_config/size", "GET", "/_config/size", GET_PLAIN),
        ("GET D", "GET", "", GET_PLAIN),
        ("GET D?recursive&sorted", "GET", "", GET_DIR),
        ("GET D/id", "GET", f"/{ID1}", None),
        ("DELETE D/id", "DELETE", f"/{ID1}", None),
    ]:
        sr, er = s.call(method, sub, query), e.call(method, sub, query)
        for side, r in ((s, sr), (e, er)):
            etcd_error(r, 404, 100, cause=side.d, message="Key not found")
        # the indexes of the two stores cannot be related here: compare without them
        sv, ev = view(s, sr), view(e, er)
        for v in (sv, ev):
            v.pop("X-Etcd-Index")
            v["body"].pop("index")
        assert sv == ev, f"{what} under an unknown token: srvd {sr!r}, etcd {er!r}"

    # srvd differs on purpose: etcd would create the directory on a PUT and let a watch wait
    # for it; on srvd an unknown token is the same 404/100 for these too (there is nothing
    # to register with, and nothing will ever come)
    with nothing_changes(parity_srvd):
        etcd_error(s.call("PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": "infra0=http://127.0.0.10:2380"}),
                   404, 100, cause=s.d)
        etcd_error(s.call("PUT", f"/{ID1}", form={"value": "infra0=http://127.0.0.10:2380"}), 404, 100, cause=s.d)
        etcd_error(s.call("GET", "", {"recursive": "true", "wait": "true", "waitIndex": 1}), 404, 100, cause=s.d)
        etcd_error(s.call("GET", f"/{ID1}", {"wait": "true", "waitIndex": 1}), 404, 100, cause=s.d)


# --------------------------------------------------------------------------- srvd's deliberate differences


def test_srvd_refuses_writes_etcd_would_take(parity_srvd):
    """srvd differs from etcd on purpose here: a token's size is fixed when it is made (a
    PUT to _config would change the cluster under the members' feet), members are flat
    keys (a nested path is no member), D itself is not a key, and a value that is not
    `name=URL` pairs would make etcd's client fail later in a worse place. Refused with
    403/107 or 400/209, changing nothing."""
    t = new_token(parity_srvd, size=3)["token"]
    create(parity_srvd, t, ID1, "infra0=http://127.0.0.10:2380")
    value = {"value": "infra1=http://127.0.0.11:2380"}
    with nothing_changes(parity_srvd):
        for sub, query in [
            ("/_config/size", None),
            ("/_config/size", {"prevExist": "true"}),
            ("/_config/size", {"prevExist": "false"}),
            ("/_config/other", {"prevExist": "false"}),
            ("/_config", None),
            ("", None),
            ("", {"prevExist": "false"}),
            (f"/{ID2}/nested", {"prevExist": "false"}),
            (f"/{ID1}/nested", None),
            (f"/{ID2}/nested/deeper", None),
        ]:
            r = disc(parity_srvd, "PUT", t, sub, query, form={"value": "3" if "_config" in sub else value["value"]})
            etcd_error(r, 403, 107)
        etcd_error(disc(parity_srvd, "DELETE", t), 403, 107)
        r = disc(parity_srvd, "DELETE", t, "/_config/size")
        assert r.status in (403, 404), f"DELETE D/_config/size must not remove the size: {r!r}"
        etcd_error(r, r.status, r.json.get("errorCode"))

        for bad in [
            "", "infra1", "infra1=", "=http://127.0.0.11:2380", "infra1=127.0.0.11:2380",
            "infra1=ftp://127.0.0.11:2380", "infra1=http://", "infra1=http://:2380",
            "infra1=http://127.0.0.11:2380,", "infra1=http://127.0.0.11:2380,infra2",
            "infra1=http://127.0.0.11:notaport", "infra1 http://127.0.0.11:2380",
        ]:
            for query in ({"prevExist": "false"}, None):
                r = disc(parity_srvd, "PUT", t, f"/{ID2}", query, form={"value": bad})
                etcd_error(r, 400, 209, message="Invalid field")
        # no value field at all
        etcd_error(disc(parity_srvd, "PUT", t, f"/{ID2}", {"prevExist": "false"}, form={"other": "x"}), 400, 209)
        etcd_error(disc(parity_srvd, "PUT", t, f"/{ID2}", {"prevExist": "false"}, raw=b"", content_type=FORM), 400, 209)
        # an update to a bad value is refused too, and the key keeps its value
        etcd_error(disc(parity_srvd, "PUT", t, f"/{ID1}", {"prevExist": "true"}, form={"value": "nonsense"}), 400, 209)
        etcd_error(disc(parity_srvd, "PUT", t, f"/{ID1}", form={"value": "nonsense"}), 400, 209)
    assert disc(parity_srvd, "GET", t, f"/{ID1}").json["node"]["value"] == "infra0=http://127.0.0.10:2380"


def test_srvd_long_poll_counts_only_creations_and_ends_after_30s(parity_srvd):
    """srvd differs from etcd on purpose: etcd's client adds every watch event it gets as a
    member, without looking at `action`, so srvd's only events are creations of member
    keys (never _config, updates or deletions); and a long poll ends after about 30 s with
    an empty 200 (as discovery.etcd.io does after 60 s), upon which the client polls again
    with the same waitIndex. The one 30 s wait of this file."""
    srv_ = parity_srvd
    t = new_token(srv_, size=3)["token"]
    k1 = create(srv_, t, ID1, "infra0=http://127.0.0.10:2380")
    c1 = k1["createdIndex"]
    assert c1 >= 2, f"the first member's createdIndex must be at least 2 (waitIndex 0 means 'next'): {k1}"
    # from the size key's index: srvd differs from etcd on purpose, whose history holds the
    # _config/size set and answers with it (its client would take that for a member)
    size_index = disc(srv_, "GET", t, "/_config/size").json["node"]["createdIndex"]
    r = disc(srv_, "GET", t, "", {"recursive": "true", "wait": "true", "waitIndex": size_index})
    assert r.status == 200 and r.json == {"action": "create", "node": k1}, r
    d_wait = {"recursive": "true", "wait": "true", "waitIndex": c1 + 1}
    k_wait = {"recursive": "false", "wait": "true", "waitIndex": c1 + 1}
    long_dir = Pending(lambda: disc(srv_, "GET", t, "", d_wait, timeout=LONG_POLL_TIMEOUT))
    long_key = Pending(lambda: disc(srv_, "GET", t, f"/{ID1}", k_wait, timeout=LONG_POLL_TIMEOUT))

    # an update and a deletion are no events (they take indexes all the same, as on etcd)
    r = disc(srv_, "PUT", t, f"/{ID1}", {"prevExist": "true"}, form={"value": "infra0=http://127.0.0.10:2381"})
    assert r.status == 200 and r.json["action"] == "update", r
    assert r.json["node"]["modifiedIndex"] == c1 + 1 and r.json["node"]["createdIndex"] == c1, r.json
    r = disc(srv_, "DELETE", t, f"/{ID1}")
    assert r.status == 200 and r.json["action"] == "delete" and r.json["node"]["modifiedIndex"] == c1 + 2, r
    assert r.json["prevNode"]["value"] == "infra0=http://127.0.0.10:2381", r.json
    # another token's creation is no event for this one
    other = new_token(srv_, size=3)["token"]
    create(srv_, other, ID2, "infra5=http://127.0.0.15:2380")
    time.sleep(BLOCK_CHECK)
    assert not long_dir.done(), f"an update, a deletion or another token's key answered the wait: {long_dir.reply!r}"
    assert not long_key.done(), f"an update or a deletion answered the key's wait: {long_key.reply!r}"

    for what, p in (("recursive wait", long_dir), ("key wait", long_key)):
        r = p.result(LONG_POLL_TIMEOUT)
        assert r.status == 200 and r.body == b"", f"the {what} did not end with an empty 200: {r!r}"
        etcd_index(r)
        # not a timing assertion: an empty answer that came early would be a different bug
        assert p.elapsed >= LONG_POLL_END * 2 / 3, f"the {what} ended after {p.elapsed:.1f} s, not about 30 s"

    # the client's next poll, from the same waitIndex, from history: the history holds no
    # event for the update or the deletion, so it blocks until the next creation
    again = Pending(lambda: disc(srv_, "GET", t, "", d_wait, timeout=REQUEST_TIMEOUT))
    time.sleep(BLOCK_CHECK)
    assert not again.done(), f"the poll after the empty 200 answered with nothing new: {again.reply!r}"
    k2 = create(srv_, t, ID3, "infra1=http://127.0.0.11:2380")
    r = again.result()
    assert r.status == 200 and r.json == {"action": "create", "node": k2}, r
    # and from history: the same event, at once, skipping the update and the deletion
    r = disc(srv_, "GET", t, "", d_wait)
    assert r.status == 200 and r.json == {"action": "create", "node": k2}, r


# =========================================================================== 2. srvd alone: tokens


@pytest.fixture(scope="module")
def shared_srvd(tmp_path_factory):
    """One srvd for the tests whose requests must all be refused."""
    server = SrvdServer(tmp_path_factory.mktemp("discovery-refusals"))
    try:
        server.start()
        t = new_token(server, size=3, zone=ZONE_ARG)
        create(server, t["token"], ID1, "infra3=http://127.0.0.13:2380")
        yield server
    finally:
        server.stop()


POST_ERRORS = [
    # (id, request kwargs, status, field)
    ("size-missing", {"body": {}}, 400, "size"),
    ("size-zero", {"body": {"size": 0}}, 400, "size"),
    ("size-negative", {"body": {"size": -1}}, 400, "size"),
    ("size-101", {"body": {"size": 101}}, 400, "size"),
    ("size-string", {"body": {"size": "3"}}, 400, "size"),
    ("size-fraction", {"body": {"size": 2.5}}, 400, "size"),
    ("size-bool", {"body": {"size": True}}, 400, "size"),
    ("size-null", {"body": {"size": None}}, 400, "size"),
    ("size-huge", {"raw": b'{"size": 100000000000000000000000}'}, 400, "size"),
    ("unknown-field", {"body": {"size": 3, "members": 3}}, 400, "any"),
    ("unknown-field-typo", {"body": {"size": 3, "client_port": 2379}}, 400, "any"),
    ("zone-unknown", {"body": {"size": 3, "zone": "nope.example"}}, 404, "zone"),
    ("zone-unknown-dot", {"body": {"size": 3, "zone": "nope.example."}}, 404, "zone"),
    ("zone-number", {"body": {"size": 3, "zone": 5}}, 400, "zone"),
    ("service-two-labels", {"body": {"size": 3, "zone": ZONE_ARG, "service": "a.b"}}, 400, "service"),
    ("service-number", {"body": {"size": 3, "zone": ZONE_ARG, "service": 7}}, 400, "service"),
    ("tls-string", {"body": {"size": 3, "zone": ZONE_ARG, "tls": "yes"}}, 400, "tls"),
    ("clientPort-zero", {"body": {"size": 3, "zone": ZONE_ARG, "clientPort": 0}}, 400, "clientPort"),
    ("clientPort-65536", {"body": {"size": 3, "zone": ZONE_ARG, "clientPort": 65536}}, 400, "clientPort"),
    ("clientPort-string", {"body": {"size": 3, "zone": ZONE_ARG, "clientPort": "2379"}}, 400, "clientPort"),
    ("malformed-json", {"raw": b'{"size": '}, 400, "absent"),
    ("not-an-object", {"raw": b"[3]"}, 400, "absent"),
    ("empty-body", {"raw": b""}, 400, "absent"),
]


@pytest.mark.parametrize("kwargs,status,field", [pytest.param(k, s, f, id=i) for i, k, s, f in POST_ERRORS])
def test_post_discovery_refuses_bad_requests(shared_srvd, kwargs, status, field):
    with nothing_changes(shared_srvd):
        admin_error(shared_srvd.request("POST", "/v1/discovery", **kwargs), status, field)


def test_admin_discovery_routes_need_the_bearer_token(shared_srvd):
    token = shared_srvd.ok(shared_srvd.get("/v1/discovery"), 200)["tokens"][0]["token"]
    with nothing_changes(shared_srvd):
        for header in (None, "Bearer 0000", f"Bearer {shared_srvd.token}x", f"Basic {shared_srvd.token}"):
            kw = {"auth": False} if header is None else {"authorization": header}
            admin_error(shared_srvd.request("POST", "/v1/discovery", body={"size": 3}, **kw), 401, "any")
            admin_error(shared_srvd.request("GET", "/v1/discovery", **kw), 401, "any")
            admin_error(shared_srvd.request("GET", f"/v1/discovery/{token}", **kw), 401, "any")
            admin_error(shared_srvd.request("DELETE", f"/v1/discovery/{token}", **kw), 401, "any")
            r = shared_srvd.request("GET", "/new", **kw)
            assert r.status == 401, f"/new without the bearer token (no --discovery-open): {r!r}"


def test_unknown_token_in_the_admin_api(shared_srvd):
    with nothing_changes(shared_srvd):
        admin_error(shared_srvd.get(f"/v1/discovery/{UNKNOWN_TOKEN}"), 404, "any")
        admin_error(shared_srvd.delete(f"/v1/discovery/{UNKNOWN_TOKEN}"), 404, "any")


def test_token_sizes_at_the_bounds(srvd):
    for size in (1, 100):
        body = new_token(srvd, size=size)
        r = disc(srvd, "GET", body["token"], "/_config/size")
        assert r.status == 200 and r.json["node"]["value"] == str(size), r


def test_token_body_show_and_list(srvd):
    before = time.time()
    r = srvd.request("POST", "/v1/discovery", body={"size": 3})
    assert r.status == 201, r
    assert media_type(r) == "application/json", r.headers
    plain = r.json
    token = plain["token"]
    assert TOKEN_RE.fullmatch(token), plain
    assert plain["url"] == f"http://{HOST}:{srvd.admin_port}/discovery/{token}", plain
    assert plain["size"] == 3 and plain["members"] == [] and plain["overSize"] == [], plain
    assert "zone" not in plain, f"a token without a zone has no zone: {plain}"
    assert abs(rfc3339(plain["created"]) - before) < 5, plain
    size_node = disc(srvd, "GET", token, "/_config/size").json["node"]
    assert plain["index"] == size_node["createdIndex"] == size_node["modifiedIndex"] >= 1, (plain, size_node)
    assert token_body(srvd, token) == plain

    zoned = new_token(srvd, size=5, zone=ZONE_ARG, service="blue", tls=True, clientPort=2479)
    assert zoned["zone"] == ZONE and zoned["service"] == "blue" and zoned["tls"] is True and zoned["clientPort"] == 2479, zoned
    assert zoned["size"] == 5 and zoned["index"] == plain["index"] + 1, zoned
    default = new_token(srvd, size=3, zone="lab.example.")
    assert default["zone"] == ZONE, default
    assert len({plain["token"], zoned["token"], default["token"]}) == 3

    listing = srvd.ok(srvd.get("/v1/discovery"), 200)
    assert set(listing) == {"tokens"}, listing
    by_token = {t["token"]: t for t in listing["tokens"]}
    assert set(by_token) == {plain["token"], zoned["token"], default["token"]}, listing
    for t, body in by_token.items():
        assert body == token_body(srvd, t), (body, token_body(srvd, t))
    # `index` is the current etcd index, in every body alike
    assert {b["index"] for b in by_token.values()} == {current_index(srvd)}, listing

    # the URL's host is the one the client asked for (Host header)
    r = srvd.request("POST", "/v1/discovery", body={"size": 3}, headers={"Host": "127.0.0.5:8053"})
    assert r.status == 201 and r.json["url"] == f"http://127.0.0.5:8053/discovery/{r.json['token']}", r

    # the contract's token body carries clientPort, 2379 unless given
    assert default.get("clientPort") == 2379, f"the body's clientPort defaults to 2379: {default}"


def test_delete_token(srvd):
    t = new_token(srvd, size=3)["token"]
    other = new_token(srvd, size=3)["token"]
    create(srvd, t, ID1, "infra0=http://127.0.0.10:2380")
    create(srvd, other, ID1, "infra9=http://127.0.0.19:2380")
    index = current_index(srvd)
    r = srvd.delete(f"/v1/discovery/{t}")
    assert r.status == 204 and r.body == b"", r
    d = dpath(t)
    for method, sub, kw in [
        ("GET", "/_config/size", {}),
        ("GET", "", {"query": GET_DIR}),
        ("GET", "", {}),
        ("GET", f"/{ID1}", {}),
        ("GET", f"/{ID1}", {"query": {"wait": "true", "waitIndex": 1}}),
        ("GET", "", {"query": {"recursive": "true", "wait": "true", "waitIndex": 1}}),
        ("PUT", f"/{ID2}", {"query": {"prevExist": "false"}, "form": {"value": "infra1=http://127.0.0.11:2380"}}),
        ("PUT", f"/{ID1}", {"query": {"prevExist": "true"}, "form": {"value": "infra1=http://127.0.0.11:2380"}}),
        ("DELETE", f"/{ID1}", {}),
    ]:
        # (the exact cause, D, is checked against etcd in test_parity_unknown_token)
        body = etcd_error(disc(srvd, method, t, sub, **kw), 404, 100)
        assert body["cause"].startswith(d), body
    admin_error(srvd.get(f"/v1/discovery/{t}"), 404, "any")
    admin_error(srvd.delete(f"/v1/discovery/{t}"), 404, "any")
    assert [x["token"] for x in srvd.ok(srvd.get("/v1/discovery"), 200)["tokens"]] == [other]
    # the other token is untouched, and the index never goes back
    assert disc(srvd, "GET", other, f"/{ID1}").json["node"]["value"] == "infra9=http://127.0.0.19:2380"
    assert current_index(srvd) >= index


# --------------------------------------------------------------------------- /new


NEW_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/discovery/([0-9a-f]{32})")


def check_new(reply: Reply, base: str) -> str:
    """A /new answer: 200 text/plain, the URL and nothing else; returns the token."""
    assert reply.status == 200, reply
    assert media_type(reply) == "text/plain", f"/new must answer text/plain: {reply.headers}"
    text = reply.body.decode()
    assert text == text.strip(), f"/new's body has surrounding whitespace (a newline?): {reply.body!r}"
    m = re.fullmatch(re.escape(base) + r"/discovery/([0-9a-f]{32})", text)
    assert m, f"/new's body is not {base}/discovery/<32 hex>: {text!r}"
    return m.group(1)


def test_new_needs_the_bearer_token_and_hands_out_urls(srvd):
    with nothing_changes(srvd):
        r = srvd.request("GET", "/new?size=3", auth=False)
        assert r.status == 401, f"/new without a bearer token: {r!r}"
        r = srvd.request("GET", "/new", authorization="Bearer nope")
        assert r.status == 401, r

    base = f"http://{HOST}:{srvd.admin_port}"
    token = check_new(srvd.get("/new"), base)
    assert token_body(srvd, token)["size"] == 3, "size defaults to 3"
    r = srvd.get("/new?size=5")
    check_new(r, base)
    # the URL works as etcd uses it: scheme://host:port, then D verbatim
    parts = urllib.parse.urlsplit(r.body.decode())
    assert (parts.scheme, parts.hostname, parts.port) == ("http", HOST, srvd.admin_port), parts
    r = v2_request(parts.port, "GET", parts.path + "/_config/size", GET_PLAIN)
    assert r.status == 200, r
    assert (r.json["node"]["key"], r.json["node"]["value"]) == (parts.path + "/_config/size", "5"), r.json
    token1 = check_new(srvd.get("/new?size=1"), base)
    assert token_body(srvd, token1)["size"] == 1
    # the Host the client asked for
    r = srvd.get("/new", headers={"Host": "127.0.0.5:8053"})
    check_new(r, "http://127.0.0.5:8053")
    # no Host header at all: the admin listener
    with socket.create_connection((HOST, srvd.admin_port), timeout=REQUEST_TIMEOUT) as conn:
        conn.sendall(f"GET /new HTTP/1.1\r\nAuthorization: Bearer {srvd.token}\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    assert re.fullmatch(rf"http://127\.0\.0\.1:{srvd.admin_port}/discovery/[0-9a-f]{{32}}", payload.decode()), raw

    with nothing_changes(srvd):
        for bad in ("0", "101", "-1", "abc", "", "2.5", "3x"):
            r = srvd.get(f"/new?size={bad}")
            assert r.status == 400, f"/new?size={bad}: {r!r}"
            assert media_type(r) == "text/plain", f"/new's errors are plain text, as discovery.etcd.io's: {r.headers}"
            assert r.body.strip(), r


def test_discovery_open_and_url_base(tmp_path):
    server = SrvdServer(tmp_path / "srvd", extra_args=["--discovery-open", "--discovery-url-base", "http://disc.example:8053"])
    try:
        server.start()
        r = server.request("GET", "/new?size=3", auth=False)
        token = check_new(r, "http://disc.example:8053")
        # also over the Host header the client sent
        token2 = check_new(server.request("GET", "/new", auth=False, headers={"Host": "127.0.0.5:9"}), "http://disc.example:8053")
        assert token != token2
        r = disc(server, "GET", token, "/_config/size")
        assert r.status == 200 and r.json["node"]["value"] == "3", r
        body = new_token(server, size=3)
        assert body["url"] == f"http://disc.example:8053/discovery/{body['token']}", body
        assert token_body(server, token)["url"] == f"http://disc.example:8053/discovery/{token}"
        # --discovery-open opens /new only, not the admin API
        with nothing_changes(server):
            admin_error(server.request("POST", "/v1/discovery", body={"size": 3}, auth=False), 401, "any")
            admin_error(server.request("GET", "/v1/discovery", auth=False), 401, "any")
            r = server.request("GET", "/new?size=0", auth=False)
            assert r.status == 400 and media_type(r) == "text/plain", r
    finally:
        server.stop()


# --------------------------------------------------------------------------- indexes and durability


def test_index_grows_and_survives_a_restart(srvd):
    seen: list[int] = []

    def note(reply: Reply) -> Reply:
        seen.append(etcd_index(reply))
        return reply

    t1 = new_token(srvd, size=3)
    i1 = t1["index"]
    assert i1 >= 1
    note(disc(srvd, "GET", t1["token"], "/_config/size"))
    n1 = create(srvd, t1["token"], ID1, "infra0=http://127.0.0.10:2380")
    assert n1["createdIndex"] == n1["modifiedIndex"] == i1 + 1, n1
    note(disc(srvd, "GET", t1["token"], ""))
    t2 = new_token(srvd, size=3)
    assert t2["index"] == i1 + 2, "indexes are global over the tokens"
    n2 = create(srvd, t2["token"], ID1, "infra1=http://127.0.0.11:2380")
    assert n2["createdIndex"] == i1 + 3, n2
    note(disc(srvd, "GET", t1["token"], ""))
    assert seen == [i1, i1 + 1, i1 + 3], seen

    # a long poll open at shutdown does not hold srvd up: SIGTERM ends it (within the
    # launcher's 10 s grace, else srvd would be killed and stop() say -9)
    watch = Pending(lambda: disc(srvd, "GET", t1["token"], "", {"recursive": "true", "wait": "true"}, timeout=LONG_POLL_TIMEOUT))
    time.sleep(BLOCK_CHECK / 4)
    assert not watch.done(), watch.reply
    assert srvd.stop() == 0, f"srvd did not exit cleanly on SIGTERM with a long poll open:\n{srvd.log_tail()}"
    watch.thread.join(REQUEST_TIMEOUT)
    assert watch.done(), "the long poll outlived srvd"
    srvd.start()
    r = note(disc(srvd, "GET", t1["token"], "", GET_DIR))
    assert seen[-1] == i1 + 3, f"X-Etcd-Index went from {i1 + 3} to {seen[-1]} across a restart"
    assert r.json["node"]["nodes"] == [n1], r.json
    t3 = new_token(srvd, size=3)
    assert t3["index"] == i1 + 4, f"the first index after a restart is {t3['index']}, not {i1 + 4}"
    n3 = create(srvd, t1["token"], ID2, "infra2=http://127.0.0.12:2380")
    assert n3["createdIndex"] == i1 + 5, n3
    srvd.restart()
    assert current_index(srvd) == i1 + 5
    assert seen == sorted(seen)


def test_tokens_and_keys_survive_kill_9(srvd):
    t = new_token(srvd, size=2, zone=ZONE_ARG)["token"]
    plain = new_token(srvd, size=3)["token"]
    create(srvd, t, ID1, "infra3=http://127.0.0.13:2380")
    create(srvd, t, ID2, "infra4=http://127.0.0.14:2380")
    create(srvd, t, ID3, "infra5=http://127.0.0.15:2380")  # over size
    create(srvd, plain, ID1, "infra0=http://127.0.0.10:2380")
    r = disc(srvd, "PUT", plain, f"/{ID1}", {"prevExist": "true"}, form={"value": "infra0=http://127.0.0.10:2381"})
    assert r.status == 200, r
    r = disc(srvd, "DELETE", t, f"/{ID3}")
    assert r.status == 200, r
    create(srvd, t, ID4, "infra6=http://127.0.0.16:2380")  # over size again

    before = without_urls(discovery_state(srvd))
    waits = [disc(srvd, "GET", x, "", {"recursive": "true", "wait": "true", "waitIndex": 1}).body for x in (t, plain)]
    dns_before = srv(srvd, "_etcd-server._tcp.lab.example.")
    srvd.kill()
    srvd.start()
    after = discovery_state(srvd)
    assert without_urls(after) == before, "tokens, keys or the index changed across kill -9"
    # the URL follows the port srvd listens on now (port 0 again: another one)
    assert {x["url"] for x in after[0]} == {f"http://{HOST}:{srvd.admin_port}/discovery/{x}" for x in (t, plain)}
    assert [disc(srvd, "GET", x, "", {"recursive": "true", "wait": "true", "waitIndex": 1}).body for x in (t, plain)] == waits, \
        "the watch history changed across kill -9"
    assert srv(srvd, "_etcd-server._tcp.lab.example.") == dns_before
    assert a_records(srvd, "infra4.lab.example.") == {"127.0.0.14"}
    # and it goes on from there
    n = create(srvd, plain, ID2, "infra1=http://127.0.0.11:2380")
    assert n["createdIndex"] == before[2] + 1, n


# --------------------------------------------------------------------------- publishing in a zone


def member_entry(body: dict, key_id: str) -> dict:
    for m in body["members"] + body["overSize"]:
        if m["id"] == key_id:
            return m
    raise AssertionError(f"{key_id} is neither in members nor in overSize: {body}")


def test_admitted_members_are_published_in_the_zone(srvd):
    t = new_token(srvd, size=3, zone=ZONE_ARG)
    token = t["token"]
    server_owner, client_owner = "_etcd-server._tcp.lab.example.", "_etcd-client._tcp.lab.example."
    # The shipped zone has infra0..2 as file data (a member never takes over zone-file
    # data), so the discovered cluster here is infra3..5, next to them.
    n3 = create(srvd, token, ID1, "infra3=http://127.0.0.13:2380")
    assert srv(srvd, server_owner) == FILE_SERVER_SRV | {"0 0 2380 infra3.lab.example."}, "published by the PUT itself"
    n4 = create(srvd, token, ID2, "infra4=http://127.0.0.14:2380,infra4=http://[::1]:2380")
    n5 = create(srvd, token, ID3, "infra5=http://127.0.0.15:2390")

    assert srv(srvd, server_owner) == FILE_SERVER_SRV | {
        "0 0 2380 infra3.lab.example.", "0 0 2380 infra4.lab.example.", "0 0 2390 infra5.lab.example."}
    assert srv(srvd, client_owner) == FILE_CLIENT_SRV | {f"0 0 2379 infra{i}.lab.example." for i in (3, 4, 5)}
    assert a_records(srvd, "infra3.lab.example.") == {"127.0.0.13"}
    assert a_records(srvd, "infra4.lab.example.") == {"127.0.0.14"}
    assert a_records(srvd, "infra4.lab.example.", "AAAA") == {"::1"}
    assert a_records(srvd, "infra5.lab.example.") == {"127.0.0.15"}
    lines = dig(srvd.port, server_owner, "SRV").splitlines()
    assert len(lines) == 6 and "0 0 2390 infra5.lab.example." in lines, lines

    body = token_body(srvd, token)
    assert body["overSize"] == [], body
    assert [m["id"] for m in body["members"]] == [ID1, ID2, ID3], body
    for m, node, name, urls in [
        (body["members"][0], n3, "infra3", ["http://127.0.0.13:2380"]),
        (body["members"][1], n4, "infra4", ["http://127.0.0.14:2380", "http://[::1]:2380"]),
        (body["members"][2], n5, "infra5", ["http://127.0.0.15:2390"]),
    ]:
        assert m["name"] == name and m["peerURLs"] == urls and m["createdIndex"] == node["createdIndex"], m
        assert m["published"] == f"{name}.lab.example." and "error" not in m, m
    members = {m["name"] for m in srvd.members()["members"]}
    assert {"infra3", "infra4", "infra5"} <= members, members

    # a fourth key is over size: stored, listed in overSize, not published
    with unchanged(srvd):
        n6 = create(srvd, token, ID4, "infra6=http://127.0.0.16:2380")
    body = token_body(srvd, token)
    assert [m["id"] for m in body["members"]] == [ID1, ID2, ID3], body
    assert [m["id"] for m in body["overSize"]] == [ID4], body
    assert body["overSize"][0]["name"] == "infra6" and "published" not in body["overSize"][0], body
    assert srvd.query("infra6.lab.example.", "A").rcode() == dns.rcode.NXDOMAIN

    # deleting an admitted key removes its member and admits the next one, in one change
    serial = srvd.soa_serial()
    r = disc(srvd, "DELETE", token, f"/{ID2}")
    assert r.status == 200 and r.json["prevNode"] == n4, r
    assert srvd.soa_serial() > serial
    assert srv(srvd, server_owner) == FILE_SERVER_SRV | {
        "0 0 2380 infra3.lab.example.", "0 0 2390 infra5.lab.example.", "0 0 2380 infra6.lab.example."}
    assert srv(srvd, client_owner) == FILE_CLIENT_SRV | {f"0 0 2379 infra{i}.lab.example." for i in (3, 5, 6)}
    assert srvd.query("infra4.lab.example.", "A").rcode() == dns.rcode.NXDOMAIN
    assert a_records(srvd, "infra6.lab.example.") == {"127.0.0.16"}
    body = token_body(srvd, token)
    assert [m["id"] for m in body["members"]] == [ID1, ID3, ID4] and body["overSize"] == [], body
    assert member_entry(body, ID4)["published"] == "infra6.lab.example.", body
    assert member_entry(body, ID4)["createdIndex"] == n6["createdIndex"]
    names = {m["name"] for m in srvd.members()["members"]}
    assert "infra4" not in names and {"infra3", "infra5", "infra6"} <= names, names

    # an admitted key whose value changes (an update keeps its createdIndex, so it stays
    # admitted) publishes its member from the new value: renamed, new address and port
    r = disc(srvd, "PUT", token, f"/{ID3}", {"prevExist": "true"}, form={"value": "infra9=http://127.0.0.19:2391"})
    assert r.status == 200 and r.json["node"]["createdIndex"] == n5["createdIndex"], r
    assert srv(srvd, server_owner) == FILE_SERVER_SRV | {
        "0 0 2380 infra3.lab.example.", "0 0 2391 infra9.lab.example.", "0 0 2380 infra6.lab.example."}
    assert srv(srvd, client_owner) == FILE_CLIENT_SRV | {f"0 0 2379 infra{i}.lab.example." for i in (3, 9, 6)}
    assert srvd.query("infra5.lab.example.", "A").rcode() == dns.rcode.NXDOMAIN, "the old member was left behind"
    assert a_records(srvd, "infra9.lab.example.") == {"127.0.0.19"}
    m = member_entry(token_body(srvd, token), ID3)
    assert (m["name"], m["peerURLs"], m.get("published")) == ("infra9", ["http://127.0.0.19:2391"], "infra9.lab.example."), m
    names = {m["name"] for m in srvd.members()["members"]}
    assert "infra5" not in names and {"infra3", "infra9", "infra6"} <= names, names

    # deleting the token leaves the members it published: they go through the members API
    assert srvd.delete(f"/v1/discovery/{token}").status == 204
    assert srv(srvd, server_owner) == FILE_SERVER_SRV | {
        "0 0 2380 infra3.lab.example.", "0 0 2391 infra9.lab.example.", "0 0 2380 infra6.lab.example."}
    for name in ("infra3", "infra9", "infra6"):
        assert srvd.delete(f"/v1/zones/lab.example/members/{name}").status == 204
    assert srv(srvd, server_owner) == FILE_SERVER_SRV


def test_racing_members(srvd):
    """Members start at once: of several creates of one key exactly one wins (the others
    are 412/105, as a duplicate id); of more keys than the size, the first `size` by
    createdIndex are admitted and published, the rest are over size, whatever order the
    answers came in."""
    token = new_token(srvd, size=3, zone=ZONE_ARG)["token"]
    barrier = threading.Barrier(6)

    def put(key: str, value: str) -> Callable[[], Reply]:
        def go() -> Reply:
            barrier.wait(REQUEST_TIMEOUT)
            return disc(srvd, "PUT", token, f"/{key}", {"prevExist": "false"}, form={"value": value})
        return go

    same_key = [Pending(put(ID1, f"infra3=http://127.0.0.13:{2380 + i}")) for i in range(6)]
    replies = [p.result() for p in same_key]
    assert sorted(r.status for r in replies) == [201] + [412] * 5, replies
    for r in replies:
        if r.status == 412:
            etcd_error(r, 412, 105, cause=f"{dpath(token)}/{ID1}")
    winner = next(r for r in replies if r.status == 201).json["node"]
    assert disc(srvd, "GET", token, f"/{ID1}").json["node"] == winner

    barrier.reset()
    keys = {ID2: 4, ID3: 5, ID4: 6, ID5: 7, ID6: 8}
    racers = [Pending(put(k, f"infra{n}=http://127.0.0.1{n}:2380")) for k, n in keys.items()]
    barrier.wait(REQUEST_TIMEOUT)  # the sixth party
    nodes = {}
    for p in racers:
        r = p.result()
        assert r.status == 201, r
        nodes[r.json["node"]["key"].rsplit("/", 1)[1]] = r.json["node"]
    order = [ID1] + sorted(nodes, key=lambda k: nodes[k]["createdIndex"])
    indexes = [winner["createdIndex"]] + sorted(n["createdIndex"] for n in nodes.values())
    assert indexes == list(range(indexes[0], indexes[0] + 6)), f"createdIndexes not one each: {indexes}"
    body = token_body(srvd, token)
    assert [m["id"] for m in body["members"]] == order[:3], (order, body)
    assert [m["id"] for m in body["overSize"]] == order[3:], (order, body)
    name = {ID1: "infra3", **{k: f"infra{n}" for k, n in keys.items()}}
    published = {f"0 0 {winner['value'].rsplit(':', 1)[1] if k == ID1 else 2380} {name[k]}.lab.example." for k in order[:3]}
    assert srv(srvd, "_etcd-server._tcp.lab.example.") == FILE_SERVER_SRV | published
    for k in order[3:]:
        assert srvd.query(f"{name[k]}.lab.example.", "A").rcode() == dns.rcode.NXDOMAIN, k


def test_members_that_cannot_be_published_are_stored_with_an_error(srvd):
    token = new_token(srvd, size=3, zone=ZONE_ARG)["token"]
    with unchanged(srvd):
        # not a host name label
        bad = create(srvd, token, ID1, "infra_0=http://127.0.0.30:2380")
        # a name the zone file has data at (a member never takes over zone-file data)
        clash = create(srvd, token, ID2, "infra0=http://127.0.0.31:2380")
    assert a_records(srvd, "infra0.lab.example.") == {"127.0.0.10"}
    body = token_body(srvd, token)
    for key_id, node in ((ID1, bad), (ID2, clash)):
        m = member_entry(body, key_id)
        assert "published" not in m, m
        assert isinstance(m.get("error"), str) and m["error"].strip(), f"no error for a member not published: {m}"
        assert m["createdIndex"] == node["createdIndex"], m
    # both stay keys as etcd sees them: in the directory, and among the first `size`, so the
    # third member is admitted and published, a fourth is over size
    r = disc(srvd, "GET", token, "", GET_DIR)
    assert {n["key"] for n in r.json["node"]["nodes"]} == {f"{dpath(token)}/{ID1}", f"{dpath(token)}/{ID2}"}, r.json
    assert [m["id"] for m in body["members"]] == [ID1, ID2], body
    create(srvd, token, ID3, "infra3=http://127.0.0.13:2380")
    with unchanged(srvd):
        create(srvd, token, ID4, "infra4=http://127.0.0.14:2380")
    body = token_body(srvd, token)
    assert [m["id"] for m in body["members"]] == [ID1, ID2, ID3] and [m["id"] for m in body["overSize"]] == [ID4], body
    assert member_entry(body, ID3)["published"] == "infra3.lab.example."
    assert "0 0 2380 infra3.lab.example." in srv(srvd, "_etcd-server._tcp.lab.example.")
    assert srvd.query("infra4.lab.example.", "A").rcode() == dns.rcode.NXDOMAIN
    # deleting the unpublishable one admits the fourth
    r = disc(srvd, "DELETE", token, f"/{ID1}")
    assert r.status == 200, r
    assert a_records(srvd, "infra4.lab.example.") == {"127.0.0.14"}
    assert member_entry(token_body(srvd, token), ID4)["published"] == "infra4.lab.example."


def test_host_names_the_zone_has_become_the_target_and_tls_service_client_port(tmp_path):
    server = SrvdServer(tmp_path / "srvd")
    server.write_zone("lab.example.zone", SHIPPED_ZONE.read_text() + "node1   IN A    127.0.0.21\n")
    try:
        server.start()
        assert a_records(server, "node1.lab.example.") == {"127.0.0.21"}
        token = new_token(server, size=2, zone=ZONE_ARG)["token"]
        create(server, token, ID1, "node1=http://node1.lab.example:2380")
        assert "0 0 2380 node1.lab.example." in srv(server, "_etcd-server._tcp.lab.example.")
        assert "0 0 2379 node1.lab.example." in srv(server, "_etcd-client._tcp.lab.example.")
        assert a_records(server, "node1.lab.example.") == {"127.0.0.21"}, "the zone file's A record stays"
        m = member_entry(token_body(server, token), ID1)
        assert m["name"] == "node1" and m["peerURLs"] == ["http://node1.lab.example:2380"], m
        assert m.get("published", "").endswith("lab.example.") and "error" not in m, m

        # https peer URLs publish under -ssl (tls from the scheme), with the service and the
        # token's client port
        green = new_token(server, size=1, zone=ZONE_ARG, service="green", clientPort=2479)["token"]
        create(server, green, ID2, "infra7=https://127.0.0.17:2380")
        assert srv(server, "_etcd-server-ssl-green._tcp.lab.example.") == {"0 0 2380 infra7.lab.example."}
        assert srv(server, "_etcd-client-ssl-green._tcp.lab.example.") == {"0 0 2479 infra7.lab.example."}
        assert a_records(server, "infra7.lab.example.") == {"127.0.0.17"}
        assert "0 0 2380 infra7.lab.example." not in srv(server, "_etcd-server._tcp.lab.example.")
        # tls given explicitly wins over the scheme
        plain = new_token(server, size=1, zone=ZONE_ARG, service="plain", tls=False)["token"]
        create(server, plain, ID3, "infra8=https://127.0.0.18:2380")
        assert srv(server, "_etcd-server-plain._tcp.lab.example.") == {"0 0 2380 infra8.lab.example."}
        assert server.query("_etcd-server-ssl-plain._tcp.lab.example.", "SRV").rcode() == dns.rcode.NXDOMAIN
    finally:
        server.stop()


# =========================================================================== 3. srvctl


def srvctl_ok(server: SrvdServer, *args: str) -> subprocess.CompletedProcess:
    r = run_srvctl("discovery", *args, *server.srvctl_api_args())
    assert r.returncode == 0, f"srvctl discovery {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def test_srvctl_discovery_new_list_show_delete(srvd):
    r = srvctl_ok(srvd, "new", "--size", "3")
    lines = r.stdout.splitlines()
    assert len(lines) == 1, f"new prints one line: {r.stdout!r}"
    m = NEW_URL.fullmatch(lines[0].strip())
    assert m and int(m.group(1)) == srvd.admin_port, lines
    plain = m.group(2)
    assert token_body(srvd, plain)["size"] == 3

    r = srvctl_ok(srvd, "new", "--size", "2", "--zone", ZONE_ARG, "--service", "blue", "--tls", "--client-port", "2479")
    zoned = NEW_URL.fullmatch(r.stdout.strip()).group(2)
    body = token_body(srvd, zoned)
    assert (body["size"], body["zone"], body["service"], body["tls"], body["clientPort"]) == (2, ZONE, "blue", True, 2479), body
    create(srvd, zoned, ID1, "infra3=https://127.0.0.13:2380")
    create(srvd, zoned, ID2, "infra4=https://127.0.0.14:2380")
    create(srvd, zoned, ID3, "infra5=https://127.0.0.15:2380")  # over size

    r = srvctl_ok(srvd, "list")
    lines = [line.split() for line in r.stdout.splitlines() if line.strip()]
    header = lines[0]
    columns = ["TOKEN", "SIZE", "MEMBERS", "ZONE", "CREATED"]
    assert [c for c in header if c in columns] == columns, f"list's columns are not {columns}:\n{r.stdout}"
    col = {c: header.index(c) for c in columns}
    rows = {row[0]: row for row in lines[1:] if TOKEN_RE.fullmatch(row[0])}
    assert set(rows) == {plain, zoned}, r.stdout
    assert all(len(row) == len(header) for row in rows.values()), f"a row does not fill the columns:\n{r.stdout}"
    assert rows[plain][col["SIZE"]] == "3" and rows[zoned][col["SIZE"]] == "2", r.stdout
    assert rows[plain][col["MEMBERS"]] == "0" and rows[zoned][col["MEMBERS"]] == "2", r.stdout
    assert rows[zoned][col["ZONE"]].rstrip(".") == ZONE_ARG and ZONE_ARG not in rows[plain][col["ZONE"]], r.stdout
    assert rows[plain][col["CREATED"]] == token_body(srvd, plain)["created"], r.stdout

    r = srvctl_ok(srvd, "show", zoned)
    for text in (zoned, body["url"], "infra3", "infra4", "infra5", ID1, ID3, "infra3.lab.example"):
        assert text in r.stdout, f"show lacks {text!r}:\n{r.stdout}"

    r = srvctl_ok(srvd, "list", "--json")
    assert {t["token"] for t in json.loads(r.stdout)["tokens"]} == {plain, zoned}
    r = srvctl_ok(srvd, "show", zoned, "--json")
    assert json.loads(r.stdout) == token_body(srvd, zoned)

    srvctl_ok(srvd, "delete", plain)
    admin_error(srvd.get(f"/v1/discovery/{plain}"), 404, "any")
    # the zone's members stay after delete
    srvctl_ok(srvd, "delete", zoned)
    assert "0 0 2380 infra3.lab.example." in srv(srvd, "_etcd-server-ssl-blue._tcp.lab.example.")
    assert json.loads(srvctl_ok(srvd, "list", "--json").stdout) == {"tokens": []}


def test_srvctl_discovery_errors_carry_the_server_message(srvd):
    message = srvd.get(f"/v1/discovery/{UNKNOWN_TOKEN}").json["error"]
    with nothing_changes(srvd):
        for args in (("show", UNKNOWN_TOKEN), ("delete", UNKNOWN_TOKEN)):
            r = run_srvctl("discovery", *args, *srvd.srvctl_api_args())
            assert r.returncode != 0, f"srvctl discovery {args} succeeded: {r.stdout}"
            assert message in r.stderr, f"stderr lacks srvd's message {message!r}:\n{r.stderr}"
        zone_message = srvd.request("POST", "/v1/discovery", body={"size": 3, "zone": "nope.example"}).json["error"]
        r = run_srvctl("discovery", "new", "--size", "3", "--zone", "nope.example", *srvd.srvctl_api_args())
        assert r.returncode != 0 and zone_message in r.stderr, f"{r.returncode}\n{r.stdout}\n{r.stderr}"
        r = run_srvctl("discovery", "new", "--size", "0", *srvd.srvctl_api_args())
        assert r.returncode != 0 and "size" in r.stderr, f"{r.returncode}\n{r.stdout}\n{r.stderr}"


# =========================================================================== 1b. parity where the contract said nothing
# Last in the file, so that a run stopping at the first failure (-x) has been through
# everything the contract does spell out. Each follows etcd, the reference.


def test_difference_a_replacing_set_keeps_the_keys_place(parity_srvd, etcd):
    """srvd differs on purpose (README, "etcd's discovery service"): a plain PUT that
    replaces a key keeps its createdIndex, where etcd gives the new node a new one. srvd
    admits members by createdIndex, and rewriting a member's value must not move it behind
    the others and out of the cluster. etcd's client never rewrites its key; an update
    (prevExist=true) keeps createdIndex on both."""
    s, e = parity_pair(parity_srvd, etcd)
    a, b = "infra0=http://127.0.0.10:2380", "infra0=http://127.0.0.10:2381"
    same("PUT D/k1?prevExist=false", s, e, "PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": a})
    same("PUT D/k2?prevExist=false", s, e, "PUT", f"/{ID2}", {"prevExist": "false"}, form={"value": "infra1=http://127.0.0.11:2380"})
    er = e.call("PUT", f"/{ID1}", form={"value": b})
    sr = s.call("PUT", f"/{ID1}", form={"value": b})
    assert er.status == 200 and er.json["node"]["createdIndex"] == e.at(3) and er.json["prevNode"]["value"] == a, er.json
    assert sr.status == 200 and sr.json["action"] == "set" and sr.json["prevNode"]["value"] == a, sr.json
    assert sr.json["node"]["createdIndex"] == s.at(1) and sr.json["node"]["modifiedIndex"] == s.at(3), sr.json
    listed = s.call("GET", "").json["node"]["nodes"]
    assert [n["key"].rsplit("/", 1)[1] for n in listed] == [ID1, ID2], listed


def test_parity_event_of_a_key_made_by_a_plain_put(parity_srvd, etcd):
    """etcd finding: the event of a key created by a plain PUT (no prevExist) has action
    "set", as the request had; only a PUT ?prevExist=false gives "create"."""
    s, e = parity_pair(parity_srvd, etcd)
    same("PUT D/k (set, new)", s, e, "PUT", f"/{ID1}", form={"value": "infra0=http://127.0.0.10:2380"})
    same("GET D?recursive=true&wait=true&waitIndex=1", s, e, "GET", "", dir_wait(1))
    same("GET D/k?wait=true&waitIndex=1", s, e, "GET", f"/{ID1}", self_wait(1))


def test_difference_a_deleted_key_leaves_the_history(parity_srvd, etcd):
    """srvd differs on purpose (README): a deleted key's creation leaves the watch history
    with it, where etcd keeps it. etcd's client adds every event it is given as a member, so
    a member waiting from before an operator deleted a key would otherwise be handed a
    member that is gone."""
    s, e = parity_pair(parity_srvd, etcd)
    same("PUT D/k1?prevExist=false", s, e, "PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": "infra0=http://127.0.0.10:2380"})
    same("PUT D/k2?prevExist=false", s, e, "PUT", f"/{ID2}", {"prevExist": "false"}, form={"value": "infra1=http://127.0.0.11:2380"})
    same("DELETE D/k1", s, e, "DELETE", f"/{ID1}")
    er = e.call("GET", "", dir_wait(1)(e))
    assert er.json["node"]["key"].endswith(ID1), er.json
    sr = s.call("GET", "", dir_wait(1)(s))
    assert sr.status == 200 and sr.json["node"]["key"].endswith(ID2) and sr.json["node"]["createdIndex"] == s.at(2), sr.json
    same("GET D?recursive=true&wait=true&waitIndex=2", s, e, "GET", "", dir_wait(2))


def test_parity_a_blocked_watch_answers_with_the_index_it_began_at(parity_srvd, etcd):
    """etcd finding: the X-Etcd-Index of a watch's answer is the index when the watch began
    (etcd sends the headers then), not the index of the event that ended it."""
    s, e = parity_pair(parity_srvd, etcd)
    same("PUT D/k1?prevExist=false", s, e, "PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": "infra0=http://127.0.0.10:2380"})
    pendings = [Pending(lambda side=side: side.call("GET", "", dir_wait(2)(side), timeout=30)) for side in (s, e)]
    time.sleep(BLOCK_CHECK)
    assert not any(p.done() for p in pendings), [p.reply for p in pendings]
    same("PUT D/k2?prevExist=false", s, e, "PUT", f"/{ID2}", {"prevExist": "false"}, form={"value": "infra1=http://127.0.0.11:2380"})
    compare("the blocked recursive wait's answer", s, pendings[0].result(), e, pendings[1].result())


def test_parity_paths_the_client_never_asks(parity_srvd, etcd):
    """Reads etcd's client never sends but a person with curl may: the hidden _config
    directory itself, and paths below a missing or a non-directory key."""
    s, e = parity_pair(parity_srvd, etcd, size=5)
    same("PUT D/id1?prevExist=false", s, e, "PUT", f"/{ID1}", {"prevExist": "false"}, form={"value": "infra0=http://127.0.0.10:2380"})
    same("GET D/_config", s, e, "GET", "/_config")
    same("GET D/missing/deeper (cause: D/missing)", s, e, "GET", f"/{ID2}/deeper")
    same("GET D/member/deeper (400/104 Not a directory)", s, e, "GET", f"/{ID1}/deeper")
