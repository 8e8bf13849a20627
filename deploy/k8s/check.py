"""Checks deploy/k8s beyond the schemas (run by validate.sh in the
kubernetes-validate venv, which has PyYAML):

* every file the kustomization lists exists, and every manifest is listed;
* every workload runs as non-root, read-only, without privilege escalation,
  with readiness and liveness probes and a memory limit;
* only the coordinator reaches the key service, and nothing else is open
  to it (a default-deny policy exists);
* every `--flag` a container passes exists in the binary's own `--help` for
  that command (CIPHERFLOW_BIN), so the manifests cannot drift from the CLI.
"""

import pathlib
import subprocess
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
errors = []


def fail(msg):
    errors.append(msg)


kust = yaml.safe_load((HERE / "kustomization.yaml").read_text())
listed = set(kust["resources"])
present = {p.name for p in HERE.glob("*.yaml") if p.name != "kustomization.yaml"}
for missing in sorted(listed - present):
    fail(f"kustomization lists {missing}, which does not exist")
for unlisted in sorted(present - listed):
    fail(f"{unlisted} is not in the kustomization")

docs = []
for name in sorted(listed & present):
    docs += [d for d in yaml.safe_load_all((HERE / name).read_text()) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

workloads = by_kind.get("StatefulSet", []) + by_kind.get("Deployment", [])
if {w["metadata"]["name"] for w in workloads} != {"coordinator", "key-service", "platform"}:
    fail("expected the coordinator, key-service and platform workloads")
binary = __import__("os").environ.get("CIPHERFLOW_BIN")
for w in workloads:
    name = w["metadata"]["name"]
    pod = w["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    if not psc.get("runAsNonRoot"):
        fail(f"{name}: pod not runAsNonRoot")
    if pod.get("automountServiceAccountToken") is not False:
        fail(f"{name}: mounts a service-account token it does not need")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
            fail(f"{name}/{c['name']}: privilege escalation or a writable root filesystem")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(f"{name}/{c['name']}: capabilities not dropped")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                fail(f"{name}/{c['name']}: no {probe}")
        if "memory" not in c.get("resources", {}).get("limits", {}):
            fail(f"{name}/{c['name']}: no memory limit")
        if binary:
            args = c.get("args", [])
            words = [a for a in args if not a.startswith("-")]
            cmd = words[:2] if words[:1] == ["fl"] else words[:1]
            out = subprocess.run([binary, *cmd, "--help"], capture_output=True, text=True)
            if out.returncode != 0:
                fail(f"{name}: `cipherflow {' '.join(cmd)}` is not a command")
                continue
            for a in args:
                if a.startswith("--"):
                    flag = a.split("=", 1)[0]
                    if flag not in out.stdout:
                        fail(f"{name}: `cipherflow {' '.join(cmd)}` has no {flag}")

policies = by_kind.get("NetworkPolicy", [])
if not any(p["spec"]["podSelector"] == {} and "Ingress" in p["spec"]["policyTypes"] and not p["spec"].get("ingress")
           for p in policies):
    fail("no default-deny ingress policy")
ks = [p for p in policies if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "key-service"]
if len(ks) != 1:
    fail("exactly one policy must select the key service")
else:
    rules = ks[0]["spec"].get("ingress", [])
    sources = [f for r in rules for f in r.get("from", [])]
    if not rules or any("from" not in r for r in rules) or sources != [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "coordinator"}}}
    ]:
        fail("the key service must admit the coordinator's pods only")

if errors:
    for e in errors:
        print(f"deploy/k8s: {e}", file=sys.stderr)
    sys.exit(1)
print(f"deploy/k8s: {len(docs)} resources checked ({', '.join(sorted(by_kind))})")
