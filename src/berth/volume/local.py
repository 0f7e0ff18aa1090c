"""The `local` volume driver (moby v20.10.24 volume/local/local.go, local_unix.go).

Layout under the driver root (`<data-root>/volumes`, mode 0701):

    <root>/<name>/                 0701, its ctime is the volume's CreatedAt
    <root>/<name>/_data/           0755, the Mountpoint handed to containers
    <root>/<name>/metadata.json    Driver, Labels, Options as given at create

dockerd keeps Labels and Options in a bolt DB (`metadata.db`, volume/service/db.go)
and the mount options in `<name>/opts.json`. Berth has only this driver, so it keeps
one atomically written file per volume, inside the directory that removing the volume
deletes: a volume and its metadata appear and disappear together. A directory without
the file (a crash between mkdir and the write) restores as a volume with no labels or
options, which is what dockerd's driver does for a directory it finds on start.

Volumes with `type`/`device` options are mounted on first use (`mount`) and unmounted
when the last user is gone (`unmount`), as localVolume.Mount/Unmount.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import ipaddress
import os
import re
import shutil
import socket
import threading

import msgspec

from .. import errdefs
from ..pkg import atomicfile
from ..pkg.units import ram_in_bytes
from .mounts import go_errno_text, go_quote

DRIVER_NAME = "local"
SCOPE = "local"
VOLUME_DATA_PATH_NAME = "_data"
_METADATA_FILE = "metadata.json"

# names.RestrictedNamePattern: the name becomes a directory, so no `/` or leading `.`.
RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_NAME_RE = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")

# local_unix.go validOpts / mandatoryOpts: `size` is a quota, the rest a mount(2).
_VALID_OPTS = frozenset({"type", "o", "device", "size"})
_MANDATORY_OPTS = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


class _Metadata(msgspec.Struct):
    """What one volume's metadata.json holds (volume/service/db.go volumeMetadata)."""

    Name: str
    Driver: str = DRIVER_NAME
    Labels: dict[str, str] | None = None
    Options: dict[str, str] | None = None
    # Created without a name (a container's `-v /x`, an image VOLUME, `POST /volumes/create`
    # with no Name). dockerd 23+ records this as the label `com.docker.volume.anonymous`;
    # 20.10 (API <= 1.41 here) does not, so Berth keeps it apart from Labels and the API
    # layer shows it as that label from 1.42 on (volume/service.py ANONYMOUS_LABEL).
    Anonymous: bool = False


class LocalVolume:
    """localVolume: one volume of the local driver. Thread-safe."""

    def __init__(self, name: str, root_path: str, meta: _Metadata) -> None:
        self.name = name
        self.root_path = root_path  # <root>/<name>
        self._path = os.path.join(root_path, VOLUME_DATA_PATH_NAME)
        self.labels = meta.Labels
        self.options = meta.Options
        self.anonymous = meta.Anonymous
        # optsConfig: set only when options were given (setOpts ignores an empty map).
        self.mount_opts = dict(meta.Options) if meta.Options else None
        self._lock = threading.Lock()
        self._active_count = 0
        self._mounted = False

    def driver_name(self) -> str:
        return DRIVER_NAME

    def path(self) -> str:
        """The data directory, `<root>/<name>/_data`."""
        return self._path

    def created_at(self) -> str:
        """CreatedAt as dockerd shows it: the ctime of `<root>/<name>`, RFC 3339 in local time."""
        st = os.stat(self.root_path)
        return format_rfc3339(st.st_ctime)

    def needs_mount(self) -> bool:
        """localVolume.needsMount: a device or a type was given."""
        opts = self.mount_opts or {}
        return bool(opts.get("device") or opts.get("type"))

    def mount(self, ref: str) -> str:
        """localVolume.Mount: mount the device on first use (when options were given)."""
        del ref  # the local driver counts users, it does not track them
        with self._lock:
            if self.needs_mount():
                if not self._mounted:
                    self._do_mount()
                    self._mounted = True
                self._active_count += 1
            return self._path

    def unmount(self, ref: str) -> None:
        """localVolume.Unmount: the count drops even if unmounting fails."""
        del ref
        with self._lock:
            if self.needs_mount():
                # Never below 0: a container that outlived a daemon restart releases a
                # mount this daemon did not make.
                self._active_count = max(0, self._active_count - 1)
            if self._active_count > 0:
                return
            self._unmount_locked()

    def _do_mount(self) -> None:
        opts = self.mount_opts or {}
        device = opts.get("device", "")
        if not device:
            raise errdefs.System("missing device in volume options")
        mount_opts = opts.get("o", "")
        if opts.get("type") in ("nfs", "cifs"):
            mount_opts = resolve_addr_option(mount_opts)
        try:
            _mount(device, self._path, opts.get("type", ""), mount_opts)
        except OSError as e:
            raise errdefs.System(f"failed to mount local volume: {e.strerror}") from None

    def _unmount_locked(self) -> None:
        if self.needs_mount() and self._mounted:
            try:
                _umount(self._path)
            except OSError as e:
                if _is_mounted(self._path):
                    raise errdefs.System(e.strerror or str(e)) from None
            self._mounted = False

    def remove_checks(self) -> None:
        """Root.Remove's refusal of a volume still mounted by a user."""
        with self._lock:
            if self._active_count > 0:
                raise errdefs.System("volume has active mounts")
            self._unmount_locked()


