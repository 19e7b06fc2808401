"""The host-local CNI verbs: ADD, DEL, CHECK, GC and STATUS over a lease store (disk or etcd).

Each verb reads as the spec's steps: parse the config, open the store, take its lock, act. ADD is
all or nothing: when a later range set fails, the addresses this ADD reserved are released before
the error is printed.
"""

from __future__ import annotations

import os

from cni_macvlan import __version__
from cni_macvlan.cni import cniargs, skel
from cni_macvlan.cni.errors import INTERNAL, INVALID_CONFIG, IO_FAILURE, NOT_AVAILABLE, TRY_AGAIN_LATER, CNIError
from cni_macvlan.cni.ip import format_ip, parse_cidr
from cni_macvlan.cni.request import Request, valid_attachments
from cni_macvlan.cni.result import IPConfig, Result, parse

from . import config as ipam_config
from .allocator import Allocation, AllocationError, allocate
from .config import StoreConfig
from .disk import DiskStore
from .dns import parse_resolv_conf, read_resolv_conf
from .store import Store, StoreRefused, StoreUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CNI_ARGS_KEYS = frozenset({"IP"})


def open_store(data_dir: str, network: str, where: StoreConfig | None = None, create: bool = True) -> Store | None:
    """The network's store: on disk under ``data_dir`` (None when ``create`` is off and it does not
    exist: nothing was ever allocated here), or on etcd."""
    if where is not None and where.kind == "etcd":
        from .etcd import EtcdStore
        from .etcd_client import Client

        return EtcdStore(Client(where.endpoints, where.timeout, where.deadline, where.tls), where.prefix, network)
    if not create and not os.path.isdir(os.path.join(data_dir, network)):
        return None
    try:
        return DiskStore(data_dir, network)
    except OSError as e:
        raise CNIError(
            IO_FAILURE,
            f'host-local: cannot open the lease store "{os.path.join(data_dir, network)}": {e.strerror}',
            "check that ipam.dataDir is a writable directory",
        ) from None


STORE_ERRORS = (OSError, StoreUnavailable, StoreRefused)


def _store_error(e: Exception, store: Store) -> CNIError:
    """One of STORE_ERRORS as the runtime should see it: code 11 when etcd may answer later."""
    if isinstance(e, StoreUnavailable):
        return CNIError(
            TRY_AGAIN_LATER, f"host-local: the etcd lease store is unavailable: {e}", "try again when etcd has a quorum"
        )
    if isinstance(e, StoreRefused):
        return CNIError(IO_FAILURE, f"host-local: the etcd lease store refused a request: {e}")
    assert isinstance(e, OSError)
    where = store.dir if isinstance(store, DiskStore) else "etcd"
    return CNIError(IO_FAILURE, f'host-local: lease store "{where}": {e.strerror}', str(e.filename or ""))


def cmd_add(req: Request) -> Result:
    conf = ipam_config.load(req.config, cniargs.parse(req.args, CNI_ARGS_KEYS), req.version)
    dns: dict[str, Any] = {}
    if conf.resolv_conf:
        try:
            dns = parse_resolv_conf(read_resolv_conf(conf.resolv_conf))
        except (OSError, UnicodeDecodeError) as e:
            raise CNIError(INVALID_CONFIG, f'ipam.resolvConf "{conf.resolv_conf}": cannot read it: {e}') from None
    store = open_store(conf.data_dir, conf.name, conf.store)
    assert store is not None
    try:
        with store:
            allocations = _allocate_all(store, conf, req.container_id, req.ifname)
    except STORE_ERRORS as e:
        raise _store_error(e, store) from None
    finally:
        store.close()
    ips = [IPConfig(a.address, a.gateway_ip) for a in allocations]
    return Result(ips=ips, routes=conf.routes, dns=dns)


def _allocate_all(store: Store, conf: ipam_config.IPAMConfig, cid: str, ifname: str) -> list[Allocation]:
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
    done: list[Allocation] = []
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


def _existing_store(req: Request) -> Store | None:
    """The store for verbs that must work even when the ranges are broken (DEL, GC); None when
    nothing was ever allocated on this network here."""
    ipam = ipam_config.ipam_section(req.config)
    return open_store(ipam_config.data_dir(ipam), req.network, ipam_config.store_config(ipam), create=False)


def cmd_del(req: Request) -> None:
    cniargs.parse(req.args, CNI_ARGS_KEYS)
    store = _existing_store(req)
    if store is None:
        return
    try:
        with store:
            store.release_by_attachment(req.container_id, req.ifname)
            store.tidy()
    except STORE_ERRORS as e:
        raise _store_error(e, store) from None
    finally:
        store.close()


def cmd_check(req: Request) -> None:
    conf = ipam_config.load(req.config, cniargs.parse(req.args, CNI_ARGS_KEYS), req.version)
    store = open_store(conf.data_dir, conf.name, conf.store, create=False)
    if store is None:
        raise CNIError(INTERNAL, f"host-local: Failed to find address added by container {req.container_id}")
    try:
        with store:
            leases = store.get_by_attachment(req.container_id, req.ifname)
    except STORE_ERRORS as e:
        raise _store_error(e, store) from None
    finally:
        store.close()
    if not leases:
        raise CNIError(INTERNAL, f"host-local: Failed to find address added by container {req.container_id}")
    # Beyond upstream: every prevResult address inside our ranges must be leased to this attachment.
    leased = {(lease.family, lease.value) for lease in leases}
    prev = req.config.get("prevResult")
    if isinstance(prev, dict):
        for ipc in parse(prev, req.version).ips:
            family, value, _ = parse_cidr(ipc.address)
            in_ours = any(rs.contains(family, value) for rs in conf.range_sets)
            if in_ours and (family, value) not in leased:
                raise CNIError(
                    INTERNAL,
                    f"host-local: address {format_ip(family, value)} in prevResult is not leased to "
                    f"container {req.container_id} ifname {req.ifname}",
                )


def cmd_gc(req: Request) -> None:
    valid = valid_attachments(req.config)
    valid_ids = {cid for cid, _ in valid}
    store = _existing_store(req)
    if store is None:
        return
    errors = []
    try:
        with store:
            for lease in store.leases():
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
            store.tidy()
    except STORE_ERRORS as e:
        raise _store_error(e, store) from None
    finally:
        store.close()
    if errors:
        raise CNIError(IO_FAILURE, "host-local: GC could not release every lease", "; ".join(errors))


def cmd_status(req: Request) -> None:
    conf = ipam_config.load(req.config, {}, req.version)
    data_dir = conf.data_dir
    try:
        store = (
            DiskStore(data_dir, req.network)
            if conf.store.kind == "disk"
            else open_store(data_dir, req.network, conf.store)
        )
        assert store is not None
        try:
            with store:
                store.probe()
        finally:
            store.close()
    except OSError as e:
        raise CNIError(
            NOT_AVAILABLE,
            f'host-local: lease store "{os.path.join(data_dir, req.network)}" is not writable: {e.strerror}',
            "ADD can't reserve addresses until the data directory is writable",
        ) from None
    except (StoreUnavailable, StoreRefused) as e:
        raise CNIError(
            NOT_AVAILABLE,
            f"host-local: the etcd lease store is not usable: {e}",
            "ADD can't reserve addresses until etcd answers with a quorum",
        ) from None


PLUGIN = skel.Plugin(
    "host-local",
    __version__,
    {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status},
)
