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
import logging
import os
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
from .config import DaemonConfig, Runtime, Ulimit, parse_ulimit
from .daemon import cgroupdriver, sysinfo
from .daemon import network as daemon_network
from .daemon.daemon import Daemon
from .daemon.reload import reload_registry
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


def load_config(args: argparse.Namespace, set_keys: set[str] | None = None) -> DaemonConfig:
    """daemon.json, then flags on top; a key given both ways is an error, as in dockerd.
    `set_keys` receives the keys the file or the flags set (dockerd's IsValueSet)."""
    raw: dict[str, Any] = {}
    if os.path.exists(args.config_file):
        with open(args.config_file, "rb") as f:
            data = f.read()
        if data.strip():
            try:
                raw = msgspec.json.decode(data)
            except msgspec.DecodeError as e:
                raise SystemExit(f"unable to configure the Docker daemon with file {args.config_file}: {e}") from None
    flags: dict[str, Any] = {}
    for key in ("host", "data_root", "exec_root", "pidfile", "log_level", "debug", "storage_driver", "tlsverify",
                "tlscacert", "tlscert", "tlskey", "group", "default_runtime", "log_driver",
                "default_ipc_mode", "default_cgroupns_mode", "live_restore", "no_new_privileges", "bridge", "bip",
                "init", "metrics_addr", "host_gateway_ip", "ip_forward", "iptables", "ip_masq", "icc", "userland_proxy",
                "cgroup_parent"):
        v = getattr(args, key)
        if v is not None:
            flags["hosts" if key == "host" else key.replace("_", "-")] = v
    if args.default_shm_size:
        flags["default-shm-size"] = ram_in_bytes(args.default_shm_size)
    if args.log_opt:
        flags["log-opts"] = dict(o.split("=", 1) for o in args.log_opt)
    for key, attr in (("insecure-registries", "insecure_registry"), ("registry-mirrors", "registry_mirror"),
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
    conflicts = sorted(set(flags) & set(raw))
    if conflicts:
        raise SystemExit(
            "unable to configure the Docker daemon with file "
            f"{args.config_file}: the following directives are specified both as a flag and in the "
            f"configuration file: {', '.join(conflicts)}"
        )
    merged = {**raw, **flags}
    if set_keys is not None:
        set_keys.update(merged)
    cfg = msgspec.convert(merged, DaemonConfig)
    _check_host_setup(cfg)
    if cfg.host_gateway_ip:  # daemon.json: net.IP's UnmarshalText
        try:
            cfg.host_gateway_ip = str(ipaddress.ip_address(cfg.host_gateway_ip))
        except ValueError:
            raise SystemExit(f"unable to configure the Docker daemon with file {args.config_file}: "
                             f"invalid IP address: {cfg.host_gateway_ip}") from None
    for spec in args.add_runtime:
        name, _, path = spec.partition("=")
        cfg.runtimes[name] = Runtime(path=path or name)
    if not cfg.hosts:
        cfg.hosts = [DEFAULT_HOST]
    _verify_cgroup_settings(cfg)
    try:
        load_allow_nondistributable_artifacts(cfg.allow_nondistributable_artifacts)  # registry.NewService
    except errdefs.DockerError as e:
        raise SystemExit(str(e)) from None
    return cfg


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


def _reload(d: Any, read: Callable[[set[str]], DaemonConfig], config_file: str) -> None:
    """SIGHUP (dockerd's reload): the configuration read again, its registry settings applied."""
    log.info("Got signal to reload configuration, reloading from: %s", config_file)
    keys: set[str] = set()
    try:
        new = read(keys)
    except SystemExit as e:  # load_config's refusals: logged, nothing changes
        log.error("%s", e)
        return
    try:
        attrs = reload_registry(d, new, keys)
    except ValueError as e:
        log.error("Error reconfiguring the daemon: %s", e)
        return
    log.info("Reloaded configuration: %s", attrs)


async def serve(cfg: DaemonConfig, reread: Callable[[set[str]], DaemonConfig] | None = None,
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
        await d.shutdown_lifecycle()
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
    asyncio.run(serve(cfg, lambda keys: load_config(args, keys), args.config_file))


if __name__ == "__main__":
    main()
