"""The deploy files agree with the worker: settings that exist, probes on the real endpoints, a grace period
longer than the drain, no secret in an image or a manifest, scaling that never outgrows the partitions.

YAML-level checks need only pyyaml. The validators (``docker-compose config``, ``kubectl kustomize``) run
where installed and fail with the install command where not: see docs/deploy.md, "Validating".
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.settings import SANDBOX_API_IDENTITY, Settings, load_settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
SECRET_SETTINGS = {
    "ECASH_API_KEY",
    "ECASH_API_CREDENTIALS",
    "ECASH_API_PASSWORD",
    "ECASH_KAFKA_SASL_PASSWORD",
}
SETTING_NAMES = {f"ECASH_{name.upper()}" for name in Settings.model_fields}
Doc = dict[str, Any]


# --- helpers ---------------------------------------------------------------------------------------------


def load_all(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def base_docs() -> list[Doc]:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text(encoding="utf-8"))
    return [doc for name in kustomization["resources"] for doc in load_all(K8S / "base" / name)]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def worker_container(docs: list[Doc]) -> Doc:
    containers = one(docs, "Deployment", "ecash-worker")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "worker")


def base_config() -> dict[str, str]:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text(encoding="utf-8"))
    [generator] = [g for g in kustomization["configMapGenerator"] if g["name"] == "ecash-worker-config"]
    return dict(literal.split("=", 1) for literal in generator["literals"])


def kustomize_command() -> list[str]:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    pytest.fail(
        "neither kubectl nor kustomize is installed: "
        "go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0 (see docs/deploy.md, Validating)"
    )


def render(overlay: str) -> list[Doc]:
    done = subprocess.run(
        [*kustomize_command(), str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(request.param)


def rendered_config(docs: list[Doc]) -> dict[str, str]:
    maps = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("ecash-worker-config")
    ]
    assert len(maps) == 1
    return dict(maps[0]["data"])


def strings_in(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)


# --- every deploy file speaks the worker's settings ------------------------------------------------------


def deploy_text_files() -> list[Path]:
    suffixes = {".yaml", ".yml", ""}
    return [p for p in DEPLOY.rglob("*") if p.is_file() and (p.suffix in suffixes or p.name == "Dockerfile")]


def test_every_ecash_variable_named_in_a_deploy_file_is_a_worker_setting() -> None:
    used: dict[str, set[str]] = {}
    for path in deploy_text_files():
        for name in re.findall(r"\bECASH_[A-Z0-9_]+\b", path.read_text(encoding="utf-8", errors="replace")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    unknown = {name: sorted(files) for name, files in used.items() if name not in SETTING_NAMES}
    assert unknown == {}
    assert len(used) >= 10  # the scan found the files


def test_the_base_configuration_is_a_valid_worker_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in base_config().items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.metrics_port == 9464
    assert settings.drain_timeout_s < settings.kafka_rebalance_timeout_s


def test_each_overlay_renders_to_a_valid_worker_configuration(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, docs = overlay
    config = rendered_config(docs)
    assert not SECRET_SETTINGS & set(config), "secrets belong in a Secret, not the ConfigMap"
    for name in SANDBOX_API_IDENTITY:  # no default: the overlay itself must supply them
        monkeypatch.delenv(f"ECASH_{name.upper()}", raising=False)
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    from_secrets = {
        e["name"] for e in worker_container(docs)["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    for key in from_secrets:
        monkeypatch.setenv(key, "from-the-secret")
    settings = load_settings()
    assert settings.api_base_url != Settings.model_fields["api_base_url"].default, f"{name}: set the API URL"


# --- Kubernetes: probes, security, the drain, scaling ----------------------------------------------------


def test_probes_ask_the_workers_health_endpoints_on_the_metrics_port() -> None:
    container = worker_container(base_docs())
    [port] = [p for p in container["ports"] if p["name"] == "metrics"]
    assert str(port["containerPort"]) == base_config()["ECASH_METRICS_PORT"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_the_worker_runs_unprivileged_on_a_read_only_root() -> None:
    docs = base_docs()
    pod = one(docs, "Deployment", "ecash-worker")["spec"]["template"]["spec"]
    context = worker_container(docs)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in worker_container(docs)["volumeMounts"]}
    writable = {base_config()["ECASH_STATE_DIR"], "/tmp"}  # noqa: S108 - mount paths, not temp files
    assert writable <= mounts  # the only places it writes


def test_kubernetes_waits_for_the_drain_before_killing_a_worker() -> None:
    pod = one(base_docs(), "Deployment", "ecash-worker")["spec"]["template"]["spec"]
    drain_s = float(base_config()["ECASH_DRAIN_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] >= drain_s + 15  # drain, then publish, commit, leave


def test_rolling_updates_and_disruptions_take_one_worker_at_a_time(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    deployment = one(docs, "Deployment", "ecash-worker")["spec"]
    assert deployment["strategy"]["type"] == "RollingUpdate"
    assert deployment["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_a_bank_outage_blocks_neither_a_rollout_nor_a_node_drain(overlay: tuple[str, list[Doc]]) -> None:
    """A rollout step waits for the new pod's readiness, and readiness is "can own partitions" (Kafka, no
    fatal error), never the bank's health (tests/unit/observability/test_health.py); a drain may evict a
    pod that is NotReady for any reason, whatever the budget says; a rollout that cannot progress fails
    at a deadline instead of hanging."""
    _, docs = overlay
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "minAvailable" not in pdb  # a budget of "all but one" would block a drain of a 1-pod overlay
    deployment = one(docs, "Deployment", "ecash-worker")["spec"]
    assert 0 < deployment["progressDeadlineSeconds"] <= 900
    container = worker_container(docs)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_service_pdb_and_monitor_select_the_workers_pods() -> None:
    docs = base_docs()
    pod_labels = one(docs, "Deployment", "ecash-worker")["spec"]["template"]["metadata"]["labels"]
    service = one(docs, "Service", "ecash-worker")
    monitor = one(docs, "ServiceMonitor")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    # The alert rules select job="ecash-worker": the job label comes from this Service label's value.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "ecash-worker"


def scaled_object_checks(docs: list[Doc], config: dict[str, str]) -> None:
    scaled = one(docs, "ScaledObject")["spec"]
    # The lag trigger; the breaker's and the worker count's: tests/unit/deploy/test_autoscaling.py
    [trigger] = [t for t in scaled["triggers"] if t["type"] == "kafka"]
    assert (
        1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= int(config["ECASH_TOPIC_PARTITIONS"])
    )
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == config.get("ECASH_COMMANDS_TOPIC", "ecash.commands")
    assert trigger["metadata"]["consumerGroup"] == config.get("ECASH_GROUP_ID", "ecash-worker")
    assert trigger["metadata"]["bootstrapServers"] == config["ECASH_KAFKA_BOOTSTRAP_SERVERS"]
    assert int(trigger["metadata"]["lagThreshold"]) > 0
    assert scaled["scaleTargetRef"]["name"] == "ecash-worker"


def test_keda_never_runs_more_workers_than_partitions_and_watches_the_workers_group() -> None:
    scaled_object_checks(base_docs(), base_config())


def test_prod_keda_watches_the_same_cluster_as_the_workers_with_credentials() -> None:
    docs = render("prod")
    scaled_object_checks(docs, rendered_config(docs))
    [trigger] = [t for t in one(docs, "ScaledObject")["spec"]["triggers"] if t["type"] == "kafka"]
    auth = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} >= {"username", "password", "ca"}


def test_no_deployment_sets_replicas_where_keda_owns_the_count(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    deployment = one(docs, "Deployment", "ecash-worker")
    has_keda = any(d["kind"] == "ScaledObject" for d in docs)
    assert ("replicas" in deployment["spec"]) is not has_keda


def test_secrets_come_from_secret_refs_never_from_literals(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    env = {e["name"]: e for e in worker_container(docs)["env"]}
    for key in {"ECASH_API_KEY", "ECASH_API_CREDENTIALS"} | (SECRET_SETTINGS & set(env)):
        assert "value" not in env[key], f"{name}: {key} is a literal"
        assert env[key]["valueFrom"]["secretKeyRef"]["key"] == key
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if name == "prod":
        assert secrets == [], "production secrets are created out of band, never committed"


def test_prometheus_rule_is_the_alert_file_rendered() -> None:
    spec = importlib.util.spec_from_file_location("render_rule", K8S / "render_prometheus_rule.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    committed = (K8S / "base" / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == module.render(alerts), "stale: run python deploy/k8s/render_prometheus_rule.py"


def test_prod_alerts_link_to_the_overlays_runbook_with_each_alerts_anchor() -> None:
    base_url = yaml.safe_load((K8S / "overlays" / "prod" / "runbook-url.yaml").read_text())["data"]["baseUrl"]
    assert base_url.startswith("https://")
    assert "#" not in base_url
    rule = one(render("prod"), "PrometheusRule")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        assert alert["annotations"]["runbook_url"] == f"{base_url}#{alert['alert'].lower()}", alert["alert"]


def test_the_runbook_base_url_is_build_time_only(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    assert not [d for d in docs if d["metadata"]["name"] == "runbook-url"], "local-config: never applied"
    assert not any("REPLACE-ME.invalid" in text for text in strings_in(docs)), "the placeholder base was left"


def test_kustomize_builds_every_overlay(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert namespaces == {f"ecash-{name}" if name == "dev" else "ecash"}
    images = {
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert not any(image.endswith(":latest") or ":" not in image for image in images)


# --- docker compose --------------------------------------------------------------------------------------


def compose() -> Doc:
    doc: Doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    return doc


def test_compose_runs_the_whole_stack_each_part_gated_on_its_dependencies_health() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "sandbox", "ecash-worker", "prometheus", "grafana"}
    assert services["ecash-worker"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "sandbox": {"condition": "service_healthy"},
    }
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert all("healthcheck" in service for service in services.values())
    assert services["sandbox"]["command"][:3] == ["sandbox", "--host", "0.0.0.0"]
    assert services["ecash-worker"]["healthcheck"]["test"] == ["CMD", "ecash-worker", "check"]


def test_compose_worker_scales_and_waits_for_its_drain() -> None:
    worker = compose()["services"]["ecash-worker"]
    assert "container_name" not in worker  # --scale needs generated names
    assert "ports" not in worker  # and no fixed host port
    grace_s = int(worker["stop_grace_period"].rstrip("s"))
    assert grace_s >= float(worker["environment"]["ECASH_DRAIN_TIMEOUT_S"]) + 15
    assert worker["environment"]["ECASH_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"
    for key in SECRET_SETTINGS & set(worker["environment"]):
        # from the shell, else the sandbox's public test value (the worker has no default identity)
        sandbox_value = SANDBOX_API_IDENTITY[key.removeprefix("ECASH_").lower()]
        assert worker["environment"][key] == f"${{{key}:-{sandbox_value}}}", f"{key}: never a real secret"


def test_compose_mounts_the_prometheus_rules_and_grafana_provisioning_from_this_repository() -> None:
    services = compose()["services"]
    mounts = [m for s in ("prometheus", "grafana") for m in services[s]["volumes"]]
    sources = {m.split(":")[0] for m in mounts}
    assert "./prometheus/alerts.yml" in sources
    assert "./grafana/dashboards" in sources
    for source in sources:
        assert (DEPLOY / source).exists(), source


def test_compose_images_are_pinned() -> None:
    images = [s["image"] for s in compose()["services"].values()]
    assert all(":" in image and not image.endswith(":latest") for image in images)


def test_compose_file_is_valid_for_docker_compose() -> None:
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose (docs/deploy.md)")
    done = subprocess.run(
        [*command, "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- the image -------------------------------------------------------------------------------------------


def dockerfile() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def instructions(name: str) -> list[str]:
    return [line for line in dockerfile() if line.split()[0].upper() == name]


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    assert len(instructions("FROM")) >= 2
    assert "python:3.11-slim" in dockerfile()[0]
    [user] = instructions("USER")
    assert user.split()[1].split(":")[0] not in {"0", "root"}
    final_stage = dockerfile()[dockerfile().index(instructions("FROM")[-1]) :]
    assert any(line.startswith("COPY --from=build") for line in final_stage)


def test_dependencies_are_installed_from_the_lock_before_the_code_is_copied() -> None:
    lines = dockerfile()
    deps = next(
        i for i, line in enumerate(lines) if "--require-hashes -r requirements/production.txt" in line
    )
    code = next(i for i, line in enumerate(lines) if line.startswith("COPY worker"))
    assert (
        lines.index("COPY requirements/production.txt requirements/build.txt ./requirements/") < deps < code
    )
    assert not [line for line in lines[:deps] if line.startswith("COPY") and "requirements/" not in line]


def test_every_base_image_is_pinned_by_digest() -> None:
    """A tag moves; a digest does not (docs/deploy.md, "Reproducible builds", to refresh it)."""
    args = dict(
        line.split(None, 1)[1].split("=", 1) for line in instructions("ARG") if "=" in line.split(None, 1)[1]
    )
    names = set(stages())
    for line in instructions("FROM"):
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line.split()[1])
        if image in names:
            continue  # a stage of this file
        assert re.fullmatch(r"[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}", image), (
            f"{line}: {image} has no digest"
        )
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")


# What the build context must keep out (.dockerignore), as paths relative to the repository root.
KEPT_OUT = [
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/aiokafka/__init__.py",
    ".git/HEAD",
    ".mypy_cache/3.11/cache.db",
    ".ruff_cache/CACHEDIR.TAG",
    ".pytest_cache/v/cache/lastfailed",
    ".hypothesis/examples/x",
    "bench-results/run-1/summary.json",
    "chaos.json",
    "node_modules/x/package.json",
    "tools/codegen/node_modules/quicktype/package.json",
    "worker/__pycache__/cli.cpython-311.pyc",
    "worker/ops/__pycache__/reconcile.cpython-311.pyc",
    "devtools/ecash_dev/__pycache__/stack.cpython-311.pyc",
    "ecash_worker.egg-info/PKG-INFO",
    "devtools/ecash_dev.egg-info/PKG-INFO",
    "tests/unit/test_x.py",
    "docs/design.md",
    "requirements/development.txt",
    "deploy/k8s/base/deployment.yaml",
]


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(keeps it out?, pattern) per line, Docker's syntax: ``*`` within a path segment, ``**`` across."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", pattern):
            if part == "**/":
                regex += "(?:.*/)?"
            elif part == "**":
                regex += ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            elif part.startswith("["):
                regex += part
            else:
                regex += re.escape(part)
        rules.append((not negated, re.compile(regex)))
    return rules


def in_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for keeps_out, pattern in dockerignore_rules():
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            excluded = keeps_out
    return not excluded


def test_the_build_context_keeps_out_the_venv_caches_git_and_results() -> None:
    assert [path for path in KEPT_OUT if in_context(path)] == []


def test_the_build_context_holds_everything_the_image_copies() -> None:
    sources = [
        source for line in instructions("COPY") if "--from=" not in line for source in line.split()[1:-1]
    ]
    assert sources
    files = []
    for source in sources:
        path = ROOT / source
        files += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    wanted = [
        f.relative_to(ROOT).as_posix()
        for f in files
        if "__pycache__" not in f.parts and ".egg-info" not in str(f) and "node_modules" not in f.parts
    ]
    assert "worker/cli.py" in wanted
    assert "devtools/pyproject.toml" in wanted
    assert [path for path in wanted if not in_context(path)] == []


def test_the_image_checks_its_own_health_and_runs_the_worker_by_default() -> None:
    [healthcheck] = instructions("HEALTHCHECK")
    assert healthcheck.endswith('CMD ["ecash-worker", "check"]')
    assert instructions("ENTRYPOINT") == ['ENTRYPOINT ["ecash-worker"]']
    assert instructions("CMD") == ['CMD ["run"]']
    assert "EXPOSE 9464" in dockerfile()


def test_no_secret_is_baked_into_the_image() -> None:
    baked = " ".join(instructions("ENV") + instructions("ARG"))
    assert not [name for name in SECRET_SETTINGS if name in baked]
    assert "ECASH_API_USERNAME" not in baked


def test_everything_the_image_copies_exists() -> None:
    for line in instructions("COPY"):
        if "--from=" in line:
            continue
        for source in line.split()[1:-1]:
            assert (ROOT / source).exists(), f"{line}: {source} is missing"


# --- production carries no development code; the sandbox runs the development image -------------------

DEV_IMAGE = "ecash-worker-dev"


def stages() -> dict[str, list[str]]:
    """The Dockerfile's stages by name (``FROM ... AS name``), each with its lines, ``FROM`` first."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in dockerfile():
        if line.split()[0].upper() == "FROM":
            words = line.split()
            current = found.setdefault(words[-1] if words[-2].upper() == "AS" else f"#{len(found)}", [])
        current.append(line)
    return found


