"""The S3 door against boto3, the way scripts and pipelines use it."""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.error
import urllib.request
import zlib
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import Gateway
from tests.integration.conftest import client_for, vhost_endpoint


def code_of(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


def status_of(e: pytest.ExceptionInfo[ClientError]) -> int:
    return int(e.value.response["ResponseMetadata"]["HTTPStatusCode"])


def test_bucket_lifecycle(s3) -> None:
    s3.create_bucket(Bucket="alpha")
    s3.create_bucket(Bucket="beta", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["alpha", "beta"]
    s3.head_bucket(Bucket="alpha")
    assert s3.get_bucket_location(Bucket="alpha").get("LocationConstraint") in (None, "")
    assert "Status" not in s3.get_bucket_versioning(Bucket="alpha")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="alpha")
    assert code_of(e) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="alpha", Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="alpha")
    assert code_of(e) == "BucketNotEmpty"
    s3.delete_object(Bucket="alpha", Key="k")
    s3.delete_bucket(Bucket="alpha")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="alpha")
    assert status_of(e) == 404
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Bad_Name")
    assert code_of(e) == "InvalidBucketName"


def test_put_get_head_round_trip_with_metadata(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    data = os.urandom(300_000)
    put = s3.put_object(Bucket="bkt", Key="dir/obj.bin", Body=data, ContentType="application/x-test",
                        Metadata={"team": "ml", "run": "7"}, CacheControl="max-age=60",
                        ContentDisposition='attachment; filename="x.bin"')
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket="bkt", Key="dir/obj.bin")
    assert got["Body"].read() == data
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"team": "ml", "run": "7"}
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentDisposition"] == 'attachment; filename="x.bin"'
    assert got["ETag"] == put["ETag"] and got["ContentLength"] == len(data)
    head = s3.head_object(Bucket="bkt", Key="dir/obj.bin")
    assert head["ContentLength"] == len(data) and head["ETag"] == put["ETag"]
    assert head["LastModified"] == got["LastModified"]


def test_checksums_are_verified_stored_and_returned(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    data = b"hello"
    for alg in ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"):
        s3.put_object(Bucket="bkt", Key=f"k-{alg}", Body=data, ChecksumAlgorithm=alg)
        got = s3.get_object(Bucket="bkt", Key=f"k-{alg}", ChecksumMode="ENABLED")
        assert got["Body"].read() == data
        assert got[f"Checksum{alg}"]
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert s3.head_object(Bucket="bkt", Key="k-CRC32", ChecksumMode="ENABLED")["ChecksumCRC32"] == crc


def test_a_wrong_checksum_is_refused_and_nothing_is_stored(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="bkt", Key="k", Body=b"hello", ChecksumCRC32="AAAAAA==")
    assert code_of(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="bkt", Key="k", Body=b"hello",
                      ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
    assert code_of(e) == "BadDigest"
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0


def test_ranged_reads(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    data = os.urandom(100_000)
    s3.put_object(Bucket="bkt", Key="k", Body=data)
    for rng, want in [("bytes=0-0", data[:1]), ("bytes=10-19", data[10:20]),
                      ("bytes=99990-", data[99990:]), ("bytes=-5", data[-5:]),
                      ("bytes=50000-999999", data[50000:])]:
        got = s3.get_object(Bucket="bkt", Key="k", Range=rng, ChecksumMode="ENABLED")
        assert got["Body"].read() == want, rng
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"].endswith("/100000")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="k", Range="bytes=100000-")
    assert code_of(e) == "InvalidRange" and status_of(e) == 416


def test_conditional_reads_and_writes(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    etag = s3.put_object(Bucket="bkt", Key="k", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket="bkt", Key="k", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="k", IfNoneMatch=etag)
    assert status_of(e) == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="k", IfMatch='"0000"')
    assert status_of(e) == 412
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="bkt", Key="k", Body=b"v2", IfNoneMatch="*")
    assert status_of(e) == 412
    s3.put_object(Bucket="bkt", Key="k", Body=b"v2", IfMatch=etag)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="bkt", Key="k", Body=b"v3", IfMatch=etag)  # etag is stale now
    assert status_of(e) == 412
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"v2"


def test_listing_v1_and_v2_with_paging_and_delimiters(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    keys = ["a.txt", "a/x", "a/y/z", "b", "c d+e", "é"]
    for k in keys:
        s3.put_object(Bucket="bkt", Key=k, Body=k.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())
    r = s3.list_objects_v2(Bucket="bkt", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a.txt", "b", "c d+e", "é"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/"]
    paged = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bkt", PaginationConfig={"PageSize": 2}):
        paged += [o["Key"] for o in page.get("Contents", [])]
    assert paged == listed
    paged = []
    for page in s3.get_paginator("list_objects").paginate(Bucket="bkt", PaginationConfig={"PageSize": 2}):
        paged += [o["Key"] for o in page.get("Contents", [])]
    assert paged == listed
    r = s3.list_objects_v2(Bucket="bkt", Prefix="a/", StartAfter="a/x", FetchOwner=True)
    assert [o["Key"] for o in r["Contents"]] == ["a/y/z"] and r["Contents"][0]["Owner"]["ID"] == "0"
    r = s3.list_objects(Bucket="bkt", Delimiter="/", MaxKeys=1)
    assert r["IsTruncated"] and r["NextMarker"] == "a.txt"
    # boto3 always asks for url encoding and decodes it back (the keys above); asked
    # for explicitly, it leaves the AWS-style encoding to the caller.
    r = s3.list_objects_v2(Bucket="bkt", EncodingType="url", Prefix="c")
    assert [o["Key"] for o in r["Contents"]] == ["c+d%2Be"]
    r = s3.list_objects(Bucket="bkt", EncodingType="url", Marker="b")  # v1 encodes too
    assert [o["Key"] for o in r["Contents"]] == ["c+d%2Be", "%C3%A9"]


def test_delete_objects_quiet_and_verbose(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    for i in range(5):
        s3.put_object(Bucket="bkt", Key=f"k{i}", Body=b"x")
    r = s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "k0"}, {"Key": "k1"}, {"Key": "missing"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["k0", "k1", "missing"]
    r = s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "k2"}], "Quiet": True})
    assert "Deleted" not in r or r["Deleted"] == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["k3", "k4"]


