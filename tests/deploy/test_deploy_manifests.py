"""The Kubernetes manifests in docker/: they parse, have the fields the deployment needs, and the
Instrumentation uses only fields of the Operator's v1alpha1 schema (unknown fields rejected as the
API server does). The schema is the project's own (support/instrumentation_schema.py, Operator
v0.158); when the Operator's CRD is at hand (../shared/reference/), the schema is checked against it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from support import instrumentation_schema as schema
from support.metric_names import PROMETHEUS_PATH, PROMETHEUS_PORT

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
CRD_CANDIDATES = [
    Path(os.environ["FERROTEL_INSTRUMENTATION_CRD"]) if os.environ.get("FERROTEL_INSTRUMENTATION_CRD") else None,
    REPO.parent / "shared" / "reference" / "instrumentation-crd-v1alpha1.yaml",
]
FERROTEL_SETTINGS = {
    "FERROTEL_SLOW_THRESHOLD_MS",
    "FERROTEL_FILTER_ROUTES",
    "FERROTEL_SPAN_ATTRIBUTES",
    "FERROTEL_REDACT_QUERY_KEYS",
    "FERROTEL_KEEP_ERRORS_AND_SLOW",
}


def load_all(name: str) -> list[dict]:
    with open(DOCKER / name) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


@pytest.fixture(scope="module")
def instrumentation() -> dict:
    [doc] = load_all("custom-instrumentation.yaml")
    return doc


@pytest.fixture(scope="module")
def app_docs() -> list[dict]:
    return load_all("test-deployment.yaml")


@pytest.fixture(scope="module")
def collector_docs() -> list[dict]:
    return load_all("otel-collector.yaml")


# --------------------------------------------------------------------------- the Instrumentation


def test_instrumentation_is_valid_v1alpha1(instrumentation):
    assert instrumentation["apiVersion"] == schema.API_VERSION
    assert instrumentation["kind"] == schema.KIND
    assert instrumentation["metadata"]["name"]
    assert schema.validate(instrumentation) == []


def test_instrumentation_has_the_described_fields(instrumentation, collector_docs):
    spec = instrumentation["spec"]
    endpoint = urlsplit(spec["exporter"]["endpoint"])
    assert endpoint.scheme == "http" and endpoint.port == 4318, "the Operator's Python default protocol is http/protobuf"
    [service] = by_kind(collector_docs, "Service")
    assert endpoint.hostname == service["metadata"]["name"], "the endpoint names the collector's Service"
    assert 4318 in {p["port"] for p in service["spec"]["ports"]}
    assert spec["propagators"] and "tracecontext" in spec["propagators"]
    assert spec["sampler"]["type"] in schema.SAMPLER_TYPES and float(spec["sampler"]["argument"]) <= 1
    assert spec["resource"]["resourceAttributes"]
    python = spec["python"]
    assert python["image"]
    assert python["resourceRequirements"]["limits"] and python["resourceRequirements"]["requests"]
    env = {e["name"]: e.get("value") for e in python["env"]}
    assert FERROTEL_SETTINGS <= set(env), FERROTEL_SETTINGS - set(env)
    assert all(isinstance(v, str) for v in env.values()), "env values are strings (quote numbers and booleans)"
    assert int(env["FERROTEL_SLOW_THRESHOLD_MS"]) > 0
    assert env["FERROTEL_KEEP_ERRORS_AND_SLOW"] in ("true", "false")
    assert all("=" in kv for kv in env["FERROTEL_SPAN_ATTRIBUTES"].split(","))
    assert env["OTEL_METRICS_EXPORTER"] == "prometheus" and env["OTEL_EXPORTER_PROMETHEUS_PORT"] == str(PROMETHEUS_PORT)


@pytest.mark.parametrize(
    "path, value, error",
    [
        (("spec", "python", "resources"), {"limits": {"cpu": "1"}}, 'unknown field "spec.python.resources"'),
        (("spec", "pyhton"), {}, 'unknown field "spec.pyhton"'),
        (("spec", "exporter", "protocol"), "grpc", 'unknown field "spec.exporter.protocol"'),
        (("spec", "sampler", "type"), "probabilistic", "spec.sampler.type: Unsupported value"),
        (("spec", "propagators"), ["w3c"], "spec.propagators[0]: Unsupported value"),
        (("spec", "python", "resourceRequirements", "limits", "memory"), "lots", "spec.python.resourceRequirements.limits.memory: Invalid value"),
        (("spec", "python", "env"), [{"value": "x"}], "spec.python.env[0].name: Required value"),
        (("spec", "python", "env"), [{"name": "X", "value": 1}], "spec.python.env[0].value: Invalid value"),
        (("spec", "resource", "addK8sUIDAttributes"), "yes", "spec.resource.addK8sUIDAttributes: Invalid value"),
    ],
    ids=["python.resources", "typo", "exporter.protocol", "sampler-enum", "propagator-enum", "quantity", "env-name", "env-value-type", "boolean"],
)
def test_schema_rejects_what_the_api_server_rejects(instrumentation, path, value, error):
    doc = copy.deepcopy(instrumentation)
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    errors = schema.validate(doc)
    assert any(e.startswith(error) for e in errors), errors


def test_schema_accepts_other_v1alpha1_fields(instrumentation):
    doc = copy.deepcopy(instrumentation)
    doc["spec"]["python"]["volumeLimitSize"] = "200Mi"
    doc["spec"]["env"] = [{"name": "OTEL_LOG_LEVEL", "value": "info"}]
    doc["spec"]["imagePullPolicy"] = "IfNotPresent"
    doc["spec"]["python"]["resourceRequirements"]["limits"]["cpu"] = 1
    assert schema.validate(doc) == []


def _crd_schema():
    for candidate in CRD_CANDIDATES:
        if candidate is not None and candidate.is_file():
            with open(candidate) as f:
                crd = yaml.safe_load(f)
            [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
            return version["schema"]["openAPIV3Schema"]
    pytest.skip("the Operator's Instrumentation CRD is not at hand (../shared/reference/); set FERROTEL_INSTRUMENTATION_CRD")


def _crd_node(root, dotted: str):
    node = root
    for part in dotted.split("."):
        if part.endswith("[]"):
            node = node["properties"][part[:-2]]["items"]
        else:
            node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


def test_own_schema_agrees_with_the_operator_crd():
    crd = _crd_schema()
    for path, ours in schema.schema_paths():
        theirs = _crd_node(crd, path)
        assert theirs is not None, f"{path} is not in the CRD"
        if ours["type"] == "int-or-string":
            assert theirs.get("x-kubernetes-int-or-string") is True, path
            assert theirs.get("pattern") == ours["pattern"], path
        else:
            assert theirs.get("type") == ours["type"], (path, theirs.get("type"))
        if "enum" in ours or (ours["type"] == "array" and "enum" in ours.get("items", {})):
            assert (ours.get("enum") or ours["items"]["enum"]) == (theirs.get("enum") or theirs["items"]["enum"]), path
        if ours.get("required"):
            assert ours["required"] == theirs.get("required"), path
        if not ours.get("unchecked") and "properties" in ours:
            assert set(ours["properties"]) == set(theirs.get("properties", {})), (path, set(theirs.get("properties", {})))
        if "additionalProperties" in ours:
            assert "additionalProperties" in theirs, path
    # every object we descend into lists all the CRD's fields, so nothing valid is rejected
    assert set(schema.SPEC["properties"]) == set(crd["properties"]["spec"]["properties"])
    assert "resources" not in crd["properties"]["spec"]["properties"]["python"]["properties"]


# --------------------------------------------------------------------------- the test app


def test_deployment_is_annotated_for_injection(app_docs):
    [deployment] = by_kind(app_docs, "Deployment")
    assert deployment["apiVersion"] == "apps/v1"
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["instrumentation.opentelemetry.io/inject-python"] == "true"  # a string, not a YAML boolean
    assert annotations["prometheus.io/port"] == str(PROMETHEUS_PORT)
    assert annotations["prometheus.io/path"] == PROMETHEUS_PATH
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    pod = template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    [container] = pod["containers"]
    assert container["image"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == PROMETHEUS_PORT
    assert "PYTHONPATH" not in {e["name"] for e in container.get("env", [])}, "the Operator sets PYTHONPATH"


def test_service_selects_the_deployment(app_docs):
    [deployment] = by_kind(app_docs, "Deployment")
    [service] = by_kind(app_docs, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports


def test_test_app_image_copies_the_test_app():
    dockerfile = (DOCKER / "test-app" / "Dockerfile").read_text()
    copies = [line.split()[1:] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert copies and all((REPO / src).exists() for src, _ in copies), copies
    assert "app:app" in dockerfile and "8080" in dockerfile
    runs = [line for line in dockerfile.splitlines() if line.startswith("RUN ")]
    assert not [line for line in runs if "ferrotel" in line or "opentelemetry" in line], "the app image has no agent"


# --------------------------------------------------------------------------- the collector


def test_collector_config(collector_docs):
    [config_map] = by_kind(collector_docs, "ConfigMap")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    otlp = config["receivers"]["otlp"]["protocols"]
    assert otlp["grpc"]["endpoint"].endswith(":4317") and otlp["http"]["endpoint"].endswith(":4318")
    [scrape] = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert scrape["metrics_path"] == PROMETHEUS_PATH
    relabel = scrape["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": str(PROMETHEUS_PORT), "action": "keep"} in relabel
    assert any(r.get("target_label") == "job" for r in relabel), "the service is the job label"
    assert "debug" in config["exporters"]
    pipelines = config["service"]["pipelines"]
    assert "otlp" in pipelines["traces"]["receivers"] and "debug" in pipelines["traces"]["exporters"]
    assert "prometheus" in pipelines["metrics"]["receivers"]
    for pipeline in pipelines.values():  # every component a pipeline names is defined
        for section in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(section, [])) <= set(config.get(section, {})), (section, pipeline)


def test_collector_deployment_mounts_its_config(collector_docs):
    [config_map] = by_kind(collector_docs, "ConfigMap")
    [deployment] = by_kind(collector_docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [volume] = pod["volumes"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    [container] = pod["containers"]
    [mount] = container["volumeMounts"]
    assert f"--config={mount['mountPath']}/config.yaml" in container["args"]
    [binding] = by_kind(collector_docs, "RoleBinding")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