def stage_closure(name: str, all_stages: dict[str, list[str]]) -> set[str]:
    """``name`` and every stage it is built FROM or copies --from, transitively."""
    closure, todo = set(), [name]
    while todo:
        stage = todo.pop()
        if stage in closure or stage not in all_stages:
            continue  # an image (python:3.11-slim...), not a stage
        closure.add(stage)
        todo.append(all_stages[stage][0].split()[1])
        todo += re.findall(r"--from=(\S+)", " ".join(all_stages[stage]))
    return closure


def test_the_default_target_is_production_and_nothing_it_is_made_of_touches_the_development_package() -> None:
    all_stages = stages()
    assert list(all_stages)[-1] == "production"  # `docker build` without --target builds it
    closure = stage_closure("production", all_stages)
    lines = [line for stage in sorted(closure) for line in all_stages[stage]]
    assert "COPY worker ./worker" in lines
    assert not [line for line in lines if "devtools" in line or "ecash_dev" in line]


def test_the_development_target_adds_the_development_package_to_the_product() -> None:
    all_stages = stages()
    closure = stage_closure("development", all_stages)
    lines = [line for stage in closure for line in all_stages[stage]]
    assert "COPY devtools ./devtools" in lines
    assert "COPY worker ./worker" in lines
    assert any("--no-build-isolation --wheel-dir /tmp/wheels ./devtools" in line for line in lines)
    assert any("pip install --no-deps /tmp/wheels/ecash_dev-" in line for line in lines)


