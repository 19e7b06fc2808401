"""The links we make, and what the kernel must say about them: ``netlink`` (every rtnetlink request
and setns), ``parents`` (the node interfaces a link hangs from, and the VLAN and dummy parents we
create, own and record), ``container`` (everything done inside a container's network namespace).

Rule of membership: kernel work and the records it needs, for any plugin that makes a link on a
parent; nothing here parses a network config or speaks the CNI protocol but through its errors.
Keep this file empty of imports: every plugin exec pays for what a package ``__init__`` loads.
"""
