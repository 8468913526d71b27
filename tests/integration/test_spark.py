"""Apache Spark's S3A connector (hadoop-aws and the AWS Java SDK) against the S3 door, with
the FUSE mount of the same namespace beside it.

Spark is the client the project exists for, and the one that leans hardest on S3's
semantics: its job committer writes under `_temporary/`, renames by CopyObject +
DeleteObjects, probes directories with HEAD and delimited listings, and uploads big files
in multipart. The jars come from PyPI: AWS's `sagemaker_pyspark` wheel carries
hadoop-aws 3.3.1 and the AWS SDK bundle beside pyspark 3.3.0 (Maven Central, the usual
source, is out of reach of these machines); Java is Debian's openjdk-17 (`make deps`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, Gateway, mounted_gateway
from tests.integration.conftest import client_for

BUCKET = "spark"


def _need_spark() -> None:
    missing = []
    if shutil.which("java") is None:
        missing.append("`java` (apt-get install openjdk-17-jre-headless)")
    try:
        import pyspark  # noqa: F401
        import sagemaker_pyspark  # noqa: F401
    except ImportError as e:
        missing.append(f"{e.name} (pip install -e '.[test]')")
    if not missing:
        return
    reason = "Spark tests need " + " and ".join(missing)
    if IN_CI:
        raise RuntimeError(reason + ": make test installs them")
    pytest.skip(reason, allow_module_level=True)


_need_spark()
if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None or os.geteuid() != 0:
    if IN_CI:
        raise RuntimeError("CI must run the Spark tests: /dev/fuse, fusermount3 and root needed")
    pytest.skip("the Spark tests read back through a FUSE mount: /dev/fuse and root needed",
                allow_module_level=True)

import sagemaker_pyspark  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402


@pytest.fixture(scope="module")
def door() -> Iterator[tuple[Gateway, Path]]:
    base = Path(tempfile.mkdtemp(prefix="samebytes-spark-"))
    mnt = base / "mnt"
    mnt.mkdir()
    try:
        with mounted_gateway(base / "data", mnt) as gw:
            client_for(gw).create_bucket(Bucket=BUCKET)
            yield gw, mnt
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def spark(door: tuple[Gateway, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    gw, _ = door
    # Found beside the package (its classpath_jars() needs pkg_resources, gone from new
    # setuptools).
    jars = [str(j) for j in sorted((Path(sagemaker_pyspark.__file__).parent / "jars").glob("*.jar"))
            if j.name.startswith(("hadoop-aws-", "aws-java-sdk-bundle-"))]
    assert len(jars) == 2, f"hadoop-aws and the AWS SDK bundle expected in {jars}"
    s3a = {
        "endpoint": gw.endpoint,
        "access.key": gw.access_key,
        "secret.key": gw.secret_key,
        "path.style.access": "true",
        "connection.ssl.enabled": "false",
        # Retries would hide a failing door behind a slow success.
        "attempts.maximum": "1",
        "retry.limit": "1",
        # Files above 5 MiB go multipart, in 5 MiB parts (the S3 minimum).
        "multipart.threshold": str(5 << 20),
        "multipart.size": str(5 << 20),
        "fast.upload": "true",
    }
    builder = (SparkSession.builder.master("local[2]").appName("samebytes-s3a")
               .config("spark.jars", ",".join(jars))
               .config("spark.ui.enabled", "false")
               .config("spark.local.dir", str(tmp_path_factory.mktemp("spark-local")))
               .config("spark.sql.shuffle.partitions", "2"))
    for k, v in s3a.items():
        builder = builder.config(f"spark.hadoop.fs.s3a.{k}", v)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def _keys(s3, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


def test_spark_parquet_dataset_commits_and_reads_back_through_s3_and_the_mount(
        spark: SparkSession, door: tuple[Gateway, Path]) -> None:
    import pyarrow.parquet as pq

    gw, mnt = door
    s3 = client_for(gw)
    df = spark.range(0, 200_000).selectExpr("id", "id * 3 AS triple", "CAST(id % 97 AS STRING) AS tag")
    df.repartition(3).write.mode("overwrite").parquet(f"s3a://{BUCKET}/ds/")

    keys = _keys(s3, "ds/")
    parts = [k for k in keys if k.endswith(".parquet")]
    # The committer renamed every task file into place and cleaned its scratch space.
    assert "ds/_SUCCESS" in keys and len(parts) == 3, keys
    assert not [k for k in keys if "_temporary" in k], keys

    back = spark.read.parquet(f"s3a://{BUCKET}/ds/")
    row = back.selectExpr("count(*) AS n", "sum(triple) AS t", "count(DISTINCT tag) AS d").collect()[0]
    assert (row.n, row.t, row.d) == (200_000, 3 * (200_000 * 199_999 // 2), 97)

    # The same files, read as plain files on the mount, hold the same rows.
    total = 0
    for k in parts:
        on_mount = (mnt / BUCKET / k).read_bytes()
        assert on_mount == s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()
        total += pq.read_table(mnt / BUCKET / k).num_rows
    assert total == 200_000


def test_spark_overwrite_replaces_and_append_adds(spark: SparkSession, door: tuple[Gateway, Path]) -> None:
    gw, _ = door
    s3 = client_for(gw)
    path = f"s3a://{BUCKET}/modes/"
    spark.range(0, 10).write.mode("overwrite").parquet(path)
    spark.range(100, 105).write.mode("overwrite").parquet(path)
    assert sorted(r.id for r in spark.read.parquet(path).collect()) == list(range(100, 105))
    spark.range(200, 203).write.mode("append").parquet(path)
    assert sorted(r.id for r in spark.read.parquet(path).collect()) == [*range(100, 105), *range(200, 203)]
    with pytest.raises(Exception, match="already exists"):
        spark.range(0, 1).write.mode("errorifexists").parquet(path)
    assert not [k for k in _keys(s3, "modes/") if "_temporary" in k]


def test_spark_partitioned_write_lists_as_directories_on_the_mount(
        spark: SparkSession, door: tuple[Gateway, Path]) -> None:
    _, mnt = door
    df = spark.range(0, 1000).selectExpr("id", "CAST(id % 4 AS INT) AS bucket")
    df.write.mode("overwrite").partitionBy("bucket").parquet(f"s3a://{BUCKET}/parted/")
    dirs = sorted(p.name for p in (mnt / BUCKET / "parted").iterdir() if p.is_dir())
    assert dirs == [f"bucket={i}" for i in range(4)]
    back = spark.read.parquet(f"s3a://{BUCKET}/parted/").where("bucket = 3")
    assert sorted(r.id for r in back.select("id").collect()) == list(range(3, 1000, 4))


def test_spark_reads_csv_written_by_boto3_and_by_the_mount(
        spark: SparkSession, door: tuple[Gateway, Path]) -> None:
    gw, mnt = door
    s3 = client_for(gw)
    s3.put_object(Bucket=BUCKET, Key="csv/a.csv", Body=b"k,v\n1,10\n2,20\n")
    folder = mnt / BUCKET / "csv"
    folder.mkdir(exist_ok=True)
    (folder / "b.csv").write_bytes(b"k,v\n3,30\n4,40\n5,50\n")
    rows = spark.read.option("header", "true").csv(f"s3a://{BUCKET}/csv/").collect()
    assert sorted((int(r.k), int(r.v)) for r in rows) == [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]


def test_spark_multipart_upload_of_a_large_text_file(spark: SparkSession, door: tuple[Gateway, Path]) -> None:
    """One ~18 MB output file: s3a's block uploader sends it as a multipart upload."""
    gw, mnt = door
    s3 = client_for(gw)
    n = 250_000  # lines of "<id>,<sha256 of id>": ~18 MB, made in the JVM
    df = spark.range(0, n).selectExpr(
        "concat(CAST(id AS STRING), ',', sha2(CAST(id AS STRING), 256)) AS value").coalesce(1)
    df.write.mode("overwrite").text(f"s3a://{BUCKET}/big/")
    [key] = [k for k in _keys(s3, "big/") if k.endswith(".txt")]
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] > 12 << 20
    assert head["ETag"].strip('"').endswith(f"-{-(-head['ContentLength'] // (5 << 20))}"), head["ETag"]
    want = "".join(f"{i},{hashlib.sha256(str(i).encode()).hexdigest()}\n" for i in range(n)).encode()
    got = (mnt / BUCKET / key).read_bytes()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(want).hexdigest()
