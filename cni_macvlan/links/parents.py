"""Parents: the node interface a macvlan hangs from, and the ones we create and own.

Rule of membership: every decision about parent interfaces lives here, as Docker's macvlan driver
makes them. ``master`` names an existing link: it is used as is and never modified (but brought up)
or deleted. ``master`` of the form ``<parent>.<vid>`` that does not exist: we create the 802.1Q
sub-interface (VLAN ``vid`` on ``<parent>``, bringing ``<parent>`` up first) and own it. ``master``
omitted: we create and own the dummy ``dm-<12 hex of sha256(network name)>``; macvlans on it reach
each other and nothing else.

Theory of ownership. The owned parents are recorded in ``<stateDir>/parents.json`` with the
attachments (network, container ID, ifname) using each, under ``flock`` on ``parents.lock``, and the
file is replaced atomically. ADD records its attachment *before* it creates a parent, and DEL or GC
delete a parent only when, under the same lock, no attachment is left: so two ADDs racing to create
one parent make one link, a DEL racing an ADD never deletes the parent the ADD is attaching to, and a
process killed anywhere leaves a record that the next DEL or GC of the attachment cleans up. A record
also holds the parent's ifindex, and a record alone never makes a link ours: a link of that name
that is not what we create (another ifindex, another kind, another VLAN or base) is someone else's
(made after ours vanished, or named by a forged record) and is never touched. An owned parent that
vanished (a reboot) is recreated by the next ADD. The record lives in a stateDir with the lease
store's protections (``Store``).
"""

from __future__ import annotations

import errno
import os

from cni import faults, jsonio, log, statefile
from cni.errors import INTERNAL, INVALID_CONFIG, IO_FAILURE, TRY_AGAIN_LATER, CNIError

from .netlink import IFF_LOOPBACK, Link, NetlinkError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    class Node(Protocol):
        """What parents need of the node's netlink socket (links/netlink.Netlink; the tests' stand-in)."""

        def get_link(self, name: str | None = None, index: int = 0) -> Link | None: ...
        def create_vlan(self, name: str, parent: int, vlan_id: int, index: int = 0) -> None: ...
        def create_dummy(self, name: str, index: int = 0) -> None: ...
        def set_up(self, index: int) -> None: ...
        def delete_link(self, index: int) -> None: ...


STATE_FILE = "parents.json"
LOCK_FILE = "parents.lock"
MAX_NAME = 15
# what opening a file of ours says when something else stands at its name (a symlink, a directory,
# a FIFO or device, a socket) or it is too large to be ours: damage, not a passing failure
DAMAGE = frozenset({errno.ELOOP, errno.EISDIR, errno.EINVAL, errno.EFBIG, errno.ENXIO, errno.ENODEV})

Attachment = tuple[str, str, str]  # (network, container ID, ifname)


# ---- what a master names (pure) ----


class ParentSpec:
    """What ``master`` asks for: ``kind`` is "link" (must exist unless it is ours), "vlan" or "dummy"."""

    __slots__ = ("base", "kind", "name", "vid")

    def __init__(self, name: str, kind: str, base: str = "", vid: int = 0) -> None:
        self.name = name
        self.kind = kind
        self.base = base
        self.vid = vid


def dummy_name(network: str) -> str:
    # the C sha256 without hashlib (whose import would pull in OpenSSL): _sha2 on 3.12, _sha256 before
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - Python 3.11
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    digest: str = sha256(network.encode()).hexdigest()
    return "dm-" + digest[:12]


