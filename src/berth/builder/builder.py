"""The classic builder (moby/builder/dockerfile/builder.go, evaluator.go, internals.go,
containerbackend.go, imageprobe.go).

Stages are dispatched step by step with dockerd's output stream. A step's image is made
as dockerd makes it: metadata steps and RUN create a container from the current image
and commit its RW layer (an empty diff gives an `empty_layer` history entry); COPY/ADD
write into a fresh RW layer with no container; a cache probe looks for a child image of
the current one with the same ContainerConfig first.
"""
from __future__ import annotations

import copy
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import errdefs
from ..image.commit import CommitConfig
from ..image.image import normalize_config
from ..pkg import stringid
from ..types import gojson
from ..types.backend import ContainerCreateConfig, LogsConfig
from ..types.container import Config, HostConfig
from . import copier
from .context import BuildContext
from .dispatchers import DISPATCHERS, get_shell
from .instructions import Command, InstructionError, Stage, has_stage, parse_command
from .instructions import parse as parse_instructions
from .parser import ParseError, parse
from .shell import ShellError, process_word
from .state import BuildArgs, DispatchState

if TYPE_CHECKING:
    from ..image.image import Image
    from .backend import BuildBackend

log = logging.getLogger("berth.builder")


@dataclass
class BuildOptions:
    """types.ImageBuildOptions, the part the classic builder reads."""

    dockerfile: str = "Dockerfile"
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    remove: bool = True
    force_remove: bool = False
    target: str = ""
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    cache_from: list[str] = field(default_factory=list)


class BuildStepError(errdefs.DockerError):
    """jsonmessage.JSONError with a code: a RUN that exited non-zero."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


Writer = Callable[[str], Awaitable[None]]


def short(image_id: str) -> str:
    return stringid.truncate_id(image_id.removeprefix("sha256:"))


def _to_config(doc: dict[str, Any]) -> Config:
    return gojson.decode(json.dumps(doc).encode(), Config, go_type_name="container.Config")


def _compare(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """image/cache compare: the fields a cached image's ContainerConfig must share."""
    if a.get("OpenStdin") or b.get("OpenStdin"):
        return False
    for k in ("AttachStdout", "AttachStderr", "User", "Tty"):
        if (a.get(k) or None) != (b.get(k) or None):
            return False
    return all((a.get(k) or None) == (b.get(k) or None) for k in ("Cmd", "Env", "Labels", "ExposedPorts", "Entrypoint", "Volumes"))


