"""Lookout for Vision backend against the real API description.

- botocore's Stubber over a client built from the API description that ships with the package
  (conveyor_qc/data/aws-models): botocore validates every call's parameters against the real
  request shapes (and the stubbed responses against the real response shapes) before the stub answers.
- End to end over HTTP: the commands against tests/lookout_standin.py (a stand-in for the REST API
  on loopback) with S3 on moto's server mode. Dummy credentials: nothing reaches AWS.
- Bounded waits: the commands against a loopback port where nothing listens and a socket that
  accepts but never answers end with one line, in seconds.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from conftest import moto_s3_server, run_cli
from conveyor_qc import shared
from conveyor_qc.anomaly import lookout as lv
from conveyor_qc.cli import main
from conveyor_qc.cli.exit_codes import EXIT_ERROR
from conveyor_qc.dataset.manifest import ManifestEntry, write_manifest

AWS_MODELS = shared.aws_models_dir()  # the packaged copy, or $CONVEYOR_QC_SHARED/aws-models
BUCKET = "conveyor-qc-lookout"
NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    for k in (
        "AWS_DATA_PATH",  # the client finds the API description by itself
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_LOOKOUTVISION",
        "CONVEYOR_QC_LOOKOUT_S3",
        "CONVEYOR_QC_LOOKOUT_PROJECT",
    ):
        monkeypatch.delenv(k, raising=False)


# --------------------------------------------------------------------------- Stubber: the real shapes


@pytest.fixture()
def stubbed():
    from botocore.stub import Stubber

    client = lv.lookout_client("us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _not_found(stub, op, params, rtype="PROJECT"):
    stub.add_client_error(
        op,
        "ResourceNotFoundException",
        "not found",
        404,
        expected_params=params,
        modeled_fields={"Message": "not found", "ResourceId": "x", "ResourceType": rtype},
    )


def _model(stub, status, message=None, project="p", version="1"):
    desc = {"ModelVersion": version, "Status": status}
    if message:
        desc["StatusMessage"] = message
    stub.add_response("describe_model", {"ModelDescription": desc}, {"ProjectName": project, "ModelVersion": version})


def _botocore_has_lookout() -> bool:
    import botocore.loaders

    return "lookoutvision" in botocore.loaders.Loader().list_available_services("service-2")


def test_client_finds_the_packaged_api_description(monkeypatch):
    monkeypatch.delenv(shared.SHARED_ENV, raising=False)
    packaged = shared.aws_models_dir()
    assert packaged == shared.PACKAGE_DATA / "aws-models" and (packaged / "NOTICE").is_file()
    assert (packaged / "lookoutvision" / "2020-11-20" / "service-2.json.gz").is_file()
    client = lv.lookout_client("us-east-1")  # no AWS_DATA_PATH (aws_env), no data_path
    assert client.meta.service_model.service_name == "lookoutvision"
    assert client.meta.service_model.api_version == "2020-11-20"
    assert "DetectAnomalies" in client.meta.service_model.operation_names


def test_a_users_aws_data_path_comes_first(monkeypatch, tmp_path):
    """AWS_DATA_PATH that provides the service is used as it is: the packaged copy is not added."""
    src = shared.PACKAGE_DATA / "aws-models" / "lookoutvision" / "2020-11-20"
    dst = tmp_path / "lookoutvision" / "2020-11-20"
    dst.mkdir(parents=True)
    model = json.loads(gzip.decompress((src / "service-2.json.gz").read_bytes()))
    model["metadata"]["serviceFullName"] = "Lookout for Vision, the user's own copy"
    (dst / "service-2.json").write_text(json.dumps(model))
    for name in ("paginators-1.json", "endpoint-rule-set-1.json.gz"):
        (dst / name).write_bytes((src / name).read_bytes())
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    client = lv.lookout_client("us-east-1")
    assert client.meta.service_model.metadata["serviceFullName"] == "Lookout for Vision, the user's own copy"


@pytest.mark.skipif(_botocore_has_lookout(), reason="this botocore still ships lookoutvision (< 1.40.61)")
@pytest.mark.parametrize("where", ["package", "shared"])
def test_missing_model_description_is_one_clear_line(monkeypatch, tmp_path, capsys, where):
    if where == "package":  # an installation that lost its copy
        monkeypatch.delenv(shared.SHARED_ENV, raising=False)
        monkeypatch.setattr(shared, "PACKAGE_DATA", tmp_path / "nowhere")
    else:  # $CONVEYOR_QC_SHARED names a folder without aws-models/
        monkeypatch.setenv(shared.SHARED_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(lv.LookoutError, match="AWS_DATA_PATH") as e:
        lv.lookout_client("us-east-1")
    msg = str(e.value)
    assert "lookoutvision" in msg and "2025-10-31" in msg and str(tmp_path / "nowhere") in msg
    if where == "package":
        assert "reinstall conveyor-qc" in msg
    else:
        assert f"{shared.SHARED_ENV}={tmp_path / 'nowhere'}" in msg and "reinstall" not in msg
    code = main(["lookout", "status", "--project", "p"])
    err = capsys.readouterr().err
    assert code == 1 and "export AWS_DATA_PATH=" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_real_shapes_refuse_bad_requests():
    from botocore.exceptions import ParamValidationError

    # botocore validates against the real shapes before anything is sent (so the Stubber tests do too).
    client = lv.lookout_client("us-east-1", "http://127.0.0.1:9", data_path=AWS_MODELS)
    with pytest.raises(ParamValidationError, match="ProjectName"):
        client.create_project(ProjectName="")  # min length 1
    with pytest.raises(ParamValidationError, match="MinInferenceUnits"):
        client.start_model(ProjectName="p", ModelVersion="1")  # required
    with pytest.raises(ParamValidationError, match="ContentType"):
        client.detect_anomalies(ProjectName="p", ModelVersion="1", Body=b"x")  # required


def test_create_project_is_idempotent(stubbed):
    client, stub = stubbed
    _not_found(stub, "describe_project", {"ProjectName": "p"})
    stub.add_response(
        "create_project",
        {"ProjectMetadata": {"ProjectArn": "arn:p", "ProjectName": "p", "CreationTimestamp": NOW}},
        {"ProjectName": "p"},
    )
    stub.add_response(
        "describe_project", {"ProjectDescription": {"ProjectArn": "arn:p", "ProjectName": "p"}}, {"ProjectName": "p"}
    )
    assert lv.create_project(client, "p")["created"] is True
    assert lv.create_project(client, "p") == {"ProjectName": "p", "ProjectArn": "arn:p", "created": False}


def test_create_datasets_waits_then_fails_with_aws_message(stubbed):
    client, stub = stubbed
    for side in ("train", "test"):
        _not_found(stub, "describe_dataset", {"ProjectName": "p", "DatasetType": side}, "DATASET")
        stub.add_response(
            "create_dataset",
            {"DatasetMetadata": {"DatasetType": side, "Status": "CREATE_IN_PROGRESS"}},
            {
                "ProjectName": "p",
                "DatasetType": side,
                "DatasetSource": {"GroundTruthManifest": {"S3Object": {"Bucket": "bkt", "Key": f"x/{side}.manifest"}}},
            },
        )
        stub.add_response(
            "describe_dataset",
            {"DatasetDescription": {"Status": "CREATE_IN_PROGRESS"}},
            {"ProjectName": "p", "DatasetType": side},
        )
        last = (
            {"Status": "CREATE_COMPLETE", "ImageStats": {"Total": 3, "Normal": 2, "Anomaly": 1}}
            if side == "train"
            else {"Status": "CREATE_FAILED", "StatusMessage": "manifest line 3: bad source-ref"}
        )
        stub.add_response("describe_dataset", {"DatasetDescription": last}, {"ProjectName": "p", "DatasetType": side})
    seen = []
    with pytest.raises(lv.LookoutError, match="test dataset: CREATE_FAILED: manifest line 3: bad source-ref"):
        lv.create_datasets(
            client, "p", "s3://bkt/x/train.manifest", "s3://bkt/x/test.manifest", poll=0, progress=seen.append
        )
    assert any("train dataset: CREATE_COMPLETE" in s for s in seen)


def test_train_model_waits_through_training(stubbed):
    client, stub = stubbed
    stub.add_response(
        "create_model",
        {"ModelMetadata": {"ModelVersion": "1", "Status": "TRAINING"}},
        {"ProjectName": "p", "OutputConfig": {"S3Location": {"Bucket": "bkt", "Prefix": "x/out/"}}},
    )
    _model(stub, "TRAINING")
    _model(stub, "TRAINED")
    seen = []
    d = lv.train_model(client, "p", "s3://bkt/x/out", poll=0, progress=seen.append)
    assert d["Status"] == "TRAINED" and any("TRAINING" in s for s in seen)


def test_training_failed_carries_message_and_timeout(stubbed):
    client, stub = stubbed
    stub.add_response(
        "create_model",
        {"ModelMetadata": {"ModelVersion": "1", "Status": "TRAINING"}},
        {"ProjectName": "p", "OutputConfig": {"S3Location": {"Bucket": "bkt"}}},
    )
    _model(stub, "TRAINING_FAILED", "Too few anomalous images")
    with pytest.raises(lv.LookoutError, match="model 1: TRAINING_FAILED: Too few anomalous images"):
        lv.train_model(client, "p", "s3://bkt", poll=0)
    # The wait has a timeout.
    with pytest.raises(lv.LookoutError, match="still TRAINING after .*timeout"):
        lv.wait_for(
            lambda: {"Status": "TRAINING"}, what="model 1", done=("TRAINED",), failed=(), timeout=0.05, poll=0.01
        )


@pytest.mark.parametrize("interrupt", [RuntimeError("boom"), KeyboardInterrupt()])
def test_hosting_stops_after_error_or_ctrl_c(stubbed, interrupt):
    client, stub = stubbed
    _model(stub, "TRAINED")
    stub.add_response(
        "start_model", {"Status": "STARTING_HOSTING"}, {"ProjectName": "p", "ModelVersion": "1", "MinInferenceUnits": 1}
    )
    _model(stub, "STARTING_HOSTING")
    _model(stub, "HOSTED")
    _model(stub, "HOSTED")  # stop: still hosted -> StopModel
    stub.add_response("stop_model", {"Status": "STOPPING_HOSTING"}, {"ProjectName": "p", "ModelVersion": "1"})
    with pytest.raises(type(interrupt)), lv.hosted(client, "p", "1", poll=0) as started:
        assert started
        raise interrupt


def test_hosted_leaves_an_already_hosted_model_alone(stubbed):
    client, stub = stubbed
    _model(stub, "HOSTED")
    with lv.hosted(client, "p", "1", poll=0) as started:
        assert not started
    # no StopModel stubbed: a call would fail the stubber


def test_lookout_model_predict_and_close(stubbed):
    from botocore.stub import ANY

    client, stub = stubbed
    _model(stub, "TRAINED")
    stub.add_response(
        "start_model", {"Status": "STARTING_HOSTING"}, {"ProjectName": "p", "ModelVersion": "1", "MinInferenceUnits": 2}
    )
    _model(stub, "HOSTED")
    for anomalous, conf in ((True, 0.9), (False, 0.75)):
        stub.add_response(
            "detect_anomalies",
            {"DetectAnomalyResult": {"IsAnomalous": anomalous, "Confidence": conf}},
            {"ProjectName": "p", "ModelVersion": "1", "Body": ANY, "ContentType": "image/png"},
        )
    _model(stub, "HOSTED")
    stub.add_response("stop_model", {"Status": "STOPPING_HOSTING"}, {"ProjectName": "p", "ModelVersion": "1"})
    with lv.LookoutModel(client, "p", "1", min_units=2, poll=0) as model:
        v = model.predict([np.zeros((100, 60, 3), np.uint8), np.full((384, 384, 3), 200, np.uint8)])
    assert [x.label for x in v] == ["anomaly", "normal"]
    assert v[0].score == pytest.approx(0.9) and v[1].score == pytest.approx(0.25)


def test_encode_image_at_training_size():
    body, ctype = lv.encode_image(np.full((120, 300, 3), 90, np.uint8), (384, 384))
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert ctype == "image/png" and img.shape == (384, 384, 3)
    body, ctype = lv.encode_image(np.zeros((384, 384, 3), np.uint8), (384, 384), "jpeg")
    assert ctype == "image/jpeg" and body[:2] == b"\xff\xd8"


# --------------------------------------------------------------------------- end to end over HTTP


@pytest.fixture(scope="module")
def s3_endpoint():
    yield from moto_s3_server(BUCKET)


@pytest.fixture()
def standin(s3_endpoint):
    from lookout_standin import LookoutStandIn

    with LookoutStandIn(s3_endpoint=s3_endpoint, polls=2) as s:
        yield s


def _crop(value: int, shape=(384, 384)) -> np.ndarray:
    img = np.zeros((*shape, 3), np.uint8)
    h, w = shape
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (value, value, value), -1)
    return img


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small dataset folder: bright cookies normal, dark ones anomalous (the stand-in's rule)."""
    root = tmp_path_factory.mktemp("lv-ds")
    sides = {"train": [], "test": []}
    for i in range(8):
        side = "train" if i < 5 else "test"
        label = "anomaly" if i % 3 == 0 else "normal"
        rel = f"images/v/{i}/000001.png"
        (root / rel).parent.mkdir(parents=True)
        cv2.imwrite(str(root / rel), _crop(60 if label == "anomaly" else 230))
        sides[side].append(
            ManifestEntry(
                source_ref=rel,
                label=label,
                creation_date="2026-11-27T10:00:00.000Z",
                extra={"conveyor-qc-object": f"v/{i}"},
            )
        )
    for side, entries in sides.items():
        write_manifest(root / f"{side}.manifest", entries)
    return root


