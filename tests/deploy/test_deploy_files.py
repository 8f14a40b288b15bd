"""Offline checks of deploy/: Dockerfiles, compose, Kubernetes manifests and the systemd unit.

Nothing here builds an image or talks to a cluster. The Kubernetes manifests are validated
against the JSON schemas that ``kubernetes-validate`` (PyPI, dev extra) bundles, in strict mode
(unknown keys are errors); the pipelines they carry go through streamseg's own loader; and the
files the deploy files name are checked to exist, with ports and paths agreeing across them.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streamseg.cli import build_parser
from streamseg.config import MetricsConfig, PipelineConfig, load_pipeline_text
from streamseg.runtime.shard import shard_config
from streamseg.types import SourceState

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.37.0"
"""Schemas to validate against: the newest that kubernetes-validate 1.37 bundles."""

YAML_FILES = sorted(DEPLOY.rglob("*.yaml"))
MANIFEST_FILES = sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")
DOCKERFILES = sorted(DEPLOY.glob("Dockerfile.*"))
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Base images the Dockerfiles may use, with the shape of an explicit, pinned tag for each.
KNOWN_BASES = {
    "python": re.compile(r"^3\.1[0-3](\.\d+)?-slim-(bookworm|trixie)$"),
    "nvidia/cuda": re.compile(r"^1[2-3]\.\d+\.\d+-(cudnn-)?runtime-ubuntu2[24]\.04$"),
    "pytorch/pytorch": re.compile(r"^2\.\d+\.\d+-cuda1[2-3]\.\d+-cudnn9-runtime$"),
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in MANIFEST_FILES
        for doc in _docs(path)
    ]


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for _, doc in _manifests()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


def _statefulset() -> dict[str, Any]:
    return _one("StatefulSet", "streamseg")


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "expected one container in the streamseg pod"
    return containers[0]


SECRETS_EXAMPLE = K8S / "secrets.env.example"
"""What the kustomization's secretGenerator reads, as shipped (secrets.env is the user's copy)."""


def _secret_env() -> dict[str, str]:
    """The keys of the Secret streamseg-secrets, from secrets.env.example (KEY=value lines)."""
    pairs: dict[str, str] = {}
    for line in SECRETS_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def _configmap_pipeline_text() -> str:
    return str(_one("ConfigMap", "streamseg-pipeline")["data"]["pipeline.yaml"])


def _configmap_pipeline() -> PipelineConfig:
    return load_pipeline_text(
        _configmap_pipeline_text(), "deploy/k8s/configmap.yaml", env=_secret_env()
    )


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def _compose_pipeline_path() -> Path:
    return DEPLOY / "pipelines" / "compose.yaml"


def _compose_pipeline() -> PipelineConfig:
    env = {name: "x" for name in _compose()["services"]["streamseg"]["environment"]}
    return load_pipeline_text(
        _compose_pipeline_path().read_text(), str(_compose_pipeline_path()), env=env
    )


def _resolve_port(port: int | str, container: dict[str, Any]) -> int:
    """A probe's or service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = {item["name"]: item["containerPort"] for item in container.get("ports", [])}
    assert port in named, f"port name {port!r} is not one of the container's ports {named}"
    return int(named[port])


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    assert not pending, f"{dockerfile.name} ends inside a continued line"
    return result


def _makefile_torch_pin() -> str:
    match = re.search(r"pip install[^\n]*\btorch==([0-9][0-9.]*)", (ROOT / "Makefile").read_text())
    assert match, "expected `pip install ... torch==X` in the Makefile"
    return match.group(1)


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _mosquitto_conf(text: str) -> dict[str, str]:
    conf = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            conf.setdefault(key, value.strip())
    return conf


# --- every file ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    assert _docs(path), f"{path} holds no YAML document"


def test_deploy_has_the_expected_files() -> None:
    for name in (
        "Dockerfile.cpu",
        "Dockerfile.gpu",
        "compose.yaml",
        "pipelines/compose.yaml",
        "mosquitto/mosquitto.conf",
        "k8s/kustomization.yaml",
        "k8s/statefulset.yaml",
        "systemd/streamseg.service",
    ):
        assert (DEPLOY / name).is_file(), f"deploy/{name} is missing"


