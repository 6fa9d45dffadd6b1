#!/usr/bin/env python3
"""Offline checks of Assay's deployment files (used by deploy/check.sh).

  validate.py manifests SRC_ROOT NAME < rendered.yaml
      Structural check of `kubectl kustomize` output, with no API server: every object's
      apiVersion/kind is one this file knows; every field is in the schema subset below (an
      unknown or misspelt field fails, as kubectl's schema validation would); types and
      required fields; references inside the build (selectors, named ports, volumes,
      ConfigMaps, ServiceAccounts, Secrets named in EXTERNAL_SECRETS); the security settings
      docs/operations.md promises; and every ASSAY_* variable and --flag of a container names
      a real option of the program it runs (from server/main.cpp and agent/main.cpp).
  validate.py schema NAME < objects.yaml
      Every object's fields and their types against the Kubernetes API schema as the official
      Python client (Debian's python3-kubernetes, generated from the API's OpenAPI document)
      models it: an unknown or misspelt field, or a value of the wrong type, fails. Objects of
      APIs the client does not model (Gateway API's HTTPRoute) are checked by the small schema
      below instead.
  validate.py options SRC_ROOT PROGRAM FILE...
      Every --flag and ASSAY_* name in FILE (a systemd unit or an env file) is an option of
      PROGRAM (assay-server or assay-agent).

What it does NOT do: compare against the Kubernetes OpenAPI schema of a real cluster (the
subset below is hand-written from the Kubernetes API reference), run admission (Pod Security,
quotas, webhooks), or check that the cluster has the GPU label, device plugin or images.
Needs python3 and PyYAML (Debian: python3-yaml). Exit status 1 and one line per problem.
"""

import re
import sys

import yaml

# ---------------------------------------------------------------------------------------------
# Options of the programs, read from their sources (the table passed to Config::Parse).


def program_options(src_root, program):
    path = {"assay-server": "server/main.cpp", "assay-agent": "agent/main.cpp"}[program]
    text = open(f"{src_root}/{path}", encoding="utf-8").read()
    start = text.index("const std::vector<assay::OptionSpec> specs = {")
    end = text.index("\n  };", start)
    block = text[start:end]
    options = {"config": False, "help": False}  # name -> secret? (Config::Parse takes both)
    parts = re.split(r'^\s*\{"([a-z0-9-]+)",', block, flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2]):
        options[name] = "/*secret=*/true" in body
    if len(options) < 10:
        raise SystemExit(f"validate.py: found only {len(options)} options in {path}")
    return options


def option_problem(options, name):
    """None when --NAME is accepted by Config::Parse, else why not."""
    if name in options:
        if options[name]:
            return f"--{name} is a secret option: give --{name}-file or ASSAY_{env(name)}"
        return None
    if name.endswith("-file") and options.get(name[: -len("-file")]):
        return None
    return f"--{name} is not an option"


def env(name):
    return name.upper().replace("-", "_")


def env_problem(options, var):
    """None when ASSAY_... is read by Config::Parse (it ignores unknown ones silently)."""
    name = var[len("ASSAY_"):].lower().replace("_", "-")
    if name in options or (name.endswith("-file") and options.get(name[: -len("-file")])):
        return None
    return f"{var} is no option's variable (unknown ASSAY_* variables are silently ignored)"


FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
ENV_NAME = re.compile(r"\bASSAY_[A-Z0-9_]+\b")


def check_options_file(src_root, program, path):
    options = program_options(src_root, program)
    problems = []
    for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
        stripped = line.strip()
        if stripped.startswith(("#", ";")) and program + " " not in stripped:
            continue  # comments, unless they show a command line
        where = f"{path}:{lineno}"
        if re.match(r"\s*(ExecStart|ExecStartPre|ExecReload)=", line) or program + " " in line:
            for flag in FLAG.findall(line.split(program, 1)[-1]):
                why = option_problem(options, flag)
                if why:
                    problems.append(f"{where}: {why}")
        for var in ENV_NAME.findall(line):
            if line.lstrip("# ").startswith(var) or "Environment=" in line:
                why = env_problem(options, var)
                if why:
                    problems.append(f"{where}: {why}")
    return problems


