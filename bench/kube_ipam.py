"""Our host-local's kubernetes lease store beside whereabouts, both against one API server: N ADDs at once.

    python bench/kube_ipam.py [--sizes 1,20,100] [--rounds N] [--ours single,zygote] [--json FILE] [--keep]

One etcd and one kube-apiserver (tests/support/kubeapi.py, built by `make kube-programs`) serve both. Ours
runs as the plugin's user of deploy/kubernetes-ipam.yaml (a client certificate bound to its two
ClusterRoles, as tests/test_kube_store.py does); whereabouts (tools/versions.env's WHEREABOUTS, its binary
and its doc/crds from build/go) runs as the service account of its own doc/crds/daemonset-install.yaml, bound
to the ClusterRole there, from a kubeconfig with the account's token, as its installer writes one. Both
get the same network config (one /22, the IPAM section of a macvlan network), the same CNI_ARGS (a pod
that exists in the API: K8S_POD_NAMESPACE/NAME/UID; whereabouts refuses an ADD without K8S_POD_NAME and
keys its lock's identity and its allocations by it; neither plugin reads the pod on ADD or DEL, only
whereabouts' reconciler and our GC's sweep do) and the same CNI_NETNS (a namespace this script holds
open: a plugin's skeleton refuses its own).

For each size N, each round, each implementation (their order alternates round by round): one untimed ADD
and DEL (whereabouts' pool object then exists, as on any network in use; the executables are in the
page cache), then N ADDs at once (each an exec of the IPAM plugin as a runtime's main plugin makes it,
released together from a barrier), then N DELs at once. Measured: the ADD batch's wall time (first
exec to last exit), each ADD's time, failed ADDs, duplicates (an address handed to more than one ADD),
what the store holds after the ADDs and what it still holds after every DEL succeeded (leaks: ours, the
IPLease objects; whereabouts, the allocations in its IPPool objects and its OverlappingRangeIPReservation
objects). Leftovers are deleted before the next batch. The target (issue 24), at 100: ours at most 0.2x
whereabouts' ADD wall time (median of the rounds' ratios), 0 duplicates, 0 leaks, every ADD answered.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.kubeapi import GO, NAMESPACE, WHEREABOUTS, KubeAPI, make_pki  # noqa: E402
from tests.support.layouts import DIST, pinned  # noqa: E402

WHEREABOUTS_VERSION = pinned("WHEREABOUTS")
WHEREABOUTS_CRDS = GO / f"whereabouts-{WHEREABOUTS_VERSION}" / "crds"
WB_API = f"/apis/whereabouts.cni.cncf.io/v1alpha1/namespaces/{NAMESPACE}"
IPLEASES = f"/apis/cni-macvlan.io/v1/namespaces/{NAMESPACE}/ipleases"
SUBNET = "10.76.0.0/22"
NODE = "node-a"
POD_NAMESPACE = "default"
# the target at the largest size (issue 24): the most of whereabouts' ADD wall time ours may take
TARGET_SIZE = 100
TARGET_RATIO = 0.2


# ---- the pure parts: statistics, duplicates, leftovers, the verdict (tests/test_bench_kube_ipam.py)


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``samples``: a value that was measured."""
    if not samples:
        return math.nan
    s = sorted(samples)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def addresses_of(result: dict[str, Any]) -> list[str]:
    """The addresses of a CNI result, without their prefix lengths."""
    return [ip["address"].split("/")[0] for ip in result.get("ips", [])]


def duplicates(addresses: list[str]) -> int:
    """How many ADDs got an address another ADD of the batch got too (each address counted once less
    than it was handed out)."""
    return len(addresses) - len(set(addresses))


def whereabouts_held(pools: list[dict[str, Any]], reservations: list[dict[str, Any]]) -> dict[str, int]:
    """What whereabouts holds: the allocations of its IPPool objects (its record of who has which address,
    first) and its OverlappingRangeIPReservation objects (one per address too); after every DEL, neither."""
    allocations = sum(len((p.get("spec") or {}).get("allocations") or {}) for p in pools)
    return {"IPPool allocations": allocations, "OverlappingRangeIPReservations": len(reservations)}


def ours_held(leases: list[dict[str, Any]]) -> dict[str, int]:
    """What our store holds: its IPLease objects, one per leased address."""
    return {"IPLeases": len(leases)}


def recorded(held: dict[str, int]) -> int:
    """How many addresses the store records as leased (its first kind of record)."""
    return next(iter(held.values()), 0)