class Root:
    """local.Root: creates, finds and removes local volumes under `root`. Thread-safe."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, mode=0o701, exist_ok=True)
        os.chmod(root, 0o701)  # the remapped root may traverse, not list
        self._lock = threading.Lock()
        self._volumes: dict[str, LocalVolume] = {}
        for name in sorted(os.listdir(root)):
            vol_root = os.path.join(root, name)
            if name.startswith(".") or not os.path.isdir(vol_root) or os.path.islink(vol_root):
                continue
            vol = LocalVolume(name, vol_root, _read_metadata(vol_root, name))
            if vol.needs_mount() and _is_mounted(vol.path()):
                # Left mounted by an unclean shutdown: unmount, as New does for opts.json volumes.
                try:
                    _umount(vol.path())
                except OSError:
                    pass
            self._volumes[name] = vol

    def name(self) -> str:
        return DRIVER_NAME

    def list(self) -> list[LocalVolume]:
        with self._lock:
            return list(self._volumes.values())

    def get(self, name: str) -> LocalVolume | None:
        with self._lock:
            return self._volumes.get(name)

    def create(
        self, name: str, opts: dict[str, str] | None, labels: dict[str, str] | None, anonymous: bool = False
    ) -> tuple[LocalVolume, bool]:
        """Root.Create: (volume, created?). An existing volume is returned as it is.

        The store's checkConflict returns an existing volume before the driver sees
        the request, so options given for one are not even validated.
        """
        with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return existing, False
            validate_name(name)
            validate_opts(opts)
            vol_root = os.path.join(self.root, name)
            data = os.path.join(vol_root, VOLUME_DATA_PATH_NAME)
            try:
                os.makedirs(vol_root, mode=0o701, exist_ok=True)
                os.chmod(vol_root, 0o701)
            except OSError as e:
                raise errdefs.System(
                    f"error while creating volume root path '{vol_root}': {_go_path_error('mkdir', e)}"
                ) from None
            try:
                os.makedirs(data, mode=0o755, exist_ok=True)
                os.chmod(data, 0o755)
                meta = _Metadata(Name=name, Labels=labels, Options=opts, Anonymous=anonymous)
                atomicfile.write_file(os.path.join(vol_root, _METADATA_FILE), msgspec.json.encode(meta), 0o600)
                atomicfile.fsync_dir(self.root)
            except OSError as e:
                shutil.rmtree(vol_root, ignore_errors=True)
                raise errdefs.System(
                    f"error while creating volume data path '{data}': {_go_path_error('mkdir', e)}"
                ) from None
            vol = LocalVolume(name, vol_root, meta)
            self._volumes[name] = vol
            return vol, True

    def forget(self, name: str) -> None:
        """Drop a volume from memory only (a forced remove whose deletion failed)."""
        with self._lock:
            self._volumes.pop(name, None)

    def remove(self, vol: LocalVolume) -> None:
        """Root.Remove: unmount, then delete `<root>/<name>` (only inside the root)."""
        with self._lock:
            vol.remove_checks()
            real = os.path.realpath(vol.path()) if os.path.lexists(vol.path()) else vol.root_path
            if not _scoped_path(self.root, real):
                raise errdefs.System(
                    f"Unable to remove a directory outside of the local volume root {self.root}: {real}"
                )
            try:
                _remove_path(real)
                self._volumes.pop(vol.name, None)
                _remove_path(vol.root_path)
            except OSError as e:
                raise errdefs.System(_go_path_error("unlinkat", e)) from None


def validate_name(name: str) -> None:
    """Root.validateName (20.10): a one-character name gets its own message; both 400."""
    if len(name) == 1:
        raise errdefs.InvalidParameter("volume name is too short, names should be at least two alphanumeric characters")
    if not _NAME_RE.match(name):
        raise errdefs.InvalidParameter(
            f"{go_quote(name)} includes invalid characters for a local volume name, only "
            f"{go_quote(RESTRICTED_NAME_CHARS)} are allowed. If you intended to pass a host directory, "
            "use absolute path"
        )


def validate_opts(opts: dict[str, str] | None) -> None:
    """setOpts + validateOpts: only type, o, device and size; `type` and `device` need each
    other, `o` needs both; `size` must parse as a RAM size and, above 0, needs quota support.

    dockerd walks Go maps here, so with several bad keys its choice is random; Berth
    reports the first in sorted order.
    """
    if not opts:
        return
    for opt in sorted(opts):
        if opt not in _VALID_OPTS:
            raise errdefs.InvalidParameter(f"invalid option: {go_quote(opt)}")
    for opt in sorted(opts):
        for req in _MANDATORY_OPTS.get(opt, ()):
            if req not in opts:
                raise errdefs.InvalidParameter(f"missing required option: {go_quote(req)}")
    if "size" in opts:
        try:
            size = ram_in_bytes(opts["size"])
        except ValueError as e:
            raise errdefs.Untyped(str(e)) from None
        if size > 0:
            # dockerd sets an XFS project quota (quota.NewControl); Berth has no quota
            # control on any backing filesystem, which is dockerd's answer on ext4 & co.
            raise errdefs.InvalidParameter("quota size requested but no quota support")


def resolve_addr_option(mount_opts: str) -> str:
    """localVolume.mount for nfs/cifs: the kernel takes only an address, so an `addr=`
    that is not an IPv4 address is resolved (net.ResolveIPAddr, IPv4 first) and replaced."""
    addr = next((o.split("=", 1)[1] for o in mount_opts.split(",") if o.startswith("addr=")), "")
    if not addr:
        return mount_opts
    try:
        ipaddress.IPv4Address(addr)
        return mount_opts
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(addr, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        reason = "no such host" if isinstance(e, socket.gaierror) else str(e)
        raise errdefs.System(
            f"error resolving passed in network volume address: lookup {addr}: {reason}"
        ) from None
    infos.sort(key=lambda i: i[0] != socket.AF_INET)
    ip = str(infos[0][4][0])
    return mount_opts.replace("addr=" + addr, "addr=" + ip, 1)


def format_rfc3339(ts: float) -> str:
    """Go's `t.Format(time.RFC3339)` of a Unix time in the daemon's local zone."""
    dt = datetime.datetime.fromtimestamp(int(ts)).astimezone()
    off = dt.utcoffset() or datetime.timedelta(0)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if not off:
        return base + "Z"
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{base}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _read_metadata(vol_root: str, name: str) -> _Metadata:
    try:
        with open(os.path.join(vol_root, _METADATA_FILE), "rb") as f:
            meta = msgspec.json.decode(f.read(), type=_Metadata)
    except (FileNotFoundError, msgspec.DecodeError):
        return _Metadata(Name=name)
    meta.Name = name
    return meta


def _scoped_path(root: str, real: str) -> bool:
    """Root.scopedPath: is `real` strictly inside the root?"""
    root = root.rstrip("/") + "/"
    return real.startswith(root) and real != root


def _remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _go_path_error(op: str, e: OSError) -> str:
    """An *os.PathError's text: `<op> <path>: <errno text>`."""
    return f"{op} {e.filename}: {go_errno_text(e)}" if e.filename else go_errno_text(e)