# ---------------------------------------------------------------------------------------------
# The schema subset. A dict is an object (field -> schema), [schema] a list of them; leaves are
# type names. "*" in a dict: any key, values of that schema.

STR, INT, BOOL, QTY, INT_OR_STR, ANY = "string", "integer", "boolean", "quantity", "int-or-string", "any"

LABELS = {"*": STR}
META = {"name": STR, "namespace": STR, "labels": LABELS, "annotations": LABELS, "generateName": STR}
SELECTOR = {
    "matchLabels": LABELS,
    "matchExpressions": [{"key": STR, "operator": STR, "values": [STR]}],
}
RESOURCES = {"requests": {"*": QTY}, "limits": {"*": QTY}}
KEY_REF = {"name": STR, "key": STR, "optional": BOOL}
ENV_VAR = {
    "name": STR,
    "value": STR,
    "valueFrom": {
        "secretKeyRef": KEY_REF,
        "configMapKeyRef": KEY_REF,
        "fieldRef": {"fieldPath": STR, "apiVersion": STR},
        "resourceFieldRef": {"resource": STR, "containerName": STR, "divisor": QTY},
    },
}
ENV_FROM = {
    "prefix": STR,
    "configMapRef": {"name": STR, "optional": BOOL},
    "secretRef": {"name": STR, "optional": BOOL},
}
HTTP_GET = {
    "path": STR,
    "port": INT_OR_STR,
    "host": STR,
    "scheme": STR,
    "httpHeaders": [{"name": STR, "value": STR}],
}
PROBE = {
    "httpGet": HTTP_GET,
    "tcpSocket": {"port": INT_OR_STR, "host": STR},
    "exec": {"command": [STR]},
    "grpc": {"port": INT, "service": STR},
    "initialDelaySeconds": INT,
    "periodSeconds": INT,
    "timeoutSeconds": INT,
    "successThreshold": INT,
    "failureThreshold": INT,
    "terminationGracePeriodSeconds": INT,
}
SECCOMP = {"type": STR, "localhostProfile": STR}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": BOOL,
    "privileged": BOOL,
    "readOnlyRootFilesystem": BOOL,
    "runAsNonRoot": BOOL,
    "runAsUser": INT,
    "runAsGroup": INT,
    "procMount": STR,
    "capabilities": {"add": [STR], "drop": [STR]},
    "seccompProfile": SECCOMP,
    "seLinuxOptions": {"level": STR, "role": STR, "type": STR, "user": STR},
}
POD_SECURITY = {
    "runAsNonRoot": BOOL,
    "runAsUser": INT,
    "runAsGroup": INT,
    "fsGroup": INT,
    "fsGroupChangePolicy": STR,
    "supplementalGroups": [INT],
    "seccompProfile": SECCOMP,
    "sysctls": [{"name": STR, "value": STR}],
}
CONTAINER = {
    "name": STR,
    "image": STR,
    "imagePullPolicy": STR,
    "command": [STR],
    "args": [STR],
    "workingDir": STR,
    "env": [ENV_VAR],
    "envFrom": [ENV_FROM],
    "ports": [{"name": STR, "containerPort": INT, "protocol": STR, "hostPort": INT}],
    "resources": RESOURCES,
    "startupProbe": PROBE,
    "readinessProbe": PROBE,
    "livenessProbe": PROBE,
    "securityContext": CONTAINER_SECURITY,
    "volumeMounts": [
        {"name": STR, "mountPath": STR, "subPath": STR, "readOnly": BOOL, "mountPropagation": STR}
    ],
    "lifecycle": {"preStop": {"exec": {"command": [STR]}, "httpGet": HTTP_GET}},
    "terminationMessagePolicy": STR,
}
KEY_TO_PATH = [{"key": STR, "path": STR, "mode": INT}]
VOLUME = {
    "name": STR,
    "emptyDir": {"medium": STR, "sizeLimit": QTY},
    "secret": {"secretName": STR, "defaultMode": INT, "optional": BOOL, "items": KEY_TO_PATH},
    "configMap": {"name": STR, "defaultMode": INT, "optional": BOOL, "items": KEY_TO_PATH},
    "hostPath": {"path": STR, "type": STR},
    "persistentVolumeClaim": {"claimName": STR, "readOnly": BOOL},
}
TERM = {"key": STR, "operator": STR, "values": [STR]}
NODE_AFFINITY = {
    "requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [TERM], "matchFields": [TERM]}]
    },
    "preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": INT, "preference": {"matchExpressions": [TERM], "matchFields": [TERM]}}
    ],
}
POD_TERM = {"labelSelector": SELECTOR, "topologyKey": STR, "namespaces": [STR]}
POD_AFFINITY = {
    "requiredDuringSchedulingIgnoredDuringExecution": [POD_TERM],
    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": INT, "podAffinityTerm": POD_TERM}],
}
POD_SPEC = {
    "serviceAccountName": STR,
    "automountServiceAccountToken": BOOL,
    "terminationGracePeriodSeconds": INT,
    "securityContext": POD_SECURITY,
    "containers": [CONTAINER],
    "initContainers": [CONTAINER],
    "volumes": [VOLUME],
    "nodeSelector": LABELS,
    "tolerations": [
        {"key": STR, "operator": STR, "value": STR, "effect": STR, "tolerationSeconds": INT}
    ],
    "affinity": {"nodeAffinity": NODE_AFFINITY, "podAffinity": POD_AFFINITY, "podAntiAffinity": POD_AFFINITY},
    "topologySpreadConstraints": [
        {"maxSkew": INT, "topologyKey": STR, "whenUnsatisfiable": STR, "labelSelector": SELECTOR}
    ],
    "priorityClassName": STR,
    "enableServiceLinks": BOOL,
    "hostNetwork": BOOL,
    "hostPID": BOOL,
    "hostIPC": BOOL,
    "dnsPolicy": STR,
    "restartPolicy": STR,
    "runtimeClassName": STR,
    "imagePullSecrets": [{"name": STR}],
}
TEMPLATE = {"metadata": META, "spec": POD_SPEC}
ROLLING = {"maxUnavailable": INT_OR_STR, "maxSurge": INT_OR_STR}
KINDS = {
    ("v1", "Namespace"): {"metadata": META},
    ("v1", "ServiceAccount"): {
        "metadata": META,
        "automountServiceAccountToken": BOOL,
        "imagePullSecrets": [{"name": STR}],
    },
    ("v1", "ConfigMap"): {"metadata": META, "data": {"*": STR}},
    ("v1", "Service"): {
        "metadata": META,
        "spec": {
            "type": STR,
            "selector": LABELS,
            "clusterIP": STR,
            "sessionAffinity": STR,
            "ports": [
                {"name": STR, "port": INT, "targetPort": INT_OR_STR, "protocol": STR,
                 "appProtocol": STR, "nodePort": INT}
            ],
        },
    },
    ("apps/v1", "Deployment"): {
        "metadata": META,
        "spec": {
            "replicas": INT,
            "revisionHistoryLimit": INT,
            "minReadySeconds": INT,
            "progressDeadlineSeconds": INT,
            "selector": SELECTOR,
            "strategy": {"type": STR, "rollingUpdate": ROLLING},
            "template": TEMPLATE,
        },
    },
    ("apps/v1", "DaemonSet"): {
        "metadata": META,
        "spec": {
            "revisionHistoryLimit": INT,
            "minReadySeconds": INT,
            "selector": SELECTOR,
            "updateStrategy": {"type": STR, "rollingUpdate": ROLLING},
            "template": TEMPLATE,
        },
    },
    ("policy/v1", "PodDisruptionBudget"): {
        "metadata": META,
        "spec": {"minAvailable": INT_OR_STR, "maxUnavailable": INT_OR_STR, "selector": SELECTOR},
    },
}
REQUIRED = {
    "": ["metadata.name"],
    "Deployment": ["spec.selector", "spec.template.metadata.labels", "spec.template.spec.containers"],
    "DaemonSet": ["spec.selector", "spec.template.metadata.labels", "spec.template.spec.containers"],
    "Service": ["spec.ports", "spec.selector"],
    "PodDisruptionBudget": ["spec.selector"],
}
# Secrets the operator creates (docs/operations.md); never in git, so never in a build.
EXTERNAL_SECRETS = {
    "assay-server-secrets",
    "assay-server-keys",
    "assay-server-rotated-keys",
    "assay-server-tls",
    "assay-agent-enroll",
}
EXTERNAL_CONFIGMAPS = {"assay-agent-ca"}
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
ENUMS = {
    "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
    "protocol": {"TCP", "UDP", "SCTP"},
    "operator": {"In", "NotIn", "Exists", "DoesNotExist", "Equal", "Gt", "Lt"},
    "effect": {"NoSchedule", "PreferNoSchedule", "NoExecute"},
    "whenUnsatisfiable": {"DoNotSchedule", "ScheduleAnyway"},
}


