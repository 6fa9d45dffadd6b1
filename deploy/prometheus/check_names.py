#!/usr/bin/env python3
"""Every metric that the alert rules and the Grafana dashboard query exists.

  check_names.py SRC_ROOT RULES.yml DASHBOARD.json

A name counts as existing when server/metrics/metrics.cc registers it (a histogram also has
its _bucket, _count and _sum series), when it is one of the deployments feature's names
below, when a `record:` rule of RULES defines it, or when Prometheus makes it itself (`up`).
Also checks the dashboard's shape: valid JSON, schemaVersion, a `datasource` variable of type
datasource for Prometheus, every panel and query on ${datasource}, unique panel ids, a
gridPos per panel, and panels for the queue, jobs, agents, webhooks, deployments and drift.
Names are found by a small PromQL tokenizer (strings, label matchers, grouping lists, ranges
and function names are skipped), not by Prometheus's parser: promtool checks the rules' syntax.
Needs python3 and PyYAML. Exit status 1 and one line per problem.
"""

import json
import re
import sys

import yaml

# Exported by the deployments feature (not in metrics.cc yet).
DEPLOYMENT_METRICS = {
    "assay_deployments_total",
    "assay_deployment_rollbacks_total",
    "assay_deployment_analysis_runs_total",
    "assay_deployment_active",
    "assay_environment_drift_psi",
}
PROMETHEUS_OWN = {"up"}
# Families the dashboard must show (the task's list: queue, jobs, agents, webhooks,
# deployments, drift).
DASHBOARD_MUST_USE = {
    "assay_queue_depth",
    "assay_dispatch_latency_seconds_bucket",
    "assay_jobs",
    "assay_connected_agents",
    "assay_webhooks_received_total",
    "assay_deployments_total",
    "assay_deployment_rollbacks_total",
    "assay_deployment_analysis_runs_total",
    "assay_environment_drift_psi",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}


def exported_metrics(src_root):
    text = open(f"{src_root}/server/metrics/metrics.cc", encoding="utf-8").read()
    names = set()
    for builder, name in re.findall(r"Build(Counter|Gauge|Histogram|Summary)\(\)\s*\.Name\(\"([a-z_:]+)\"\)", text):
        if builder in ("Histogram", "Summary"):  # only its suffixed series exist
            names |= {f"{name}_count", f"{name}_sum"}
        else:
            names.add(name)
        if builder == "Histogram":
            names.add(f"{name}_bucket")
    if len(names) < 5:
        raise SystemExit(f"check_names.py: found only {sorted(names)} in metrics.cc")
    return names


def metric_names(expr):
    """The metric (and recorded series) names a PromQL expression selects."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', expr)  # strings
    e = re.sub(r"\$\{?\w+\}?", "", e)  # Grafana variables ($__rate_interval, ${datasource})
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\blabel_values\s*\(([^,)]*),[^)]*\)", r"(\1)", e)  # (metric, label)
    e = re.sub(r"\b(label_replace|label_join)\s*\(", "(", e)  # their string args are gone already
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().split("\n\n")[0], file=sys.stderr)
        return 2
    src_root, rules_path, dashboard_path = argv[1:]
    known = exported_metrics(src_root) | DEPLOYMENT_METRICS | PROMETHEUS_OWN
    problems = []

    rules = yaml.safe_load(open(rules_path, encoding="utf-8"))
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for g in rules["groups"]:
        for r in g["rules"]:
            what = r.get("alert") or r.get("record")
            for name in sorted(metric_names(r["expr"]) - known - recorded):
                problems.append(f"{rules_path}: {what}: unknown metric {name}")

    try:
        dash = json.load(open(dashboard_path, encoding="utf-8"))
    except ValueError as e:
        print(f"{dashboard_path}: not valid JSON: {e}")
        return 1
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        problems.append(f"{dashboard_path}: schemaVersion {dash.get('schemaVersion')!r} (want >= 36)")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource") or {}
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append(f"{dashboard_path}: no `datasource` variable of type datasource for prometheus")
    used, ids = set(), set()

    def check_ds(where, obj):
        if (obj.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"{dashboard_path}: {where}: datasource is not ${{datasource}}")

    for name, v in variables.items():
        if v.get("type") == "query":
            check_ds(f"variable {name}", v)
            q = v.get("query")
            used |= metric_names(q.get("query", "") if isinstance(q, dict) else q or "")
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels += p.get("panels", [])  # collapsed rows
    for p in panels:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids:
            problems.append(f"{dashboard_path}: {where}: duplicate id")
        ids.add(p.get("id"))
        if not {"h", "w", "x", "y"} <= set(p.get("gridPos", {})):
            problems.append(f"{dashboard_path}: {where}: no gridPos")
        if p.get("type") == "row":
            continue
        check_ds(where, p)
        if not p.get("targets"):
            problems.append(f"{dashboard_path}: {where}: no query")
        for t in p.get("targets", []):
            check_ds(f"{where} query {t.get('refId')}", t)
            used |= metric_names(t.get("expr", ""))
    for name in sorted(used - known):
        problems.append(f"{dashboard_path}: unknown metric {name}")
    for name in sorted(DASHBOARD_MUST_USE - used):
        problems.append(f"{dashboard_path}: no panel shows {name}")

    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