def test_copy_object_with_metadata_directives(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="src key+1", Body=b"payload", Metadata={"a": "1"}, ContentType="text/x")
    r = s3.copy_object(Bucket="bkt", Key="dst", CopySource={"Bucket": "bkt", "Key": "src key+1"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"payload").hexdigest()}"'
    got = s3.get_object(Bucket="bkt", Key="dst")
    assert got["Body"].read() == b"payload" and got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/x"
    s3.copy_object(Bucket="bkt", Key="dst2", CopySource="bkt/src key+1", MetadataDirective="REPLACE",
                   Metadata={"b": "2"}, ContentType="text/y")
    got = s3.head_object(Bucket="bkt", Key="dst2")
    assert got["Metadata"] == {"b": "2"} and got["ContentType"] == "text/y"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="bkt", Key="dst", CopySource={"Bucket": "bkt", "Key": "src key+1"},
                       CopySourceIfMatch='"nope"')
    assert status_of(e) == 412
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="bkt", Key="dst", CopySource={"Bucket": "bkt", "Key": "dst"})
    assert code_of(e) == "InvalidRequest"


def test_multipart_upload_with_boto3(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    parts = [os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket="bkt", Key="mp/obj", ContentType="application/x-big")
    uid = up["UploadId"]
    etags = []
    for n, p in enumerate(parts, 1):
        etags.append(s3.upload_part(Bucket="bkt", Key="mp/obj", UploadId=uid, PartNumber=n, Body=p)["ETag"])
    listed = s3.list_parts(Bucket="bkt", Key="mp/obj", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="bkt")["Uploads"]] == ["mp/obj"]
    r = s3.complete_multipart_upload(Bucket="bkt", Key="mp/obj", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert r["ETag"] == f'"{want}"'
    got = s3.get_object(Bucket="bkt", Key="mp/obj")
    assert got["Body"].read() == b"".join(parts) and got["ContentType"] == "application/x-big"
    p2 = s3.get_object(Bucket="bkt", Key="mp/obj", PartNumber=2)
    assert p2["Body"].read() == parts[1] and p2["PartsCount"] == 3


def test_multipart_errors(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    uid = s3.create_multipart_upload(Bucket="bkt", Key="k")["UploadId"]
    e1 = s3.upload_part(Bucket="bkt", Key="k", UploadId=uid, PartNumber=1, Body=b"small")["ETag"]
    e2 = s3.upload_part(Bucket="bkt", Key="k", UploadId=uid, PartNumber=2, Body=b"small")["ETag"]
    for parts, code in [([(2, e2), (1, e1)], "InvalidPartOrder"), ([(1, '"00"')], "InvalidPart"),
                        ([(1, e1), (2, e2)], "EntityTooSmall")]:
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket="bkt", Key="k", UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": t} for n, t in parts]})
        assert code_of(e) == code
    s3.abort_multipart_upload(Bucket="bkt", Key="k", UploadId=uid)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket="bkt", Key="k", UploadId=uid)
    assert code_of(e) == "NoSuchUpload"


def test_upload_part_copy_with_a_range(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    src = os.urandom(6 << 20)
    s3.put_object(Bucket="bkt", Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket="bkt", Key="dst")["UploadId"]
    r1 = s3.upload_part_copy(Bucket="bkt", Key="dst", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": "bkt", "Key": "src"}, CopySourceRange=f"bytes=0-{(5 << 20) - 1}")
    r2 = s3.upload_part_copy(Bucket="bkt", Key="dst", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": "bkt", "Key": "src"}, CopySourceRange="bytes=100-199")
    s3.complete_multipart_upload(Bucket="bkt", Key="dst", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket="bkt", Key="dst")["Body"].read() == src[:5 << 20] + src[100:200]


def test_object_tagging(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"x", Tagging="team=ml&stage=raw")
    tags = s3.get_object_tagging(Bucket="bkt", Key="k")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("stage", "raw"), ("team", "ml")]
    s3.put_object_tagging(Bucket="bkt", Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert s3.get_object_tagging(Bucket="bkt", Key="k")["TagSet"] == [{"Key": "a", "Value": "b"}]
    assert s3.head_object(Bucket="bkt", Key="k")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "1"
    s3.delete_object_tagging(Bucket="bkt", Key="k")
    assert s3.get_object_tagging(Bucket="bkt", Key="k")["TagSet"] == []


def test_get_object_attributes(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"hello", ChecksumAlgorithm="SHA256")
    r = s3.get_object_attributes(Bucket="bkt", Key="k", ObjectAttributes=["ETag", "ObjectSize", "Checksum"])
    assert r["ObjectSize"] == 5 and r["ETag"] == hashlib.md5(b"hello").hexdigest()
    assert r["Checksum"]["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"hello").digest()).decode()


def test_presigned_get_and_put(gateway: Gateway, s3) -> None:
    s3.create_bucket(Bucket="bkt")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "bkt", "Key": "p k"}, ExpiresIn=60)
    req = urllib.request.Request(put_url, data=b"presigned body", method="PUT")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "p k"}, ExpiresIn=60)
    with urllib.request.urlopen(get_url) as r:
        assert r.read() == b"presigned body"
    tampered = get_url.replace("p%20k", "other")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(tampered)
    assert e.value.code == 403 and b"SignatureDoesNotMatch" in e.value.read()


def test_wrong_credentials_are_refused(gateway: Gateway) -> None:
    bad = client_for(gateway, secret_key="x" * 40)
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert code_of(e) == "SignatureDoesNotMatch"
    unknown = client_for(gateway, access_key="AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(ClientError) as e:
        unknown.list_buckets()
    assert code_of(e) == "InvalidAccessKeyId"


def test_anonymous_requests_are_refused_unless_the_bucket_is_public(gateway: Gateway, s3) -> None:
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"public data")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(gateway.endpoint + "/bkt/k")
    assert e.value.code == 403 and b"AccessDenied" in e.value.read()
    import subprocess
    import sys
    subprocess.run([sys.executable, "-m", "gateway.cli", "bucket", "public", "bkt", "--data", str(gateway.data)],
                   check=True, capture_output=True)
    with urllib.request.urlopen(gateway.endpoint + "/bkt/k") as r:
        assert r.read() == b"public data"
    req = urllib.request.Request(gateway.endpoint + "/bkt/k2", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 403  # public means read-only


def test_a_second_identity_cannot_touch_the_first_ones_private_bucket(gateway: Gateway, s3) -> None:
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "user", "add", "bob", "--data", str(gateway.data)],
                         check=True, capture_output=True, text=True).stdout
    bob_keys = json.loads(out)
    bob = client_for(gateway, bob_keys["access_key"], bob_keys["secret_key"])
    s3.create_bucket(Bucket="roots")
    s3.put_object(Bucket="roots", Key="k", Body=b"secret")
    for call in (lambda: bob.get_object(Bucket="roots", Key="k"),
                 lambda: bob.put_object(Bucket="roots", Key="k2", Body=b"x"),
                 lambda: bob.list_objects_v2(Bucket="roots"),
                 lambda: bob.delete_object(Bucket="roots", Key="k")):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "AccessDenied"
    bob.create_bucket(Bucket="bobs")
    bob.put_object(Bucket="bobs", Key="mine", Body=b"b")
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["bobs"]
    assert s3.get_object(Bucket="bobs", Key="mine")["Body"].read() == b"b"  # root reads everything


