"""gateway.s3.xml against botocore: every response body is read back with botocore's own
RestXMLParser (and its S3 handlers), every request body is produced by botocore's own
RestXMLSerializer."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote_plus

import botocore.handlers as H
import botocore.parsers
import botocore.serialize
import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.s3 import xml as X

MODEL = botocore.session.get_session().get_service_model("s3")
NS = "http://s3.amazonaws.com/doc/2006-03-01/"
T = datetime(2026, 11, 28, 13, 51, 30, 123456, tzinfo=timezone.utc)
T_MS = T.replace(microsecond=123000)
NASTY = ["a&b", "<tag>", 'q"uote\'s', "ünïcødé/日本語/🙂", "sp ace+plus", "100%", "~tilde*", "tab\tnl\n",
         "]]>", "&amp;", "a/b/c/"]


def parse(op: str, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """botocore's parse of a response body for operation `op`, including the S3 check
    that turns a 200 with an <Error> (or broken XML) into a retried 500."""
    op_model = MODEL.operation_model(op)
    if status == 200:
        assert not H._looks_like_special_case_error(200, body), body
    return botocore.parsers.RestXMLParser().parse(
        {"body": body, "headers": headers or {}, "status_code": status}, op_model.output_shape)


def serialize(op: str, params: dict[str, Any]) -> bytes:
    req = botocore.serialize.RestXMLSerializer().serialize_to_request(params, MODEL.operation_model(op))
    body = req["body"]
    return body if isinstance(body, bytes) else body.encode()


def decoded(handler: Any, parsed: dict[str, Any]) -> dict[str, Any]:
    """Apply botocore's after-call url-decoding handler as it runs when botocore itself
    set encoding-type=url (what boto3/awscli do on every listing)."""
    handler(parsed, context={"encoding_type_auto_set": True})
    return parsed


def well_formed(body: bytes) -> None:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    import xml.etree.ElementTree as ET
    ET.fromstring(body)  # strict expat: anything not XML 1.0 fails here
    body.decode("utf-8")


# XML 1.0 text without \r (botocore sends \r raw; XML reads it as \n: see test below).
xml_text = st.text().map(lambda s: X._NOT_XML.sub("", s).replace("\r", ""))


# --------------------------------------------------------------------------- text helpers


def test_timestamp_has_milliseconds_and_z() -> None:
    assert X.timestamp(T) == "2026-11-28T13:51:30.123Z"
    assert X.timestamp(T.replace(microsecond=999999)) == "2026-11-28T13:51:30.999Z"  # truncated
    assert X.timestamp(T.replace(microsecond=0)) == "2026-11-28T13:51:30.000Z"
    assert X.timestamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"  # naive = UTC
    plus2 = T.astimezone(timezone(timedelta(hours=2)))
    assert X.timestamp(plus2) == "2026-11-28T13:51:30.123Z"


@pytest.mark.parametrize("key,encoded", [
    ("a+b.txt", "a%2Bb.txt"),                 # S3's own answer for these two
    ("a+ b.txt", "a%2B+b.txt"),
    ("test_file(3).png", "test_file%283%29.png"),  # the S3 API reference's example
    ("dir/sub dir/", "dir/sub+dir/"),
    ("~x*y", "%7Ex*y"),
    ("ü", "%C3%BC"),
    ("\x01\r\n", "%01%0D%0A"),
    ("100%", "100%25"),
])
def test_url_encode_like_s3(key: str, encoded: str) -> None:
    assert X.url_encode(key) == encoded
    assert unquote_plus(encoded) == key


@given(st.text())
def test_url_encode_is_inverted_by_botocores_unquote(key: str) -> None:
    enc = X.url_encode(key)
    assert unquote_plus(enc) == key
    assert enc.isascii() and " " not in enc
    assert all(c.isalnum() or c in "-_.*/+%" for c in enc)


def test_escape_replaces_what_xml_cannot_hold() -> None:
    assert X.escape("a&<>\"'\r\n\t") == "a&amp;&lt;&gt;&quot;'&#13;\n\t"
    assert X.escape("\x00\x01\x0b\ufffe\uffff") == "\ufffd" * 5


# --------------------------------------------------------------------------- responses


def test_error_is_read_by_botocore() -> None:
    body = X.error("NoSuchKey", "The specified key does not exist.", resource="/b/a&b",
                   request_id="REQ1", extra={"Key": "a&b", "BucketName": "b"})
    well_formed(body)
    assert b"xmlns" not in body  # S3 errors carry no namespace
    # botocore spots an <Error> in a 200 (CopyObject, CompleteMultipartUpload...)
    assert H._looks_like_special_case_error(200, body)
    parsed = parse("GetObject", body, status=404, headers={"x-amz-request-id": "REQ1"})
    assert parsed["Error"] == {"Code": "NoSuchKey", "Message": "The specified key does not exist.",
                               "Key": "a&b", "BucketName": "b", "Resource": "/b/a&b"}
    assert parsed["ResponseMetadata"]["RequestId"] == "REQ1"  # from the header, not the body


def test_error_skips_bad_extra_names_and_escapes() -> None:
    body = X.error("InvalidArgument", "x < y & \x01", extra={"ArgumentName": "max-keys",
                                                              "bad name": "v", "Code": "dup", "1x": "v"})
    well_formed(body)
    parsed = parse("ListObjects", body, status=400)
    assert parsed["Error"] == {"Code": "InvalidArgument", "Message": "x < y & \ufffd",
                               "ArgumentName": "max-keys"}


def test_list_buckets() -> None:
    t2 = datetime(2020, 1, 1, tzinfo=timezone.utc)
    body = X.list_buckets("42", "uid-42", [("alpha", T), ("b-2", t2)])
    well_formed(body)
    p = parse("ListBuckets", body)
    assert p["Owner"] == {"ID": "42", "DisplayName": "uid-42"}
    assert [(b["Name"], b["CreationDate"]) for b in p["Buckets"]] == [("alpha", T_MS), ("b-2", t2)]
    p = parse("ListBuckets", X.list_buckets("0", None, []))
    assert p["Owner"] == {"ID": "0"} and p["Buckets"] == []


def entry(key: str, **kw: Any) -> X.ObjectEntry:
    return X.ObjectEntry(key=key, last_modified=T, etag="d41d8cd98f00b204e9800998ecf8427e", size=7, **kw)


@pytest.mark.parametrize("enc", [None, "url"])
def test_list_objects_v2(enc: str | None) -> None:
    keys = ["p/" + k for k in NASTY]
    body = X.list_objects_v2(
        bucket="bk", prefix="p/", delimiter="/", max_keys=1000, is_truncated=True,
        key_count=len(keys) + 2, continuation_token="tok+/=", next_continuation_token="bmV4dA==",
        start_after="p/a b", contents=[entry(k, owner_id="7", owner_name="uid-7",
                                             checksum_algorithm="CRC32C") for k in keys],
        common_prefixes=["p/x y/", "p/ü&/"], encoding_type=enc, fetch_owner=True)
    well_formed(body)
    p = parse("ListObjectsV2", body)
    if enc:
        assert p["EncodingType"] == "url"
        assert p["Contents"][4]["Key"] == X.url_encode("p/sp ace+plus")
        p = decoded(H.decode_list_object_v2, p)
    else:
        assert "EncodingType" not in p
    assert [c["Key"] for c in p["Contents"]] == keys
    assert [c["Prefix"] for c in p["CommonPrefixes"]] == ["p/x y/", "p/ü&/"]
    assert p["Prefix"] == "p/" and p["Delimiter"] == "/" and p["StartAfter"] == "p/a b"
    assert p["ContinuationToken"] == "tok+/=" and p["NextContinuationToken"] == "bmV4dA=="  # never encoded
    assert p["IsTruncated"] is True and p["KeyCount"] == len(keys) + 2 and p["MaxKeys"] == 1000
    c = p["Contents"][0]
    assert c["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    assert c["LastModified"] == T_MS and c["Size"] == 7 and c["StorageClass"] == "STANDARD"
    assert c["Owner"] == {"ID": "7", "DisplayName": "uid-7"}
    assert c["ChecksumAlgorithm"] == ["CRC32C"]


def test_list_objects_v2_minimal_and_without_owner() -> None:
    body = X.list_objects_v2(bucket="bk", prefix="", delimiter="", max_keys=0, is_truncated=False,
                             key_count=0, continuation_token=None, next_continuation_token=None,
                             start_after=None, contents=[], common_prefixes=[], encoding_type=None,
                             fetch_owner=False)
    p = parse("ListObjectsV2", body)
    assert p["Prefix"] == "" and p["KeyCount"] == 0 and p["IsTruncated"] is False
    for absent in ("Contents", "CommonPrefixes", "Delimiter", "StartAfter", "ContinuationToken",
                   "NextContinuationToken", "EncodingType"):
        assert absent not in p
    body = X.list_objects_v2(bucket="bk", prefix="", delimiter="", max_keys=5, is_truncated=False,
                             key_count=1, continuation_token=None, next_continuation_token=None,
                             start_after=None, contents=[entry("k", owner_id="1")],
                             common_prefixes=[], encoding_type=None, fetch_owner=False)
    assert "Owner" not in parse("ListObjectsV2", body)["Contents"][0]
    assert b'<ETag>&quot;' in body  # quotes escaped as S3 does


@pytest.mark.parametrize("enc", [None, "url"])
def test_list_objects_v1(enc: str | None) -> None:
    body = X.list_objects_v1(
        bucket="bk", prefix="d ir/", marker="d ir/a&b", delimiter="/", max_keys=2, is_truncated=True,
        next_marker="d ir/c+d", contents=[entry("d ir/b<c", owner_id="0", owner_name="root")],
        common_prefixes=["d ir/s ub/"], encoding_type=enc)
    well_formed(body)
    p = parse("ListObjects", body)
    if enc:
        p = decoded(H.decode_list_object, p)
        # botocore's ListObjects (v1) handler does not decode the top-level Prefix.
        assert p["Prefix"] == "d+ir/" and unquote_plus(p["Prefix"]) == "d ir/"
    else:
        assert p["Prefix"] == "d ir/"
    assert p["Marker"] == "d ir/a&b" and p["NextMarker"] == "d ir/c+d" and p["Delimiter"] == "/"
    assert [c["Key"] for c in p["Contents"]] == ["d ir/b<c"]
    assert p["Contents"][0]["Owner"] == {"ID": "0", "DisplayName": "root"}
    assert [c["Prefix"] for c in p["CommonPrefixes"]] == ["d ir/s ub/"]
    assert p["MaxKeys"] == 2 and p["IsTruncated"] is True


def test_list_objects_v1_empty_marker_always_present() -> None:
    body = X.list_objects_v1(bucket="bk", prefix="", marker="", delimiter="", max_keys=1000,
                             is_truncated=False, next_marker=None, contents=[], common_prefixes=[])
    p = parse("ListObjects", body)
    assert p["Marker"] == "" and p["Prefix"] == "" and "NextMarker" not in p


def test_listing_refuses_unknown_encoding_type() -> None:
    with pytest.raises(ValueError):
        X.list_objects_v2(bucket="b", prefix="", delimiter="", max_keys=1, is_truncated=False,
                          key_count=0, continuation_token=None, next_continuation_token=None,
                          start_after=None, contents=[], common_prefixes=[], encoding_type="URL2")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.text(min_size=1), min_size=1, max_size=5), prefix=st.text(), delim=st.text())
def test_any_key_round_trips_through_botocore_under_url_encoding(keys: list[str], prefix: str,
                                                                 delim: str) -> None:
    body = X.list_objects_v2(bucket="b", prefix=prefix, delimiter=delim, max_keys=1000,
                             is_truncated=False, key_count=len(keys), continuation_token=None,
                             next_continuation_token=None, start_after=prefix or None,
                             contents=[entry(k) for k in keys], common_prefixes=keys,
                             encoding_type="url")
    well_formed(body)
    p = decoded(H.decode_list_object_v2, parse("ListObjectsV2", body))
    assert [c["Key"] for c in p["Contents"]] == keys
    assert [c["Prefix"] for c in p["CommonPrefixes"]] == keys
    assert p["Prefix"] == prefix
    assert p.get("Delimiter", "") == delim
    assert p.get("StartAfter", "") == prefix


@settings(max_examples=300)
@given(key=st.text(min_size=1))
def test_plain_listing_is_always_xml_and_exact_for_xml_characters(key: str) -> None:
    body = X.list_objects_v2(bucket="b", prefix="", delimiter="", max_keys=1000, is_truncated=False,
                             key_count=1, continuation_token=None, next_continuation_token=None,
                             start_after=None, contents=[entry(key)], common_prefixes=[],
                             encoding_type=None)
    well_formed(body)
    got = parse("ListObjectsV2", body)["Contents"][0]["Key"]
    # \r included: it is written as &#13; and so survives end-of-line normalisation.
    assert got == X._NOT_XML.sub("\ufffd", key)


def test_location() -> None:
    def read(body: bytes) -> Any:
        parsed: dict[str, Any] = {}
        H.parse_get_bucket_location(parsed, SimpleNamespace(raw=object(), content=body))
        return parsed["LocationConstraint"]

    assert read(X.location(None)) is None  # us-east-1, as S3 and boto3 report it
    assert read(X.location("")) is None
    assert read(X.location("eu-west-1")) == "eu-west-1"
    assert X.location(None).endswith(f'<LocationConstraint xmlns="{NS}"/>'.encode())


def test_versioning_never_enabled() -> None:
    body = X.versioning()
    well_formed(body)
    p = parse("GetBucketVersioning", body)
    assert "Status" not in p and "MFADelete" not in p


@pytest.mark.parametrize("enc", [None, "url"])
def test_delete_result(enc: str | None) -> None:
    body = X.delete_result(["a&b", "ü /x"], [("k<1>", "AccessDenied", "Access Denied")], enc)
    well_formed(body)
    p = parse("DeleteObjects", body)
    deleted = [d["Key"] for d in p["Deleted"]]
    errs = p["Errors"]
    if enc:
        deleted = [unquote_plus(k) for k in deleted]
        errs = [{**e, "Key": unquote_plus(e["Key"])} for e in errs]
    assert deleted == ["a&b", "ü /x"]
    assert errs == [{"Key": "k<1>", "Code": "AccessDenied", "Message": "Access Denied"}]
    assert X.delete_result(["a b"], [], "bogus") == X.delete_result(["a b"], [], None)
    p = parse("DeleteObjects", X.delete_result([], []))  # quiet, all good
    assert "Deleted" not in p and "Errors" not in p


def test_copy_results() -> None:
    body = X.copy_object_result("abc", T, {"CRC32": "NhCmhg==", "SHA256": "x" * 44})
    well_formed(body)
    p = parse("CopyObject", body)["CopyObjectResult"]
    assert p == {"ETag": '"abc"', "LastModified": T_MS, "ChecksumCRC32": "NhCmhg==",
                 "ChecksumSHA256": "x" * 44}
    p = parse("CopyObject", X.copy_object_result('"abc"', T))["CopyObjectResult"]
    assert p == {"ETag": '"abc"', "LastModified": T_MS}  # no double quotes
    p = parse("UploadPartCopy", X.copy_part_result("abc-2", T, {"CRC32C": "AAAAAA=="}))
    assert p["CopyPartResult"] == {"ETag": '"abc-2"', "LastModified": T_MS, "ChecksumCRC32C": "AAAAAA=="}


def test_initiate_and_complete() -> None:
    p = parse("CreateMultipartUpload", X.initiate_multipart("bk", "a&b/ü", "UP+ID/=="))
    assert (p["Bucket"], p["Key"], p["UploadId"]) == ("bk", "a&b/ü", "UP+ID/==")
    body = X.complete_multipart_result("/bk/a&b", "bk", "a&b", "0123-2",
                                       {"CRC64NVME": "AAAAAAAAAAA="}, checksum_type="FULL_OBJECT")
    well_formed(body)
    p = parse("CompleteMultipartUpload", body)
    assert (p["Location"], p["Bucket"], p["Key"], p["ETag"]) == ("/bk/a&b", "bk", "a&b", '"0123-2"')
    assert p["ChecksumCRC64NVME"] == "AAAAAAAAAAA=" and p["ChecksumType"] == "FULL_OBJECT"


def test_list_parts() -> None:
    parts = [X.PartEntry(1, T, "e1", 5 << 20, {"CRC32": "AAAAAA=="}), X.PartEntry(3, T, "e3", 10, {})]
    body = X.list_parts(bucket="bk", key="k&", upload_id="u1", part_number_marker=0,
                        next_part_number_marker=3, max_parts=2, is_truncated=True, parts=parts,
                        owner_id="5", initiator_id="5", storage_class="STANDARD",
                        checksum_algorithm="CRC32")
    well_formed(body)
    p = parse("ListParts", body)
    assert (p["Bucket"], p["Key"], p["UploadId"]) == ("bk", "k&", "u1")
    assert (p["PartNumberMarker"], p["NextPartNumberMarker"], p["MaxParts"], p["IsTruncated"]) == (0, 3, 2, True)
    assert p["Owner"] == {"ID": "5"} and p["Initiator"] == {"ID": "5"} and p["StorageClass"] == "STANDARD"
    assert p["ChecksumAlgorithm"] == "CRC32"
    assert p["Parts"] == [
        {"PartNumber": 1, "LastModified": T_MS, "ETag": '"e1"', "Size": 5 << 20, "ChecksumCRC32": "AAAAAA=="},
        {"PartNumber": 3, "LastModified": T_MS, "ETag": '"e3"', "Size": 10}]
    p = parse("ListParts", X.list_parts("bk", "k", "u", 0, None, 1000, False, [], "5", None))
    assert "Parts" not in p and p["Initiator"] == {"ID": "5"} and "NextPartNumberMarker" not in p


@pytest.mark.parametrize("enc", [None, "url"])
def test_list_multipart_uploads(enc: str | None) -> None:
    ups = [X.UploadEntry("a b/ü&", "u1", T, "5"), X.UploadEntry("c+d", "u2", T, "6", "uid-6")]
    body = X.list_multipart_uploads(
        bucket="bk", key_marker="a a", upload_id_marker="u0", next_key_marker="c+d",
        next_upload_id_marker="u2", prefix="", delimiter="/", max_uploads=2, is_truncated=True,
        uploads=ups, common_prefixes=["x y/"], encoding_type=enc)
    well_formed(body)
    p = parse("ListMultipartUploads", body)
    dec = unquote_plus if enc else (lambda s: s)
    assert p.get("EncodingType") == enc
    assert dec(p["KeyMarker"]) == "a a" and p["UploadIdMarker"] == "u0"
    assert dec(p["NextKeyMarker"]) == "c+d" and p["NextUploadIdMarker"] == "u2"
    assert p["Delimiter"] == "/" and p["MaxUploads"] == 2 and p["IsTruncated"] is True
    assert [dec(u["Key"]) for u in p["Uploads"]] == ["a b/ü&", "c+d"]
    assert [dec(c["Prefix"]) for c in p["CommonPrefixes"]] == ["x y/"]
    u = p["Uploads"][1]
    assert u["UploadId"] == "u2" and u["Initiated"] == T_MS and u["StorageClass"] == "STANDARD"
    assert u["Owner"] == {"ID": "6", "DisplayName": "uid-6"} and u["Initiator"] == u["Owner"]


def test_tagging_builder() -> None:
    tags = [("a&b", "<v>"), ("ü", ""), ("k", "v w")]
    body = X.tagging(tags)
    well_formed(body)
    p = parse("GetObjectTagging", body)
    assert [(t["Key"], t["Value"]) for t in p["TagSet"]] == tags
    assert parse("GetObjectTagging", X.tagging([]))["TagSet"] == []


def test_get_object_attributes() -> None:
    body = X.get_object_attributes(etag="abc-2", size=6291456, storage_class="STANDARD",
                                   checksums={"SHA256": "s" * 44}, checksum_type="COMPOSITE",
                                   parts_count=2)
    well_formed(body)
    assert b"<GetObjectAttributesResponse " in body
    p = parse("GetObjectAttributes", body)
    assert p["ETag"] == "abc-2"  # S3 sends this ETag without quotes
    assert p["ObjectSize"] == 6291456 and p["StorageClass"] == "STANDARD"
    assert p["Checksum"] == {"ChecksumSHA256": "s" * 44, "ChecksumType": "COMPOSITE"}
    assert p["ObjectParts"] == {"TotalPartsCount": 2}
    p = parse("GetObjectAttributes", X.get_object_attributes(etag='"q"'))
    assert p == {"ResponseMetadata": p["ResponseMetadata"], "ETag": "q"}
    parts = [X.PartEntry(1, None, "", 5, {"CRC32": "AAAAAA=="}), X.PartEntry(2, None, "", 6)]
    p = parse("GetObjectAttributes", X.get_object_attributes(parts=parts, max_parts=2))
    assert p["ObjectParts"] == {"TotalPartsCount": 2, "PartNumberMarker": 0, "NextPartNumberMarker": 2,
                                "MaxParts": 2, "IsTruncated": False,
                                "Parts": [{"PartNumber": 1, "Size": 5, "ChecksumCRC32": "AAAAAA=="},
                                          {"PartNumber": 2, "Size": 6}]}
    p = parse("GetObjectAttributes", X.get_object_attributes(checksums={}, size=0))
    assert "Checksum" not in p and p["ObjectSize"] == 0


# --------------------------------------------------------------------------- requests


def delete_body(keys: list[str], quiet: bool | None = None, versions: bool = False) -> bytes:
    objs = [{"Key": k, **({"VersionId": f"v{i}"} if versions else {})} for i, k in enumerate(keys)]
    d: dict[str, Any] = {"Objects": objs}
    if quiet is not None:
        d["Quiet"] = quiet
    return serialize("DeleteObjects", {"Bucket": "b", "Delete": d})


@settings(max_examples=200)
@given(keys=st.lists(xml_text, min_size=1, max_size=20), quiet=st.one_of(st.none(), st.booleans()))
def test_parse_delete_reads_botocore(keys: list[str], quiet: bool | None) -> None:
    assert X.parse_delete(delete_body(keys, quiet)) == (bool(quiet), [(k, None) for k in keys])


def test_parse_delete_versions_namespaces_and_layout() -> None:
    assert X.parse_delete(delete_body(["a", "b"], versions=True)) == (False, [("a", "v0"), ("b", "v1")])
    plain = b"<Delete><Object><Key>a&amp;b</Key></Object><Quiet>true</Quiet></Delete>"
    assert X.parse_delete(plain) == (True, [("a&b", None)])
    prefixed = (f'<?xml version="1.0" encoding="UTF-8"?><s3:Delete xmlns:s3="{NS}"><s3:Object>'
                "<s3:Key>k</s3:Key></s3:Object></s3:Delete>").encode()
    assert X.parse_delete(prefixed) == (False, [("k", None)])
    pretty = (f'<?xml version="1.0"?>\n<Delete xmlns="{NS}">\n  <Quiet>false</Quiet>\n  <Object>\n'
              "    <Key> spaced key </Key>\n  </Object>\n</Delete>\n").encode()
    assert X.parse_delete(pretty) == (False, [(" spaced key ", None)])
    cdata = b"<Delete><Object><Key><![CDATA[<x>&]]></Key></Object></Delete>"
    assert X.parse_delete(cdata) == (False, [("<x>&", None)])
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><Delete><Object><Key>ü</Key></Object></Delete>'
    assert X.parse_delete(utf16.encode("utf-16")) == (False, [("ü", None)])
    assert X.parse_delete(bytearray(plain)) == (True, [("a&b", None)])


def test_parse_delete_carriage_return_quirk() -> None:
    # botocore writes \r raw; XML end-of-line handling reads it as \n (S3 does the same).
    assert X.parse_delete(delete_body(["a\rb", "c\r\nd"]))[1] == [("a\nb", None), ("c\nd", None)]
    # A client that writes &#13; keeps it.
    assert X.parse_delete(b"<Delete><Object><Key>a&#13;b</Key></Object></Delete>")[1] == [("a\rb", None)]


def test_parse_delete_key_limits() -> None:
    keys = [f"k{i}" for i in range(1000)]
    assert len(X.parse_delete(delete_body(keys))[1]) == 1000
    with pytest.raises(X.XmlError) as e:
        X.parse_delete(delete_body(keys + ["one-more"]))
    assert e.value.code == "MalformedXML"
    with pytest.raises(X.XmlError) as e:
        X.parse_delete(f'<Delete xmlns="{NS}"><Quiet>true</Quiet></Delete>'.encode())
    assert e.value.code == "MalformedXML"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Delete><Object><Key>&lol9;</Key></Object></Delete>"""

