"""The Kubernetes client's pure parts: the kubeconfig reader (YAML without PyYAML, checked against
PyYAML on what kubectl-like writers produce), credentials from a kubeconfig or a service account,
and the refusals that name what to fix. (Requests against a real API server: tests/test_kube_store.py.)"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam import kubeyaml
from ipam.kube_client import ConfigError, Credentials, from_kubeconfig, in_cluster

# Scalars as kubeconfigs hold them: names, URLs, paths, base64, tokens, words with blanks and
# YAML's punctuation (quoted by the writer), numbers and booleans.
TEXT = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("éü"), min_size=0, max_size=40
)
SCALARS = st.one_of(TEXT, st.integers(-(10**6), 10**6), st.booleans(), st.none())
KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.ABCZ0123456789", min_size=1, max_size=20)
DOCS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.dictionaries(KEYS, DOCS, min_size=1, max_size=6),
    indent=st.sampled_from([2, 4]),
    width=st.sampled_from([20, 80, 10**6]),
)
def test_the_reader_reads_what_pyyaml_writes_as_pyyaml_reads_it(doc: dict, indent: int, width: int) -> None:
    text = yaml.safe_dump(doc, indent=indent, width=width, default_flow_style=False, allow_unicode=True)
    assert kubeyaml.loads(text) == yaml.safe_load(text)


KUBECTL_YAML = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: https://127.0.0.1:6443
  name: kubernetes
- cluster:
    certificate-authority: ca.crt   # relative: to the kubeconfig's directory
    server: "https://[::1]:7443"
    tls-server-name: apiserver.local
  name: other
contexts:
- context:
    cluster: kubernetes
    namespace: cni
    user: admin
  name: admin@kubernetes
- context: {{cluster: other, user: robot}}
  name: robot@other
current-context: admin@kubernetes
kind: Config
preferences: {{}}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
- name: robot
  user:
    tokenFile: ./token
"""


def test_a_kubectl_kubeconfig_gives_its_current_context_and_a_named_one(tmp_path: Path) -> None:
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    path = tmp_path / "config"
    text = KUBECTL_YAML.format(ca=b64(b"CA PEM"), cert=b64(b"CERT PEM"), key=b64(b"KEY PEM"))
    # the flow mapping above is YAML, not JSON: refused by name (kubectl never writes one)
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"line 18: the flow collection .* is not JSON"):
        from_kubeconfig(str(path))
    path.write_text(
        text.replace("- context: {cluster: other, user: robot}", "- context:\n    cluster: other\n    user: robot")
    )
    (tmp_path / "token").write_text("s3cret\n")
    creds = from_kubeconfig(str(path))
    assert (creds.host, creds.port, creds.namespace) == ("127.0.0.1", 6443, "cni")
    assert (creds.ca_data, creds.cert, creds.key, creds.token) == (b"CA PEM", b"CERT PEM", b"KEY PEM", "")
    robot = from_kubeconfig(str(path), "robot@other")
    assert (robot.host, robot.port, robot.server_name) == ("::1", 7443, "apiserver.local")
    assert (robot.ca_file, robot.token, robot.cert) == (str(tmp_path / "ca.crt"), "s3cret", "")


def test_a_json_kubeconfig_reads_alike(tmp_path: Path) -> None:
    import json

    doc = yaml.safe_load(KUBECTL_YAML.format(ca="Q0E=", cert="Qw==", key="Sw==").replace("{{", "{").replace("}}", "}"))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    creds = from_kubeconfig(str(path))
    assert (creds.ca_data, creds.cert, creds.key) == (b"CA", b"C", b"K")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("server: https://127.0.0.1:6443", "server: http://127.0.0.1:6443"), "must be an https:// URL"),
        (("current-context: admin@kubernetes", "current-context: nobody"), "no context named 'nobody'"),
        (("- name: admin\n  user:\n", "- name: admin\n  user:\n    exec:\n      command: x\n"), "uses exec"),
        (
            (
                "    server: https://127.0.0.1:6443",
                "    insecure-skip-tls-verify: true\n    server: https://127.0.0.1:6443",
            ),
            "insecure-skip-tls-verify is refused",
        ),
        (("    client-key-data: Sw==\n", ""), "client-certificate and client-key go together"),
        (("certificate-authority-data: Q0E=", "certificate-authority-data: '!!!'"), "is not base64"),
        (("kind: Config", "kind: &anchor Config"), "anchors, aliases and tags are not supported"),
    ],
)
def test_a_kubeconfig_that_cant_be_used_says_why(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    text = KUBECTL_YAML.format(ca="Q0E=", cert="Qw==", key="Sw==").replace("{{", "{").replace("}}", "}")
    text = text.replace("- context: {cluster: other, user: robot}", "- context:\n    cluster: other\n    user: robot")
    assert edit[0] in text
    path = tmp_path / "config"
    path.write_text(text.replace(*edit))
    with pytest.raises(ConfigError, match=message) as info:
        from_kubeconfig(str(path))
    assert str(path) in str(info.value)


def test_a_missing_kubeconfig_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kubeconfig .*/nope: cannot read it: No such file"):
        from_kubeconfig(str(tmp_path / "nope"))


def test_the_service_account_of_a_pod(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("jwt.token.here")
    (tmp_path / "ca.crt").write_text("PEM")
    (tmp_path / "namespace").write_text("kube-system\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = in_cluster(str(tmp_path), env)
    assert (creds.host, creds.port, creds.token, creds.namespace) == ("10.96.0.1", 443, "jwt.token.here", "kube-system")
    assert creds.ca_file == str(tmp_path / "ca.crt")
    v6 = in_cluster(str(tmp_path), {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"})
    assert (v6.host, v6.port) == ("fd00::1", 6443)
    with pytest.raises(ConfigError, match="not in a pod"):
        in_cluster(str(tmp_path), {})


@pytest.mark.parametrize(
    ("server", "host", "port"),
    [
        ("https://a.example", "a.example", 443),
        ("https://10.0.0.1:6443/", "10.0.0.1", 6443),
        ("https://[fd00::2]", "fd00::2", 443),
    ],
)
def test_server_urls(server: str, host: str, port: int) -> None:
    creds = Credentials(server)
    assert (creds.host, creds.port) == (host, port)


def test_block_scalars_and_folded_lines() -> None:
    text = "a: |\n  x\n   y\n\n  z\nb: >-\n  p\n  q\nc: a long\n  plain line\nd:\n- 'it''s'\n- \"tab\\tq\"\n"
    assert kubeyaml.loads(text) == yaml.safe_load(text)
    assert kubeyaml.loads("") is None and kubeyaml.loads("--- \n# only a comment\n") is None
    with pytest.raises(kubeyaml.YAMLError, match="line 2: a second YAML document"):
        kubeyaml.loads("a: 1\n---\nb: 2\n")


@pytest.mark.parametrize("text", ["08", "0009", "010", "-010", "00", "0", "+7", "12"])
def test_numbers_with_a_leading_zero_read_as_pyyaml_reads_them(text: str) -> None:
    """YAML 1.1, as PyYAML and kubectl's writers mean it: 010 is octal 8, 08 is the string "08"."""
    assert kubeyaml.loads(f"k: {text}\n") == yaml.safe_load(f"k: {text}\n")