def check_schema(value, schema, path, problems):
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for key, sub in value.items():
            child = schema.get(key, schema.get("*"))
            if child is None:
                problems.append(f"{path}.{key}: unknown field (not in validate.py's schema subset)")
                continue
            check_schema(sub, child, f"{path}.{key}", problems)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check_schema(item, schema[0], f"{path}[{i}]", problems)
        return
    field = path.rsplit(".", 1)[-1].split("[")[0]
    ok = {
        STR: isinstance(value, str),
        INT: isinstance(value, int) and not isinstance(value, bool),
        BOOL: isinstance(value, bool),
        INT_OR_STR: isinstance(value, (int, str)) and not isinstance(value, bool),
        QTY: (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, str) and QUANTITY.match(value) is not None),
        ANY: True,
    }[schema]
    if not ok:
        problems.append(f"{path}: expected {schema}, got {value!r}")
    elif field in ENUMS and value not in ENUMS[field]:
        problems.append(f"{path}: {value!r} is not one of {sorted(ENUMS[field])}")


def get(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def quantity(q):
    """A quantity in base units (cores, bytes), for comparisons."""
    s = str(q)
    for suffix, mult in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40),
                         ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * mult
    return float(s)


def selects(selector, labels):
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def program_of(container):
    image = container.get("image", "")
    for program in ("assay-server", "assay-agent"):
        if re.search(rf"(^|/){program}(:|@|$)", image):
            return program
    return None