# --- mount(2) (moby/sys/mount: parseOptions, Mount, Unmount, mountError) -----------

_MS = {
    "RDONLY": 0x1, "NOSUID": 0x2, "NODEV": 0x4, "NOEXEC": 0x8, "SYNCHRONOUS": 0x10,
    "REMOUNT": 0x20, "MANDLOCK": 0x40, "DIRSYNC": 0x80, "NOATIME": 0x400,
    "NODIRATIME": 0x800, "BIND": 0x1000, "REC": 0x4000, "RELATIME": 0x200000,
    "STRICTATIME": 0x1000000,
}  # fmt: skip
# option → (clear?, flag), as moby/sys/mount/flags.go.
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, _MS["RDONLY"]), "rw": (True, _MS["RDONLY"]),
    "suid": (True, _MS["NOSUID"]), "nosuid": (False, _MS["NOSUID"]),
    "dev": (True, _MS["NODEV"]), "nodev": (False, _MS["NODEV"]),
    "exec": (True, _MS["NOEXEC"]), "noexec": (False, _MS["NOEXEC"]),
    "sync": (False, _MS["SYNCHRONOUS"]), "async": (True, _MS["SYNCHRONOUS"]),
    "dirsync": (False, _MS["DIRSYNC"]), "remount": (False, _MS["REMOUNT"]),
    "mand": (False, _MS["MANDLOCK"]), "nomand": (True, _MS["MANDLOCK"]),
    "atime": (True, _MS["NOATIME"]), "noatime": (False, _MS["NOATIME"]),
    "diratime": (True, _MS["NODIRATIME"]), "nodiratime": (False, _MS["NODIRATIME"]),
    "bind": (False, _MS["BIND"]), "rbind": (False, _MS["BIND"] | _MS["REC"]),
    "relatime": (False, _MS["RELATIME"]), "norelatime": (True, _MS["RELATIME"]),
    "strictatime": (False, _MS["STRICTATIME"]), "nostrictatime": (True, _MS["STRICTATIME"]),
}  # fmt: skip

