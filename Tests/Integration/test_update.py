"""RFC 2136 dynamic UPDATE with TSIG (issue 15): what is srvd's own. The RFC semantics
(prerequisites, update forms, prescan, CNAME and apex rules, TSIG errors for the
differential keys) are compared with Knot in test_update_differential.py; this file covers
what Knot has no say in:

1. --allow-update policies: name patterns (`_acme-challenge.*`, `*.dyn`, `@`), type lists,
   zones; every REFUSED leaves the zone as it was (AXFR and serial).
2. Members: RRsets a member registered through the admin API are not UPDATE's to change
   (REFUSED with an RFC 8914 Extended DNS Error naming the member), nor may a delegation
   hide a member.
3. Durability and visibility: served at once, listed with source `update`, kept across
   kill -9, one serial per message, an SOA's serial taken; NOTIFY and IXFR to NSD.
4. TSIG: the four HMACs from tsig-keygen files (nsupdate -k), --tsig-key (nsupdate -y),
   knsupdate; BADKEY, BADSIG, BADTIME; signed responses.
5. --allow-transfer and update keys: an update key transfers only where a rule names it.
6. Both UDP engines, and TCP.
7. Start-up validation of the key and rule flags (exit 64, a message naming the problem).

Every srvd listens on 127.0.0.1 with kernel-chosen ports. Run:

    SRVD_BIN=.build/debug/srvd .venv/bin/python -m pytest Tests/Integration/test_update.py -q -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

import dns.edns  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.tsig  # noqa: E402
import dns.update  # noqa: E402
import pytest  # noqa: E402

from api_support import FILE_SERIAL, SrvdServer, dig  # noqa: E402
from conftest import require_tool  # noqa: E402
from launcher import SHIPPED_ZONE, V4, Srvd, wait_until  # noqa: E402
from transfer_support import Nsd, Record, xfr  # noqa: E402
from update_support import (  # noqa: E402
    Response,
    TsigKey,
    _fixed_secret,
    exchange,
    response_tsig,
    tsig_verifies,
    write_key_file,
)

ZONE = "lab.example."
OTHER = "other.example."
OTHER_ZONE = """\
$ORIGIN other.example.
$TTL 30
@   IN SOA ns1 hostmaster 7 3600 900 604800 30
    IN NS  ns1
ns1 IN A   127.0.0.1
"""

# --------------------------------------------------------------------------- keys

ACME = TsigKey("acme", _fixed_secret("certbot-dns-rfc2136/"))  # _acme-challenge.*:TXT only
DDNS = TsigKey("ddns", _fixed_secret("dhcp-ddns/"), "hmac-sha384")  # *.dyn:A,AAAA
APEX = TsigKey("apex", _fixed_secret("apex-only/"), "hmac-sha1")  # @:TXT,CAA
ADMIN = {  # lab.example, everything; one per algorithm
    alg: TsigKey(f"admin-{alg.removeprefix('hmac-')}", _fixed_secret(f"admin {alg}/", 64), alg)
    for alg in ("hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512")
}
CLI = TsigKey("cli", _fixed_secret("given-on-the-command-line/"))  # --tsig-key; every zone
XFR = TsigKey("xfr", _fixed_secret("transfers-only/"))  # no update rule
STRANGER = TsigKey("stranger", _fixed_secret("nobody-knows-me/"))
ROOT = ADMIN["hmac-sha256"]

RULES = [
    "acme:lab.example:_acme-challenge.*:TXT",
    "ddns:lab.example:*.dyn:A,AAAA",
    "apex:lab.example:@:TXT,CAA",
    *(f"{k.name}:lab.example" for k in ADMIN.values()),
    "cli",
]


def key_files(directory: Path) -> list[Path]:
    """Two tsig-keygen files (so the flag is repeated, and a file holds several keys)."""
    one = write_key_file(directory / "update.keys", [ACME, DDNS, APEX, ADMIN["hmac-sha1"], ADMIN["hmac-sha256"]])
    two = write_key_file(directory / "more.keys", [ADMIN["hmac-sha384"], ADMIN["hmac-sha512"], XFR])
    return [one, two]


def key_args(files: list[Path]) -> list[str]:
    args: list[str] = []
    for f in files:
        args += ["--tsig-key-file", str(f)]
    return args


# --------------------------------------------------------------------------- helpers


def message(*ops: tuple, zone: str = ZONE, edns: bool = False) -> dns.update.UpdateMessage:
    """An UPDATE of `zone`: ops are ("add", name, ttl, type, rdata), ("delete", name),
    ("delete", name, type) or ("delete", name, type, rdata); names relative to the zone."""
    m = dns.update.UpdateMessage(zone)
    for op in ops:
        kind, name, *rest = op
        if kind == "add":
            m.add(name, *rest)
        elif kind == "delete":
            m.delete(name, *rest)
        else:
            raise ValueError(op)
    if edns:
        m.use_edns(0)
    return m


def send(port: int, key: TsigKey | None, *ops: tuple, zone: str = ZONE, edns: bool = False, tcp: bool = False,
         skew: int = 0, sign_as: TsigKey | None = None) -> Response:
    """Signs with `key` (`sign_as`: sign with that key's secret and algorithm under `key`'s
    name) and sends; the Response's `signed` says whether its MAC verified with `key`."""
    m = message(*ops, zone=zone, edns=edns)
    if key is not None:
        signer = sign_as or key
        ring = {key.dns_name: dns.tsig.Key(key.dns_name, signer.secret, signer.dns_algorithm)}
        m.use_tsig(ring, keyname=key.dns_name, algorithm=signer.dns_algorithm)
    r = exchange(port, m, tcp=tcp, skew=skew, key=key)
    assert r.wire is not None, f"no response to {ops}: {r.detail}"
    r.request = m  # type: ignore[attr-defined]
    return r