def plan(master: str, network: str, in_container: bool = False) -> ParentSpec:
    """The parent ``master`` asks for, by Docker's rules; CNIError (code 7) naming the rule it breaks.
    Every rule of ``master`` but its type (attach/config.master) is here. ``in_container``
    (linkInContainer): an interface of the container's, used as it is (omitted: its default route's,
    links/container.master, as upstream); nothing is created there."""
    if in_container:
        check_length(master)
        return ParentSpec(master, "link")
    if not master:
        return ParentSpec(dummy_name(network), "dummy")
    check_length(master)
    if "." not in master:
        return ParentSpec(master, "link")
    parts = master.split(".")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return ParentSpec(master, "link", base="", vid=-1)  # only valid if it exists: see resolve()
    base, vid_text = parts
    vid = int(vid_text) if vid_text.isdigit() else -1
    return ParentSpec(master, "vlan", base, vid)


def check_length(master: str) -> None:
    """An interface name is at most 15 characters (CNIError, code 7)."""
    if len(master) > MAX_NAME:
        raise CNIError(
            INVALID_CONFIG,
            f'master "{master}": interface names are at most {MAX_NAME} characters',
            "use a shorter parent name (a VLAN parent is <parent>.<vid>, 15 characters in all)",
        )


def _check_vlan(spec: ParentSpec) -> None:
    if spec.vid == -1 and spec.kind == "link":
        raise CNIError(
            INVALID_CONFIG,
            f'master "{spec.name}" does not exist, and a VLAN parent to create is <parent>.<vid> with one "."',
            'name an existing interface, or write the VLAN parent as "eth0.50"',
        )
    if not 1 <= spec.vid <= 4094:
        raise CNIError(
            INVALID_CONFIG,
            f'master "{spec.name}": VLAN id must be 1-4094',
            f'the part after "." is the 802.1Q VLAN id; "{spec.name.split(".", 1)[1]}" is not one',
        )


# ---- the ownership record (pure over plain data) ----


class Damaged(Exception):
    """The record can't be read as one: not a regular file, not JSON, or entries of the wrong shape."""


class DamagedRecord(CNIError):
    """Damaged, as the runtime hears it (code 5). ADD stops on it; DEL and GC go on without the record."""


def _valid_record(name: object, rec: object) -> bool:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not isinstance(rec, dict):
        return False
    atts = rec.get("attachments")
    return (
        rec.get("kind") in ("vlan", "dummy")
        and isinstance(rec.get("base"), str)
        and type(rec.get("vid")) is int
        and type(rec.get("ifindex")) is int
        and isinstance(rec.get("boot", ""), str)
        and isinstance(atts, list)
        and all(isinstance(a, list) and len(a) == 3 and all(isinstance(x, str) for x in a) for a in atts)
    )