_libc: ctypes.CDLL | None = None


def _get_libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return _libc


def parse_mount_options(options: str) -> tuple[int, str]:
    """parseOptions: known options become flags, the rest is the data string."""
    flags, data = 0, []
    for o in options.split(","):
        if o in _FLAGS:
            clear, f = _FLAGS[o]
            flags = flags & ~f if clear else flags | f
        elif o:
            data.append(o)
    return flags, ",".join(data)


def _mount(device: str, target: str, fstype: str, options: str) -> None:
    flags, data = parse_mount_options(options)
    rc = _get_libc().mount(device.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags), data.encode())
    if rc != 0:
        err = ctypes.get_errno()
        text = f"mount {device}:{target}"
        if flags:
            text += f", flags: 0x{flags:x}"
        if data:
            text += f", data: {data}"
        raise OSError(err, f"{text}: {go_errno_text(OSError(err, ''))}")


def _umount(target: str) -> None:
    rc = _get_libc().umount2(target.encode(), 0)
    if rc != 0:
        err = ctypes.get_errno()
        if err == 22:  # EINVAL: not a mount point, which moby's Unmount ignores
            return
        raise OSError(err, f"unmount {target}: {go_errno_text(OSError(err, ''))}")


def _is_mounted(path: str) -> bool:
    """mountinfo.Mounted, from /proc/self/mountinfo."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split(" ")
                if len(fields) > 4 and fields[4].replace("\\040", " ") == path:
                    return True
    except OSError:
        return False
    return False
