"""A small stand-in for the Amazon Lookout for Vision REST API (restJson1, API 2020-11-20), for tests.

Test code, not product. It answers the operations conveyor-qc uses, at the paths, with the JSON
members and the status enums of the real API description (lookoutvision/2020-11-20/service-2.json):

    POST   /2020-11-20/projects                                           CreateProject
    GET    /2020-11-20/projects/{projectName}                             DescribeProject
    POST   /2020-11-20/projects/{projectName}/datasets                    CreateDataset (202)
    GET    /2020-11-20/projects/{projectName}/datasets/{datasetType}      DescribeDataset
    DELETE /2020-11-20/projects/{projectName}/datasets/{datasetType}      DeleteDataset (202)
    POST   /2020-11-20/projects/{projectName}/models                      CreateModel (202)
    GET    /2020-11-20/projects/{projectName}/models                      ListModels
    GET    /2020-11-20/projects/{projectName}/models/{modelVersion}       DescribeModel
    POST   .../models/{modelVersion}/start | /stop                        StartModel, StopModel (202)
    POST   .../models/{modelVersion}/detect  (image body, Content-Type)   DetectAnomalies

State is in memory. Statuses move on after ``polls`` Describe calls: a dataset CREATE_IN_PROGRESS ->
CREATE_COMPLETE, a model TRAINING -> TRAINED, STARTING_HOSTING -> HOSTED, STOPPING_HOSTING -> TRAINED.
CreateDataset reads the Ground Truth manifest from S3 (moto) and fails the dataset (CREATE_FAILED with a
StatusMessage) if a line is not a well-formed classification line or names an object that is missing.
Tests steer it through attributes: ``fail_dataset`` / ``fail_training`` (a StatusMessage), ``throttle``
(answer the next N requests with HTTP 400 ThrottlingException), ``detect_rule(image, headers) ->
(is_anomalous, confidence)``, ``detect_error`` (answer DetectAnomalies with a ValidationException); and
read ``calls`` (operation names in order) and ``detected`` (content type, width, height of each image).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import cv2
import numpy as np

P = r"(?P<project>[a-zA-Z0-9][a-zA-Z0-9_\-]*)"
ROUTES = [
    ("POST", r"/2020-11-20/projects", "CreateProject"),
    ("GET", rf"/2020-11-20/projects/{P}", "DescribeProject"),
    ("POST", rf"/2020-11-20/projects/{P}/datasets", "CreateDataset"),
    ("GET", rf"/2020-11-20/projects/{P}/datasets/(?P<dtype>train|test)", "DescribeDataset"),
    ("DELETE", rf"/2020-11-20/projects/{P}/datasets/(?P<dtype>train|test)", "DeleteDataset"),
    ("POST", rf"/2020-11-20/projects/{P}/models", "CreateModel"),
    ("GET", rf"/2020-11-20/projects/{P}/models", "ListModels"),
    ("GET", rf"/2020-11-20/projects/{P}/models/(?P<version>[0-9]+|latest)", "DescribeModel"),
    ("POST", rf"/2020-11-20/projects/{P}/models/(?P<version>[0-9]+|latest)/start", "StartModel"),
    ("POST", rf"/2020-11-20/projects/{P}/models/(?P<version>[0-9]+|latest)/stop", "StopModel"),
    ("POST", rf"/2020-11-20/projects/{P}/models/(?P<version>[0-9]+|latest)/detect", "DetectAnomalies"),
]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def dark_is_anomalous(image: np.ndarray, headers) -> tuple[bool, float]:
    """Default rule: an object (the non-black pixels of a letterboxed crop) whose mean grey level is
    under 128 is anomalous (Confidence 0.9); a brighter one is normal (Confidence 0.8)."""
    grey = image.mean(axis=2)
    obj = grey[grey > 10]
    mean = float(obj.mean()) if obj.size else 0.0
    return (True, 0.9) if mean < 128 else (False, 0.8)


class LookoutStandIn:
    def __init__(self, s3_endpoint: str | None = None, polls: int = 2, region: str = "us-east-1"):
        self.s3_endpoint = s3_endpoint
        self.polls = polls
        self.region = region
        self.lock = threading.RLock()
        self.projects: dict[str, dict] = {}
        self.calls: list[str] = []
        self.detected: list[tuple[str, int, int]] = []
        self.fail_dataset: str | None = None
        self.fail_training: str | None = None
        self.throttle = 0
        self.throttled = 0
        self.detect_rule = dark_is_anomalous
        self.detect_error: str | None = None
        self.manifest_checked: list[tuple[str, int]] = []  # (s3 key, lines) of every manifest read
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _handle(self):
                stand_in._dispatch(self)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LookoutStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ HTTP

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = unquote(urlparse(h.path).path).rstrip("/")
        op, params = None, {}
        for method, pattern, name in ROUTES:
            m = re.fullmatch(pattern, path)
            if m and method == h.command:
                op, params = name, m.groupdict()
                break
        status, payload, code = 200, {}, None
        try:
            if op is None:
                raise ApiError(404, "UnknownOperationException", f"{h.command} {path}")
            with self.lock:
                self.calls.append(op)
                if self.throttle > 0:
                    self.throttle -= 1
                    self.throttled += 1
                    raise ApiError(400, "ThrottlingException", "Rate exceeded")
            if not h.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
                raise ApiError(403, "AccessDeniedException", "request not signed with SigV4")
            data = body if op == "DetectAnomalies" else (json.loads(body) if body else {})
            with self.lock:
                status, payload = getattr(self, "op_" + op)(params, data, h.headers)
        except ApiError as e:
            status, payload, code = e.status, {"message": e.message, **e.extra}, e.code
        out = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(out)))
        h.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if code:
            h.send_header("x-amzn-ErrorType", code)
        h.end_headers()
        h.wfile.write(out)

    # ------------------------------------------------------------------ state

    def _project(self, name: str) -> dict:
        p = self.projects.get(name)
        if p is None:
            raise ApiError(
                404, "ResourceNotFoundException", f"project {name} not found", ResourceId=name, ResourceType="PROJECT"
            )
        return p

    def _model(self, params) -> dict:
        p = self._project(params["project"])
        v = params["version"]
        if v == "latest" and p["models"]:
            v = max(p["models"], key=int)
        m = p["models"].get(v)
        if m is None:
            raise ApiError(404, "ResourceNotFoundException", f"model {v} not found", ResourceId=v, ResourceType="MODEL")
        return m

    def _tick(self, obj: dict, moves: dict[str, str]) -> None:
        if obj["Status"] in moves:
            obj["polls"] += 1
            if obj["polls"] >= self.polls:
                obj["polls"] = 0
                nxt = moves[obj["Status"]]
                if callable(nxt):
                    nxt(obj)
                else:
                    obj["Status"] = nxt

    @staticmethod
    def _public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if k[0].isupper()}

    # ------------------------------------------------------------------ operations

    def op_CreateProject(self, params, data, headers):
        name = data.get("ProjectName", "")
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_\-]*", name):
            raise ApiError(400, "ValidationException", f"bad project name {name!r}")
        if name in self.projects:
            raise ApiError(409, "ConflictException", f"project {name} exists", ResourceId=name, ResourceType="PROJECT")
        arn = f"arn:aws:lookoutvision:{self.region}:123456789012:project/{name}"
        self.projects[name] = {
            "ProjectArn": arn,
            "ProjectName": name,
            "CreationTimestamp": time.time(),
            "datasets": {},
            "models": {},
        }
        return 200, {
            "ProjectMetadata": {
                "ProjectArn": arn,
                "ProjectName": name,
                "CreationTimestamp": self.projects[name]["CreationTimestamp"],
            }
        }

    def op_DescribeProject(self, params, data, headers):
        p = self._project(params["project"])
        return 200, {
            "ProjectDescription": {
                "ProjectArn": p["ProjectArn"],
                "ProjectName": p["ProjectName"],
                "CreationTimestamp": p["CreationTimestamp"],
                "Datasets": [
                    {k: d[k] for k in ("DatasetType", "CreationTimestamp", "Status", "StatusMessage") if k in d}
                    for d in p["datasets"].values()
                ],
            }
        }

    def _check_manifest(self, bucket: str, key: str) -> tuple[str | None, dict]:
        """None and the image stats if the manifest is fine, else a StatusMessage."""
        if self.s3_endpoint is None:
            return None, {}
        import boto3

        from conveyor_qc.dataset.manifest import ManifestError, parse_line

        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint)
        try:
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception as exc:  # noqa: BLE001
            return f"manifest s3://{bucket}/{key} cannot be read: {exc}", {}
        stats = {"Total": 0, "Labeled": 0, "Normal": 0, "Anomaly": 0}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                e = parse_line(line, f"line {n}")
            except ManifestError as exc:
                return f"manifest s3://{bucket}/{key}: {exc}", {}
            if not e.source_ref.startswith("s3://"):
                return f"manifest s3://{bucket}/{key}: line {n}: source-ref {e.source_ref} is not an s3:// URL", {}
            b, _, k = e.source_ref[5:].partition("/")
            try:
                s3.head_object(Bucket=b, Key=k)
            except Exception:  # noqa: BLE001
                return f"manifest line {n}: image {e.source_ref} not found", {}
            stats["Total"] += 1
            stats["Labeled"] += 1
            stats["Normal" if e.label == "normal" else "Anomaly"] += 1
        self.manifest_checked.append((key, stats["Total"]))
        if stats["Total"] == 0:
            return f"manifest s3://{bucket}/{key} has no lines", {}
        return None, stats

    def op_CreateDataset(self, params, data, headers):
        p = self._project(params["project"])
        dtype = data.get("DatasetType")
        if dtype not in ("train", "test"):
            raise ApiError(400, "ValidationException", f"DatasetType {dtype!r}")
        if dtype in p["datasets"]:
            raise ApiError(
                409, "ConflictException", f"dataset {dtype} exists", ResourceId=dtype, ResourceType="DATASET"
            )
        s3obj = data.get("DatasetSource", {}).get("GroundTruthManifest", {}).get("S3Object", {})
        problem, stats = self._check_manifest(s3obj.get("Bucket"), s3obj.get("Key"))
        problem = problem or self.fail_dataset
        d = {
            "ProjectName": p["ProjectName"],
            "DatasetType": dtype,
            "CreationTimestamp": time.time(),
            "Status": "CREATE_IN_PROGRESS",
            "StatusMessage": "Creating dataset",
            "ImageStats": stats,
            "polls": 0,
            "problem": problem,
            "source": s3obj,
        }
        p["datasets"][dtype] = d
        return 202, {
            "DatasetMetadata": {k: d[k] for k in ("DatasetType", "CreationTimestamp", "Status", "StatusMessage")}
        }

    def op_DescribeDataset(self, params, data, headers):
        p = self._project(params["project"])
        d = p["datasets"].get(params["dtype"])
        if d is None:
            raise ApiError(
                404, "ResourceNotFoundException", "no dataset", ResourceId=params["dtype"], ResourceType="DATASET"
            )

        def finish(obj):
            if obj["problem"]:
                obj.update(Status="CREATE_FAILED", StatusMessage=obj["problem"])
            else:
                obj.update(Status="CREATE_COMPLETE", StatusMessage="Dataset created")

        self._tick(d, {"CREATE_IN_PROGRESS": finish})
        return 200, {"DatasetDescription": {**self._public(d), "LastUpdatedTimestamp": time.time()}}

    def op_DeleteDataset(self, params, data, headers):
        p = self._project(params["project"])
        if p["datasets"].pop(params["dtype"], None) is None:
            raise ApiError(
                404, "ResourceNotFoundException", "no dataset", ResourceId=params["dtype"], ResourceType="DATASET"
            )
        return 202, {}

    def op_CreateModel(self, params, data, headers):
        p = self._project(params["project"])
        if "train" not in p["datasets"] or p["datasets"]["train"]["Status"] != "CREATE_COMPLETE":
            raise ApiError(400, "ValidationException", "the project has no train dataset ready")
        if not data.get("OutputConfig", {}).get("S3Location", {}).get("Bucket"):
            raise ApiError(400, "ValidationException", "OutputConfig.S3Location.Bucket is required")
        v = str(len(p["models"]) + 1)
        m = {
            "ModelVersion": v,
            "ModelArn": f"{p['ProjectArn']}/model/{v}",
            "CreationTimestamp": time.time(),
            "Status": "TRAINING",
            "StatusMessage": "Training in progress",
            "OutputConfig": data["OutputConfig"],
            "polls": 0,
            "problem": self.fail_training,
        }
        p["models"][v] = m
        return 202, {
            "ModelMetadata": {
                k: m[k] for k in ("ModelVersion", "ModelArn", "CreationTimestamp", "Status", "StatusMessage")
            }
        }

    def _model_moves(self):
        def trained(obj):
            if obj["problem"]:
                obj.update(Status="TRAINING_FAILED", StatusMessage=obj["problem"])
            else:
                obj.update(
                    Status="TRAINED",
                    StatusMessage="Training completed",
                    Performance={"F1Score": 0.9, "Recall": 0.92, "Precision": 0.88},
                )

        return {
            "TRAINING": trained,
            "STARTING_HOSTING": lambda o: o.update(Status="HOSTED", StatusMessage="Hosted"),
            "STOPPING_HOSTING": lambda o: o.update(Status="TRAINED", StatusMessage="Hosting stopped"),
        }

    def op_DescribeModel(self, params, data, headers):
        m = self._model(params)
        self._tick(m, self._model_moves())
        return 200, {"ModelDescription": self._public(m)}

    def op_ListModels(self, params, data, headers):
        p = self._project(params["project"])
        keys = ("ModelVersion", "ModelArn", "CreationTimestamp", "Status", "StatusMessage", "Performance")
        return 200, {"Models": [{k: m[k] for k in keys if k in m} for m in p["models"].values()]}

    def op_StartModel(self, params, data, headers):
        m = self._model(params)
        if int(data.get("MinInferenceUnits", 0)) < 1:
            raise ApiError(400, "ValidationException", "MinInferenceUnits must be at least 1")
        if m["Status"] != "TRAINED":
            raise ApiError(
                409, "ConflictException", f"model is {m['Status']}", ResourceId=m["ModelVersion"], ResourceType="MODEL"
            )
        m.update(
            Status="STARTING_HOSTING",
            StatusMessage="Starting",
            MinInferenceUnits=int(data["MinInferenceUnits"]),
            polls=0,
        )
        return 202, {"Status": "STARTING_HOSTING"}

    def op_StopModel(self, params, data, headers):
        m = self._model(params)
        if m["Status"] not in ("HOSTED", "STARTING_HOSTING", "HOSTING_FAILED"):
            raise ApiError(
                409, "ConflictException", f"model is {m['Status']}", ResourceId=m["ModelVersion"], ResourceType="MODEL"
            )
        m.update(Status="STOPPING_HOSTING", StatusMessage="Stopping", polls=0)
        return 202, {"Status": "STOPPING_HOSTING"}

    def op_DetectAnomalies(self, params, body, headers):
        m = self._model(params)
        if m["Status"] != "HOSTED":
            raise ApiError(
                409,
                "ConflictException",
                f"model {m['ModelVersion']} is not hosted ({m['Status']})",
                ResourceId=m["ModelVersion"],
                ResourceType="MODEL",
            )
        ctype = headers.get("Content-Type", "")
        if ctype not in ("image/png", "image/jpeg"):
            raise ApiError(400, "ValidationException", f"Content-Type {ctype!r} is not image/png or image/jpeg")
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ApiError(400, "ValidationException", "the body is not an image")
        magic_ok = body.startswith(b"\x89PNG") if ctype == "image/png" else body.startswith(b"\xff\xd8")
        if not magic_ok:
            raise ApiError(400, "ValidationException", f"the body is not {ctype}")
        with self.lock:
            self.detected.append((ctype, img.shape[1], img.shape[0]))
            if self.detect_error:
                raise ApiError(400, "ValidationException", self.detect_error)
        anomalous, conf = self.detect_rule(img, headers)
        return 200, {
            "DetectAnomalyResult": {
                "Source": {"Type": "direct"},
                "IsAnomalous": bool(anomalous),
                "Confidence": float(conf),
            }
        }
