"""Amazon Lookout for Vision as an anomaly-model backend, with boto3.

The whole lifecycle, one function per step (docs/lookout.md):

    create_project      idempotent: DescribeProject, CreateProject only if missing
    upload_manifests    images and Ground Truth manifests to S3 (conveyor_qc.s3's uploader)
    create_datasets     train (and test) datasets from the manifests in S3; waits for CREATE_COMPLETE
    train_model         CreateModel; waits through TRAINING for TRAINED
    start_model         StartModel (min inference units); waits for HOSTED
    detect_anomalies    DetectAnomalies on one PNG/JPEG image
    stop_model          StopModel; waits for TRAINED
    hosted(...)         a context manager: start, yield, and ALWAYS stop (error, Ctrl-C) if it started it

Every wait polls DescribeX with a timeout and a progress callback; a failed
status (CREATE_FAILED, TRAINING_FAILED, HOSTING_FAILED) is a LookoutError that
carries AWS's StatusMessage. Throttling (5 requests per second per API) and
transient errors are retried by botocore's retry modes (``standard`` by
default, ``adaptive`` adds client-side rate limiting).

botocore dropped the ``lookoutvision`` client in 1.40.61 (AWS discontinued
the service on 2025-10-31). Its API description (from botocore 1.40.60,
Apache-2.0) ships with conveyor-qc in ``conveyor_qc/data/aws-models``: the
client factory adds that folder to botocore's search path when neither
``data_path=`` nor ``AWS_DATA_PATH`` (nor botocore itself) provides the service,
and says what is missing when the folder lacks it.

Every request has bounded waits: per try at most CONNECT_TIMEOUT s to connect and
READ_TIMEOUT s for the answer (shorter with a command's --timeout), and a request
whose connection fails or times out is tried CONNECTION_TRIES times, not the
max_attempts that throttling gets; the failure is one line naming the endpoint
and the cause.

``train_lookout`` chains project, upload, datasets and training and writes
``MODEL_DIR/model.json``; ``LookoutModel`` is the model-interface side
(``predict(images) -> [Verdict]``, ``close()``).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from conveyor_qc.anomaly.base import (
    MODEL_FORMAT,
    MODEL_VERSION,
    AnomalyModel,
    ImageError,
    Verdict,
    read_image,
    read_meta,
    write_meta,
)
from conveyor_qc.crops import letterbox
from conveyor_qc.dataset.manifest import ManifestError, read_manifest, write_manifest
from conveyor_qc.dataset.s3 import (
    S3Error,
    _key,
    parse_s3_url,
    s3_client,
    s3_entries,
    upload_files,
)
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.shared import aws_models_dir, missing_hint
from conveyor_qc.version import __version__

__all__ = [
    "SERVICE",
    "LookoutError",
    "LookoutModel",
    "anomaly_score",
    "bound_connection_retries",
    "create_datasets",
    "create_project",
    "describe_endpoint",
    "detect_anomalies",
    "encode_image",
    "hosted",
    "lookout_client",
    "project_status",
    "retry_config",
    "start_model",
    "stop_model",
    "train_lookout",
    "train_model",
    "upload_client",
    "upload_manifests",
    "wait_for",
]

SERVICE = "lookoutvision"
API_VERSION = "2020-11-20"
DEFAULT_POLL = 20.0  # seconds between DescribeX calls while waiting
DEFAULT_TIMEOUTS = {"dataset": 30 * 60.0, "train": 24 * 3600.0, "start": 60 * 60.0, "stop": 30 * 60.0}
DEFAULT_IMAGE_SIZE = (384, 384)  # (width, height) of conveyor-qc's crops
MAX_IMAGE_BYTES = 4 * 1024 * 1024  # DetectAnomalies' limit on the body

#: progress(message): one line of progress while waiting
Progress = Callable[[str], None]


class LookoutError(ConveyorQCError, ValueError):
    """A Lookout for Vision step failed; the message says which and why (AWS's own message when it gave one)."""


# --------------------------------------------------------------------------- the client

CONNECT_TIMEOUT = 10.0  # seconds per try to open a connection (a command's --timeout, if shorter)
READ_TIMEOUT = 60.0  # seconds per try to wait for an answer on an open connection (likewise)
CONNECTION_TRIES = 2  # tries of a request whose connection fails or times out; throttling gets more


def _has_service(search_paths) -> bool:
    """Whether a folder on botocore's search path holds a lookoutvision API description."""
    return any(next(Path(p, SERVICE).glob("*/service-2.json*"), None) is not None for p in search_paths)


def _missing_model_message() -> str:
    import botocore

    models = aws_models_dir()
    return (
        f"the installed botocore {botocore.__version__} has no '{SERVICE}' API description (botocore removed "
        f"Lookout for Vision in 1.40.61, after AWS discontinued it on 2025-10-31) and {models} does not hold "
        f"{SERVICE}/{API_VERSION}/service-2.json.gz: {missing_hint()}; or export AWS_DATA_PATH=DIR, DIR "
        "holding that file"
    )


def retry_config(mode: str = "standard", max_attempts: int = 10, *, timeout: float | None = None, **extra):
    """botocore Config with ``mode`` retries (standard or adaptive), ``max_attempts`` tries in all, and per
    try at most CONNECT_TIMEOUT seconds to connect and READ_TIMEOUT seconds to wait for the answer, or
    ``timeout`` seconds for each when that is shorter (a command's --timeout)."""
    from botocore.config import Config

    if mode not in ("standard", "adaptive", "legacy"):
        raise LookoutError(f"retry mode {mode!r} is not standard or adaptive")

    def bounded(default: float) -> float:
        return min(default, float(timeout)) if timeout is not None and timeout > 0 else default

    extra.setdefault("connect_timeout", bounded(CONNECT_TIMEOUT))
    extra.setdefault("read_timeout", bounded(READ_TIMEOUT))
    return Config(retries={"mode": mode, "total_max_attempts": max_attempts}, **extra)


def bound_connection_retries(client, tries: int = CONNECTION_TRIES):
    """At most ``tries`` tries of a request whose connection was refused, failed or timed out, however
    many the retry mode allows for throttling: with no network, a call fails in seconds instead of
    backing off for minutes. Returns the client."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    def limit(attempts: int = 1, caught_exception=None, **_kw):
        if isinstance(caught_exception, (BotoConnectionError, HTTPClientError)) and attempts >= tries:
            return False  # the first answer that is not None decides: no retry
        return None  # botocore's retry mode decides

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"needs-retry.{service}", limit)
    return client


def lookout_client(
    region: str | None = None,
    endpoint_url: str | None = None,
    *,
    retry_mode: str = "standard",
    max_attempts: int = 10,
    data_path: str | os.PathLike | None = None,
    timeout: float | None = None,
):
    """A boto3 ``lookoutvision`` client with botocore retries and bounded waits (retry_config,
    bound_connection_retries; ``timeout`` shortens each try's connect and read timeouts).

    The API description: ``data_path`` first, then ``AWS_DATA_PATH`` and botocore's own data; when
    none of them has it (botocore >= 1.40.61 does not), the copy that ships with conveyor-qc
    (``conveyor_qc/data/aws-models``, or ``$CONVEYOR_QC_SHARED/aws-models``). ``endpoint_url``
    (``--endpoint-url``) overrides AWS; botocore also honours ``AWS_ENDPOINT_URL_LOOKOUTVISION``.
    """
    import boto3
    import botocore.session
    from botocore.exceptions import NoRegionError, UnknownServiceError

    bsession = botocore.session.get_session()
    loader = bsession.get_component("data_loader")
    if data_path:
        loader.search_paths.insert(0, str(Path(data_path).expanduser()))
    if not _has_service(loader.search_paths):
        loader.search_paths.append(str(aws_models_dir()))
    session = boto3.session.Session(botocore_session=bsession, region_name=region or None)
    config = retry_config(retry_mode, max_attempts, timeout=timeout)
    try:
        client = session.client(SERVICE, endpoint_url=endpoint_url or None, config=config)
    except UnknownServiceError:
        raise LookoutError(_missing_model_message()) from None
    except NoRegionError:
        raise LookoutError(
            "no AWS region: give --region or set AWS_DEFAULT_REGION (Lookout for Vision ran in "
            "us-east-1, us-east-2, us-west-2, eu-west-1, eu-central-1, ap-northeast-1, "
            "ap-northeast-2)"
        ) from None
    return bound_connection_retries(client)


def describe_endpoint(client) -> str:
    """Where a client's requests go, for messages: ``Lookout for Vision (us-east-1)``, or with
    ``at URL`` when the endpoint is not AWS's own (``--endpoint-url``)."""
    name = "Lookout for Vision" if client.meta.service_model.service_name == SERVICE else "S3"
    url = client.meta.endpoint_url or ""
    host = urlsplit(url).hostname or ""
    at = "" if host.endswith(".amazonaws.com") else f" at {url}"
    return f"{name}{at} ({client.meta.region_name})"


def _code(exc: Exception) -> str | None:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def _os_cause(exc: BaseException | None) -> OSError | None:
    """The socket error under a botocore/urllib3 connection error (refused, unreachable, no such host)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.strerror:
            return exc
        nxt = getattr(exc, "kwargs", {}).get("error") if hasattr(exc, "kwargs") else None
        exc = nxt or exc.__cause__ or exc.__context__
    return None


def _explain(exc: Exception, what: str, client=None) -> LookoutError:
    import socket

    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, LookoutError):
        return exc
    url = getattr(exc, "kwargs", {}).get("endpoint_url") or (client.meta.endpoint_url if client else "")
    parts = urlsplit(url)
    endpoint = f"{parts.scheme}://{parts.netloc}" if parts.netloc else (url or "the endpoint")
    config = client.meta.config if client is not None else None
    tries = f" ({CONNECTION_TRIES} tries)" if CONNECTION_TRIES > 1 else ""
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return LookoutError(
            f"no AWS credentials to sign the request to {endpoint} ({what}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        )
    if isinstance(exc, ConnectTimeoutError):
        limit = f" within {config.connect_timeout:g} s" if config is not None else ""
        return LookoutError(f"cannot reach Lookout for Vision at {endpoint} to {what}: no connection{limit}{tries}")
    if isinstance(exc, ReadTimeoutError):
        limit = f" within {config.read_timeout:g} s" if config is not None else ""
        return LookoutError(
            f"no answer from Lookout for Vision at {endpoint}{limit} to {what} (connected; {CONNECTION_TRIES} tries)"
        )
    if isinstance(exc, EndpointConnectionError):
        cause = _os_cause(exc)
        if isinstance(cause, socket.gaierror):
            why = f"cannot resolve {parts.hostname} ({cause.strerror}): no network, or no DNS"
        elif cause is not None:
            why = str(cause.strerror)
        else:
            why = str(exc.kwargs.get("error") or exc)
        return LookoutError(f"cannot reach Lookout for Vision at {endpoint} to {what}: {why}{tries}")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        msg = err.get("Message") or ""
        return LookoutError(f"Lookout for Vision refused to {what}: {err.get('Code', '?')}: {msg}".rstrip(": "))
    return LookoutError(f"{what} failed: {exc}")


@contextlib.contextmanager
def _calling(client, what: str) -> Iterator[None]:
    try:
        yield
    except (KeyboardInterrupt, LookoutError):
        raise
    except Exception as exc:  # noqa: BLE001  (botocore's errors, explained in one line)
        raise _explain(exc, what, client) from None


# --------------------------------------------------------------------------- waiting


def wait_for(
    describe: Callable[[], dict],
    *,
    what: str,
    done: tuple[str, ...],
    failed: tuple[str, ...],
    timeout: float,
    poll: float = DEFAULT_POLL,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Call ``describe()`` (-> a dict with ``Status`` and maybe ``StatusMessage``) every ``poll``
    seconds until the status is in ``done`` (returned) or ``failed`` (LookoutError with AWS's
    message), or ``timeout`` seconds pass (LookoutError). ``progress`` gets a line per change."""
    start = time.monotonic()
    last = None
    while True:
        desc = describe()
        status = desc.get("Status", "?")
        elapsed = time.monotonic() - start
        if progress is not None and status != last:
            progress(f"{what}: {status} ({elapsed:.0f} s)")
        last = status
        if status in done:
            return desc
        if status in failed:
            msg = desc.get("StatusMessage") or "no message"
            raise LookoutError(f"{what}: {status}: {msg}")
        if elapsed + poll > timeout:
            raise LookoutError(
                f"{what}: still {status} after {elapsed:.0f} s (timeout {timeout:.0f} s); "
                "it goes on in AWS: check with `conveyor-qc lookout status`"
            )
        sleep(poll)


# --------------------------------------------------------------------------- steps


def create_project(client, project: str) -> dict:
    """The project, created if missing: {"ProjectName", "ProjectArn", "created": bool}."""
    with _calling(client, f"describe project {project}"):
        try:
            d = client.describe_project(ProjectName=project)["ProjectDescription"]
            return {"ProjectName": project, "ProjectArn": d.get("ProjectArn"), "created": False}
        except Exception as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
    with _calling(client, f"create project {project}"):
        try:
            m = client.create_project(ProjectName=project)["ProjectMetadata"]
            return {"ProjectName": project, "ProjectArn": m.get("ProjectArn"), "created": True}
        except Exception as exc:
            if _code(exc) != "ConflictException":  # made meanwhile by someone else: fine
                raise
    return {"ProjectName": project, "ProjectArn": None, "created": False}


def _image_size(path: Path) -> tuple[int, int]:

    try:
        img = read_image(path)  # one line of ours, no OpenCV warning before it
    except (ImageError, OSError):
        raise LookoutError(f"{path}: not an image OpenCV can read") from None
    return int(img.shape[1]), int(img.shape[0])


def upload_client(s3_endpoint: str | None = None, *, workers: int = 8, timeout: float | None = None):
    """conveyor_qc.s3's S3 client with the waits of a Lookout client: each try's connect and read
    timeouts shortened to ``timeout`` (a command's --timeout) when that is shorter, and a request whose
    connection fails tried CONNECTION_TRIES times."""
    client = s3_client(s3_endpoint, workers=workers)
    config = client.meta.config
    if timeout is not None and 0 < timeout < max(config.connect_timeout, config.read_timeout):
        import boto3
        from botocore.config import Config

        shorter = Config(
            connect_timeout=min(config.connect_timeout, float(timeout)),
            read_timeout=min(config.read_timeout, float(timeout)),
        )
        client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint or None, config=config.merge(shorter))
    return bound_connection_retries(client)


def upload_manifests(
    train_manifest: str | Path,
    s3_url: str,
    *,
    test_manifest: str | Path | None = None,
    s3_endpoint: str | None = None,
    workers: int = 8,
    progress=None,
    timeout: float | None = None,
) -> dict:
    """Upload the images of local Ground Truth manifests and the manifests themselves (with s3://
    source-refs) under ``s3_url``: images to ``PREFIX/<source-ref>`` (or ``PREFIX/images/<name>`` for a
    source-ref outside the manifest's folder), then ``PREFIX/train.manifest`` and ``PREFIX/test.manifest``.
    Unchanged files are skipped (conveyor_qc.s3). Returns the S3 locations, the image size and counts.
    ``timeout`` shortens each request's connect and read timeouts (see upload_client)."""

    bucket, prefix = parse_s3_url(s3_url)
    sides = {"train": Path(train_manifest)}
    if test_manifest is not None:
        sides["test"] = Path(test_manifest)
    files: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    size = None
    counts = {}
    with tempfile.TemporaryDirectory(prefix="conveyor-qc-lookout-") as tmp:
        manifests = []
        for side, mpath in sides.items():
            try:
                entries = read_manifest(mpath, check_files=True)
            except ManifestError as exc:
                raise LookoutError(str(exc)) from None
            if not entries:
                raise LookoutError(f"{mpath}: no lines")
            rel_entries = []
            for e in entries:
                if e.path is None:  # already s3://: kept as is
                    rel_entries.append(e)
                    continue
                ref = Path(e.source_ref)
                rel = ref.as_posix() if not ref.is_absolute() and ".." not in ref.parts else f"images/{ref.name}"
                if rel in seen and seen[rel].resolve() != e.path.resolve():
                    raise LookoutError(f"{mpath}:{e.line}: two different images would both be {rel} in S3")
                if rel not in seen:
                    seen[rel] = e.path
                    files.append((e.path, _key(prefix, rel)))
                    if size is None:
                        size = _image_size(e.path)
                e2 = type(e)(**{**e.__dict__, "source_ref": rel, "path": None, "line": None})
                rel_entries.append(e2)
            counts[side] = {c: sum(1 for e in entries if e.label == c) for c in ("normal", "anomaly")}
            local = Path(tmp) / f"{side}.manifest"
            write_manifest(local, s3_entries(rel_entries, s3_url))
            manifests.append((local, _key(prefix, f"{side}.manifest")))
        try:
            res = upload_files(
                files + manifests,
                bucket,
                client=upload_client(s3_endpoint, workers=workers, timeout=timeout),
                prefix=prefix,
                workers=workers,
                progress=progress,
                url=s3_url.rstrip("/"),
            )
        except S3Error as exc:
            raise LookoutError(str(exc)) from None
    out = {
        "bucket": bucket,
        "prefix": prefix,
        "train_manifest": f"s3://{bucket}/{_key(prefix, 'train.manifest')}",
        "test_manifest": f"s3://{bucket}/{_key(prefix, 'test.manifest')}" if "test" in sides else None,
        "image_size": list(size or DEFAULT_IMAGE_SIZE),
        "counts": counts,
        "upload": res.to_dict(),
    }
    return out


def _split_s3(url: str) -> tuple[str, str]:

    bucket, key = parse_s3_url(url)
    if not key:
        raise LookoutError(f"{url}: no object key")
    return bucket, key


def _describe_dataset(client, project: str, side: str) -> dict | None:
    with _calling(client, f"describe the {side} dataset of {project}"):
        try:
            return client.describe_dataset(ProjectName=project, DatasetType=side)["DatasetDescription"]
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise


def _dataset_status(client, project: str, side: str, missing: str) -> Callable[[], dict]:
    """What wait_for polls: the dataset's description, or ``{"Status": missing}`` once it is gone."""
    return lambda: _describe_dataset(client, project, side) or {"Status": missing}


def create_datasets(
    client,
    project: str,
    train_manifest: str,
    test_manifest: str | None = None,
    *,
    replace: bool = False,
    poll: float = DEFAULT_POLL,
    timeout: float = DEFAULT_TIMEOUTS["dataset"],
    progress: Progress | None = None,
) -> dict[str, dict]:
    """The train (and test) datasets from Ground Truth manifests at s3:// URLs; waits for CREATE_COMPLETE.
    An existing dataset is kept (its status checked) unless ``replace``: then it is deleted first.
    Returns {side: DatasetDescription}."""
    sides = {"train": train_manifest}
    if test_manifest:
        sides["test"] = test_manifest
    out = {}
    for side, url in sides.items():
        bucket, key = _split_s3(url)
        have = _describe_dataset(client, project, side)
        if have is not None and replace:
            with _calling(client, f"delete the {side} dataset of {project}"):
                client.delete_dataset(ProjectName=project, DatasetType=side)
            wait_for(
                _dataset_status(client, project, side, missing="DELETE_COMPLETE"),
                what=f"deleting the {side} dataset",
                done=("DELETE_COMPLETE",),
                failed=("DELETE_FAILED",),
                timeout=timeout,
                poll=poll,
                progress=progress,
            )
            have = None
        if have is None:
            with _calling(client, f"create the {side} dataset of {project} from {url}"):
                client.create_dataset(
                    ProjectName=project,
                    DatasetType=side,
                    DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Key": key}}},
                )
        out[side] = wait_for(
            _dataset_status(client, project, side, missing="?"),
            what=f"{side} dataset",
            done=("CREATE_COMPLETE", "UPDATE_COMPLETE"),
            failed=("CREATE_FAILED", "UPDATE_FAILED_ROLLBACK_COMPLETE", "DELETE_COMPLETE", "DELETE_FAILED"),
            timeout=timeout,
            poll=poll,
            progress=progress,
        )
    return out


def _describe_model(client, project: str, version: str) -> dict:
    with _calling(client, f"describe model {version} of {project}"):
        return client.describe_model(ProjectName=project, ModelVersion=str(version))["ModelDescription"]


def train_model(
    client,
    project: str,
    output_s3: str,
    *,
    description: str | None = None,
    wait: bool = True,
    poll: float = DEFAULT_POLL,
    timeout: float = DEFAULT_TIMEOUTS["train"],
    progress: Progress | None = None,
) -> dict:
    """CreateModel (training output under ``output_s3``) and wait through TRAINING for TRAINED.
    Returns the ModelDescription (``ModelVersion``, ``Performance``, ...)."""

    bucket, prefix = parse_s3_url(output_s3)
    loc = {"Bucket": bucket}
    if prefix:
        loc["Prefix"] = prefix + "/"
    kwargs = {"ProjectName": project, "OutputConfig": {"S3Location": loc}}
    if description:
        kwargs["Description"] = re.sub(r"[^0-9A-Za-z.\-_]", "-", description)[:500]
    with _calling(client, f"train a model in {project}"):
        meta = client.create_model(**kwargs)["ModelMetadata"]
    version = meta["ModelVersion"]
    if progress is not None:
        progress(f"model {version}: training started (this takes from 30 minutes to some hours in AWS)")
    if not wait:
        return {**meta}
    return wait_for(
        lambda: _describe_model(client, project, version),
        what=f"model {version}",
        done=("TRAINED", "HOSTED"),
        failed=("TRAINING_FAILED",),
        timeout=timeout,
        poll=poll,
        progress=progress,
    )


def start_model(
    client,
    project: str,
    version: str,
    *,
    min_units: int = 1,
    max_units: int | None = None,
    poll: float = DEFAULT_POLL,
    timeout: float = DEFAULT_TIMEOUTS["start"],
    progress: Progress | None = None,
) -> bool:
    """Host the model (``min_units`` inference units) and wait for HOSTED. True if this call started it,
    False if it was hosted already. Hosting is billed by the hour until stop_model."""
    desc = _describe_model(client, project, version)
    if desc.get("Status") == "HOSTED":
        return False
    started = False
    if desc.get("Status") != "STARTING_HOSTING":
        kwargs = {"ProjectName": project, "ModelVersion": str(version), "MinInferenceUnits": int(min_units)}
        if max_units:
            kwargs["MaxInferenceUnits"] = int(max_units)
        with _calling(client, f"start model {version} of {project}"):
            client.start_model(**kwargs)
        started = True
    try:
        wait_for(
            lambda: _describe_model(client, project, version),
            what=f"hosting model {version}",
            done=("HOSTED",),
            failed=("HOSTING_FAILED", "TRAINING_FAILED"),
            timeout=timeout,
            poll=poll,
            progress=progress,
        )
    except BaseException:
        if started:  # half started is billed too
            with contextlib.suppress(Exception):
                stop_model(client, project, version, wait=False)
        raise
    return started


def stop_model(
    client,
    project: str,
    version: str,
    *,
    wait: bool = True,
    poll: float = DEFAULT_POLL,
    timeout: float = DEFAULT_TIMEOUTS["stop"],
    progress: Progress | None = None,
) -> dict:
    """Stop hosting; with ``wait``, until the model is TRAINED again. Stopping a model that is not
    hosted is not an error."""
    desc = _describe_model(client, project, version)
    if desc.get("Status") in ("HOSTED", "STARTING_HOSTING", "HOSTING_FAILED"):
        with _calling(client, f"stop model {version} of {project}"):
            client.stop_model(ProjectName=project, ModelVersion=str(version))
    elif desc.get("Status") != "STOPPING_HOSTING":
        return desc
    if not wait:
        return desc
    return wait_for(
        lambda: _describe_model(client, project, version),
        what=f"stopping model {version}",
        done=("TRAINED",),
        failed=("HOSTING_FAILED",),
        timeout=timeout,
        poll=poll,
        progress=progress,
    )


@contextlib.contextmanager
def hosted(
    client,
    project: str,
    version: str,
    *,
    min_units: int = 1,
    max_units: int | None = None,
    poll: float = DEFAULT_POLL,
    start_timeout: float = DEFAULT_TIMEOUTS["start"],
    progress: Progress | None = None,
) -> Iterator[bool]:
    """Host the model for the ``with`` block and stop it afterwards, whatever happens in the block
    (an error, Ctrl-C), if this block started it. Yields whether it started it."""
    started = start_model(
        client,
        project,
        version,
        min_units=min_units,
        max_units=max_units,
        poll=poll,
        timeout=start_timeout,
        progress=progress,
    )
    try:
        yield started
    except BaseException:
        if started:
            _stop_quietly(client, project, version, progress)
        raise
    if started:
        if progress is not None:
            progress(f"stopping model {version} (hosting is billed by the hour)")
        stop_model(client, project, version, wait=False)


def _stop_quietly(client, project: str, version: str, progress: Progress | None) -> None:
    """Stop hosting while another error is on its way up: a failure to stop is told, not raised over it."""

    if progress is not None:
        progress(f"stopping model {version} (hosting is billed by the hour)")
    try:
        stop_model(client, project, version, wait=False)
    except BaseException as exc:  # noqa: BLE001
        print(
            f"warning: could not stop hosting model {version} of {project} ({exc}); it is billed until stopped: "
            f"conveyor-qc lookout stop --project {project} --model-version {version}",
            file=sys.stderr,
        )


def encode_image(image: np.ndarray, size: tuple[int, int] = DEFAULT_IMAGE_SIZE, fmt: str = "png") -> tuple[bytes, str]:
    """A BGR crop at the training size (letterboxed when the training images are square), encoded as
    PNG (lossless, default) or JPEG. -> (bytes, content type)."""

    w, h = int(size[0]), int(size[1])
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[1] != w or image.shape[0] != h:
        image = letterbox(image, w) if w == h else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    fmt = fmt.lower()
    if fmt == "png":
        ok, buf = cv2.imencode(".png", image)
        ctype = "image/png"
    elif fmt in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        ctype = "image/jpeg"
    else:
        raise LookoutError(f"image format {fmt!r} is not png or jpeg")
    if not ok:
        raise LookoutError("could not encode the image")
    data = buf.tobytes()
    if len(data) > MAX_IMAGE_BYTES:
        raise LookoutError(f"the encoded image is {len(data)} bytes, more than the 4 MB DetectAnomalies takes")
    return data, ctype


def anomaly_score(result: dict) -> float:
    """The probability of ``anomaly`` in [0, 1] from a DetectAnomalyResult: Lookout's Confidence is its
    confidence in the verdict it gave, so the score is Confidence if IsAnomalous, else 1 - Confidence."""
    conf = float(result.get("Confidence", 0.0))
    conf = min(1.0, max(0.0, conf))
    return conf if result.get("IsAnomalous") else 1.0 - conf


def detect_anomalies(client, project: str, version: str, body: bytes, content_type: str = "image/png") -> dict:
    """DetectAnomalies on one encoded image -> the DetectAnomalyResult (IsAnomalous, Confidence, ...)."""
    with _calling(client, f"detect anomalies with model {version} of {project}"):
        return client.detect_anomalies(
            ProjectName=project, ModelVersion=str(version), Body=body, ContentType=content_type
        )["DetectAnomalyResult"]


def project_status(client, project: str) -> dict:
    """The project's datasets and models with their statuses."""
    with _calling(client, f"describe project {project}"):
        d = client.describe_project(ProjectName=project)["ProjectDescription"]
        models = []
        for page in client.get_paginator("list_models").paginate(ProjectName=project):
            models.extend(page.get("Models", []))
    return {
        "project": project,
        "arn": d.get("ProjectArn"),
        "datasets": [
            {"type": x.get("DatasetType"), "status": x.get("Status"), "message": x.get("StatusMessage")}
            for x in d.get("Datasets", [])
        ],
        "models": [
            {
                "version": m.get("ModelVersion"),
                "status": m.get("Status"),
                "message": m.get("StatusMessage"),
                "performance": m.get("Performance"),
            }
            for m in models
        ],
    }


# --------------------------------------------------------------------------- model interface


def _env_poll() -> float:
    """Seconds between status checks: $CONVEYOR_QC_LOOKOUT_POLL, default DEFAULT_POLL."""
    raw = os.environ.get("CONVEYOR_QC_LOOKOUT_POLL")
    try:
        return float(raw) if raw else DEFAULT_POLL
    except ValueError:
        raise LookoutError(f"CONVEYOR_QC_LOOKOUT_POLL={raw!r} is not a number of seconds") from None


def model_meta(
    client, project: str, description: dict, *, s3: dict, image_size, min_inference_units: int, **more
) -> dict:
    """A Lookout model's ``model.json``: the folder's format, the model (DescribeModel's
    ``description``), its region, S3 places, image size and hosting units, then ``more``."""
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "backend": "lookout",
        "conveyor_qc_version": __version__,
        "project": project,
        "model_version": str(description["ModelVersion"]),
        "model_arn": description.get("ModelArn"),
        "region": client.meta.region_name,
        "s3": s3,
        "image_size": image_size,
        "min_inference_units": min_inference_units,
        "performance": description.get("Performance"),
        **more,
    }


