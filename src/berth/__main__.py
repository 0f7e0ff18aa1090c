"""berthd: flags and daemon.json → DaemonConfig → Daemon → API server (moby/cmd/dockerd).

The one module that imports both the API and the daemon.
"""
from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import grp
import ipaddress
import json
import logging
import os
import re
import resource
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from . import ENGINE_VERSION, errdefs, trace
from .api import server
from .api.backend import BACKEND
from .api.fastpath import FastUnixSite
from .api.router import container as container_router
from .api.router import system as system_router
from .config import DaemonConfig, Runtime, Ulimit, check_file_keys, conflict_free_labels, parse_ulimit, validate
from .daemon import cgroupdriver, sysinfo
from .daemon import network as daemon_network
from .daemon.daemon import Daemon
from .daemon.reload import reload
from .pkg.units import ram_in_bytes
from .registry.config import load_allow_nondistributable_artifacts
from .runtime.spec import daemon_hard_limits

log = logging.getLogger("berthd")
DEFAULT_HOST = "unix:///run/berth/berth.sock"
DEFAULT_CONFIG_FILE = "/etc/berth/daemon.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="berthd", description="A Docker-compatible container engine daemon")
    p.add_argument("-H", "--host", action="append", default=None, help="daemon socket(s) to listen on")
    p.add_argument("--data-root", default=None)
    p.add_argument("--exec-root", default=None)
    p.add_argument("-p", "--pidfile", default=None)
    p.add_argument("-l", "--log-level", default=None, choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("-D", "--debug", action="store_true", default=None)
    p.add_argument("-s", "--storage-driver", default=None)
    p.add_argument("--config-file", default=DEFAULT_CONFIG_FILE)
    p.add_argument("--tlsverify", action="store_true", default=None)
    p.add_argument("--tlscacert", default=None)
    p.add_argument("--tlscert", default=None)
    p.add_argument("--tlskey", default=None)
    p.add_argument("-G", "--group", default=None)
    p.add_argument("--default-runtime", default=None)
    p.add_argument("--add-runtime", action="append", default=[], help="NAME=PATH")
    p.add_argument("--log-driver", default=None)
    p.add_argument("--log-opt", action="append", default=[], help="KEY=VALUE")
    p.add_argument("--default-shm-size", default=None)
    p.add_argument("--default-ipc-mode", default=None)
    p.add_argument("--default-cgroupns-mode", default=None)
    p.add_argument("--exec-opt", action="append", default=[], help="native.cgroupdriver=systemd|cgroupfs")
    p.add_argument("--cgroup-parent", default=None)
    p.add_argument("--live-restore", action="store_true", default=None)
    p.add_argument("--no-new-privileges", action="store_true", default=None)
    p.add_argument("-b", "--bridge", default=None)
    p.add_argument("--bip", default=None)
    p.add_argument("--host-gateway-ip", default=None, type=_ip_flag("host-gateway-ip"))
    for flag in ("--ip-forward", "--iptables", "--ip-masq", "--icc", "--userland-proxy"):
        p.add_argument(flag, nargs="?", const=True, default=None, type=_bool_flag(flag))
    p.add_argument("--init", action="store_true", default=None)
    p.add_argument("--default-ulimit", action="append", default=[], type=_ulimit_flag,
                   help="default ulimits for containers (name=soft[:hard])")
    p.add_argument("--metrics-addr", default=None, help="TCP address to serve the metrics API on")
    p.add_argument("--insecure-registry", action="append", default=[], help="registry to reach without TLS checks")
    p.add_argument("--registry-mirror", action="append", default=[], help="preferred Docker Hub mirror")
    p.add_argument("--allow-nondistributable-artifacts", action="append", default=[],
                   help="allow push of nondistributable artifacts to registry")
    p.add_argument("--max-concurrent-downloads", type=int, default=None)
    p.add_argument("--max-concurrent-uploads", type=int, default=None)
    p.add_argument("--max-download-attempts", type=int, default=None)
    p.add_argument("--label", action="append", default=[], help="set key=value labels to the daemon")
    p.add_argument("--shutdown-timeout", type=int, default=None,
                   help="least time the daemon's shutdown waits for its containers")
    p.add_argument("-v", "--version", action="store_true")
    return p.parse_args(argv)


def _ip_flag(name: str) -> Any:
    """pflag's IPVar: net.ParseIP, with pflag's error for anything else."""
    def parse(value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise argparse.ArgumentTypeError(f'invalid argument "{value}" for "--{name}" flag: '
                                             f'failed to parse IP: "{value}"') from None
    return parse


def _bool_flag(name: str) -> Any:
    """pflag's BoolVar value (`--icc=false`): strconv.ParseBool."""
    def parse(value: str) -> bool:
        if value in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if value in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise argparse.ArgumentTypeError(f'invalid argument "{value}" for "{name}" flag: '
                                         f'strconv.ParseBool: parsing "{value}": invalid syntax')
    return parse


# Host set-up options whose non-default values need firewall control netavark (which
# programs every bridge network's iptables rules) does not give Berth.
_UNSERVED_FALSE = {"iptables": "netavark programs iptables for every bridge network",
                   "ip_masq": "netavark masquerades every bridge network's traffic",
                   "icc": "netavark lets the containers of a bridge network reach each other",
                   "userland_proxy": "published ports are held by the daemon as docker-proxy holds them"}


def _check_host_setup(cfg: DaemonConfig) -> None:
    """Refuse, rather than ignore, a host set-up value Berth cannot serve."""
    for key, why in _UNSERVED_FALSE.items():
        if getattr(cfg, key) is False:
            raise SystemExit(f"berthd: --{key.replace('_', '-')}=false is not supported: {why}")


def _ulimit_flag(value: str) -> Ulimit:
    """opts.NamedUlimitOpt.Set: go-units ParseUlimit."""
    try:
        return parse_ulimit(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f'invalid argument "{value}" for "--default-ulimit" flag: {e}') from None


def _check_default_ulimits(cfg: DaemonConfig) -> None:
    """A default ulimit whose hard limit is above the daemon's own, when the daemon cannot
    raise limits (no CAP_SYS_RESOURCE), would make every container start fail in runc
    ("error setting rlimit type N: operation not permitted"); the spec builder lowers it to
    the daemon's limit instead (runtime/spec.py rlimits), and we say so once here."""
    if not cfg.default_ulimits:
        return
    ceilings = daemon_hard_limits()
    for name, ul in sorted(cfg.default_ulimits.items()):
        if not ul.Name:
            ul.Name = name
        ceiling = ceilings.get(ul.Name.lower())
        if ceiling is not None and (ul.Hard & ((1 << 64) - 1)) > ceiling:
            log.warning("default ulimit %s: hard limit %s is above the daemon's own hard limit %s and the daemon "
                        "lacks CAP_SYS_RESOURCE: containers get %s", ul.Name, ul.Hard, ceiling, ceiling)


def _read_file(config_file: str) -> dict[str, Any]:
    """daemon.json's keys and values ({} when the file is missing or empty)."""
    if not os.path.exists(config_file):
        return {}
    with open(config_file, "rb") as f:
        data = f.read()
    if not data.strip():
        return {}
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise SystemExit(f"unable to configure the Docker daemon with file {config_file}: {e}") from None
    if not isinstance(raw, dict):
        raise SystemExit(f"unable to configure the Docker daemon with file {config_file}: json: cannot unmarshal "
                         f"{_go_json_kind(raw)} into Go value of type map[string]interface {{}}")
    if "default-shm-size" in raw:  # opts.MemBytes.UnmarshalJSON: a quoted human size only
        v = raw["default-shm-size"]
        try:
            if not isinstance(v, str) or not v:
                raise ValueError("invalid size: " + json.dumps(msgspec.json.encode(v).decode()))
            raw["default-shm-size"] = ram_in_bytes(v)
        except ValueError as e:
            raise SystemExit(f"unable to configure the Docker daemon with file {config_file}: {e}") from None
    return raw


def _go_json_kind(v: Any) -> str:
    """The JSON kind as encoding/json's UnmarshalTypeError names it."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _go_value(v: Any) -> str:
    """fmt's %v of a value as encoding/json or a flag holds it (the conflict message)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return "[" + " ".join(_go_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _flag_value(key: str, v: Any) -> str:
    """A flag's value as pflag prints it (--add-runtime's: the runtime names)."""
    if key == "runtimes":
        return _go_value([spec.partition("=")[0] for spec in v])
    return _go_value(v)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The options given as flags, under their daemon.json names."""
    flags: dict[str, Any] = {}
    for key in ("host", "data_root", "exec_root", "pidfile", "log_level", "debug", "storage_driver", "tlsverify",
                "tlscacert", "tlscert", "tlskey", "group", "default_runtime", "log_driver",
                "default_ipc_mode", "default_cgroupns_mode", "live_restore", "no_new_privileges", "bridge", "bip",
                "init", "metrics_addr", "host_gateway_ip", "ip_forward", "iptables", "ip_masq", "icc", "userland_proxy",
                "cgroup_parent", "shutdown_timeout"):
        v = getattr(args, key)
        if v is not None:
            flags["hosts" if key == "host" else key.replace("_", "-")] = v
    if args.default_shm_size:
        flags["default-shm-size"] = ram_in_bytes(args.default_shm_size)
    if args.log_opt:
        flags["log-opts"] = dict(o.split("=", 1) for o in args.log_opt)
    for key, attr in (("insecure-registries", "insecure_registry"), ("registry-mirrors", "registry_mirror"),
                      ("labels", "label"),
                      ("allow-nondistributable-artifacts", "allow_nondistributable_artifacts")):
        if getattr(args, attr):
            flags[key] = getattr(args, attr)
    for key in ("max_concurrent_downloads", "max_concurrent_uploads", "max_download_attempts"):
        if getattr(args, key) is not None:
            flags[key.replace("_", "-")] = getattr(args, key)
    if args.exec_opt:
        flags["exec-opts"] = args.exec_opt
    if args.default_ulimit:
        flags["default-ulimits"] = {u.Name: msgspec.to_builtins(u) for u in args.default_ulimit}
    if args.add_runtime:  # a named option: its daemon.json key is `runtimes`
        flags["runtimes"] = args.add_runtime
    return flags


def _file_config(args: argparse.Namespace, flags: dict[str, Any]) -> dict[str, Any]:
    """getConflictFreeConfiguration: the file's keys, none of them also given as a flag."""
    raw = _read_file(args.config_file)
    try:
        check_file_keys(list(raw))
    except ValueError as e:
        raise SystemExit(f"unable to configure the Docker daemon with file {args.config_file}: {e}") from None
    conflicts = sorted(set(flags) & set(raw))
    if conflicts:
        raise SystemExit(
            "unable to configure the Docker daemon with file "
            f"{args.config_file}: the following directives are specified both as a flag and in the "
            "configuration file: "
            + ", ".join(f"{k}: (from flag: {_flag_value(k, flags[k])}, from file: {_go_value(raw[k])})"
                        for k in conflicts)
        )
    return raw


def _convert(values: dict[str, Any], config_file: str) -> DaemonConfig:
    """The values into a DaemonConfig; a value of the wrong type refused with encoding/json's
    words, as dockerd's decoder of daemon.json."""
    try:
        return msgspec.convert(values, DaemonConfig)
    except msgspec.ValidationError as e:
        m = re.match(r"Expected `([^`]*)`, got `([^`]*)` - at `\$\.([^`\[.]*)", str(e))
        if m is None:
            raise SystemExit(f"unable to configure the Docker daemon with file {config_file}: {e}") from None
        want, got, key = m.groups()
        go_type = {"bool": "bool", "int": "int", "str": "string", "float": "float64", "array": "[]string",
                   "object": "map[string]string"}.get(want.split(" ")[0], want)
        got = {"str": "string", "int": "number", "float": "number", "bool": "bool", "array": "array",
               "object": "object"}.get(got, got)
        raise SystemExit(f"unable to configure the Docker daemon with file {config_file}: json: cannot unmarshal "
                         f"{got} into Go struct field Config.{key} of type {go_type}") from None


def load_config(args: argparse.Namespace) -> DaemonConfig:
    """daemon.json, then flags on top; a key given both ways is an error, as in dockerd
    (MergeDaemonConfigurations: the file validated alone, then the result)."""
    flags = _flags(args)
    raw = _file_config(args, flags)
    add_runtime = flags.pop("runtimes", [])
    merged = {**raw, **flags}
    file_cfg = _convert(raw, args.config_file)
    try:
        validate(file_cfg, set(raw))
    except ValueError as e:
        raise SystemExit(f"configuration validation from file failed: {e}") from None
    cfg = _convert(merged, args.config_file)
    _check_host_setup(cfg)
    if cfg.host_gateway_ip:  # daemon.json: net.IP's UnmarshalText
        try:
            cfg.host_gateway_ip = str(ipaddress.ip_address(cfg.host_gateway_ip))
        except ValueError:
            raise SystemExit(f"unable to configure the Docker daemon with file {args.config_file}: "
                             f"invalid IP address: {cfg.host_gateway_ip}") from None
    for spec in add_runtime:
        name, _, path = spec.partition("=")
        cfg.runtimes[name] = Runtime(path=path or name)
    try:
        validate(cfg, set(merged))
        cfg.labels = conflict_free_labels(cfg.labels)
    except ValueError as e:
        if str(e).startswith("conflict labels"):
            raise SystemExit(str(e)) from None
        raise SystemExit(f"merged configuration validation from file and command line flags failed: {e}") from None
    if not cfg.hosts:
        cfg.hosts = [DEFAULT_HOST]
    _verify_cgroup_settings(cfg)
    try:
        load_allow_nondistributable_artifacts(cfg.allow_nondistributable_artifacts)  # registry.NewService
    except errdefs.DockerError as e:
        raise SystemExit(str(e)) from None
    return cfg


def reload_config(args: argparse.Namespace) -> tuple[DaemonConfig, set[str]]:
    """config.Reload's reading: the file alone (the flags count only to refuse a key given
    both ways), validated, its labels made conflict free; and the keys it sets. SystemExit
    with dockerd's text when it cannot be used. A missing file is an empty configuration
    unless --config-file named it (dockerd's flags.Changed)."""
    flags = _flags(args)
    if not os.path.exists(args.config_file) and args.config_file != DEFAULT_CONFIG_FILE:
        raise SystemExit(f"unable to configure the Docker daemon with file {args.config_file}: "
                         f"open {args.config_file}: no such file or directory")
    raw = _file_config(args, flags)
    cfg = _convert(raw, args.config_file)
    try:
        validate(cfg, set(raw))
    except ValueError as e:
        raise SystemExit(f"file configuration validation failed: {e}") from None
    try:
        cfg.labels = conflict_free_labels(cfg.labels)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    return cfg, set(raw)


def _verify_cgroup_settings(cfg: DaemonConfig) -> None:
    """verifyDaemonSettings' cgroup checks: the driver, then a systemd parent is a slice."""
    try:
        cgroupdriver.verify_cgroup_driver(cfg.exec_opts)
        systemd = cgroupdriver.using_systemd(cfg.exec_opts, sysinfo.is_cgroup_v2())
        cgroupdriver.verify_cgroup_parent(cfg.cgroup_parent, systemd)
    except ValueError as e:
        raise SystemExit(str(e)) from None


class PidfileLock:
    """Refuse a second daemon: lock the pidfile and a lock file in the data root."""

    def __init__(self, pidfile: str, data_root: str) -> None:
        self.pidfile = pidfile
        self._fds: list[int] = []
        for path in (pidfile, os.path.join(data_root, "berthd.lock")):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self.release()
                if path == pidfile:
                    raise SystemExit(f"pid file found, ensure docker is not running or delete {pidfile}") from None
                raise SystemExit(f"data root {data_root} is in use by another daemon") from None
            self._fds.append(fd)
        os.ftruncate(self._fds[0], 0)
        os.write(self._fds[0], str(os.getpid()).encode())

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        if self._fds:
            try:
                os.unlink(self.pidfile)
            except FileNotFoundError:
                pass
        self._fds = []


def _ssl_context(cfg: DaemonConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cfg.tlscacert)
    ctx.load_cert_chain(cfg.tlscert, cfg.tlskey)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def _start_sites(runner: web.AppRunner, cfg: DaemonConfig) -> None:
    for host in cfg.hosts:
        if host.startswith("unix://") or host.startswith("/"):
            path = host[len("unix://"):] if host.startswith("unix://") else host
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            # Plain GETs answered without aiohttp's request cycle; the rest by aiohttp.
            site: web.BaseSite = FastUnixSite(runner, path, runner.app.router, runner.app)
            await site.start()
            os.chmod(path, 0o660)
            try:
                os.chown(path, 0, grp.getgrnam(cfg.group).gr_gid)
            except KeyError:
                pass
        elif host.startswith("tcp://"):
            if not (cfg.tlsverify and cfg.tlscacert and cfg.tlscert and cfg.tlskey):
                raise SystemExit(
                    f"refusing to listen on {host} without TLS: use --tlsverify --tlscacert --tlscert --tlskey"
                )
            addr = host[len("tcp://"):]
            h, _, port = addr.rpartition(":")
            site = web.TCPSite(runner, h or "0.0.0.0", int(port or 2376), ssl_context=_ssl_context(cfg))
            await site.start()
        else:
            raise SystemExit(f"invalid daemon host: {host}")


def _routes() -> list[server.Route]:
    routes: list[server.Route] = []
    routes += system_router.ROUTES
    routes += container_router.ROUTES
    for mod in ("events", "image", "volume", "network", "container_run",
                "attach", "exec", "archive", "container_stats", "build"):  # STREAMS helper routers
        try:
            m = __import__(f"berth.api.router.{mod}", fromlist=["ROUTES"])
        except ImportError as e:  # a router still being written must not stop the daemon
            log.warning("router %s unavailable: %s", mod, e)
            continue
        routes += m.ROUTES
    return routes


def app_state(d: Any) -> dict[web.AppKey[Any], Any]:
    """What the routers find in the application: the daemon and its services."""
    state: dict[web.AppKey[Any], Any] = {BACKEND: d}
    for mod, key, value in (
        ("events", "EVENTS", d.events),
        ("image", "IMAGE_SERVICE", d.images),
        ("image", "IMAGE_USED_BY", d.containers_using_image),
        ("volume", "VOLUME_SERVICE", d.volumes),
    ):
        try:
            m = __import__(f"berth.api.router.{mod}", fromlist=[key])
            state[getattr(m, key)] = value
        except (ImportError, AttributeError):
            pass
    return state


async def _start_metrics(addr: str, d: Any) -> web.AppRunner:
    """startMetricsServer: the daemon's collectors, then the listener."""
    # Late: prometheus_client (about 10 ms to import) only with --metrics-addr.
    from .daemon import metrics as daemon_metrics
    from .trace import server as trace_server

    daemon_metrics.register(d)
    try:
        return await trace_server.start(addr)
    except (ValueError, OSError) as e:
        raise SystemExit(f"metrics-addr {addr}: {e}") from None


def _reload(d: Any, read: Callable[[], tuple[DaemonConfig, set[str]]], config_file: str) -> None:
    """SIGHUP (dockerd's reloadConfig): the configuration file read again and applied; a file
    that cannot be used is logged and changes nothing."""
    log.info("Got signal to reload configuration, reloading from: %s", config_file)
    try:
        new, keys = read()
    except SystemExit as e:  # reload_config's refusals
        log.error("%s", e)
        return
    try:
        reload(d, new, keys)
    except (ValueError, OSError) as e:
        log.error("Error reconfiguring the daemon: %s", e)


async def _shutdown_containers(d: Any) -> None:
    """cmd/dockerd shutdownDaemon: the daemon's shutdown (its containers stopped unless live
    restore keeps them) waited for at most ShutdownTimeout seconds (-1: for ever)."""
    timeout = d.shutdown_timeout()
    task = asyncio.ensure_future(d.shutdown_lifecycle())
    if timeout < 0:
        await task
        return
    done, _ = await asyncio.wait([task], timeout=timeout)
    if task in done:
        task.result()
        log.debug("Clean shutdown succeeded")
    else:
        log.error("Force shutdown daemon")


async def serve(cfg: DaemonConfig, reread: Callable[[], tuple[DaemonConfig, set[str]]] | None = None,
                config_file: str = "") -> None:
    os.makedirs(cfg.exec_root, mode=0o700, exist_ok=True)
    os.makedirs(cfg.data_root, mode=0o710, exist_ok=True)
    lock = PidfileLock(cfg.pidfile_path, cfg.data_root)
    # Start-up makes ten thousands of long-lived objects (a container is a tree of
    # structs): the cyclic GC would scan them again and again while they are made, a
    # third of the restore at 10,000 containers. Off until the API answers, then they
    # are frozen out of every later collection (they live as long as the daemon or die
    # by reference count).
    gc.disable()
    metrics_runner = None
    try:
        trace.setup(metrics=bool(cfg.metrics_addr))  # OTLP from OTEL_* variables, metrics/page from the flag
        d = Daemon(cfg)
        await d.restore()
        await d.init_lifecycle()  # LIFECYCLE: runtime probe, live restore, restart policies
        await daemon_network.restore_networking(d)  # keep live containers' networks, drop dead ones'
        app = server.build_app(_routes(), app_state(d))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2)
        await runner.setup()
        if cfg.metrics_addr:
            metrics_runner = await _start_metrics(cfg.metrics_addr, d)
        await _start_sites(runner, cfg)
        log.info("berthd %s: API listen on %s", ENGINE_VERSION, ", ".join(cfg.hosts))
        gc.freeze()
        gc.enable()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if reread is not None:
            loop.add_signal_handler(signal.SIGHUP, _reload, d, reread, config_file)
        await stop.wait()
        log.info("shutting down")
        await runner.cleanup()
        await _shutdown_containers(d)
        await d.run_blocking(daemon_network.shutdown_networking, d)
        await d.shutdown()
    finally:
        gc.enable()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        trace.shutdown()
        lock.release()


def _raise_nofile_limit() -> None:
    """Take the hard RLIMIT_NOFILE as the soft one, as every Go program since Go 1.19
    does at start (dockerd 20.10.24 is built with 1.19): a daemon with a connection, a log
    and a few pipes per container must not stop at a shell's default of 1024. As with
    dockerd built with Go 1.19, what it spawns inherits the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log.warning("raising the open files limit from %d to %d: %s", soft, hard, e)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(f"Berth version {ENGINE_VERSION}")
        return
    cfg = load_config(args)
    level = "debug" if cfg.debug else cfg.log_level
    logging.basicConfig(
        level={"warn": logging.WARNING, "fatal": logging.CRITICAL}.get(level, getattr(logging, level.upper(), 20)),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _check_default_ulimits(cfg)
    _raise_nofile_limit()
    try:  # late and optional: without uvloop, asyncio's own loop serves
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(cfg, lambda: reload_config(args), args.config_file))


if __name__ == "__main__":
    main()
