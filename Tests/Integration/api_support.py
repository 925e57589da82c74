"""Helpers for the admin API, srvctl and durability tests (test_api.py, test_srvctl.py,
test_durability.py).

Nothing here depends on conftest.py; srvd is started by launcher.py. HTTP goes through the
standard library (http.client), DNS through dnspython.
"""

from __future__ import annotations

import http.client
import contextlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from launcher import REPO, SHIPPED_ZONE, SRVCTL_BIN, Srvd, require_executable

OPENAPI_SOURCE = REPO / "Sources" / "SrvdAdmin" / "openapi.yaml"

ZONE = "lab.example."
FILE_SERIAL = 2026112101
ZONE_TTL = 30
HOST = "127.0.0.1"

HTTP_TIMEOUT = 30.0
DNS_TIMEOUT = 3.0

# Every (method, path template) the API tests exercise; test_api checks that openapi.yaml
# documents each of them.
ROUTES: list[tuple[str, str]] = [
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.yaml"),
    ("get", "/v1/status"),
    ("get", "/v1/zones"),
    ("get", "/v1/zones/{zone}/members"),
    ("get", "/v1/zones/{zone}/members/{name}"),
    ("put", "/v1/zones/{zone}/members/{name}"),
    ("delete", "/v1/zones/{zone}/members/{name}"),
    ("post", "/v1/zones/{zone}/members/{name}/renew"),
    ("get", "/v1/zones/{zone}/records"),
    ("put", "/v1/zones/{zone}/records/{owner}/{type}"),
    ("delete", "/v1/zones/{zone}/records/{owner}/{type}"),
    ("post", "/v1/discovery"),
    ("get", "/v1/discovery"),
    ("get", "/v1/discovery/{token}"),
    ("delete", "/v1/discovery/{token}"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{id}"),
    ("get", "/new"),
    ("get", "/discovery/{token}"),
    ("put", "/discovery/{token}"),
    ("delete", "/discovery/{token}"),
]

# --------------------------------------------------------------------------- HTTP


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"response is not JSON ({e}): {self.status} {self.body[:300]!r}") from None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:400]!r})"


