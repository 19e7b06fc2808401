"""Opening a network's lease store, and what its failures mean to the runtime.

Rule of membership: the one factory of lease stores (``ipam.store``: disk, the default, or etcd)
and the one mapping of their failures to CNI errors. The verbs (plugin.py) know neither backend.
"""

from __future__ import annotations

import os

from cni.errors import IO_FAILURE, NOT_AVAILABLE, TRY_AGAIN_LATER, CNIError

from .config import StoreConfig
from .disk import DiskStore
from .store import Store, StoreRefused, StoreUnavailable

# what a store may raise besides CNIError
ERRORS = (OSError, StoreUnavailable, StoreRefused)


def where(conf: StoreConfig, data_dir: str, network: str) -> str:
    """The store as messages name it: the network's directory, "etcd", or "kubernetes namespace NS"."""
    if conf.kind == "kubernetes":
        return f"kubernetes namespace {conf.namespace}"
    return "etcd" if conf.kind == "etcd" else os.path.join(data_dir, network)


def _name(store_where: str) -> str:
    """The store's kind as messages name it."""
    return "Kubernetes API" if store_where.startswith("kubernetes") else "etcd"


def open_store(
    conf: StoreConfig, data_dir: str, network: str, create: bool = True, pod: dict[str, str] | None = None
) -> Store | None:
    """The network's lease store. With ``create`` off (DEL, CHECK, GC), None when nothing of the
    network was ever stored here: on disk, its directory is missing (and is not made); an etcd or
    Kubernetes network is never missing, its store just holds no lease. ``pod``: the pod CNI_ARGS
    name (the Kubernetes store records it). Raises one of ERRORS."""
    if conf.kind == "kubernetes":
        from . import kube_client
        from .kubernetes import KubernetesStore

        try:
            creds = kube_client.credentials(conf.kubeconfig, conf.context)
        except kube_client.ConfigError as e:
            raise StoreRefused(str(e)) from None
        client = kube_client.Client(creds, conf.timeout, conf.deadline)
        return KubernetesStore(client, conf.namespace, network, conf.node, pod, conf.sweep)
    if conf.kind == "etcd":
        from .etcd import EtcdStore
        from .etcd_client import Client

        return EtcdStore(Client(conf.endpoints, conf.timeout, conf.deadline, conf.tls), conf.prefix, network)
    if not create and not os.path.isdir(os.path.join(data_dir, network)):
        return None
    return DiskStore(data_dir, network)


def cni_error(e: Exception, store_where: str, verb: str = "", opening: bool = False) -> CNIError:
    """One of ERRORS as the runtime should see it: STATUS says the store is not usable (code 50);
    otherwise code 11 when etcd may answer later, code 5 for anything else."""
    if verb == "STATUS":
        if isinstance(e, OSError):
            return CNIError(
                NOT_AVAILABLE,
                f'host-local: lease store "{store_where}" is not writable: {e.strerror}',
                "ADD can't reserve addresses until the data directory is writable",
            )
        if _name(store_where) != "etcd":
            return CNIError(
                NOT_AVAILABLE,
                f"host-local: the Kubernetes API lease store ({store_where}) is not usable: {e}",
                "ADD can't reserve addresses until the API server answers and lets this plugin's user list ipleases",
            )
        return CNIError(
            NOT_AVAILABLE,
            f"host-local: the etcd lease store is not usable: {e}",
            "ADD can't reserve addresses until etcd answers with a quorum",
        )
    if isinstance(e, StoreUnavailable):
        if _name(store_where) != "etcd":
            return CNIError(
                TRY_AGAIN_LATER,
                f"host-local: the Kubernetes API lease store is unavailable: {e}",
                "try again when the API server answers",
            )
        return CNIError(
            TRY_AGAIN_LATER, f"host-local: the etcd lease store is unavailable: {e}", "try again when etcd has a quorum"
        )
    if isinstance(e, StoreRefused):
        return CNIError(IO_FAILURE, f"host-local: the {_name(store_where)} lease store refused a request: {e}")
    assert isinstance(e, OSError)
    if isinstance(e, TimeoutError):
        return CNIError(
            TRY_AGAIN_LATER,
            f'host-local: lease store "{store_where}": its lock {e.filename} is {e.strerror}',
            "try again; a process holding it that long is stuck",
        )
    if opening:
        return CNIError(
            IO_FAILURE,
            f'host-local: cannot open the lease store "{store_where}": {e.strerror}',
            "check that ipam.dataDir is a writable directory",
        )
    return CNIError(IO_FAILURE, f'host-local: lease store "{store_where}": {e.strerror}', str(e.filename or ""))
