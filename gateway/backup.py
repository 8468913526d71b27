"""`samebytes backup` / `samebytes restore`: a consistent copy of a data folder's
metadata, kept in a directory or an S3 bucket, and a data folder rebuilt from it.

A backup is one tar object named by its UTC time (``samebytes-backup-<time>.tar``):

- ``meta/data.mdb``: a compacted copy of the LMDB environment, taken in one read
  transaction while the gateway keeps serving (LMDB's own copy: consistent, no lock);
- the data folder's small files (credentials, NFS handle key, chunk-backend record);
- with the ``local`` chunk backend, the chunk files too (they live nowhere else); with
  the ``s3`` backend, no chunks: they stay in their bucket, and the backup goes beside
  them (``backups/``) unless ``--to`` says otherwise;
- ``manifest.json``: every file with its size and SHA-256, checked on restore.

What a restore can lose: writes committed after the backup was taken. Their chunks (on
the s3 backend) are then referenced by no metadata and ``samebytes gc`` removes them
once they are older than its grace period.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

PREFIX = "samebytes-backup-"
SUFFIX = ".tar"
_NAME = re.compile(re.escape(PREFIX) + r"(\d{8}T\d{12}Z)" + re.escape(SUFFIX) + "$")
MANIFEST = "manifest.json"
FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot proceed; the message says why."""


# -- pure: names, retention, manifest ----------------------------------------------------------


def backup_name(now: datetime) -> str:
    """Names sort by time (microseconds: two backups in one second stay distinct)."""
    return f"{PREFIX}{now.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}Z{SUFFIX}"


def is_backup_name(name: str) -> bool:
    return _NAME.search(name) is not None


def expired(names: list[str], keep: int) -> list[str]:
    """The backups beyond the newest `keep`, oldest first."""
    ours = sorted(n for n in names if is_backup_name(n))
    return ours[:-keep] if keep > 0 else ours


def newest(names: list[str]) -> str | None:
    ours = sorted(n for n in names if is_backup_name(n))
    return ours[-1] if ours else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# -- where backups live ------------------------------------------------------------------------


class Target(Protocol):
    async def names(self) -> list[str]: ...
    async def put(self, name: str, path: Path) -> None: ...
    async def get(self, name: str, path: Path) -> None: ...
    async def delete(self, name: str) -> None: ...


@dataclass
class DirTarget:
    root: Path

    async def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []

    async def put(self, name: str, path: Path) -> None:
        def copy() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{name}.tmp"
            shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.root / name)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        await asyncio.to_thread(copy)

    async def get(self, name: str, path: Path) -> None:
        await asyncio.to_thread(shutil.copyfile, self.root / name, path)

    async def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


