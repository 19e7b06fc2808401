"""The plugins this one program is, by the name it is exec'd under: the one registry of their names.

Read by the entry point (``__main__``), the build (build.spec: the fast layout's links, the single
files, the modules each plugin runs), ``make install`` (through what the build made) and the tests.
"""

# name -> the module whose PLUGIN it runs, then the modules it may run in-process (the link
# plugins run our host-local in their own process: attach/ipam_call.py)
PLUGINS: dict[str, tuple[str, ...]] = {
    "macvlan": ("cni_macvlan.macvlan.plugin", "ipam.plugin"),
    "ipvlan": ("cni_macvlan.ipvlan.plugin", "ipam.plugin"),
    "host-local": ("ipam.plugin",),
}