def op_id(op: tuple) -> str:
    """add-NAME-TYPE, delete-NAME-TYPE, delete-NAME-ANY (a test id)."""
    rtype = op[3] if op[0] == "add" else op[2] if len(op) > 2 else "ANY"
    return f"{op[0]}-{op[1]}-{rtype}{'-rr' if op[0] == 'delete' and len(op) > 3 else ''}"


def ede(r: Response) -> list[tuple[int, str]]:
    """(info code, text) of the Extended DNS Errors (RFC 8914: option code 15)."""
    msg = r.message
    assert msg is not None, "response does not parse"
    out = []
    for opt in msg.options:
        if opt.otype == 15:
            assert isinstance(opt, dns.edns.EDEOption), opt
            out.append((int(opt.code), opt.text or ""))
    return out


def q(port: int, name: str, rdtype: str, *, tcp: bool = False) -> set[str]:
    """The answer's rdata (lowercase text) for `name` (relative to lab.example unless absolute)."""
    qname = name if name.endswith(".") else f"{name}.{ZONE}"
    m = dns.message.make_query(qname, rdtype)
    m.flags = 0
    r = dns.query.tcp(m, V4, port=port, timeout=3) if tcp else dns.query.udp(m, V4, port=port, timeout=3)
    want = dns.rdatatype.from_text(rdtype)
    return {rd.to_text().lower() for rrset in r.answer if rrset.rdtype == want for rd in rrset}


def serial(port: int, zone: str = ZONE) -> int:
    m = dns.message.make_query(zone, "SOA")
    m.flags = 0
    r = dns.query.udp(m, V4, port=port, timeout=3)
    (soa,) = [rd for rrset in r.answer if rrset.rdtype == dns.rdatatype.SOA for rd in rrset]
    return soa.serial


def axfr(port: int, key: TsigKey = XFR, zone: str = ZONE) -> set[Record]:
    x = xfr(port, zone=zone, keys=key.keyring(), keyname=key.name)
    assert x.rcode == 0 and x.is_full(), f"AXFR of {zone} signed with {key.name}:\n{x.describe()}"
    return x.zone()


@contextlib.contextmanager
def unchanged(port: int, zone: str = ZONE, key: TsigKey = XFR):
    """The body must leave `zone` as it was: the same AXFR, the same serial."""
    before, before_serial = axfr(port, key, zone), serial(port, zone)
    yield
    after = axfr(port, key, zone)
    assert serial(port, zone) == before_serial, "the serial moved"
    assert after == before, f"the zone changed:\n- {sorted(before - after)}\n+ {sorted(after - before)}"


def refused(r: Response, *, named: str | None = None) -> str:
    """Asserts a signed REFUSED (with an EDE Prohibited when the request had EDNS)."""
    assert (r.rcode, r.tsig_error) == ("REFUSED", None), f"want REFUSED, got {r.rcode}/{r.tsig_error}"
    assert r.signed, "the REFUSED is not signed with the request's key (RFC 8945 5.3)"
    if r.request.edns < 0:  # type: ignore[attr-defined]
        return ""
    errors = ede(r)
    assert len(errors) == 1 and errors[0][0] == 18, f"want one EDE with info code 18 (Prohibited), got {errors}"
    if named:
        assert named.lower() in errors[0][1].lower(), f"the EDE text does not name {named}: {errors[0][1]!r}"
    return errors[0][1]


def ok(r: Response) -> None:
    assert (r.rcode, r.tsig_error) == ("NOERROR", None), f"want NOERROR, got {r.rcode}/{r.tsig_error} {ede(r)}"
    assert r.signed, "the NOERROR is not signed with the request's key"


def run_tool(argv: list[str], commands: str) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, input=commands, capture_output=True, text=True, timeout=30)
    p.output = p.stdout + p.stderr  # type: ignore[attr-defined]
    return p


def nsupdate(port: int, commands: str, *args: str, program: str = "nsupdate") -> subprocess.CompletedProcess:
    binary = require_tool(program)
    timeouts = ["-t", "5", "-u", "2"] if program == "nsupdate" else ["-t", "5", "-r", "0"]
    return run_tool([binary, *args, *timeouts], f"server {V4} {port}\n{commands}send\n")


# --------------------------------------------------------------------------- the shared srvd


@pytest.fixture(scope="module")
def lab(srvd_bin: str, tmp_path_factory: pytest.TempPathFactory) -> SrvdServer:
    """lab.example (shipped) and other.example, every key and rule of RULES, transfers from
    loopback with any key that is not an update key."""
    d = tmp_path_factory.mktemp("update")
    files = key_files(d)
    args = key_args(files) + ["--tsig-key", f"{CLI.name}:{CLI.secret}", "--allow-transfer", "127.0.0.0/8"]
    for rule in RULES:
        args += ["--allow-update", rule]
    s = SrvdServer(d / "srvd", binary=srvd_bin, extra_args=args, cwd=d)
    s.write_zone("other.example.zone", OTHER_ZONE)
    s.key_files = files  # type: ignore[attr-defined]
    try:
        yield s.start()
    finally:
        s.stop()


# --------------------------------------------------------------------------- 1. policy

ACME_TXT = '"dns-01-token"'