def _cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_commands_end_to_end(standin, s3_endpoint, dataset, tmp_path, capsys, monkeypatch):
    ep = ["--endpoint-url", standin.url, "--poll", "0.01", "-q"]
    pj = ["--project", "cookies"]
    # create-project twice: idempotent
    assert _cli(["lookout", "create-project", *pj, *ep], capsys)[1].startswith("project cookies created")
    assert _cli(["lookout", "create-project", *pj, *ep], capsys)[1].startswith("project cookies exists")
    assert standin.calls.count("CreateProject") == 1
    # upload: images first, manifests with s3:// paths; a second upload sends nothing
    s3 = f"s3://{BUCKET}/cookies/v1"
    code, out, err = _cli(["lookout", "upload", str(dataset), "--s3", s3, "--s3-endpoint", s3_endpoint, "-q"], capsys)
    assert code == 0 and "uploaded 10 file(s)" in out, err
    assert (
        "uploaded 0 file(s) (0 bytes), 10 already there"
        in _cli(["lookout", "upload", str(dataset), "--s3", s3, "--s3-endpoint", s3_endpoint], capsys)[1]
    )
    # datasets: the stand-in read both manifests from S3 and found every image
    code, out, err = _cli(["lookout", "create-datasets", *pj, "--s3", s3, *ep], capsys)
    assert code == 0, err
    assert "train dataset: CREATE_COMPLETE, 5 images (3 normal, 2 anomaly)" in out
    assert "test dataset: CREATE_COMPLETE, 3 images (2 normal, 1 anomaly)" in out
    assert sorted(standin.manifest_checked) == [("cookies/v1/test.manifest", 3), ("cookies/v1/train.manifest", 5)]
    # train, with progress on stderr
    code, out, err = _cli(
        [
            "lookout",
            "train",
            *pj,
            "--s3",
            s3,
            "--out",
            str(tmp_path / "m"),
            "--endpoint-url",
            standin.url,
            "--poll",
            "0.01",
        ],
        capsys,
    )
    assert code == 0 and out.startswith("model 1: TRAINED, F1 0.900"), err
    assert "model 1: TRAINING" in err
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["backend"] == "lookout" and meta["model_version"] == "1" and meta["endpoint"] == standin.url
    # start, detect crops of other sizes (through AWS_ENDPOINT_URL_LOOKOUTVISION), stop
    mv = ["--model-version", "1"]
    assert "HOSTED" in _cli(["lookout", "start", *pj, *mv, *ep], capsys)[1]
    crops = tmp_path / "crops"
    crops.mkdir()
    cv2.imwrite(str(crops / "a.png"), _crop(40, (200, 300)))
    cv2.imwrite(str(crops / "b.jpg"), _crop(220, (384, 250)))
    monkeypatch.setenv("AWS_ENDPOINT_URL_LOOKOUTVISION", standin.url)
    code, out, err = _cli(["lookout", "detect", *pj, *mv, str(crops), "--poll", "0.01", "--json"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["image"].rsplit("/", 1)[1], r["label"]) for r in rows] == [("a.png", "anomaly"), ("b.jpg", "normal")]
    assert rows[0]["score"] == pytest.approx(0.9) and rows[1]["score"] == pytest.approx(0.2)
    assert standin.detected == [("image/png", 384, 384)] * 2
    assert _cli(["lookout", "stop", *pj, *mv, *ep], capsys)[1].strip() == "model 1: TRAINED"
    code, out, _ = _cli(["lookout", "status", *pj, *ep], capsys)
    assert "train dataset: CREATE_COMPLETE" in out and "model 1: TRAINED" in out
    # detect on a model that is not hosted: one clear line
    code, _, err = _cli(["lookout", "detect", *pj, *mv, str(crops), *ep], capsys)
    assert code == 1 and "not hosted" in err and "--start" in err