_DEFAULT = object()


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    token: Any = None,
    authorization: str | None = None,
    content_type: Any = _DEFAULT,
    headers: dict[str, str] | None = None,
    host: str = HOST,
    chunked: bool = False,
) -> Reply:
    """One request on a fresh connection. `body` is sent as JSON, `raw` as is. A JSON
    content type is added when there is a body unless `content_type` says otherwise (None:
    no Content-Type header at all)."""
    h: dict[str, str] = dict(headers or {})
    data: bytes | None = None
    if raw is not None:
        data = raw
    elif body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        ct = "application/json" if content_type is _DEFAULT else content_type
        if ct is not None:
            h["Content-Type"] = ct
    elif content_type not in (_DEFAULT, None):
        h["Content-Type"] = content_type
    if authorization is not None:
        h["Authorization"] = authorization
    elif token is not None:
        h["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT)
    try:
        if chunked and data is not None:
            # Transfer-Encoding: chunked, no Content-Length: the server learns the size
            # only while reading.
            pieces = [data[i : i + 4096] for i in range(0, len(data), 4096)]
            conn.request(method, path, body=iter(pieces), headers=h, encode_chunked=True)
        else:
            conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        conn.close()


# --------------------------------------------------------------------------- DNS


def dns_query(port: int, name: str, rdtype: str, *, tcp: bool = False, host: str = HOST) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    q.flags &= ~dns.flags.RD
    if tcp:
        return dns.query.tcp(q, host, port=port, timeout=DNS_TIMEOUT)
    r = dns.query.udp(q, host, port=port, timeout=DNS_TIMEOUT)
    if r.flags & dns.flags.TC:
        return dns.query.tcp(q, host, port=port, timeout=DNS_TIMEOUT)
    return r


def answer_set(msg: dns.message.Message, rdtype: str, name: str | None = None) -> set[str]:
    """The rdata (presentation text, lower case) of the answer records of `rdtype`."""
    want = dns.rdatatype.from_text(rdtype)
    out: set[str] = set()
    for rrset in msg.answer:
        if rrset.rdtype != want:
            continue
        if name is not None and rrset.name.to_text().lower() != name.lower():
            continue
        out |= {r.to_text().lower() for r in rrset}
    return out


def answer_list(msg: dns.message.Message, rdtype: str) -> list[str]:
    want = dns.rdatatype.from_text(rdtype)
    return [r.to_text().lower() for rrset in msg.answer if rrset.rdtype == want for r in rrset]


def answer_ttls(msg: dns.message.Message, rdtype: str) -> set[int]:
    want = dns.rdatatype.from_text(rdtype)
    return {rrset.ttl for rrset in msg.answer if rrset.rdtype == want}


def dig(port: int, name: str, rdtype: str, *extra: str, host: str = HOST) -> str:
    """`dig +short` output (stripped), for the assertions that use the real tool."""
    exe = shutil.which("dig") or "/usr/bin/dig"
    out = subprocess.run(
        [exe, f"@{host}", "-p", str(port), "+short", "+norecurse", "+time=2", "+tries=1", *extra, name, rdtype],
        capture_output=True, text=True, timeout=15,
    )
    assert out.returncode == 0, f"dig failed: {out.stderr}{out.stdout}"
    return out.stdout.strip()


# --------------------------------------------------------------------------- srvd


class SrvdServer(Srvd):
    """launcher.Srvd serving lab.example (the shipped zone, unless the zones folder given
    already exists) on 127.0.0.1:0 for DNS and the admin API, plus the admin API and DNS
    calls the tests make of it."""

    def __init__(self, workdir: Path, *, zones_dir: Path | None = None, **options: Any) -> None:
        zones = Path(zones_dir) if zones_dir is not None else Path(workdir) / "zones"
        fresh = not zones.exists()
        super().__init__(workdir, zones_dir=zones, **options)
        if fresh:
            shutil.copy(SHIPPED_ZONE, self.zones / "lab.example.zone")

    # HTTP ---------------------------------------------------------------------------

    def request(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> Reply:
        if auth and "token" not in kw and "authorization" not in kw:
            kw["token"] = self.token
        return http_request(self.admin_port, method, path, **kw)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", path, body=body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def put_member(self, name: str, body: Any, zone: str = "lab.example") -> Reply:
        return self.put(f"/v1/zones/{zone}/members/{name}", body)

    def ok(self, reply: Reply, *statuses: int) -> Any:
        assert reply.status in statuses, f"expected {statuses}, got {reply!r}"
        return reply.json if reply.body else None

    def zone_summary(self, zone: str = ZONE) -> dict:
        zones = self.ok(self.get("/v1/zones"), 200)["zones"]
        for z in zones:
            if z["name"] == zone:
                return z
        raise AssertionError(f"zone {zone} not listed: {zones}")

    def serial(self, zone: str = ZONE) -> int:
        return self.zone_summary(zone)["serial"]

    def records(self, zone: str = "lab.example") -> dict:
        return self.ok(self.get(f"/v1/zones/{zone}/records"), 200)

    def members(self, zone: str = "lab.example") -> dict:
        return self.ok(self.get(f"/v1/zones/{zone}/members"), 200)

    def snapshot(self) -> tuple:
        """What must not change when a request is refused: the zones list (serials and
        counts), every served RRset and the members."""
        return (
            self.ok(self.get("/v1/zones"), 200),
            self.records(),
            self.members(),
        )

    # DNS ----------------------------------------------------------------------------

    def query(self, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
        return dns_query(self.port, name, rdtype, tcp=tcp)

    def soa_serial(self, zone: str = ZONE) -> int:
        r = self.query(zone, "SOA")
        assert r.rcode() == dns.rcode.NOERROR, r
        soas = [rr for rrset in r.answer if rrset.rdtype == dns.rdatatype.SOA for rr in rrset]
        assert len(soas) == 1, r
        return soas[0].serial

    def metrics(self) -> str:
        r = http_request(self.admin_port, "GET", "/metrics")
        assert r.status == 200, r
        return r.text


# --------------------------------------------------------------------------- metrics


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Sample:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    value: float = 0.0


def parse_metrics(text: str) -> list[Sample]:
    out: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(_LABEL_RE.findall(m.group(3) or ""))
        out.append(Sample(m.group(1), labels, float(m.group(4))))
    return out


def metric_value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The sum of the samples called `name` whose labels include `labels`; None if none."""
    found = [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(s.value for s in found) if found else None


# --------------------------------------------------------------------------- OpenAPI


def openapi_operations(text: str) -> set[tuple[str, str]]:
    """(method, path) pairs under `paths:` of an OpenAPI YAML document, found by indentation
    alone (no YAML parser): path keys one level under `paths:`, methods one level deeper."""
    ops: set[tuple[str, str]] = set()
    in_paths = False
    path_indent: int | None = None
    current: str | None = None
    child_indent: int | None = None
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            in_paths = stripped == "paths:"
            path_indent = None
            current = None
            continue
        if not in_paths:
            continue
        if path_indent is None:
            path_indent = indent
        if indent == path_indent:
            key = stripped.rstrip(":").strip("'\"")
            current = key if key.startswith("/") else None
            child_indent = None
        elif current is not None and indent > path_indent:
            if child_indent is None:
                child_indent = indent
            key = stripped.split(":", 1)[0].strip()
            if indent == child_indent and key in methods and stripped.endswith(":"):
                ops.add((key, current))
    return ops


# --------------------------------------------------------------------------- srvctl


def run_srvctl(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60,
    resolv_conf: str | None = None,
) -> subprocess.CompletedProcess:
    """srvctl with ARGS. With `resolv_conf`, srvctl sees that text as /etc/resolv.conf (a
    private mount namespace with the file bound over it; needs root), so tests choose the
    resolvers `wait` and `verify` ask without touching the machine's."""
    e = dict(os.environ)
    e.pop("SRVD_TOKEN_FILE", None)
    if env:
        e.update(env)
    cmd = [require_executable(SRVCTL_BIN, "srvctl"), *args]
    if resolv_conf is not None:
        import tempfile

        if os.geteuid() != 0:
            import pytest

            pytest.skip("a private /etc/resolv.conf needs root (unshare --mount)")
        fd, conf = tempfile.mkstemp(prefix="srvctl-resolv-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write(resolv_conf)
        cmd = ["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', conf, *cmd]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd, stdin=subprocess.DEVNULL)
        finally:
            os.unlink(conf)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def unchanged(server: SrvdServer):
    """Asserts that the body of the `with` changes nothing srvd serves or reports."""
    before = server.snapshot()
    soa_before = server.soa_serial()
    yield
    after = server.snapshot()
    assert after[0] == before[0], "the zones list (serial, counts) changed"
    assert after[1] == before[1], "the records listing changed"
    assert after[2] == before[2], "the members changed"
    assert server.soa_serial() == soa_before, "the SOA serial served over DNS changed"