class Ownership:
    """parents.json: name -> {"kind", "base", "vid", "ifindex", "boot", "attachments": [[net, cid, ifname], ...]}.
    ``ifindex`` is chosen and recorded before the link is made with it; ``boot`` is the kernel's
    boot id then (an ifindex means nothing after a reboot)."""

    def __init__(self, parents: dict[str, dict[str, Any]] | None = None) -> None:
        self.parents = parents or {}

    @classmethod
    def load(cls, data: bytes | None) -> Ownership:
        """The record in ``data`` (None or empty: no record); Damaged when it is not one."""
        if not data:
            return cls()
        try:
            doc = jsonio.loads(data)
        except jsonio.DecodeError:
            raise Damaged(f"not JSON: {data[:60]!r}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("parents"), dict):
            raise Damaged(f'no "parents" object: {data[:60]!r}')
        for name, rec in doc["parents"].items():
            if not _valid_record(name, rec):
                raise Damaged(f"entry {name!r} is not a parent record: {jsonio.dumps(rec)[:60]}")
        return cls(doc["parents"])

    def dump(self) -> bytes:
        return jsonio.dumps({"version": 1, "parents": self.parents}).encode()

    def attach(self, spec: ParentSpec, att: Attachment) -> None:
        rec = self.parents.setdefault(
            spec.name, {"kind": spec.kind, "base": spec.base, "vid": spec.vid, "ifindex": 0, "attachments": []}
        )
        if list(att) not in rec["attachments"]:
            rec["attachments"].append(list(att))

    def detach(self, att: Attachment) -> list[str]:
        """Drop the attachment everywhere; the names of the owned parents it was recorded on."""
        touched = []
        for name, rec in self.parents.items():
            if list(att) in rec["attachments"]:
                rec["attachments"].remove(list(att))
                touched.append(name)
        return touched

    def keep_only(self, network: str, valid: set[tuple[str, str]]) -> None:
        """GC: drop this network's attachments whose (container ID, ifname) is not in ``valid``."""
        for rec in self.parents.values():
            rec["attachments"] = [a for a in rec["attachments"] if a[0] != network or (a[1], a[2]) in valid]

    def unused(self) -> list[str]:
        return [name for name, rec in self.parents.items() if not rec["attachments"]]

    def owns(self, name: str, link: Link | None, base_index: int, boot: str) -> bool:
        """Is ``link`` (the link named ``name`` now, or None) the parent we created? Only a link that
        is what we made answers yes: the ifindex we chose for it, in this boot, of the kind, name
        and VLAN we create, on that base (``base_index``, the base's ifindex now); a record alone
        never makes someone else's link ours. (A record of ifindex 0, from before the index was
        chosen first, owns nothing: its entry is dropped, its link left alone.)"""
        rec = self.parents.get(name)
        if rec is None:
            return False
        if link is None:
            return True
        if rec["ifindex"] != link.index or link.kind != rec["kind"] or rec.get("boot", boot) != boot:
            return False
        if rec["kind"] == "dummy":
            return name == dummy_name_form(name)
        return name == f"{rec['base']}.{rec['vid']}" and link.vlan_id == rec["vid"] and link.link == base_index


def dummy_name_form(name: str) -> str:
    """``name`` if it has the form of our dummy parents' names (dm- and 12 hex digits), else ""."""
    hexdigits = name[3:]
    ok = name.startswith("dm-") and len(hexdigits) == 12 and all(c in "0123456789abcdef" for c in hexdigits)
    return name if ok else ""


# ---- the node side (netlink and the state file) ----


class Store:
    """The owned-parents record of one state directory (``stateDir``), with the lease store's rules
    (cni/statefile.py): a directory anyone but root could change is refused, every file is opened
    O_NOFOLLOW and must be a regular file. Every failure is a CNIError, code 5, naming the path and
    the fix; a record or lock that is not what we write is a DamagedRecord; a lock held by another
    process for LOCK_WAIT seconds is code 11 (try again later)."""

    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        self.path = os.path.join(state_dir, STATE_FILE)

    def _io_error(self, e: OSError) -> CNIError:
        fixes = {
            errno.EROFS: "stateDir is on a read-only filesystem: make it writable, or set stateDir elsewhere",
            errno.ENOSPC: "the filesystem of stateDir is full: free some space",
            errno.EDQUOT: "the filesystem of stateDir is full: free some space",
            errno.ENOTDIR: "stateDir names something that is not a directory: remove it, or set stateDir elsewhere",
            errno.EEXIST: "stateDir names something that is not a directory: remove it, or set stateDir elsewhere",
            errno.EPERM: "stateDir must be a directory of root's that others can't write to",
            errno.EACCES: "stateDir must be a directory root can write to",
        }
        return CNIError(
            IO_FAILURE,
            f'stateDir "{self.dir}": {e.strerror or e}',
            fixes.get(e.errno or 0, f"check {self.dir} and {self.path}"),
        )

    def _damaged_error(self, why: str, path: str = "") -> DamagedRecord:
        return DamagedRecord(
            IO_FAILURE,
            f'the record of owned parents "{path or self.path}" is damaged: {why}',
            "repair or remove it (DEL and GC go on without it); the parents it lists are then yours to"
            " delete by hand once unused",
        )

    def check(self) -> None:
        """Refuse (code 5) a stateDir that exists and is not safe to use; DEL and GC ask before they
        change anything."""
        self._checked()

    def _exists(self, check: Callable[[str], object], path: str) -> bool:
        """Does ``path`` exist (``check`` it)? Any other failure of the check is a CNIError."""
        try:
            check(path)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise self._io_error(e) from None
        return True

    def _checked(self) -> bool:
        """Does stateDir exist? If it does, it must be safe to use."""
        return self._exists(statefile.check_private, self.dir)

    def has_record(self) -> bool:
        """Is there a record to read (anything at its path) in a stateDir safe to use?"""
        return self._checked() and self._exists(os.lstat, self.path)

    def peek(self) -> Ownership:
        """Read without the lock (the file is replaced atomically): for the fast path of ADD."""
        if not self._checked():
            return Ownership()
        return self.load()

    def locked(self) -> _Locked:
        """``with store.locked():`` holds the record's lock; stateDir is made 0700 if missing."""
        return _Locked(self)

    def load(self) -> Ownership:
        """The record; CNIError (code 5) when it can't be read or is damaged."""
        try:
            return Ownership.load(statefile.read(self.path))
        except Damaged as e:
            raise self._damaged_error(str(e)) from None
        except OSError as e:
            if e.errno in DAMAGE:
                raise self._damaged_error(e.strerror or str(e)) from None
            raise self._io_error(e) from None

    def save(self, own: Ownership) -> None:
        own.parents = {name: rec for name, rec in own.parents.items() if rec["attachments"]}
        try:
            statefile.write_atomic(self.path, own.dump(), fsync=True)
        except OSError as e:
            raise self._io_error(e) from None


class _Locked(statefile.Locked):
    def __init__(self, store: Store) -> None:
        super().__init__(os.path.join(store.dir, LOCK_FILE))
        self.store = store

    def __enter__(self) -> _Locked:
        try:
            statefile.check_private(self.store.dir, create=0o700)
        except OSError as e:
            raise self.store._io_error(e) from None
        try:
            super().__enter__()
        except TimeoutError as e:
            raise CNIError(
                TRY_AGAIN_LATER,
                f'the record of owned parents: its lock "{self.path}" is {e.strerror}',
                "try again; a process holding it that long is stuck",
            ) from None
        except OSError as e:
            if e.errno in DAMAGE:  # not a regular file: never ours
                raise self.store._damaged_error(e.strerror or str(e), self.path) from None
            raise self.store._io_error(e) from None
        return self


def acquire(node: Node, store: Store, spec: ParentSpec, att: Attachment) -> Link:
    """The parent link for an ADD, created if it is ours to create; the attachment recorded if we own it."""
    link = node.get_link(spec.name)
    if link is not None and link.flags & IFF_LOOPBACK:
        raise CNIError(
            INVALID_CONFIG,
            f'master "{spec.name}" is a loopback interface: it can\'t carry macvlans',
            "name the node's interface to the network, or omit master for an isolated dummy parent",
        )
    if link is not None and spec.name not in store.peek().parents:
        return link  # an interface we did not create: used as is
    if link is None and spec.kind != "dummy":
        if spec.kind == "link" and spec.vid != -1:
            raise CNIError(INVALID_CONFIG, f'master "{spec.name}" not found on this node', 'create it, or fix "master"')
        _check_vlan(spec)  # a name we would create: it must follow the <parent>.<vid> rule
    with store.locked():
        own = store.load()
        link = node.get_link(spec.name)
        if link is not None and not _is_ours(node, own, spec.name, link):
            own.parents.pop(spec.name, None)  # ours vanished, and someone else made a link of that name
            store.save(own)
            return link
        own.attach(spec, att)
        if link is not None:
            store.save(own)
            return link
        rec = own.parents[spec.name]
        rec["ifindex"], rec["boot"] = _free_index(node), boot_id()
        store.save(own)  # the record first: a crash from here on leaves something DEL/GC can clean
        faults.step("parent-recorded")
        try:
            link = _create(node, spec, rec["ifindex"])
            faults.step("parent-created")
        except BaseException:
            own.detach(att)
            store.save(own)
            raise
        if link.index != rec["ifindex"]:  # made meanwhile by someone who does not take our lock: theirs
            own.parents.pop(spec.name)
            store.save(own)
        return link


def require(nl: Node, name: str) -> Link:
    """CHECK: the parent must be there (upstream's words when it is not)."""
    link = nl.get_link(name)
    if link is None:
        raise CNIError(INTERNAL, f'failed to lookup master "{name}": Link not found')
    return link


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            return f.read().decode().strip()
    except OSError:
        return ""


def _free_index(node: Node) -> int:
    """An ifindex no link has: the one we create the parent with, recorded before it exists."""
    while True:
        index = 0x100000 + int.from_bytes(os.urandom(3), "big")
        if node.get_link(index=index) is None:
            return index


def _create(node: Node, spec: ParentSpec, index: int) -> Link:
    try:
        if spec.kind == "vlan":
            base = node.get_link(spec.base)
            if base is None:
                raise CNIError(
                    INVALID_CONFIG,
                    f'master "{spec.name}": its parent "{spec.base}" does not exist',
                    "a VLAN parent is created on an existing interface of the node",
                )
            if not base.up:
                node.set_up(base.index)  # the VLAN can't carry traffic on a parent that is down
            node.create_vlan(spec.name, base.index, spec.vid, index)
        else:
            node.create_dummy(spec.name, index)
    except NetlinkError as e:
        if e.errno != errno.EEXIST:  # made meanwhile by a process that does not take our lock
            what = f"802.1Q VLAN {spec.vid} on {spec.base}" if spec.kind == "vlan" else "dummy parent"
            raise CNIError(INTERNAL, f'failed to create {what} "{spec.name}": {e.strerror}') from None
    link = node.get_link(spec.name)
    if link is None:
        raise CNIError(INTERNAL, f'parent "{spec.name}" vanished right after it was created')
    if not link.up:
        node.set_up(link.index)
    return link


def _is_ours(node: Node, own: Ownership, name: str, link: Link) -> bool:
    rec = own.parents.get(name)
    base = node.get_link(rec["base"]) if rec is not None and rec["kind"] == "vlan" and rec["base"] else None
    return own.owns(name, link, base.index if base is not None else -1, boot_id())


def _delete_if_ours(node: Node, own: Ownership, name: str) -> None:
    link = node.get_link(name)
    if link is not None and _is_ours(node, own, name, link):
        try:
            node.delete_link(link.index)
        except NetlinkError as e:
            if e.errno != errno.ENODEV:  # already gone
                raise
    own.parents.pop(name, None)


def _skipped(e: DamagedRecord) -> None:
    log.warning(f"{e.msg}: left as it is, no parent released ({e.details})")


def release(node: Node, store: Store, att: Attachment) -> None:
    """DEL: forget the attachment; delete each owned parent it was the last user of. A damaged
    record or lock never blocks it: it goes on without them, leaves them for the operator, and says
    so in the log."""
    if not store.has_record():
        return
    try:
        with store.locked():
            own = store.load()
            if not own.detach(att):
                return
            for name in own.unused():
                _delete_if_ours(node, own, name)
            store.save(own)
    except DamagedRecord as e:
        _skipped(e)


def collect(node: Node, store: Store, network: str, valid: set[tuple[str, str]]) -> list[str]:
    """GC: drop the network's stale attachments and delete the owned parents left without any (a
    damaged record or lock: as for DEL)."""
    if not store.has_record():
        return []
    try:
        with store.locked():
            own = store.load()
            own.keep_only(network, valid)
            emptied = own.unused()
            for name in emptied:
                _delete_if_ours(node, own, name)
            store.save(own)
            return emptied
    except DamagedRecord as e:
        _skipped(e)
        return []