def _trained(standin, dataset, s3_endpoint, tmp_path, project="p2"):
    from conveyor_qc.anomaly.model import train_model

    meta = train_model(
        dataset / "train.manifest",
        tmp_path / "model",
        backend="lookout",
        test_manifest=dataset / "test.manifest",
        s3=f"s3://{BUCKET}/{project}",
        project=project,
        endpoint_url=standin.url,
        s3_endpoint=s3_endpoint,
        poll=0.01,
    )
    return meta


def test_train_backend_lookout_then_predict_stops_hosting(standin, s3_endpoint, dataset, tmp_path, monkeypatch):
    from conveyor_qc.anomaly.model import load_model

    monkeypatch.setenv("CONVEYOR_QC_LOOKOUT_POLL", "0.01")

    meta = _trained(standin, dataset, s3_endpoint, tmp_path)
    assert meta["image_size"] == [384, 384] and meta["project"] == "p2"
    assert meta["s3"]["train_manifest"] == f"s3://{BUCKET}/p2/train.manifest"
    on_disk = json.loads((tmp_path / "model" / "model.json").read_text())
    assert on_disk["format"] == "conveyor-qc-model" and on_disk["version"] == 2 and on_disk["region"] == "us-east-1"
    with load_model(tmp_path / "model") as model:
        v = model.predict([_crop(30, (100, 80)), _crop(250)])
        assert [x.label for x in v] == ["anomaly", "normal"]
    assert standin.calls[-1] == "StopModel" and standin.calls.count("StartModel") == 1


