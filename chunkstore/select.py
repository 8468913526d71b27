"""Which chunk backend a data folder uses: parsed from the command line, recorded in the
data folder on first start, and refused when a later start names a different one.

A data folder's metadata points at chunks by id only; opened against another backend it
would read "missing" for every file (or, worse, collect the other backend's chunks as
orphans). So the backend's identity (kind, bucket, prefix) is written to
DATA/chunk-backend.json once and checked at every start. The endpoint, region and
credentials are how to reach the store, not which store it is: they may change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .base import ChunkStore
from .local import LocalChunkStore

RECORD = "chunk-backend.json"
DEFAULT_CACHE_SIZE = 8 << 30


class BackendMismatch(ValueError):
    """The data folder was made with another chunk backend."""


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """`--chunks local` or `--chunks s3://BUCKET/PREFIX` and how to reach it."""

    url: str = "local"
    endpoint: str | None = None
    region: str = "us-east-1"
    addressing: str = "path"
    cache_size: int = DEFAULT_CACHE_SIZE
    deadline: float = 30.0  # seconds per backend request, retries included

    @property
    def kind(self) -> str:
        return "local" if self.url == "local" else "s3"

    def identity(self) -> dict[str, str]:
        if self.kind == "local":
            return {"backend": "local"}
        from .s3 import S3Location
        loc = S3Location.from_url(self.url)
        return {"backend": "s3", "bucket": loc.bucket, "prefix": loc.prefix}

    def validate(self) -> None:
        if self.url != "local" and not self.url.startswith("s3://"):
            raise ValueError(f"--chunks {self.url!r}: expected 'local' or s3://BUCKET/PREFIX")
        if self.addressing not in ("path", "virtual"):
            raise ValueError(f"--chunks-addressing {self.addressing!r}: expected path or virtual")
        if not self.deadline > 0:
            raise ValueError("--chunks-deadline must be positive")
        if self.cache_size < 0:
            raise ValueError("--cache-size must not be negative")
        self.identity()


def _describe(ident: dict[str, str]) -> str:
    if ident.get("backend") == "s3":
        return f"s3://{ident.get('bucket')}/{ident.get('prefix', '')}"
    return str(ident.get("backend"))


def _read_record(data_dir: Path) -> dict[str, str] | None:
    try:
        return json.loads((Path(data_dir) / RECORD).read_text())
    except FileNotFoundError:
        # A folder from before this record existed already holds metadata: it used local.
        if (Path(data_dir) / "meta").exists() and (Path(data_dir) / "chunks").exists():
            return {"backend": "local"}
        return None


def record_or_check(data_dir: Path, spec: BackendSpec | None) -> BackendSpec:
    """The backend to open: spec, recorded in a new data folder and refused when it is
    not the recorded one; or, when spec is None, the recorded one (local if none)."""
    path = Path(data_dir) / RECORD
    have = _read_record(data_dir)
    if spec is None:
        if have is None or have.get("backend") == "local":
            spec = BackendSpec()
        else:
            spec = BackendSpec(url=_describe(have), endpoint=have.get("endpoint") or None,
                               region=have.get("region", "us-east-1"),
                               addressing=have.get("addressing", "path"))
    want = spec.identity()
    if have is not None and {k: have.get(k) for k in want} != want:
        raise BackendMismatch(
            f"data folder {data_dir} keeps its chunks in {_describe(have)}, not in "
            f"{_describe(want)}: start with --chunks {_describe(have)} (a data folder's "
            f"metadata only makes sense with the chunks it was written with)")
    # How to reach the store is kept too (endpoint, region: they may change), so that
    # admin commands without --chunks find it.
    record = {**want, **({"endpoint": spec.endpoint or "", "region": spec.region,
                          "addressing": spec.addressing} if spec.kind == "s3" else {})}
    if have != record:
        tmp = path.with_name(f".{RECORD}.tmp")
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, path)
    return spec


def open_store(data_dir: Path, spec: BackendSpec | None) -> ChunkStore:
    """The chunk store spec names (None: the one the data folder records), after
    checking it against the data folder's record."""
    if spec is not None:
        spec.validate()
    data_dir = Path(data_dir)
    spec = record_or_check(data_dir, spec)
    if spec.kind == "local":
        return LocalChunkStore(data_dir / "chunks")
    from .cache import CachedChunkStore
    from .s3 import RetryPolicy, S3ChunkStore, S3Location
    loc = S3Location.from_url(spec.url, endpoint=spec.endpoint or None, region=spec.region,
                              addressing=spec.addressing)
    policy = RetryPolicy(deadline=spec.deadline, read_timeout=min(15.0, spec.deadline),
                         connect_timeout=min(5.0, spec.deadline))
    return CachedChunkStore(S3ChunkStore(loc, policy=policy), data_dir / "cache",
                            spec.cache_size)