@dataclass
class S3Target:
    """A bucket and prefix on any S3 server (AWS, MinIO, another samebytes)."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str = "us-east-1"

    @classmethod
    def from_url(cls, url: str, endpoint: str | None, region: str) -> S3Target:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise BackupError(f"{url!r}: expected s3://BUCKET[/PREFIX]")
        prefix = prefix.strip("/")
        return cls(bucket, prefix + "/" if prefix else "", endpoint, region)

    def _client(self) -> Any:
        from aiobotocore.session import get_session
        from botocore.config import Config
        key = os.environ.get("SAMEBYTES_BACKUP_ACCESS_KEY") or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("SAMEBYTES_BACKUP_SECRET_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY")
        return get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name=self.region, aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}))

    async def names(self) -> list[str]:
        out: list[str] = []
        async with self._client() as s3:
            async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                           Prefix=self.prefix):
                out += [o["Key"][len(self.prefix):] for o in page.get("Contents", [])]
        return out

    async def put(self, name: str, path: Path) -> None:
        async with self._client() as s3:
            with open(path, "rb") as f:
                await s3.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=f)

    async def get(self, name: str, path: Path) -> None:
        async with self._client() as s3:
            resp = await s3.get_object(Bucket=self.bucket, Key=self.prefix + name)
            with open(path, "wb") as f:
                async with resp["Body"] as body:
                    while block := await body.read(1 << 20):
                        f.write(block)

    async def delete(self, name: str) -> None:
        async with self._client() as s3:
            await s3.delete_object(Bucket=self.bucket, Key=self.prefix + name)


def target_for(where: str, *, endpoint: str | None = None, region: str = "us-east-1") -> Target:
    if where.startswith("s3://"):
        return S3Target.from_url(where, endpoint, region)
    return DirTarget(Path(where))


def default_target(data: Path) -> str | None:
    """Beside the chunks when they are in a bucket (``backups/`` under their prefix)."""
    record = data / "chunk-backend.json"
    if record.exists():
        rec = json.loads(record.read_text())
        if rec.get("backend") == "s3":
            prefix = rec.get("prefix", "").strip("/")
            return f"s3://{rec['bucket']}/{prefix + '/' if prefix else ''}backups"
    return None


# -- backup ------------------------------------------------------------------------------------


def _chunks_are_local(data: Path) -> bool:
    record = data / "chunk-backend.json"
    return not record.exists() or json.loads(record.read_text()).get("backend", "local") == "local"


def _build(data: Path, env_copy: Any, work: Path) -> tuple[Path, dict[str, Any]]:
    """Write the backup tar in `work`; returns it and its manifest."""
    stage = work / "stage"
    (stage / "meta").mkdir(parents=True)
    env_copy(str(stage / "meta"))  # LMDB copy with compaction: one consistent snapshot
    files: dict[str, dict[str, Any]] = {}
    for p in sorted(data.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            shutil.copy2(p, stage / p.name)
    members = [stage / "meta" / "data.mdb"] + sorted(p for p in stage.iterdir() if p.is_file())
    chunk_files: list[Path] = []
    if _chunks_are_local(data) and (data / "chunks").is_dir():
        chunk_files = sorted(p for p in (data / "chunks").rglob("*")
                             if p.is_file() and not p.name.startswith("."))
    tar_path = work / "backup.tar"
    with tarfile.open(tar_path, "w") as tar:
        for p in members:
            rel = p.relative_to(stage).as_posix()
            files[rel] = {"size": p.stat().st_size, "sha256": _sha256(p)}
            tar.add(p, arcname=rel)
        for p in chunk_files:
            rel = p.relative_to(data).as_posix()
            # Chunks are immutable once named: what we read is what the metadata means.
            files[rel] = {"size": p.stat().st_size, "sha256": _sha256(p)}
            tar.add(p, arcname=rel)
        manifest = {"format": FORMAT, "created": datetime.now(timezone.utc).isoformat(),
                    "chunks_included": _chunks_are_local(data), "files": files}
        raw = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    return tar_path, manifest


def _copy_env(meta: Path, dest: str) -> None:
    """LMDB's own copy of the live environment, compacted: one read transaction, so it is
    a consistent snapshot while the gateway keeps writing (readers never block writers)."""
    import lmdb
    env = lmdb.open(str(meta), readonly=True, lock=True, max_dbs=64, readahead=False)
    try:
        env.copy(dest, compact=True)
    finally:
        env.close()


async def backup(data: Path, target: Target, *, keep: int = 7) -> dict[str, Any]:
    """Take a backup of a (possibly serving) data folder; keep the newest `keep`."""
    if not (data / "meta" / "data.mdb").is_file():
        raise BackupError(f"{data} is not a samebytes data folder (no meta/data.mdb)")
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=data.parent) as tmp:
        tar_path, manifest = await asyncio.to_thread(
            _build, data, lambda dest: _copy_env(data / "meta", dest), Path(tmp))
        name = backup_name(datetime.now(timezone.utc))
        await target.put(name, tar_path)
        size = tar_path.stat().st_size
    removed = expired(await target.names(), keep)
    for old in removed:
        await target.delete(old)
    return {"backup": name, "bytes": size, "files": len(manifest["files"]),
            "chunks_included": manifest["chunks_included"], "removed": removed}


# -- restore -----------------------------------------------------------------------------------


async def restore(data: Path, target: Target, name: str | None = None) -> dict[str, Any]:
    """Rebuild a data folder (which must be absent or empty) from a backup."""
    if data.exists() and any(data.iterdir()):
        raise BackupError(f"{data} is not empty: restore only into a new data folder")
    names = await target.names()
    chosen = name or newest(names)
    if chosen is None or chosen not in names:
        raise BackupError(f"no backup {'named ' + name if name else 'found'} at the source")
    data.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".restore-", dir=data))
    try:
        tar_path = work / "backup.tar"
        await target.get(chosen, tar_path)

        def unpack() -> dict[str, Any]:
            with tarfile.open(tar_path) as tar:
                tar.extractall(work / "out", filter="data")  # no absolute paths, no escapes
            manifest = json.loads((work / "out" / MANIFEST).read_text())
            if manifest.get("format") != FORMAT:
                raise BackupError(f"{chosen}: unknown backup format {manifest.get('format')}")
            for rel, want in manifest["files"].items():
                p = work / "out" / rel
                if not p.is_file() or p.stat().st_size != want["size"] or _sha256(p) != want["sha256"]:
                    raise BackupError(f"{chosen}: {rel} does not match its manifest (damaged backup)")
            for rel in manifest["files"]:
                dest = data / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(work / "out" / rel, dest)
            return manifest
        manifest = await asyncio.to_thread(unpack)
    except BaseException:
        # The folder was empty: leave it empty rather than half restored.
        for p in list(data.iterdir()):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"restored": chosen, "files": len(manifest["files"]),
            "chunks_included": manifest["chunks_included"], "created": manifest["created"]}
