"""srvd over the wire: UDP, EDNS, TCP and IPv6, asked by dig, kdig and dnspython, and what
it does with malformed and unusual messages."""

from __future__ import annotations

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from conftest import (
    SHIPPED_ZONE,
    V6,
    Answer,
    dig,
    frame,
    header,
    make_query,
    name_is_uncompressed,
    query,
    recv_frame,
    tcp_connect,
    udp_raw,
    wait_closed,
    wire_records,
)

LAB = "lab.example."
SERVICES = {
    "_etcd-server._tcp": 2380,
    "_etcd-client._tcp": 2379,
}
INFRA = {"infra0": "127.0.0.10", "infra1": "127.0.0.11", "infra2": "127.0.0.12"}
SOA = "ns1.lab.example. hostmaster.lab.example. 2026112101 3600 900 604800 30"
BIG_SRV = "_etcd-server._tcp.big.example."


# --------------------------------------------------------------------------- clients

def ask_dnspython(port: int, qname: str, rdtype: str, mode: str) -> Answer:
    options = {"udp": {}, "edns": {"payload": 1232}, "tcp": {"tcp": True}}[mode]
    return Answer.from_message(query(port, qname, rdtype, **options), "TCP" if mode == "tcp" else "UDP")


def ask_tool(tool: str):
    modes = {"udp": ["+noedns"], "edns": ["+edns=0", "+bufsize=1232"], "tcp": ["+tcp", "+noedns"]}
    return lambda port, qname, rdtype, mode: dig(port, *modes[mode], qname, rdtype, tool=tool)


CLIENTS = {"dig": ask_tool("dig"), "kdig": ask_tool("kdig"), "dnspython": ask_dnspython}