@pytest.mark.parametrize("key, why", [("a//b", "empty path segment"), ("a/../b", "'..'"),
                                      ("./a", "'.'"), ("x" * 256, "longer than 255 bytes")])
def test_impossible_keys_get_a_clear_error(s3, key: str, why: str) -> None:
    """Keys no path can hold are InvalidArgument saying why; a segment over 255 bytes is a
    limit of file systems, not S3's KeyTooLongError (that one is for keys over 1024)."""
    s3.create_bucket(Bucket="bkt")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="bkt", Key=key, Body=b"x")
    assert code_of(e) == "InvalidArgument" and status_of(e) == 400
    assert why in e.value.response["Error"]["Message"]
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0


def test_folder_markers_and_implicit_folders(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="folder/", Body=b"")
    s3.put_object(Bucket="bkt", Key="implicit/deep/obj", Body=b"x")
    r = s3.list_objects_v2(Bucket="bkt", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["folder/", "implicit/"]
    s3.delete_object(Bucket="bkt", Key="implicit/deep/obj")
    r = s3.list_objects_v2(Bucket="bkt")
    assert [o["Key"] for o in r["Contents"]] == ["folder/"]


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_multipart_with_a_checksum_algorithm_gets_the_composite_checksum(s3, alg: str) -> None:
    from gateway.s3.checksums import Checksum
    s3.create_bucket(Bucket=f"mpck-{alg.lower()}")
    bucket = f"mpck-{alg.lower()}"
    up = s3.create_multipart_upload(Bucket=bucket, Key="obj", ChecksumAlgorithm=alg)
    bodies = [os.urandom(5 << 20), os.urandom(1234)]
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key="obj", UploadId=up["UploadId"], PartNumber=n,
                           Body=body, ChecksumAlgorithm=alg)
        h = Checksum(alg)
        h.update(body)
        assert r[f"Checksum{alg}"] == h.b64()  # the part's own checksum, verified and echoed
        parts.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{alg}": r[f"Checksum{alg}"]})
    listed = s3.list_parts(Bucket=bucket, Key="obj", UploadId=up["UploadId"])["Parts"]
    assert [p[f"Checksum{alg}"] for p in listed] == [p[f"Checksum{alg}"] for p in parts]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts})
    outer = Checksum(alg)
    for p in parts:
        outer.update(base64.b64decode(p[f"Checksum{alg}"]))
    expected = f"{outer.b64()}-2"
    assert done[f"Checksum{alg}"] == expected
    head = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == expected
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "COMPOSITE"
    got = s3.get_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(bodies)
    attrs = s3.get_object_attributes(Bucket=bucket, Key="obj", ObjectAttributes=["Checksum", "ObjectParts"])
    assert attrs["Checksum"][f"Checksum{alg}"] == expected
    assert attrs["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert attrs["ObjectParts"]["TotalPartsCount"] == 2
    # Each part with its own checksum, paged by MaxParts / PartNumberMarker.
    assert [(p["PartNumber"], p["Size"], p[f"Checksum{alg}"]) for p in attrs["ObjectParts"]["Parts"]] \
        == [(n, len(b), p[f"Checksum{alg}"]) for n, (b, p) in enumerate(zip(bodies, parts), 1)]
    first = s3.get_object_attributes(Bucket=bucket, Key="obj", ObjectAttributes=["ObjectParts"],
                                     MaxParts=1)["ObjectParts"]
    assert first["IsTruncated"] is True and first["NextPartNumberMarker"] == 1
    assert [p["PartNumber"] for p in first["Parts"]] == [1]
    rest = s3.get_object_attributes(Bucket=bucket, Key="obj", ObjectAttributes=["ObjectParts"],
                                    MaxParts=1, PartNumberMarker=1)["ObjectParts"]
    assert rest["IsTruncated"] is False and [p["PartNumber"] for p in rest["Parts"]] == [2]
    assert rest["Parts"][0][f"Checksum{alg}"] == parts[1][f"Checksum{alg}"]


def test_object_parts_of_an_upload_without_checksums_give_only_the_count(s3) -> None:
    """S3 lists parts in GetObjectAttributes only when they carry checksums."""
    s3.create_bucket(Bucket="mpnock")
    up = s3.create_multipart_upload(Bucket="mpnock", Key="obj")
    parts = []
    for n, body in enumerate([os.urandom(5 << 20), b"end"], 1):
        r = s3.upload_part(Bucket="mpnock", Key="obj", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket="mpnock", Key="obj", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    attrs = s3.get_object_attributes(Bucket="mpnock", Key="obj", ObjectAttributes=["ObjectParts"])
    assert attrs["ObjectParts"] == {"TotalPartsCount": 2}


def _full_object_upload(s3, bucket: str, alg: str, bodies: list[bytes], **create):  # type: ignore[no-untyped-def]
    """A multipart upload of bodies with per-part checksums of alg: (upload id, parts)."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="obj", ChecksumAlgorithm=alg, **create)
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key="obj", UploadId=up["UploadId"], PartNumber=n,
                           Body=body, ChecksumAlgorithm=alg)
        parts.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{alg}": r[f"Checksum{alg}"]})
    return up, parts


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "CRC64NVME"])
def test_multipart_full_object_checksum_is_the_crc_of_the_whole_object(s3, alg: str) -> None:
    from gateway.s3.checksums import Checksum
    bucket = f"mpfull-{alg.lower()}"
    s3.create_bucket(Bucket=bucket)
    bodies = [os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(4321)]
    whole = Checksum(alg)
    whole.update(b"".join(bodies))
    # CRC64NVME is FULL_OBJECT by default (as on S3); the others ask for it.
    create = {} if alg == "CRC64NVME" else {"ChecksumType": "FULL_OBJECT"}
    up, parts = _full_object_upload(s3, bucket, alg, bodies, **create)
    assert up["ChecksumType"] == "FULL_OBJECT"
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="obj", UploadId=up["UploadId"], MultipartUpload={"Parts": parts},
        **{f"Checksum{alg}": whole.b64()}, ChecksumType="FULL_OBJECT",
        MpuObjectSize=sum(map(len, bodies)))
    assert done[f"Checksum{alg}"] == whole.b64() and done["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == whole.b64()
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "FULL_OBJECT"
    # botocore checks a FULL_OBJECT checksum against the body it receives.
    got = s3.get_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(bodies)
    attrs = s3.get_object_attributes(Bucket=bucket, Key="obj", ObjectAttributes=["Checksum"])
    assert attrs["Checksum"] == {f"Checksum{alg}": whole.b64(), "ChecksumType": "FULL_OBJECT"}


def test_a_wrong_full_object_checksum_at_completion_is_baddigest_and_the_upload_stays(s3) -> None:
    s3.create_bucket(Bucket="mpfullbad")
    bodies = [os.urandom(5 << 20), b"tail"]
    up, parts = _full_object_upload(s3, "mpfullbad", "CRC32", bodies, ChecksumType="FULL_OBJECT")
    wrong = base64.b64encode(zlib.crc32(b"other bytes").to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpfullbad", Key="obj", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": parts}, ChecksumCRC32=wrong)
    assert code_of(e) == "BadDigest" and status_of(e) == 400
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpfullbad", Key="obj", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": parts}, MpuObjectSize=12345)
    assert code_of(e) == "InvalidRequest"
    assert s3.list_objects_v2(Bucket="mpfullbad")["KeyCount"] == 0
    # Nothing was consumed: the same upload completes with the right figures.
    right = base64.b64encode(zlib.crc32(b"".join(bodies)).to_bytes(4, "big")).decode()
    s3.complete_multipart_upload(Bucket="mpfullbad", Key="obj", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts}, ChecksumCRC32=right)
    assert s3.get_object(Bucket="mpfullbad", Key="obj")["Body"].read() == b"".join(bodies)


@pytest.mark.parametrize("alg,kind", [("SHA256", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE")])
def test_a_checksum_type_the_algorithm_cannot_have_is_refused(s3, alg: str, kind: str) -> None:
    s3.create_bucket(Bucket="mpkind")
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket="mpkind", Key="obj", ChecksumAlgorithm=alg, ChecksumType=kind)
    assert code_of(e) == "InvalidRequest" and status_of(e) == 400
    assert s3.list_multipart_uploads(Bucket="mpkind").get("Uploads", []) == []


def test_upload_file_with_a_full_object_crc32_through_s3transfer(s3, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from boto3.s3.transfer import TransferConfig
    s3.create_bucket(Bucket="mpxfer")
    data = os.urandom((20 << 20) + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    s3.upload_file(str(src), "mpxfer", "obj", ExtraArgs={"ChecksumAlgorithm": "CRC32",
                   "ChecksumType": "FULL_OBJECT", "ChecksumCRC32": crc},
                   Config=TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20))
    head = s3.head_object(Bucket="mpxfer", Key="obj", ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"')  # it was a multipart upload
    assert head["ChecksumCRC32"] == crc and head["ChecksumType"] == "FULL_OBJECT"


def test_a_wrong_part_checksum_at_completion_is_refused_and_nothing_is_stored(s3) -> None:
    s3.create_bucket(Bucket="mpbad")
    up = s3.create_multipart_upload(Bucket="mpbad", Key="obj", ChecksumAlgorithm="SHA256")
    r = s3.upload_part(Bucket="mpbad", Key="obj", UploadId=up["UploadId"], PartNumber=1,
                       Body=b"x" * 100, ChecksumAlgorithm="SHA256")
    wrong = base64.b64encode(hashlib.sha256(b"y").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpbad", Key="obj", UploadId=up["UploadId"], MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": r["ETag"], "ChecksumSHA256": wrong}]})
    assert code_of(e) == "InvalidPart"
    assert s3.list_objects_v2(Bucket="mpbad")["KeyCount"] == 0


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_list_paging_never_repeats_or_skips_a_key_while_keys_are_added_and_removed(s3, version: str) -> None:
    """Between two pages, keys (and whole implicit folders) appear and disappear
    before, at and after the page boundary: every key that stayed all along is
    listed exactly once, the listing stays in strict byte order, and nothing that
    never existed shows up."""
    s3.create_bucket(Bucket="bkt")
    stable = [f"d{i % 6}/s{i:03d}" for i in range(60)] + [f"top{i:02d}" for i in range(10)]
    # Volatile keys sit beside the stable ones, some alone in their folder (the folder
    # vanishes with them), and are removed or re-added while the listing walks.
    volatile = [f"d{i % 6}/v{i:03d}" for i in range(30)] + [f"gone{i}/only" for i in range(6)]
    for k in stable + volatile:
        s3.put_object(Bucket="bkt", Key=k, Body=b"x")
    ever: set[str] = set(stable) | set(volatile)
    listed: list[str] = []
    token: str | None = None
    step = 0
    while True:
        if version == "v2":
            kw = {"ContinuationToken": token} if token else {}
            page = s3.list_objects_v2(Bucket="bkt", MaxKeys=7, **kw)
            token = page.get("NextContinuationToken")
        else:
            kw = {"Marker": token} if token else {}
            page = s3.list_objects(Bucket="bkt", MaxKeys=7, **kw)
            token = page["Contents"][-1]["Key"] if page.get("IsTruncated") else None
        listed += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        # Mutate around where the walk stands: drop volatile keys just behind and
        # just ahead of the boundary, add new ones on both sides.
        last = listed[-1]
        for k in volatile[step % len(volatile)::5]:
            s3.delete_object(Bucket="bkt", Key=k)
        for j in range(3):
            for k in (f"{last}-new{step}-{j}", f"d{(step + j) % 6}/n{step:03d}{j}", f"a{step:03d}{j}"):
                s3.put_object(Bucket="bkt", Key=k, Body=b"y")
                ever.add(k)
        for k in volatile[(step + 2) % len(volatile)::7]:
            s3.put_object(Bucket="bkt", Key=k, Body=b"z")
        step += 1
    assert step >= 8, "the listing should have taken many pages"
    as_bytes = [k.encode() for k in listed]
    assert as_bytes == sorted(set(as_bytes)), "keys repeated or out of order"
    missing = [k for k in stable if k not in listed]
    assert not missing, f"stable keys skipped: {missing}"
    assert set(listed) <= ever, f"keys that never existed: {set(listed) - ever}"


# -- response-* overrides, stored system headers ----------------------------------------------

OVERRIDES = {
    "ResponseContentType": ("ContentType", "text/x-override"),
    "ResponseContentDisposition": ("ContentDisposition", 'attachment; filename="over.txt"'),
    "ResponseContentEncoding": ("ContentEncoding", "identity"),
    "ResponseContentLanguage": ("ContentLanguage", "fr-CA"),
    "ResponseCacheControl": ("CacheControl", "no-store"),
    "ResponseExpires": ("Expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
}


def _put_with_stored_headers(s3) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"override me", ContentType="text/plain",
                  ContentDisposition="inline", ContentLanguage="en-GB",
                  CacheControl="max-age=60", Expires=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))


def test_response_query_parameters_override_the_stored_headers_on_get_and_head(s3) -> None:
    """GetObject/HeadObject with response-content-type, -content-disposition,
    -content-encoding, -content-language, -cache-control and -expires answer with
    those values in place of the stored ones, and the body is unchanged."""
    _put_with_stored_headers(s3)
    kwargs = {param: value for param, (_, value) in OVERRIDES.items()}
    got = s3.get_object(Bucket="bkt", Key="k", **kwargs)
    assert got["Body"].read() == b"override me"
    head = s3.head_object(Bucket="bkt", Key="k", **kwargs)
    for answer in (got, head):
        raw = answer["ResponseMetadata"]["HTTPHeaders"]
        for param, (field, value) in OVERRIDES.items():
            if field == "Expires":  # botocore parses it (and deprecates the field): read the header
                assert raw["expires"] == value
            else:
                assert answer[field] == value, param
    # Without the parameters, the stored values again.
    plain = s3.head_object(Bucket="bkt", Key="k")
    assert plain["ContentType"] == "text/plain" and plain["ContentLanguage"] == "en-GB"
    assert plain["CacheControl"] == "max-age=60" and plain["ContentDisposition"] == "inline"


def test_response_overrides_in_a_presigned_url_come_back_as_headers(s3) -> None:
    """A presigned GET carrying response-* parameters (the usual "download as" link)
    gets those headers from a plain HTTP client."""
    _put_with_stored_headers(s3)
    url = s3.generate_presigned_url("get_object", ExpiresIn=60, Params={
        "Bucket": "bkt", "Key": "k", **{param: value for param, (_, value) in OVERRIDES.items()}})
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"override me"
        for _param, (field, value) in OVERRIDES.items():
            header = {"ContentType": "Content-Type", "ContentDisposition": "Content-Disposition",
                      "ContentEncoding": "Content-Encoding", "ContentLanguage": "Content-Language",
                      "CacheControl": "Cache-Control", "Expires": "Expires"}[field]
            assert r.headers[header] == value, header


def test_content_language_and_expires_are_stored_and_returned(s3) -> None:
    """PutObject's Content-Language and Expires come back on GET and HEAD, and a copy
    with the COPY directive carries them on."""
    import datetime as dt
    s3.create_bucket(Bucket="bkt")
    expires = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    s3.put_object(Bucket="bkt", Key="k", Body=b"bonjour", ContentLanguage="fr", Expires=expires)
    s3.copy_object(Bucket="bkt", Key="copy", CopySource={"Bucket": "bkt", "Key": "k"})
    for key in ("k", "copy"):
        got = s3.get_object(Bucket="bkt", Key=key)
        head = s3.head_object(Bucket="bkt", Key=key)
        assert got["Body"].read() == b"bonjour"
        for answer in (got, head):
            assert answer["ContentLanguage"] == "fr"
            assert answer["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Tue, 06 May 2031 07:08:09 GMT"


def test_a_gzip_encoded_body_is_stored_as_sent_and_returned_with_its_encoding(s3) -> None:
    """S3 stores a Content-Encoding: gzip body byte for byte (the encoding describes the
    object, as for pre-compressed web assets) and returns it with that header."""
    import gzip
    s3.create_bucket(Bucket="bkt")
    packed = gzip.compress(b"hello world " * 100)
    s3.put_object(Bucket="bkt", Key="z", Body=packed, ContentEncoding="gzip")
    got = s3.get_object(Bucket="bkt", Key="z")
    assert got["Body"].read() == packed and got["ContentEncoding"] == "gzip"
    # The gateway does not decode what it stores: bytes that are not gzip are stored too.
    s3.put_object(Bucket="bkt", Key="raw", Body=b"not gzip at all", ContentEncoding="gzip")
    assert s3.get_object(Bucket="bkt", Key="raw")["Body"].read() == b"not gzip at all"


# -- an object and a folder of the same name -----------------------------------------------

def _complete_as_second_writer(s3, first: str, second: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """Start the upload of `second` before `first` exists (the race the 409 guards),
    then store `first` and complete."""
    uid = s3.create_multipart_upload(Bucket="bkt", Key=second)["UploadId"]
    etag = s3.upload_part(Bucket="bkt", Key=second, UploadId=uid, PartNumber=1, Body=b"second")["ETag"]
    s3.put_object(Bucket="bkt", Key=first, Body=data)
    s3.complete_multipart_upload(Bucket="bkt", Key=second, UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})


@pytest.mark.parametrize("first, second", [("a", "a/b"), ("a/b", "a")])
@pytest.mark.parametrize("writer", ["put", "copy", "complete"])
def test_an_object_and_a_folder_of_the_same_name_cannot_both_exist(s3, first: str, second: str,
                                                                     writer: str) -> None:
    """With `first` stored, writing `second` (an object below it, or an object where
    its folder is) by PutObject, CopyObject or CompleteMultipartUpload is refused with
    409 InvalidRequest, and `first` keeps its bytes."""
    s3.create_bucket(Bucket="bkt")
    data = os.urandom(1000)
    with pytest.raises(ClientError) as e:
        if writer == "put":
            s3.put_object(Bucket="bkt", Key=first, Body=data)
            s3.put_object(Bucket="bkt", Key=second, Body=b"second")
        elif writer == "copy":
            s3.put_object(Bucket="bkt", Key="src", Body=b"second")
            s3.put_object(Bucket="bkt", Key=first, Body=data)
            s3.copy_object(Bucket="bkt", Key=second, CopySource={"Bucket": "bkt", "Key": "src"})
        else:
            _complete_as_second_writer(s3, first, second, data)
    assert status_of(e) == 409 and code_of(e) == "InvalidRequest"
    assert s3.get_object(Bucket="bkt", Key=first)["Body"].read() == data
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="bkt", Key=second)
    assert status_of(e) == 404
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]]
    assert first in keys and second not in keys


# -- keys no path can hold ---------------------------------------------------------------------

def test_a_key_over_1024_bytes_is_key_too_long_and_1024_bytes_is_accepted(s3) -> None:
    """A key of 1025 UTF-8 bytes in short segments is refused with KeyTooLongError
    and nothing is stored; one of exactly 1024 bytes is stored and read back."""
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="kept", Body=b"kept")
    fits = "abcdefg/" * 127 + "wxyzwxyz"  # 1016 + 8 = 1024 bytes, segments of 7 or 8
    assert len(fits.encode()) == 1024
    too_long = "é" + fits[1:]               # one byte more: "é" is two bytes in UTF-8
    assert len(too_long.encode()) == 1025
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="bkt", Key=too_long, Body=b"x")
    assert code_of(e) == "KeyTooLongError" and status_of(e) == 400
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["kept"]
    s3.put_object(Bucket="bkt", Key=fits, Body=b"at the limit")
    assert s3.get_object(Bucket="bkt", Key=fits)["Body"].read() == b"at the limit"


def test_a_key_with_nul_is_invalid_argument_and_nothing_is_stored(s3) -> None:
    """botocore sends "\\x00" in a key as %00 in the path: the gateway answers 400
    InvalidArgument naming the NUL, and stores nothing (no "a" either)."""
    s3.create_bucket(Bucket="bkt")
    for key in ("a\x00b", "dir/\x00", "\x00"):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="bkt", Key=key, Body=b"x")
        assert code_of(e) == "InvalidArgument" and status_of(e) == 400
        assert "NUL" in e.value.response["Error"]["Message"]
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0


# -- conditional reads by date, and on HEAD -------------------------------------------------

def test_conditional_get_and_head_by_date_and_etag_follow_rfc_7232(s3) -> None:
    """If-Modified-Since at Last-Modified gives 304, before it 200; If-Unmodified-Since
    before Last-Modified gives 412, at it 200; the same on HEAD, where If-None-Match
    with the ETag gives 304 and a wrong If-Match 412. An If-None-Match that does not
    match overrides If-Modified-Since, and a matching If-Match overrides
    If-Unmodified-Since (RFC 7232 section 6, as S3 documents)."""
    import datetime as dt
    s3.create_bucket(Bucket="bkt")
    etag = s3.put_object(Bucket="bkt", Key="k", Body=b"dated")["ETag"]
    modified = s3.head_object(Bucket="bkt", Key="k")["LastModified"]
    before = modified - dt.timedelta(days=1)
    for call in (s3.get_object, s3.head_object):
        name = call.__name__
        with pytest.raises(ClientError) as e:
            call(Bucket="bkt", Key="k", IfModifiedSince=modified)
        assert status_of(e) == 304, name
        assert call(Bucket="bkt", Key="k", IfModifiedSince=before)["ResponseMetadata"]["HTTPStatusCode"] == 200
        with pytest.raises(ClientError) as e:
            call(Bucket="bkt", Key="k", IfUnmodifiedSince=before)
        assert status_of(e) == 412, name
        assert call(Bucket="bkt", Key="k", IfUnmodifiedSince=modified)["ResponseMetadata"]["HTTPStatusCode"] == 200
        # Precedence: the ETag conditions decide when both kinds are sent.
        r = call(Bucket="bkt", Key="k", IfNoneMatch='"other"', IfModifiedSince=modified)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200, name
        r = call(Bucket="bkt", Key="k", IfMatch=etag, IfUnmodifiedSince=before)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200, name
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="bkt", Key="k", IfNoneMatch=etag)
    assert status_of(e) == 304
    assert s3.head_object(Bucket="bkt", Key="k", IfNoneMatch='"other"')["ContentLength"] == 5
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="bkt", Key="k", IfMatch='"0000"')
    assert status_of(e) == 412
    assert s3.get_object(Bucket="bkt", Key="k", IfMatch=etag)["Body"].read() == b"dated"


# -- listing and deleting at the 1000-key limits ----------------------------------------------

def test_list_objects_v1_gives_next_marker_only_with_a_delimiter(s3) -> None:
    """A truncated v1 listing without a delimiter carries no NextMarker (the client
    pages from the last key, as on S3); with a delimiter it does."""
    s3.create_bucket(Bucket="bkt")
    for k in ("a", "b/x", "c"):
        s3.put_object(Bucket="bkt", Key=k, Body=b"x")
    r = s3.list_objects(Bucket="bkt", MaxKeys=1)
    assert r["IsTruncated"] and [o["Key"] for o in r["Contents"]] == ["a"]
    assert "NextMarker" not in r
    r = s3.list_objects(Bucket="bkt", MaxKeys=2, Delimiter="/")
    assert r["IsTruncated"] and r["NextMarker"] == "b/"
    assert [o["Key"] for o in r["Contents"]] == ["a"] and r["CommonPrefixes"] == [{"Prefix": "b/"}]


def test_max_keys_above_1000_is_capped_and_1000_keys_delete_in_one_request(gateway: Gateway) -> None:
    """With 1001 keys, max-keys 5000 lists 1000 (MaxKeys says 1000, the page is
    truncated) in v1 and v2; the next page holds the last key. DeleteObjects with
    exactly 1000 keys (quiet) deletes them all."""
    from concurrent.futures import ThreadPoolExecutor
    s3 = client_for(gateway, max_pool_connections=8)
    s3.create_bucket(Bucket="bkt")
    keys = [f"k{i:04d}" for i in range(1001)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="bkt", Key=k, Body=b""), keys))
    v1 = s3.list_objects(Bucket="bkt", MaxKeys=5000)
    assert v1["MaxKeys"] == 1000 and v1["IsTruncated"] is True
    assert [o["Key"] for o in v1["Contents"]] == keys[:1000]
    v2 = s3.list_objects_v2(Bucket="bkt", MaxKeys=5000)
    assert v2["MaxKeys"] == 1000 and v2["KeyCount"] == 1000 and v2["IsTruncated"] is True
    rest = s3.list_objects_v2(Bucket="bkt", MaxKeys=5000, ContinuationToken=v2["NextContinuationToken"])
    assert [o["Key"] for o in rest["Contents"]] == keys[1000:] and rest["IsTruncated"] is False
    r = s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": k} for k in keys[:1000]], "Quiet": True})
    assert r.get("Errors", []) == [] and r.get("Deleted", []) == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == keys[1000:]


# -- conditional copies ---------------------------------------------------------------------

def test_copy_object_source_conditions_refuse_with_412_and_pass_when_they_hold(s3) -> None:
    """x-amz-copy-source-if-none-match (matching), -if-modified-since (at Last-Modified)
    and -if-unmodified-since (before it) each refuse the copy with 412 and write
    nothing; the opposite values copy. A matching if-match overrides a failing
    if-unmodified-since, as S3 documents."""
    import datetime as dt
    s3.create_bucket(Bucket="bkt")
    etag = s3.put_object(Bucket="bkt", Key="src", Body=b"copied")["ETag"]
    modified = s3.head_object(Bucket="bkt", Key="src")["LastModified"]
    before = modified - dt.timedelta(days=1)
    src = {"Bucket": "bkt", "Key": "src"}
    failing = [{"CopySourceIfNoneMatch": etag}, {"CopySourceIfModifiedSince": modified},
               {"CopySourceIfUnmodifiedSince": before}, {"CopySourceIfMatch": '"0000"'}]
    for cond in failing:
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket="bkt", Key="refused", CopySource=src, **cond)
        assert status_of(e) == 412 and code_of(e) == "PreconditionFailed", cond
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["src"]
    passing = [{"CopySourceIfNoneMatch": '"other"'}, {"CopySourceIfModifiedSince": before},
               {"CopySourceIfUnmodifiedSince": modified}, {"CopySourceIfMatch": etag},
               {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": before}]
    for i, cond in enumerate(passing):
        r = s3.copy_object(Bucket="bkt", Key=f"dst{i}", CopySource=src, **cond)
        assert r["CopyObjectResult"]["ETag"] == etag, cond
        assert s3.get_object(Bucket="bkt", Key=f"dst{i}")["Body"].read() == b"copied"


def test_upload_part_copy_with_a_failing_source_condition_or_a_range_past_the_end_adds_no_part(s3) -> None:
    """UploadPartCopy with a wrong CopySourceIfMatch is 412; with a range reaching past
    the source's end it is refused. Neither adds a part, and the upload still completes
    from a good part."""
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="src", Body=b"0123456789")
    src = {"Bucket": "bkt", "Key": "src"}
    uid = s3.create_multipart_upload(Bucket="bkt", Key="dst")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket="bkt", Key="dst", UploadId=uid, PartNumber=1, CopySource=src,
                            CopySourceIfMatch='"0000"')
    assert status_of(e) == 412 and code_of(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket="bkt", Key="dst", UploadId=uid, PartNumber=1, CopySource=src,
                            CopySourceRange="bytes=5-10")  # byte 10 does not exist
    assert status_of(e) == 400 and code_of(e) == "InvalidArgument"
    assert s3.list_parts(Bucket="bkt", Key="dst", UploadId=uid).get("Parts", []) == []
    r = s3.upload_part_copy(Bucket="bkt", Key="dst", UploadId=uid, PartNumber=1, CopySource=src,
                            CopySourceRange="bytes=5-9")
    s3.complete_multipart_upload(Bucket="bkt", Key="dst", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket="bkt", Key="dst")["Body"].read() == b"56789"


def test_upload_part_copy_past_the_source_end_is_invalid_argument_as_on_aws(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="src", Body=b"0123456789")
    uid = s3.create_multipart_upload(Bucket="bkt", Key="dst")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket="bkt", Key="dst", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": "bkt", "Key": "src"}, CopySourceRange="bytes=0-10")
    assert status_of(e) == 400 and code_of(e) == "InvalidArgument"


def test_boto3_with_virtual_host_addressing_against_a_domain(vhost_gateway: Gateway) -> None:
    """boto3 configured with addressing_style="virtual" (the bucket in the Host name, never
    in the path) against `serve --domain`: bucket creation, PUT, GET, a delimited v2
    listing, a 4-part multipart upload and deletes all reach the bucket named by the Host."""
    gw = vhost_gateway
    s3 = boto3.client(
        "s3", endpoint_url=vhost_endpoint(gw), region_name="us-east-1",
        aws_access_key_id=gw.access_key, aws_secret_access_key=gw.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"},
                      retries={"max_attempts": 1}))
    sent: list[str] = []
    s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))

    s3.create_bucket(Bucket="vbkt")
    assert sent[-1].startswith(f"http://vbkt.s3.test:{gw.s3_port}/"), sent[-1]
    data = os.urandom(100_000)
    put = s3.put_object(Bucket="vbkt", Key="dir/a.bin", Body=data, Metadata={"k": "v"})
    assert sent[-1] == f"http://vbkt.s3.test:{gw.s3_port}/dir/a.bin", sent[-1]
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket="vbkt", Key="dir/a.bin")
    assert got["Body"].read() == data and got["Metadata"] == {"k": "v"}
    for key in ("dir/b.txt", "dir/sub/c.txt", "top.txt"):
        s3.put_object(Bucket="vbkt", Key=key, Body=key.encode())

    listed = s3.list_objects_v2(Bucket="vbkt", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["top.txt"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/"]
    listed = s3.list_objects_v2(Bucket="vbkt", Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a.bin", "dir/b.txt"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/sub/"]
    assert sent[-1].startswith(f"http://vbkt.s3.test:{gw.s3_port}/?"), sent[-1]

    parts = [os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(4321)]
    uid = s3.create_multipart_upload(Bucket="vbkt", Key="mp/obj")["UploadId"]
    etags = [s3.upload_part(Bucket="vbkt", Key="mp/obj", UploadId=uid, PartNumber=n, Body=p)["ETag"]
             for n, p in enumerate(parts, 1)]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="vbkt", Key="mp/obj", UploadId=uid)["Parts"]] \
        == [1, 2, 3, 4]
    done = s3.complete_multipart_upload(Bucket="vbkt", Key="mp/obj", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-4"
    assert done["ETag"] == f'"{want}"'
    assert s3.get_object(Bucket="vbkt", Key="mp/obj")["Body"].read() == b"".join(parts)

    # Path style still works on the same gateway, and sees the same objects.
    path_style = client_for(gw)
    assert path_style.get_object(Bucket="vbkt", Key="mp/obj")["ContentLength"] == 15 * (1 << 20) + 4321

    s3.delete_objects(Bucket="vbkt", Delete={"Objects": [{"Key": k} for k in (
        "dir/a.bin", "dir/b.txt", "dir/sub/c.txt", "top.txt")]})
    s3.delete_object(Bucket="vbkt", Key="mp/obj")
    assert s3.list_objects_v2(Bucket="vbkt")["KeyCount"] == 0
    s3.delete_bucket(Bucket="vbkt")
    assert sent[-1] == f"http://vbkt.s3.test:{gw.s3_port}/", sent[-1]
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == []
    # No request named the bucket in its path: every one was addressed by its Host.
    assert not [u for u in sent if urlsplit(u).path.startswith("/vbkt")]
