"""Helpers for the RFC 2136 dynamic UPDATE tests (test_update_differential.py): update
scripts as data, one way to turn a script into a message (dnspython's UpdateMessage) or into
`nsupdate`/`knsupdate` input, and servers to send them to behind one interface,
`UpdateTarget` (send, AXFR, reset): Knot DNS as a primary (the reference) and srvd.

An `Outcome` is what a server made of a script: the response's RCODE, its TSIG error and
whether the response was signed, and the zone afterwards by AXFR as a set of normalized
records, the SOA serial written relative to the serial before the script (`serial+1`), so
that two servers' outcomes compare with `==`.

No conftest fixtures: the processes are started here (Knot by transfer_support's `Knot`,
srvd by launcher's `Srvd`), the tests own their lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable, Sequence
from unittest import mock

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update
import dns.zone

from conftest import frame, recv_frame, tcp_connect, udp_raw
from launcher import SHIPPED_ZONE, SRVD_BIN, Srvd, find_tool
from transfer_support import HOST, ZONE, Knot, xfr

# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class TsigKey:
    name: str  # as written in configuration and key files: no trailing dot
    secret: str  # base64
    algorithm: str = "hmac-sha256"

    @property
    def dns_name(self) -> dns.name.Name:
        return dns.name.from_text(self.name)

    @property
    def dns_algorithm(self) -> dns.name.Name:
        return dns.name.from_text(self.algorithm)

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        return {self.dns_name: dns.tsig.Key(self.dns_name, self.secret, self.dns_algorithm)}

    def tsig_keygen_text(self) -> str:
        """The key in the format `tsig-keygen` writes (and `nsupdate -k` reads)."""
        return f'key "{self.name}" {{\n\talgorithm {self.algorithm};\n\tsecret "{self.secret}";\n}};\n'

    def ky_text(self) -> str:
        """alg:name:secret, what `nsupdate -y`, `knsupdate -y` and `knsupdate -k` take."""
        return f"{self.algorithm}:{self.name}:{self.secret}"


def _fixed_secret(text: str, size: int = 32) -> str:
    """A fixed secret (the tests must be reproducible): `text` padded to `size` bytes."""
    raw = text.encode()
    return base64.b64encode((raw * (size // len(raw) + 1))[:size]).decode()


# The key the update scripts sign with: may update lab.example. and transfer it.
UPDATE_KEY = TsigKey("update-key", _fixed_secret("srvd-update-differential/"))
# A second key allowed to update, to cover another HMAC (RFC 8945 section 6).
UPDATE_KEY_SHA512 = TsigKey("update-sha512", _fixed_secret("srvd-update-sha512/", 64), "hmac-sha512")
# Known to the server, allowed to transfer, not to update.
TRANSFER_KEY = TsigKey("transfer-key", _fixed_secret("srvd-transfer-only/"))
# Not known to the server at all.
STRANGER_KEY = TsigKey("stranger-key", _fixed_secret("nobody-knows-this/"))
# The update key's name with another secret: a MAC that cannot verify.
WRONG_SECRET_KEY = TsigKey(UPDATE_KEY.name, _fixed_secret("not-the-right-secret/"))

SERVER_KEYS = (UPDATE_KEY, UPDATE_KEY_SHA512, TRANSFER_KEY)  # what every target is configured with
UPDATE_KEYS = (UPDATE_KEY, UPDATE_KEY_SHA512)  # the ones with the update right

KEYS = {
    "update": UPDATE_KEY,
    "update-sha512": UPDATE_KEY_SHA512,
    "transfer-only": TRANSFER_KEY,
    "unknown": STRANGER_KEY,
    "wrong-secret": WRONG_SECRET_KEY,
    None: None,  # unsigned
}
SERVER_KEY_NAMES = {"update", "update-sha512", "transfer-only"}  # KEYS entries the targets know


def write_key_file(path: Path, keys: Iterable[TsigKey] = SERVER_KEYS) -> Path:
    """Several keys in tsig-keygen format, one file (srvd's --tsig-key-file, nsupdate -k)."""
    path.write_text("".join(k.tsig_keygen_text() for k in keys))
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- the zone

# Records the scripts touch, beyond the shipped zone (SOA, NS ns1, ns1/infra0..2 A, two SRV
# sets): a TXT, a CNAME, a delegation, a name with two A and a TXT, a TXT with its own TTL,
# a wildcard and a TXT at the apex.
EXTRA_RECORDS = """\

; --- added by update_support.py for the UPDATE scripts
@        IN TXT   "apex"
static   IN TXT   "file"
alias    IN CNAME infra0
child    IN NS    ns.elsewhere.test.
multi    IN A     127.0.0.21
multi    IN A     127.0.0.22
multi    IN TXT   "multi"
long 600 IN TXT   "ten minutes"
*.wild   IN TXT   "wildcard"
"""


def update_zone_text() -> str:
    """zones/lab.example.zone as shipped, plus EXTRA_RECORDS."""
    return SHIPPED_ZONE.read_text() + EXTRA_RECORDS


def _file_serial(text: str) -> int:
    z = dns.zone.from_text(text, origin=ZONE, relativize=False)
    return z.find_rdataset(ZONE, "SOA")[0].serial


START_SERIAL = _file_serial(update_zone_text())

# --------------------------------------------------------------------------- names and records

Record = tuple[str, int, str, str]  # (owner, TTL, type, rdata): lowercase names, absolute


def absolute(name: str, origin: str = ZONE) -> str:
    """A script's name: `@` is the apex, a trailing dot absolute, anything else relative."""
    if name == "@":
        return origin
    if name.endswith("."):
        return name
    return f"{name}.{origin}"


_SERIAL_MARK = re.compile(r"\{serial([+-]\d+)?\}")


def expand(text: str, base_serial: int = START_SERIAL) -> str:
    """`{serial}`, `{serial+10}`, `{serial-1}` in rdata: the start serial plus n (mod 2^32)."""
    return _SERIAL_MARK.sub(lambda m: str((base_serial + int(m.group(1) or 0)) % 2**32), text)


def parse_rdata(rdtype: str | int, text: str, base_serial: int = START_SERIAL,
                rdclass: int = dns.rdataclass.IN) -> dns.rdata.Rdata:
    """Zone-file rdata text; relative names are relative to lab.example. and stay absolute."""
    return dns.rdata.from_text(rdclass, rdtype, expand(text, base_serial), origin=dns.name.from_text(ZONE),
                               relativize=False)


def canonical_rdata(rd: dns.rdata.Rdata) -> str:
    """The rdata's text with the names lowercased where RFC 4034 section 6.2 says so (its
    canonical form), so that case differences in rdata names do not count."""
    wire = rd.to_digestable()
    return dns.rdata.from_wire(rd.rdclass, rd.rdtype, wire, 0, len(wire)).to_text()


def record(owner: dns.name.Name | str, ttl: int, rd: dns.rdata.Rdata) -> Record:
    owner_text = owner.to_text() if isinstance(owner, dns.name.Name) else owner
    return (owner_text.lower(), ttl, dns.rdatatype.to_text(rd.rdtype), canonical_rdata(rd))


def parse_record(line: str, base_serial: int = START_SERIAL) -> Record:
    """`name ttl type rdata...` as in the scripts' expectations (names relative to the zone)."""
    name, ttl, rdtype, rest = expand(line, base_serial).split(None, 3)
    rd = parse_rdata(rdtype, rest, base_serial)
    return record(absolute(name), int(ttl), rd)


def zone_text_records(text: str) -> set[Record]:
    z = dns.zone.from_text(text, origin=ZONE, relativize=False)
    return {record(name, ttl, rd) for name, ttl, rd in z.iterate_rdatas()}


def serial_delta(new: int, old: int) -> int:
    """new - old in RFC 1982 arithmetic, as a signed number."""
    d = (new - old) % 2**32
    return d - 2**32 if d >= 2**31 else d


def normalize(records: Iterable[Record], base_serial: int) -> frozenset[Record]:
    """The SOA's serial written as `serial+N` (N relative to `base_serial`)."""
    out = set()
    for owner, ttl, rdtype, rdata in records:
        if rdtype == "SOA":
            fields = rdata.split()
            d = serial_delta(int(fields[2]), base_serial)
            fields[2] = f"serial{d:+d}"
            rdata = " ".join(fields)
        out.add((owner, ttl, rdtype, rdata))
    return frozenset(out)


def normalized_serial(zone: Iterable[Record]) -> int:
    soa = [r for r in zone if r[2] == "SOA"]
    assert len(soa) == 1, f"not one SOA: {soa}"
    return int(soa[0][3].split()[2].removeprefix("serial"))


def describe_zone_diff(before: Iterable[Record], after: Iterable[Record]) -> str:
    before, after = set(before), set(after)
    lines = [f"  - {' '.join(map(str, r))}" for r in sorted(before - after)]
    lines += [f"  + {' '.join(map(str, r))}" for r in sorted(after - before)]
    return "\n".join(lines) or "  (no difference)"


# --------------------------------------------------------------------------- scripts

# A prerequisite (RFC 2136 section 2.4) or an update (section 2.5) is a tuple:
#   ("yxrrset", name, type)            2.4.1 RRset exists (value independent): CLASS ANY
#   ("yxrrset", name, type, rdata...)  2.4.2 RRset exists (value dependent): CLASS zone, TTL 0
#   ("nxrrset", name, type)            2.4.3 RRset does not exist: CLASS NONE
#   ("yxdomain", name)                 2.4.4 name is in use: CLASS ANY, TYPE ANY
#   ("nxdomain", name)                 2.4.5 name is not in use: CLASS NONE, TYPE ANY
#   ("add", name, ttl, type, rdata...) 2.5.1 add to an RRset
#   ("delete", name, type)             2.5.2 delete an RRset: CLASS ANY
#   ("delete", name)                   2.5.3 delete all RRsets from a name: CLASS ANY, TYPE ANY
#   ("delete", name, type, rdata...)   2.5.4 delete an RR from an RRset: CLASS NONE
#   ("raw", name, ttl, class, type, rdata or None)
#                                      any RR as it is (for the FORMERR cases; nothing a client
#                                      tool would write; rdata None: RDLENGTH 0)
# Names: "@" the apex, "x." absolute, else relative to lab.example.; rdata is zone-file text,
# relative names in it are relative to lab.example., `{serial+N}` is the start serial + N.


@dataclass(frozen=True)
class Script:
    id: str
    what: str  # the RFC text it checks
    prereqs: tuple = ()
    updates: tuple = ()
    key: str | None = "update"  # a KEYS entry; None: unsigned
    zone: str = ZONE  # the zone section's name
    zone_type: str = "SOA"  # the zone section's type (RFC 2136 3.1.1: must be SOA)
    skew: int = 0  # seconds the TSIG time is off (BADTIME)
    tcp: bool = False
    # What RFC 2136 (and RFC 8945 for TSIG) says the server answers ...
    rcode: str = "NOERROR"
    tsig_error: str | None = None  # the response's TSIG error (BADKEY, BADSIG, BADTIME)
    # ... and does to the zone: records removed and added ("name ttl type rdata"), and how
    # far the serial moves (default: +1 if anything changed, else 0).
    removes: tuple[str, ...] = ()
    adds: tuple[str, ...] = ()
    serial: int | None = None
    # Where Knot DNS 3.2 does something else than the RFC: what it does and why. The Knot
    # test asserts Knot's behaviour (`knot_rcode`, `knot_removes`, ...), so the deviation
    # stays documented and checked; the differential test compares with Knot, not the RFC.
    knot_note: str = ""
    knot_rcode: str | None = None  # with knot_tsig_error: Knot's RCODE and TSIG error
    knot_tsig_error: str | None = None
    knot_removes: tuple[str, ...] | None = None
    knot_adds: tuple[str, ...] | None = None
    knot_serial: int | None = None
    knot_signed: bool | None = None

    @property
    def signed_with(self) -> TsigKey | None:
        return KEYS[self.key]

    def expected(self, knot: bool = False) -> "Expectation":
        rcode, tsig_error = self.rcode, self.tsig_error
        if knot and self.knot_rcode:
            rcode, tsig_error = self.knot_rcode, self.knot_tsig_error
        removes = self.knot_removes if knot and self.knot_removes is not None else self.removes
        adds = self.knot_adds if knot and self.knot_adds is not None else self.adds
        if knot and self.knot_serial is not None:
            serial = self.knot_serial
        elif self.serial is not None and not (knot and (self.knot_removes is not None or self.knot_adds is not None)):
            serial = self.serial
        else:
            serial = 1 if (removes or adds) else 0
        # RFC 8945 5.3: the response to a request signed with a key the server knows is
        # signed with it, except after a key or MAC error (5.3.2: BADKEY, BADSIG).
        signed = self.key in SERVER_KEY_NAMES and tsig_error not in ("BADKEY", "BADSIG")
        if knot and self.knot_signed is not None:
            signed = self.knot_signed
        return Expectation(rcode, tsig_error, signed, tuple(removes), tuple(adds), serial)


@dataclass(frozen=True)
class Expectation:
    rcode: str
    tsig_error: str | None
    signed: bool
    removes: tuple[str, ...]
    adds: tuple[str, ...]
    serial: int

    def zone(self, pristine: Iterable[Record], base_serial: int = START_SERIAL) -> frozenset[Record]:
        """The normalized zone the expectation describes, from the pristine (normalized) zone."""
        zone = set(pristine)
        for line in self.removes:
            (r,) = normalize([parse_record(line, base_serial)], base_serial)
            assert r in zone, f"expectation removes {r}, which is not in the zone"
            zone.discard(r)
        for line in self.adds:
            zone |= normalize([parse_record(line, base_serial)], base_serial)
        soa = [r for r in zone if r[2] == "SOA"]
        assert len(soa) == 1, f"expectation leaves not one SOA: {soa}"
        fields = soa[0][3].split()
        fields[2] = f"serial{self.serial:+d}"
        zone.discard(soa[0])
        zone.add((soa[0][0], soa[0][1], "SOA", " ".join(fields)))
        return frozenset(zone)


def build_message(script: Script, base_serial: int = START_SERIAL) -> dns.update.UpdateMessage:
    """The script as an UPDATE message, signed as the script says (not yet rendered: the
    TSIG MAC is computed by `to_wire`, see `render`)."""
    msg = dns.update.UpdateMessage(script.zone)
    if script.zone_type != "SOA":
        msg.zone[0] = dns.rrset.RRset(dns.name.from_text(script.zone), dns.rdataclass.IN,
                                      dns.rdatatype.from_text(script.zone_type))

    def name(n: str) -> dns.name.Name:
        return dns.name.from_text(absolute(n))

    def rdatas(rdtype: str, texts: Sequence[str]) -> list[dns.rdata.Rdata]:
        return [parse_rdata(rdtype, t, base_serial) for t in texts]

    def raw(section: list, rr: tuple) -> None:
        _, n, ttl, rdclass, rdtype, rdata = rr
        rdclass_v = dns.rdataclass.from_text(rdclass)
        rdtype_v = dns.rdatatype.from_text(rdtype)
        if rdclass_v in (dns.rdataclass.ANY, dns.rdataclass.NONE):
            # IN rdata written with the meta CLASS: what dnspython's `deleting` does
            rrset = dns.rrset.RRset(name(n), dns.rdataclass.IN, rdtype_v, deleting=rdclass_v)
            data_class = dns.rdataclass.IN
        else:
            rrset = dns.rrset.RRset(name(n), rdclass_v, rdtype_v)
            data_class = rdclass_v
        if rdata is not None:
            rrset.add(parse_rdata(rdtype_v, rdata, base_serial, data_class), ttl)
        section.append(rrset)

    for p in script.prereqs:
        kind = p[0]
        if kind == "yxrrset" and len(p) == 3:
            msg.present(name(p[1]), p[2])
        elif kind == "yxrrset":
            for rd in rdatas(p[2], p[3:]):
                msg.present(name(p[1]), rd)
        elif kind == "nxrrset":
            msg.absent(name(p[1]), p[2])
        elif kind == "yxdomain":
            msg.present(name(p[1]))
        elif kind == "nxdomain":
            msg.absent(name(p[1]))
        elif kind == "raw":
            raw(msg.prerequisite, p)
        else:
            raise ValueError(f"{script.id}: unknown prerequisite {p}")
    for u in script.updates:
        kind = u[0]
        if kind == "add":
            _, n, ttl, rdtype, *texts = u
            for rd in rdatas(rdtype, texts):
                msg.add(name(n), ttl, rd)
        elif kind == "delete" and len(u) == 2:
            msg.delete(name(u[1]))
        elif kind == "delete" and len(u) == 3:
            msg.delete(name(u[1]), u[2])
        elif kind == "delete":
            for rd in rdatas(u[2], u[3:]):
                msg.delete(name(u[1]), rd)
        elif kind == "raw":
            raw(msg.update, u)
        else:
            raise ValueError(f"{script.id}: unknown update {u}")
    key = script.signed_with
    if key is not None:
        msg.use_tsig(key.keyring(), keyname=key.dns_name, algorithm=key.dns_algorithm)
    return msg


def render(msg: dns.message.Message, skew: int = 0) -> bytes:
    """The message's wire form, TSIG-signed `skew` seconds off the clock (RFC 8945 5.2.3)."""
    if not skew:
        return msg.to_wire()
    clock = SimpleNamespace(time=lambda: time.time() + skew)
    with mock.patch.object(dns.message, "time", clock):
        return msg.to_wire()


# --------------------------------------------------------------------------- responses


@dataclass
class Response:
    wire: bytes | None  # None: no answer within the timeout
    rcode: str
    tsig_error: str | None = None  # the TSIG RR's error field, if not NOERROR
    signed: bool = False  # a TSIG RR whose MAC verified with the request's key
    detail: str = ""

    @property
    def message(self) -> dns.message.Message | None:
        """The response parsed by dnspython (None if it cannot: it refuses an UPDATE whose
        zone section is not one SOA question, which is what a FORMERR echoes)."""
        try:
            return dns.message.from_wire(self.wire, keyring=False, ignore_trailing=True) if self.wire else None
        except dns.exception.FormError:
            return None


TSIG_ERRORS = {16: "BADSIG", 17: "BADKEY", 18: "BADTIME", 22: "BADTRUNC"}
_HASHES = {"hmac-sha1": hashlib.sha1, "hmac-sha224": hashlib.sha224, "hmac-sha256": hashlib.sha256,
           "hmac-sha384": hashlib.sha384, "hmac-sha512": hashlib.sha512}


def _skip_name(wire: bytes, pos: int) -> int:
    while True:
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def response_tsig(wire: bytes) -> tuple[dns.name.Name, dns.rdata.Rdata, int] | None:
    """The message's TSIG RR (RFC 8945 4.2: the last RR of the additional section) as
    (owner, rdata, offset of the RR), read straight from the wire: dnspython does not parse
    every response an UPDATE can get (see Response.message)."""
    qd, an, ns, ar = struct.unpack("!HHHH", wire[4:12])
    if ar == 0:
        return None
    pos = 12
    for _ in range(qd):
        pos = _skip_name(wire, pos) + 4
    start = rdstart = rdlen = rdtype = 0
    for _ in range(an + ns + ar):
        start = pos
        pos = _skip_name(wire, pos)
        rdtype, _, _, rdlen = struct.unpack("!HHIH", wire[pos:pos + 10])
        rdstart = pos + 10
        pos = rdstart + rdlen
    if rdtype != dns.rdatatype.TSIG:
        return None
    owner, _ = dns.name.from_wire(wire, start)
    rd = dns.rdata.from_wire(dns.rdataclass.ANY, dns.rdatatype.TSIG, wire, rdstart, rdlen)
    return owner, rd, start


def tsig_verifies(wire: bytes, key: TsigKey, request_mac: bytes) -> bool:
    """Whether a response's TSIG MAC verifies with `key` (RFC 8945 4.3.1 and 4.3.3), checked
    here rather than by dnspython, which refuses to look at the MAC of an error response
    (a BADTIME response is signed: RFC 8945 5.3.2)."""
    found = response_tsig(wire)
    if found is None:
        return False
    owner, rd, start = found
    if owner != key.dns_name or rd.algorithm != key.dns_algorithm or not rd.mac:
        return False
    (arcount,) = struct.unpack("!H", wire[10:12])
    message = struct.pack("!H", rd.original_id) + wire[2:10] + struct.pack("!H", arcount - 1) + wire[12:start]
    variables = (
        key.dns_name.canonicalize().to_wire()
        + struct.pack("!HI", dns.rdataclass.ANY, 0)
        + key.dns_algorithm.canonicalize().to_wire()
        + struct.pack("!QHHH", rd.time_signed, rd.fudge, rd.error, len(rd.other))[2:]
        + rd.other
    )
    mac = hmac.new(base64.b64decode(key.secret), digestmod=_HASHES[key.algorithm])
    mac.update(struct.pack("!H", len(request_mac)) + request_mac + message + variables)
    return hmac.compare_digest(mac.digest(), rd.mac)


def read_response(wire: bytes, request: dns.message.Message, key: TsigKey | None) -> Response:
    qid, flags = struct.unpack("!HH", wire[:4])
    assert qid == request.id, f"response id {qid} != request id {request.id}"
    assert flags & 0x8000, "not a response (QR clear)"
    assert (flags >> 11) & 0xF == dns.opcode.UPDATE, f"response opcode {(flags >> 11) & 0xF}, not UPDATE"
    rcode = flags & 0xF  # no EDNS in these requests, so no extended RCODE
    tsig_error = None
    signed = False
    found = response_tsig(wire)
    if found is not None:
        err = found[1].error
        tsig_error = TSIG_ERRORS.get(err, str(err)) if err else None
        signed = key is not None and tsig_verifies(wire, key, request.mac)
    return Response(wire, dns.rcode.to_text(rcode), tsig_error, signed)


def exchange(port: int, msg: dns.message.Message, *, tcp: bool = False, skew: int = 0,
             key: TsigKey | None = None, host: str = HOST, timeout: float = 3.0) -> Response:
    """Sends one UPDATE over UDP or TCP and reads the response without letting dnspython
    reject it (TSIG error responses, FORMERR echoes). `key` verifies a signed response. No
    retry over TCP on TC: the update may have been applied already."""
    wire = render(msg, skew)
    if not tcp:
        answer = udp_raw(port, wire, host=host, timeout=timeout)
        if answer is None:
            return Response(None, "TIMEOUT", detail=f"no UDP response within {timeout}s")
    else:
        with tcp_connect(port, host=host, timeout=timeout) as s:
            s.sendall(frame(wire))
            answer = recv_frame(s)
        if answer is None:
            return Response(None, "TIMEOUT", detail="TCP connection closed without a response")
    r = read_response(answer, msg, key)
    if struct.unpack("!H", answer[2:4])[0] & dns.flags.TC:
        r.detail = "the response has TC set"
    return r


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Outcome:
    """What one script did on one server."""

    rcode: str
    tsig_error: str | None
    signed: bool  # the response carried a TSIG that verified with the request's key
    zone: frozenset[Record]  # normalized (serial relative to the start of the script)

    @property
    def serial(self) -> int:
        return normalized_serial(self.zone)

    def comparable(self) -> tuple:
        return (self.rcode, self.tsig_error, self.signed, self.zone)

    def describe(self, pristine: Iterable[Record] | None = None) -> str:
        head = f"rcode={self.rcode} tsig_error={self.tsig_error} signed={self.signed} serial{self.serial:+d}"
        if pristine is None:
            return head
        return f"{head}\n{describe_zone_diff(pristine, self.zone)}"


class UpdateTarget:
    """A server the update scripts can be sent to. Subclasses start the process and define
    `send`, `axfr` and `reset`; `run` is the one way a script is played."""

    name = "target"

    def __init__(self, workdir: Path, zone_text: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.zone_text = zone_text or update_zone_text()
        self.base_serial = _file_serial(self.zone_text)
        self.port = 0
        self._pristine: frozenset[Record] | None = None

    # -- the interface

    def start(self) -> "UpdateTarget":
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Puts the pristine zone back; afterwards AXFR shows it and nothing else."""
        raise NotImplementedError

    def send(self, msg: dns.message.Message, *, tcp: bool = False, skew: int = 0,
             key: TsigKey | None = None) -> Response:
        return exchange(self.port, msg, tcp=tcp, skew=skew, key=key)

    def axfr(self, key: TsigKey = UPDATE_KEY) -> set[Record]:
        """The served zone, by a TSIG-signed AXFR (raw records, serial as served)."""
        x = xfr(self.port, keys=key.keyring(), keyname=key.name)
        assert x.rcode == 0 and x.is_full(), f"AXFR from {self.name} failed:\n{x.describe()}\n{self.log_tail()}"
        out = set()
        for owner, ttl, rdtype, text in x.zone():
            rd = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
            out.add(record(owner, ttl, rd))
        return out

    def log_tail(self) -> str:
        return ""

    # -- built on it

    def pristine(self) -> frozenset[Record]:
        """The zone as loaded, normalized (serial+0)."""
        if self._pristine is None:
            self._pristine = normalize(zone_text_records(self.zone_text), self.base_serial)
        return self._pristine

    def served(self) -> frozenset[Record]:
        return normalize(self.axfr(), self.base_serial)

    def run(self, script: Script) -> tuple[Outcome, Response]:
        """Resets the zone, sends the script, transfers the zone."""
        self.reset()
        msg = build_message(script, self.base_serial)
        response = self.send(msg, tcp=script.tcp, skew=script.skew, key=script.signed_with)
        assert response.wire is not None, f"{self.name}: {response.detail}\n{self.log_tail()}"
        zone = self.served()
        return Outcome(response.rcode, response.tsig_error, response.signed, zone), response


# --------------------------------------------------------------------------- Knot as primary


def knot_primary_conf(directory: str | Path, port: int, *, host: str = HOST,
                      keys: Sequence[TsigKey] = SERVER_KEYS, update_keys: Sequence[TsigKey] = UPDATE_KEYS) -> str:
    """Knot DNS 3.2 as the primary of lab.example. that accepts RFC 2136 UPDATE signed with
    `update_keys`, and AXFR signed with any of `keys` (knot.conf(5) of 3.2).

    The zone file is never written back (zonefile-sync: -1) and no journal is kept
    (journal-content: none), so `knotc zone-reload` always brings back the file as it is:
    that is the reset between scripts. serial-policy is Knot's default (increment): an
    update that does not set the serial itself raises it by one."""
    d = str(directory)
    text = f"""\
server:
  listen: {host}@{port}
  rundir: "{d}"
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1

log:
  - target: stderr
    any: info

database:
  storage: "{d}"

key:
"""
    for k in keys:
        text += f"  - id: {k.name}\n    algorithm: {k.algorithm}\n    secret: {k.secret}\n"
    text += "\nacl:\n"
    for k in update_keys:
        text += f"  - id: update_{k.name}\n    key: {k.name}\n    action: [update, transfer]\n"
    others = [k for k in keys if k not in update_keys]
    for k in others:
        text += f"  - id: transfer_{k.name}\n    key: {k.name}\n    action: transfer\n"
    acls = ", ".join([f"update_{k.name}" for k in update_keys] + [f"transfer_{k.name}" for k in others])
    text += f"""
zone:
  - domain: {ZONE}
    storage: "{d}"
    file: lab.example.zone
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    serial-policy: increment
    acl: [{acls}]
"""
    return text


class KnotPrimary(Knot):
    """transfer_support's Knot process, configured as the primary (no `master`)."""

    name = "Knot"

    def __init__(self, workdir: Path, zone_text: str) -> None:
        super().__init__(workdir)
        self.zone_text = zone_text

    def config(self) -> str:
        return knot_primary_conf(self.workdir, self.port)

    @property
    def control_socket(self) -> Path:
        return self.workdir / "knot.sock"

    def knotc(self, *args: str, timeout: float = 10) -> str:
        knotc = find_tool("knotc")
        assert knotc, "knotc is not installed"
        p = subprocess.run([knotc, "-s", str(self.control_socket), "-b", "-t", str(int(timeout)), *args],
                           capture_output=True, text=True, timeout=timeout + 5, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, f"knotc {' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}\n{self.log_tail()}"
        return p.stdout

    def start(self) -> "KnotPrimary":  # type: ignore[override]
        (self.workdir / "lab.example.zone").write_text(self.zone_text)
        super().start(primary_port=0)
        return self


class KnotTarget(UpdateTarget):
    """Knot DNS 3.2 (Debian's knotd) as the reference. One process per test module; reset is
    `knotc -b zone-reload` of the untouched zone file (nothing is synced to it, no journal),
    then an AXFR that must show the pristine zone."""

    name = "Knot"

    def __init__(self, workdir: Path, zone_text: str | None = None) -> None:
        super().__init__(workdir, zone_text)
        self.knot = KnotPrimary(self.workdir, self.zone_text)

    def start(self) -> "KnotTarget":
        self.knot.start()
        self.port = self.knot.port
        return self

    def stop(self) -> None:
        self.knot.stop()

    def log_tail(self) -> str:
        return self.knot.log_tail()

    def reset(self) -> None:
        self.knot.check_alive()
        self.knot.knotc("zone-reload", ZONE)
        zone = self.served()
        assert zone == self.pristine(), (
            f"Knot does not serve the pristine zone after zone-reload:\n{describe_zone_diff(self.pristine(), zone)}"
            f"\n{self.log_tail()}")


# --------------------------------------------------------------------------- srvd


def srvd_supports_update(binary: str | None = None) -> bool:
    """True once `srvd serve --help` lists --allow-update (issue 15)."""
    binary = binary or SRVD_BIN
    try:
        p = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--allow-update" in (p.stdout + p.stderr)


def srvd_update_args(key_file: Path, keys: Sequence[TsigKey] = SERVER_KEYS,
                     update_keys: Sequence[TsigKey] = UPDATE_KEYS, zone: str = ZONE) -> list[str]:
    """srvd's flags for the same policy as knot_primary_conf (issue 15): the keys from a
    tsig-keygen file, the update keys may update the zone, every key may transfer it from
    loopback (a key named in --allow-update transfers only where --allow-transfer names it)."""
    args = ["--tsig-key-file", str(key_file)]
    for k in update_keys:
        args += ["--allow-update", f"{k.name}:{zone.rstrip('.')}"]
    for k in keys:
        args += ["--allow-transfer", f"127.0.0.0/8:{k.name}"]
    return args


class SrvdTarget(UpdateTarget):
    """srvd with UPDATE (issue 15), configured like KnotTarget:

        srvd serve --zones DIR/zones --data-dir DIR/data --dns 127.0.0.1:0 --admin 127.0.0.1:0 ...
            --tsig-key-file DIR/tsig.keys          (tsig-keygen format, the three SERVER_KEYS)
            --allow-update update-key:lab.example --allow-update update-sha512:lab.example
            --allow-transfer 127.0.0.0/8:update-key --allow-transfer 127.0.0.0/8:update-sha512
            --allow-transfer 127.0.0.0/8:transfer-key

    Reset: if the served zone (by AXFR) is not the pristine one, stop, a fresh data folder
    and the pristine zone file, start (srvd keeps updates in its data folder, which must not
    survive into the next script). Not used until srvd_supports_update()."""

    name = "srvd"

    def __init__(self, workdir: Path, zone_text: str | None = None) -> None:
        super().__init__(workdir, zone_text)
        self.key_file = write_key_file(self.workdir / "tsig.keys")
        self.srvd = Srvd(self.workdir, extra_args=srvd_update_args(self.key_file), cwd=self.workdir)

    def _fresh_files(self) -> None:
        shutil.rmtree(self.srvd.data, ignore_errors=True)
        self.srvd.write_zone("lab.example.zone", self.zone_text)

    def start(self) -> "SrvdTarget":
        self._fresh_files()
        self.srvd.start()
        self.port = self.srvd.port
        return self

    def stop(self) -> None:
        self.srvd.stop()

    def log_tail(self) -> str:
        return self.srvd.log_tail()

    def reset(self) -> None:
        if self.srvd.running() and self.served() == self.pristine():
            return  # the last script changed nothing: no restart needed
        self.srvd.stop()
        self._fresh_files()
        self.srvd.start()
        self.port = self.srvd.port
        zone = self.served()
        assert zone == self.pristine(), (
            f"srvd does not serve the pristine zone after a restart:\n{describe_zone_diff(self.pristine(), zone)}"
            f"\n{self.log_tail()}")


# --------------------------------------------------------------------------- client tools


def client_commands(script: Script, port: int, *, tool: str, base_serial: int = START_SERIAL) -> str:
    """The script as `nsupdate`/`knsupdate` input (both read the same commands for this
    subset; names and rdata absolute, so neither tool's origin rules matter). Raises
    ValueError for what the tools cannot say (raw RRs, another zone type, skew)."""
    if script.zone_type != "SOA" or script.skew:
        raise ValueError(f"{script.id}: not expressible with {tool}")

    def rdata(rdtype: str, text: str) -> str:
        return parse_rdata(rdtype, text, base_serial).to_text()

    lines = [f"server {HOST} {port}", f"zone {script.zone}"]
    for p in script.prereqs:
        kind = p[0]
        if kind == "raw":
            raise ValueError(f"{script.id}: raw prerequisites are not expressible with {tool}")
        if kind in ("yxdomain", "nxdomain"):
            lines.append(f"prereq {kind} {absolute(p[1])}")
        elif len(p) == 3:
            lines.append(f"prereq {kind} {absolute(p[1])} IN {p[2]}")
        else:
            for t in p[3:]:
                lines.append(f"prereq {kind} {absolute(p[1])} IN {p[2]} {rdata(p[2], t)}")
    for u in script.updates:
        kind = u[0]
        if kind == "raw":
            raise ValueError(f"{script.id}: raw updates are not expressible with {tool}")
        if kind == "add":
            _, n, ttl, rdtype, *texts = u
            for t in texts:
                lines.append(f"update add {absolute(n)} {ttl} IN {rdtype} {rdata(rdtype, t)}")
        elif len(u) == 2:
            lines.append(f"update delete {absolute(u[1])}")
        elif len(u) == 3:
            lines.append(f"update delete {absolute(u[1])} IN {u[2]}")
        else:
            for t in u[3:]:
                lines.append(f"update delete {absolute(u[1])} IN {u[2]} {rdata(u[2], t)}")
    lines.append("send")
    if tool == "nsupdate":
        lines.append("answer")
    return "\n".join(lines) + "\n"


@dataclass
class ClientResult:
    tool: str
    returncode: int
    output: str
    rcode: str  # as far as the output tells: NOERROR, or the error's name


_RCODE_NAMES = [dns.rcode.to_text(c) for c in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]


def _rcode_from_output(returncode: int, output: str) -> str:
    if returncode == 0:
        return "NOERROR"
    for name in _RCODE_NAMES:
        if re.search(rf"\b{name}\b", output):
            return name
    return f"exit {returncode}"


def run_client(script: Script, port: int, tool: str, workdir: Path) -> ClientResult:
    """Runs the script through a real client: `nsupdate -y`, `nsupdate -k FILE` (tsig-keygen
    format), `knsupdate -y` or `knsupdate -k FILE` (alg:name:secret). `tool` is one of
    "nsupdate -y", "nsupdate -k", "knsupdate -y", "knsupdate -k"."""
    program, mode = tool.split()
    binary = find_tool(program)
    assert binary, f"{program} is not installed"
    key = script.signed_with
    args = [binary]
    if key is not None:
        if mode == "-y":
            args += ["-y", key.ky_text()]
        else:
            kf = workdir / f"{program}-{key.name}.key"
            kf.write_text(key.tsig_keygen_text() if program == "nsupdate" else key.ky_text() + "\n")
            kf.chmod(0o600)
            args += ["-k", str(kf)]
    if script.tcp:
        args.append("-v")
    if program == "knsupdate":
        args += ["-t", "5", "-r", "0"]
    else:
        args += ["-t", "5", "-u", "2"]
    text = client_commands(script, port, tool=program)
    p = subprocess.run(args, input=text, capture_output=True, text=True, timeout=30)
    output = p.stdout + p.stderr
    return ClientResult(tool, p.returncode, output, _rcode_from_output(p.returncode, output))

