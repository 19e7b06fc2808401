"""A private view of the file system for a real CNI client: its fixed paths (/etc/cni/net.d, /opt/cni/bin,
libcni's cache in /var/lib/cni, containerd's /run/containerd) shown as directories of the test's own, in a
mount namespace of its own, so that the machine's paths are neither read nor written.

A path that exists is covered by a bind mount. A path that does not gets its mount point inside an overlay
of its nearest existing ancestor, whose writes land in the test's scratch directory: nothing is created on
the machine. An overlaid ancestor shows the file system beneath it only, not the mounts below it (an
overlaid /run hides the namespaces in /run/netns): callers pick paths whose ancestors hold none they need.
Everything goes with the namespace, when its last process ends.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path


def private_view(shown: dict[str, Path], scratch: Path, netns: str | None = None) -> list[str]:
    """The argv prefix that runs a command with each path of ``shown`` (absolute) showing its directory, in a
    new mount namespace (and in the network namespace at path ``netns``, if given); overlays keep their
    writes in a new directory in ``scratch``."""
    script = ["set -e"]
    overlaid: set[Path] = set()
    scratch = Path(tempfile.mkdtemp(dir=scratch, prefix="view-"))  # an overlay's upper directory is its alone
    for i, (target, source) in enumerate(sorted(shown.items())):
        path = Path(target)
        if not path.exists():
            ancestor = next(p for p in path.parents if p.exists())
            if ancestor not in overlaid:
                upper, work = scratch / f"overlay{i}" / "upper", scratch / f"overlay{i}" / "work"
                upper.mkdir(parents=True)
                work.mkdir()
                script.append(
                    f"mount -t overlay overlay -o lowerdir={ancestor},upperdir={upper},workdir={work} {ancestor}"
                )
                overlaid.add(ancestor)
            script.append(f"mkdir -p {shlex.quote(target)}")
        script.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
    script.append('exec "$@"')
    prefix = ["nsenter", f"--net={netns}"] if netns else []
    return [*prefix, "unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script), "private-view"]