MALFORMED_DELETES = {
    "not xml": b"this is not xml",
    "empty": b"",
    "blank": b"  \n ",
    "truncated": b"<Delete><Object><Key>a</Key></Object>",
    "wrong root": b"<Tagging><Object><Key>a</Key></Object></Tagging>",
    "missing key": b"<Delete><Object><VersionId>v</VersionId></Object></Delete>",
    "two keys": b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
    "unknown element": b"<Delete><Object><Key>a</Key></Object><Foo/></Delete>",
    "nested key": b"<Delete><Object><Key><b>a</b></Key></Object></Delete>",
    "stray text": b"<Delete>junk<Object><Key>a</Key></Object></Delete>",
    "bad quiet": b"<Delete><Quiet>yes</Quiet><Object><Key>a</Key></Object></Delete>",
    "two roots": b"<Delete><Object><Key>a</Key></Object></Delete><Delete/>",
    "billion laughs": BILLION_LAUGHS,
    "external entity": b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       b"<Delete><Object><Key>&x;</Key></Object></Delete>",
    "external dtd": b'<!DOCTYPE Delete SYSTEM "http://example.com/x.dtd">'
                    b"<Delete><Object><Key>a</Key></Object></Delete>",
    "plain doctype": b"<!DOCTYPE Delete><Delete><Object><Key>a</Key></Object></Delete>",
    "undefined entity": b"<Delete><Object><Key>&nope;</Key></Object></Delete>",
    "control char ref": b"<Delete><Object><Key>&#1;</Key></Object></Delete>",
    "raw control char": b"<Delete><Object><Key>\x01</Key></Object></Delete>",
    "bad utf-8": b"<Delete><Object><Key>\xff\xfe</Key></Object></Delete>",
    "unbound prefix": b"<s3:Delete><Object><Key>a</Key></Object></s3:Delete>",
    "unknown encoding": b'<?xml version="1.0" encoding="x-no-such"?><Delete/>',
    "too deep": b"<Delete>" + b"<a>" * 100 + b"</a>" * 100 + b"</Delete>",
}


