"""The one entry point of every executable we ship: it runs the plugin its file is named after.

``dist/host-local`` and ``dist/macvlan`` are frozen from this file, so one frozen tree can serve
every plugin name (a multi-call binary); the names are in ``plugins.py``. ``python -m cni_macvlan
<plugin>`` does the same from source. ``<any of our names> --version`` prints the version and the
build's identity (a runtime never passes arguments, so this reads no stdin and no CNI variable).
"""

import os
import sys

from cni_macvlan.plugins import IN_PROCESS, PLUGINS


def version_line(name: str) -> str:
    """``<name> <version> (build <identity>)``: the identity is the frozen build's (launcher/_cni_boot.py:
    a hash of the module bundle, the same in both layouts); ``source`` when run from source."""
    from cni_macvlan import __version__

    boot = sys.modules.get("_cni_boot")
    build = boot.identity() if boot is not None else "source"
    return f"{name} {__version__} (build {build})\n"


def main() -> None:
    debug = os.environ.get("CNI_MACVLAN_DEBUG")
    if debug == "startup":
        import time

        sys.stderr.write(f"entry {time.process_time() * 1000:.1f} ms {sorted(sys.modules)}\n")
    name = os.path.basename(sys.argv[0])
    if name not in PLUGINS and len(sys.argv) > 1 and sys.argv[1] in PLUGINS:
        name = sys.argv.pop(1)
    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(version_line(name if name in PLUGINS else "cni-macvlan"))
        return
    if name not in PLUGINS:
        sys.stderr.write(
            f"cni-macvlan: unknown plugin name {name!r}; install as one of: {', '.join(PLUGINS)}"
            " (or: cni-macvlan --version | zygote | install)\n"
        )
        sys.exit(2)
    from cni import skel
    from cni_macvlan import __version__

    local = {kind: module for kind, module in IN_PROCESS.items() if module in PLUGINS[name][1:]}
    if local:  # the delegates this plugin may run in-process (host-local itself delegates nothing)
        from cni import delegate

        delegate.IN_PROCESS.update(local)
    plugin = __import__(PLUGINS[name][0], fromlist=["PLUGIN"]).PLUGIN
    if debug:
        import time

        sys.stderr.write(f"cni-macvlan: start-up {time.process_time() * 1000:.1f} ms cpu, {len(sys.modules)} modules\n")
    skel.main(plugin, __version__)


if __name__ == "__main__":
    main()
