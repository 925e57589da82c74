"""RFC 2136 dynamic UPDATE, differential: the same update scripts sent to Knot DNS and to
srvd must give the same RCODE (and TSIG error) and leave the same zone (by AXFR).

SCRIPTS is the table: each script is data (prerequisites, updates, key; see update_support
for the forms) turned into a message by dnspython's UpdateMessage, so any server can be
sent it, plus what RFC 2136 (RFC 8945 for TSIG) says the server answers and does to the
zone. Each script starts from the pristine zone (zones/lab.example.zone plus
update_support.EXTRA_RECORDS) and ends with an AXFR, the SOA serial written relative to
the start (`serial+1`).

- test_knot_follows_the_rfc: every script against Knot (Debian's knotd 3.2, a primary with
  TSIG keys and an update ACL), asserting the RFC's outcome, so the table itself is checked
  against a real implementation. Where Knot does something else the script says so
  (knot_note) and the test asserts what Knot does.
- test_clients: a few scripts sent with nsupdate (-y and -k) and knsupdate instead, which
  must leave the zone exactly as the dnspython message did.
- test_srvd_matches_knot: every script against srvd and Knot, outcomes equal except for the
  documented differences in SRVD_DIFFERENCES (each with the RFC sentence that allows it).
  Skipped until `srvd serve --help` lists --allow-update (issue 15).

One Knot per module; between scripts `knotc -b zone-reload` brings the untouched zone file
back (Knot never writes it and keeps no journal), checked by an AXFR.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import require_tool
from update_support import (
    UPDATE_KEY,
    WRONG_SECRET_KEY,
    KnotTarget,
    Outcome,
    Script,
    SrvdTarget,
    build_message,
    client_commands,
    describe_zone_diff,
    run_client,
    srvd_supports_update,
    tsig_verifies,
)

FLAG = ("add", "flag", 30, "TXT", '"applied"')  # the update of the prerequisite scripts
FLAG_RR = 'flag 30 TXT "applied"'
SOA = "@ 30 SOA ns1 hostmaster {serial} 3600 900 604800 30"  # the pristine SOA


# Where Knot 3.2 does not do what the RFCs say (asserted as Knot does it, see knot_note).
KNOT_ACL_DENIED = (
    "Knot answers every ACL denial NOTAUTH, with TSIG error BADKEY (unsigned, RFC 8945 5.3.2) when the "
    "request was signed (knot process_query.c, process_query_acl_check); RFC 2136 3.3 says REFUSED, and "
    "BADKEY (RFC 8945 5.2.1) means a key the server does not know, not one it knows but does not allow")
KNOT_NO_ZONE = (
    "Knot verifies TSIG against the zone's ACL only; for a zone it does not serve the NOTAUTH is unsigned, "
    "where RFC 8945 5.3 says the response to a signed request is signed with the same key")
KNOT_PARSE_FORMERR = (
    "Knot rejects the message before it processes TSIG; its FORMERR is unsigned, where RFC 8945 5.3 says "
    "the response to a signed request is signed with the same key")
KNOT_DUPLICATE = (
    "Knot ignores an added RR whose RDATA is already in the RRset, whatever its TTL (Knot's ddns.c: "
    "\"Adding existing RR, ignore\"): no TTL change, no serial increment. RFC 2136 3.4.2.2 says the Zone RR is "
    "replaced by the Update RR (1.1.1: TTL is not compared), so the TTL should change. "
    "(Adding a new RR with another TTL does change the RRset's TTL: add-to-rrset-other-ttl.)")


def pre(id: str, what: str, prereqs: tuple, rcode: str = "NOERROR", **kw) -> Script:
    """A prerequisite script: the prerequisites, then FLAG, which is applied iff they hold."""
    return Script(id, what, prereqs=prereqs, updates=(FLAG,), rcode=rcode,
                  adds=(FLAG_RR,) if rcode == "NOERROR" else (), **kw)


SCRIPTS: list[Script] = [
    # ------------------------------------------------------------ 2.4.1 RRset exists (value independent)
    pre("pre-yxrrset-holds", "2.4.1/3.2.1: at least one RR with NAME and TYPE exists",
        (("yxrrset", "infra0", "A"),)),
    pre("pre-yxrrset-apex-soa", "2.4.1: the apex SOA exists", (("yxrrset", "@", "SOA"),)),
    pre("pre-yxrrset-delegation", "2.4.1: the delegation's NS RRset exists", (("yxrrset", "child", "NS"),)),
    pre("pre-yxrrset-fails", "3.2.1: no RR of that TYPE: NXRRSET", (("yxrrset", "infra0", "AAAA"),), "NXRRSET"),
    pre("pre-yxrrset-no-name", "3.2.1: no such name: NXRRSET", (("yxrrset", "nothing", "A"),), "NXRRSET"),
    pre("pre-yxrrset-cname-not-followed", "1.1.4: aliasing is disabled, a CNAME is not followed",
        (("yxrrset", "alias", "A"),), "NXRRSET"),
    pre("pre-yxrrset-cname", "1.1.4: a CNAME in the zone matches a CNAME in the prerequisite",
        (("yxrrset", "alias", "CNAME"),)),
    pre("pre-yxrrset-case", "1.1.2: names compare case-insensitively",
        (("yxrrset", "INFRA0.Lab.Example.", "A"),)),
    # ------------------------------------------------------------ 2.4.2 RRset exists (value dependent)
    pre("pre-value-holds", "2.4.2/3.2.3: the RRset has exactly these members",
        (("yxrrset", "multi", "A", "127.0.0.21", "127.0.0.22"),)),
    pre("pre-value-order", "3.2.3: set equality, order does not matter",
        (("yxrrset", "_etcd-server._tcp", "SRV", "0 0 2380 infra2", "0 0 2380 infra0", "0 0 2380 infra1"),)),
    pre("pre-value-subset", "3.2.3: same members, no more, no less (a subset): NXRRSET",
        (("yxrrset", "multi", "A", "127.0.0.21"),), "NXRRSET"),
    pre("pre-value-superset", "3.2.3: same members, no more, no less (a superset): NXRRSET",
        (("yxrrset", "multi", "A", "127.0.0.21", "127.0.0.22", "127.0.0.23"),), "NXRRSET"),
    pre("pre-value-differs", "3.2.3: another RDATA: NXRRSET", (("yxrrset", "static", "TXT", '"other"'),), "NXRRSET"),
    pre("pre-value-no-name", "3.2.3: no such RRset: NXRRSET", (("yxrrset", "nothing", "TXT", '"file"'),), "NXRRSET"),
    pre("pre-value-rdata-case", "1.1.2: names in RDATA compare case-insensitively",
        (("yxrrset", "alias", "CNAME", "INFRA0.LAB.EXAMPLE."),)),
    pre("pre-value-two-rrsets", "3.2.3: an RRset per <NAME,TYPE>, each must match",
        (("yxrrset", "multi", "A", "127.0.0.21", "127.0.0.22"), ("yxrrset", "multi", "TXT", '"multi"'))),
    # ------------------------------------------------------------ 2.4.3 RRset does not exist
    pre("pre-nxrrset-holds", "2.4.3/3.2.2: no RR with NAME and TYPE", (("nxrrset", "infra0", "AAAA"),)),
    pre("pre-nxrrset-no-name", "2.4.3: a name that does not exist has no RRset", (("nxrrset", "nothing", "A"),)),
    pre("pre-nxrrset-cname-not-followed", "1.1.4: the CNAME's target is not looked at",
        (("nxrrset", "alias", "A"),)),
    pre("pre-nxrrset-fails", "3.2.2: the RRset exists: YXRRSET", (("nxrrset", "infra0", "A"),), "YXRRSET"),
    # ------------------------------------------------------------ 2.4.4 name is in use
    pre("pre-yxdomain-holds", "2.4.4/3.2.1: at least one RR with NAME", (("yxdomain", "static"),)),
    pre("pre-yxdomain-cname", "2.4.4: a CNAME is an RR", (("yxdomain", "alias"),)),
    pre("pre-yxdomain-fails", "3.2.1: no RR with that NAME: NXDOMAIN", (("yxdomain", "nothing"),), "NXDOMAIN"),
    pre("pre-yxdomain-empty-nonterminal", "2.4.4: NOT satisfied by empty nonterminals",
        (("yxdomain", "_tcp"),), "NXDOMAIN"),
    pre("pre-yxdomain-wildcard-not-expanded", "1.1.3: wildcarding is disabled",
        (("yxdomain", "foo.wild"),), "NXDOMAIN"),
    pre("pre-yxdomain-wildcard-literal", "1.1.3: a \"*\" matches only a \"*\" in the zone", (("yxdomain", "*.wild"),)),
    # ------------------------------------------------------------ 2.4.5 name is not in use
    pre("pre-nxdomain-holds", "2.4.5/3.2.2: no RR of any type owned by NAME", (("nxdomain", "nothing"),)),
    pre("pre-nxdomain-empty-nonterminal", "2.4.5: IS satisfied by empty nonterminals", (("nxdomain", "_tcp"),)),
    pre("pre-nxdomain-wildcard-not-expanded", "1.1.3: wildcarding is disabled", (("nxdomain", "foo.wild"),)),
    pre("pre-nxdomain-fails", "3.2.2: the name has RRs: YXDOMAIN", (("nxdomain", "static"),), "YXDOMAIN"),
    pre("pre-nxdomain-apex-fails", "3.2.2: the apex is in use", (("nxdomain", "@"),), "YXDOMAIN"),
    # ------------------------------------------------------------ prerequisites together, and malformed
    pre("pre-all-hold", "3.2: every prerequisite is checked",
        (("yxrrset", "infra0", "A"), ("yxrrset", "static", "TXT", '"file"'), ("nxrrset", "infra0", "AAAA"),
         ("yxdomain", "multi"), ("nxdomain", "nothing"))),
    pre("pre-last-fails", "3.2: one failing prerequisite is enough: nothing is applied",
        (("yxrrset", "infra0", "A"), ("yxdomain", "static"), ("nxdomain", "infra1")), "YXDOMAIN"),
    pre("pre-notzone", "3.2: a NAME outside the zone: NOTZONE", (("yxdomain", "www.other.test."),), "NOTZONE"),
    pre("pre-notzone-parent", "1.2/3.2: the parent of the zone is not in it", (("nxdomain", "example."),), "NOTZONE"),
    pre("pre-formerr-value-ttl", "3.2.3: CLASS zone, TTL not zero: FORMERR",
        (("raw", "static", 30, "IN", "TXT", '"file"'),), "FORMERR"),
    pre("pre-formerr-any-rdata", "3.2.1: CLASS ANY with RDLENGTH not zero: FORMERR",
        (("raw", "static", 0, "ANY", "TXT", '"file"'),), "FORMERR"),
    pre("pre-formerr-none-rdata", "3.2.2: CLASS NONE with RDLENGTH not zero: FORMERR",
        (("raw", "static", 0, "NONE", "TXT", '"file"'),), "FORMERR"),
    pre("pre-formerr-class", "3.2.4: a CLASS other than ZCLASS, NONE or ANY: FORMERR",
        (("raw", "static", 0, "CH", "TXT", '"file"'),), "FORMERR"),
    # ------------------------------------------------------------ 2.5.1 add to an RRset
    Script("add-new-name", "2.5.1/3.4.2.2: an Update RR of the zone's CLASS is added",
           updates=(("add", "new", 60, "A", "192.0.2.1"),), adds=("new 60 A 192.0.2.1",)),
    Script("add-to-rrset", "2.5.1: RRs are added to an existing RRset",
           updates=(("add", "multi", 30, "A", "127.0.0.23"),), adds=("multi 30 A 127.0.0.23",)),
    Script("add-several", "3.4.2: several RRs and types at one name, one message",
           updates=(("add", "new", 30, "A", "192.0.2.1", "192.0.2.2"), ("add", "new", 30, "AAAA", "2001:db8::1"),
                    ("add", "new", 30, "TXT", '"a" "b"')),
           adds=("new 30 A 192.0.2.1", "new 30 A 192.0.2.2", "new 30 AAAA 2001:db8::1", 'new 30 TXT "a" "b"')),
    Script("add-apex", "3.4.2.2: data at the apex", updates=(("add", "@", 30, "MX", "10 infra0"),),
           adds=("@ 30 MX 10 infra0",)),
    Script("add-srv", "3.4.2.2: an SRV RR", updates=(("add", "_etcd-server._tcp", 30, "SRV", "0 0 2380 new"),),
           adds=("_etcd-server._tcp 30 SRV 0 0 2380 new",)),
    Script("add-duplicate", "3.4.2.2: duplicate RDATA, the Zone RR is replaced by the same RR: no change",
           updates=(("add", "infra0", 30, "A", "127.0.0.10"),)),
    Script("add-duplicate-rdata-case", "1.1.1/1.1.2: RDATA names compare case-insensitively: a duplicate",
           updates=(("add", "alias", 30, "CNAME", "INFRA0.LAB.EXAMPLE."),)),
    Script("add-duplicate-new-ttl", "3.4.2.2: duplicate RDATA (1.1.1: TTL is not compared), the Zone RR is "
           "replaced by the Update RR: the TTL changes",
           updates=(("add", "infra0", 120, "A", "127.0.0.10"),),
           removes=("infra0 30 A 127.0.0.10",), adds=("infra0 120 A 127.0.0.10",),
           knot_note=KNOT_DUPLICATE, knot_removes=(), knot_adds=()),
    Script("add-to-rrset-other-ttl", "RFC 2181 5.2: the RRs of an RRset share one TTL; RFC 2136 does not say "
           "which, so this expects Knot's choice: the added RR's TTL for the whole RRset",
           updates=(("add", "multi", 120, "A", "127.0.0.23"),),
           removes=("multi 30 A 127.0.0.21", "multi 30 A 127.0.0.22"),
           adds=("multi 120 A 127.0.0.21", "multi 120 A 127.0.0.22", "multi 120 A 127.0.0.23")),
    Script("ttl-change-by-replace", "2.5.2 then 2.5.1: delete the RRset, add it back with another TTL",
           updates=(("delete", "multi", "A"), ("add", "multi", 300, "A", "127.0.0.21", "127.0.0.22")),
           removes=("multi 30 A 127.0.0.21", "multi 30 A 127.0.0.22"),
           adds=("multi 300 A 127.0.0.21", "multi 300 A 127.0.0.22")),
    Script("add-below-delegation", "3.4.2.2: no rule keeps data below a zone cut out (glue)",
           updates=(("add", "ns.child", 30, "A", "192.0.2.53"),), adds=("ns.child 30 A 192.0.2.53",)),
    Script("add-delegation", "3.4.2.2: NS below the apex makes a delegation",
           updates=(("add", "sub", 30, "NS", "ns.sub"), ("add", "ns.sub", 30, "A", "192.0.2.54")),
           adds=("sub 30 NS ns.sub", "ns.sub 30 A 192.0.2.54")),
    Script("add-wildcard-literal", "1.1.3: a name under a wildcard is a name of its own",
           updates=(("add", "foo.wild", 30, "TXT", '"own"'),), adds=('foo.wild 30 TXT "own"',)),
    Script("add-case", "1.1.2: owner names compare case-insensitively: STATIC is static",
           updates=(("add", "STATIC", 30, "TXT", '"second"'),), adds=('static 30 TXT "second"',)),
    # ------------------------------------------------------------ 2.5.2 delete an RRset
    Script("delete-rrset", "2.5.2/3.4.2.3: all RRs with NAME and TYPE are deleted",
           updates=(("delete", "multi", "A"),), removes=("multi 30 A 127.0.0.21", "multi 30 A 127.0.0.22")),
    Script("delete-rrset-absent", "3.4.2.3: nothing to delete: no change", updates=(("delete", "infra0", "AAAA"),)),
    Script("delete-rrset-srv", "3.4.2.3: an SRV RRset",
           updates=(("delete", "_etcd-client._tcp", "SRV"),),
           removes=("_etcd-client._tcp 30 SRV 0 0 2379 infra0", "_etcd-client._tcp 30 SRV 0 0 2379 infra1",
                    "_etcd-client._tcp 30 SRV 0 0 2379 infra2")),
    Script("delete-rrset-wildcard", "1.1.3: deleting at *.wild deletes the wildcard only",
           updates=(("delete", "*.wild", "TXT"),), removes=('*.wild 30 TXT "wildcard"',)),
    Script("delete-rrset-wildcard-not-expanded", "1.1.3: foo.wild is not the wildcard",
           updates=(("delete", "foo.wild", "TXT"),)),
    Script("delete-delegation", "3.4.2.3: NS below the apex may be deleted",
           updates=(("delete", "child", "NS"),), removes=("child 30 NS ns.elsewhere.test.",)),
    # ------------------------------------------------------------ 2.5.3 delete all RRsets from a name
    Script("delete-name", "2.5.3/3.4.2.3: all RRs with NAME are deleted",
           updates=(("delete", "multi"),),
           removes=("multi 30 A 127.0.0.21", "multi 30 A 127.0.0.22", 'multi 30 TXT "multi"')),
    Script("delete-name-absent", "3.4.2.3: nothing to delete: no change", updates=(("delete", "nothing"),)),
    Script("delete-name-cname", "3.4.2.3: a name holding a CNAME", updates=(("delete", "alias"),),
           removes=("alias 30 CNAME infra0",)),
    Script("delete-name-apex", "3.4.2.3: at ZNAME only RRs other than SOA and NS are deleted",
           updates=(("delete", "@"),), removes=('@ 30 TXT "apex"',)),
    Script("delete-name-empty-nonterminal", "3.4.2.3: an empty nonterminal owns no RRs: no change",
           updates=(("delete", "_tcp"),)),
    # ------------------------------------------------------------ 2.5.4 delete an RR from an RRset
    Script("delete-rr", "2.5.4/3.4.2.4: the Zone RR with NAME, TYPE, RDATA equal is deleted",
           updates=(("delete", "multi", "A", "127.0.0.21"),), removes=("multi 30 A 127.0.0.21",)),
    Script("delete-rr-last", "3.4.2.4: the last RR of a name: the name is gone",
           updates=(("delete", "static", "TXT", '"file"'),), removes=('static 30 TXT "file"',)),
    Script("delete-rr-absent", "3.4.2.4: no RR with that RDATA: no change",
           updates=(("delete", "multi", "A", "127.0.0.99"),)),
    Script("delete-rr-rdata-case", "1.1.2: names in RDATA compare case-insensitively",
           updates=(("delete", "alias", "CNAME", "INFRA0.LAB.EXAMPLE."),), removes=("alias 30 CNAME infra0",)),
    Script("delete-rr-ttl-ignored", "1.1.1: TTL is not compared (the delete RR's TTL is 0 anyway)",
           updates=(("delete", "long", "TXT", '"ten minutes"'),), removes=('long 600 TXT "ten minutes"',)),
    # ------------------------------------------------------------ several updates, order, atomicity
    Script("several-updates", "3.4.2/3.6: the updates in order, one serial increment per message",
           updates=(("add", "new", 30, "A", "192.0.2.1"), ("delete", "static"),
                    ("delete", "multi", "A", "127.0.0.21"), ("add", "infra3", 30, "A", "127.0.0.13"),
                    ("add", "_etcd-server._tcp", 30, "SRV", "0 0 2380 infra3")),
           removes=('static 30 TXT "file"', "multi 30 A 127.0.0.21"),
           adds=("new 30 A 192.0.2.1", "infra3 30 A 127.0.0.13", "_etcd-server._tcp 30 SRV 0 0 2380 infra3")),
    Script("replace-rrset", "3.4.2: delete an RRset then add: processed in order",
           updates=(("delete", "infra0", "A"), ("add", "infra0", 30, "A", "127.0.0.100")),
           removes=("infra0 30 A 127.0.0.10",), adds=("infra0 30 A 127.0.0.100",)),
    Script("add-then-delete", "3.4.2: processed in order, an RR added then deleted is not there",
           updates=(("add", "new", 30, "A", "192.0.2.1"), ("delete", "new", "A", "192.0.2.1"))),
    Script("delete-then-add-name", "3.4.2: delete a name, then give it new data",
           updates=(("delete", "multi"), ("add", "multi", 30, "TXT", '"new"')),
           removes=("multi 30 A 127.0.0.21", "multi 30 A 127.0.0.22", 'multi 30 TXT "multi"'),
           adds=('multi 30 TXT "new"',)),
    Script("empty-update", "3.4: no prerequisites, no updates: NOERROR, no change"),
    Script("all-or-nothing-prereq", "3.7/Abstract: all prerequisites must be satisfied or else no update "
           "operations will take place",
           prereqs=(("nxdomain", "static"),),
           updates=(("add", "new", 30, "A", "192.0.2.1"), ("delete", "multi"), ("delete", "alias", "CNAME")),
           rcode="YXDOMAIN"),
    Script("all-or-nothing-notzone", "3.4.1: the prescan fails before any update is applied: NOTZONE",
           updates=(("add", "new", 30, "A", "192.0.2.1"), ("delete", "multi"),
                    ("add", "www.other.test.", 30, "A", "192.0.2.2")),
           rcode="NOTZONE"),
    Script("all-or-nothing-formerr", "3.4.1.2: the prescan fails before any update is applied: FORMERR",
           updates=(("add", "new", 30, "A", "192.0.2.1"), ("raw", "multi", 30, "NONE", "A", "127.0.0.21")),
           rcode="FORMERR"),
    # ------------------------------------------------------------ update prescan (3.4.1)
    Script("notzone-update", "3.4.1.1: each RR's NAME must be in the zone, else NOTZONE",
           updates=(("add", "www.other.test.", 30, "A", "192.0.2.1"),), rcode="NOTZONE"),
    Script("notzone-update-suffix", "1.2: a name merely ending in the zone's text is not in it",
           updates=(("add", "notlab.example.", 30, "A", "192.0.2.1"),), rcode="NOTZONE"),
    Script("formerr-update-class", "3.4.1.1: a CLASS other than ANY, NONE or the zone's: FORMERR",
           updates=(("raw", "new", 30, "CH", "TXT", '"chaos"'),), rcode="FORMERR"),
    Script("formerr-delete-ttl", "3.4.1.2: CLASS NONE with a TTL other than zero: FORMERR",
           updates=(("raw", "multi", 30, "NONE", "A", "127.0.0.21"),), rcode="FORMERR"),
    Script("formerr-delete-rrset-rdata", "3.4.1.2: CLASS ANY with RDLENGTH other than zero: FORMERR",
           updates=(("raw", "multi", 0, "ANY", "A", "127.0.0.21"),), rcode="FORMERR"),
    Script("formerr-add-axfr", "3.4.1.2: CLASS zone with a QUERY metatype (AXFR): FORMERR",
           updates=(("raw", "new", 30, "IN", "AXFR", r"\# 0"),), rcode="FORMERR",
           knot_note=KNOT_PARSE_FORMERR, knot_signed=False),
    # ------------------------------------------------------------ CNAME (3.4.2.2)
    Script("cname-where-data", "3.4.2.2: a CNAME Update RR and a non-CNAME Zone RRset: ignore the CNAME",
           updates=(("add", "static", 30, "CNAME", "infra0"),)),
    Script("data-where-cname", "3.4.2.2: \"or vice versa\": a non-CNAME Update RR at a CNAME is ignored",
           updates=(("add", "alias", 30, "A", "192.0.2.1"),)),
    Script("cname-replaces-cname", "3.4.2.2: otherwise replace the CNAME Zone RR with the CNAME Update RR",
           updates=(("add", "alias", 30, "CNAME", "infra1"),),
           removes=("alias 30 CNAME infra0",), adds=("alias 30 CNAME infra1",)),
    Script("cname-new-name", "3.4.2.2: a CNAME at a new name is added",
           updates=(("add", "other", 30, "CNAME", "infra1"),), adds=("other 30 CNAME infra1",)),
    Script("cname-after-delete", "3.4.2: in order: the data is deleted first, then the CNAME fits",
           updates=(("delete", "static"), ("add", "static", 30, "CNAME", "infra0")),
           removes=('static 30 TXT "file"',), adds=("static 30 CNAME infra0",)),
    Script("cname-then-data-same-message", "3.4.2.2 in order: data added after a CNAME at a new name is ignored",
           updates=(("add", "other", 30, "CNAME", "infra1"), ("add", "other", 30, "TXT", '"x"')),
           adds=("other 30 CNAME infra1",)),
    Script("cname-at-apex", "3.4.2.2: the apex has SOA and NS: a CNAME there is ignored",
           updates=(("add", "@", 30, "CNAME", "infra0"),)),
    # ------------------------------------------------------------ apex NS (3.4.2.3, 3.4.2.4)
    Script("apex-ns-delete-rrset", "3.4.2.3: unless the NAME is ZNAME, in which case neither SOA or NS RRs "
           "will be deleted", updates=(("delete", "@", "NS"),)),
    Script("apex-ns-delete-last", "3.4.2.4: ... or the TYPE is NS and the matching Zone RR is the only NS "
           "remaining in the RRset, in which case this Update RR is ignored",
           updates=(("delete", "@", "NS", "ns1"),)),
    Script("apex-ns-add", "3.4.2.2: a second NS at the apex", updates=(("add", "@", 30, "NS", "ns2"),),
           adds=("@ 30 NS ns2",)),
    Script("apex-ns-replace", "3.4.2.4: one of two NS may go",
           updates=(("add", "@", 30, "NS", "ns2"), ("delete", "@", "NS", "ns1")),
           removes=("@ 30 NS ns1",), adds=("@ 30 NS ns2",)),
    Script("apex-ns-delete-all-rrs", "3.4.2.4: deleting every NS one by one: the last one stays",
           updates=(("add", "@", 30, "NS", "ns2"), ("delete", "@", "NS", "ns1"), ("delete", "@", "NS", "ns2")),
           removes=("@ 30 NS ns1",), adds=("@ 30 NS ns2",)),
    # ------------------------------------------------------------ SOA (3.4.2.2, 3.6)
    Script("soa-higher-serial", "3.4.2.2/3.6: an SOA with a higher serial replaces the zone's",
           updates=(("add", "@", 30, "SOA", "ns1 hostmaster {serial+10} 3600 900 604800 30"),), serial=10),
    Script("soa-new-fields", "3.4.2.2: the whole SOA is replaced (1.1.5: SOA compares NAME, CLASS, TYPE only)",
           updates=(("add", "@", 60, "SOA", "ns1 admin {serial+5} 7200 600 1209600 60"),),
           removes=(SOA,), adds=("@ 60 SOA ns1 admin {serial+5} 7200 600 1209600 60",), serial=5),
    Script("soa-and-data", "3.6: the serial was set by the update, so it is not incremented again",
           updates=(("add", "@", 30, "SOA", "ns1 hostmaster {serial+10} 3600 900 604800 30"),
                    ("add", "new", 30, "A", "192.0.2.1")),
           adds=("new 30 A 192.0.2.1",), serial=10),
    Script("soa-serial-wraps", "3.4.2.2: higher according to RFC 1982 (2^31 - 1 ahead)",
           updates=(("add", "@", 30, "SOA", "ns1 hostmaster {serial+2147483647} 3600 900 604800 30"),),
           serial=2147483647),
    Script("soa-lower-serial", "3.4.2.2/3.6: lower than the current serial: silently ignored",
           updates=(("add", "@", 30, "SOA", "ns1 hostmaster {serial-1} 7200 900 604800 30"),)),
    Script("soa-equal-serial", "3.4.2.2: lower than or equal to the current serial: ignored",
           updates=(("add", "@", 30, "SOA", "ns1 hostmaster {serial} 7200 900 604800 30"),)),
    Script("soa-lower-serial-and-data", "3.6: the SOA is ignored, the data is not, the serial is incremented",
           updates=(("add", "@", 30, "SOA", "ns1 hostmaster {serial-1} 3600 900 604800 30"),
                    ("add", "new", 30, "A", "192.0.2.1")),
           adds=("new 30 A 192.0.2.1",)),
    Script("soa-delete-rrset", "3.4.2.3: at ZNAME neither SOA or NS RRs will be deleted",
           updates=(("delete", "@", "SOA"),)),
    Script("soa-delete-rr", "3.4.2.4: unless the NAME is ZNAME and the TYPE is SOA ... ignored",
           updates=(("delete", "@", "SOA", "ns1 hostmaster {serial} 3600 900 604800 30"),)),
    # ------------------------------------------------------------ zone section (3.1)
    Script("notauth-zone", "3.1.1: the zone is not one of this server's authority zones: NOTAUTH",
           zone="other.example.", updates=(("add", "new.other.example.", 30, "A", "192.0.2.1"),), rcode="NOTAUTH",
           knot_note=KNOT_NO_ZONE, knot_signed=False),
    Script("notauth-subzone", "3.1.1: a name inside the zone is not a zone: NOTAUTH",
           zone="sub.lab.example.", updates=(("add", "new.sub", 30, "A", "192.0.2.1"),), rcode="NOTAUTH",
           knot_note=KNOT_NO_ZONE, knot_signed=False),
    Script("zone-name-case", "1.1.2: the zone section's name compares case-insensitively",
           zone="LAB.Example.", updates=(("add", "new", 30, "A", "192.0.2.1"),), adds=("new 30 A 192.0.2.1",)),
    Script("formerr-zone-type", "3.1.1: ZTYPE must be SOA, else FORMERR", zone_type="A",
           updates=(("add", "new", 30, "A", "192.0.2.1"),), rcode="FORMERR",
           knot_note=KNOT_PARSE_FORMERR, knot_signed=False),
    # ------------------------------------------------------------ permission and TSIG (3.3, RFC 8945)
    Script("unsigned", "3.3: the requestor is not permitted to update (no key): REFUSED", key=None,
           updates=(("add", "new", 30, "A", "192.0.2.1"),), rcode="REFUSED",
           knot_note=KNOT_ACL_DENIED, knot_rcode="NOTAUTH"),
    Script("key-without-update-right", "3.3: a valid key that may not update: REFUSED", key="transfer-only",
           updates=(("add", "new", 30, "A", "192.0.2.1"),), rcode="REFUSED",
           knot_note=KNOT_ACL_DENIED, knot_rcode="NOTAUTH", knot_tsig_error="BADKEY"),
    Script("unknown-key", "RFC 8945 5.2.1: a key the server does not know: NOTAUTH, TSIG error BADKEY",
           key="unknown", updates=(("add", "new", 30, "A", "192.0.2.1"),), rcode="NOTAUTH", tsig_error="BADKEY"),
    Script("wrong-secret", "RFC 8945 5.2.2: the MAC does not verify: NOTAUTH, TSIG error BADSIG",
           key="wrong-secret", updates=(("add", "new", 30, "A", "192.0.2.1"),), rcode="NOTAUTH",
           tsig_error="BADSIG"),
    Script("clock-skew", "RFC 8945 5.2.3: the time is outside the fudge (300 s): NOTAUTH, TSIG error BADTIME",
           skew=3600, updates=(("add", "new", 30, "A", "192.0.2.1"),), rcode="NOTAUTH", tsig_error="BADTIME"),
    Script("hmac-sha512", "RFC 8945 6: hmac-sha512 is a mandatory algorithm", key="update-sha512",
           updates=(("add", "new", 30, "A", "192.0.2.1"),), adds=("new 30 A 192.0.2.1",)),
    Script("tcp", "RFC 2136 over TCP, several updates", tcp=True,
           prereqs=(("yxrrset", "infra0", "A"),),
           updates=(("delete", "infra0", "A", "127.0.0.10"), ("add", "infra0", 30, "A", "127.0.0.100")),
           removes=("infra0 30 A 127.0.0.10",), adds=("infra0 30 A 127.0.0.100",)),
]

SCRIPT_IDS = [s.id for s in SCRIPTS]
assert len(set(SCRIPT_IDS)) == len(SCRIPT_IDS), "script ids must be unique"
BY_ID = {s.id: s for s in SCRIPTS}

# Scripts also sent through real clients (by tool): each must leave the zone exactly as the
# dnspython message did, with the same RCODE.
CLIENT_SCRIPTS = {
    "nsupdate -y": ["several-updates", "pre-value-holds", "pre-nxdomain-fails", "apex-ns-delete-rrset", "unsigned"],
    "nsupdate -k": ["replace-rrset", "pre-yxrrset-fails", "key-without-update-right", "hmac-sha512", "tcp"],
    "knsupdate -y": ["several-updates", "pre-yxdomain-fails", "soa-higher-serial", "cname-where-data", "unsigned"],
    "knsupdate -k": ["delete-name", "pre-nxrrset-fails", "hmac-sha512", "tcp"],
}

# srvd vs Knot: the scripts where srvd may differ from Knot, each with the RFC sentence that
# justifies srvd's outcome. Empty: srvd must do what Knot does everywhere. The candidates are
# the scripts with a knot_note (where Knot is not what the RFC says): if srvd follows the
# RFC there, its entry quotes the sentence, e.g. for "unsigned": "RFC 2136 3.3: ... may
# either signal REFUSED to the requestor ...; Knot answers NOTAUTH".
# Where srvd answers otherwise than Knot, the RFC sentence that says srvd is right (or
# that leaves it free), and what srvd does instead: (why, rcode, tsig error, signed, serial
# step); the resulting zone is compared with Knot's but for the TTL or serial named.
SIGNED_REPLY = "RFC 8945 §5.3: a server that receives a signed request answers with a signed response (Knot answers these errors unsigned)"
SRVD_DIFFERENCES: dict[str, tuple[str, str, str | None, bool, int]] = {
    "unsigned": ("RFC 2136 §3.3: a requestor that is not permitted to update the zone gets REFUSED (Knot: NOTAUTH)", "REFUSED", None, False, 0),
    "key-without-update-right": (
        "RFC 2136 §3.3 (REFUSED) and RFC 8945 §5.2.2: BADKEY is for a key the server does not know; this one it knows (Knot: NOTAUTH/BADKEY)",
        "REFUSED", None, True, 0),
    "notauth-zone": (SIGNED_REPLY, "NOTAUTH", None, True, 0),
    "notauth-subzone": (SIGNED_REPLY, "NOTAUTH", None, True, 0),
    "formerr-zone-type": (SIGNED_REPLY, "FORMERR", None, True, 0),
    "formerr-add-axfr": (SIGNED_REPLY, "FORMERR", None, True, 0),
    "add-duplicate-new-ttl": (
        "RFC 2136 §3.4.2.2: for a duplicate RR the Zone RR is replaced by the Update RR, TTL and all (Knot keeps the old TTL)",
        "NOERROR", None, True, 1),
    "soa-new-fields": (
        "RFC 2136 §3.4.2.2 lets the SOA be replaced; srvd takes its serial and keeps the zone file's other fields (README: Dynamic updates)",
        "NOERROR", None, True, 5),
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory):
    require_tool("knotd")
    require_tool("knotc")
    target = KnotTarget(tmp_path_factory.mktemp("knot-primary")).start()
    yield target
    target.stop()


@pytest.fixture(scope="module")
def knot_outcomes(knot: KnotTarget) -> dict[str, Outcome]:
    """Knot's outcome per script id, filled by whichever test runs a script first."""
    return {}