def check_manifests(src_root, name, docs):
    problems = []
    objects = [d for d in docs if d is not None]
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind"), []).append(obj)
    namespaces = {get(o, "metadata.name") for o in by_kind.get("Namespace", [])}
    configmaps = {get(o, "metadata.name"): o for o in by_kind.get("ConfigMap", [])}
    accounts = {get(o, "metadata.name") for o in by_kind.get("ServiceAccount", [])}
    seen = set()
    workloads = by_kind.get("Deployment", []) + by_kind.get("DaemonSet", [])

    for obj in objects:
        kind, api = obj.get("kind"), obj.get("apiVersion")
        where = f"{name}: {kind}/{get(obj, 'metadata.name')}"
        schema = KINDS.get((api, kind))
        if schema is None:
            problems.append(f"{where}: apiVersion {api!r} kind {kind!r} is not one validate.py knows")
            continue
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        check_schema(body, schema, where, problems)
        for field in REQUIRED[""] + REQUIRED.get(kind, []):
            if get(obj, field) in (None, [], {}):
                problems.append(f"{where}: {field} is required")
        obj_name = get(obj, "metadata.name") or ""
        if not DNS_LABEL.match(obj_name):
            problems.append(f"{where}: metadata.name {obj_name!r} is not a DNS label")
        if (kind, obj_name) in seen:
            problems.append(f"{where}: defined twice")
        seen.add((kind, obj_name))
        if kind != "Namespace":
            ns = get(obj, "metadata.namespace")
            if ns not in namespaces:
                problems.append(f"{where}: namespace {ns!r} is not created by this build")

    for obj in workloads:
        kind, obj_name = obj["kind"], get(obj, "metadata.name")
        where = f"{name}: {kind}/{obj_name}"
        template_labels = get(obj, "spec.template.metadata.labels") or {}
        if not selects(get(obj, "spec.selector"), template_labels):
            problems.append(f"{where}: spec.selector does not match the pod template's labels")
        pod = get(obj, "spec.template.spec") or {}
        sa = pod.get("serviceAccountName")
        if sa not in accounts:
            problems.append(f"{where}: serviceAccountName {sa!r} is not in this build")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken must be false")
        if get(pod, "securityContext.seccompProfile.type") != "RuntimeDefault":
            problems.append(f"{where}: the pod's seccompProfile must be RuntimeDefault")
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        mounted = set()
        for c in pod.get("containers") or []:
            cwhere = f"{where} container {c.get('name')}"
            ports = {p.get("name") for p in c.get("ports") or []}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = get(c, f"{probe}.httpGet.port")
                if isinstance(port, str) and port not in ports:
                    problems.append(f"{cwhere}: {probe} port {port!r} is not a named port")
            for m in c.get("volumeMounts") or []:
                mounted.add(m.get("name"))
                if m.get("name") not in volumes:
                    problems.append(f"{cwhere}: volumeMount {m.get('name')!r} has no volume")
            for kind_, amount in (get(c, "resources.requests") or {}).items():
                limit = get(c, f"resources.limits.{kind_}")
                if limit is not None and quantity(limit) < quantity(amount):
                    problems.append(f"{cwhere}: {kind_} limit {limit} is below its request {amount}")
            if get(c, "resources.limits.memory") is None:
                problems.append(f"{cwhere}: no memory limit")
            sc = c.get("securityContext") or {}
            if get(sc, "capabilities.drop") != ["ALL"]:
                problems.append(f"{cwhere}: securityContext.capabilities.drop must be [ALL]")
            program = program_of(c)
            if program is None:
                problems.append(f"{cwhere}: image {c.get('image')!r} is neither assay-server nor assay-agent")
                continue
            problems += check_container_options(src_root, program, c, configmaps, cwhere)
            if program == "assay-server":
                for field, want in (("runAsNonRoot", True), ("readOnlyRootFilesystem", True),
                                    ("allowPrivilegeEscalation", False)):
                    if sc.get(field) is not want:
                        problems.append(f"{cwhere}: securityContext.{field} must be {want}")
                for probe in ("readinessProbe", "livenessProbe"):
                    if get(c, f"{probe}.httpGet.path") != "/healthz":
                        problems.append(f"{cwhere}: {probe} must GET /healthz")
            if program == "assay-agent":
                if "nvidia.com/gpu" not in (get(c, "resources.limits") or {}):
                    problems.append(f"{cwhere}: no nvidia.com/gpu limit")
                if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations") or []):
                    problems.append(f"{where}: no toleration for nvidia.com/gpu")
                if not pod.get("nodeSelector") and not get(pod, "affinity.nodeAffinity"):
                    problems.append(f"{where}: no nodeSelector or node affinity for GPU nodes")
                if kind != "DaemonSet":
                    problems.append(f"{where}: the agent runs as a DaemonSet")
        for vname, v in volumes.items():
            if vname not in mounted:
                problems.append(f"{where}: volume {vname!r} is not mounted")
            if "secret" in v and v["secret"].get("secretName") not in EXTERNAL_SECRETS:
                problems.append(f"{where}: volume {vname!r}: Secret {v['secret'].get('secretName')!r} "
                                "is not one docs/operations.md tells the operator to create")
            if "configMap" in v:
                cm = v["configMap"].get("name")
                if cm not in configmaps and cm not in EXTERNAL_CONFIGMAPS:
                    problems.append(f"{where}: volume {vname!r}: ConfigMap {cm!r} is not in this build")

    pod_templates = [(get(w, "spec.template.metadata.labels") or {}, get(w, "spec.template.spec") or {})
                     for w in workloads]
    for svc in by_kind.get("Service", []):
        where = f"{name}: Service/{get(svc, 'metadata.name')}"
        selected = [spec for labels, spec in pod_templates
                    if all(labels.get(k) == v for k, v in (get(svc, "spec.selector") or {}).items())]
        if not selected:
            problems.append(f"{where}: its selector matches no pod template")
        names = {p.get("name") for spec in selected for c in spec.get("containers") or []
                 for p in c.get("ports") or []}
        for p in get(svc, "spec.ports") or []:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in names:
                problems.append(f"{where}: targetPort {p['targetPort']!r} is no named port of its pods")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        where = f"{name}: PodDisruptionBudget/{get(pdb, 'metadata.name')}"
        if not any(selects(get(pdb, "spec.selector"), labels) for labels, _ in pod_templates):
            problems.append(f"{where}: its selector matches no pod template")
        if (get(pdb, "spec.minAvailable") is None) == (get(pdb, "spec.maxUnavailable") is None):
            problems.append(f"{where}: set exactly one of minAvailable and maxUnavailable")
    for kind in ("Namespace", "Deployment", "DaemonSet", "PodDisruptionBudget"):
        if kind not in by_kind:
            problems.append(f"{name}: no {kind}")
    if len(by_kind.get("Service", [])) < 2:
        problems.append(f"{name}: expected a Service for HTTP and one for gRPC")
    return problems


