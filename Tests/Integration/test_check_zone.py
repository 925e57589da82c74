"""`srvd check-zone` and the zone file rules srvd applies when it loads a folder: every
problem is reported as FILE:LINE: message, and what loads is served as written."""

from __future__ import annotations

import re
from pathlib import Path

import dns.flags
import dns.rcode
import pytest

from conftest import SHIPPED_ZONE, query, run_srvd

ORIGIN = "t.example."
# Lines 1-5; broken cases add from line 6 on.
BASE = f"""\
$ORIGIN {ORIGIN}
$TTL 300
@   IN SOA ns1 hostmaster 1 3600 900 604800 60
    IN NS  ns1
ns1 IN A   127.0.0.1
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def check_zone(srvd_bin: str, *files: Path, origin: str | None = None, cwd: Path | None = None):
    args = ["check-zone", *map(str, files)] + (["--origin", origin] if origin else [])
    return run_srvd(srvd_bin, *args, cwd=cwd)


def assert_reported(result, location: str, message: str) -> None:
    """Exit 1 and a `location: ...message...` line on stderr (message is a regex)."""
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{location}: ")]
    assert lines, f"no error at {location} in:\n{result.stderr}"
    assert any(re.search(message, line, re.IGNORECASE) for line in lines), result.stderr


# --------------------------------------------------------------------------- good files


def test_shipped_zone_is_valid(srvd_bin: str):
    r = check_zone(srvd_bin, SHIPPED_ZONE)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert re.search(r"zone lab\.example\. serial 2026112101, 12 records: OK", r.stdout), r.stdout


def test_several_files_at_once(srvd_bin: str, tmp_path: Path):
    good = write(tmp_path / "a.example.zone", BASE)
    bad = write(tmp_path / "b.example.zone", BASE + "www IN A 127.0.0.300\n")
    r = check_zone(srvd_bin, good, bad)
    assert f"{good}: zone {ORIGIN}" in r.stdout
    assert_reported(r, f"{bad}:6", "rdata")


def test_origin_from_file_name(srvd_bin: str, tmp_path: Path):
    path = write(tmp_path / "named.example.zone", BASE.replace(f"$ORIGIN {ORIGIN}\n", "; no origin\n"))
    r = check_zone(srvd_bin, path)
    assert r.returncode == 0, r.stderr
    assert "zone named.example. serial 1" in r.stdout


def test_origin_argument(srvd_bin: str, tmp_path: Path):
    path = write(tmp_path / "named.example.zone", BASE.replace(f"$ORIGIN {ORIGIN}\n", "; no origin\n"))
    r = check_zone(srvd_bin, path, origin="other.example")
    assert r.returncode == 0, r.stderr
    assert "zone other.example. serial 1" in r.stdout


# --------------------------------------------------------------------------- broken files


# The line is the one of the record that makes the zone invalid: the second SOA, the
# second CNAME, whichever of CNAME and other data comes later (nsd-checkzone reports the
# same lines).
BROKEN = [
    pytest.param("www IN A 127.0.0.300\n", 6, r"rdata", id="bad-a-rdata"),
    pytest.param("www IN MX ten mail\n", 6, r"rdata", id="bad-mx-rdata"),
    pytest.param("www IN SRV 0 0 notaport host\n", 6, r"rdata", id="bad-srv-rdata"),
    pytest.param("@ IN SOA ns1 hostmaster 2 3600 900 604800 60\n", 6, r"SOA", id="two-soa"),
    pytest.param("www IN A 127.0.0.2\n@ IN SOA ns1 hostmaster 2 3600 900 604800 60\n", 7, r"SOA", id="two-soa-later"),
    pytest.param("sub IN SOA ns1 hostmaster 2 3600 900 604800 60\n", 6, r"SOA.*apex", id="soa-not-at-apex"),
    pytest.param("www IN A 127.0.0.2\nwww IN CNAME ns1\n", 7, r"CNAME.*other data", id="cname-after-other-data"),
    pytest.param("www IN CNAME ns1\nfoo IN A 127.0.0.3\nwww IN A 127.0.0.2\n", 8, r"CNAME.*other data",
                 id="other-data-after-cname"),
    pytest.param("www IN CNAME ns1\nfoo IN A 127.0.0.3\nwww IN CNAME foo\n", 8, r"CNAME", id="two-cnames"),
    pytest.param("www.other.test. IN A 127.0.0.2\n", 6, r"out-of-zone|not in zone", id="out-of-zone-owner"),
    pytest.param("$TTL abc\n", 6, r"TTL", id="bad-ttl"),
    pytest.param("$TTL\n", 6, r"TTL", id="empty-ttl"),
    pytest.param("$INCLUDE does-not-exist.inc\n", 6, r"does-not-exist\.inc", id="missing-include"),
]


@pytest.mark.parametrize("extra, line, message", BROKEN)
def test_broken_zone_reports_file_and_line(srvd_bin: str, tmp_path: Path, extra: str, line: int, message: str):
    path = write(tmp_path / "t.example.zone", BASE + extra)
    assert_reported(check_zone(srvd_bin, path), f"{path}:{line}", message)


def test_no_ns_at_apex(srvd_bin: str, tmp_path: Path):
    """Reported at the SOA record, where the apex is."""
    path = write(tmp_path / "t.example.zone", BASE.replace("    IN NS  ns1\n", ""))
    assert_reported(check_zone(srvd_bin, path), f"{path}:3", r"no NS")


def test_no_soa(srvd_bin: str, tmp_path: Path):
    path = write(tmp_path / "t.example.zone", f"$ORIGIN {ORIGIN}\nns1 300 IN A 127.0.0.1\n@ 300 IN NS ns1\n")
    r = check_zone(srvd_bin, path)
    assert r.returncode == 1
    assert str(path) in r.stderr and "SOA" in r.stderr


def test_every_error_of_a_file_is_reported(srvd_bin: str, tmp_path: Path):
    path = write(tmp_path / "t.example.zone", BASE + "a IN A 127.0.0.300\nb IN A 127.0.0.2\nc IN AAAA nope\n")
    r = check_zone(srvd_bin, path)
    assert_reported(r, f"{path}:6", "rdata")
    assert_reported(r, f"{path}:8", "rdata")


def test_duplicate_identical_records_are_one(srvd_bin: str, tmp_path: Path):
    """RFC 2181 §5: an RRset has no duplicate records; a repeated line is not an error."""
    path = write(tmp_path / "t.example.zone", BASE + "www IN CNAME ns1\nwww IN CNAME ns1\n")
    r = check_zone(srvd_bin, path)
    assert r.returncode == 0, r.stderr
    assert "4 records" in r.stdout


# --------------------------------------------------------------------------- $INCLUDE


@pytest.fixture
def include_tree(tmp_path: Path) -> Path:
    """zones/main.zone includes sub/hosts.inc plainly and sub/svc.inc with an origin."""
    write(tmp_path / "zones" / "sub" / "hosts.inc", "h1 IN A 127.0.0.11\nh2 IN A 127.0.0.12\n")
    write(tmp_path / "zones" / "sub" / "svc.inc", 'www IN A 127.0.0.21\n@ IN TXT "svc apex"\n')
    return write(
        tmp_path / "zones" / "t.example.zone",
        BASE + "$INCLUDE sub/hosts.inc\n$INCLUDE sub/svc.inc svc.t.example.\nafter IN A 127.0.0.9\n",
    )


def test_include_is_relative_to_including_file(srvd_bin: str, include_tree: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = check_zone(srvd_bin, include_tree, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "8 records: OK" in r.stdout


def test_error_in_included_file_names_that_file(srvd_bin: str, include_tree: Path):
    inc = include_tree.parent / "sub" / "hosts.inc"
    inc.write_text("h1 IN A 127.0.0.11\nh2 IN A 127.0.0.300\n")
    r = check_zone(srvd_bin, include_tree)
    assert r.returncode == 1
    assert re.search(r"hosts\.inc:2: .*rdata", r.stderr, re.IGNORECASE), r.stderr


def test_include_cycle_is_an_error(srvd_bin: str, include_tree: Path):
    (include_tree.parent / "sub" / "hosts.inc").write_text("$INCLUDE hosts.inc\n")
    r = check_zone(srvd_bin, include_tree)
    assert r.returncode == 1
    assert "hosts.inc:1:" in r.stderr


@pytest.mark.parametrize("origin, ok", [("inc.example", True), ("wrong.example", False)])
def test_include_under_origin_option(srvd_bin: str, tmp_path: Path, origin: str, ok: bool):
    """A file without $ORIGIN checked with --origin: its includes see that origin too
    (the included absolute name is in the zone only under the right one)."""
    write(tmp_path / "hosts.inc", "h1 IN A 127.0.0.11\nh2.inc.example. IN A 127.0.0.12\n")
    main = write(tmp_path / "main.zone", BASE.replace(f"$ORIGIN {ORIGIN}\n", "") + "$INCLUDE hosts.inc\n")
    r = check_zone(srvd_bin, main, origin=origin)
    if ok:
        assert r.returncode == 0, r.stderr
        assert f"zone {origin}. serial 1, 5 records: OK" in r.stdout
    else:
        assert_reported(r, f"{tmp_path / 'hosts.inc'}:2", r"out-of-zone|not in zone")


def test_included_records_are_served(make_srvd, include_tree: Path):
    """The plain include uses the zone's origin; the one with an origin argument uses that
    origin for its own lines only (RFC 1035 §5.1), and `after` is back in t.example."""
    srvd = make_srvd()
    srvd.write_zone("t.example.zone", include_tree.read_text())
    sub = srvd.zones / "sub"
    sub.mkdir()
    for inc in ("hosts.inc", "svc.inc"):
        (sub / inc).write_text((include_tree.parent / "sub" / inc).read_text())
    srvd.start()
    expected = {
        ("h2.t.example.", "A"): "127.0.0.12",
        ("www.svc.t.example.", "A"): "127.0.0.21",
        ("svc.t.example.", "TXT"): '"svc apex"',
        ("after.t.example.", "A"): "127.0.0.9",
    }
    for (name, rdtype), value in expected.items():
        r = query(srvd.port, name, rdtype)
        assert r.rcode() == dns.rcode.NOERROR, (name, r.to_text())
        assert [rd.to_text() for rd in r.answer[0]] == [value]
    assert query(srvd.port, "www.t.example.", "A").rcode() == dns.rcode.NXDOMAIN


# --------------------------------------------------------------------------- served as written


SERVED = BASE.replace("$TTL 300", "$TTL 1h") + """\
unknown        IN TYPE65280 \\# 4 0a000001
www            IN A     127.0.0.2
www.sub        IN A     127.0.0.3
abs.t.example. IN A     127.0.0.4
short       60 IN A     127.0.0.5
@              IN TXT   "at the apex"
$TTL 120
later          IN A     127.0.0.6
"""


@pytest.fixture
def served(make_srvd):
    return make_srvd({"t.example.zone": SERVED}).start()


def test_served_zone_is_valid(srvd_bin: str, tmp_path: Path):
    r = check_zone(srvd_bin, write(tmp_path / "t.example.zone", SERVED))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "name, rdtype, ttl, value",
    [
        ("www.t.example.", "A", 3600, "127.0.0.2"),       # relative name, $TTL 1h
        ("www.sub.t.example.", "A", 3600, "127.0.0.3"),   # relative name of two labels
        ("abs.t.example.", "A", 3600, "127.0.0.4"),       # absolute name
        ("short.t.example.", "A", 60, "127.0.0.5"),       # explicit TTL wins
        ("t.example.", "TXT", 3600, '"at the apex"'),     # @
        ("later.t.example.", "A", 120, "127.0.0.6"),      # a later $TTL applies from there on
        ("ns1.t.example.", "A", 3600, "127.0.0.1"),
    ],
)
def test_names_and_ttls_as_written(served, name: str, rdtype: str, ttl: int, value: str):
    r = query(served.port, name, rdtype)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    (rrset,) = r.answer
    assert rrset.ttl == ttl
    assert [rd.to_text() for rd in rrset] == [value]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_unknown_type_is_served_as_is(served, tcp: bool):
    """RFC 3597: TYPE65280 with generic rdata comes back byte for byte."""
    r = query(served.port, "unknown.t.example.", "TYPE65280", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    (rrset,) = r.answer
    assert rrset.rdtype == 65280
    assert rrset[0].to_wire() == bytes.fromhex("0a000001")


def test_origin_from_file_name_when_served(make_srvd):
    no_origin = BASE.replace(f"$ORIGIN {ORIGIN}\n", "; no $ORIGIN: the file name gives it\n")
    srvd = make_srvd({"named.example.zone": no_origin}).start()
    r = query(srvd.port, "ns1.named.example.", "A")
    assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].to_text() == "127.0.0.1"
    assert query(srvd.port, "ns1.t.example.", "A").rcode() == dns.rcode.REFUSED


def test_duplicate_zones_in_one_folder_stop_serve(make_srvd):
    """Two files with the same $ORIGIN: srvd does not start (exit 65) and names the file."""
    srvd = make_srvd({"a.zone": BASE, "b.zone": BASE})
    proc = srvd.spawn()
    assert proc.wait(timeout=30) == 65, srvd.log()
    assert re.search(rf"{re.escape(str(srvd.zones / 'b.zone'))}:1: .*{re.escape(ORIGIN)}.*already defined", srvd.log()), srvd.log()
