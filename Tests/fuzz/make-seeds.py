#!/usr/bin/env python3
"""Writes the seed corpora for fuzz-message and fuzz-responder (dnspython)."""
import os
import struct
import sys

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

root = sys.argv[1]
MSG = os.path.join(root, "message")
RSP = os.path.join(root, "responder")
for d in (MSG, RSP):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))


def put(d, name, data):
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(bytes(data))


COOKIE = dns.edns.GenericOption(10, bytes.fromhex("0123456789abcdef"))
COOKIE_FULL = dns.edns.GenericOption(10, bytes.fromhex("0123456789abcdef0100000065a1b2c3d4e5f60718293a4b"))
NSID = dns.edns.GenericOption(3, b"")
PADDING = dns.edns.GenericOption(12, bytes(16))
ECS = dns.edns.ECSOption("192.0.2.0", 24)


def q(name, rdtype, id=0x1234, edns=-1, payload=1232, options=None, rd=True, ad=False, cd=False,
      do=False, rdclass="IN", opcode=None, version=0):
    m = dns.message.make_query(name, rdtype, rdclass=rdclass, use_edns=edns, payload=payload,
                               options=options, want_dnssec=do)
    if edns >= 0 and version:
        m.use_edns(version, 0, payload, options=options)
        if do:
            m.want_dnssec(True)
    m.id = id
    if not rd:
        m.flags &= ~dns.flags.RD
    if ad:
        m.flags |= dns.flags.AD
    if cd:
        m.flags |= dns.flags.CD
    if opcode is not None:
        m.set_opcode(opcode)
    return m.to_wire()


def rr(text, origin="example."):
    n, ttl, cls, t, *rest = text.split(None, 4)
    return dns.rrset.from_text(n, int(ttl), cls, t, " ".join(rest))


# ---------------------------------------------------------------- queries (both corpora)
both = {
    # etcd's discovery lookups: Go's resolver without and with EDNS.
    "etcd-server-srv-noedns": q("_etcd-server._tcp.lab.example.", "SRV", rd=True),
    "etcd-server-srv-edns": q("_etcd-server._tcp.lab.example.", "SRV", edns=0, payload=1232),
    "etcd-server-ssl-srv": q("_etcd-server-ssl._tcp.lab.example.", "SRV", edns=0, payload=4096, ad=True),
    "etcd-client-srv": q("_etcd-client._tcp.lab.example.", "SRV"),
    "etcd-client-ssl-srv-do": q("_etcd-client-ssl._tcp.lab.example.", "SRV", edns=0, do=True, cd=True),
    "a-cookie": q("www.example.", "A", edns=0, options=[COOKIE], ad=True),
    "aaaa-nsid": q("infra0.lab.example.", "AAAA", edns=0, options=[NSID]),
    "a-cookie-full-padding": q("ns1.example.", "A", edns=0, options=[COOKIE_FULL, PADDING]),
    "a-ecs": q("www.other.test.", "A", edns=0, options=[ECS]),
    "any": q("example.", "ANY", edns=0),
    "axfr": q("example.", "AXFR", rd=False),
    "soa": q("example.", "SOA", rd=False),
    "notify": q("example.", "SOA", opcode=dns.opcode.NOTIFY, rd=False),
    "edns-version1": q("www.example.", "A", edns=0, version=1),
    "class-chaos": q("version.bind.", "TXT", rdclass="CH"),
    "class-any": q("www.example.", "A", rdclass="ANY"),
}
# IXFR: the client's SOA in authority.
ixfr = dns.message.make_query("example.", "IXFR")
ixfr.id = 0x4242
ixfr.authority.append(rr("example. 300 IN SOA ns1.example. hostmaster.example. 1 3600 900 604800 60"))
both["ixfr"] = ixfr.to_wire()
# NOTIFY with the new SOA in answer (RFC 1996 §3.7).
notify = dns.message.make_query("example.", "SOA")
notify.set_opcode(dns.opcode.NOTIFY)
notify.flags |= dns.flags.AA
notify.flags &= ~dns.flags.RD
notify.answer.append(rr("example. 300 IN SOA ns1.example. hostmaster.example. 2 3600 900 604800 60"))
both["notify-soa"] = notify.to_wire()
MESSAGE_ONLY = {"etcd-client-srv", "a-cookie-full-padding", "a-ecs", "soa", "notify"}
for k, v in both.items():
    put(MSG, "q-" + k, v)
    if k not in MESSAGE_ONLY:
        put(RSP, "q-" + k, v)

