"""The tests' support code: no test is collected here. ``layouts`` (where the built plugins are,
the one vocabulary of layouts, what a lane needs), ``runners`` (running a plugin as a runtime
does, in every layout), ``configs`` (the one module of config builders), ``lab`` (the network
namespace lab), ``kernel`` (the kernel's state read through pyroute2), ``fs`` (a file system to
fill or make read-only), ``memstore``, ``zygote``, ``fake_zygote``, ``etcd``, ``cni_schema``
(pydantic models of the CNI results), ``examples`` (conf-examples/)."""
