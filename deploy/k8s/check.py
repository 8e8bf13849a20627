"""Checks deploy/k8s beyond the schemas (run by validate.sh in the
kubernetes-validate venv, which has PyYAML):

* every file the kustomization lists exists, and every manifest is listed;
* every workload runs as non-root, read-only, without privilege escalation,
  with readiness and liveness probes and a memory limit;
* only the coordinator reaches the key service, and nothing else is open
  to it (a default-deny policy exists);
* every `--flag` a container passes exists in the binary's own `--help` for
  that command (CIPHERFLOW_BIN), so the manifests cannot drift from the CLI;
* the Postgres overlay (postgres/) patches only the coordinator, keeps its
  password out of the arguments, and — merged the way kustomize merges
  containers, env, mounts and volumes by name — yields a StatefulSet that
  passes the same checks; it is written to the path given as the first
  argument, for validate.sh to check against the schemas;
* the regions overlay (regions/) adds only region workloads, each passing
  the same checks, named by its `--id`, mounting its own Secret with only
  its own files (never another region's, the coordinator's or the CA's
  key), dialling the coordinator, and an ingress policy for them.
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


def check_workload(w):
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

for w in workloads:
    check_workload(w)


def merge_by(key, base, patch):
    """A list of dicts merged by `key`, as kustomize merges them."""
    out = [dict(x) for x in base]
    for p in patch:
        for x in out:
            if x.get(key) == p.get(key):
                x.update(p)
                break
        else:
            out.append(dict(p))
    return out


overlay = HERE / "postgres"
okust = yaml.safe_load((overlay / "kustomization.yaml").read_text())
if okust.get("resources") != [".."]:
    fail("postgres/: the overlay must build on the base (resources: [..])")
import copy

merged = None
for patch_ref in okust.get("patches", []):
    patch = yaml.safe_load((overlay / patch_ref["path"]).read_text())
    if (patch["kind"], patch["metadata"]["name"]) != ("StatefulSet", "coordinator"):
        fail(f"postgres/: {patch_ref['path']} patches something other than the coordinator")
        continue
    base = next(w for w in workloads if w["metadata"]["name"] == "coordinator")
    merged = copy.deepcopy(base)
    pod, ppod = merged["spec"]["template"]["spec"], patch["spec"]["template"]["spec"]
    for pc in ppod.get("containers", []):
        c = next(c for c in pod["containers"] if c["name"] == pc["name"])
        if "args" in pc:
            c["args"] = pc["args"]
        c["env"] = merge_by("name", c.get("env", []), pc.get("env", []))
        c["volumeMounts"] = merge_by("mountPath", c.get("volumeMounts", []), pc.get("volumeMounts", []))
        if any("PGPASSWORD" in a or ("@" in a and ":" in a.split("@")[0].split("//")[-1])
               for a in pc.get("args", []) if a.startswith("--state=postgres")):
            fail("postgres/: the database password must come from a Secret, not the arguments")
        if not any(e.get("name") == "PGPASSWORD" and "secretKeyRef" in e.get("valueFrom", {})
                   for e in c["env"]):
            fail("postgres/: PGPASSWORD must come from a Secret")
    pod["volumes"] = merge_by("name", pod.get("volumes", []), ppod.get("volumes", []))
    mounted = {m["name"] for c in pod["containers"] for m in c["volumeMounts"]}
    declared = {v["name"] for v in pod["volumes"]} | {
        t["metadata"]["name"] for t in merged["spec"].get("volumeClaimTemplates", [])}
    for m in sorted(mounted - declared):
        fail(f"postgres/: the volume {m} is mounted but not declared")
    check_workload(merged)
if merged is None:
    fail("postgres/: no coordinator patch")
elif len(sys.argv) > 1:
    pathlib.Path(sys.argv[1]).write_text(yaml.safe_dump(merged))

regions_dir = HERE / "regions"
rkust = yaml.safe_load((regions_dir / "kustomization.yaml").read_text())
if rkust.get("resources", [])[:1] != [".."]:
    fail("regions/: the overlay must build on the base (resources: [.., ...])")
rfiles = [r for r in rkust.get("resources", [])[1:]]
for unlisted in sorted({p.name for p in regions_dir.glob("*.yaml")} - set(rfiles) - {"kustomization.yaml"}):
    fail(f"regions/: {unlisted} is not in the kustomization")
rdocs = []
for name in rfiles:
    path = regions_dir / name
    if not path.exists():
        fail(f"regions/: kustomization lists {name}, which does not exist")
        continue
    rdocs += [d for d in yaml.safe_load_all(path.read_text()) if d]
rworkloads = [d for d in rdocs if d["kind"] in ("StatefulSet", "Deployment")]
if not rworkloads:
    fail("regions/: no region workload")
for w in rworkloads:
    name = w["metadata"]["name"]
    check_workload(w)
    c = w["spec"]["template"]["spec"]["containers"][0]
    args = c.get("args", [])
    if args[:2] != ["fl", "region"] or f"--id={name}" not in args:
        fail(f"regions/{name}: must run `fl region --id={name}`")
    if not any(a.startswith("--coordinator=https://") for a in args):
        fail(f"regions/{name}: no --coordinator=https://…")
    for v in w["spec"]["template"]["spec"]["volumes"]:
        sec = v.get("secret")
        if not sec:
            continue
        if sec["secretName"] != f"{name}-pki":
            fail(f"regions/{name}: mounts the Secret {sec['secretName']}, not its own {name}-pki")
        for item in sec.get("items", []):
            path = item["path"]
            if path not in ("ca.pem", "roster.json") and not path.startswith(f"regions/{name}/"):
                fail(f"regions/{name}: mounts {path}, which is not its own")
rpolicies = [d for d in rdocs if d["kind"] == "NetworkPolicy"]
if not any(p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "region"
           for p in rpolicies):
    fail("regions/: no ingress policy for the regions")
if len(sys.argv) > 2:
    pathlib.Path(sys.argv[2]).write_text(yaml.safe_dump_all(rdocs))

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
print(f"deploy/k8s: {len(docs)} resources checked ({', '.join(sorted(by_kind))}), "
      f"and {len(rdocs)} of the regions overlay")