class Builder:
    def __init__(self, d: BuildBackend, opts: BuildOptions, ctx: BuildContext, stdout: Writer, stderr: Writer,
                 aux: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.d = d
        self.opts = opts
        self.ctx = ctx
        self.stdout = stdout
        self.stderr = stderr
        self.aux = aux
        self.tmp_containers: list[str] = []
        self.cache_busted = False
        self.stages: dict[str, str] = {}  # stage name or index -> image ID
        self.build_args = BuildArgs(opts.build_args)
        self._cache_sources: set[str] | None = None

    def _cache_allowed(self) -> set[str] | None:
        """With `cachefrom`, dockerd consults only those images (and their parent
        chains), not the whole local store; None means any local image."""
        if not self.opts.cache_from:
            return None
        if self._cache_sources is None:
            ids: set[str] = set()
            for ref in self.opts.cache_from:
                try:
                    img: Image | None = self.d.images.get_image(ref)
                except errdefs.DockerError:
                    continue
                while img is not None and img.id not in ids:
                    ids.add(img.id)
                    img = self.d.images.image_by_id(img.parent) if img.parent else None
            self._cache_sources = ids
        return self._cache_sources

    # -- the whole build -------------------------------------------------------------

    def prepare(self, dockerfile: bytes) -> tuple[list[Stage], list[Command], str]:
        """Parse and check everything that fails before any output (400s)."""
        try:
            result = parse(dockerfile.decode("utf-8", errors="replace"))
        except ParseError as e:
            raise errdefs.InvalidParameter(f"failed to parse Dockerfile: {e}") from None
        try:
            stages, meta = parse_instructions(result.children)
        except (InstructionError, ParseError) as e:
            raise errdefs.InvalidParameter(str(e)) from None
        if not stages:
            raise errdefs.InvalidParameter("no build stage in current context")
        if self.opts.target:
            ix = has_stage(stages, self.opts.target)
            if ix < 0:
                raise errdefs.InvalidParameter(f"failed to reach build target {self.opts.target} in Dockerfile")
            stages = stages[: ix + 1]
        for key in sorted(self.opts.labels):  # buildLabelOptions: a LABEL step on the last stage
            value = self.opts.labels[key]
            stages[-1].commands.append(Command("label", f"LABEL {key}={value}", [key, value], {"_noexp": "1"},
                                               False, 0))
        return stages, meta, result.escape

    async def build(self, stages: list[Stage], meta: list[Command], escape: str) -> str:
        try:
            # a global ARG before the first FROM is a step of its own, shown and counted
            # (dispatchDockerfileWithCancellation's printCommand of each metaArg)
            total = len(meta) + sum(1 + len(s.commands) for s in stages)
            index = 0
            for m in meta:
                index += 1
                await self._print_step(index, total, m.original)
                for word in m.args:
                    k, sep, v = word.partition("=")
                    try:
                        value = process_word(v, self.build_args.meta_env(), escape) if sep else None
                    except ShellError as e:
                        raise errdefs.InvalidParameter(str(e)) from None
                    self.build_args.add_meta_arg(k, value)
            state: DispatchState | None = None
            for stage_ix, stage in enumerate(stages):
                if stage.name and stage.name in self.stages:
                    raise errdefs.InvalidParameter("a stage name already used")
                index += 1
                await self._print_step(index, total, stage.original)
                state = DispatchState({}, self.build_args.clone_for_stage(), escape)
                await self._initialize_stage(state, stage)
                state.update_run_config()
                await self.stdout(f" ---> {short(state.image_id)}\n")
                for cmd in stage.commands:
                    index += 1
                    await self._print_step(index, total, cmd.original)
                    await self._dispatch(state, cmd)
                    state.update_run_config()
                    await self.stdout(f" ---> {short(state.image_id)}\n")
                await self.aux({"ID": state.image_id})
                self.build_args.referenced |= state.build_args.referenced
                self.stages[str(stage_ix)] = state.image_id
                if stage.name:
                    self.stages[stage.name] = state.image_id
            unused = self.build_args.unused()
            if unused:
                await self.stdout(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
            assert state is not None
            if not state.image_id:
                raise errdefs.Untyped("No image was generated. Is your Dockerfile empty?")
            return state.image_id
        finally:
            if self.opts.force_remove:
                await self._remove_all()

    async def _print_step(self, index: int, total: int, original: str) -> None:
        # dockerd writes the step and its newline as two messages
        await self.stdout(f"Step {index}/{total} : {original}")
        await self.stdout("\n")

    async def _initialize_stage(self, s: DispatchState, stage: Stage) -> None:
        """initializeStage: the base (scratch, an earlier stage, a local image), then
        the base's ONBUILD triggers."""
        try:
            base = process_word(stage.base, self.build_args.meta_env(), s.escape)
        except ShellError as e:
            raise errdefs.InvalidParameter(str(e)) from None
        s.stage_name = stage.name
        img = None
        if base.lower() == "scratch":
            s.run_config = {}
        else:
            image_id = self.stages.get(base.lower())
            try:
                img = self.d.images.get_image(image_id or base)
            except errdefs.NotFound:
                raise errdefs.NotFound(
                    f"pull access denied for {base}, repository does not exist or may require 'docker login': "
                    "Berth builds from local images only") from None
            s.image_id = img.id
            s.run_config = copy.deepcopy(normalize_config(img.config) or {})
        s.base_image = img
        s.set_default_path()
        s.run_config["OpenStdin"] = False
        s.run_config["StdinOnce"] = False
        triggers = list(s.run_config.get("OnBuild") or [])
        if triggers:
            s.run_config["OnBuild"] = None
            await self.stdout(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for trigger in triggers:
                s.update_run_config()
                try:
                    nodes = parse(trigger).children
                    if len(nodes) != 1:
                        raise errdefs.InvalidParameter("onbuild trigger should be a single expression")
                    cmd = parse_command(nodes[0])
                except (ParseError, InstructionError) as e:
                    raise errdefs.InvalidParameter(str(e)) from None
                await self._dispatch(s, cmd)

    async def _dispatch(self, s: DispatchState, cmd: Command) -> None:
        """evaluator.go dispatch: run the step; remove its containers after success
        (rm) or always (forcerm)."""
        ok = False
        try:
            await DISPATCHERS[cmd.name](self, s, cmd)
            ok = True
        finally:
            if self.opts.force_remove or (self.opts.remove and ok):
                await self._remove_all()

    async def _remove_all(self) -> None:
        for cid in list(self.tmp_containers):
            try:
                await self.d.container_rm(cid, True, True, False)
            except errdefs.NotFound:
                pass
            except errdefs.DockerError as e:
                await self.stdout(f"Failed to remove intermediate container {short(cid)}: {e}\n")
                continue
            self.tmp_containers.remove(cid)
            await self.stdout(f"Removing intermediate container {short(cid)}\n")

    # -- making a step's image -------------------------------------------------------

    async def probe_cache(self, s: DispatchState, cfg: dict[str, Any]) -> bool:
        """imageProber.Probe over the local cache: a child of the current image whose
        ContainerConfig matches; the first miss busts the cache for the rest."""
        if self.opts.no_cache or self.cache_busted or not s.image_id:
            return False
        want = normalize_config(cfg) or {}
        best = None
        allowed = self._cache_allowed()
        for child_id in self.d.images.children(s.image_id):
            if allowed is not None and child_id not in allowed:
                continue
            child = self.d.images.image_by_id(child_id)
            if child is None or not _compare(normalize_config(child.container_config) or {}, want):
                continue
            if best is None or child.created > best.created:
                best = child
        if best is None:
            self.cache_busted = True
            return False
        await self.stdout(" ---> Using cache\n")
        s.image_id = best.id
        return True

    async def _create(self, cfg: dict[str, Any]) -> str:
        """Builder.create: a container for the step, host settings from the request."""
        hc = HostConfig(NetworkMode=self.opts.network_mode or "default",
                        ExtraHosts=list(self.opts.extra_hosts) or None, ShmSize=self.opts.shm_size)
        created = await self.d.container_create(ContainerCreateConfig(
            name="", config=_to_config(normalize_config(cfg) or {}), host_config=hc, networking_config=None))
        self.tmp_containers.append(created.Id)
        for w in created.Warnings or []:
            await self.stdout(f" ---> [Warning] {w}\n")
        await self.stdout(f" ---> Running in {short(created.Id)}\n")
        return created.Id

    async def _commit_container(self, s: DispatchState, cid: str, container_config: dict[str, Any]) -> None:
        """commitContainer → CommitBuildStep: the container's RW layer on the current image."""
        rw = self.d.layers.get_rw_layer(cid)
        s.image_id = await self.d.run_blocking(self.d.images.commit, CommitConfig(
            author=s.maintainer, comment="", config=normalize_config(s.run_config) or {},
            container_config=normalize_config(container_config) or {}, container_id=cid,
            parent_image_id=s.image_id, rw_layer=rw))

    async def commit(self, s: DispatchState, comment: str, comment_string: bool = False) -> None:
        """Builder.commit for metadata steps: `#(nop)` in the ContainerConfig's Cmd."""
        cfg = copy.deepcopy(s.run_config)
        shell = get_shell(cfg)
        cfg["Cmd"] = shell + (["#(nop) " + comment] if comment_string else ["#(nop) ", comment])
        if await self.probe_cache(s, cfg):
            return
        cid = await self._create(cfg)
        cfg["Hostname"] = cid[:12]  # newContainer writes it into the config it was given
        await self._commit_container(s, cid, cfg)

    async def run(self, s: DispatchState, run_cfg: dict[str, Any], probe_cfg: dict[str, Any]) -> None:
        """dispatchRun's container: start it, stream its output, fail on a non-zero exit."""
        cid = await self._create(run_cfg)
        fut = await self.d.container_wait(cid, "next-exit")
        await self.d.container_start(cid)
        msgs, _tty = await self.d.container_logs(cid, LogsConfig(True, True, "", "", False, True, "", False))
        try:
            async for m in msgs:
                text = m.line.decode("utf-8", errors="replace")
                if m.stream == 2:
                    await self.stderr(text)
                else:
                    await self.stdout(text)
        finally:
            await msgs.aclose()
        code, _error = await fut
        if code != 0:
            msg = f"The command '{' '.join(run_cfg['Cmd'])}' returned a non-zero code: {code}"
            raise BuildStepError(msg, code)
        await self._commit_container(s, cid, probe_cfg)

    async def perform_copy(self, s: DispatchState, cmd: Command, args: list[str], kind: str) -> None:
        """performCopy: sources from the context or another image, copied into a new
        RW layer of the current image, committed with no container."""
        name = kind.upper()
        dest = args[-1]
        workdir = s.run_config.get("WorkingDir") or "/"
        if not dest.startswith("/"):
            trail = dest.endswith("/") or dest in (".", "./")
            dest = (workdir.rstrip("/") + "/" + dest).replace("//", "/")
            dest = dest.rstrip("/") + "/" if trail else dest
        from_ref = cmd.flags.get("from", "")
        src_root, release_src = self.ctx.root, None
        if from_ref:
            src_root, release_src = await self._mount_from(from_ref)
        try:
            try:
                infos = await self.d.run_blocking(copier.collect, src_root, args[:-1])
            except copier.CopyError as e:
                raise errdefs.Untyped(f"{name} failed: {e}") from None
            if len(args) > 2 and not dest.endswith("/"):
                raise errdefs.InvalidParameter(
                    f"When using {name} with more than one source file, the destination must be a directory "
                    "and end with a /")
            src_hash = await self.d.run_blocking(copier.source_hash, infos,
                                                 None if from_ref else self.ctx.sums)
            chown = cmd.flags.get("chown", "")
            # dockerd writes no space after the flag: `COPY --chown=1:2file:<hash> in /x `
            chown_comment = f"--chown={chown}" if chown else ""
            cfg = copy.deepcopy(s.run_config)
            cfg["Cmd"] = get_shell(cfg) + [f"#(nop) {name} {chown_comment}{src_hash} in {args[-1]} "]
            if await self.probe_cache(s, cfg):
                return
            await self._copy_to_new_layer(s, infos, dest, chown, kind == "add", cfg)
        finally:
            if release_src is not None:
                await self.d.run_blocking(release_src)

    async def _mount_from(self, ref: str) -> tuple[str, Callable[[], None]]:
        """imageSources.Get for `--from`: a stage by name or index, else a local image,
        mounted read-only through a throwaway RW layer."""
        image_id = self.stages.get(ref.lower())
        try:
            img = self.d.images.get_image(image_id or ref)
        except errdefs.DockerError as e:
            raise errdefs.InvalidParameter(f"invalid from flag value {ref}: {e}") from None
        layer_id = "build-" + stringid.generate_random_id()
        rw = await self.d.run_blocking(self.d.layers.create_rw_layer, layer_id, img.top_layer)
        root = await self.d.run_blocking(rw.mount)

        def release() -> None:
            rw.unmount()
            self.d.layers.remove_rw_layer(layer_id)

        return root, release

    async def _copy_to_new_layer(self, s: DispatchState, infos: list[copier.CopyInfo], dest: str, chown: str,
                                 decompress: bool, cfg: dict[str, Any]) -> None:
        parent = self.d.images.image_by_id(s.image_id) if s.image_id else None
        layer_id = "build-" + stringid.generate_random_id()
        rw = await self.d.run_blocking(self.d.layers.create_rw_layer, layer_id,
                                       parent.top_layer if parent is not None else None)
        try:
            def do_copy() -> None:
                rootfs = rw.mount()
                try:
                    ids = copier.parse_chown(rootfs, chown) if chown else (0, 0)
                    copier.copy_into(rootfs, infos, dest, ids, decompress)
                finally:
                    rw.unmount()

            try:
                await self.d.run_blocking(do_copy)
            except copier.CopyError as e:
                raise errdefs.Untyped(f"failed to copy files: {e}") from None
            except OSError as e:
                raise errdefs.Untyped(f"failed to copy files: {e}") from None
            s.image_id = await self.d.run_blocking(self.d.images.commit, CommitConfig(
                author=s.maintainer, comment="", config=normalize_config(s.run_config) or {},
                container_config=normalize_config(cfg) or {}, container_id="",
                parent_image_id=s.image_id, rw_layer=rw))
        finally:
            await self.d.run_blocking(self.d.layers.remove_rw_layer, layer_id)
