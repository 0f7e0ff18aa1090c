"""OCI runtimes of the daemon and where each container's run-time files live
(moby daemon/runtime_unix.go, libcontainerd paths).

Everything a running container needs to be found again after a daemon restart lives under
the exec-root: `<exec-root>/runtime-<name>` (the runtime's --root), `<exec-root>/containers/<id>`
(bundle, conmon's persist dir, attach socket, ctl fifo) and `<exec-root>/exits/<id>` (conmon's
exit file). A container that exits while the daemon is down leaves its exit file there.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
from typing import TYPE_CHECKING

from .. import errdefs
from ..config import Runtime
from ..runtime import conmon as _conmon
from ..runtime.oci import OCIRuntime, probe_default_runtime
from ..runtime.oomwatch import OOMWatcher

if TYPE_CHECKING:
    from .core import Daemon

log = logging.getLogger("berth.daemon")


class Runtimes:
    """The configured runtimes by name, and the chosen default."""

    def __init__(self, d: Daemon) -> None:
        self.exec_root = d.config.exec_root
        self.scripts_dir = os.path.join(d.config.data_root, "runtimes")
        self.paths: dict[str, str] = {}
        for name in ("runc", "crun"):
            p = shutil.which(name)
            if p:
                self.paths[name] = p
        self._found = dict(self.paths)  # runc and crun from PATH
        self._retired: dict[str, str] = {}  # runtimes a reload removed: for the containers they run
        for name, rt in d.config.runtimes.items():
            self.paths[name] = self._binary(name, rt)
        self.default = d.config.default_runtime or ""
        self.systemd_cgroup = d.systemd_cgroup
        self.conmon = _conmon.Conmon()
        self.oom = OOMWatcher()
        self._cache: dict[str, OCIRuntime] = {}
        os.makedirs(self.exits_dir, 0o700, exist_ok=True)
        os.makedirs(os.path.join(self.exec_root, "containers"), 0o700, exist_ok=True)

    async def probe(self) -> str:
        """Pick the default runtime unless one was configured: the first of crun, runc that
        really runs a container on this host (crun refuses hybrid cgroups)."""
        if not self.default:
            path = await probe_default_runtime(("crun", "runc"), workdir=self.exec_root)
            self.default = os.path.basename(path)
            self.paths.setdefault(self.default, path)
            log.info("default OCI runtime: %s (%s)", self.default, path)
        return self.default

    def _binary(self, name: str, rt: Runtime) -> str:
        """What to run for a configured runtime: its path, or with `runtimeArgs` a script
        `<data-root>/runtimes/<name>` that runs the path with them before the daemon's own
        arguments (initRuntimes and rewriteRuntimePath: the runtime is called with no room
        for extra arguments)."""
        if not rt.runtimeArgs:
            return rt.path
        os.makedirs(self.scripts_dir, 0o700, exist_ok=True)
        script = os.path.join(self.scripts_dir, name)
        body = f"#!/bin/sh\nexec {shlex.quote(rt.path)} {' '.join(shlex.quote(a) for a in rt.runtimeArgs)} \"$@\"\n"
        tmp = script + ".tmp"
        with open(tmp, "w") as f:
            f.write(body)
        os.chmod(tmp, 0o700)
        os.replace(tmp, script)
        return script

    def configure(self, runtimes: dict[str, Runtime]) -> None:
        """A reload's `runtimes` replace the configured ones (reloadPlatform, initRuntimes). A
        runtime whose path changed is made again at its next use; one that is gone stays
        known to the containers already created with it (dockerd's shims keep theirs) but no
        new container can choose it (the daemon's set of names says which)."""
        new = {**self._found, **{name: self._binary(name, rt) for name, rt in runtimes.items()}}
        for name, path in self.paths.items():
            if new.get(name) != path:
                self._cache.pop(name, None)
                if name not in new:
                    self._retired[name] = path
        for name in new:
            self._retired.pop(name, None)
        self.paths = new

    @property
    def exits_dir(self) -> str:
        return os.path.join(self.exec_root, "exits")

    def bundle_dir(self, cid: str) -> str:
        return os.path.join(self.exec_root, "containers", cid)

    def get(self, name: str) -> OCIRuntime:
        """The runtime called `name` ("" = default), with its state root under the exec-root."""
        name = name or self.default or "runc"
        rt = self._cache.get(name)
        if rt is None:
            path = self.paths.get(name) or self._retired.get(name)
            if path is None:
                raise errdefs.InvalidParameter(f"Unknown runtime specified {name}")
            rt = self._cache[name] = OCIRuntime(path, name, os.path.join(self.exec_root, f"runtime-{name}"),
                                                  self.systemd_cgroup)
        return rt
