"""The CNI verbs of a plugin that attaches a container through one link on a parent (macvlan,
ipvlan). Each reads as the spec's steps: the plugin says what is asked (its config, its link),
links/parents and links/container do the kernel's part, the IPAM is called through the core's one
seam (cni/delegate.py: exec'd, or our host-local in this process). What is a plugin's own (its
config, how its link is made and checked, how its result's routes are shaped) it gives in a
``LinkPlugin``: its one module (macvlan.py, ipvlan.py) subclasses it.

ADD is all or nothing: every step that changed the node pushes its undo, and any failure runs the
undos (IPAM DEL, link deleted, parent released) before the error is printed. DEL releases the IPAM
lease first and whatever happened to the namespace, never looks the parent up, and succeeds when
things are gone. A plugin that allows it (ipvlan, as upstream) takes its addresses from prevResult
when it has no IPAM (chained after another plugin).
"""

from __future__ import annotations

from cni import faults
from cni.delegate import Delegate
from cni.errors import INTERNAL, CNIError
from cni.request import Request, valid_attachments
from cni.result import Interface, Result, parse, render

from ..links import parents
from ..links.container import Container, delete_link_at
from ..links.netlink import Link, Netlink, NewLink
from . import config
from .config import LinkConf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Undo = Callable[[], object]
    Verb = Callable[[Request], Result | None]


class LinkPlugin:
    """What is a link plugin's own, for the verbs below that drive it; a plugin's module subclasses
    it (macvlan.py, ipvlan.py). ``kind``: the link it makes (and CHECK expects). ``load``: its config,
    checked (attach/config.LinkConf and its keys). ``new_link``: what RTM_NEWLINK creates for that
    config. ``check_link``: what CHECK compares beyond kind, mode, MAC, addresses and routes.
    ``shape``: the routes it installs (Docker's ipvlan L3: a default route over the device, no
    gateway). ``chained``: with no IPAM, addresses come from prevResult. ``words``: its upstream's
    messages (prev_missing, sandbox, and Container.check's not_found, not_kind, mode, mac)."""

    kind = ""
    chained = False
    words = {
        "prev_missing": "required prevResult missing",
        "sandbox": "sandbox in prevResult {have} doesn't match configured netns: {want}",
    }

    def load(self, req: Request) -> LinkConf:
        raise NotImplementedError

    def new_link(self, conf: LinkConf) -> NewLink:
        raise NotImplementedError

    def check_link(self, link: Link, conf: LinkConf) -> None:
        return None

    def shape(self, conf: LinkConf, result: Result) -> None:
        return None


def _master(conf: LinkConf, node: Netlink, ct: Container, att: parents.Attachment, undo: list[Undo]) -> Link:
    """The checks only the kernel can make, in one step: the parent exists (or is ours to create:
    links/parents.acquire, which records the attachment) and can carry a link of the configured MTU."""
    if conf.link_in_container:
        master = ct.master(conf.master)
    else:
        store = parents.Store(conf.state_dir)
        master = parents.acquire(node, store, conf.parent, att)
        undo.append(lambda: _release_parent(store, att))
        faults.step("parent-acquired")
    config.fits_master(conf.mtu, master.mtu)
    return master


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
        Delegate(req, ipam_type).run(command)
    except CNIError as e:
        return e
    return None


class Verbs:
    """ADD, DEL, CHECK, GC and STATUS for one LinkPlugin; ``table()`` for the skeleton."""

    def __init__(self, plugin: LinkPlugin) -> None:
        self.plugin = plugin

    def table(self) -> dict[str, Verb]:
        return {"ADD": self.add, "DEL": self.delete, "CHECK": self.check, "GC": self.gc, "STATUS": self.status}

    def _chained(self, conf: LinkConf, req: Request) -> Result | None:
        """prevResult's addresses, routes and DNS, for a chained plugin with no IPAM; else None."""
        if not self.plugin.chained or conf.ipam_type or not conf.prev:
            return None
        prev = parse(conf.prev, req.version)
        return prev if prev.ips else None

    def add(self, req: Request) -> Result:
        conf = self.plugin.load(req)
        chained = self._chained(conf, req)
        ipam = Delegate(req, conf.ipam_type) if conf.ipam_type else None
        if ipam is not None:
            ipam.precheck()
        undo: list[Undo] = []
        with Container(req.netns) as ct:
            try:
                with Netlink() as node:
                    master = _master(conf, node, ct, (conf.name, req.container_id, req.ifname), undo)
                    creator = None if conf.link_in_container else node
                    link = ct.create_link(creator, master, req.ifname, self.plugin.new_link(conf))
                undo.append(lambda: ct.delete(req.ifname))
                faults.step("link-created")

                result = Result(interfaces=[Interface(req.ifname, link.mac, req.netns)])
                addresses = chained  # where the addresses come from: the IPAM, or prevResult (chained)
                if ipam is not None:
                    addresses = ipam.run("ADD")
                    undo.append(lambda: ipam.run("DEL"))
                    faults.step("ipam-added")
                    if addresses is None or not addresses.ips:
                        raise CNIError(INTERNAL, "IPAM plugin returned missing IP config")
                if addresses is not None:
                    for ipc in addresses.ips:
                        ipc.interface = 0
                    result.ips, result.routes, result.dns = addresses.ips, addresses.routes, addresses.dns
                    self.plugin.shape(conf, result)
                    ct.configure(link, result)
                else:
                    ct.set_up(link)  # L2 only
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

    def delete(self, req: Request) -> None:
        conf = config.load_teardown(req)
        store = parents.Store(conf.state_dir)
        store.check()  # a stateDir we must refuse: refused before anything changes
        ipam_error = _ipam_best_effort(req, conf.ipam_type, "DEL")  # first, whatever state the namespace is in
        if req.netns:
            delete_link_at(req.netns, req.ifname)
        _release_parent(store, (req.network, req.container_id, req.ifname))
        if ipam_error is not None:
            raise ipam_error

    def check(self, req: Request) -> None:
        conf = self.plugin.load(req)
        if conf.ipam_type:
            Delegate(req, conf.ipam_type).run("CHECK")
        if not conf.prev:
            raise CNIError(INTERNAL, self.plugin.words["prev_missing"])
        prev = parse(conf.prev, req.version)
        iface = next((i for i in prev.interfaces if i.name == req.ifname), None)
        if iface is None:
            raise CNIError(INTERNAL, "container interface name missing in prevResult")
        if iface.sandbox != req.netns:
            raise CNIError(INTERNAL, self.plugin.words["sandbox"].format(have=iface.sandbox, want=req.netns))
        with Container(req.netns) as ct:
            if conf.link_in_container:
                parents.require(ct.nl, conf.master or ct.master("").name)
            else:
                with Netlink() as node:
                    parents.require(node, conf.parent.name)
            link = ct.check(req.ifname, self.plugin.kind, conf.mode, iface.mac, prev, self.plugin.words)
            self.plugin.check_link(link, conf)

    def status(self, req: Request) -> None:
        conf = config.load_teardown(req)
        if conf.ipam_type:
            Delegate(req, conf.ipam_type).run("STATUS")

    def gc(self, req: Request) -> None:
        valid = valid_attachments(req.config)
        conf = config.load_teardown(req)
        store = parents.Store(conf.state_dir)
        store.check()
        error = _ipam_best_effort(req, conf.ipam_type, "GC")
        with Netlink() as node:
            parents.collect(node, store, req.network, valid)
        if error is not None:
            raise error