@dataclass
class Batch:
    """One implementation's N ADDs at once, then N DELs at once."""

    impl: str
    size: int
    round: int
    add_wall_ms: float
    add_ms: list[float]
    add_failures: list[str]
    duplicates: int
    held_after_add: dict[str, int]
    del_wall_ms: float
    del_failures: list[str]
    left_after_del: dict[str, int]
    errors_logged: dict[str, int] = field(default_factory=dict)
    # during the ADDs: CPU seconds of the plugins' processes, kube-apiserver and etcd; the API server's
    # requests by "VERB resource code"
    add_cpu_s: dict[str, float] = field(default_factory=dict)
    add_requests: dict[str, int] = field(default_factory=dict)


def summarize(batches: list[Batch]) -> dict[str, dict[int, dict[str, Any]]]:
    """impl -> size -> the rounds together: ADD wall time (median, min, max of the rounds), every ADD's
    p50/p99, and the sums of failures, duplicates and leftovers."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for b in batches:
        out.setdefault(b.impl, {}).setdefault(b.size, {"batches": []})["batches"].append(b)
    for sizes in out.values():
        for size, s in sizes.items():
            bs: list[Batch] = s.pop("batches")
            walls = [b.add_wall_ms for b in bs]
            every = [ms for b in bs for ms in b.add_ms]
            s.update(
                size=size,
                rounds=len(bs),
                wall_median=statistics.median(walls),
                wall_min=min(walls),
                wall_max=max(walls),
                p50=percentile(every, 50),
                p99=percentile(every, 99),
                failed=sum(len(b.add_failures) for b in bs),
                duplicates=sum(b.duplicates for b in bs),
                unrecorded=sum(max(0, b.size - len(b.add_failures) - recorded(b.held_after_add)) for b in bs),
                leaks=sum(sum(b.left_after_del.values()) for b in bs),
                del_failed=sum(len(b.del_failures) for b in bs),
                del_wall_median=statistics.median(b.del_wall_ms for b in bs),
            )
    return out


def requests_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The requests counted between two readings of the API server's counters (only those that grew)."""
    return {k: n - before.get(k, 0) for k, n in sorted(after.items()) if n > before.get(k, 0)}


METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_counts(metrics: str) -> dict[str, int]:
    """The API server's apiserver_request_total, by "VERB resource[/subresource] code" (Prometheus text)."""
    counts: dict[str, int] = {}
    for line in metrics.splitlines():
        m = METRIC.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m["labels"]))
        resource = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        key = f"{labels.get('verb', '')} {resource} {labels.get('code', '')}"
        counts[key] = counts.get(key, 0) + int(float(m["value"]))
    return counts


def costs(batches: list[Batch], size: int) -> dict[str, dict[str, Any]]:
    """impl -> what its ADD batches of ``size`` cost: CPU seconds by process (median of the rounds) and
    the API server's requests per ADD by kind (all rounds)."""
    out: dict[str, dict[str, Any]] = {}
    for impl in dict.fromkeys(b.impl for b in batches):
        bs = [b for b in batches if b.impl == impl and b.size == size]
        if not bs:
            continue
        cpu = {k: statistics.median(b.add_cpu_s.get(k, 0.0) for b in bs) for k in bs[0].add_cpu_s}
        total: dict[str, int] = {}
        for b in bs:
            for k, n in b.add_requests.items():
                total[k] = total.get(k, 0) + n
        per_add = {k: n / (size * len(bs)) for k, n in sorted(total.items(), key=lambda kv: -kv[1])}
        out[impl] = {
            "cpu_s": cpu,
            "requests_per_add": per_add,
            "wall_s": statistics.median(b.add_wall_ms for b in bs) / 1000,
        }
    return out


def wall_ratio(batches: list[Batch], ours: str, theirs: str, size: int) -> float | None:
    """The median over the rounds of ours' ADD wall time over theirs in the same round (a round's two
    batches ran minutes apart at most, on the same machine's load)."""
    mine = {b.round: b.add_wall_ms for b in batches if b.impl == ours and b.size == size}
    other = {b.round: b.add_wall_ms for b in batches if b.impl == theirs and b.size == size}
    pairs = [mine[r] / other[r] for r in sorted(mine) if r in other]
    return statistics.median(pairs) if pairs else None


