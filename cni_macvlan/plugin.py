"""The macvlan CNI verbs. Each reads as the spec's steps; the work is in config, container and
ipam_client.

ADD is all or nothing: every step that changed the node pushes its undo, and any failure runs the
undos (IPAM DEL, link deleted) before the error is printed. DEL releases the IPAM lease first and
whatever happened to the namespace, never looks the parent up, and succeeds when things are gone.
"""

from __future__ import annotations

import os

from . import __version__, container, ipam_client, parents
from .cni import cniargs, faults, skel
from .cni.errors import INTERNAL, INVALID_CONFIG, CNIError
from .cni.request import Request, valid_attachments
from .cni.result import Interface, Result, parse, render
from .config import NetConf, ipam_type, load
from .netlink import Link, Netlink, NetNS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# IP= is for the IPAM; the macvlan plugin accepts it so that CNI_ARGS can carry both
CNI_ARGS_KEYS = frozenset({"MAC", "IP"})


def _load(req: Request) -> tuple[NetConf, parents.ParentSpec]:
    conf = load(req.config, cniargs.parse(req.args, CNI_ARGS_KEYS))
    spec = parents.plan(conf.master, conf.name)
    if conf.link_in_container and spec.kind != "link":
        raise CNIError(
            INVALID_CONFIG,
            "linkInContainer needs an existing master in the container's namespace",
            'parents are created on the node only: name the container\'s interface in "master"',
        )
    return conf, spec


def _check_mtu(conf: NetConf, master: Link) -> None:
    if conf.mtu > master.mtu:
        raise CNIError(INVALID_CONFIG, f"invalid MTU {conf.mtu}, must be [0, master MTU({master.mtu})]")


def _in_container_master(ct: Netlink, conf: NetConf) -> Link:
    master = ct.get_link(conf.master)
    if master is None:
        raise CNIError(
            INVALID_CONFIG, f'master "{conf.master}" not found in the container\'s namespace', 'fix "master"'
        )
    return master


def cmd_add(req: Request) -> Result:
    conf, spec = _load(req)
    store = parents.Store(parents.state_dir(req.config))
    attachment = (conf.name, req.container_id, req.ifname)
    if conf.ipam_type:
        ipam_client.precheck(req, conf.ipam_type)
    netns_fd = container.open_netns(req.netns)
    undo: list[Callable[[], object]] = []
    try:
        with Netlink() as node:
            master = None
            if not conf.link_in_container:
                master = parents.acquire(node, store, spec, attachment)
                undo.append(lambda: _release_parent(store, attachment))
                faults.step("parent-acquired")
                _check_mtu(conf, master)
            with NetNS(netns_fd), Netlink() as ct:
                if master is None:
                    master = _in_container_master(ct, conf)
                    _check_mtu(conf, master)
                link = container.create_macvlan(
                    ct if conf.link_in_container else node,
                    ct,
                    netns_fd,
                    master,
                    req.ifname,
                    conf.mode,
                    conf.mtu,
                    conf.mac,
                    conf.bcqueuelen,
                    conf.link_in_container,
                )
        undo.append(lambda: container.delete_link(netns_fd, req.ifname))
        faults.step("link-created")

        result = Result(interfaces=[Interface(req.ifname, link.mac, req.netns)])
        if conf.ipam_type:
            ipam_result = ipam_client.run(req, conf.ipam_type, "ADD")
            undo.append(lambda: ipam_client.run(req, conf.ipam_type, "DEL"))
            faults.step("ipam-added")
            if ipam_result is None or not ipam_result.ips:
                raise CNIError(INTERNAL, "IPAM plugin returned missing IP config")
            for ipc in ipam_result.ips:
                ipc.interface = 0
            result.ips = ipam_result.ips
            result.routes = ipam_result.routes
            result.dns = ipam_result.dns
            with NetNS(netns_fd), Netlink() as ct:
                container.configure(ct, link, result)
        else:
            with NetNS(netns_fd), Netlink() as ct:
                ct.set_up(link.index)
        if conf.dns:
            result.dns = conf.dns
        render(result, req.version)  # an L2 result can't be printed as 0.1/0.2: fail now, while undo can run
        return result
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception:  # the original error is the one to report
                pass
        raise
    finally:
        os.close(netns_fd)


def _release_parent(store: parents.Store, attachment: parents.Attachment) -> None:
    if not store.has_record():
        return  # we own no parent on this node
    with Netlink() as node:
        parents.release(node, store, attachment)


def _ipam_best_effort(req: Request, command: str) -> CNIError | None:
    """DEL and GC go on past an IPAM failure (to clean up what is ours) and report it at the end."""
    ipam = ipam_type(req.config)
    if not ipam:
        return None
    try:
        ipam_client.run(req, ipam, command)
    except CNIError as e:
        return e
    return None


def cmd_del(req: Request) -> None:
    ipam_error = _ipam_best_effort(req, "DEL")  # first, and whatever state the namespace is in
    if req.netns:
        try:
            fd = os.open(req.netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1  # the namespace is gone, and the link with it
        if fd >= 0:
            try:
                container.delete_link(fd, req.ifname)
            except OSError:
                pass  # not a namespace we can enter (already torn down): nothing of ours is left in it
            finally:
                os.close(fd)
    _release_parent(parents.Store(parents.state_dir(req.config)), (req.network, req.container_id, req.ifname))
    if ipam_error is not None:
        raise ipam_error


def cmd_check(req: Request) -> None:
    conf, spec = _load(req)
    if conf.ipam_type:
        ipam_client.run(req, conf.ipam_type, "CHECK")
    raw = req.config.get("prevResult")
    if not raw:
        raise CNIError(INTERNAL, "required prevResult missing")
    prev = parse(raw, req.version)
    iface = next((i for i in prev.interfaces if i.name == req.ifname), None)
    if iface is None:
        raise CNIError(INTERNAL, "container interface name missing in prevResult")
    if iface.sandbox != req.netns:
        raise CNIError(INTERNAL, f"sandbox in prevResult {iface.sandbox} doesn't match configured netns: {req.netns}")
    netns_fd = container.open_netns(req.netns)
    try:
        if not conf.link_in_container:
            with Netlink() as node:
                if node.get_link(spec.name) is None:
                    raise CNIError(INTERNAL, f'failed to lookup master "{spec.name}": Link not found')
        with NetNS(netns_fd), Netlink() as ct:
            if conf.link_in_container and ct.get_link(conf.master) is None:
                raise CNIError(INTERNAL, f'failed to lookup master "{conf.master}": Link not found')
            link = container.check_interface(ct, req.ifname, conf.mode, iface.mac)
            container.check_addresses(ct, link, prev)
            container.check_routes(ct, link, prev)
    finally:
        os.close(netns_fd)


def cmd_status(req: Request) -> None:
    ipam = ipam_type(req.config)
    if ipam:
        ipam_client.run(req, ipam, "STATUS")


def cmd_gc(req: Request) -> None:
    valid = valid_attachments(req.config)
    error = _ipam_best_effort(req, "GC")
    with Netlink() as node:
        parents.collect(node, parents.Store(parents.state_dir(req.config)), req.network, valid)
    if error is not None:
        raise error


PLUGIN = skel.Plugin(
    "macvlan",
    __version__,
    {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status},
)