def check_container_options(src_root, program, c, configmaps, where):
    options = program_options(src_root, program)
    problems = []
    for cmd in (c.get("command") or []) + (c.get("args") or []):
        if program not in " ".join(c.get("command") or []) + cmd and not cmd.startswith("--"):
            continue
        for flag in FLAG.findall(cmd):
            why = option_problem(options, flag)
            if why:
                problems.append(f"{where}: {why}")
    names = [e.get("name", "") for e in c.get("env") or []]
    for ref in c.get("envFrom") or []:
        cm = get(ref, "configMapRef.name")
        if cm is not None:
            if cm not in configmaps:
                problems.append(f"{where}: envFrom ConfigMap {cm!r} is not in this build")
            else:
                names += list((configmaps[cm].get("data") or {}).keys())
        sec = get(ref, "secretRef.name")
        if sec is not None and sec not in EXTERNAL_SECRETS:
            problems.append(f"{where}: envFrom Secret {sec!r} is not a documented Secret")
    for e in c.get("env") or []:
        sec = get(e, "valueFrom.secretKeyRef.name")
        if sec is not None and sec not in EXTERNAL_SECRETS:
            problems.append(f"{where}: env {e.get('name')}: Secret {sec!r} is not a documented Secret")
        cm = get(e, "valueFrom.configMapKeyRef.name")
        if cm is not None and cm not in configmaps:
            problems.append(f"{where}: env {e.get('name')}: ConfigMap {cm!r} is not in this build")
    for var in names:
        if var.startswith("ASSAY_"):
            why = env_problem(options, var)
            if why:
                problems.append(f"{where}: {why}")
    return problems