def knot_outcome(knot: KnotTarget, cache: dict[str, Outcome], script: Script) -> Outcome:
    if script.id not in cache:
        outcome, response = knot.run(script)
        assert not response.detail, f"{script.id}: {response.detail}"
        cache[script.id] = outcome
    return cache[script.id]


# --------------------------------------------------------------------------- Knot against the RFC


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_knot_follows_the_rfc(knot: KnotTarget, knot_outcomes: dict, script: Script) -> None:
    outcome = knot_outcome(knot, knot_outcomes, script)
    want = script.expected(knot=True)
    context = (f"{script.id} ({script.what}){' [Knot: ' + script.knot_note + ']' if script.knot_note else ''}\n"
               f"Knot: {outcome.describe(knot.pristine())}")
    assert (outcome.rcode, outcome.tsig_error) == (want.rcode, want.tsig_error), context
    assert outcome.signed == want.signed, f"response signed={outcome.signed}, want {want.signed}\n{context}"
    expected_zone = want.zone(knot.pristine())
    assert outcome.zone == expected_zone, f"{context}\nexpected vs Knot:\n{describe_zone_diff(expected_zone, outcome.zone)}"


def test_tsig_check_of_responses(knot: KnotTarget) -> None:
    """The `signed` in every outcome means something: a response's MAC verifies with the
    request's key and not with another secret, and not once the message is changed."""
    knot.reset()
    msg = build_message(BY_ID["empty-update"])
    response = knot.send(msg, key=UPDATE_KEY)
    assert response.rcode == "NOERROR" and response.signed
    assert tsig_verifies(response.wire, UPDATE_KEY, msg.mac)
    assert not tsig_verifies(response.wire, WRONG_SECRET_KEY, msg.mac)
    assert not tsig_verifies(response.wire, UPDATE_KEY, b"\x00" * len(msg.mac))
    tampered = response.wire[:2] + bytes([response.wire[2] ^ 0x04]) + response.wire[3:]  # AA flipped
    assert not tsig_verifies(tampered, UPDATE_KEY, msg.mac)