# (key, zone, op, what the rule says): operations a narrow rule must refuse.
POLICY_REFUSED = [
    (ACME, ZONE, ("add", "_acme-challenge.www", 60, "A", "192.0.2.1"), "A is not in the rule's types"),
    (ACME, ZONE, ("add", "www", 60, "TXT", ACME_TXT), "www does not match _acme-challenge.*"),
    (ACME, ZONE, ("add", "_acme-challenge", 60, "TXT", ACME_TXT), "the * stands for at least one label"),
    (ACME, ZONE, ("add", "x._acme-challenge.www", 60, "TXT", ACME_TXT), "the pattern's first label is fixed"),
    (ACME, ZONE, ("delete", "_acme-challenge.www"), "a delete of every type needs a rule without types"),
    (ACME, ZONE, ("delete", "infra0", "A"), "deletes are changes too"),
    (ACME, OTHER, ("add", "_acme-challenge.www", 60, "TXT", ACME_TXT), "the rule is for lab.example only"),
    (DDNS, ZONE, ("add", "dyn", 60, "A", "192.0.2.1"), "*.dyn needs a label before dyn"),
    (DDNS, ZONE, ("add", "host.dyn", 60, "TXT", '"x"'), "TXT is not in A,AAAA"),
    (DDNS, ZONE, ("add", "host.dyn.other", 60, "A", "192.0.2.1"), "the pattern's last label is fixed"),
    (APEX, ZONE, ("add", "www", 60, "TXT", '"x"'), "@ is the apex only"),
    (APEX, ZONE, ("add", "@", 60, "MX", "10 infra0"), "MX is not in TXT,CAA"),
    (ADMIN["hmac-sha256"], OTHER, ("add", "www", 60, "A", "192.0.2.1"), "the whole-zone rule is for lab.example"),
]


@pytest.mark.parametrize(("key", "zone", "op", "why"), POLICY_REFUSED,
                         ids=[f"{k.name}-{z.split('.')[0]}-{op_id(o)}" for k, z, o, _ in POLICY_REFUSED])
def test_policy_refuses_outside_the_rule(lab: SrvdServer, key: TsigKey, zone: str, op: tuple, why: str) -> None:
    with unchanged(lab.port, zone):
        r = send(lab.port, key, op, zone=zone, edns=True)
        text = refused(r)
    assert "may not update" in text, f"{why}: EDE text {text!r}"


def test_acme_rule_allows_txt_below_the_challenge_label(lab: SrvdServer) -> None:
    port = lab.port
    base = serial(port)
    ok(send(port, ACME, ("add", "_acme-challenge.www", 60, "TXT", ACME_TXT)))
    ok(send(port, ACME, ("add", "_acme-challenge.a.b", 60, "TXT", ACME_TXT), ("add", "_acme-challenge.a.b", 60, "TXT", '"second"')))
    # Owner names compare case-insensitively with the pattern (RFC 4343).
    ok(send(port, ACME, ("add", "_ACME-Challenge.Mixed.Case", 60, "TXT", ACME_TXT)))
    assert q(port, "_acme-challenge.www", "TXT") == {ACME_TXT}
    assert q(port, "_acme-challenge.a.b", "TXT") == {ACME_TXT, '"second"'}
    assert q(port, "_acme-challenge.mixed.case", "TXT") == {ACME_TXT}
    assert serial(port) == base + 3

    # One forbidden RR makes the whole message REFUSED: the permitted add beside it is not applied.
    with unchanged(port):
        refused(send(port, ACME, ("add", "_acme-challenge.c", 60, "TXT", ACME_TXT), ("add", "_acme-challenge.c", 60, "A", "192.0.2.1")))
    assert q(port, "_acme-challenge.c", "TXT") == set()

    # Cleanup as certbot does it: delete the one RR, then the RRset.
    ok(send(port, ACME, ("delete", "_acme-challenge.a.b", "TXT", ACME_TXT)))
    assert q(port, "_acme-challenge.a.b", "TXT") == {'"second"'}
    ok(send(port, ACME, ("delete", "_acme-challenge.a.b", "TXT"), ("delete", "_acme-challenge.www", "TXT"),
            ("delete", "_acme-challenge.mixed.case", "TXT")))
    for name in ("_acme-challenge.a.b", "_acme-challenge.www", "_acme-challenge.mixed.case"):
        assert q(port, name, "TXT") == set(), name
    assert serial(port) == base + 5


def test_other_patterns_and_broad_rules(lab: SrvdServer) -> None:
    port = lab.port
    ok(send(port, DDNS, ("add", "laptop.dyn", 60, "A", "192.0.2.7"), ("add", "a.b.dyn", 60, "AAAA", "2001:db8::7")))
    assert q(port, "laptop.dyn", "A") == {"192.0.2.7"} and q(port, "a.b.dyn", "AAAA") == {"2001:db8::7"}
    ok(send(port, APEX, ("add", "@", 60, "CAA", '0 issue "letsencrypt.org"'), ("add", "@", 60, "TXT", '"v=spf1 -all"')))
    assert q(port, ZONE, "TXT") == {'"v=spf1 -all"'}

    # A whole-zone key may do anything in the zone, including what the narrow keys may not,
    # and undo what they did.
    ok(send(port, ROOT, ("add", "_acme-challenge", 60, "TXT", ACME_TXT), ("add", "www", 60, "A", "192.0.2.80"),
            ("delete", "laptop.dyn"), ("delete", "@", "TXT")))
    assert q(port, "_acme-challenge", "TXT") == {ACME_TXT} and q(port, "www", "A") == {"192.0.2.80"}
    assert q(port, "laptop.dyn", "A") == set() and q(port, ZONE, "TXT") == set()
    ok(send(port, ROOT, ("delete", "_acme-challenge"), ("delete", "www"), ("delete", "a.b.dyn"), ("delete", "@", "CAA")))

    # A rule without a zone covers every zone srvd serves.
    before = serial(port, OTHER)
    ok(send(port, CLI, ("add", "www", 60, "A", "192.0.2.9"), zone=OTHER))
    assert q(port, f"www.{OTHER}", "A") == {"192.0.2.9"}
    assert serial(port, OTHER) == before + 1


