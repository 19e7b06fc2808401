"""cni-macvlan: CNI plugins that put containers on the physical network with macvlan links.

Keep this file empty of imports: every plugin exec pays for what a package ``__init__`` loads.
"""

# The version, in one place: pyproject.toml, the plugins (VERSION, --version, the about text), the
# release's file names (tools/release.py) and the image's tag read it from here.
__version__ = "0.1.0"