@pytest.mark.parametrize("name", sorted(MALFORMED_DELETES))
def test_parse_delete_refuses(name: str) -> None:
    start = time.monotonic()
    with pytest.raises(X.XmlError) as e:
        X.parse_delete(MALFORMED_DELETES[name])
    assert e.value.code == "MalformedXML", e.value.message
    assert time.monotonic() - start < 1


def test_parse_delete_size_bound() -> None:
    body = delete_body(["k" * 1000] * 5)
    with pytest.raises(X.XmlError) as e:
        X.parse_delete(body, max_bytes=len(body) - 1)
    assert e.value.code == "MalformedXML"
    assert X.parse_delete(body, max_bytes=len(body))[1][0][0] == "k" * 1000
    big = b"<Delete>" + b" " * X.MAX_DELETE_BODY + b"<Object><Key>a</Key></Object></Delete>"
    with pytest.raises(X.XmlError):
        X.parse_delete(big)


def test_parse_delete_conditional_is_not_implemented() -> None:
    body = serialize("DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "a", "ETag": '"e"'}]}})
    with pytest.raises(X.XmlError) as e:
        X.parse_delete(body)
    assert e.value.code == "NotImplemented"


def complete_body(parts: list[dict[str, Any]]) -> bytes:
    return serialize("CompleteMultipartUpload", {"Bucket": "b", "Key": "k", "UploadId": "u",
                                                 "MultipartUpload": {"Parts": parts}})


def test_parse_complete_multipart_reads_botocore() -> None:
    body = complete_body([
        {"PartNumber": 1, "ETag": '"a1"', "ChecksumCRC32": "NhCmhg=="},
        {"PartNumber": 2, "ETag": "a2", "ChecksumSHA256": "s" * 44},
        {"PartNumber": 10000, "ETag": '"a3-1"'}])
    assert X.parse_complete_multipart(body) == [
        X.CompletedPart(1, "a1", {"CRC32": "NhCmhg=="}),
        X.CompletedPart(2, "a2", {"SHA256": "s" * 44}),
        X.CompletedPart(10000, "a3-1", {})]
    plain = b"<CompleteMultipartUpload>\n <Part>\n  <ETag>&quot;x&quot;</ETag>\n  <PartNumber> 7 </PartNumber>\n" \
            b" </Part>\n</CompleteMultipartUpload>"
    assert X.parse_complete_multipart(plain) == [X.CompletedPart(7, "x", {})]


@settings(max_examples=100)
@given(st.lists(st.integers(1, 10000), min_size=1, max_size=30, unique=True).map(sorted),
       st.sampled_from(["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", None]))
def test_parse_complete_multipart_any_ascending_parts(numbers: list[int], alg: str | None) -> None:
    parts = [{"PartNumber": n, "ETag": f'"{n:032x}"', **({f"Checksum{alg}": f"v{n}"} if alg else {})}
             for n in numbers]
    got = X.parse_complete_multipart(complete_body(parts))
    assert [(p.part_number, p.etag, dict(p.checksums)) for p in got] == \
        [(n, f"{n:032x}", {alg: f"v{n}"} if alg else {}) for n in numbers]


def part_xml(number: str, etag: str = '"e"') -> str:
    return f"<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"


@pytest.mark.parametrize("parts,code", [
    ("", "MalformedXML"),
    (part_xml("abc"), "MalformedXML"),
    (part_xml("1.0"), "MalformedXML"),
    (part_xml("1_0"), "MalformedXML"),
    (part_xml("\u0661"), "MalformedXML"),  # an Arabic-Indic digit: int() would take it
    (part_xml(""), "MalformedXML"),
    (part_xml("9" * 5000), "MalformedXML"),
    (part_xml("0"), "InvalidArgument"),
    (part_xml("-1"), "InvalidArgument"),
    (part_xml("10001"), "InvalidArgument"),
    (part_xml("99999999999"), "InvalidArgument"),
    (part_xml("2") + part_xml("1"), "InvalidPartOrder"),
    (part_xml("1") + part_xml("1"), "InvalidPartOrder"),
    ("<Part><ETag>e</ETag></Part>", "MalformedXML"),
    ("<Part><PartNumber>1</PartNumber></Part>", "MalformedXML"),
    ("<Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>e</ETag></Part>", "MalformedXML"),
    ("<Part><PartNumber>1</PartNumber><ETag>e</ETag><Size>5</Size></Part>", "MalformedXML"),
    ("<Part><PartNumber>1</PartNumber><ETag>e</ETag><ChecksumType>x</ChecksumType></Part>", "MalformedXML"),
    ("<Part><PartNumber>1</PartNumber><ETag>e</ETag><ChecksumCRC32>a</ChecksumCRC32>"
     "<ChecksumCRC32>b</ChecksumCRC32></Part>", "MalformedXML"),
    ("<Part>x<PartNumber>1</PartNumber><ETag>e</ETag></Part>", "MalformedXML"),
    ("<Upload/>", "MalformedXML"),
])
def test_parse_complete_multipart_refuses(parts: str, code: str) -> None:
    body = f'<CompleteMultipartUpload xmlns="{NS}">{parts}</CompleteMultipartUpload>'.encode()
    with pytest.raises(X.XmlError) as e:
        X.parse_complete_multipart(body)
    assert e.value.code == code, e.value.message


def test_parse_complete_multipart_bounds() -> None:
    with pytest.raises(X.XmlError) as e:
        X.parse_complete_multipart(BILLION_LAUGHS.replace(b"Delete", b"CompleteMultipartUpload"))
    assert e.value.code == "MalformedXML"
    body = complete_body([{"PartNumber": n, "ETag": f'"{n:032x}"', "ChecksumSHA256": "s" * 44}
                          for n in range(1, 10001)])
    assert len(body) < X.MAX_COMPLETE_BODY  # the default holds 10,000 parts with checksums
    assert len(X.parse_complete_multipart(body)) == 10000
    with pytest.raises(X.XmlError) as e:
        X.parse_complete_multipart(body, max_bytes=1 << 20)
    assert e.value.code == "MalformedXML"


def tagging_body(tags: list[tuple[str, str]]) -> bytes:
    return serialize("PutObjectTagging", {"Bucket": "b", "Key": "k", "Tagging": {
        "TagSet": [{"Key": k, "Value": v} for k, v in tags]}})


@settings(max_examples=100)
@given(st.dictionaries(xml_text.filter(lambda s: 0 < len(s) <= 128), xml_text.filter(lambda s: len(s) <= 256),
                       max_size=10))
def test_parse_tagging_reads_botocore(tags: dict[str, str]) -> None:
    assert X.parse_tagging(tagging_body(list(tags.items()))) == list(tags.items())


def test_parse_tagging_limits() -> None:
    ok = [(f"k{i}", "v") for i in range(10)]
    assert X.parse_tagging(tagging_body(ok)) == ok
    assert X.parse_tagging(tagging_body([("k" * 128, "v" * 256)])) == [("k" * 128, "v" * 256)]
    assert X.parse_tagging(tagging_body([("ü" * 128, "")])) == [("ü" * 128, "")]  # characters, not bytes
    assert X.parse_tagging(b"<Tagging><TagSet/></Tagging>") == []
    assert len(X.parse_tagging(tagging_body([(f"k{i}", "v") for i in range(50)]), max_tags=50)) == 50
    for tags in ([(f"k{i}", "v") for i in range(11)], [("a", "1"), ("a", "2")], [("k" * 129, "v")],
                 [("k", "v" * 257)], [("", "v")]):
        with pytest.raises(X.XmlError) as e:
            X.parse_tagging(tagging_body(tags))
        assert e.value.code == "InvalidTag", tags
    for body in (b"<Tagging/>", b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
                 b"<Tagging><TagSet><Tag><Value>a</Value></Tag></TagSet></Tagging>",
                 b"<Tagging><TagSet/><TagSet/></Tagging>", b"<TagSet/>",
                 b"<Tagging><TagSet><Other/></TagSet></Tagging>", BILLION_LAUGHS):
        with pytest.raises(X.XmlError) as e:
            X.parse_tagging(body)
        assert e.value.code == "MalformedXML", body
    with pytest.raises(X.XmlError) as e:
        X.parse_tagging(tagging_body([("a", "b")]), max_bytes=20)
    assert e.value.code == "MalformedXML"


def test_parse_create_bucket() -> None:
    body = serialize("CreateBucket", {"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}})
    assert X.parse_create_bucket(body) == "eu-west-1"
    assert X.parse_create_bucket(serialize("CreateBucket", {"Bucket": "b"})) is None  # no body
    assert X.parse_create_bucket(b"") is None
    assert X.parse_create_bucket(b"\r\n ") is None
    assert X.parse_create_bucket(b"<CreateBucketConfiguration/>") is None
    assert X.parse_create_bucket(
        b"<CreateBucketConfiguration><LocationConstraint></LocationConstraint></CreateBucketConfiguration>") is None
    assert X.parse_create_bucket(
        b"<CreateBucketConfiguration><LocationConstraint>\n us-west-2 \n</LocationConstraint>"
        b"<Bucket><Type>Directory</Type></Bucket></CreateBucketConfiguration>") == "us-west-2"
    tagged = serialize("CreateBucket", {"Bucket": "b", "CreateBucketConfiguration": {
        "LocationConstraint": "ap-south-1", "Tags": [{"Key": "a", "Value": "b"}]}})
    assert X.parse_create_bucket(tagged) == "ap-south-1"
    for bad in (b"<Delete/>", b"<CreateBucketConfiguration>", BILLION_LAUGHS, b"x" * 70000,
                b"<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint>"
                b"<LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>",
                b"<CreateBucketConfiguration><LocationConstraint><x/></LocationConstraint>"
                b"</CreateBucketConfiguration>"):
        with pytest.raises(X.XmlError) as e:
            X.parse_create_bucket(bad)
        assert e.value.code == "MalformedXML"


# --------------------------------------------------------------------------- robustness

PARSERS = [X.parse_delete, X.parse_complete_multipart, X.parse_tagging, X.parse_create_bucket]
SEEDS = [
    delete_body(["a", "b&c"], quiet=True),
    complete_body([{"PartNumber": 1, "ETag": '"e"', "ChecksumCRC32": "AAAAAA=="}]),
    tagging_body([("a", "b")]),
    serialize("CreateBucket", {"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}),
    BILLION_LAUGHS,
]


def only_xml_errors(body: bytes) -> None:
    for parse_fn in PARSERS:
        try:
            parse_fn(body)
        except X.XmlError as e:
            assert e.code in {"MalformedXML", "InvalidArgument", "InvalidPartOrder", "InvalidTag",
                              "NotImplemented"}
            assert isinstance(e.message, str) and e.message


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_xml_error(body: bytes) -> None:
    only_xml_errors(body)


@settings(max_examples=500)
@given(seed=st.sampled_from(SEEDS), at=st.integers(0, 400), cut=st.integers(0, 20),
       junk=st.binary(max_size=12))
def test_mutated_bodies_raise_only_xml_error(seed: bytes, at: int, cut: int, junk: bytes) -> None:
    at = min(at, len(seed))
    only_xml_errors(seed[:at] + junk + seed[at + cut:])


@settings(max_examples=300)
@given(st.recursive(
    st.sampled_from(["Delete", "Object", "Key", "Quiet", "VersionId", "Part", "PartNumber", "ETag",
                     "ChecksumCRC32", "Tagging", "TagSet", "Tag", "Value", "CreateBucketConfiguration",
                     "LocationConstraint"]).map(lambda t: (t, [])),
    lambda kids: st.tuples(st.sampled_from(["Delete", "Object", "Part", "Tagging", "TagSet", "Tag",
                                            "CompleteMultipartUpload", "CreateBucketConfiguration"]),
                           st.lists(kids, max_size=4)),
    max_leaves=12), st.text(max_size=5))
def test_random_element_trees_raise_only_xml_error(tree: Any, text: str) -> None:
    def render(node: Any) -> str:
        tag, kids = node
        inner = "".join(render(k) for k in kids) if kids else X.escape(text)
        return f"<{tag}>{inner}</{tag}>"
    only_xml_errors(render(tree).encode())


@settings(max_examples=300)
@given(st.integers(min_value=-(10**18), max_value=4 * 10**18))
def test_timestamp_of_nanoseconds_matches_the_datetime_form(ns: int) -> None:
    from datetime import datetime, timedelta, timezone
    as_dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)
    assert X.timestamp(ns) == X.timestamp(as_dt)


def test_escape_leaves_plain_text_alone_and_escapes_the_rest() -> None:
    assert X.escape("dir/plain-key_1.txt") == "dir/plain-key_1.txt"
    assert X.escape('a&b<c>"d"\re') == "a&amp;b&lt;c&gt;&quot;d&quot;&#13;e"
    assert X.escape("\x01x\ud800") == "\ufffdx\ufffd"