def test_keys_that_may_not_update(lab: SrvdServer) -> None:
    """A key defined but named in no --allow-update rule, and no key at all: REFUSED."""
    with unchanged(lab.port):
        refused(send(lab.port, XFR, ("add", "www", 60, "A", "192.0.2.1"), edns=True))
        r = send(lab.port, None, ("add", "www", 60, "A", "192.0.2.1"), edns=True)
        assert (r.rcode, r.tsig_error, r.signed) == ("REFUSED", None, False)
        assert [c for c, _ in ede(r)] == [18], f"unsigned: want EDE 18, got {ede(r)}"


# --------------------------------------------------------------------------- 2. members


@pytest.fixture(scope="module")
def member(lab: SrvdServer) -> str:
    lab.ok(lab.put_member("infra3", {"addresses": ["127.0.0.13"]}), 200, 201)
    assert q(lab.port, "infra3", "A") == {"127.0.0.13"}
    return "infra3"


MEMBER_OPS = [
    ("delete", "_etcd-server._tcp", "SRV"),
    ("delete", "_etcd-client._tcp", "SRV", "0 0 2379 infra3.lab.example."),
    ("delete", "infra3", "A"),
    ("add", "infra3", 30, "A", "127.0.0.99"),
    ("delete", "infra3"),
]


@pytest.mark.parametrize("edns", [True, False], ids=["edns", "no-edns"])
@pytest.mark.parametrize("op", MEMBER_OPS, ids=[op_id(o) for o in MEMBER_OPS])
def test_update_may_not_touch_a_members_rrsets(lab: SrvdServer, member: str, op: tuple, edns: bool) -> None:
    with unchanged(lab.port):
        r = send(lab.port, ROOT, op, edns=edns)
        refused(r, named=member)
    if not edns:
        assert r.message.edns < 0, "the request had no EDNS, the response has an OPT record"
    assert q(lab.port, member, "A") == {"127.0.0.13"}
    assert "0 0 2380 infra3.lab.example." in q(lab.port, "_etcd-server._tcp", "SRV")
    assert lab.ok(lab.get(f"/v1/zones/lab.example/members/{member}"), 200)["addresses"] == ["127.0.0.13"]


def test_cname_at_a_member_is_refused(lab: SrvdServer, member: str) -> None:
    """A CNAME at a member's name: REFUSED naming the member, as any other change there.
    (RFC 2136 3.4.2.2 would silently ignore a CNAME beside other data; srvd's member rule
    says an update at what a member publishes is refused.)"""
    with unchanged(lab.port):
        r = send(lab.port, ROOT, ("add", member, 30, "CNAME", "infra0"), edns=True)
        refused(r, named=member)
    assert q(lab.port, member, "A") == {"127.0.0.13"}


def test_delegation_may_not_hide_a_member(lab: SrvdServer, member: str) -> None:
    """A zone cut or a DNAME above a member, or at its own name, would take it out of the
    zone's answers: REFUSED naming the member."""
    lab.ok(lab.put_member("a.sub", {"addresses": ["127.0.0.14"]}), 200, 201)
    with unchanged(lab.port):
        refused(send(lab.port, ROOT, ("add", "sub", 30, "NS", "ns.elsewhere.test."), edns=True), named="a.sub")
        refused(send(lab.port, ROOT, ("add", "sub", 30, "DNAME", "elsewhere.test."), edns=True), named="a.sub")
        refused(send(lab.port, ROOT, ("add", member, 30, "NS", "ns.elsewhere.test."), edns=True), named=member)
    assert q(lab.port, "a.sub", "A") == {"127.0.0.14"}
    # Beside the member's subtree a delegation is fine.
    ok(send(lab.port, ROOT, ("add", "sub2", 30, "NS", "ns.elsewhere.test.")))
    ok(send(lab.port, ROOT, ("delete", "sub2", "NS")))


# --------------------------------------------------------------------------- 3. durability, serial, NOTIFY/IXFR


def listed(server: SrvdServer) -> dict[tuple[str, str], dict]:
    return {(s["owner"], s["type"]): s for s in server.records()["rrsets"]}