# --- Kubernetes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "manifest"), _manifests(), ids=[name for name, _ in _manifests()])
def test_manifest_matches_kubernetes_schema(name: str, manifest: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(part) for part in exc.path)
        pytest.fail(f"{name}: {where}: {exc.message}")


def test_schema_validation_rejects_a_typo() -> None:
    """The validator is strict: a misspelt key fails (so the test above can fail)."""
    manifest = _statefulset()
    _container(manifest)["livenesProbe"] = _container(manifest).pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_manifests_are_namespace_free() -> None:
    for name, manifest in _manifests():
        assert "namespace" not in manifest["metadata"], f"{name} sets a namespace"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {path.name for path in MANIFEST_FILES}


def test_the_secret_comes_from_a_git_ignored_env_file_never_from_placeholders() -> None:
    """Regression: a Secret manifest with `change-me` placeholders was among the resources, so
    every later `kubectl apply -k` put the placeholders back over the real passwords created
    out of band. The Secret is generated from secrets.env, which git ignores and which the
    user copies from secrets.env.example; apply fails until it exists."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    [generator] = kustomization["secretGenerator"]
    assert generator["name"] == "streamseg-secrets"
    assert generator["envs"] == ["secrets.env"]
    assert generator["options"]["disableNameSuffixHash"] is True  # the name the pods refer to
    assert not [doc for _, doc in _manifests() if doc["kind"] == "Secret"]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(K8S / "secrets.env")], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deploy/k8s/secrets.env must be git-ignored"
    assert _secret_env(), "secrets.env.example lists no keys"


def test_configmap_pipeline_validates_with_streamseg_loader() -> None:
    config = _configmap_pipeline()
    assert config.sources, "the ConfigMap pipeline has no cameras to shard"
    assert config.outputs.mqtt is not None, "the ConfigMap pipeline sends no alerts"


def test_secret_provides_every_pipeline_variable() -> None:
    missing = set(VAR.findall(_configmap_pipeline_text())) - set(_secret_env())
    assert not missing, f"pipeline variables not in the Secret: {sorted(missing)}"
    env_from = _container(_statefulset())["envFrom"]
    assert {"secretRef": {"name": "streamseg-secrets"}} in env_from


def test_statefulset_shards_equal_replicas() -> None:
    statefulset = _statefulset()
    container = _container(statefulset)
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[:2] == ["streamseg", "run"], f"expected `streamseg run ...`, got {argv}"
    assert "--shard-from-hostname" in argv
    count = argv[argv.index("--shard-from-hostname") + 1]
    assert count == str(statefulset["spec"]["replicas"]), (
        f"--shard-from-hostname {count} but replicas: {statefulset['spec']['replicas']}"
    )


def test_statefulset_runs_the_configmap_pipeline() -> None:
    statefulset = _statefulset()
    container = _container(statefulset)
    pipeline_arg = container["args"][container["args"].index("run") + 1]
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    mounted = {
        str(Path(mount["mountPath"]) / key): volumes[mount["name"]]
        for mount in container["volumeMounts"]
        if mount["name"] in volumes and "configMap" in volumes[mount["name"]]
        for key in _one("ConfigMap", volumes[mount["name"]]["configMap"]["name"])["data"]
    }
    assert pipeline_arg in mounted, f"{pipeline_arg} is not a ConfigMap key mounted in the pod"


def test_every_pod_parses_its_args_and_the_shards_cover_each_camera_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statefulset = _statefulset()
    replicas = statefulset["spec"]["replicas"]
    config = _configmap_pipeline()
    owners: dict[str, list[int]] = {source.id: [] for source in config.sources}
    for ordinal in range(replicas):
        monkeypatch.setenv("HOSTNAME", f"{statefulset['metadata']['name']}-{ordinal}")
        args = build_parser().parse_args(_container(statefulset)["args"])
        assert args.shard is not None
        for source in shard_config(config, args.shard).sources:
            owners[source.id].append(ordinal)
    assert all(len(pods) == 1 for pods in owners.values()), f"camera -> pods: {owners}"


def test_probes_hit_the_health_endpoints_on_the_pipeline_metrics_port() -> None:
    container = _container(_statefulset())
    metrics = _configmap_pipeline().metrics
    assert metrics.enabled, "the probes need metrics.enabled: true in the pipeline"
    assert metrics.host == "0.0.0.0", "the kubelet probes the pod IP: bind metrics to 0.0.0.0"
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ):
        http = container[probe]["httpGet"]
        assert http["path"] == path, f"{probe} checks {http['path']}, expected {path}"
        assert _resolve_port(http["port"], container) == metrics.port, probe
    service = _one("Service", "streamseg")
    assert service["spec"]["clusterIP"] == "None", "expected a headless Service"
    assert service["spec"]["selector"].items() <= (
        _statefulset()["spec"]["template"]["metadata"]["labels"].items()
    )
    for port in service["spec"]["ports"]:
        assert _resolve_port(port["targetPort"], container) == metrics.port


def test_statefulset_requests_a_gpu_and_keeps_state_on_a_claim() -> None:
    statefulset = _statefulset()
    container = _container(statefulset)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert statefulset["spec"]["serviceName"] == _one("Service", "streamseg")["metadata"]["name"]
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert container["workingDir"] in {mounts[name] for name in claims if name in mounts}, (
        "the working directory (outbox, recordings) must be on a volumeClaimTemplate"
    )


# --- compose and mosquitto -----------------------------------------------------------------


def test_compose_pipeline_validates() -> None:
    config = _compose_pipeline()
    assert config.outputs.mqtt is not None
    assert config.outputs.mqtt.host in _compose()["services"], "MQTT host is not a service"
    assert config.outputs.mqtt.resolved_port() == 1883


def test_compose_references_existing_files() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"service {name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"service {name}: undeclared volume {source}"
        build = service.get("build")
        if build:
            context = DEPLOY / build["context"]
            assert (context / build["dockerfile"]).is_file(), f"service {name}: no Dockerfile"


def test_compose_streamseg_runs_the_mounted_pipeline_with_health() -> None:
    service = _compose()["services"]["streamseg"]
    mounts = dict(volume.split(":")[:2] for volume in service["volumes"])
    pipeline_in_container = service["command"][1]
    assert service["command"][0] == "run"
    assert any(
        (DEPLOY / host).resolve() == _compose_pipeline_path() and target == pipeline_in_container
        for host, target in mounts.items()
    ), f"{pipeline_in_container} is not deploy/pipelines/compose.yaml"
    metrics = _compose_pipeline().metrics
    assert metrics.enabled and metrics.host == "0.0.0.0"
    assert f":{metrics.port}/healthz" in " ".join(service["healthcheck"]["test"])
    wanted = set(VAR.findall(_compose_pipeline_path().read_text()))
    assert wanted <= set(service["environment"]), "pipeline variables missing from environment"


@pytest.mark.parametrize(
    "text",
    [
        (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(),
        _one("ConfigMap", "mosquitto-config")["data"]["mosquitto.conf"],
    ],
    ids=["compose", "k8s"],
)
def test_mosquitto_conf_raises_max_queued_messages(text: str) -> None:
    """mosquitto's default max_queued_messages (1000) silently drops QoS 1 messages."""
    conf = _mosquitto_conf(text)
    assert int(conf.get("max_queued_messages", "1000")) >= 10_000
    assert conf.get("persistence") == "true"
    assert conf.get("listener", "").split()[0] == "1883"