@pytest.mark.parametrize("how", ["ctrl-c", "error"])
def test_detect_start_always_stops_hosting(standin, s3_endpoint, dataset, tmp_path, capsys, monkeypatch, how):
    _trained(standin, dataset, s3_endpoint, tmp_path, project="p3")
    crops = tmp_path / "crops"
    crops.mkdir()
    for i in range(3):
        cv2.imwrite(str(crops / f"{i}.png"), _crop(200))
    if how == "ctrl-c":
        real = lv.detect_anomalies
        n = {"calls": 0}

        def flaky(*a, **k):
            n["calls"] += 1
            if n["calls"] == 2:
                raise KeyboardInterrupt
            return real(*a, **k)

        monkeypatch.setattr(lv, "detect_anomalies", flaky)
    else:
        standin.detect_error = "image too small"
    code, _out, err = _cli(
        [
            "lookout",
            "detect",
            "--project",
            "p3",
            "--model-version",
            "1",
            str(crops),
            "--start",
            "--endpoint-url",
            standin.url,
            "--poll",
            "0.01",
            "-q",
        ],
        capsys,
    )
    assert code == (130 if how == "ctrl-c" else 1)
    if how == "error":
        assert "image too small" in err and "Traceback" not in err
    assert standin.calls.count("StartModel") == 1
    assert "StopModel" in standin.calls[standin.calls.index("StartModel") :]