def test_table_covers_rfc2136() -> None:
    """Every prerequisite form with each of its results, every update form, every RCODE."""
    forms = {(p[0], len(p) > 3 if p[0] == "yxrrset" else None) for s in SCRIPTS for p in s.prereqs}
    assert {("yxrrset", False), ("yxrrset", True), ("nxrrset", None), ("yxdomain", None), ("nxdomain", None)} <= forms
    updates = {(u[0], min(len(u), 4)) for s in SCRIPTS for u in s.updates}
    assert {("add", 4), ("delete", 2), ("delete", 3), ("delete", 4)} <= updates
    rcodes = {s.rcode for s in SCRIPTS}
    assert {"NOERROR", "FORMERR", "NXDOMAIN", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE",
            "REFUSED"} <= rcodes
    assert {s.tsig_error for s in SCRIPTS} >= {"BADKEY", "BADSIG", "BADTIME"}


# --------------------------------------------------------------------------- real clients


CLIENT_CASES = [(tool, sid) for tool, ids in CLIENT_SCRIPTS.items() for sid in ids]


@pytest.mark.parametrize(("tool", "script_id"), CLIENT_CASES, ids=[f"{t}/{s}" for t, s in CLIENT_CASES])
def test_clients(knot: KnotTarget, knot_outcomes: dict, tmp_path: Path, tool: str, script_id: str) -> None:
    script = BY_ID[script_id]
    require_tool(tool.split()[0])
    reference = knot_outcome(knot, knot_outcomes, script)
    knot.reset()
    result = run_client(script, knot.port, tool, tmp_path)
    zone = knot.served()
    context = (f"{tool} with\n{client_commands(script, knot.port, tool=tool.split()[0])}"
               f"exit {result.returncode}:\n{result.output}")
    assert result.rcode == reference.rcode, context
    assert zone == reference.zone, f"{context}\ndnspython vs {tool}:\n{describe_zone_diff(reference.zone, zone)}"