# ---------------------------------------------------------------- responder-only queries
responder = {
    "big-srv-noedns": q("_big._tcp.example.", "SRV"),
    "big-srv-4096": q("_big._tcp.example.", "SRV", edns=0, payload=4096),
    "big-srv-100": q("_big._tcp.example.", "SRV", edns=0, payload=100),
    "mid-srv-noedns": q("_mid._tcp.example.", "SRV"),
    "huge-srv": q("_huge._tcp.example.", "SRV", edns=0),
    "longtxt": q("longtxt.example.", "TXT", edns=0, payload=1400),
    "cname-chain": q("c1.example.", "A"),
    "cname-loop": q("l1.example.", "AAAA", edns=0),
    "cname-self": q("self.example.", "A"),
    "cname-dangling": q("dangling.example.", "A"),
    "cname-out": q("out.example.", "A"),
    "cname-intochild": q("intochild.example.", "A"),
    "cname-tosub": q("tosub.example.", "A"),
    "cname-srv": q("srvalias.example.", "SRV", edns=0),
    "wild-a": q("anything.wild.example.", "A"),
    "wild-srv": q("X.Wild.Example.", "SRV", edns=0),
    "wild-explicit-star": q("sub.*.wild.example.", "TXT"),
    "wild-cname-loop": q("x.loopwild.example.", "A"),
    "wild-cname": q("x.cwild.example.", "AAAA"),
    "ent": q("b.c.example.", "A"),
    "nxdomain": q("nothere.example.", "A", edns=0),
    "nodata": q("www.example.", "MX"),
    "mx": q("example.", "MX"),
    "referral": q("host.child.example.", "A", edns=0),
    "referral-occluded": q("deep.below.child.example.", "A"),
    "ds-at-cut": q("child.example.", "DS", edns=0, do=True),
    "refused": q("www.example.net.", "A", edns=0),
    "sub-zone": q("www.sub.example.", "A"),
    "other-wild": q("zzz.other.test.", "TXT"),
    "other-srv": q("_etcd-server._tcp.other.test.", "SRV"),
    "other-cname": q("back.other.test.", "A"),
    "unknown-type": q("unknown.example.", "TYPE65280"),
    "mixed-case": q("wWw.MiXeD.eXaMpLe.", "A", edns=0, do=True),
    "apex-ns": q("example.", "NS"),
}
for k, v in responder.items():
    put(RSP, "q-" + k, v)

# Hand-made responder inputs.
base = bytearray(q("www.example.", "A"))
resp = bytearray(base)
resp[2] |= 0x80
put(RSP, "x-qr-set", resp)
put(RSP, "x-short", base[:11])
put(RSP, "x-header-only", base[:12])
two = bytearray(base)
two[5] = 2
two += base[12:]
put(RSP, "x-two-questions", two)
# A query carrying an answer record: FORMERR.
withans = bytearray(base)
withans[7] = 1
withans += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x01"
put(RSP, "x-query-with-answer", withans)
put(RSP, "x-trailing", bytes(base) + b"\xff")
# OPT with the extended-RCODE octet set and an odd option layout.
opt = bytearray(q("www.example.", "A", edns=0, options=[COOKIE]))
opt[-(4 + 8) - 11 + 5] = 0x01  # extended RCODE in the query's OPT TTL
put(RSP, "x-opt-extrcode", opt)

# ---------------------------------------------------------------- responses (message corpus)
def response(query_wire, answer=(), authority=(), additional=(), rcode=0, aa=True, tc=False, edns=True):
    qm = dns.message.from_wire(query_wire)
    m = dns.message.make_response(qm)
    for t in answer:
        m.answer.append(rr(t))
    for t in authority:
        m.authority.append(rr(t))
    for t in additional:
        m.additional.append(rr(t))
    m.set_rcode(rcode)
    if aa:
        m.flags |= dns.flags.AA
    if tc:
        m.flags |= dns.flags.TC
    if edns and qm.edns >= 0:
        m.use_edns(0, 0, 1232)
    return m.to_wire()


srvq = q("_etcd-server._tcp.lab.example.", "SRV", edns=0)
put(MSG, "r-dig-srv", response(
    srvq,
    answer=["_etcd-server._tcp.lab.example. 300 IN SRV 0 0 2380 infra0.lab.example.",
            "_etcd-server._tcp.lab.example. 300 IN SRV 0 0 2380 infra1.lab.example."],
    authority=["example. 300 IN NS ns1.example."],
    additional=["infra0.lab.example. 300 IN A 10.0.1.10", "infra0.lab.example. 300 IN AAAA 2001:db8:1::10",
                "infra1.lab.example. 300 IN A 10.0.1.11", "ns1.example. 300 IN A 192.0.2.53"]))
put(MSG, "r-nxdomain", response(q("nothere.example.", "A", edns=0), rcode=dns.rcode.NXDOMAIN,
    authority=["example. 60 IN SOA ns1.example. hostmaster.example. 1 3600 900 604800 60"]))
put(MSG, "r-referral", response(q("host.child.example.", "A"), aa=False,
    authority=["child.example. 300 IN NS ns.child.example.", "child.example. 300 IN NS ns.elsewhere.test."],
    additional=["ns.child.example. 300 IN A 192.0.2.100", "ns.child.example. 300 IN AAAA 2001:db8::100"]))
put(MSG, "r-cname-chain", response(q("c1.example.", "A"),
    answer=["c1.example. 300 IN CNAME c2.example.", "c2.example. 300 IN CNAME www.example.",
            "www.example. 300 IN A 192.0.2.1"]))
