"""The installer: ``cni-macvlan install [OPTIONS]``, which a release's ``install.sh`` (and ``make
install``) runs from the release's own tree. It puts the release's plugins into a CNI bin directory
so that a runtime exec'ing a plugin at any moment of an upgrade gets a whole old or a whole new
plugin, hands over to the new build's zygote, and records what it made, so that ``--uninstall``
removes exactly that and nothing else (docs/install.md tells the operator's side).

Rule of membership: putting a release on a node and taking it off again; nothing here runs a plugin.
The modules, each importing only those before it: ``files`` (reading, writing and linking files:
the writes are cni/statefile's), ``release`` (a release's SHA256SUMS and files), ``node`` (the
paths, the processes and the service manager of the node), ``manifest`` (LIBDIR/installed.json),
``install``, ``uninstall``, ``main`` (the command). The launcher (launcher/_cni_boot.py) runs
``main``, handing it the launcher's ``identity``; build.spec ships these modules as .pyc files in the
tree's lib/, off the bundle, and the modules of cni_macvlan they import (statefile, jsonio, faults,
plugins) come from the bundle, as the plugins' do.

What it makes (the fast layout; PREFIX and LIBDIR as given, under DESTDIR if one is given):
  LIBDIR/builds/<version>-<identity>/  one build (the launcher and lib/), copied under a temporary
                                       name, synced, then renamed into place: complete before any
                                       name leads to it, and never changed afterwards
  LIBDIR/current -> builds/<...>       the installed build, switched by renaming a new link over it
  PREFIX/<plugin> -> ../<...>/current/cni-macvlan   a relative link per plugin name (the registry,
                                       cni_macvlan/plugins.py), so a DESTDIR install (a container
                                       writing the host's directories) is right on the host too
  LIBDIR/installed.json                the manifest: every path made, and what each held
  UNITDIR/cni-macvlan-zygote.service   with --zygote yes: the zygote's unit, ExecStart through current
An exec resolves PREFIX/macvlan -> current -> builds/X/cni-macvlan at once, and the launcher takes
lib/ beside the file it runs (/proc/self/exe): a process that started on build X reads build X only,
whatever is switched meanwhile. A build is removed only when it is neither the current one nor the
one before it and no process runs it (/proc/*/exe, compared by inode, so that a zygote in a
container counts too). The single-file layout (--layout single) writes each plugin as a file under
a temporary name in PREFIX and renames it over the old one: an exec opens the old file or the new.

Root writes here, so nothing is trusted that others could change: PREFIX, LIBDIR and UNITDIR must be
directories only their owner (root) can change, with every directory above them (the plugins' rule
for their state, cni/statefile.check_private; a symlink of root's is followed), and apart from each
other; files are created with O_NOFOLLOW in directories so checked; every file installed is checked
against the release's SHA256SUMS first, and a build already in place must be exactly what we make.
A LIBDIR without a manifest must be new or empty. The manifest must be root's alone and name only
what an install of ours makes, or neither install nor --uninstall acts on it. It is written before
anything changes, listing all a run may make, so a run cut short leaves what the next run (or
--uninstall) takes from there; a failure after the switch puts the previous build back. A plugin (or
unit) of PREFIX that is not ours is replaced only with --replace, kept in LIBDIR/replaced/ and put
back by --uninstall.
"""