def _project_name(out_dir: Path) -> str:
    name = re.sub(r"[^a-zA-Z0-9_\-]", "-", out_dir.resolve().name).strip("-_") or "model"
    return ("conveyor-qc-" + name)[:255]


def train_lookout(
    manifest,
    out_dir,
    test_manifest=None,
    *,
    s3: str | None = None,
    project: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    s3_endpoint: str | None = None,
    output_s3: str | None = None,
    replace_datasets: bool = True,
    poll: float | None = None,
    dataset_timeout: float = DEFAULT_TIMEOUTS["dataset"],
    train_timeout: float = DEFAULT_TIMEOUTS["train"],
    min_inference_units: int = 1,
    retry_mode: str = "standard",
    data_path=None,
    progress: Progress | None = None,
    client=None,
    **unknown,
) -> dict:
    """Project (idempotent), upload (images + manifests under ``s3``), datasets, training; then write
    ``out_dir/model.json`` and return its content. Hosting is not started (it is billed by the hour):
    LookoutModel starts it on first use and stops it on close()."""
    if unknown:
        raise LookoutError(f"unknown lookout option(s): {', '.join(sorted(unknown))}")
    out = Path(out_dir)
    s3 = s3 or os.environ.get("CONVEYOR_QC_LOOKOUT_S3")
    if not s3:
        raise LookoutError(
            "the lookout backend needs an S3 place for the images and manifests: s3=s3://BUCKET/PREFIX "
            "(or the environment variable CONVEYOR_QC_LOOKOUT_S3)"
        )
    project = project or os.environ.get("CONVEYOR_QC_LOOKOUT_PROJECT") or _project_name(out)
    if poll is None:
        poll = _env_poll()
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_LOOKOUTVISION")
    client = client or lookout_client(region, endpoint_url, retry_mode=retry_mode, data_path=data_path)
    if progress is None and sys.stderr.isatty():  # training takes hours: show where it is
        progress = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    say = progress or (lambda _m: None)
    say(f"asking {describe_endpoint(client)} for project {project} (created if missing)...")
    proj = create_project(client, project)
    say(f"project {project}: {'created' if proj['created'] else 'exists'}")
    say(f"sending the manifests' changed files to {s3}...")
    up = upload_manifests(manifest, s3, test_manifest=test_manifest, s3_endpoint=s3_endpoint)
    u = up["upload"]
    say(f"uploaded {u['uploaded']} file(s), {u['skipped']} already there -> {u['url']}")
    datasets = create_datasets(
        client,
        project,
        up["train_manifest"],
        up["test_manifest"],
        replace=replace_datasets,
        poll=poll,
        timeout=dataset_timeout,
        progress=progress,
    )
    output = output_s3 or (s3.rstrip("/") + "/model-output")
    desc = train_model(client, project, output, poll=poll, timeout=train_timeout, progress=progress)
    meta = model_meta(
        client,
        project,
        desc,
        s3={
            "dataset": s3.rstrip("/"),
            "train_manifest": up["train_manifest"],
            "test_manifest": up["test_manifest"],
            "output": output,
        },
        image_size=up["image_size"],
        min_inference_units=int(min_inference_units),
        counts=up["counts"],
        datasets={k: v.get("ImageStats") for k, v in datasets.items()},
    )
    if endpoint_url:
        meta["endpoint"] = endpoint_url
    if s3_endpoint:
        meta["s3_endpoint"] = s3_endpoint
    write_meta(out, meta)
    return meta


