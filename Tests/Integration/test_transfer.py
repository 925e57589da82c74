"""Zone transfers: srvd as a primary (AXFR RFC 5936, IXFR RFC 1995, TSIG RFC 8945, NOTIFY
RFC 1996), checked with a raw client and with NSD and Knot as real secondaries.

Every test starts its own srvd (and secondaries) on 127.0.0.0/8 with kernel-chosen ports and
stops them in teardown. The NSD and Knot configurations are rendered by transfer_support
(`nsd_conf`, `knot_conf`). Run:

    SRVD_BIN=.build/debug/srvd SRVCTL_BIN=.build/debug/srvctl \\
        .venv/bin/python -m pytest Tests/Integration/test_transfer.py -q -p no:cacheprovider
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, os.path.dirname(__file__))

import dns.message  # noqa: E402
import dns.opcode  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rrset  # noqa: E402
import dns.tsig  # noqa: E402
import dns.zone  # noqa: E402
import pytest  # noqa: E402

from transfer_support import (  # noqa: E402
    HOST,
    ZONE,
    Knot,
    NotifyCatcher,
    Nsd,
    Primary,
    Record,
    Xfr,
    answer_texts,
    apply_diffs,
    keyring,
    lab_zone,
    large_zone,
    new_secret,
    soa_serial,
    tcp_accepts,
    udp_query,
    xfr,
    zone_records,
)
from launcher import find_tool, free_port, wait_until  # noqa: E402

FOLLOW = 5.0  # seconds a secondary gets to follow a change made through srvd's API
LOAD = 10.0  # seconds a fresh secondary gets to load the zone the first time
KEY_NAME = "xfr"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def procs():
    """Everything started by a test, stopped in reverse order at teardown."""
    started: list = []
    yield started
    for p in reversed(started):
        p.stop()


def require(tool: str) -> str:
    path = find_tool(tool)
    if not path:
        if os.environ.get("SRVD_TESTS_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{tool} is not installed (make deps installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def start_srvd(procs: list, workdir: Path, zone_text: str | None = None, **options) -> Primary:
    s = Primary(workdir, zone_text if zone_text is not None else lab_zone(), **options)
    procs.append(s)
    return s.start()


def member_records(name: str, address: str, ttl: int = 30) -> set[Record]:
    """What `srvctl register lab.example NAME --address ADDRESS` publishes."""
    target = f"{name}.{ZONE}"
    return {
        (target, ttl, "A", address),
        (f"_etcd-server._tcp.{ZONE}", ttl, "SRV", f"0 0 2380 {target}"),
        (f"_etcd-client._tcp.{ZONE}", ttl, "SRV", f"0 0 2379 {target}"),
    }


def serves_member(port: int, name: str, address: str) -> bool:
    target = f"{name}.{ZONE}"
    return (
        answer_texts(port, target, "A") == [address]
        and f"0 0 2380 {target}" in answer_texts(port, f"_etcd-server._tcp.{ZONE}", "SRV")
        and f"0 0 2379 {target}" in answer_texts(port, f"_etcd-client._tcp.{ZONE}", "SRV")
    )


def serves_no_member(port: int, name: str) -> bool:
    target = f"{name}.{ZONE}"
    r = udp_query(port, target, "A")
    return (
        r.rcode() == dns.rcode.NXDOMAIN
        and not any(target in t for t in answer_texts(port, f"_etcd-server._tcp.{ZONE}", "SRV"))
        and not any(target in t for t in answer_texts(port, f"_etcd-client._tcp.{ZONE}", "SRV"))
    )


def full_zone(port: int, what: str, diag, **kwargs) -> set[Record]:
    """AXFR (or the given IXFR) that must come back as a complete zone."""
    x = xfr(port, **kwargs)
    assert x.rcode == dns.rcode.NOERROR and not x.closed_early and x.is_full(), (
        f"{what}: expected a full zone transfer, got:\n{x.describe()}\n{diag()}"
    )
    return x.zone()


def follows(secondary, srvd: Primary, probe, what: str) -> float:
    """Polls `probe` on the secondary (deadline FOLLOW seconds); returns the seconds it took."""
    t0 = time.monotonic()

    def check() -> bool:
        secondary.check_alive()
        return probe()

    wait_until(check, FOLLOW, lambda: f"{secondary.name} to follow: {what} (serial {secondary.serial()}, srvd serves "
               f"{srvd.serial()})\n{secondary.log_tail()}\n{srvd.log_tail()}")
    return time.monotonic() - t0


def signed_xfr_ok(x: Xfr) -> bool:
    return all(m.tsig is not None and m.tsig[0].error == 0 and len(m.tsig[0].mac) == 32 for m in x.messages)


# --------------------------------------------------------------------------- 1. NSD, no TSIG


def test_nsd_secondary_follows_api_changes_without_tsig(tmp_path: Path, procs: list) -> None:
    require("nsd")
    nsd = Nsd(tmp_path / "nsd")
    srvd = start_srvd(procs, tmp_path / "srvd", allow=["127.0.0.1/32"], notify=[nsd.notify_target])
    procs.append(nsd)
    nsd.start(srvd.port)

    def diag() -> str:
        return f"{srvd.log_tail()}\n{nsd.log_tail()}"

    nsd.wait_serial(100, LOAD, diag)
    assert full_zone(nsd.port, "AXFR from NSD", diag) == full_zone(srvd.port, "AXFR from srvd", diag) == zone_records(
        lab_zone()
    )

    srvd.register("infra0", "10.0.1.10")
    took = follows(nsd, srvd, lambda: serves_member(nsd.port, "infra0", "10.0.1.10"), "registration of infra0")
    print(f"NSD served infra0 {took:.2f}s after the registration")
    wait_until(lambda: "serial=101" in "".join(
        line for line in srvd.log().splitlines() if "secondary acknowledged NOTIFY" in line),
        FOLLOW, lambda: f"srvd to log `secondary acknowledged NOTIFY` for serial 101\n{diag()}")

    srvd.register("infra1", "10.0.1.11")
    follows(nsd, srvd, lambda: serves_member(nsd.port, "infra1", "10.0.1.11"), "registration of infra1")
    srvd.deregister("infra0")
    took = follows(nsd, srvd, lambda: serves_no_member(nsd.port, "infra0"), "deregistration of infra0")
    print(f"NSD dropped infra0 {took:.2f}s after the deregistration")
    nsd.wait_serial(103, FOLLOW, diag)
    assert full_zone(nsd.port, "AXFR from NSD", diag) == full_zone(srvd.port, "AXFR from srvd", diag)

    # srvd's own answer to IXFR from 100: three increments (register, register, deregister).
    direct = xfr(srvd.port, "IXFR", serial=100)
    assert direct.rcode == 0 and [(o, n) for o, _, n, _ in direct.diffs()] == [(100, 101), (101, 102), (102, 103)], (
        f"IXFR from srvd, serial 100:\n{direct.describe()}"
    )
    # NSD stores (store-ixfr) only increments it received as IXFR, verbatim; so an IXFR from
    # NSD shows it got srvd's increments, not full transfers.
    via_nsd = xfr(nsd.port, "IXFR", serial=100)
    assert via_nsd.rcode == 0 and not via_nsd.is_full(), (
        f"NSD has no increments: it did not receive IXFR from srvd\n{via_nsd.describe()}\n{diag()}"
    )
    assert [(o, set(d), n, set(a)) for o, d, n, a in via_nsd.diffs()] == [
        (o, set(d), n, set(a)) for o, d, n, a in direct.diffs()
    ], f"NSD's increments differ from srvd's:\nNSD: {via_nsd.describe()}\nsrvd: {direct.describe()}"
    for bad in ("Failed to apply IXFR cleanly", "bad transfer", "reverted transfer"):
        assert bad not in nsd.log(), f"NSD logged {bad!r}\n{diag()}"

    # A zone-file edit (SIGHUP) reaches NSD as a full transfer (no increment for it).
    srvd.write_zone("lab.example.zone", lab_zone(www="192.0.2.99"))
    srvd.reload()
    assert srvd.serial() == 104, f"served serial after the edit: {srvd.serial()}\n{diag()}"
    follows(nsd, srvd, lambda: answer_texts(nsd.port, f"www.{ZONE}", "A") == ["192.0.2.99"], "zone file edit")
    nsd.wait_serial(104, FOLLOW, diag)
    assert full_zone(nsd.port, "AXFR from NSD", diag) == full_zone(srvd.port, "AXFR from srvd", diag)
    assert xfr(nsd.port, "IXFR", serial=103).is_full(), f"NSD should have received the edit as a full zone\n{diag()}"


def test_nsd_started_before_srvd_loads_the_zone_on_the_start_notify(tmp_path: Path, procs: list) -> None:
    """NSD up first (its own first attempt fails: connection refused); srvd's NOTIFY at start
    makes it transfer at once."""
    require("nsd")
    srvd_port = free_port()
    nsd = Nsd(tmp_path / "nsd")
    procs.append(nsd)
    nsd.start(srvd_port)
    srvd = Primary(tmp_path / "srvd", lab_zone(), allow=["127.0.0.1"], notify=[nsd.notify_target], dns_port=srvd_port)
    procs.append(srvd)
    wait_until(lambda: "Could not tcp connect" in nsd.log() or nsd.serial() is not None, LOAD,
               lambda: f"NSD's first transfer attempt\n{nsd.log_tail()}")
    srvd.start()

    def diag() -> str:
        return f"{srvd.log_tail()}\n{nsd.log_tail()}"

    nsd.wait_serial(100, FOLLOW, diag)
    wait_until(lambda: any("secondary acknowledged NOTIFY" in line and "serial=100" in line
                           for line in srvd.log().splitlines()),
               FOLLOW, lambda: f"srvd to log `secondary acknowledged NOTIFY` for the start NOTIFY\n{diag()}")


def test_start_notify_is_sent_once_transfers_are_possible(tmp_path: Path, procs: list) -> None:
    """A secondary that gets the start NOTIFY asks for the zone at once (NSD does); so when the
    NOTIFY arrives, srvd must already accept TCP on its DNS port. Five starts, each checked
    the moment the NOTIFY arrives (the race is timing dependent, so one start proves little)."""
    for attempt in range(5):
        catcher = NotifyCatcher()
        procs.append(catcher)
        port = free_port()
        srvd = Primary(tmp_path / f"srvd{attempt}", lab_zone(), allow=["127.0.0.1"], notify=[catcher.notify_target],
                    dns_port=port)
        procs.append(srvd)
        srvd.spawn()
        m = catcher.receive(timeout=10)
        accepted = tcp_accepts(port)
        assert m is not None and m.opcode() == dns.opcode.NOTIFY, f"no start NOTIFY within 10 s\n{srvd.log_tail()}"
        assert soa_serial_of_notify(m) in (None, 100)
        assert accepted, (
            f"start {attempt + 1}: the NOTIFY arrived while srvd refused TCP connections on 127.0.0.1:{port}; a "
            f"secondary's transfer request right after the NOTIFY fails (NSD then waits for its retry timer)\n"
            f"{srvd.log_tail()}"
        )
        srvd.stop()
        catcher.stop()


def soa_serial_of_notify(m: dns.message.Message) -> int | None:
    for rrset in m.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return rrset[0].serial
    return None


# --------------------------------------------------------------------------- 2. ACL


def test_transfers_only_from_allowed_addresses(tmp_path: Path, procs: list) -> None:
    expected = zone_records(lab_zone())

    srvd = start_srvd(procs, tmp_path / "one", allow=["127.0.0.1/32"])
    for rdtype, serial in (("AXFR", None), ("IXFR", 50)):
        refused = xfr(srvd.port, rdtype, serial=serial, source="127.0.0.2")
        assert refused.rcode == dns.rcode.REFUSED, (
            f"{rdtype} from 127.0.0.2 with --allow-transfer 127.0.0.1/32: want REFUSED, got:\n"
            f"{refused.describe()}\n{srvd.log_tail()}"
        )
        assert full_zone(srvd.port, f"{rdtype} from 127.0.0.1", srvd.log_tail, rdtype=rdtype, serial=serial,
                         source="127.0.0.1") == expected
    # dnspython's own client agrees.
    with pytest.raises(dns.query.TransferError) as e:
        dns.zone.from_xfr(dns.query.xfr(HOST, ZONE, port=srvd.port, source="127.0.0.2", timeout=5))
    assert e.value.rcode == dns.rcode.REFUSED
    z = dns.zone.from_xfr(dns.query.xfr(HOST, ZONE, port=srvd.port, timeout=5, relativize=False), relativize=False)
    assert {(n.to_text(), t, dns.rdatatype.to_text(rd.rdtype), rd.to_text()) for n, t, rd in z.iterate_rdatas()} \
        == expected

    # No --allow-transfer: refused from everywhere, while ordinary queries are answered.
    closed = start_srvd(procs, tmp_path / "closed")
    for source in ("127.0.0.1", "127.0.0.2"):
        for rdtype, serial in (("AXFR", None), ("IXFR", 50)):
            x = xfr(closed.port, rdtype, serial=serial, source=source)
            assert x.rcode == dns.rcode.REFUSED, (
                f"{rdtype} from {source} without --allow-transfer: want REFUSED, got:\n{x.describe()}\n"
                f"{closed.log_tail()}"
            )
    assert closed.serial() == 100

    # A block and a bare address.
    blocks = start_srvd(procs, tmp_path / "blocks", allow=["127.0.0.0/30", "127.0.0.9"])
    for source, allowed in (("127.0.0.1", True), ("127.0.0.2", True), ("127.0.0.3", True), ("127.0.0.5", False),
                            ("127.0.0.9", True), ("127.0.0.10", False)):
        x = xfr(blocks.port, source=source)
        want = dns.rcode.NOERROR if allowed else dns.rcode.REFUSED
        assert x.rcode == want and (not allowed or x.is_full()), (
            f"AXFR from {source} with --allow-transfer 127.0.0.0/30 127.0.0.9: want {dns.rcode.to_text(want)}, "
            f"got:\n{x.describe()}\n{blocks.log_tail()}"
        )


def test_transfer_errors_over_udp_and_outside_zones(tmp_path: Path, procs: list) -> None:
    srvd = start_srvd(procs, tmp_path / "srvd", allow=["127.0.0.1"])
    r = dns.query.udp(dns.message.make_query(ZONE, "AXFR"), HOST, port=srvd.port, timeout=2)
    assert r.rcode() == dns.rcode.NOTIMP, f"AXFR over UDP: want NOTIMP, got {dns.rcode.to_text(r.rcode())}\n{r}"
    q = dns.message.make_query(ZONE, "IXFR")
    q.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "SOA", ". . 100 0 0 0 0"))
    r = dns.query.udp(q, HOST, port=srvd.port, timeout=2)
    assert r.rcode() == dns.rcode.REFUSED, f"IXFR over UDP: want REFUSED, got {dns.rcode.to_text(r.rcode())}\n{r}"
    for name in (f"www.{ZONE}", "nosuch.example."):
        x = xfr(srvd.port, zone=name)
        assert x.rcode == dns.rcode.NOTAUTH, f"AXFR of {name} (not a zone apex): want NOTAUTH, got:\n{x.describe()}"


# --------------------------------------------------------------------------- 3. TSIG


def test_tsig_signed_transfers(tmp_path: Path, procs: list) -> None:
    secret = new_secret()
    keys = keyring(KEY_NAME, secret)
    srvd = start_srvd(procs, tmp_path / "srvd", allow=["127.0.0.1/32"], tsig=[f"{KEY_NAME}:{secret}"])
    expected = zone_records(lab_zone())

    for rdtype, serial in (("AXFR", None), ("IXFR", 50)):
        x = xfr(srvd.port, rdtype, serial=serial)
        assert x.rcode == dns.rcode.REFUSED, f"unsigned {rdtype} with --tsig-key: want REFUSED, got:\n{x.describe()}"

        # Right key: every response message carries a TSIG that verifies (the reader hands
        # dnspython the running TSIG context, so a bad MAC in any message raises).
        x = xfr(srvd.port, rdtype, serial=serial, keys=keys)
        assert x.rcode == 0 and x.is_full() and x.zone() == expected, f"signed {rdtype}:\n{x.describe()}"
        assert signed_xfr_ok(x), f"signed {rdtype}: not every message is signed: {x.describe()}"

    # dnspython's own transfer client with the key.
    z = dns.zone.from_xfr(dns.query.xfr(HOST, ZONE, port=srvd.port, keyring=keys, keyname=KEY_NAME,
                                        keyalgorithm=dns.tsig.HMAC_SHA256, timeout=5, relativize=False),
                          relativize=False)
    assert len(list(z.iterate_rdatas())) == len(expected)

    # Wrong secret: NOTAUTH, TSIG error BADSIG, unsigned (empty MAC).
    x = xfr(srvd.port, keys=keyring(KEY_NAME, new_secret()), verify=False)
    assert x.rcode == dns.rcode.NOTAUTH and x.tsig_errors == [dns.rcode.BADSIG], (
        f"AXFR signed with a wrong secret: want NOTAUTH/BADSIG, got:\n{x.describe()}"
    )
    assert len(x.messages[0].tsig[0].mac) == 0, "a BADSIG answer must not be signed"
    with pytest.raises(dns.tsig.PeerBadSignature):
        dns.zone.from_xfr(dns.query.xfr(HOST, ZONE, port=srvd.port, keyring=keyring(KEY_NAME, new_secret()),
                                        keyname=KEY_NAME, keyalgorithm=dns.tsig.HMAC_SHA256, timeout=5))

    # Unknown key name: NOTAUTH/BADKEY.
    x = xfr(srvd.port, keys=keyring("other", secret), verify=False)
    assert x.rcode == dns.rcode.NOTAUTH and x.tsig_errors == [dns.rcode.BADKEY], (
        f"AXFR signed with an unknown key: want NOTAUTH/BADKEY, got:\n{x.describe()}"
    )

    # Clock 1000 s behind (fudge 300): NOTAUTH/BADTIME, and this error answer is signed.
    with mock.patch("time.time", return_value=time.time() - 1000):
        x = xfr(srvd.port, keys=keys, verify=False)
    assert x.rcode == dns.rcode.NOTAUTH and x.tsig_errors == [dns.rcode.BADTIME], (
        f"AXFR signed 1000 s ago: want NOTAUTH/BADTIME, got:\n{x.describe()}"
    )
    assert len(x.messages[0].tsig[0].mac) == 32, "a BADTIME answer must be signed (RFC 8945 5.2.3)"

    # Signed, but from an address outside --allow-transfer: still refused.
    x = xfr(srvd.port, keys=keys, source="127.0.0.2", verify=False)
    assert x.rcode == dns.rcode.REFUSED, f"signed AXFR from 127.0.0.2: want REFUSED, got:\n{x.describe()}"

    # dig verifies every message too and says "Couldn't verify" otherwise.
    dig_verifies(srvd.port, secret, len(expected) + 1)
    assert "Couldn't verify" in run_dig(srvd.port, new_secret()), "dig should reject a wrong secret"


def run_dig(port: int, secret: str, rdtype: str = "AXFR") -> str:
    p = subprocess.run(
        [require("dig"), "-p", str(port), f"@{HOST}", "-y", f"hmac-sha256:{KEY_NAME}:{secret}", ZONE, rdtype],
        capture_output=True, text=True, timeout=30,
    )
    return p.stdout + p.stderr


def dig_verifies(port: int, secret: str, records: int) -> None:
    """`dig -y` transfers the zone, verifies every message, and prints one TSIG per message."""
    out = run_dig(port, secret)
    summary = re.search(r"XFR size: (\d+) records \(messages (\d+),", out)
    assert summary and "Couldn't verify" not in out and "failed" not in out.lower(), out[-3000:]
    assert int(summary.group(1)) == records, summary.group(0)
    tsigs = [line for line in out.splitlines() if "\tTSIG\thmac-sha256." in line]
    assert len(tsigs) == int(summary.group(2)) and all(" NOERROR " in t for t in tsigs), (
        f"{len(tsigs)} TSIG records for {summary.group(2)} messages:\n" + "\n".join(tsigs)
    )


def test_nsd_secondary_with_tsig(tmp_path: Path, procs: list) -> None:
    require("nsd")
    secret = new_secret()
    nsd = Nsd(tmp_path / "nsd", key=(KEY_NAME, secret))
    srvd = start_srvd(procs, tmp_path / "srvd", allow=["127.0.0.1/32"], tsig=[f"{KEY_NAME}:{secret}"],
                      notify=[nsd.notify_target])
    procs.append(nsd)
    nsd.start(srvd.port)

    def diag() -> str:
        return f"{srvd.log_tail()}\n{nsd.log_tail()}"

    nsd.wait_serial(100, LOAD, diag)
    assert "TSIG verified with key xfr" in nsd.log(), f"NSD did not verify the transfer's TSIG\n{diag()}"
    srvd.register("infra0", "10.0.1.10")
    took = follows(nsd, srvd, lambda: serves_member(nsd.port, "infra0", "10.0.1.10"), "registration over TSIG")
    print(f"NSD (TSIG) served infra0 {took:.2f}s after the registration")
    wait_until(lambda: sum("TSIG verified with key xfr" in line for line in nsd.log().splitlines()
                           if "serial 101" in line), FOLLOW,
               lambda: f"NSD to log `received update to serial 101 ... TSIG verified with key xfr`\n{diag()}")
    for bad in ("bad tsig signature", "tsig error", "no tsig in first packet", "too many consecutive packets"):
        assert bad not in nsd.log(), f"NSD logged {bad!r}\n{diag()}"
    assert full_zone(nsd.port, "AXFR from NSD", diag) == full_zone(srvd.port, "signed AXFR from srvd", diag,
                                                                      keys=keyring(KEY_NAME, secret))


# --------------------------------------------------------------------------- 4. IXFR


def test_ixfr_increments_and_fallbacks(tmp_path: Path, procs: list) -> None:
    srvd = start_srvd(procs, tmp_path / "srvd", allow=["127.0.0.1"])
    port = srvd.port

    def axfr() -> set[Record]:
        return full_zone(port, "AXFR", srvd.log_tail)

    def ixfr(serial: int) -> Xfr:
        x = xfr(port, "IXFR", serial=serial)
        assert x.rcode == 0 and not x.closed_early, f"IXFR from {serial}:\n{x.describe()}\n{srvd.log_tail()}"
        return x

    zones = {100: axfr()}
    for serial, (name, address) in enumerate((("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3")), 101):
        srvd.register(name, address)
        assert srvd.serial() == serial, f"serial after registering {name}: {srvd.serial()}\n{srvd.log_tail()}"
        zones[serial] = axfr()
        assert zones[serial] - zones[serial - 1] >= member_records(name, address)

    x = ixfr(101)
    soas = [soa_serial(r) for r in x.records if r[2] == "SOA"]
    assert soas == [103, 101, 102, 102, 103, 103], f"IXFR 101->103 SOA sequence {soas}:\n{x.describe()}"
    diffs = [(o, set(d), n, set(a)) for o, d, n, a in x.diffs()]
    assert diffs == [(101, set(), 102, member_records("b", "10.0.0.2")),
                     (102, set(), 103, member_records("c", "10.0.0.3"))], f"IXFR from 101:\n{x.describe()}"
    assert all(len(a) == 3 for _, _, _, a in x.diffs()), f"duplicate records in an increment:\n{x.describe()}"
    assert apply_diffs(zones[101], x) == zones[103]
    assert apply_diffs(zones[100], ixfr(100)) == zones[103]

    x = ixfr(103)
    assert x.is_single_soa() and soa_serial(x.records[0]) == 103 and len(x.messages) == 1, (
        f"IXFR from the current serial: want one SOA, got:\n{x.describe()}"
    )
    x = ixfr(50)
    assert x.is_full() and soa_serial(x.records[0]) == 103 and x.zone() == zones[103], (
        f"IXFR from an unknown serial: want the full zone, got:\n{x.describe()}"
    )

    # Deregistration: an increment with deletions only.
    srvd.deregister("a")
    zones[104] = axfr()
    x = ixfr(103)
    assert [(o, set(d), n, set(a)) for o, d, n, a in x.diffs()] == [(103, member_records("a", "10.0.0.1"), 104, set())], \
        f"IXFR after deregistering a:\n{x.describe()}"
    assert apply_diffs(zones[103], x) == zones[104]

    # Re-registering b with a new address replaces its A record.
    srvd.register("b", "10.0.0.22")
    zones[105] = axfr()
    x = ixfr(104)
    (old, deleted, new, added), = x.diffs()
    assert (old, new) == (104, 105)
    assert (f"b.{ZONE}", 30, "A", "10.0.0.2") in deleted and (f"b.{ZONE}", 30, "A", "10.0.0.22") in added, x.describe()
    assert apply_diffs(zones[104], x) == zones[105]
    assert apply_diffs(zones[100], ixfr(100)) == zones[105]

    # Zone file edit with the file's serial unchanged (100): served serial becomes 106, the
    # API's records stay, and IXFR across the edit is a full transfer.
    srvd.write_zone("lab.example.zone", lab_zone(www="192.0.2.99"))
    srvd.reload()
    assert srvd.serial() == 106, f"served serial after the edit: {srvd.serial()}\n{srvd.log_tail()}"
    zones[106] = axfr()
    assert (f"www.{ZONE}", 300, "A", "192.0.2.99") in zones[106]
    assert zones[106] >= member_records("b", "10.0.0.22") | member_records("c", "10.0.0.3")
    for serial in (105, 101):
        x = ixfr(serial)
        assert x.is_full() and x.zone() == zones[106], f"IXFR from {serial} across the edit:\n{x.describe()}"
    assert ixfr(106).is_single_soa()

    # The file's serial moved past the served one: served as is; later API changes increment.
    srvd.write_zone("lab.example.zone", lab_zone(serial=500, www="192.0.2.98"))
    srvd.reload()
    assert srvd.serial() == 500, f"served serial after the edit to 500: {srvd.serial()}\n{srvd.log_tail()}"
    zones[500] = axfr()
    assert ixfr(106).is_full()
    srvd.register("d", "10.0.0.4")
    x = ixfr(500)
    assert [(o, set(d), n, set(a)) for o, d, n, a in x.diffs()] == [(500, set(), 501, member_records("d", "10.0.0.4"))], \
        f"IXFR from 500:\n{x.describe()}"
    assert apply_diffs(zones[500], x) == axfr()

    # A serial ahead of the server's: not an increment; up to date (one SOA) or the full zone.
    x = ixfr(900)
    assert x.is_single_soa() or x.is_full(), f"IXFR from a serial ahead of srvd's:\n{x.describe()}"


# --------------------------------------------------------------------------- 5. large zone


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "tsig"])
def test_large_zone_transfers_completely_in_several_messages(tmp_path: Path, procs: list, signed: bool) -> None:
    text, count = large_zone()
    expected = zone_records(text)
    assert len(expected) == count
    secret = new_secret()
    keys = keyring(KEY_NAME, secret) if signed else None
    srvd = start_srvd(procs, tmp_path / "srvd", text, allow=["127.0.0.1"],
                      tsig=[f"{KEY_NAME}:{secret}"] if signed else [])
    for rdtype, serial in (("AXFR", None), ("IXFR", 50)):
        x = xfr(srvd.port, rdtype, serial=serial, keys=keys, timeout=20)
        assert x.rcode == 0 and not x.closed_early and x.is_full(), f"{rdtype} of the large zone:\n{x.describe()}"
        assert len(x.records) == count + 1, f"{rdtype}: {len(x.records)} records, want {count} + closing SOA"
        assert x.zone() == expected
        assert len(x.messages) > 1, f"{rdtype}: ~150 kB in {len(x.messages)} TCP message(s)"
        if signed:
            assert signed_xfr_ok(x), f"{rdtype}: not every message is signed: {x.tsig_errors}"
        print(f"{rdtype} ({'signed' if signed else 'unsigned'}): {count} records in {len(x.messages)} messages")
    if signed:
        dig_verifies(srvd.port, secret, count + 1)


# --------------------------------------------------------------------------- 6. Knot


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "tsig"])
def test_knot_secondary_follows_api_changes(tmp_path: Path, procs: list, signed: bool) -> None:
    require("knotd")
    secret = new_secret()
    knot = Knot(tmp_path / "knot", key=(KEY_NAME, secret) if signed else None)
    srvd = start_srvd(procs, tmp_path / "srvd", allow=["127.0.0.1/32"], notify=[knot.notify_target],
                      tsig=[f"{KEY_NAME}:{secret}"] if signed else [])
    procs.append(knot)
    knot.start(srvd.port)
    keys = keyring(KEY_NAME, secret) if signed else None

    def diag() -> str:
        return f"{srvd.log_tail()}\n{knot.log_tail()}"

    knot.wait_serial(100, LOAD, diag)
    assert full_zone(knot.port, "AXFR from Knot", diag) == full_zone(srvd.port, "AXFR from srvd", diag, keys=keys)

    srvd.register("infra0", "10.0.1.10")
    took = follows(knot, srvd, lambda: serves_member(knot.port, "infra0", "10.0.1.10"), "registration of infra0")
    print(f"Knot served infra0 {took:.2f}s after the registration")
    srvd.deregister("infra0")
    follows(knot, srvd, lambda: serves_no_member(knot.port, "infra0"), "deregistration of infra0")
    knot.wait_serial(102, FOLLOW, diag)
    assert full_zone(knot.port, "AXFR from Knot", diag) == full_zone(srvd.port, "AXFR from srvd", diag, keys=keys)
    log = knot.log()
    assert "IXFR, incoming" in log and "AXFR-style IXFR" not in log, f"Knot should have received IXFR increments\n{diag()}"
    for bad in ("failed", "TSIG", "denied"):
        bad_lines = [line for line in log.splitlines() if bad in line and "failed to parse zone file" not in line]
        assert not bad_lines, f"Knot logged {bad!r}: {bad_lines}\n{diag()}"
