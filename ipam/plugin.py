"""The host-local CNI verbs: ADD, DEL, CHECK, GC and STATUS over a lease store (disk or etcd).

Each verb reads as the spec's steps: parse the config, open the store, take its lock, act. ADD is
all or nothing: when a later range set fails, the addresses this ADD reserved are released before
the error is printed.
"""

from __future__ import annotations

from cni import cniargs, skel
from cni.errors import INTERNAL, INVALID_CONFIG, IO_FAILURE, CNIError
from cni.ip import format_ip
from cni.request import Request, valid_attachments
from cni.result import IPConfig, Result, parse

from . import config as ipam_config
from . import stores
from .allocator import AllocationError, allocate
from .config import StoreConfig
from .dns import parse_resolv_conf, read_resolv_conf
from .store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CNI_ARGS_KEYS = frozenset({"IP"})


def load_config(req: Request) -> ipam_config.IPAMConfig:
    """The request's IPAM config, checked (also what the macvlan plugin's in-process call parses once)."""
    return ipam_config.load(req.config, cniargs.parse(req.args, CNI_ARGS_KEYS), req.version)


POD_KEYS = frozenset({"K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_UID"})


def _pod(req: Request) -> dict[str, str]:
    """The pod a runtime names in CNI_ARGS (the Kubernetes store records it for its sweep)."""
    try:
        args = cniargs.parse(req.args + ";IgnoreUnknown=1", POD_KEYS)
    except CNIError:
        return {}  # malformed args are load_config's to report
    pod = {"namespace": args.get("K8S_POD_NAMESPACE", ""), "name": args.get("K8S_POD_NAME", ""),
           "uid": args.get("K8S_POD_UID", "")}  # fmt: skip
    return {k: v for k, v in pod.items() if v}


def _open(
    conf: StoreConfig, data_dir: str, network: str, verb: str, create: bool = True, pod: dict[str, str] | None = None
) -> Store | None:
    try:
        return stores.open_store(conf, data_dir, network, create, pod)
    except stores.ERRORS as e:
        raise stores.cni_error(e, stores.where(conf, data_dir, network), verb, opening=True) from None


def cmd_add(req: Request, conf: ipam_config.IPAMConfig | None = None) -> Result:
    conf = conf or load_config(req)
    dns: dict[str, Any] = {}
    if conf.resolv_conf:
        try:
            dns = parse_resolv_conf(read_resolv_conf(conf.resolv_conf))
        except (OSError, UnicodeDecodeError) as e:
            raise CNIError(INVALID_CONFIG, f'ipam.resolvConf "{conf.resolv_conf}": cannot read it: {e}') from None
    store = _open(conf.store, conf.data_dir, conf.name, "ADD", pod=_pod(req))
    assert store is not None
    try:
        with store:
            allocations = _allocate_all(store, conf, req.container_id, req.ifname)
    except stores.ERRORS as e:
        raise stores.cni_error(e, store.where) from None
    finally:
        store.close()
    return Result(ips=allocations, routes=conf.routes, dns=dns)


def _allocate_all(store: Store, conf: ipam_config.IPAMConfig, cid: str, ifname: str) -> list[IPConfig]:
    """One address per range set; on any failure release what this call reserved, then raise."""
    # Match requested addresses to range sets first, so a request that can't be honoured fails
    # before anything is reserved (upstream reserves, then releases, and moves last_reserved_ip).
    pending = list(conf.requested)
    wanted: list[tuple[int, int] | None] = []
    for rs in conf.range_sets:
        requested = next((ip for ip in pending if rs.contains(*ip)), None)
        if requested is not None:
            pending.remove(requested)
        wanted.append(requested)
    if pending:
        listed = " ".join(format_ip(*ip) for ip in pending)
        raise CNIError(
            INTERNAL,
            f"failed to allocate all requested IPs: {listed}",
            "a requested address must lie inside a range (between its start and end) of a range set, one per range set",
        )
    done: list[IPConfig] = []
    try:
        for index, rs in enumerate(conf.range_sets):
            try:
                done.append(allocate(store, rs, str(index), cid, ifname, conf.exclude, wanted[index]))
            except AllocationError as e:
                raise CNIError(INTERNAL, f"failed to allocate for range {index}: {e}") from None
    except BaseException:
        for a in done:
            store.release(a.family, a.value)
        raise
    return done