def test_updates_are_served_listed_durable_and_take_one_serial_each(srvd_bin: str, tmp_path: Path) -> None:
    files = key_files(tmp_path)
    s = SrvdServer(tmp_path / "srvd", binary=srvd_bin, cwd=tmp_path,
                   extra_args=key_args(files) + ["--allow-update", f"{ROOT.name}:lab.example", "--allow-transfer", "127.0.0.0/8"])
    try:
        s.start()
        port = s.port
        assert serial(port) == FILE_SERIAL

        # Served the moment the response is out (dig, the real tool, right after).
        ok(send(port, ROOT, ("add", "fresh", 60, "TXT", '"just now"')))
        assert dig(port, "fresh.lab.example.", "TXT") == '"just now"'
        assert serial(port) == FILE_SERIAL + 1

        # Several RRs, RRsets and names in one message: one serial step.
        ok(send(port, ROOT, ("add", "multi", 60, "A", "192.0.2.1"), ("add", "multi", 60, "A", "192.0.2.2"),
                ("add", "multi", 60, "AAAA", "2001:db8::1"), ("add", "other", 60, "TXT", '"x"'),
                ("delete", "_etcd-client._tcp", "SRV")))  # a file RRset, deleted
        assert serial(port) == FILE_SERIAL + 2
        assert set(dig(port, "multi.lab.example.", "A").split()) == {"192.0.2.1", "192.0.2.2"}
        assert dig(port, "_etcd-client._tcp.lab.example.", "SRV") == ""

        # A no-op message (deleting what is not there) takes no serial.
        ok(send(port, ROOT, ("delete", "nothing", "A")))
        assert serial(port) == FILE_SERIAL + 2

        # The records API lists them with source update, and the serial.
        rrsets = listed(s)
        for owner, rtype in (("fresh", "TXT"), ("multi", "A"), ("multi", "AAAA"), ("other", "TXT")):
            entry = rrsets.get((f"{owner}.{ZONE}", rtype))
            assert entry is not None and entry["source"] == "update", f"{owner} {rtype}: {entry}"
        assert sorted(rrsets[(f"multi.{ZONE}", "A")]["rdata"]) == ["192.0.2.1", "192.0.2.2"]
        assert rrsets[(f"fresh.{ZONE}", "TXT")]["ttl"] == 60
        assert (f"_etcd-client._tcp.{ZONE}", "SRV") not in rrsets or not rrsets[(f"_etcd-client._tcp.{ZONE}", "SRV")]["served"]
        assert rrsets[("infra0.lab.example.", "A")]["source"] == "file"
        assert s.records()["serial"] == FILE_SERIAL + 2

        # An SOA with a higher serial sets the served serial; the next update counts on from it.
        soa = f"ns1 hostmaster {FILE_SERIAL + 1000} 3600 900 604800 30"
        ok(send(port, ROOT, ("add", "@", 30, "SOA", soa)))
        assert serial(port) == FILE_SERIAL + 1000
        ok(send(port, ROOT, ("add", "fresh", 60, "TXT", '"again"'), ("add", "@", 30, "SOA", f"ns1 hostmaster {FILE_SERIAL + 5} 3600 900 604800 30")))
        assert serial(port) == FILE_SERIAL + 1001, "a lower SOA serial in an update must be ignored"
        zone_before = axfr(port)

        # kill -9 right after the response: all of it is back after the restart.
        ok(send(port, ROOT, ("delete", "other", "TXT", '"x"')))
        s.kill()
        s.start()
        port = s.port
        assert serial(port) == FILE_SERIAL + 1002
        assert q(port, "fresh", "TXT") == {'"just now"', '"again"'}
        assert q(port, "multi", "A") == {"192.0.2.1", "192.0.2.2"} and q(port, "multi", "AAAA") == {"2001:db8::1"}
        assert q(port, "other", "TXT") == set()
        assert q(port, "_etcd-client._tcp", "SRV") == set(), "the deleted file RRset is back after a restart"
        after = axfr(port)
        assert {r for r in zone_before if r[0] != f"other.{ZONE}" and r[2] != "SOA"} == {r for r in after if r[2] != "SOA"}
        assert listed(s)[(f"fresh.{ZONE}", "TXT")]["source"] == "update"
        ok(send(port, ROOT, ("add", "later", 60, "A", "192.0.2.3")))
        assert serial(port) == FILE_SERIAL + 1003
    except BaseException:
        print(s.log_tail(60))
        raise
    finally:
        s.stop()


def test_updates_outlive_a_zone_file_reload(srvd_bin: str, tmp_path: Path) -> None:
    """The zone file is edited (a new serial, a new record) and reloaded: what UPDATE added
    or deleted stays on top of the new file, and the serial is the file's when it is ahead."""
    files = key_files(tmp_path)
    s = SrvdServer(tmp_path / "srvd", binary=srvd_bin, cwd=tmp_path,
                   extra_args=key_args(files) + ["--allow-update", f"{ROOT.name}:lab.example", "--allow-transfer", "127.0.0.0/8"])
    try:
        s.start()
        ok(send(s.port, ROOT, ("add", "kept", 60, "TXT", '"update"'), ("delete", "infra2", "A")))
        s.reload()  # the same file
        assert q(s.port, "kept", "TXT") == {'"update"'} and q(s.port, "infra2", "A") == set()
        assert serial(s.port) == FILE_SERIAL + 1
        text = s.zones.joinpath("lab.example.zone").read_text().replace(str(FILE_SERIAL), str(FILE_SERIAL + 100))
        s.write_zone("lab.example.zone", text + 'edited IN TXT "file"\n')
        s.reload()
        assert q(s.port, "edited", "TXT") == {'"file"'}
        assert q(s.port, "kept", "TXT") == {'"update"'}, "the update is lost after a zone file edit"
        assert q(s.port, "infra2", "A") == set(), "the record the update deleted is back after a zone file edit"
        assert serial(s.port) == FILE_SERIAL + 100
        ok(send(s.port, ROOT, ("add", "kept", 60, "TXT", '"again"')))
        assert serial(s.port) == FILE_SERIAL + 101
        assert listed(s)[(f"kept.{ZONE}", "TXT")]["source"] == "update"
    except BaseException:
        print(s.log_tail(40))
        raise
    finally:
        s.stop()