def test_compose_runs_the_worker_from_the_production_image_and_the_sandbox_from_the_development_one() -> None:
    services = compose()["services"]
    assert services["ecash-worker"]["build"]["target"] == "production"
    assert not services["ecash-worker"]["image"].startswith(DEV_IMAGE)
    assert services["sandbox"]["build"]["target"] == "development"
    assert services["sandbox"]["image"].startswith(DEV_IMAGE + ":")
    for name in ("ecash-worker", "sandbox"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"


def containers_by_deployment(docs: list[Doc]) -> dict[str, list[str]]:
    return {
        d["metadata"]["name"]: [c["image"] for c in d["spec"]["template"]["spec"]["containers"]]
        for d in docs
        if d["kind"] == "Deployment"
    }


def test_the_dev_overlay_runs_the_sandbox_from_the_development_image_and_the_worker_from_production() -> None:
    images = containers_by_deployment(render("dev"))
    assert [image.split(":")[0] for image in images["ecash-sandbox"]] == [DEV_IMAGE]
    assert [image.split(":")[0] for image in images["ecash-worker"]] == ["ecash-worker"]


def test_production_runs_no_development_image() -> None:
    images = [image for found in containers_by_deployment(render("prod")).values() for image in found]
    assert images
    assert not [image for image in images if DEV_IMAGE in image]
