"""deploy/: the DaemonSet (as the release renders it) and the Multus NetworkAttachmentDefinition,
checked against the Kubernetes API's schema (the models of the `kubernetes` client: a manifest must
come back from them unchanged, so that every field is known, of its type, with the required ones
present) and against what they must say about our plugins. test_release.py runs the DaemonSet's
containers."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import yaml

from cni_macvlan import __version__
from tests.support.layouts import PLUGIN_NAMES, ROOT
from tools.release import render_daemonset

DEPLOY = ROOT / "deploy"


def through_the_schema(doc: dict[str, Any], model: str) -> Any:
    """``doc`` read into the API's model and written back: a field the API does not know (a typo)
    is dropped, a value of another type changed, a missing required one refused."""
    api = kubernetes.client.ApiClient()
    # what ApiClient.deserialize does with a response's JSON (its signature changes between versions)
    return api.sanitize_for_serialization(api._ApiClient__deserialize(doc, model))  # type: ignore[attr-defined]


def test_the_daemonset_is_one_the_api_takes_as_written() -> None:
    doc = yaml.safe_load(render_daemonset())
    assert (doc["apiVersion"], doc["kind"]) == ("apps/v1", "DaemonSet")
    assert through_the_schema(doc, "V1DaemonSet") == doc


def test_the_daemonset_installs_beside_the_plugins_and_serves_where_they_look() -> None:
    """The init container installs into the CNI bin directory with the build in a directory of it;
    the zygote runs that build and listens where the launcher looks (/run/cni-macvlan/zygote.sock),
    in the host's PID namespace (it checks callers by pid); the image is this version's."""
    doc = yaml.safe_load(render_daemonset())
    spec = doc["spec"]["template"]["spec"]
    assert doc["spec"]["selector"]["matchLabels"].items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    [install], [zygote] = spec["initContainers"], spec["containers"]
    assert install["image"] == zygote["image"] == f"localhost/cni-macvlan:{__version__}"
    options = dict(arg.removeprefix("--").split("=", 1) for arg in install["command"][2:] if "=" in arg)
    assert "--replace" in install["command"], "the node's upstream plugins are kept, and put back on uninstall"
    assert install["command"][:2] == ["/release/cni-macvlan/cni-macvlan", "install"]
    assert options["libdir"].startswith(options["prefix"] + "/") and options["zygote"] == "no"
    mounts = {m["name"]: m["mountPath"] for c in (install, zygote) for m in c["volumeMounts"]}
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    assert set(mounts) == set(volumes)
    for container in (install, zygote):
        for mount in container["volumeMounts"]:  # the host's path at the same place under --destdir
            if volumes[mount["name"]] == options["prefix"]:
                assert mount["mountPath"] == options["destdir"] + options["prefix"]
    assert zygote["command"] == [
        options["destdir"] + options["libdir"] + "/current/cni-macvlan",
        "zygote",
        "--socket",
        "/run/cni-macvlan/zygote.sock",
    ]
    assert volumes["zygote-socket"] == "/run/cni-macvlan" == mounts["zygote-socket"]
    assert zygote["securityContext"] == {"privileged": True, "readOnlyRootFilesystem": True}


def test_the_template_differs_from_the_rendering_by_the_version_only() -> None:
    template = (DEPLOY / "daemonset.yaml").read_text()
    assert template.count("@VERSION@") == 2
    assert render_daemonset() == template.replace("@VERSION@", __version__)
    assert "@" not in render_daemonset()


def test_the_network_attachment_definition_is_multus_s_and_uses_our_plugins() -> None:
    """The CRD's schema (Multus: apiVersion k8s.cni.cncf.io/v1, spec.config a string) with the API's
    metadata; its config a conflist of our plugins."""
    doc = yaml.safe_load((DEPLOY / "network-attachment-definition.yaml").read_text())
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert (doc["apiVersion"], doc["kind"]) == ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition")
    assert through_the_schema(doc["metadata"], "V1ObjectMeta") == doc["metadata"]
    assert set(doc["spec"]) == {"config"} and isinstance(doc["spec"]["config"], str)
    config = json.loads(doc["spec"]["config"])
    assert config["name"] == doc["metadata"]["name"]
    types = [p["type"] for p in config["plugins"]] + [p["ipam"]["type"] for p in config["plugins"] if "ipam" in p]
    assert set(types) <= set(PLUGIN_NAMES)