def test_nsd_secondary_gets_updates_by_ixfr(srvd_bin: str, tmp_path: Path) -> None:
    require_tool("nsd")
    files = key_files(tmp_path)
    nsd = Nsd(tmp_path / "nsd", key=(XFR.name, XFR.secret))
    s = SrvdServer(tmp_path / "srvd", binary=srvd_bin, cwd=tmp_path,
                   extra_args=key_args(files) + ["--allow-update", f"{ROOT.name}:lab.example",
                                                 "--allow-transfer", f"127.0.0.0/8:{XFR.name}",
                                                 "--notify", nsd.notify_target])

    def diag() -> str:
        return f"{s.log_tail()}\n{nsd.log_tail()}"

    try:
        s.start()
        nsd.start(s.port)
        nsd.wait_serial(FILE_SERIAL, 10, diag)

        ok(send(s.port, ROOT, ("add", "fresh", 60, "TXT", '"to nsd"'), ("add", "fresh", 60, "A", "192.0.2.50")))
        nsd.wait_serial(FILE_SERIAL + 1, 5, diag)
        ok(send(s.port, ROOT, ("delete", "fresh", "A"), ("add", "infra0", 30, "AAAA", "fd00::10")))
        nsd.wait_serial(FILE_SERIAL + 2, 5, diag)

        # NSD's copy is srvd's zone.
        assert xfr(nsd.port).zone() == axfr(s.port), diag()
        # srvd's history has the two updates as increments ...
        direct = xfr(s.port, "IXFR", serial=FILE_SERIAL, keys=XFR.keyring(), keyname=XFR.name)
        assert direct.rcode == 0 and [(o, n) for o, _, n, _ in direct.diffs()] == [
            (FILE_SERIAL, FILE_SERIAL + 1), (FILE_SERIAL + 1, FILE_SERIAL + 2)], direct.describe()
        added = {r[:3] for _, _, _, a in direct.diffs() for r in a}
        assert (f"fresh.{ZONE}", 60, "TXT") in added and (f"infra0.{ZONE}", 30, "AAAA") in added
        # ... and NSD received them as IXFR: it keeps (store-ixfr) only increments it was sent.
        via_nsd = xfr(nsd.port, "IXFR", serial=FILE_SERIAL)
        assert via_nsd.rcode == 0 and not via_nsd.is_full(), f"NSD got no increments (AXFR instead):\n{via_nsd.describe()}\n{diag()}"
        assert [(o, set(d), n, set(a)) for o, d, n, a in via_nsd.diffs()] == [
            (o, set(d), n, set(a)) for o, d, n, a in direct.diffs()], f"NSD:\n{via_nsd.describe()}\nsrvd:\n{direct.describe()}"
        for bad in ("Failed to apply IXFR cleanly", "bad transfer", "reverted transfer"):
            assert bad not in nsd.log(), f"NSD logged {bad!r}\n{diag()}"
        # srvd logs the NOTIFY NSD acknowledged for each update's serial.
        acked = " ".join(line for line in s.log().splitlines() if "secondary acknowledged NOTIFY" in line)
        wait_until(lambda: f"serial={FILE_SERIAL + 2}" in " ".join(
            line for line in s.log().splitlines() if "secondary acknowledged NOTIFY" in line),
            5, lambda: f"srvd to log the acknowledged NOTIFY for serial {FILE_SERIAL + 2}\n{acked}\n{diag()}")
    finally:
        nsd.stop()
        s.stop()


# --------------------------------------------------------------------------- 4. TSIG


def test_all_four_algorithms_from_key_files_with_nsupdate_k(lab: SrvdServer, tmp_path: Path) -> None:
    require_tool("nsupdate")
    for alg, key in ADMIN.items():
        kf = write_key_file(tmp_path / f"{key.name}.key", [key])
        name = f"nsupdate-{alg}.{ZONE}"
        p = nsupdate(lab.port, f"zone {ZONE}\nupdate add {name} 60 IN TXT \"{alg}\"\n", "-k", str(kf))
        assert p.returncode == 0, f"nsupdate -k with {alg}: exit {p.returncode}\n{p.output}"
        assert q(lab.port, name, "TXT") == {f'"{alg}"'}, alg
        # And over TCP (nsupdate -v), deleting it again.
        p = nsupdate(lab.port, f"zone {ZONE}\nupdate delete {name} TXT\n", "-v", "-k", str(kf))
        assert p.returncode == 0, f"nsupdate -v -k with {alg}: exit {p.returncode}\n{p.output}"
        assert q(lab.port, name, "TXT") == set(), alg


