"""What a Kubernetes client costs on the exec path: its imports, and its first request, per exec.

    .venv/bin/python bench/kube_client_cost.py [--runs N] [--kubeconfig PATH --namespace NS]

Three clients: the ``kubernetes`` package (the well-kept client for Python, its CustomObjectsApi),
the stdlib's http.client + ssl, and ours (ipam/kube_client.py, on _socket + ssl). Each is measured
(a) ``-X importtime``: the sum of the top-level imports' cumulative times, median of N processes;
(b) a whole process that imports the client, reads the kubeconfig and makes one request (LIST of
ipleases, limit 1): what an exec'd plugin pays; (c) the same after a fork of a process that has
imported the client already: what a zygote's child pays (imports done, config and connection not).
With no --kubeconfig only (a) runs. Times in ms; interleaved runs, the first round discarded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
PATH = "/apis/cni-macvlan.io/v1/namespaces/{ns}/ipleases?limit=1"

IMPORTS = {
    "(nothing: python -c pass)": "pass",
    "kubernetes": "import kubernetes.client, kubernetes.config",
    "http.client": "import http.client, ssl, json",
    "ours": "import ipam.kube_client, ssl",
}

# what each client does for its first request, given KUBECONFIG and NS in the environment
REQUEST = {
    "kubernetes": """
import kubernetes.client, kubernetes.config
kubernetes.config.load_kube_config(config_file=os.environ["KUBECONFIG"])
api = kubernetes.client.CustomObjectsApi()
api.list_namespaced_custom_object("cni-macvlan.io", "v1", os.environ["NS"], "ipleases", limit=1)
""",
    "http.client": """
import http.client, ssl, json, base64, tempfile
from ipam.kube_client import from_kubeconfig
c = from_kubeconfig(os.environ["KUBECONFIG"])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(cadata=c.ca_data.decode()) if c.ca_data else ctx.load_verify_locations(c.ca_file)
ctx.load_cert_chain(c.cert, c.key)
conn = http.client.HTTPSConnection(c.host, c.port, context=ctx, timeout=5)
conn.request("GET", PATH.format(ns=os.environ["NS"]), headers={"Accept": "application/json"})
r = conn.getresponse(); json.loads(r.read()); assert r.status == 200, r.status
""",
    "(nothing: python -c pass)": "pass",
    "ours": """
from ipam.kube_client import Client, from_kubeconfig
Client(from_kubeconfig(os.environ["KUBECONFIG"]), 2, 5).request("GET", PATH.format(ns=os.environ["NS"]))
""",
}

PRELUDE = f"import os, sys, time\nsys.path.insert(0, {ROOT!r})\nPATH = {PATH!r}\n"


def import_ms(stmt: str) -> float:
    err = subprocess.run([PY, "-X", "importtime", "-c", stmt], capture_output=True, text=True, check=True).stderr
    total = 0
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if not name[1:].startswith(" "):  # a top-level import (nested ones are indented further)
            total += int(cumulative)
    return total / 1000


def process_ms(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([PY, "-c", PRELUDE + code], env=env, check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


FORKED = """
import os, time
{imports}
rd, wr = os.pipe()
for _ in range({runs}):
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
{body}
        except BaseException as e:
            os.write(2, repr(e).encode()); os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    print((time.perf_counter() - start) * 1000)
"""


def forked_ms(client: str, env: dict[str, str], runs: int) -> list[float]:
    body = "\n".join("            " + line for line in REQUEST[client].strip().splitlines())
    code = FORKED.format(imports=IMPORTS[client], runs=runs + 1, body=body)
    out = subprocess.run([PY, "-c", PRELUDE + code], env=env, check=True, capture_output=True, text=True).stdout
    return [float(x) for x in out.split()][1:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--kubeconfig")
    ap.add_argument("--namespace", default="default")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=ROOT)
    imports: dict[str, list[float]] = {c: [] for c in IMPORTS}
    procs: dict[str, list[float]] = {c: [] for c in IMPORTS}
    for i in range(args.runs + 1):
        for client, stmt in IMPORTS.items():
            ms = import_ms(stmt)
            if args.kubeconfig:
                env.update(KUBECONFIG=args.kubeconfig, NS=args.namespace)
                pms = process_ms(REQUEST[client], env)
                if i:
                    procs[client].append(pms)
            if i:
                imports[client].append(ms)
    print(f"{args.runs} runs each, medians in ms; the imports' sum includes the interpreter's own start-up ones")
    print("| client | imports (-X importtime) | exec: process, first request | zygote child: first request |")
    print("|---|---|---|---|")
    for client in IMPORTS:
        row = [f"{statistics.median(imports[client]):.1f}"]
        if args.kubeconfig:
            row.append(f"{statistics.median(procs[client]):.1f}")
            row.append(f"{statistics.median(forked_ms(client, env, args.runs)):.1f}")
        else:
            row += ["", ""]
        print(f"| {client} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