# --------------------------------------------------------------------------- srvd against Knot


@pytest.fixture(scope="module")
def srvd_target(tmp_path_factory: pytest.TempPathFactory):
    target = SrvdTarget(tmp_path_factory.mktemp("srvd-update")).start()
    yield target
    target.stop()


@pytest.mark.skipif(not srvd_supports_update(), reason="srvd has no RFC 2136 UPDATE yet (no --allow-update; issue 15)")
@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_srvd_matches_knot(knot: KnotTarget, knot_outcomes: dict, srvd_target: SrvdTarget, script: Script) -> None:
    reference = knot_outcome(knot, knot_outcomes, script)
    outcome, response = srvd_target.run(script)
    if script.id in SRVD_DIFFERENCES:
        why, rcode, tsig_error, signed, step = SRVD_DIFFERENCES[script.id]
        assert outcome.comparable() != reference.comparable(), (
            f"{script.id}: srvd now does what Knot does; remove it from SRVD_DIFFERENCES")
        assert (outcome.rcode, outcome.tsig_error, outcome.signed, outcome.serial) == (rcode, tsig_error, signed, step), (
            f"{script.id}: srvd should do as documented ({why})\nsrvd: {outcome.describe()} {response.detail}")
        if rcode != "NOERROR":
            assert outcome.zone == reference.zone, f"{script.id}: a refused update changed the zone"
        return
    assert outcome.comparable() == reference.comparable(), (
        f"{script.id} ({script.what})\nKnot: {reference.describe()}\nsrvd: {outcome.describe()} {response.detail}\n"
        f"Knot vs srvd:\n{describe_zone_diff(reference.zone, outcome.zone)}\n{srvd_target.log_tail()}")


def test_srvd_differences_are_justified() -> None:
    """Every documented difference names a script and the RFC sentence that allows it."""
    for sid, (why, *_) in SRVD_DIFFERENCES.items():
        assert sid in BY_ID, f"SRVD_DIFFERENCES names no script: {sid}"
        assert "RFC" in why and len(why) > 40, f"{sid}: the justification must quote the RFC: {why!r}"