@pytest.mark.parametrize("mode", ["udp", "edns", "tcp"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("service", SERVICES)
def test_srv_answer_with_target_addresses(lab_srvd, service: str, client: str, mode: str):
    """The etcd discovery records, as etcd and operators' tools ask for them."""
    answer = CLIENTS[client](lab_srvd.port, f"{service}.{LAB}", "SRV", mode)
    port = SERVICES[service]

    assert answer.status == "NOERROR"
    assert {"qr", "aa"} <= answer.flags and "tc" not in answer.flags
    assert answer.transport == ("TCP" if mode == "tcp" else "UDP")
    assert answer.edns_payload == (1232 if mode == "edns" else None), answer.text
    assert answer.records("ANSWER") == {
        (f"{service}.{LAB}", 30, "SRV", f"0 0 {port} {host}.{LAB}") for host in INFRA
    }
    assert answer.records("AUTHORITY") == {(LAB, 30, "NS", f"ns1.{LAB}")}
    additional = {r for r in answer.records("ADDITIONAL") if r[2] in ("A", "AAAA")}
    assert {(f"{host}.{LAB}", 30, "A", addr) for host, addr in INFRA.items()} <= additional


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_srv_targets_are_not_compressed(lab_srvd, tcp: bool):
    """RFC 2782: the SRV target is never compressed. Read the raw bytes, since a client
    library would decompress silently."""
    wire = make_query(f"_etcd-server._tcp.{LAB}", "SRV", payload=1232).to_wire()
    if tcp:
        with tcp_connect(lab_srvd.port) as s:
            s.sendall(frame(wire))
            response = recv_frame(s)
    else:
        response = udp_raw(lab_srvd.port, wire)
    srv = [rr for rr in wire_records(response) if rr.rtype == dns.rdatatype.SRV]
    assert len(srv) == 3
    for rr in srv:
        target = rr.rdata[6:]
        assert name_is_uncompressed(target), f"SRV target compressed: {target!r}"
        assert dns.name.from_wire(target, 0)[0] in {dns.name.from_text(f"{h}.{LAB}") for h in INFRA}


# --------------------------------------------------------------------------- truncation

def test_truncated_without_edns(lab_srvd):
    """40 SRV records do not fit 512 bytes: TC, and no partial RRset in the answer."""
    wire = udp_raw(lab_srvd.port, make_query(BIG_SRV, "SRV").to_wire())
    assert len(wire) <= 512
    r = dns.message.from_wire(wire)
    assert r.flags & dns.flags.TC
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    assert r.edns < 0  # no OPT in a response to a query without one


@pytest.mark.parametrize("payload", [1232, 4096])
def test_truncated_with_edns_capped_at_1232(lab_srvd, payload: int):
    """srvd never sends more than 1232 bytes over UDP, however large the client's buffer."""
    wire = udp_raw(lab_srvd.port, make_query(BIG_SRV, "SRV", payload=payload).to_wire())
    assert len(wire) <= 1232
    r = dns.message.from_wire(wire)
    assert r.flags & dns.flags.TC
    assert not r.answer
    assert r.edns == 0 and r.payload == 1232


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_tools_retry_over_tcp_after_truncation(lab_srvd, tool: str):
    answer = dig(lab_srvd.port, "+noedns", BIG_SRV, "SRV", tool=tool)
    assert "truncated" in answer.text.lower() and answer.transport == "TCP", answer.text
    assert "tc" not in answer.flags
    assert len(answer.records("ANSWER")) == 40
    assert len({r for r in answer.records("ADDITIONAL") if r[2] == "A" and r[0].startswith("m")}) == 40


def test_tcp_gets_everything(lab_srvd):
    r = query(lab_srvd.port, BIG_SRV, "SRV", tcp=True)
    assert not r.flags & dns.flags.TC
    (srv,) = r.answer
    assert len(srv) == 40
    targets = {rd.target.to_text() for rd in srv}
    glue = {rrset.name.to_text() for rrset in r.additional if rrset.rdtype == dns.rdatatype.A}
    assert targets <= glue


def test_small_edns_buffer_is_treated_as_512(lab_srvd):
    """RFC 6891 §6.2.5: a payload below 512 means 512. The 3-record SRV answer fits in 512."""
    r = query(lab_srvd.port, f"_etcd-server._tcp.{LAB}", "SRV", payload=100)
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 3


# --------------------------------------------------------------------------- IPv6

@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_ipv6_listener(lab_srvd, tcp: bool):
    r = query(lab_srvd.port_for(V6), f"infra1.{LAB}", "A", host=V6, tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert {rd.to_text() for rd in r.answer[0]} == {"127.0.0.11"}


def test_ipv6_listener_with_dig(lab_srvd):
    answer = dig(lab_srvd.port_for(V6), f"_etcd-client._tcp.{LAB}", "SRV", host=V6)
    assert answer.status == "NOERROR" and len(answer.records("ANSWER")) == 3


# --------------------------------------------------------------------------- TCP connections

QUESTIONS = [(f"{h}.{LAB}", "A") for h in INFRA] + [(f"{s}.{LAB}", "SRV") for s in SERVICES] + [
    (LAB, "SOA"), (LAB, "NS"), (f"ns1.{LAB}", "A"), (f"nothere.{LAB}", "A"), (f"infra0.{LAB}", "TXT")]


def check_answer(wire: bytes, q: dns.message.Message) -> None:
    r = dns.message.from_wire(wire)
    assert r.id == q.id
    assert r.question == q.question
    assert r.rcode() == (dns.rcode.NXDOMAIN if r.question[0].name.labels[0] == b"nothere" else dns.rcode.NOERROR)


def test_pipelined_queries_answered_in_order(lab_srvd):
    """RFC 7766 §6.2.1.1: ten queries written at once, ten answers back, in order."""
    queries = [make_query(name, rdtype, qid=1000 + i) for i, (name, rdtype) in enumerate(QUESTIONS)]
    with tcp_connect(lab_srvd.port) as s:
        s.sendall(b"".join(frame(q.to_wire()) for q in queries))
        for q in queries:
            wire = recv_frame(s)
            assert wire is not None, "connection closed before every answer was read"
            check_answer(wire, q)


def test_many_sequential_queries_on_one_connection(lab_srvd):
    with tcp_connect(lab_srvd.port) as s:
        for i in range(300):
            name, rdtype = QUESTIONS[i % len(QUESTIONS)]
            q = make_query(name, rdtype, qid=i)
            s.sendall(frame(q.to_wire()))
            check_answer(recv_frame(s), q)


def test_query_split_across_writes(lab_srvd):
    """A message may arrive in pieces; the length prefix alone may be split."""
    q = make_query(f"infra2.{LAB}", "A")
    data = frame(q.to_wire())
    with tcp_connect(lab_srvd.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), 7):
            s.sendall(data[i:i + 7])
            time.sleep(0.01)
        check_answer(recv_frame(s), q)


def test_idle_connection_is_closed(lab_srvd):
    """--tcp-idle-timeout 1: a connection that never sends anything is closed."""
    with tcp_connect(lab_srvd.port) as s:
        elapsed = wait_closed(s, timeout=15)
    assert elapsed >= 0.5, f"closed after {elapsed:.2f}s, before the idle timeout"


def test_connection_closed_when_idle_after_answers(lab_srvd):
    q = make_query(f"infra0.{LAB}", "A")
    with tcp_connect(lab_srvd.port) as s:
        s.sendall(frame(q.to_wire()))
        check_answer(recv_frame(s), q)
        wait_closed(s, timeout=15)


def test_active_connection_outlives_idle_timeout(lab_srvd):
    """Queries every 0.1 s keep a connection open well past the 1 s idle timeout."""
    with tcp_connect(lab_srvd.port) as s:
        deadline = time.monotonic() + 3
        i = 0
        while time.monotonic() < deadline:
            q = make_query(f"infra1.{LAB}", "A", qid=i)
            s.sendall(frame(q.to_wire()))
            wire = recv_frame(s)
            assert wire is not None, f"closed after {i} queries although never idle for 1 s"
            check_answer(wire, q)
            i += 1
            time.sleep(0.1)


def test_half_close_still_gets_answers(make_srvd):
    """The client writes its queries and shuts down its sending side: every answer still
    comes, then srvd closes the connection itself, long before its 60 s idle timeout."""
    srvd = make_srvd({"lab.example.zone": SHIPPED_ZONE.read_text()}, tcp_idle_timeout=60).start()
    queries = [make_query(name, rdtype, qid=i) for i, (name, rdtype) in enumerate(QUESTIONS)]
    with tcp_connect(srvd.port) as s:
        s.sendall(b"".join(frame(q.to_wire()) for q in queries))
        s.shutdown(socket.SHUT_WR)
        for q in queries:
            wire = recv_frame(s)
            assert wire is not None, "connection closed before every answer was written"
            check_answer(wire, q)
        wait_closed(s, timeout=15)


# --------------------------------------------------------------------------- malformed and unusual messages

def with_flags(q: dns.message.Message, *, qr: bool | None = None, opcode: int | None = None) -> bytes:
    wire = bytearray(q.to_wire())
    flags = struct.unpack("!H", wire[2:4])[0]
    if qr is not None:
        flags = (flags & ~0x8000) | (0x8000 if qr else 0)
    if opcode is not None:
        flags = (flags & ~0x7800) | (opcode << 11)
    wire[2:4] = struct.pack("!H", flags)
    return bytes(wire)


def assert_header_only(wire: bytes, qid: int, rcode: int, opcode: int = 0) -> None:
    h = header(wire)
    assert len(wire) == 12, f"expected a bare header, got {len(wire)} bytes"
    assert (h["id"], h["qr"], h["opcode"], h["rcode"]) == (qid, 1, opcode, rcode)
    assert (h["qd"], h["an"], h["ns"], h["ar"]) == (0, 0, 0, 0)


def assert_still_serving(port: int) -> None:
    assert query(port, f"infra0.{LAB}", "A").rcode() == dns.rcode.NOERROR


def test_response_packet_is_never_answered(lab_srvd):
    """A message with QR=1 gets no reply (answering responses lets servers loop)."""
    q = make_query(f"infra0.{LAB}", "A")
    assert udp_raw(lab_srvd.port, with_flags(q, qr=True), timeout=1.0) is None
    assert_still_serving(lab_srvd.port)


def test_response_packet_is_skipped_on_tcp(lab_srvd):
    """Over TCP the QR=1 message is dropped and the next query on the connection answered."""
    ignored, wanted = make_query(f"infra0.{LAB}", "A", qid=1), make_query(f"infra1.{LAB}", "A", qid=2)
    with tcp_connect(lab_srvd.port) as s:
        s.sendall(frame(with_flags(ignored, qr=True)) + frame(wanted.to_wire()))
        check_answer(recv_frame(s), wanted)


@pytest.mark.parametrize("length", [0, 5, 11])
def test_packet_shorter_than_header_is_dropped(lab_srvd, length: int):
    assert udp_raw(lab_srvd.port, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00"[:length], timeout=1.0) is None
    assert_still_serving(lab_srvd.port)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x3fabc", id="label-runs-past-end"),
        pytest.param(b"\x06infra0\x03lab\x07example\x00\x00", id="question-cut-short"),
        pytest.param(b"\xc0\x0c\x00\x01\x00\x01", id="pointer-loop"),
        pytest.param(b"\x05", id="one-byte"),
    ],
)
def test_garbage_after_header_gets_formerr(lab_srvd, body: bytes):
    wire = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + body
    response = udp_raw(lab_srvd.port, wire)
    assert response is not None, "no answer to a malformed query with a readable header"
    assert_header_only(response, 0xBEEF, dns.rcode.FORMERR)
    # the header-only answer keeps RD, as NSD does
    assert header(response)["rd"] == 1


@pytest.mark.parametrize("qdcount", [0, 2])
def test_question_count_other_than_one_gets_formerr(lab_srvd, qdcount: int):
    question = b"\x06infra0\x03lab\x07example\x00\x00\x01\x00\x01"
    wire = struct.pack("!HHHHHH", 0x4242, 0, qdcount, 0, 0, 0) + question * qdcount
    response = udp_raw(lab_srvd.port, wire)
    assert response is not None
    assert header(response)["rcode"] == dns.rcode.FORMERR


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE])
def test_other_opcodes_get_notimp(lab_srvd, opcode: int):
    q = make_query(LAB, "SOA", qid=0x5150)
    response = udp_raw(lab_srvd.port, with_flags(q, opcode=opcode))
    assert response is not None
    assert_header_only(response, 0x5150, dns.rcode.NOTIMP, opcode=opcode)