def _existing_store(req: Request, verb: str) -> Store | None:
    """The store for verbs that must work even when the ranges are broken (DEL, GC); None when
    nothing was ever allocated on this network here."""
    ipam = ipam_config.ipam_section(req.config)
    return _open(ipam_config.store_config(ipam), ipam_config.data_dir(ipam), req.network, verb, create=False)


def cmd_del(req: Request, conf: ipam_config.IPAMConfig | None = None) -> None:
    cniargs.parse(req.args, CNI_ARGS_KEYS)
    store = _existing_store(req, "DEL")
    if store is None:
        return
    try:
        with store:
            store.release_by_attachment(req.container_id, req.ifname)
            store.tidy()
    except stores.ERRORS as e:
        raise stores.cni_error(e, store.where) from None
    finally:
        store.close()


def cmd_check(req: Request, conf: ipam_config.IPAMConfig | None = None) -> None:
    conf = conf or load_config(req)
    store = _open(conf.store, conf.data_dir, conf.name, "CHECK", create=False)
    if store is None:
        raise CNIError(INTERNAL, f"host-local: Failed to find address added by container {req.container_id}")
    try:
        with store:
            leases = store.get_by_attachment(req.container_id, req.ifname)
    except stores.ERRORS as e:
        raise stores.cni_error(e, store.where) from None
    finally:
        store.close()
    if not leases:
        raise CNIError(INTERNAL, f"host-local: Failed to find address added by container {req.container_id}")
    # Beyond upstream: every prevResult address inside our ranges must be leased to this attachment.
    leased = {(lease.family, lease.value) for lease in leases}
    prev = req.config.get("prevResult")
    if isinstance(prev, dict):
        for ipc in parse(prev, req.version).ips:
            in_ours = any(rs.contains(ipc.family, ipc.value) for rs in conf.range_sets)
            if in_ours and (ipc.family, ipc.value) not in leased:
                raise CNIError(
                    INTERNAL,
                    f"host-local: address {format_ip(ipc.family, ipc.value)} in prevResult is not leased to "
                    f"container {req.container_id} ifname {req.ifname}",
                )


def cmd_gc(req: Request, conf: ipam_config.IPAMConfig | None = None) -> None:
    valid = valid_attachments(req.config)
    valid_ids = {cid for cid, _ in valid}
    store = _existing_store(req, "GC")
    if store is None:
        return
    errors = []
    try:
        with store:
            for lease in store.gc_leases():
                keep = (
                    lease.container_id in valid_ids
                    if lease.ifname is None
                    else (lease.container_id, lease.ifname) in valid
                )
                if not keep:
                    try:
                        store.release(lease.family, lease.value)
                    except OSError as e:  # go on past errors and report them, as the spec asks
                        errors.append(f"{format_ip(lease.family, lease.value)}: {e.strerror}")
            store.sweep()
            store.tidy()
    except stores.ERRORS as e:
        raise stores.cni_error(e, store.where) from None
    finally:
        store.close()
    if errors:
        raise CNIError(IO_FAILURE, "host-local: GC could not release every lease", "; ".join(errors))


def cmd_status(req: Request, conf: ipam_config.IPAMConfig | None = None) -> None:
    conf = conf or ipam_config.load(req.config, {}, req.version)
    where = stores.where(conf.store, conf.data_dir, req.network)
    try:
        store = stores.open_store(conf.store, conf.data_dir, req.network)
        assert store is not None
        try:
            with store:
                store.probe()
        finally:
            store.close()
    except stores.ERRORS as e:
        raise stores.cni_error(e, where, "STATUS") from None


VERBS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}


def call(command: str, req: Request, conf: ipam_config.IPAMConfig | None = None) -> Result | None:
    """A verb run in-process for a link plugin (cni/delegate.py, IN_PROCESS), with the config it
    already read (load_config), if any."""
    return VERBS[command](req, conf)


PLUGIN = skel.Plugin("host-local", VERBS)