def test_tsig_key_flag_and_other_clients(lab: SrvdServer, tmp_path: Path) -> None:
    require_tool("nsupdate")
    # --tsig-key NAME:SECRET is hmac-sha256; nsupdate -y takes [alg:]name:secret.
    p = nsupdate(lab.port, f"zone {ZONE}\nupdate add y.{ZONE} 60 IN A 192.0.2.61\n", "-y", CLI.ky_text())
    assert p.returncode == 0, f"nsupdate -y with the --tsig-key key: exit {p.returncode}\n{p.output}"
    assert q(lab.port, "y", "A") == {"192.0.2.61"}
    # knsupdate (Knot's client) with a key from a file, hmac-sha384 and hmac-sha1.
    for key, name in ((DDNS, "k.dyn"), (APEX, "@")):
        owner = ZONE if name == "@" else f"{name}.{ZONE}"
        rtype, rdata = ("A", "192.0.2.62") if key is DDNS else ("TXT", '"knsupdate"')
        kf = tmp_path / f"{key.name}.knot"
        kf.write_text(key.ky_text() + "\n")
        p = nsupdate(lab.port, f"zone {ZONE}\nupdate add {owner} 60 IN {rtype} {rdata}\n", "-k", str(kf), program="knsupdate")
        assert p.returncode == 0, f"knsupdate -k ({key.algorithm}): exit {p.returncode}\n{p.output}"
        assert rdata.lower() in q(lab.port, owner, rtype)
        # knsupdate -y, and refused out of the key's rule: the client reports REFUSED.
        p = nsupdate(lab.port, f"zone {ZONE}\nupdate add www.{ZONE} 60 IN TXT \"no\"\n", "-y", key.ky_text(), program="knsupdate")
        assert p.returncode != 0 and "REFUSED" in p.output, f"knsupdate -y out of the rule:\n{p.output}"
    ok(send(lab.port, ROOT, ("delete", "y"), ("delete", "k.dyn"), ("delete", "@", "TXT")))


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_signed_responses_verify_with_dnspython(lab: SrvdServer, tcp: bool) -> None:
    """dnspython verifies the response's TSIG with the request's key (and raises if it is
    missing or wrong), for each algorithm."""
    for alg, key in ADMIN.items():
        m = message(("add", f"dnspython-{alg}", 60, "TXT", f'"{alg}"'))
        m.use_tsig(key.keyring(), keyname=key.dns_name, algorithm=key.dns_algorithm)
        r = (dns.query.tcp if tcp else dns.query.udp)(m, V4, port=lab.port, timeout=3)
        assert r.rcode() == dns.rcode.NOERROR and r.had_tsig, alg
        assert r.tsig[0].algorithm == key.dns_algorithm and r.tsig[0].error == 0, r.tsig
        assert q(lab.port, f"dnspython-{alg}", "TXT") == {f'"{alg}"'}
        m = message(("delete", f"dnspython-{alg}"))
        m.use_tsig(key.keyring(), keyname=key.dns_name, algorithm=key.dns_algorithm)
        assert (dns.query.tcp if tcp else dns.query.udp)(m, V4, port=lab.port, timeout=3).rcode() == dns.rcode.NOERROR


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_tsig_errors(lab: SrvdServer, tcp: bool) -> None:
    port = lab.port
    op = ("add", "tsig-error", 60, "A", "192.0.2.1")
    wrong_secret = TsigKey(ROOT.name, _fixed_secret("not the secret/"), ROOT.algorithm)
    with unchanged(port):
        # An unknown key: NOTAUTH, TSIG error BADKEY, unsigned (RFC 8945 5.2.1, 5.3.2).
        r = send(port, STRANGER, op, tcp=tcp)
        assert (r.rcode, r.tsig_error, r.signed) == ("NOTAUTH", "BADKEY", False), r
        # A known name with another algorithm than its own is not that key: BADKEY.
        r = send(port, ROOT, op, tcp=tcp, sign_as=ADMIN["hmac-sha512"])
        assert (r.rcode, r.tsig_error) == ("NOTAUTH", "BADKEY"), r
        # The right name, the wrong secret: BADSIG, unsigned.
        r = send(port, wrong_secret, op, tcp=tcp)
        assert (r.rcode, r.tsig_error, r.signed) == ("NOTAUTH", "BADSIG", False), r
        assert not tsig_verifies(r.wire, ROOT, r.request.mac)
        # Out of the fudge (300 s) either way: BADTIME, signed, with srvd's time in other data.
        for skew in (-600, 600):
            r = send(port, ROOT, op, tcp=tcp, skew=skew)
            assert (r.rcode, r.tsig_error) == ("NOTAUTH", "BADTIME"), (skew, r)
            assert r.signed, f"skew {skew}: the BADTIME response must be signed (RFC 8945 5.2.3)"
            other = response_tsig(r.wire)[1].other
            assert len(other) == 6 and abs(int.from_bytes(other, "big") - time.time()) < 30, other
    # Within the fudge the request is good.
    ok(send(port, ROOT, op, tcp=tcp, skew=200))
    ok(send(port, ROOT, ("delete", "tsig-error"), tcp=tcp, skew=-200))


# --------------------------------------------------------------------------- 5. transfers and update keys


def transfer(port: int, key: TsigKey | None, rdtype: str = "AXFR") -> tuple[int, bool]:
    """(rcode, whether it was a complete transfer)."""
    kw = {"keys": key.keyring(), "keyname": key.name} if key else {}
    x = xfr(port, rdtype, serial=1 if rdtype == "IXFR" else None, **kw)
    return x.rcode, x.rcode == 0 and x.is_full()


def test_update_keys_do_not_transfer_without_a_rule_naming_them(lab: SrvdServer) -> None:
    """--allow-transfer 127.0.0.0/8 names no key: any key that is not an update key."""
    for rdtype in ("AXFR", "IXFR"):
        assert transfer(lab.port, XFR, rdtype) == (0, True), f"{rdtype} with the transfer-only key"
        assert transfer(lab.port, CLI, rdtype)[0] == dns.rcode.REFUSED, f"{rdtype} with the --tsig-key update key"
        for key in (ACME, DDNS, *ADMIN.values()):
            assert transfer(lab.port, key, rdtype)[0] == dns.rcode.REFUSED, f"{rdtype} signed with update key {key.name}"


def test_a_rule_naming_an_update_key_lets_it_transfer(srvd_bin: str, tmp_path: Path) -> None:
    files = key_files(tmp_path)
    s = Srvd(tmp_path / "srvd", binary=srvd_bin, admin=None, cwd=tmp_path,
             extra_args=key_args(files) + ["--allow-update", "acme:lab.example", "--allow-transfer", "127.0.0.0/8:acme"])
    s.copy_zone(SHIPPED_ZONE)
    try:
        s.start()
        assert transfer(s.port, ACME) == (0, True)
        assert transfer(s.port, ACME, "IXFR") == (0, True)
        assert transfer(s.port, XFR)[0] == dns.rcode.REFUSED, "no rule admits the xfr key here"
        assert transfer(s.port, None)[0] == dns.rcode.REFUSED
        # The AXFR is the zone acme's update changed.
        ok(send(s.port, ACME, ("add", "www", 60, "A", "192.0.2.1")))
        assert (f"www.{ZONE}", 60, "A", "192.0.2.1") in axfr(s.port, ACME)
    finally:
        s.stop()