# --- Dockerfiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_base_image_is_known_with_an_explicit_tag(dockerfile: Path) -> None:
    bases = [args.split()[0] for keyword, args in _instructions(dockerfile) if keyword == "FROM"]
    assert bases, f"{dockerfile.name} has no FROM"
    for base in bases:
        image, _, tag = base.partition(":")
        assert image in KNOWN_BASES, f"{dockerfile.name}: unexpected base image {image}"
        assert KNOWN_BASES[image].match(tag), f"{dockerfile.name}: tag {tag!r} is not pinned"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_torch_pin_before_the_project(dockerfile: Path) -> None:
    runs = [args for keyword, args in _instructions(dockerfile) if keyword == "RUN"]
    torch = [i for i, run in enumerate(runs) if re.search(r"pip install\s+torch==", run)]
    project = [i for i, run in enumerate(runs) if re.search(r"pip install\s+'?\.(\[|\s|'|$)", run)]
    assert len(torch) == 1 and len(project) == 1, f"{dockerfile.name}: install steps not found"
    assert torch[0] < project[0], "torch must be installed before the project (as in make setup)"
    pins = re.findall(r"torch==([0-9][0-9.]*)", runs[torch[0]])
    assert pins == [_makefile_torch_pin()], f"torch {pins} but the Makefile installs " + (
        _makefile_torch_pin()
    )
    assert "--index-url" in runs[torch[0]], "torch needs an explicit wheel index (cpu / cuXYZ)"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_existing_paths_not_dockerignored(dockerfile: Path) -> None:
    ignored = _dockerignore_patterns()
    copies = [args for keyword, args in _instructions(dockerfile) if keyword == "COPY"]
    assert copies
    for args in copies:
        *sources, _target = shlex.split(args)
        for source in sources:
            assert not source.startswith("--"), f"unexpected COPY flag in {args}"
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), (
                f"{dockerfile.name}: COPY {source} is excluded by .dockerignore"
            )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_streamseg_as_non_root_with_a_healthcheck(dockerfile: Path) -> None:
    instructions = dict(_instructions(dockerfile))  # the last of each kind wins, as in Docker
    assert instructions["ENTRYPOINT"] == '["streamseg"]'
    user = instructions["USER"].split(":")[0]
    assert user not in {"root", "0"}
    port = MetricsConfig().port
    assert instructions["EXPOSE"] == str(port)
    assert f"127.0.0.1:{port}/healthz" in instructions["HEALTHCHECK"]


