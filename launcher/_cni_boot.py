"""The first module the launcher (launcher/cni-macvlan.c) runs: it readies the imports, runs the
plugin (cni_macvlan/__main__.py picks it by the name we were exec'd under) and leaves.

Our own modules (cni_macvlan, ipam) come from one file, ``_cni_modules.bin`` (build.spec writes
it): one read at start-up, no directory searches, and each module unmarshalled only when it is
imported; that is about 1.3 ms less per exec than a .pyc file per module. The stdlib modules are
.pyc files beside it.

In the single-file layout sys.path is the executable itself (a zip archive is appended to it):
zipimport loads the stdlib from there, the bundle is one member of it, and extension modules
(``_json``), which dlopen cannot load from a zip member, are copied into an anonymous memory file
(memfd, closed on exec) and loaded from that. Nothing is written to disk.

The tree's launcher is also `cni-macvlan zygote` (_cni_zygote.py) and `cni-macvlan install` (the
cni_install package, which a release's install.sh runs; it is handed ``identity()`` and imports
nothing of the launcher's). ``identity()`` names the build: the hash of its bundle, which also
holds a digest of the build's every other file (build.spec).
"""

import marshal
import sys
from _frozen_importlib import ModuleSpec

BUNDLE = "_cni_modules.bin"


_data = b""  # the bundle's bytes, for identity()


def identity(data: bytes | None = None) -> str:
    """The identity of a build: the first 12 hex digits of the SHA-256 of its bundle (ours when
    ``data`` is None). The bundle holds our code, the order it runs in and a digest of every other
    file of the build (build.spec), so two builds differ in identity when any file differs."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12 and later
    except ImportError:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    return str(sha256(_data if data is None else data).hexdigest()[:12])


class Bundle:
    """Meta path finder and loader of the modules in the bundle: ({plugin: import order},
    {name: (is_package, code)}, digest of the build's other files)."""

    def __init__(self, data: bytes) -> None:
        self.orders: dict[str, list[str]]
        self.modules: dict[str, tuple[bool, bytes]]
        self.orders, self.modules, _ = marshal.loads(data)

    def preload(self, plugin: str) -> None:
        """Run the modules ``plugin`` imports, dependencies first (the order build.spec recorded),
        as the import system would, minus its search and locking: every import statement of theirs
        then finds its module loaded (about 2 ms less per exec)."""
        new_module = type(sys)
        for name in self.orders.get(plugin, ()):
            if name in sys.modules:
                continue
            is_package, code = self.modules[name]
            module = new_module(name)
            module.__spec__ = ModuleSpec(name, self, origin=BUNDLE, is_package=is_package)  # type: ignore[arg-type]
            module.__loader__ = self  # type: ignore[assignment]
            parent, _, child = name.rpartition(".")
            module.__package__ = name if is_package else parent
            if is_package:
                module.__path__ = []
            sys.modules[name] = module
            try:
                exec(marshal.loads(code), module.__dict__)
            except BaseException:
                del sys.modules[name]
                raise
            if parent:
                setattr(sys.modules[parent], child, module)

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        entry = self.modules.get(name)
        if entry is None:
            return None
        return ModuleSpec(name, self, origin=BUNDLE, is_package=entry[0])  # type: ignore[arg-type]

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return None  # the default module object

    def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
        exec(marshal.loads(self.modules[module.__name__][1]), module.__dict__)


class ArchiveExtensions:
    """A meta path finder for the extension modules stored in the executable's archive."""

    def __init__(self, archive) -> None:  # type: ignore[no-untyped-def]
        import _imp

        self.archive = archive
        self.suffix = _imp.extension_suffixes()[0]

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        try:
            data = self.archive.get_data(name.replace(".", "/") + self.suffix)
        except OSError:
            return None
        import os
        from _frozen_importlib_external import ExtensionFileLoader

        fd = os.memfd_create(name)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        location = f"/proc/self/fd/{fd}"
        return ModuleSpec(name, ExtensionFileLoader(name, location), origin=location)


def run() -> None:
    home = sys.path[0]
    if home == sys.executable:  # single file
        import zipimport

        archive = zipimport.zipimporter(home)
        bundle = archive.get_data(BUNDLE)
        sys.meta_path.append(ArchiveExtensions(archive))
    else:
        with open(f"{home}/{BUNDLE}", "rb") as f:
            bundle = f.read()
    global _data
    _data = bundle
    loader = Bundle(bundle)
    sys.meta_path.insert(0, loader)
    name = sys.argv[0].rpartition("/")[2]
    if name == "cni-macvlan" and sys.argv[1:2] == ["zygote"]:
        for plugin in loader.orders:
            loader.preload(plugin)
        import _cni_zygote

        _cni_zygote.main(sys.argv, home, BUNDLE, run_plugin)
        return
    if name == "cni-macvlan" and sys.argv[1:2] == ["install"]:
        from cni_install.main import main

        sys.exit(main(sys.argv[2:], home, identity))
    loader.preload(name)
    code = run_plugin()
    # The plugin's output is written and its files closed: skip the interpreter's teardown (module
    # cleanup and garbage collection, 1-2 ms of every exec) and leave now.
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_plugin() -> int:
    """Run the plugin sys.argv[0] names; its exit code."""
    from cni_macvlan.__main__ import main

    try:
        main()
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            return e.code or 0
        sys.stderr.write(f"{e.code}\n")
        return 1
    return 0