def verdict(batches: list[Batch], ours: str, theirs: str, size: int = TARGET_SIZE) -> dict[str, Any] | None:
    """The target at ``size``: ratio <= TARGET_RATIO, no duplicate, no leak, no failed ADD or DEL."""
    ratio = wall_ratio(batches, ours, theirs, size)
    if ratio is None:
        return None
    s = summarize([b for b in batches if b.impl == ours and b.size == size])[ours][size]
    met = ratio <= TARGET_RATIO and s["duplicates"] == 0 and s["leaks"] == 0 and s["failed"] == 0
    met = met and s["del_failed"] == 0
    return {
        "impl": ours,
        "size": size,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "duplicates": s["duplicates"],
        "leaks": s["leaks"],
        "failed": s["failed"],
        "del_failed": s["del_failed"],
        "met": met,
    }


# ---- the implementations


class Implementation:
    name = ""
    executable: Path

    def __init__(self, api: KubeAPI, workdir: Path) -> None:
        self.api = api
        self.workdir = workdir
        self.env: dict[str, str] = {}
        self.calls = 0  # execs so far

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def held(self) -> dict[str, int]:
        """What the store holds now, by kind of record."""
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def errors_logged(self) -> dict[str, int]:
        """What the implementation logged since the last call, by kind (none: nothing to read)."""
        return {}

    def close(self) -> str:
        """Stop what it started; a warning to print, if any."""
        return ""


class Ours(Implementation):
    """dist/host-local (the single file), or the fast layout served by a zygote."""

    def __init__(self, api: KubeAPI, workdir: Path, layout: str) -> None:
        super().__init__(api, workdir)
        self.layout = layout
        self.zygote: Any = None
        names = {"single": "ours, single file", "fast": "ours, fast layout", "zygote": "ours, fast + zygote"}
        if layout not in names:
            raise SystemExit(f"unknown layout {layout} ({', '.join(names)})")
        self.name = names[layout]
        self.executable = DIST / "host-local" if layout == "single" else DIST / "fast" / "host-local"
        if not self.executable.exists():
            raise SystemExit(f"{self.executable} is missing: run `make build`")
        # none but the zygote's row may be served by a zygote (one may serve /run/cni-macvlan/zygote.sock)
        self.env = {"CNI_MACVLAN_ZYGOTE": ""}
        if layout == "zygote":
            from tests.support.zygote import Zygote

            tree = (DIST / "fast" / "macvlan").resolve()
            self.zygote = Zygote(tree, workdir / "zygote.sock", workdir / "zygote.log")
            self.env = self.zygote.env

    def config(self) -> dict[str, Any]:
        store = {"type": "kubernetes", "kubeconfig": str(self.api.kubeconfigs["node"]), "node": NODE}
        ipam = {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "store": store}
        return {"cniVersion": "1.0.0", "name": "kbench-ours", "type": "macvlan", "master": "eth0", "ipam": ipam}

    def held(self) -> dict[str, int]:
        return ours_held(self.api.leases())

    def reset(self) -> None:
        self.api.delete_leases()

    def close(self) -> str:
        if self.zygote is None:
            return ""
        served = self.zygote.served()
        self.zygote.stop()
        if served < self.calls:  # the launcher ran the others itself: the row is not the zygote's alone
            return f"WARNING: the zygote served {served} of {self.calls} execs: {self.zygote.log_text()[-500:]}"
        return ""


class Whereabouts(Implementation):
    """whereabouts as its daemonset-install.yaml deploys it: its service account, its flat config file."""

    name = f"whereabouts {WHEREABOUTS_VERSION}"

    def __init__(self, api: KubeAPI, workdir: Path) -> None:
        super().__init__(api, workdir)
        self.executable = WHEREABOUTS
        self.log = workdir / "whereabouts.log"
        self.log_read = 0
        install(api, workdir)
        self.kubeconfig = api.kubeconfigs["whereabouts"]
        # its flat file (whereabouts refuses to run without one: "config file not found"), where its
        # installer writes it, /etc/cni/net.d/whereabouts.d/whereabouts.conf; here in the workdir
        self.flat = workdir / "whereabouts.conf"
        self.flat.write_text(
            json.dumps({"datastore": "kubernetes", "kubernetes": {"kubeconfig": str(self.kubeconfig)}})
        )

    def config(self) -> dict[str, Any]:
        ipam = {
            "type": "whereabouts",
            "range": SUBNET,
            "kubernetes": {"kubeconfig": str(self.kubeconfig)},
            "configuration_path": str(self.flat),
            # errors only (its default is debug, to stderr): the retries and failures, not every step
            "log_file": str(self.log),
            "log_level": "error",
        }
        return {"cniVersion": "1.0.0", "name": "kbench-wb", "type": "macvlan", "master": "eth0", "ipam": ipam}

    def held(self) -> dict[str, int]:
        admin = self.api.admin()
        pools = admin.request("GET", f"{WB_API}/ippools")[1]["items"]
        reservations = admin.request("GET", f"{WB_API}/overlappingrangeipreservations")[1]["items"]
        return whereabouts_held(pools, reservations)

    def reset(self) -> None:
        admin = self.api.admin()
        for plural in ("ippools", "overlappingrangeipreservations"):
            admin.request("DELETE", f"{WB_API}/{plural}")

    def errors_logged(self) -> dict[str, int]:
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_read)
                text = f.read().decode(errors="replace")
                self.log_read = f.tell()
        except FileNotFoundError:
            return {}
        kinds: dict[str, int] = {}
        for line in text.splitlines():
            if "[error]" not in line:
                continue
            msg = line.split("[error]", 1)[1].strip()
            kind = msg.split(" (attempt")[0].split(":")[0][:60]
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds


