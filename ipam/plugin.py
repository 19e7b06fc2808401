"""The host-local CNI verbs: ADD, DEL, CHECK, GC and STATUS over the disk store.

Each verb reads as the spec's steps: parse the config, open the store, take its lock, act. ADD is
all or nothing: when a later range set fails, the addresses this ADD reserved are released before
the error is printed.
"""

from __future__ import annotations

import os

from cni_macvlan import __version__
from cni_macvlan.cni import cniargs, skel
from cni_macvlan.cni.errors import INTERNAL, INVALID_CONFIG, IO_FAILURE, NOT_AVAILABLE, CNIError
from cni_macvlan.cni.ip import format_ip, parse_cidr
from cni_macvlan.cni.request import Request, valid_attachments
from cni_macvlan.cni.result import IPConfig, Result, parse

from . import config as ipam_config
from .allocator import Allocation, AllocationError, allocate
from .disk import DiskStore
from .dns import parse_resolv_conf
from .store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CNI_ARGS_KEYS = frozenset({"IP"})


def open_store(data_dir: str, network: str) -> DiskStore:
    try:
        return DiskStore(data_dir, network)
    except OSError as e:
        raise CNIError(
            IO_FAILURE,
            f'host-local: cannot open the lease store "{os.path.join(data_dir, network)}": {e.strerror}',
            "check that ipam.dataDir is a writable directory",
        ) from None


def _io_error(e: OSError, store: DiskStore) -> CNIError:
    return CNIError(IO_FAILURE, f'host-local: lease store "{store.dir}": {e.strerror}', str(e.filename or ""))


def cmd_add(req: Request) -> Result:
    conf = ipam_config.load(req.config, cniargs.parse(req.args, CNI_ARGS_KEYS), req.version)
    dns: dict[str, Any] = {}
    if conf.resolv_conf:
        try:
            with open(conf.resolv_conf, encoding="utf-8") as f:
                dns = parse_resolv_conf(f.read())
        except (OSError, UnicodeDecodeError) as e:
            raise CNIError(INVALID_CONFIG, f'ipam.resolvConf "{conf.resolv_conf}": cannot read it: {e}') from None
    store = open_store(conf.data_dir, conf.name)
    try:
        with store:
            allocations = _allocate_all(store, conf, req.container_id, req.ifname)
    except OSError as e:
        raise _io_error(e, store) from None
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


def _store_dir(req: Request) -> tuple[str, str]:
    """dataDir and network for verbs that must work even when the ranges are broken (DEL, GC)."""
    ipam = ipam_config.ipam_section(req.config)
    return ipam_config.data_dir(ipam), req.network


def cmd_del(req: Request) -> None:
    cniargs.parse(req.args, CNI_ARGS_KEYS)
    data_dir, network = _store_dir(req)
    if not os.path.isdir(os.path.join(data_dir, network)):
        return  # nothing was ever allocated on this network here
    store = open_store(data_dir, network)
    try:
        with store:
            store.release_by_attachment(req.container_id, req.ifname)
            store.tidy()
    except OSError as e:
        raise _io_error(e, store) from None
    finally:
        store.close()


def cmd_check(req: Request) -> None:
    conf = ipam_config.load(req.config, cniargs.parse(req.args, CNI_ARGS_KEYS), req.version)
    if not os.path.isdir(os.path.join(conf.data_dir, conf.name)):
        raise CNIError(INTERNAL, f"host-local: Failed to find address added by container {req.container_id}")
    store = open_store(conf.data_dir, conf.name)
    try:
        with store:
            leases = store.get_by_attachment(req.container_id, req.ifname)
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
    data_dir, network = _store_dir(req)
    if not os.path.isdir(os.path.join(data_dir, network)):
        return
    store = open_store(data_dir, network)
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
    finally:
        store.close()
    if errors:
        raise CNIError(IO_FAILURE, "host-local: GC could not release every lease", "; ".join(errors))


def cmd_status(req: Request) -> None:
    ipam_config.load(req.config, {}, req.version)
    data_dir, network = _store_dir(req)
    path = os.path.join(data_dir, network)
    try:
        store = DiskStore(data_dir, network)
        try:
            with store:
                store.probe()
        finally:
            store.close()
    except OSError as e:
        raise CNIError(
            NOT_AVAILABLE,
            f'host-local: lease store "{path}" is not writable: {e.strerror}',
            "ADD can't reserve addresses until the data directory is writable",
        ) from None


PLUGIN = skel.Plugin(
    "host-local",
    __version__,
    {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status},
)
