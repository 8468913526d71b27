"""--export parsing, client networks and squashing."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.nfs.exports import ANON_ID, Export, ExportError, Exports, parse_export
from gateway.nfs.rpc import AuthSys
from gateway.vfs import Caller
from metadata import ROOT_INO

ROOT = AuthSys(0, b"h", 0, 0, (0, 5))
USER = AuthSys(0, b"h", 1000, 100, (100, 27))


def test_no_export_given_serves_the_whole_namespace_read_write_with_root_squash() -> None:
    (e,) = Exports.parse([])
    assert (e.path, e.read_only, e.root_squash, e.clients, e.root_ino) == ("/", False, True, (), ROOT_INO)


def test_options_parse() -> None:
    e = parse_export("/bkt/sub/:ro,clients=127.0.0.1/32,10.0.0.0/8,all_squash,anonuid=7,anongid=8")
    assert (e.path, e.read_only, e.all_squash, e.anonuid, e.anongid) == ("/bkt/sub", True, True, 7, 8)
    assert e.clients == (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))
    assert parse_export("/b:clients=10.0.0.0/8+::1/128,rw").clients[1] == ipaddress.ip_network("::1/128")
    assert parse_export("/b:no_root_squash").root_squash is False


@pytest.mark.parametrize("spec", [
    "bkt", "/b:bogus", "/b:clients=300.1.1.1/8", "/b:anonuid=-1", "/b:anonuid=x", "/a/../b",
])
def test_bad_export_specs_are_refused(spec: str) -> None:
    with pytest.raises(ExportError):
        parse_export(spec)


def test_the_same_path_twice_is_refused() -> None:
    with pytest.raises(ExportError):
        Exports.parse(["/b", "/b/:ro"])


def test_match_picks_the_longest_export_and_the_path_below_it() -> None:
    x = Exports.parse(["/", "/bkt:ro"])
    found = x.match(b"/bkt/a/b")
    assert found is not None and found[0].path == "/bkt" and found[1] == [b"a", b"b"]
    found = x.match("/bk")
    assert found is not None and found[0].path == "/" and found[1] == [b"bk"]
    assert Exports.parse(["/bkt"]).match("/other") is None


def test_allowed_clients_by_network() -> None:
    e = parse_export("/:clients=10.0.0.0/8")
    assert e.allows(("10.1.2.3", 800)) and not e.allows(("127.0.0.1", 800))
    assert e.allows("::ffff:10.0.0.1")  # IPv4-mapped on a dual-stack socket
    assert Export("/").allows(("192.0.2.1", 1))


def test_root_squash_maps_root_only() -> None:
    e = Export("/")
    assert e.squash(ROOT) == Caller(ANON_ID, ANON_ID, frozenset({ANON_ID, 5}))
    assert e.squash(USER) == Caller(1000, 100, frozenset({100, 27}))


def test_no_root_squash_keeps_root_and_all_squash_maps_everyone() -> None:
    assert parse_export("/:no_root_squash").squash(ROOT) == Caller(0, 0, frozenset({0, 5}))
    assert parse_export("/:all_squash,anonuid=9,anongid=8").squash(USER) == Caller(9, 8)


def test_auth_none_is_anonymous() -> None:
    assert parse_export("/:no_root_squash").squash(None) == Caller(ANON_ID, ANON_ID)