def install(api: KubeAPI, workdir: Path) -> None:
    """whereabouts' CRDs and its service account, ClusterRole and binding (its doc/crds at the pinned
    version, kept by tools/go-programs.sh), and a kubeconfig with the account's token."""
    if not WHEREABOUTS.exists() or not WHEREABOUTS_CRDS.is_dir():
        raise SystemExit(f"{WHEREABOUTS} or {WHEREABOUTS_CRDS} is missing: run `make kube-programs`")
    docs = [d for f in sorted(WHEREABOUTS_CRDS.glob("whereabouts.cni.cncf.io_*.yaml")) for d in load(f)]
    docs += [
        d
        for d in load(WHEREABOUTS_CRDS / "daemonset-install.yaml")
        if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    ]
    for doc in docs:
        api.apply(doc)
    for plural in ("ippools", "overlappingrangeipreservations"):
        api.wait_served(f"{WB_API}/{plural}")
    _, answer = api.admin().request(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/whereabouts/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}},
        ok=(201,),
    )
    token = workdir / "whereabouts.token"
    token.write_text(answer["status"]["token"])
    api.write_kubeconfig("whereabouts", {"tokenFile": str(token)})


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ---- running a batch


@dataclass
class Call:
    start: float
    end: float
    code: int
    stdout: str
    stderr: str

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000

    def failure(self) -> str:
        return f"exit {self.code}: {(self.stdout or self.stderr).strip()[-300:]}"


def at_once(calls: list[tuple[Path, dict[str, str], bytes]], timeout: float) -> list[Call]:
    """Each (executable, environment, stdin) exec'd in a thread of its own, all released together."""
    barrier = threading.Barrier(len(calls))

    def one(job: tuple[Path, dict[str, str], bytes]) -> Call:
        exe, env, data = job
        barrier.wait(timeout=60)
        start = time.perf_counter()
        try:
            proc = subprocess.run([str(exe)], input=data, env=env, capture_output=True, timeout=timeout, check=False)
            code, out, err = proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:  # killed by subprocess.run
            code, out, err = -1, "", f"no answer in {timeout} s"
        return Call(start, time.perf_counter(), code, out, err)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def wall_ms(calls: list[Call]) -> float:
    return (max(c.end for c in calls) - min(c.start for c in calls)) * 1000