def test_update_only_keys_leave_unsigned_secondaries_as_they_were(srvd_bin: str, tmp_path: Path) -> None:
    """Regression: defining a key only for updates made every unsigned transfer REFUSED,
    cutting off a secondary that had worked without TSIG."""
    s = Srvd(tmp_path / "srvd", binary=srvd_bin, admin=None, cwd=tmp_path,
             extra_args=["--tsig-key", f"{ACME.name}:{ACME.secret}", "--allow-update", f"{ACME.name}:lab.example",
                         "--allow-transfer", "127.0.0.0/8"])
    s.copy_zone(SHIPPED_ZONE)
    try:
        s.start()
        assert transfer(s.port, None) == (0, True), "an unsigned AXFR from an allowed block"
        assert transfer(s.port, ACME)[0] == dns.rcode.REFUSED, "the update key still may not transfer"
    finally:
        s.stop()


# --------------------------------------------------------------------------- 6. UDP engines and TCP


@pytest.mark.parametrize("engine", [None, "nio"], ids=["default-engine", "nio"])
def test_udp_engines_and_tcp(srvd_bin: str, tmp_path: Path, engine: str | None) -> None:
    files = key_files(tmp_path)
    s = Srvd(tmp_path / "srvd", binary=srvd_bin, admin=None, cwd=tmp_path,
             extra_args=key_args(files) + ["--allow-update", f"{ROOT.name}:lab.example", "--allow-transfer", "127.0.0.0/8"])
    s.udp_engine = engine  # None: no --udp-engine at all, whatever SRVD_UDP_ENGINE says
    s.copy_zone(SHIPPED_ZONE)
    try:
        s.start()
        assert ("--udp-engine" in s.command()) == (engine is not None)
        ok(send(s.port, ROOT, ("add", "udp", 60, "A", "192.0.2.10")))
        assert dig(s.port, "udp.lab.example.", "A") == "192.0.2.10"
        ok(send(s.port, ROOT, ("add", "tcp", 60, "A", "192.0.2.11"), tcp=True))
        assert dig(s.port, "tcp.lab.example.", "A", "+tcp") == "192.0.2.11"
        assert serial(s.port) == FILE_SERIAL + 2
        # An error over UDP on this engine too.
        r = send(s.port, STRANGER, ("add", "x", 60, "A", "192.0.2.12"))
        assert (r.rcode, r.tsig_error) == ("NOTAUTH", "BADKEY")
    finally:
        s.stop()


# --------------------------------------------------------------------------- 7. start-up validation

GOOD_KEY = ADMIN["hmac-sha256"].tsig_keygen_text()

BAD_KEY_FILES = {
    # name: (file text, what the message must contain besides the path)
    "unknown-algorithm": (f'{GOOD_KEY}key "old" {{\n\talgorithm hmac-md5;\n\tsecret "{XFR.secret}";\n}};\n',
                          ["line 6", "hmac-md5"]),
    "unknown-statement": (f'{GOOD_KEY}key "typo" {{\n\talgorithm hmac-sha256;\n\tsecrt "{XFR.secret}";\n}};\n',
                          ["line 7", "secrt"]),
    "missing-semicolon": (f'{GOOD_KEY}key "broken" {{\n\talgorithm hmac-sha256\n\tsecret "{XFR.secret}";\n}};\n',
                          [re.compile(r"line [67]\b")]),
    "unterminated-string": (f'{GOOD_KEY}key "open {{\n\talgorithm hmac-sha256;\n}};\n', ["line 5"]),
    "bad-secret": (f'{GOOD_KEY}key "b64" {{\n\talgorithm hmac-sha256;\n\tsecret "not base64!";\n}};\n',
                   ["line 7", "b64"]),
    "no-secret": (f'{GOOD_KEY}key "empty" {{\n\talgorithm hmac-sha256;\n}};\n', ["line 5", "empty"]),
}


def start_fails(srvd_bin: str, workdir: Path, args: list[str]) -> str:
    """srvd with `args` must exit 64 without serving anything; its output."""
    s = Srvd(workdir, binary=srvd_bin, cwd=workdir, extra_args=args)
    s.copy_zone(SHIPPED_ZONE)
    rc = s.run_to_exit()
    out = s.log()
    assert rc == 64, f"srvd {' '.join(args)}: exit {rc}, want 64\n{out}"
    assert "serving" not in out, f"srvd served before it refused its flags:\n{out}"
    assert not s.token_path.exists(), "srvd created its admin token before it refused its flags"
    return out


def test_bad_key_files(srvd_bin: str, tmp_path: Path) -> None:
    for name, (text, wants) in BAD_KEY_FILES.items():
        path = tmp_path / f"{name}.keys"
        path.write_text(text)
        out = start_fails(srvd_bin, tmp_path / name, ["--tsig-key-file", str(path)])
        for want in [str(path), *wants]:
            found = want.search(out) if isinstance(want, re.Pattern) else want in out
            assert found, f"{name}: the message does not name {want!r}:\n{out}"


@pytest.mark.parametrize(("args", "wants"), [
    (["--allow-update", "nokey:lab.example"], ["nokey"]),
    (["--allow-transfer", "127.0.0.1:nokey"], ["nokey", "127.0.0.1:nokey"]),
    (["--tsig-key-file", "/nonexistent/update.keys"], ["/nonexistent/update.keys"]),
    (["--allow-update", "acme:lab.example:_acme-challenge.*:NOSUCHTYPE"], ["NOSUCHTYPE"]),
    (["--allow-update", "acme:lab.example:a.*.*:TXT"], ["a.*.*"]),
    (["--tsig-key", "cli"], ["--tsig-key"]),
], ids=["undefined-update-key", "undefined-transfer-key", "missing-key-file", "unknown-type", "two-stars", "tsig-key-form"])
def test_bad_rule_flags(srvd_bin: str, tmp_path: Path, args: list[str], wants: list[str]) -> None:
    files = key_files(tmp_path)
    out = start_fails(srvd_bin, tmp_path / "srvd", key_args(files) + args)
    for want in wants:
        assert want in out, f"the message does not name {want!r}:\n{out}"