put(MSG, "r-truncated", response(q("_big._tcp.example.", "SRV"), tc=True, edns=False))
put(MSG, "r-misc-types", response(q("example.", "ANY", edns=0),
    answer=["example. 300 IN MX 10 mail.example.", "example. 300 IN TXT \"hello\" \"\" \"world\"",
            "example. 300 IN PTR www.example.", "example. 300 IN DNAME other.test.",
            "example. 300 IN TYPE65280 \\# 4 01020304", "example. 300 IN DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
            "example. 300 IN CAA 0 issue \"ca.example\""]))
put(MSG, "r-badvers", bytes.fromhex("12348400000100000000000103777777076578616d706c650000010001") +
    bytes.fromhex("00002904d0010000000000"))  # ext-rcode 1 = BADVERS with header RCODE 0
# EDNS with an Extended DNS Error option and DO, and the OPT's other Z bits set.
put(MSG, "r-refused-ede", bytes.fromhex("1234 8105 0001 0000 0000 0001 03777777076578616d706c650000010001"
                                        "0000 2904d0 00 00 c001 0006 000f 0002 0014".replace(" ", "")))

# ---------------------------------------------------------------- malformed (message corpus)
hdr = lambda qd=1, an=0, ns=0, ar=0, flags=0x0100: struct.pack(">HHHHHH", 0xbeef, flags, qd, an, ns, ar)
Q = b"\x03www\x07example\x00\x00\x01\x00\x01"
put(MSG, "m-compression-loop", hdr() + b"\xc0\x0c\x00\x01\x00\x01")
put(MSG, "m-pointer-pair-loop", hdr(qd=2) + b"\xc0\x12\x00\x01\x00\x01" + b"\xc0\x0c\x00\x01\x00\x01")
put(MSG, "m-forward-pointer", hdr() + b"\x03www\xc0\x16\x00\x01\x00\x01\x07example\x00")
put(MSG, "m-pointer-into-header", hdr() + b"\xc0\x02\x00\x01\x00\x01")
put(MSG, "m-label-past-end", hdr() + b"\x03www\x3fexample")
put(MSG, "m-label-type-01", hdr() + b"\x41www\x00\x00\x01\x00\x01")
# 130 labels of 1 octet spelt out: 261 octets of name.
put(MSG, "m-name-too-long", hdr() + b"\x01a" * 130 + b"\x00\x00\x01\x00\x01")
# Under 255 at each step but over 255 once pointers are followed.
first = b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x00"
put(MSG, "m-name-too-long-via-pointer", hdr(qd=2) + first + b"\x00\x01\x00\x01" + b"\x3f" + b"d" * 63 + b"\xc0\x0c\x00\x01\x00\x01")
put(MSG, "m-qdcount-lies", hdr(qd=2) + Q)
put(MSG, "m-ancount-lies", hdr(an=3) + Q + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x01")
put(MSG, "m-arcount-zero-with-opt", hdr(ar=0) + Q + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00")
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
put(MSG, "m-two-opt", hdr(ar=2) + Q + OPT + OPT)
put(MSG, "m-opt-in-answer", hdr(an=1) + Q + OPT)
put(MSG, "m-opt-nonroot-owner", hdr(ar=1) + Q + b"\xc0\x0c" + OPT[1:])
put(MSG, "m-opt-option-overrun", hdr(ar=1) + Q + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x06\x00\x0a\x00\x08\x01\x02")
put(MSG, "m-opt-rdlength-past-end", hdr(ar=1) + Q + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x40")
put(MSG, "m-a-rdlength-5", hdr(an=1) + Q + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x05\xc0\x00\x02\x01\x00")
put(MSG, "m-txt-empty", hdr(an=1) + Q + b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x01\x2c\x00\x00")
put(MSG, "m-txt-string-past-rdata", hdr(an=1) + Q + b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x01\x2c\x00\x03\x05ab")
put(MSG, "m-cname-name-past-rdata", hdr(an=1) + Q + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x01\x2c\x00\x03\x03www\x00")
put(MSG, "m-srv-compressed-target", hdr(an=1) + Q + b"\xc0\x0c\x00\x21\x00\x01\x00\x00\x01\x2c\x00\x08\x00\x00\x00\x00\x09\x64\xc0\x10")
put(MSG, "m-trailing-bytes", hdr() + Q + b"\x00")
put(MSG, "m-short-header", hdr()[:7])
put(MSG, "m-empty", b"")
put(MSG, "m-header-only", hdr(qd=0))
put(MSG, "m-rdlength-past-end", hdr(an=1) + Q + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\xff\xff\x01")

# A few malformed ones for the responder too.
for name in ["m-compression-loop", "m-forward-pointer", "m-two-opt", "m-opt-in-answer", "m-qdcount-lies",
             "m-name-too-long-via-pointer"]:
    with open(os.path.join(MSG, "seed-" + name), "rb") as f:
        put(RSP, name, f.read())

print(len(os.listdir(MSG)), "message seeds,", len(os.listdir(RSP)), "responder seeds")