class Bench:
    def __init__(self, api: KubeAPI, netns: str, pods: list[dict[str, Any]], timeout: float) -> None:
        self.api = api
        self.netns = netns
        self.pods = pods
        self.timeout = timeout

    def env(self, impl: Implementation, verb: str, container_id: str, pod: dict[str, Any]) -> dict[str, str]:
        meta = pod["metadata"]
        args = (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={meta['namespace']};K8S_POD_NAME={meta['name']};"
            f"K8S_POD_UID={meta['uid']};K8S_POD_INFRA_CONTAINER_ID={container_id}"
        )
        return {
            "PATH": "/usr/bin:/bin",
            "CNI_COMMAND": verb,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(impl.executable.parent),
            "CNI_ARGS": args,
            **impl.env,
        }

    def verbs(self, impl: Implementation, verb: str, ids: list[str]) -> list[Call]:
        data = json.dumps(impl.config()).encode()
        jobs = [(impl.executable, self.env(impl, verb, cid, self.pods[i]), data) for i, cid in enumerate(ids)]
        impl.calls += len(jobs)
        return at_once(jobs, self.timeout)

    def warm(self, impl: Implementation, tag: str) -> None:
        """One ADD and DEL, untimed; whatever is left then is cleared."""
        for verb in ("ADD", "DEL"):
            [call] = self.verbs(impl, verb, [container_id(f"warm-{tag}")])
            if call.code != 0:
                raise SystemExit(f"{impl.name}: the warm-up {verb} failed: {call.failure()}")
        if any(impl.held().values()):
            impl.reset()
        impl.errors_logged()

    def cpu(self, impl: Implementation) -> dict[str, float]:
        """CPU seconds so far: the plugins' (our exec'd children, the zygote and the children it waited
        for), kube-apiserver's and etcd's."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        plugins = usage.ru_utime + usage.ru_stime
        zygote = getattr(impl, "zygote", None)
        if zygote is not None:
            plugins += proc_cpu(zygote.proc.pid, children=True)
        assert self.api.apiserver is not None and self.api.etcd is not None
        return {
            "plugins": plugins,
            "kube-apiserver": proc_cpu(self.api.apiserver.pid),
            "etcd": proc_cpu(self.api.etcd.pid),
        }

    def requests(self) -> dict[str, int]:
        """The API server's request counters now (its /metrics, as the admin)."""
        pki = self.api.pki
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        ctx.load_cert_chain(str(pki["admin"]), str(pki["admin-key"]))
        conn = http.client.HTTPSConnection("127.0.0.1", self.api.port, context=ctx, timeout=30)
        try:
            conn.request("GET", "/metrics")
            return request_counts(conn.getresponse().read().decode())
        finally:
            conn.close()

    def batch(self, impl: Implementation, size: int, round_: int) -> Batch:
        self.warm(impl, f"{impl.name}-{size}-{round_}")
        ids = [container_id(f"{impl.name}-{size}-{round_}-{i}") for i in range(size)]
        cpu, requests = self.cpu(impl), self.requests()
        adds = self.verbs(impl, "ADD", ids)
        cpu_after, requests_after = self.cpu(impl), self.requests()
        failures, got = [], []
        for call in adds:
            if call.code != 0:
                failures.append(call.failure())
                continue
            try:
                got += addresses_of(json.loads(call.stdout))
            except (ValueError, KeyError) as e:
                failures.append(f"unreadable result ({e}): {call.stdout[-300:]}")
        held_after_add = impl.held()
        dels = self.verbs(impl, "DEL", ids)
        left = impl.held()
        if any(left.values()):
            impl.reset()
        return Batch(
            impl=impl.name,
            size=size,
            round=round_,
            add_wall_ms=wall_ms(adds),
            add_ms=[c.ms for c in adds],
            add_failures=failures,
            duplicates=duplicates(got),
            held_after_add=held_after_add,
            del_wall_ms=wall_ms(dels),
            del_failures=[c.failure() for c in dels if c.code != 0],
            left_after_del=left,
            errors_logged=impl.errors_logged(),
            add_cpu_s={k: round(cpu_after[k] - cpu[k], 3) for k in cpu},
            add_requests=requests_delta(requests, requests_after),
        )


def proc_cpu(pid: int, children: bool = False) -> float:
    """A process's CPU seconds (user + system; with ``children``, also its waited-for children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def container_id(text: str) -> str:
    """A container ID as a runtime makes one (64 hex digits), from ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()


# ---- output


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "load_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "kubernetes": pinned("KUBERNETES"),
        "etcd": pinned("ETCD"),
        "whereabouts": WHEREABOUTS_VERSION,
    }


