"""cni-macvlan: CNI plugins that put containers on the physical network with macvlan links.

Keep this file empty of imports: every plugin exec pays for what a package ``__init__`` loads.
"""

__version__ = "0.1.0"
