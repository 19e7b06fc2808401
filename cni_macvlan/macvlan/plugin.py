"""The macvlan CNI verbs. Each reads as the spec's steps: the config (config.py) says what is asked,
the parents (links/parents.py) and the container (links/container.py) do the kernel's part, the
IPAM is called through one seam (ipam_call.py).

ADD is all or nothing: every step that changed the node pushes its undo, and any failure runs the
undos (IPAM DEL, link deleted, parent released) before the error is printed. DEL releases the IPAM
lease first and whatever happened to the namespace, never looks the parent up, and succeeds when
things are gone.
"""

from __future__ import annotations

from .. import __version__
from ..cni import faults, skel
from ..cni.errors import INTERNAL, INVALID_CONFIG, CNIError
from ..cni.request import Request, valid_attachments
from ..cni.result import Interface, Result, parse, render
from ..links import parents
from ..links.container import Container, delete_link_at
from ..links.netlink import Link, Netlink
from . import config
from .config import NetConf
from .ipam_call import Ipam

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Undo = Callable[[], object]


def _master(
    conf: NetConf, node: Netlink, ct: Container, att: parents.Attachment, undo: list[Callable[[], object]]
) -> Link:
    """The checks only the kernel can make, in one step: the parent exists (or is ours to create:
    links/parents.acquire, which records the attachment) and can carry a link of the configured MTU."""
    if conf.link_in_container:
        master = ct.master(conf.master)
    else:
        store = parents.Store(conf.state_dir)
        master = parents.acquire(node, store, conf.parent, att)
        undo.append(lambda: _release_parent(store, att))
        faults.step("parent-acquired")
    if conf.mtu > master.mtu:
        raise CNIError(INVALID_CONFIG, f"invalid MTU {conf.mtu}, must be [0, master MTU({master.mtu})]")
    return master


def cmd_add(req: Request) -> Result:
    conf = config.load(req)
    ipam = Ipam(req, conf.ipam_type) if conf.ipam_type else None
    if ipam is not None:
        ipam.precheck()
    undo: list[Undo] = []
    with Container(req.netns) as ct:
        try:
            with Netlink() as node:
                master = _master(conf, node, ct, (conf.name, req.container_id, req.ifname), undo)
                creator = None if conf.link_in_container else node
                link = ct.create_macvlan(creator, master, req.ifname, conf.mode, conf.mtu, conf.mac, conf.bcqueuelen)
            undo.append(lambda: ct.delete(req.ifname))
            faults.step("link-created")

            result = Result(interfaces=[Interface(req.ifname, link.mac, req.netns)])
            if ipam is not None:
                ipam_result = ipam.run("ADD")
                undo.append(lambda: ipam.run("DEL"))
                faults.step("ipam-added")
                if ipam_result is None or not ipam_result.ips:
                    raise CNIError(INTERNAL, "IPAM plugin returned missing IP config")
                for ipc in ipam_result.ips:
                    ipc.interface = 0
                result.ips = ipam_result.ips
                result.routes = ipam_result.routes
                result.dns = ipam_result.dns
                ct.configure(link, result)
            else:
                ct.set_up(link)
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


def _release_parent(store: parents.Store, attachment: parents.Attachment) -> None:
    if not store.has_record():
        return  # we own no parent on this node
    with Netlink() as node:
        parents.release(node, store, attachment)


def _ipam_best_effort(req: Request, ipam_type: str, command: str) -> CNIError | None:
    """DEL and GC go on past an IPAM failure (to clean up what is ours) and report it at the end."""
    if not ipam_type:
        return None
    try:
        Ipam(req, ipam_type).run(command)
    except CNIError as e:
        return e
    return None


def cmd_del(req: Request) -> None:
    conf = config.load_teardown(req)
    store = parents.Store(conf.state_dir)
    store.check()  # a stateDir we must refuse: refused before anything changes
    ipam_error = _ipam_best_effort(req, conf.ipam_type, "DEL")  # first, and whatever state the namespace is in
    if req.netns:
        delete_link_at(req.netns, req.ifname)
    _release_parent(store, (req.network, req.container_id, req.ifname))
    if ipam_error is not None:
        raise ipam_error


def cmd_check(req: Request) -> None:
    conf = config.load(req)
    if conf.ipam_type:
        Ipam(req, conf.ipam_type).run("CHECK")
    if not conf.prev:
        raise CNIError(INTERNAL, "required prevResult missing")
    prev = parse(conf.prev, req.version)
    iface = next((i for i in prev.interfaces if i.name == req.ifname), None)
    if iface is None:
        raise CNIError(INTERNAL, "container interface name missing in prevResult")
    if iface.sandbox != req.netns:
        raise CNIError(INTERNAL, f"sandbox in prevResult {iface.sandbox} doesn't match configured netns: {req.netns}")
    with Container(req.netns) as ct:
        if conf.link_in_container:
            parents.require(ct.nl, conf.master)
        else:
            with Netlink() as node:
                parents.require(node, conf.parent.name)
        ct.check(req.ifname, conf.mode, iface.mac, prev)


def cmd_status(req: Request) -> None:
    conf = config.load_teardown(req)
    if conf.ipam_type:
        Ipam(req, conf.ipam_type).run("STATUS")


def cmd_gc(req: Request) -> None:
    valid = valid_attachments(req.config)
    conf = config.load_teardown(req)
    store = parents.Store(conf.state_dir)
    store.check()
    error = _ipam_best_effort(req, conf.ipam_type, "GC")
    with Netlink() as node:
        parents.collect(node, store, req.network, valid)
    if error is not None:
        raise error


PLUGIN = skel.Plugin(
    "macvlan",
    __version__,
    {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status},
)