def test_throttling_is_retried(standin, capsys):
    standin.throttle = 2
    code, out, err = _cli(["lookout", "create-project", "--project", "t", "--endpoint-url", standin.url, "-q"], capsys)
    assert code == 0 and "created" in out, err
    assert standin.throttled == 2


def test_bad_manifest_is_create_failed_with_message(standin, s3_endpoint, dataset, capsys):
    ep = ["--endpoint-url", standin.url, "--poll", "0.01", "-q"]
    assert _cli(["lookout", "create-project", "--project", "bad", *ep], capsys)[0] == 0
    # nothing uploaded under this prefix: the stand-in cannot read the manifest
    code, _out, err = _cli(
        ["lookout", "create-datasets", "--project", "bad", "--s3", f"s3://{BUCKET}/nothing-here", "--single", *ep],
        capsys,
    )
    assert code == 1 and "train dataset: CREATE_FAILED: manifest s3://" in err and "cannot be read" in err


def test_cli_train_backend_lookout_and_predict(standin, s3_endpoint, dataset, tmp_path, capsys, monkeypatch):
    """`conveyor-qc train --backend lookout` (model.py's command) with the S3 place and endpoints given as
    options, then `predict` (endpoint from the environment), which hosts the model for the run and stops it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_LOOKOUTVISION", standin.url)
    monkeypatch.setenv("CONVEYOR_QC_LOOKOUT_POLL", "0.01")
    code, out, err = _cli(
        [
            "train",
            str(dataset / "train.manifest"),
            "--out",
            str(tmp_path / "m"),
            "--backend",
            "lookout",
            "--test-manifest",
            str(dataset / "test.manifest"),
            "--s3",
            f"s3://{BUCKET}/cli",
            "--project",
            "cli",
            "--endpoint-url",
            standin.url,
            "--s3-endpoint",
            s3_endpoint,
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "model.json").read_text())["project"] == "cli"
    img = tmp_path / "dark.png"
    cv2.imwrite(str(img), _crop(50, (300, 200)))
    code, out, err = _cli(["predict", str(tmp_path / "m"), str(img)], capsys)
    assert code == 0 and out.split("\t")[1] == "anomaly", err
    assert standin.calls[-1] == "StopModel"


# --------------------------------------------------------------------------- bounded waits, offline


@contextlib.contextmanager
def silent_endpoint():
    """A loopback socket that accepts connections and never answers: yields its URL and the
    connections it accepted."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(srv.accept()[0])

    thread = threading.Thread(target=accept, name="silent-endpoint", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}", held
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        srv.close()


