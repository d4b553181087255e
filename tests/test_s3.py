"""Upload to a real S3 API on loopback: moto's server mode (HTTP on 127.0.0.1), no mock objects."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import moto_s3_server
from conveyor_qc.cli import main
from conveyor_qc.dataset.manifest import read_manifest
from conveyor_qc.dataset.s3 import S3Error, parse_s3_url, upload_dataset

BUCKET = "conveyor-qc-test"


@pytest.fixture(scope="module")
def endpoint():
    yield from moto_s3_server(BUCKET)


@pytest.fixture()
def client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


def _objects(client, prefix: str) -> dict[str, bytes]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            out[o["Key"]] = client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
    return out


def test_parse_url():
    assert parse_s3_url("s3://b/x/y/") == ("b", "x/y")
    assert parse_s3_url("s3://b") == ("b", "")
    for bad in ("b/x", "s3:///x", "https://b/x"):
        with pytest.raises(S3Error):
            parse_s3_url(bad)


def test_dataset_upload_then_nothing_to_send(endpoint, client, cookies_dir, tmp_path, capsys):
    out = tmp_path / "ds"
    url = f"s3://{BUCKET}/cookies/v1"
    args = [
        "dataset",
        str(cookies_dir / "train.manifest"),
        "--out",
        str(out),
        "--s3",
        url,
        "--s3-endpoint",
        endpoint,
        "-q",
    ]
    assert main(args) == 0
    assert "uploaded 65 file(s)" in capsys.readouterr().out  # 63 images + 2 manifests
    stored = _objects(client, "cookies/v1")
    images = sorted(p for p in (out / "images").rglob("*") if p.is_file())
    assert len(images) == 63 and {p.suffix for p in images} == {".jpg"}  # JPEG photos stay JPEG
    for p in images:
        assert stored[f"cookies/v1/{p.relative_to(out).as_posix()}"] == p.read_bytes()
    # The bucket's manifests name s3:// images that are there, with the labels of the local ones.
    for side in ("train", "test"):
        (tmp_path / f"{side}.manifest").write_bytes(stored[f"cookies/v1/{side}.manifest"])
        remote = read_manifest(tmp_path / f"{side}.manifest")
        local = read_manifest(out / f"{side}.manifest")
        assert [e.label for e in remote] == [e.label for e in local] and remote
        for r, loc in zip(remote, local):
            assert r.source_ref == f"{url}/{loc.source_ref}" and r.path is None
            key = r.source_ref[len(f"s3://{BUCKET}/") :]
            assert stored[key] == loc.path.read_bytes()
    assert set(stored) == {f"cookies/v1/{p.relative_to(out).as_posix()}" for p in images} | {
        "cookies/v1/train.manifest",
        "cookies/v1/test.manifest",
    }
    head = client.head_object(Bucket=BUCKET, Key=f"cookies/v1/{images[0].relative_to(out).as_posix()}")
    assert head["ContentType"] == "image/jpeg"
    assert head["Metadata"]["md5"] == hashlib.md5(images[0].read_bytes()).hexdigest()

    # The same command again: the same files, nothing sent.
    assert main(args) == 0
    assert "uploaded 0 file(s) (0 bytes), 65 already there" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["upload"]["skipped"] == 65


def test_changed_file_is_sent_again_and_env_endpoint(endpoint, client, cookies_dir, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    url = f"s3://{BUCKET}/env"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # botocore reads it: no --s3-endpoint
    assert main(["dataset", str(cookies_dir / "train.manifest"), "--out", str(out), "--s3", url, "-q"]) == 0
    one = sorted((out / "images").rglob("*.jpg"))[0]
    one.unlink()  # a hard link to the photo's copy: replace, never write through
    one.write_bytes(b"\x89PNG changed")
    res = upload_dataset(out, url)
    assert (res.uploaded, res.skipped) == (1, 64)
    assert (
        client.get_object(Bucket=BUCKET, Key=f"env/{one.relative_to(out).as_posix()}")["Body"].read()
        == b"\x89PNG changed"
    )


def test_augment_uploads_too(endpoint, client, cookies_dir, tmp_path, capsys):
    ds = tmp_path / "ds"
    assert main(["dataset", str(cookies_dir / "train.manifest"), "--out", str(ds), "-q"]) == 0
    assert not (ds / "train.s3.manifest").exists()
    aug = tmp_path / "aug"
    assert (
        main(
            [
                "augment",
                str(ds),
                "--out",
                str(aug),
                "--factor",
                "1",
                "--s3",
                f"s3://{BUCKET}/aug",
                "--s3-endpoint",
                endpoint,
                "-q",
            ]
        )
        == 0
    )
    stored = _objects(client, "aug")
    n_train = len(read_manifest(aug / "train.manifest"))
    n_test = len(read_manifest(aug / "test.manifest"))
    assert len(stored) == n_train + n_test + 2
    assert stored["aug/train.manifest"] == (aug / "train.s3.manifest").read_bytes()


def test_missing_bucket_is_one_clear_line(endpoint, cookies_dir, tmp_path, capsys):
    code = main(
        [
            "dataset",
            str(cookies_dir / "train.manifest"),
            "--out",
            str(tmp_path / "ds"),
            "--s3",
            "s3://no-such-bucket-here/x",
            "--s3-endpoint",
            endpoint,
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "bucket no-such-bucket-here does not exist" in err and "Traceback" not in err
    # The local dataset is complete all the same; a later upload can follow.
    assert len(read_manifest(tmp_path / "ds" / "train.s3.manifest")) > 0
