"""Uploading a dataset folder to S3 (``--s3 s3://BUCKET/PREFIX``).

- boto3's S3 client with botocore's ``standard`` retry mode (exponential
  back-off with jitter on throttling, 5xx and connection errors), shared by a
  pool of threads (boto3 clients are thread-safe).
- What is already there is listed once (``ListObjectsV2`` under the prefix); a
  file is skipped when an object with its key has the same size and, for a
  single-part upload, an ETag equal to the file's MD5 (or, where the ETag is
  no MD5: multipart or SSE-KMS, ``x-amz-meta-md5``, which every upload sets). So a
  second upload of the same folder sends nothing.
- Every PUT carries ``Content-MD5``: S3 refuses a body damaged on the way.
- Images go first, manifests last, so a manifest in the bucket never names an
  image that is not there yet.
- The endpoint is AWS unless ``endpoint_url`` (``--s3-endpoint``) or the
  ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` environment variables (which
  botocore reads itself) name another S3 API: MinIO, Ceph, moto's server.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from conveyor_qc.dataset.manifest import ManifestEntry
from conveyor_qc.errors import ConveyorQCError

__all__ = [
    "S3Error",
    "UploadResult",
    "dataset_files",
    "parse_s3_url",
    "s3_client",
    "s3_entries",
    "upload_dataset",
    "upload_files",
]

MAX_SINGLE_PUT = 5 * 1024**3  # S3's limit for one PUT
CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".manifest": "application/x-ndjson",
    ".json": "application/json",
}


class S3Error(ConveyorQCError, ValueError):
    """An upload cannot be done; the message says what and where."""


@dataclass
class UploadResult:
    url: str
    uploaded: int
    skipped: int
    bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``) (prefix without slashes at its ends)."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise S3Error(f"--s3 must look like s3://BUCKET/PREFIX, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise S3Error(f"--s3 {url}: no bucket name")
    return bucket, prefix.strip("/")


def _key(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def s3_entries(entries: list[ManifestEntry], url: str) -> list[ManifestEntry]:
    """The same manifest lines with each relative source-ref as its s3:// URL under ``url``."""
    bucket, prefix = parse_s3_url(url)
    out = []
    for e in entries:
        ref = e.source_ref if e.source_ref.startswith("s3://") else f"s3://{bucket}/{_key(prefix, e.source_ref)}"
        out.append(e.at(ref))
    return out


def s3_client(endpoint_url: str | None = None, *, workers: int = 8, max_attempts: int = 8):
    """A boto3 S3 client with standard retries and a connection pool for ``workers`` threads."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max(10, workers * 2),
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


def _explain(exc: Exception, bucket: str, what: str) -> S3Error:
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return S3Error("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    if isinstance(exc, NoRegionError):
        return S3Error("no AWS region: set AWS_DEFAULT_REGION")
    if isinstance(exc, EndpointConnectionError):
        return S3Error(f"cannot reach the S3 endpoint: {exc}")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "?")
        if code in ("NoSuchBucket", "404") and what == "list":
            return S3Error(f"bucket {bucket} does not exist")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return S3Error(f"access denied to bucket {bucket} ({code}) while trying to {what}")
        return S3Error(f"S3 refused to {what}: {code}: {err.get('Message', '')}".rstrip(": "))
    return S3Error(f"S3 {what} failed: {exc}")


def _md5(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def _existing(client, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """{key: (size, etag without quotes)} of every object under ``prefix``."""
    out = {}
    kwargs = {"Bucket": bucket, "Prefix": f"{prefix}/" if prefix else ""}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
            for o in page.get("Contents", []):
                out[o["Key"]] = (int(o["Size"]), o.get("ETag", "").strip('"'))
    except Exception as exc:  # noqa: BLE001  (botocore's errors, explained)
        raise _explain(exc, bucket, "list") from None
    return out


def upload_files(
    files: list[tuple[Path, str]],
    bucket: str,
    *,
    client=None,
    prefix: str = "",
    workers: int = 8,
    progress: Callable[[int, int, str], None] | None = None,
    url: str = "",
) -> UploadResult:
    """Upload each ``(local path, key)`` (keys under ``prefix``), skipping the unchanged ones.
    Files are sent in the order given, in waves: pass images before manifests."""
    client = client or s3_client(workers=workers)
    existing = _existing(client, bucket, prefix)
    lock = threading.Lock()
    state = {"done": 0, "uploaded": 0, "skipped": 0, "bytes": 0}
    total = len(files)

    def one(path: Path, key: str) -> None:
        size = path.stat().st_size
        if size > MAX_SINGLE_PUT:
            raise S3Error(f"{path} is larger than 5 GiB, the most one PUT takes")
        md5 = _md5(path)
        have = existing.get(key)
        same = False
        if have is not None and have[0] == size:
            same = have[1] == md5
            if not same:  # a multipart or SSE-KMS ETag is not the MD5: ask for our own checksum metadata
                try:
                    head = client.head_object(Bucket=bucket, Key=key)
                    same = head.get("Metadata", {}).get("md5") == md5
                except Exception:  # noqa: BLE001
                    same = False
        if not same:
            extra = {"ContentType": CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")}
            try:
                with open(path, "rb") as fh:
                    client.put_object(
                        Bucket=bucket,
                        Key=key,
                        Body=fh,
                        Metadata={"md5": md5},
                        ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode(),
                        **extra,
                    )
            except Exception as exc:  # noqa: BLE001
                raise _explain(exc, bucket, f"upload {key}") from None
        with lock:
            state["done"] += 1
            state["skipped" if same else "uploaded"] += 1
            state["bytes"] += 0 if same else size
            if progress is not None and (state["done"] % 20 == 0 or state["done"] == total):
                progress(state["done"], total, "upload")

    # Waves: everything but manifests first, then the manifests.
    waves = [[f for f in files if not f[1].endswith(".manifest")], [f for f in files if f[1].endswith(".manifest")]]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="s3-upload") as pool:
        for wave in waves:
            futures = [pool.submit(one, p, k) for p, k in wave]
            try:
                for f in as_completed(futures):
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    return UploadResult(
        url=url or f"s3://{bucket}/{prefix}", uploaded=state["uploaded"], skipped=state["skipped"], bytes=state["bytes"]
    )


def dataset_files(dataset_dir: str | Path, prefix: str) -> list[tuple[Path, str]]:
    """What a dataset folder puts in the bucket: every image under ``images/``, and
    ``train.s3.manifest`` / ``test.s3.manifest`` as ``train.manifest`` / ``test.manifest``."""
    root = Path(dataset_dir)
    files = [
        (p, _key(prefix, p.relative_to(root).as_posix())) for p in sorted((root / "images").rglob("*")) if p.is_file()
    ]
    for side in ("train", "test"):
        m = root / f"{side}.s3.manifest"
        if m.exists():
            files.append((m, _key(prefix, f"{side}.manifest")))
    return files


def upload_dataset(
    dataset_dir: str | Path,
    url: str,
    *,
    endpoint_url: str | None = None,
    workers: int = 8,
    progress: Callable[[int, int, str], None] | None = None,
) -> UploadResult:
    """Upload a dataset folder (images, then its s3 manifests) under ``url``."""
    bucket, prefix = parse_s3_url(url)
    root = Path(dataset_dir)
    if not (root / "train.s3.manifest").exists():
        raise S3Error(f"{root} has no train.s3.manifest (it is written when --s3 is given)")
    client = s3_client(endpoint_url, workers=workers)
    return upload_files(
        dataset_files(root, prefix),
        bucket,
        client=client,
        prefix=prefix,
        workers=workers,
        progress=progress,
        url=f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
    )
