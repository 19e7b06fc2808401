"""The project's tools: the Debian packages (packages.sh), the VM lane (run-in-vm.sh), the release
(release.py; the tests import it to render what `make release` renders)."""