def test_retry_config_bounds_each_try():
    c = lv.retry_config()
    assert (c.connect_timeout, c.read_timeout) == (lv.CONNECT_TIMEOUT, lv.READ_TIMEOUT)
    assert c.retries == {"mode": "standard", "total_max_attempts": 10}
    c = lv.retry_config("adaptive", 4, timeout=2)
    assert (c.connect_timeout, c.read_timeout) == (2, 2) and c.retries["mode"] == "adaptive"
    c = lv.retry_config(timeout=3600)  # a long wait's --timeout leaves each request's bounds alone
    assert (c.connect_timeout, c.read_timeout) == (lv.CONNECT_TIMEOUT, lv.READ_TIMEOUT)


def test_nothing_listening_is_one_clear_line_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        r = run_cli("lookout", "status", "--project", "p", "--endpoint-url", url, "--timeout", 2, timeout=30)
    lines = r.stderr.splitlines()
    assert r.returncode == EXIT_ERROR and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    # what it waits for, before it waits; then one line naming the endpoint and the cause
    assert lines[0] == f"asking Lookout for Vision at {url} (us-east-1) for project p's datasets and models..."
    assert len(lines) == 2 and lines[1].startswith("conveyor-qc lookout: error: cannot reach Lookout for Vision at")
    assert url in lines[1] and "describe project p" in lines[1] and "Connection refused" in lines[1]


def test_an_endpoint_that_never_answers_gives_up_within_the_timeout():
    with silent_endpoint() as (url, held):
        # subprocess's timeout raises if the command hangs
        r = run_cli("lookout", "status", "--project", "p", "--endpoint-url", url, "--timeout", 2, "-q", timeout=30)
        tries = len(held)
    assert r.returncode == EXIT_ERROR and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert f"no answer from Lookout for Vision at {url} within 2 s to describe project p" in r.stderr
    assert tries == lv.CONNECTION_TRIES  # connected each time, and not retried ten times


def test_an_s3_endpoint_that_never_answers_gives_up_too(dataset):
    with silent_endpoint() as (url, held):
        r = run_cli(
            "lookout", "upload", dataset, "--s3", f"s3://{BUCKET}/x", "--s3-endpoint", url, "--timeout", 2, timeout=30
        )
        tries = len(held)
    lines = r.stderr.splitlines()
    assert r.returncode == EXIT_ERROR and "Traceback" not in r.stderr, r.stderr
    assert lines[0] == f"sending the dataset's changed files to s3://{BUCKET}/x (S3 at {url})..."
    assert len(lines) == 2 and url in lines[1] and "timeout" in lines[1].lower()
    assert tries == lv.CONNECTION_TRIES
