"""README.md's synopses and option tables against the programs' own `--help`: an option
the README leaves out, or one it names that the program does not have, fails here."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from launcher import REPO, SRVCTL_BIN, SRVD_BIN

README = REPO / "README.md"

OPTION = re.compile(r"--[a-z][a-z0-9-]*")
# What every srvctl command that talks to the API takes (README: "Every command but verify
# takes ..."), and what verify takes of it.
API_OPTIONS = {"--server", "--token-file", "--ca-file", "--json"}
VERIFY_API_OPTIONS = {"--server", "--token-file", "--json"}


def help_options(*argv: str) -> set[str]:
    """The options `--help` lists, without --help and --version."""
    r = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    listed = set()
    for line in r.stdout.split("OPTIONS:", 1)[-1].splitlines():
        m = re.match(r"\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", line)
        if m:
            listed.add(m.group(1))
    return listed - {"--help", "--version"}


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start:end if end > 0 else None]


def synopsis_lines(block: str, program: str) -> dict[str, str]:
    """`program CMD ...` lines of the first code block of `block`, continuation lines
    (indented) joined to theirs, keyed by CMD."""
    code = re.search(r"```\n(.*?)```", block, flags=re.S).group(1)
    out: dict[str, str] = {}
    current = None
    for line in code.splitlines():
        if line.startswith(program + " "):
            current = line.split()[1]
            out[current] = line
        elif line.startswith(" ") and current:
            out[current] += " " + line.strip()
    return out


def test_srvd_serve_synopsis_and_table_match_its_help():
    block = section("## Running srvd")
    lines = synopsis_lines(block, "srvd")
    helped = help_options(SRVD_BIN, "serve")
    assert set(OPTION.findall(lines["serve"])) == helped, "README's `srvd serve` synopsis"
    table = {opt for row in block.splitlines() if row.startswith("| `--") for opt in OPTION.findall(row.split("|")[1])}
    assert table == helped, "README's option table for `srvd serve`"
    assert set(OPTION.findall(lines["check-zone"])) == help_options(SRVD_BIN, "check-zone")


@pytest.mark.parametrize("command", ["status", "register", "deregister", "run", "members", "records", "wait", "verify"])
def test_srvctl_synopses_match_their_help(command: str):
    lines = synopsis_lines(section("### srvctl\n"), "srvctl")
    assert command in lines, f"README's srvctl synopsis has no line for {command}"
    common = VERIFY_API_OPTIONS if command == "verify" else API_OPTIONS
    assert set(OPTION.findall(lines[command])) | common == help_options(SRVCTL_BIN, command), f"srvctl {command}"


def test_srvctl_verify_synopsis_matches_its_help():
    lines = synopsis_lines(section("### srvctl verify"), "srvctl")
    assert set(OPTION.findall(lines["verify"])) == help_options(SRVCTL_BIN, "verify")


@pytest.mark.parametrize("sub", ["new", "list", "show", "delete"])
def test_srvctl_discovery_synopses_match_their_help(sub: str):
    code = re.search(r"```\n(.*?)```", section("### srvctl\n"), flags=re.S).group(1)
    lines = {line.split()[2]: line for line in code.splitlines() if line.startswith("srvctl discovery ")}
    assert sub in lines, f"README's srvctl synopsis has no line for discovery {sub}"
    assert set(OPTION.findall(lines[sub])) | API_OPTIONS == help_options(SRVCTL_BIN, "discovery", sub), f"srvctl discovery {sub}"


@pytest.mark.parametrize("sub", ["create", "list", "revoke"])
def test_srvctl_token_synopses_match_their_help(sub: str):
    code = re.search(r"```\n(.*?)```", section("### srvctl\n"), flags=re.S).group(1)
    lines = {line.split()[2]: line for line in code.splitlines() if line.startswith("srvctl token ")}
    assert sub in lines, f"README's srvctl synopsis has no line for token {sub}"
    assert set(OPTION.findall(lines[sub])) | API_OPTIONS == help_options(SRVCTL_BIN, "token", sub), f"srvctl token {sub}"


def test_every_srvctl_command_is_in_the_readme():
    r = subprocess.run([SRVCTL_BIN, "--help"], capture_output=True, text=True, timeout=30)
    commands = re.findall(r"^\s{2}([a-z]+)\s", r.stdout.split("SUBCOMMANDS:", 1)[1], flags=re.M)
    assert set(commands) - {"help"} == set(synopsis_lines(section("### srvctl\n"), "srvctl"))


def test_no_help_text_says_the_api_has_no_tls():
    """Regression: `--admin`'s help said "no TLS yet" two lines above the TLS options."""
    r = subprocess.run([SRVD_BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert "no TLS" not in r.stdout and "no TLS" not in README.read_text()


def test_make_install_puts_everything_in_place(tmp_path):
    """`make install` into a staging folder (DESTDIR), with the debug build the tests have."""
    dest = tmp_path / "root"
    r = subprocess.run(["make", "--no-print-directory", "install", "CONFIG=debug", f"DESTDIR={dest}", "PREFIX=/opt/srvd"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for program in ("srvd", "srvctl"):
        path = dest / "opt/srvd/bin" / program
        assert os.access(path, os.X_OK), path
        assert subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout.strip() == "0.1.0"
    unit = (dest / "opt/srvd/lib/systemd/system/srvd.service").read_text()
    assert "ExecStart=/opt/srvd/bin/srvd serve" in unit and "/usr/local/bin" not in unit
    member = (dest / "opt/srvd/lib/systemd/system/srvctl-member@.service").read_text()
    assert "ExecStart=/opt/srvd/bin/srvctl run" in member and "/usr/local/bin/srvctl" not in member
    zone = dest / "etc/srvd/zones/lab.example.zone"
    assert zone.read_text() == (REPO / "zones" / "lab.example.zone").read_text()
    # A zone already there is kept.
    zone.write_text("; mine\n")
    r = subprocess.run(["make", "--no-print-directory", "install", "CONFIG=debug", f"DESTDIR={dest}", "PREFIX=/opt/srvd"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and zone.read_text() == "; mine\n"
    r = subprocess.run(["make", "--no-print-directory", "uninstall", f"DESTDIR={dest}", "PREFIX=/opt/srvd"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not (dest / "opt/srvd/bin/srvd").exists() and zone.exists()
