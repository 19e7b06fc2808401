"""The plugins this one program is, by the name it is exec'd under: the one registry of their names.

Read by the entry point (``__main__``), the build (build.spec: the fast layout's links, the single
files, the modules each plugin runs), ``make install`` (through what the build made) and the tests.
"""

# name -> the module whose PLUGIN it runs, then the modules it may run in-process (IN_PROCESS)
PLUGINS: dict[str, tuple[str, ...]] = {
    "macvlan": ("cni_macvlan.macvlan", "ipam.plugin"),
    "ipvlan": ("cni_macvlan.ipvlan", "ipam.plugin"),
    "host-local": ("ipam.plugin",),
}

# The delegates a plugin of this program runs in its own process when CNI_PATH's executable of that
# type is this very build (cni/delegate.py): type -> the module with its load_config and call.
IN_PROCESS: dict[str, str] = {"host-local": "ipam.plugin"}