def test_edns_version_1_gets_badvers(lab_srvd):
    """RFC 6891 §6.1.3: BADVERS (extended RCODE 16) with an OPT record of version 0."""
    r = query(lab_srvd.port, f"infra0.{LAB}", "A", edns=1)
    assert r.rcode() == dns.rcode.BADVERS
    assert r.edns == 0
    assert not r.answer


def test_two_opt_records_get_formerr(lab_srvd):
    """RFC 6891 §6.1.1: more than one OPT record is a format error."""
    q = make_query(f"infra0.{LAB}", "A", payload=1232, qid=0x0707)
    wire = bytearray(q.to_wire())
    opt = wire[-11:]  # root name, OPT, payload, extended rcode/version/flags, empty rdata
    assert opt[:3] == b"\x00\x00\x29"
    wire += opt
    wire[10:12] = struct.pack("!H", 2)
    response = udp_raw(lab_srvd.port, bytes(wire))
    assert response is not None
    h = header(response)
    assert (h["id"], h["qr"], h["rcode"], h["an"]) == (0x0707, 1, dns.rcode.FORMERR, 0)


def test_response_advertises_1232(lab_srvd):
    r = query(lab_srvd.port, f"infra0.{LAB}", "A", payload=4096)
    assert r.edns == 0 and r.payload == 1232


