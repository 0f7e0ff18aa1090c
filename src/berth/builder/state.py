"""A stage's dispatch state and the build arguments (moby/builder/dockerfile/
dispatchers.go dispatchState, buildargs.go BuildArgs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# builtinAllowedBuildArgs: usable without an ARG, kept out of the image's history
BUILTIN_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


class BuildArgs:
    """The `buildargs` of the request, the ARGs declared so far, and which were used."""

    def __init__(self, from_options: dict[str, str | None]) -> None:
        self.from_options = dict(from_options)
        self.allowed: dict[str, str | None] = {}
        self.meta: dict[str, str | None] = {}
        self.referenced: set[str] = set()

    def clone_for_stage(self) -> BuildArgs:
        new = BuildArgs(self.from_options)
        new.meta = dict(self.meta)
        new.referenced = self.referenced  # shared: unused-arg warnings span the build
        return new

    def add_meta_arg(self, key: str, value: str | None) -> None:
        self.meta[key] = value
        self.referenced.add(key)

    def meta_default(self, key: str) -> str | None:
        return self.meta.get(key)

    def add_arg(self, key: str, value: str | None) -> None:
        self.allowed[key] = value
        self.referenced.add(key)

    def _value(self, key: str, default: str | None) -> str | None:
        v = self.from_options.get(key)
        if key in self.from_options and v is not None:
            return v
        return default

    def all_allowed(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, default in self.allowed.items():
            v = self._value(k, default)
            if v is not None:
                out[k] = v
        for k in BUILTIN_ARGS:
            opt = self.from_options.get(k)
            if k not in out and opt is not None:
                out[k] = opt
        return out

    def meta_env(self) -> list[str]:
        """The environment FROM is expanded with: meta ARGs, overridden by options."""
        out = []
        for k, default in self.meta.items():
            v = self._value(k, default)
            if v is not None:
                out.append(f"{k}={v}")
        return out

    def filter_allowed(self, env: list[str]) -> list[str]:
        """FilterAllowed: the allowed args that the environment does not set."""
        keys = {e.partition("=")[0] for e in env}
        return sorted(f"{k}={v}" for k, v in self.all_allowed().items() if k not in keys)

    def prepend_env_on_cmd(self, build_env: list[str], cmd: list[str]) -> list[str]:
        """prependEnvOnCmd: `|N K=V… cmd`, as the RUN is recorded in the history;
        builtin args appear only when declared."""
        kept = sorted(e for e in build_env
                      if e.partition("=")[0] not in BUILTIN_ARGS or e.partition("=")[0] in self.allowed)
        return [f"|{len(kept)}"] + kept + list(cmd)

    def unused(self) -> list[str]:
        return sorted(k for k in self.from_options if k not in self.referenced and k not in BUILTIN_ARGS)


@dataclass
class DispatchState:
    run_config: dict[str, Any]
    build_args: BuildArgs
    escape: str = "\\"
    image_id: str = ""
    base_image: Any = None  # image.Image, or None for scratch
    stage_name: str = ""
    maintainer: str = ""
    cmd_set: bool = False
    os: str = "linux"
    extra: dict[str, Any] = field(default_factory=dict)

    def expansion_env(self) -> list[str]:
        """The env words are expanded with: ENV first, then build args not shadowed."""
        env = list(self.run_config.get("Env") or [])
        return env + self.build_args.filter_allowed(env)

    def set_default_path(self) -> None:
        env = list(self.run_config.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            env.append(DEFAULT_PATH)
        self.run_config["Env"] = env

    def update_run_config(self) -> None:
        self.run_config["Image"] = self.image_id