# --- systemd ---------------------------------------------------------------------------------


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / "streamseg.service").read_text())
    service = unit["Service"]
    assert service["User"] not in {"root", "0"}
    assert service["WorkingDirectory"].startswith("/")
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/")
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"].removesuffix("s")) >= 30
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "streamseg"
    build_parser().parse_args(argv[1:])
    assert unit["Install"]["WantedBy"] == "multi-user.target"


ALERTS = DEPLOY / "prometheus" / "alerts.yaml"


def _exposed_metric_names() -> set[str]:
    """The sample names a streamseg with MQTT exposes on /metrics (counters as ``_total``)."""
    from streamseg.outputs.mqtt.metrics import MqttMetrics
    from streamseg.runtime.metrics import PipelineMetrics

    metrics = PipelineMetrics()
    MqttMetrics(lambda: 0.0, metrics.registry)
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes[family.type]
    }


def test_the_alert_rules_name_metrics_streamseg_exposes() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 8
    exposed = _exposed_metric_names()
    for rule in rules:
        assert re.fullmatch(r"Streamseg[A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        named = set(re.findall(r"\bstreamseg_[a-z_]+", rule["expr"]))
        assert named <= exposed, f"{rule['alert']}: {sorted(named - exposed)} not exposed"
        for label in re.findall(r"state=~\"([a-z|]+)\"", rule["expr"]):
            assert set(label.split("|")) <= {state.value for state in SourceState}
    exprs = " ".join(rule["expr"] for rule in rules)
    for needed in ("streamseg_mqtt_outbox_full", "streamseg_frames_dropped_total"):
        assert needed in exprs
    assert "deploy/prometheus/alerts.yaml" in (ROOT / "docs" / "operations.md").read_text()
    # A live source drops frames by design when the model is busy (the newest is taken): those
    # alone must not page as lost frames, only as a share of the camera's frames.
    by_name = {rule["alert"]: rule["expr"] for rule in rules}
    assert 'stage!="source"' in by_name["StreamsegFramesDropped"]
    assert "streamseg_frames_processed_total" in by_name["StreamsegCameraOutpacesPipeline"]