# ---------------------------------------------------------------------------------------------
# Schema check with the Kubernetes client's models (python3-kubernetes 22.x: Kubernetes 1.22).

# Gateway API objects (gateway.networking.k8s.io/v1), which the client does not model: the
# fields Assay writes and their neighbours, from the Gateway API reference.
GATEWAY_SCHEMA = {
    "HTTPRoute": {"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
                  "spec": "HTTPRouteSpec"},
    "HTTPRouteSpec": {"parentRefs": "list[ParentReference]", "hostnames": "list[str]",
                      "rules": "list[HTTPRouteRule]"},
    "ParentReference": {"group": "str", "kind": "str", "namespace": "str", "name": "str",
                        "sectionName": "str", "port": "int"},
    "HTTPRouteRule": {"name": "str", "matches": "list[object]", "filters": "list[object]",
                      "backendRefs": "list[HTTPBackendRef]", "timeouts": "object"},
    "HTTPBackendRef": {"group": "str", "kind": "str", "name": "str", "namespace": "str",
                       "port": "int", "weight": "int", "filters": "list[object]"},
}


def schema_problems(value, type_name, path, models):
    """Problems of `value` (parsed YAML) as an instance of the client's type `type_name`."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: must be a list"]
        out = []
        for i, item in enumerate(value):
            out += schema_problems(item, type_name[5:-1], f"{path}[{i}]", models)
        return out
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            return [f"{path}: must be a map"]
        inner = type_name[type_name.index(",") + 1:-1].strip()
        out = []
        for k, v in value.items():
            out += schema_problems(v, inner, f"{path}.{k}", models)
        return out
    scalar = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    # A resource quantity (limits, requests) is an int-or-string the client models as a string.
    if type_name == "str" and ".resources." in path and isinstance(value, (int, float)) and \
            not isinstance(value, bool):
        return []
    if type_name in scalar:
        ok = isinstance(value, scalar[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool))
        return [] if ok else [f"{path}: must be a {type_name}, not {value!r}"]
    if type_name in ("object", "datetime", "date"):
        return []
    if not isinstance(value, dict):
        return [f"{path}: must be an object ({type_name})"]
    if type_name in GATEWAY_SCHEMA:
        fields = GATEWAY_SCHEMA[type_name]
        by_json = {k: t for k, t in fields.items()}
    else:
        cls = getattr(models, type_name, None)
        if cls is None:
            return [f"{path}: no schema for {type_name}"]
        by_json = {cls.attribute_map[a]: t for a, t in cls.openapi_types.items()}
    out = []
    for k, v in value.items():
        if k not in by_json:
            out.append(f"{path}.{k}: unknown field of {type_name}")
            continue
        out += schema_problems(v, by_json[k], f"{path}.{k}", models)
    return out


def check_client_schema(name, docs):
    try:
        from kubernetes.client import models
    except ImportError:
        return [f"{name}: the Kubernetes client's models are missing (Debian: python3-kubernetes)"]
    problems = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        where = f"{name}: object {i + 1}"
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            problems.append(f"{where}: not an object with apiVersion and kind")
            continue
        kind, api = doc["kind"], doc["apiVersion"]
        where = f"{name}: {kind} {doc.get('metadata', {}).get('name', '?')}"
        if api.startswith("gateway.networking.k8s.io/"):
            type_name = kind
            if kind not in GATEWAY_SCHEMA:
                problems.append(f"{where}: no schema for {api} {kind}")
                continue
        else:
            version = api.split("/")[-1]
            type_name = version[0].upper() + version[1:] + kind
            if getattr(models, type_name, None) is None:
                problems.append(f"{where}: {api} {kind} is not a Kubernetes 1.22 API object")
                continue
        problems += schema_problems(doc, type_name, where, models)
    return problems


def main(argv):
    if len(argv) >= 4 and argv[1] == "manifests":
        try:
            docs = list(yaml.safe_load_all(sys.stdin))
        except yaml.YAMLError as e:
            print(f"{argv[3]}: not YAML: {e}")
            return 1
        problems = check_manifests(argv[2], argv[3], docs)
    elif len(argv) >= 3 and argv[1] == "schema":
        try:
            docs = list(yaml.safe_load_all(sys.stdin))
        except yaml.YAMLError as e:
            print(f"{argv[2]}: not YAML: {e}")
            return 1
        problems = check_client_schema(argv[2], docs)
    elif len(argv) >= 5 and argv[1] == "options":
        problems = []
        for path in argv[4:]:
            problems += check_options_file(argv[2], argv[3], path)
    else:
        print(__doc__.strip().split("\n\n")[0], file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