class LookoutModel(AnomalyModel):
    """A Lookout for Vision model as a conveyor-qc model: ``predict(images)`` sends each BGR crop (as a PNG
    at the training size) to DetectAnomalies; ``close()`` stops hosting if this object started it.

    If the model is not hosted at the first predict(), it is started (``min_inference_units``) and waited
    for; use it as a context manager (or call close()) so hosting stops. ``threshold`` turns the score
    (probability of anomaly) into the label; None (default) keeps Lookout's own IsAnomalous."""

    def __init__(
        self,
        client,
        project: str,
        version: str,
        *,
        image_size=DEFAULT_IMAGE_SIZE,
        min_units: int = 1,
        threshold: float | None = None,
        poll: float = DEFAULT_POLL,
        start_timeout: float = DEFAULT_TIMEOUTS["start"],
        image_format: str = "png",
        progress: Progress | None = None,
    ):
        self.client = client
        self.project = project
        self.version = str(version)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.min_units = int(min_units)
        self.threshold = None if threshold is None else float(threshold)
        self.poll = poll
        self.start_timeout = start_timeout
        self.image_format = image_format
        self.progress = progress
        self.started = False  # this object started hosting (and must stop it)
        self._ready = False

    @classmethod
    def load(cls, model_dir, meta: dict | None = None, *, client=None, **options) -> LookoutModel:
        if meta is None:
            meta = read_meta(model_dir)
        for k in ("project", "model_version"):
            if not meta.get(k):
                raise LookoutError(f"{Path(model_dir) / 'model.json'}: no {k!r}")
        if client is None:
            endpoint = os.environ.get("AWS_ENDPOINT_URL_LOOKOUTVISION") or meta.get("endpoint")
            client = lookout_client(meta.get("region"), endpoint, data_path=options.pop("data_path", None))
        options.setdefault("min_units", meta.get("min_inference_units", 1))
        options.setdefault("poll", _env_poll())
        return cls(
            client,
            meta["project"],
            meta["model_version"],
            image_size=meta.get("image_size") or DEFAULT_IMAGE_SIZE,
            **options,
        )

    def ensure_hosted(self) -> None:
        if self._ready:
            return
        started = start_model(
            self.client,
            self.project,
            self.version,
            min_units=self.min_units,
            poll=self.poll,
            timeout=self.start_timeout,
            progress=self.progress,
        )
        self.started = self.started or started
        self._ready = True

    def predict(self, images: list[np.ndarray]) -> list:
        self.ensure_hosted()
        out = []
        for img in images:
            body, ctype = encode_image(img, self.image_size, self.image_format)
            res = detect_anomalies(self.client, self.project, self.version, body, ctype)
            score = anomaly_score(res)
            anomalous = bool(res.get("IsAnomalous")) if self.threshold is None else score >= self.threshold
            out.append(Verdict("anomaly" if anomalous else "normal", score))
        return out

    def close(self) -> None:
        if self.started:
            self.started = False
            self._ready = False
            if self.progress is not None:
                self.progress(f"stopping model {self.version} (hosting is billed by the hour)")
            stop_model(self.client, self.project, self.version, wait=False)

    def __enter__(self) -> LookoutModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; close() is the way
        with contextlib.suppress(Exception):
            if self.started:
                self.close()