def test_question_case_is_echoed(lab_srvd):
    """The question goes back byte for byte as asked (RFC 4343); the answer is matched
    case-insensitively."""
    q = make_query("InFrA0.LaB.eXaMpLe.", "A")
    wire = q.to_wire()
    response = udp_raw(lab_srvd.port, wire)
    question_end = 12 + len(b"\x06InFrA0\x03LaB\x07eXaMpLe\x00") + 4
    assert response[12:question_end] == wire[12:question_end]
    r = dns.message.from_wire(response)
    assert r.rcode() == dns.rcode.NOERROR
    assert {rd.to_text() for rd in r.answer[0]} == {"127.0.0.10"}


@pytest.mark.parametrize("payload", [None, 1232], ids=["no-edns", "edns"])
@pytest.mark.parametrize("rdclass", ["CH", "HS", "NONE"])
def test_class_other_than_in_is_refused(lab_srvd, rdclass: str, payload):
    r = query(lab_srvd.port, f"infra0.{LAB}", "A", rdclass=rdclass, payload=payload)
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.flags & dns.flags.AA
    assert not r.answer and not r.authority


@pytest.mark.parametrize("qname", ["example.", "other.test.", "lab.example.org.", "."])
def test_name_outside_every_zone_is_refused(lab_srvd, qname: str):
    r = query(lab_srvd.port, qname, "A")
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.flags & dns.flags.AA
    assert not r.answer and not r.authority
    assert r.edns < 0


def test_refused_carries_ede_20_with_edns(lab_srvd):
    """RFC 8914 §4.21: Not Authoritative."""
    r = query(lab_srvd.port, "other.test.", "A", payload=1232)
    assert r.rcode() == dns.rcode.REFUSED
    codes = [o.code for o in r.options if isinstance(o, dns.edns.EDEOption)]
    assert codes == [dns.edns.EDECode.NOT_AUTHORITATIVE]


@pytest.mark.parametrize(
    "qname, rdtype, rcode",
    [
        (f"nothere.{LAB}", "A", dns.rcode.NXDOMAIN),
        (f"deep.nothere.{LAB}", "AAAA", dns.rcode.NXDOMAIN),
        (f"infra0.{LAB}", "AAAA", dns.rcode.NOERROR),
        (f"_tcp.{LAB}", "SRV", dns.rcode.NOERROR),  # empty non-terminal
        (LAB, "MX", dns.rcode.NOERROR),
    ],
)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_negative_answers_carry_soa_with_minimum_ttl(lab_srvd, qname: str, rdtype: str, rcode: int, tcp: bool):
    """RFC 2308 §3: the SOA in a negative answer has TTL min(SOA TTL, minimum), 30 here."""
    r = query(lab_srvd.port, qname, rdtype, tcp=tcp)
    assert r.rcode() == rcode
    assert r.flags & dns.flags.AA
    assert not r.answer
    (soa,) = r.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == LAB
    assert soa.ttl == 30
    assert soa[0].to_text() == SOA