def table(summary: dict[str, dict[int, dict[str, Any]]]) -> str:
    head = (
        "| implementation | ADDs at once | rounds | ADD wall ms, median (min-max) | per-ADD p50 ms | per-ADD p99 ms "
        "| failed ADDs | duplicates | leases left after DEL | DEL wall ms, median |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    sizes = sorted({size for by_size in summary.values() for size in by_size})
    for size in sizes:
        for impl, by_size in summary.items():
            s = by_size.get(size)
            if s is None:
                continue
            lines.append(
                f"| {impl} | {size} | {s['rounds']} | {s['wall_median']:.0f} ({s['wall_min']:.0f}-{s['wall_max']:.0f}) "
                f"| {s['p50']:.0f} | {s['p99']:.0f} | {s['failed']} | {s['duplicates']} | {s['leaks']} "
                f"| {s['del_wall_median']:.0f} |"
            )
    return "\n".join(lines)


def cost_table(by_impl: dict[str, dict[str, Any]], size: int) -> str:
    lines = [
        f"| {size} ADDs at once | ADD wall s | CPU s: plugins | kube-apiserver | etcd | API requests per ADD |",
        "|---|---|---|---|---|---|",
    ]
    for impl, c in by_impl.items():
        cpu = c["cpu_s"]
        reqs = ", ".join(f"{k} {n:.2f}" for k, n in c["requests_per_add"].items() if n >= 0.05)
        lines.append(
            f"| {impl} | {c['wall_s']:.1f} | {cpu.get('plugins', 0):.1f} | {cpu.get('kube-apiserver', 0):.1f} "
            f"| {cpu.get('etcd', 0):.1f} | {reqs} |"
        )
    return "\n".join(lines)


# ---- main


def holder_of_a_netns() -> subprocess.Popen[bytes]:
    """A process in a network namespace of its own (CNI_NETNS: /proc/PID/ns/net); IPAM never enters it."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "infinity"], stdin=subprocess.DEVNULL)
    end = time.monotonic() + 5
    me = os.stat("/proc/self/ns/net").st_ino
    while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == me:  # until unshare has run
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit("unshare --net failed")
        time.sleep(0.01)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,20,100", help="how many ADDs at once, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ours", default="single,zygote", help="our layouts: single, fast, zygote")
    parser.add_argument("--timeout", type=float, default=300, help="seconds an exec may take before it is killed")
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "kube-ipam.json"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) and print it")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="kube-ipam-bench-"))
    api: KubeAPI | None = None
    holder = holder_of_a_netns()
    impls: list[Implementation] = []
    batches: list[Batch] = []
    try:
        api = KubeAPI(workdir, make_pki(workdir / "pki"))
        for layout in filter(None, args.ours.split(",")):
            impls.append(Ours(api, workdir, layout))  # one by one: each is closed whatever happens next
        impls.append(Whereabouts(api, workdir))
        pods = [api.create_pod(f"bench-{i}", NODE, POD_NAMESPACE) for i in range(max(sizes))]
        bench = Bench(api, f"/proc/{holder.pid}/ns/net", pods, args.timeout)
        info = machine()
        print(f"{info['cpus']} CPUs ({info['cpu']}), Linux {info['kernel']}, load {info['load_at_start'][0]:.2f}")
        for round_ in range(args.rounds):
            order = impls if round_ % 2 == 0 else impls[::-1]
            for size in sizes:
                for impl in order:
                    b = bench.batch(impl, size, round_)
                    batches.append(b)
                    print(
                        f"round {round_ + 1} {impl.name:22} {size:3} at once: ADD wall {b.add_wall_ms:7.0f} ms, "
                        f"p50 {percentile(b.add_ms, 50):6.0f} ms, failed {len(b.add_failures)}, "
                        f"duplicates {b.duplicates}, held {b.held_after_add}, left after DEL {b.left_after_del}, "
                        f"DEL wall {b.del_wall_ms:6.0f} ms"
                        + (f"; logged {b.errors_logged}" if b.errors_logged else ""),
                        flush=True,
                    )
                    for failure in b.add_failures[:3] + b.del_failures[:3]:
                        print(f"    {failure}", flush=True)
    finally:
        try:
            for impl in impls:
                if warning := impl.close():
                    print(warning)
        finally:
            if api is not None:
                api.close()
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = summarize(batches)
    print()
    print(table(summary))
    largest = max(sizes)
    where = costs(batches, largest)
    print()
    print(f"where the time of {largest} ADDs at once goes (CPU: medians of the rounds; requests: all rounds):")
    print(cost_table(where, largest))
    wb = Whereabouts.name
    verdicts = [v for impl in impls if isinstance(impl, Ours) if (v := verdict(batches, impl.name, wb))]
    for v in verdicts:
        print(
            f"target at {v['size']} ADDs at once, {v['impl']}: {v['ratio']:.3f}x whereabouts' wall time "
            f"(<= {v['target_ratio']}), {v['duplicates']} duplicates, {v['leaks']} leaks, {v['failed']} failed ADDs, "
            f"{v['del_failed']} failed DELs: {'met' if v['met'] else 'MISSED'}"
        )
    report = {
        "machine": info,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "summary": {impl: {str(k): v for k, v in by.items()} for impl, by in summary.items()},
        "targets": verdicts,
        "costs": {str(largest): where},
        "batches": [asdict(b) for b in batches],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
