"""Tests for berth.types.gojson: Go encoding/json decoding, encoding and times.

The expected error strings were recorded from the reference dockerd 20.10.24 (Go 1.19.7)
with `curl -X POST --data-binary BODY .../v1.41/containers/create`; every one came back as
a 500 with that message.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, ClassVar

import msgspec
import pytest

from berth.types.gojson import (
    EMBEDDED,
    GO_ZERO_TIME,
    GO_ZERO_TIME_NS,
    GoJSONError,
    GoType,
    StrSlice,
    decode,
    encode_response,
    encode_stream,
    format_go_time,
    go_name,
    parse_go_time,
)
from berth.types.gojson_scanner import quote_char, read_value

# --- a cut-down copy of the create body's Go types ------------------------------------------

I64 = Annotated[int, GoType("int64")]


class PortBinding(msgspec.Struct):
    __go_name__: ClassVar[str] = "nat.PortBinding"
    HostIp: str = ""
    HostPort: str = ""


class Empty(msgspec.Struct):
    __go_name__: ClassVar[str] = "struct {}"


class HealthConfig(msgspec.Struct):
    __go_name__: ClassVar[str] = "container.HealthConfig"
    Test: list[str] | None = None
    Interval: Annotated[int, GoType("time.Duration", "int64")] = 0


class Config(msgspec.Struct):
    __go_name__: ClassVar[str] = "container.Config"
    Hostname: str = ""
    ExposedPorts: Annotated[dict[str, Empty] | None, GoType("nat.PortSet")] = None
    Env: list[str] | None = None
    Cmd: StrSlice = None
    Healthcheck: HealthConfig | None = None
    Image: str = ""
    Volumes: dict[str, Empty] | None = None
    Entrypoint: StrSlice = None
    Labels: dict[str, str] | None = None
    StopTimeout: int | None = None


class Ulimit(msgspec.Struct):
    __go_name__: ClassVar[str] = "units.Ulimit"
    Name: str = ""
    Hard: I64 = 0
    Soft: I64 = 0


class TmpfsOptions(msgspec.Struct):
    __go_name__: ClassVar[str] = "mount.TmpfsOptions"
    SizeBytes: I64 = 0
    Mode: Annotated[int, GoType("fs.FileMode", "uint32")] = 0


class Mount(msgspec.Struct):
    __go_name__: ClassVar[str] = "mount.Mount"
    Type: Annotated[str, GoType("mount.Type")] = ""
    Source: str = ""
    Target: str = ""
    TmpfsOptions: TmpfsOptions | None = None


class LogConfig(msgspec.Struct):
    __go_name__: ClassVar[str] = "container.LogConfig"
    Type: str = ""
    Config: dict[str, str] | None = None


class RestartPolicy(msgspec.Struct):
    __go_name__: ClassVar[str] = "container.RestartPolicy"
    Name: str = ""
    MaximumRetryCount: int = 0


PortMap = Annotated[
    dict[str, Annotated[list[PortBinding] | None, GoType("[]nat.PortBinding")]] | None,
    GoType("nat.PortMap"),
]


class HostConfig(msgspec.Struct):
    __go_name__: ClassVar[str] = "container.HostConfig"
    Binds: list[str] | None = None
    LogConfig: LogConfig = msgspec.field(default_factory=LogConfig)
    NetworkMode: Annotated[str, GoType("container.NetworkMode")] = ""
    PortBindings: PortMap = None
    RestartPolicy: RestartPolicy = msgspec.field(default_factory=RestartPolicy)
    CapAdd: StrSlice = None
    Links: list[str] | None = None
    ConsoleSize: Annotated[list[int], GoType("[2]uint")] = msgspec.field(default_factory=lambda: [0, 0])
    Privileged: bool = False
    CpuShares: I64 = 0
    Memory: I64 = 0
    BlkioWeight: Annotated[int, GoType("uint16")] = 0
    PidsLimit: Annotated[int | None, GoType("*int64")] = None
    Ulimits: list[Ulimit | None] | None = None
    Mounts: list[Mount] | None = None
    Init: bool | None = None


class EndpointIPAMConfig(msgspec.Struct):
    __go_name__: ClassVar[str] = "network.EndpointIPAMConfig"
    IPv4Address: str = ""


class EndpointSettings(msgspec.Struct):
    __go_name__: ClassVar[str] = "network.EndpointSettings"
    IPAMConfig: EndpointIPAMConfig | None = None
    Aliases: list[str] | None = None


class NetworkingConfig(msgspec.Struct):
    __go_name__: ClassVar[str] = "network.NetworkingConfig"
    EndpointsConfig: dict[str, EndpointSettings | None] | None = None


class Wrapper(msgspec.Struct):
    """runconfig.ContainerConfigWrapper: Config and HostConfig embedded, plus HostConfig."""

    __go_name__: ClassVar[str] = "runconfig.ContainerConfigWrapper"
    Config: Annotated[Config | None, EMBEDDED] = None
    InnerHostConfig: HostConfig | None = msgspec.field(default=None, name="HostConfig")
    NetworkingConfig: NetworkingConfig | None = None
    Cpuset: str = ""
    TopHostConfig: Annotated[HostConfig | None, EMBEDDED] = msgspec.field(default=None, name="-HostConfig")


def dec(body: bytes | str) -> Wrapper:
    if isinstance(body, str):
        body = body.encode()
    return decode(body, Wrapper, go_type_name="runconfig.ContainerConfigWrapper")


def err(body: bytes | str) -> str:
    with pytest.raises(GoJSONError) as info:
        dec(body)
    return str(info.value)


# --- errors, as recorded from the reference dockerd ----------------------------------------

REFERENCE = [
    (b"", "EOF"),
    (b"  ", "EOF"),
    (b'{"Image":"busybox"', "unexpected EOF"),
    (b"nul", "unexpected EOF"),
    (b"{x", "invalid character 'x' looking for beginning of object key string"),
    (b'{"Image" 1}', "invalid character '1' after object key"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b'{"Image":"\\u12"}', "invalid character '\"' in \\u hexadecimal character escape"),
    (b'{"Image":"a\\x01"}', "invalid character 'x' in string escape code"),
    (b'{"Image":"a\x01"}', "invalid character '\\x01' in string literal"),
    (b'{"Image":"a\tb"}', "invalid character '\\t' in string literal"),
    (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
    (b"tx", "invalid character 'x' in literal true (expecting 'r')"),
    (b'{"Image":tru}', "invalid character '}' in literal true (expecting 'e')"),
    (b'{"Image":nulx}', "invalid character 'x' in literal null (expecting 'l')"),
    (b'{"Image":fals}', "invalid character '}' in literal false (expecting 'e')"),
    (b"\xef\xbb\xbf{}", "invalid character '\u00ef' looking for beginning of value"),
    (b"\x80", "invalid character '\\u0080' looking for beginning of value"),
    (b"\x7f", "invalid character '\\x7f' looking for beginning of value"),
    (b"\xa0", "invalid character '\\u00a0' looking for beginning of value"),
    (b"\x00", "invalid character '\\x00' looking for beginning of value"),
    (b"]", "invalid character ']' looking for beginning of value"),
    (b'{"Image":"\\q"}', "invalid character 'q' in string escape code"),
    (b'{"Image":1.}', "invalid character '}' after decimal point in numeric literal"),
    (b'{"Image":1e}', "invalid character '}' in exponent of numeric literal"),
    (b'{"Image":-}', "invalid character '}' in numeric literal"),
    (b'{"Image":01}', "invalid character '1' after object key:value pair"),
    (b'{"Image":[1,]}', "invalid character ']' looking for beginning of value"),
    (b'{"Image":[1 2]}', "invalid character '2' after array element"),
    (b'{"Image":{"a":1 "b"}}', "invalid character '\"' after object key:value pair"),
    (b'{"Image":NaN}', "invalid character 'N' looking for beginning of value"),
    (b'{"Image":-Infinity}', "invalid character 'I' in numeric literal"),
    (b'{"Image":1, x}', "invalid character 'x' looking for beginning of object key string"),
    (b"[" * 10001, "invalid character '[' exceeded max depth"),
    (b"[]", "json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper"),
    (b'"x"', "json: cannot unmarshal string into Go value of type runconfig.ContainerConfigWrapper"),
    (b"1 2", "json: cannot unmarshal number into Go value of type runconfig.ContainerConfigWrapper"),
    (b'{"Image":1}', "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string"),
    (b'{"image":1}', "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string"),
    (b'{"IMAGE":1}', "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string"),
    (
        b'{"HostConfig":{"Memory":"x"}}',
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64",
    ),
    (
        b'{"HostConfig":{"PortBindings":{"80/tcp":"x"}}}',
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.PortBindings"
        " of type []nat.PortBinding",
    ),
    (
        b'{"HostConfig":{"PortBindings":[]}}',
        "json: cannot unmarshal array into Go struct field HostConfig.HostConfig.PortBindings of type nat.PortMap",
    ),
    (
        b'{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":8080}]}}}',
        "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort"
        " of type string",
    ),
    (b'{"Cmd":1}', "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string"),
    (b'{"Cmd":[1]}', "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Cmd of type string"),
    (b'{"Cmd":true}', "json: cannot unmarshal bool into Go struct field ContainerConfigWrapper.Cmd of type string"),
    (
        b'{"Cmd":{"a":1}}',
        "json: cannot unmarshal object into Go struct field ContainerConfigWrapper.Cmd of type string",
    ),
    (
        b'{"Memory":1.5}',
        "json: cannot unmarshal number 1.5 into Go struct field ContainerConfigWrapper.Memory of type int64",
    ),
    (
        b'{"HostConfig":{"Memory":1e3}}',
        "json: cannot unmarshal number 1e3 into Go struct field HostConfig.HostConfig.Memory of type int64",
    ),
    (
        b'{"HostConfig":{"Memory":99999999999999999999}}',
        "json: cannot unmarshal number 99999999999999999999 into Go struct field HostConfig.HostConfig.Memory"
        " of type int64",
    ),
    (
        b'{"HostConfig":{"Memory":-9223372036854775809}}',
        "json: cannot unmarshal number -9223372036854775809 into Go struct field HostConfig.HostConfig.Memory"
        " of type int64",
    ),
    (
        b'{"HostConfig":{"BlkioWeight":-1}}',
        "json: cannot unmarshal number -1 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16",
    ),
    (
        b'{"HostConfig":{"BlkioWeight":-0}}',
        "json: cannot unmarshal number -0 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16",
    ),
    (
        b'{"HostConfig":{"Mounts":[{"Type":1}]}}',
        "json: cannot unmarshal number into Go struct field Mount.HostConfig.Mounts.Type of type mount.Type",
    ),
    (
        b'{"HostConfig":{"Mounts":[{"TmpfsOptions":{"Mode":"x"}}]}}',
        "json: cannot unmarshal string into Go struct field TmpfsOptions.HostConfig.Mounts.TmpfsOptions.Mode"
        " of type fs.FileMode",
    ),
    (b'{"Image":1,"Cmd":1}', "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string"),
    (
        b'{"Image":1,"Memory":"x"}',
        "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string",
    ),
    (
        b'{"HostConfig":{"Memory":"x","CpuShares":"y"}}',
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64",
    ),
    (
        b'{"HostConfig":{"Memory":"x"},"Cmd":{}}',
        "json: cannot unmarshal object into Go struct field ContainerConfigWrapper.Cmd of type string",
    ),
    (
        b'{"HostConfig":[]}',
        "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig",
    ),
    (
        b'{"Healthcheck":[]}',
        "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Healthcheck"
        " of type container.HealthConfig",
    ),
    (
        b'{"Healthcheck":{"Interval":"1s"}}',
        "json: cannot unmarshal string into Go struct field HealthConfig.Healthcheck.Interval of type time.Duration",
    ),
    (b'{"Labels":{"a":1}}', "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Labels of type string"),
    (
        "{\"Label\u017f\":1}",  # U+017F folds to 's'
        "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Labels of type map[string]string",
    ),
    (
        "{\"HostConfig\":{\"Lin\u212as\":1}}",  # the Kelvin sign folds to 'k'
        "json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Links of type []string",
    ),
    (
        b'{"ExposedPorts":{"80/tcp":1}}',
        "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.ExposedPorts of type struct {}",
    ),
    (
        b'{"Volumes":{"/x":[]}}',
        "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Volumes of type struct {}",
    ),
    (
        b'{"HostConfig":{"ConsoleSize":"x"}}',
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.ConsoleSize of type [2]uint",
    ),
    (
        b'{"HostConfig":{"ConsoleSize":[1,"x"]}}',
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.ConsoleSize of type uint",
    ),
    (
        b'{"HostConfig":{"ConsoleSize":[1,2,"x"]},"Image":3}',
        "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string",
    ),
    (
        b'{"HostConfig":{"Ulimits":[{"Hard":"x"}]}}',
        "json: cannot unmarshal string into Go struct field Ulimit.HostConfig.Ulimits.Hard of type int64",
    ),
    (
        b'{"HostConfig":{"Ulimits":[null,{"Hard":1.0}]}}',
        "json: cannot unmarshal number 1.0 into Go struct field Ulimit.HostConfig.Ulimits.Hard of type int64",
    ),
    (
        b'{"NetworkingConfig":{"EndpointsConfig":{"n":{"IPAMConfig":{"IPv4Address":1}}}}}',
        "json: cannot unmarshal number into Go struct field"
        " EndpointIPAMConfig.NetworkingConfig.EndpointsConfig.IPAMConfig.IPv4Address of type string",
    ),
    (
        b'{"HostConfig":{"PidsLimit":"x"}}',
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.PidsLimit of type int64",
    ),
    (b'{"StopTimeout":"x"}', "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.StopTimeout of type int"),
    (b'{"Env":"x"}', "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Env of type []string"),
    (b'{"Env":[1,2]}', "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Env of type string"),
    (
        b'{"HostConfig":{"Binds":{}}}',
        "json: cannot unmarshal object into Go struct field HostConfig.HostConfig.Binds of type []string",
    ),
    (
        b'{"HostConfig":{"Init":"yes"}}',
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Init of type bool",
    ),
    (
        b'{"HostConfig":{"Privileged":1}}',
        "json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Privileged of type bool",
    ),
    (
        b'{"HostConfig":{"LogConfig":{"Config":[]}}}',
        "json: cannot unmarshal array into Go struct field LogConfig.HostConfig.LogConfig.Config"
        " of type map[string]string",
    ),
    (
        b'{"HostConfig":{"RestartPolicy":{"MaximumRetryCount":true}}}',
        "json: cannot unmarshal bool into Go struct field RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount"
        " of type int",
    ),
    (
        b'{"Labels":' + b"[" * 5000 + b"]" * 5000 + b"}",
        "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Labels of type map[string]string",
    ),
]


@pytest.mark.parametrize(("body", "message"), REFERENCE)
def test_error_messages_match_reference_dockerd(body: bytes | str, message: str) -> None:
    assert err(body) == message


def test_quote_char_matches_go() -> None:
    assert quote_char(ord("'")) == "'\\''"
    assert quote_char(ord('"')) == "'\"'"
    assert quote_char(ord("\\")) == "'\\\\'"
    assert quote_char(ord("\n")) == "'\\n'"
    assert quote_char(0x0B) == "'\\v'"
    assert quote_char(0x1F) == "'\\x1f'"
    assert quote_char(0xAD) == "'\\u00ad'"
    assert quote_char(0xE9) == "'\u00e9'"


def test_read_value_finds_end_of_first_value() -> None:
    assert read_value(b"{} garbage") == (2, None)
    assert read_value(b"123") == (3, None)
    assert read_value(b'  {"a":[1,2]}{"b":1}') == (13, None)
    assert read_value(b"1.5.3")[1] is None


# --- successful decoding --------------------------------------------------------------------


def test_trailing_data_after_first_value_is_ignored() -> None:
    w = dec(b'{"Image":"busybox"} garbage {')
    assert w.Config is not None and w.Config.Image == "busybox"
    assert dec(b'{"Image":"a"}{"Image":"b"}').Config.Image == "a"  # type: ignore[union-attr]


def test_empty_object_and_null_leave_everything_unset() -> None:
    for body in (b"{}", b"null", b' {"Unknown":{"deep":[1,2,{"x":null}]}} '):
        w = dec(body)
        assert w.Config is None and w.InnerHostConfig is None and w.TopHostConfig is None
        assert w.Cpuset == ""


def test_keys_match_case_insensitively_exact_match_first() -> None:
    w = dec(b'{"image":"a","CMD":"ls","hostconfig":{"memory":5,"MEMORY":6}}')
    assert w.Config is not None and w.Config.Image == "a" and w.Config.Cmd == ["ls"]
    assert w.InnerHostConfig is not None and w.InnerHostConfig.Memory == 6
    # "\u0131mage" (dotless i) is not an ASCII fold of "Image": ignored, as by Go.
    assert dec('{"\u0131mage":"x"}'.encode()).Config is None


def test_duplicate_keys_last_wins_and_objects_merge() -> None:
    w = dec(b'{"Image":"a","image":"b","IMAGE":"c","Image":"d","image":"e"}')
    assert w.Config is not None and w.Config.Image == "e"
    w = dec(b'{"HostConfig":{"Memory":1},"hostconfig":{"CpuShares":2},"Labels":{"a":"1"},"Labels":{"b":"2"}}')
    assert w.InnerHostConfig is not None
    assert (w.InnerHostConfig.Memory, w.InnerHostConfig.CpuShares) == (1, 2)
    assert w.Config is not None and w.Config.Labels == {"a": "1", "b": "2"}
    # A slice of structs is decoded into element by element.
    w = dec(b'{"HostConfig":{"Mounts":[{"Type":"bind"}],"Mounts":[{"Source":"/x"}]}}')
    assert w.InnerHostConfig is not None
    assert w.InnerHostConfig.Mounts == [Mount(Type="bind", Source="/x")]
    # A map value is decoded into a fresh value, not merged.
    w = dec(b'{"NetworkingConfig":{"EndpointsConfig":{"n":{"Aliases":["a"]}},'
            b'"EndpointsConfig":{"n":{"IPAMConfig":{"IPv4Address":"1.2.3.4"}}}}}')
    assert w.NetworkingConfig is not None and w.NetworkingConfig.EndpointsConfig is not None
    assert w.NetworkingConfig.EndpointsConfig["n"] == EndpointSettings(IPAMConfig=EndpointIPAMConfig("1.2.3.4"))


def test_null_semantics() -> None:
    w = dec(b'{"Image":"x","Image":null,"Env":["a"],"Env":null,"HostConfig":{"RestartPolicy":null,'
            b'"PidsLimit":5,"PidsLimit":null,"ConsoleSize":null,"Init":true,"Init":null}}')
    assert w.Config is not None
    assert w.Config.Image == "x"  # null leaves a string alone
    assert w.Config.Env is None  # and sets a slice to nil
    h = w.InnerHostConfig
    assert h is not None
    assert h.RestartPolicy == RestartPolicy() and h.PidsLimit is None and h.Init is None
    assert h.ConsoleSize == [0, 0]
    w = dec(b'{"Labels":{"a":null},"HostConfig":{"Ulimits":[null,{"Name":"n"}]}}')
    assert w.Config is not None and w.Config.Labels == {"a": ""}
    assert w.InnerHostConfig is not None and w.InnerHostConfig.Ulimits == [None, Ulimit(Name="n")]


def test_embedded_pointer_allocated_by_any_of_its_keys() -> None:
    w = dec(b'{"Memory":null}')
    assert w.Config is None and w.TopHostConfig == HostConfig()
    w = dec(b'{"Hostname":null,"HostConfig":{}}')
    assert w.Config == Config() and w.InnerHostConfig == HostConfig() and w.TopHostConfig is None


def test_strslice() -> None:
    w = dec(b'{"Cmd":"ls -l","Entrypoint":["a",null,"b"],"HostConfig":{"CapAdd":"NET_ADMIN"}}')
    assert w.Config is not None
    assert w.Config.Cmd == ["ls -l"] and w.Config.Entrypoint == ["a", "", "b"]
    assert w.InnerHostConfig is not None and w.InnerHostConfig.CapAdd == ["NET_ADMIN"]
    assert dec(b'{"Cmd":"x","Cmd":null}').Config == Config()
    assert dec(b'{"Cmd":[]}').Config == Config(Cmd=[])


def test_numbers() -> None:
    w = dec(b'{"HostConfig":{"Memory":-0,"CpuShares":9223372036854775807,"BlkioWeight":65535,'
            b'"ConsoleSize":[1],"PidsLimit":-9223372036854775808}}')
    h = w.InnerHostConfig
    assert h is not None
    assert (h.Memory, h.CpuShares, h.BlkioWeight, h.PidsLimit) == (0, 2**63 - 1, 65535, -(2**63))
    assert h.ConsoleSize == [1, 0]
    assert "number 65536" in err(b'{"HostConfig":{"BlkioWeight":65536}}')
    assert "number 18446744073709551616" in err(b'{"HostConfig":{"Mounts":[{"TmpfsOptions":{"Mode":18446744073709551616}}]}}')


class Floats(msgspec.Struct):
    F64: float = 0.0
    F32: Annotated[float, GoType("float32")] = 0.0
    Any_: Any = msgspec.field(default=None, name="Any")


def test_floats_and_interface_values() -> None:
    f = decode(b'{"F64":1,"F32":2.5,"Any":{"a":[1,2.5,"x",null,true],"a":{"b":1}}}', Floats, go_type_name="x.Floats")
    assert f == Floats(1.0, 2.5, {"a": {"b": 1}})
    with pytest.raises(GoJSONError, match="^json: cannot unmarshal number 1e400 into Go struct field Floats.F64 of type float64$"):
        decode(b'{"F64":1e400}', Floats, go_type_name="x.Floats")
    with pytest.raises(GoJSONError, match="number 1e39 into Go struct field Floats.F32 of type float32$"):
        decode(b'{"F32":1e39}', Floats, go_type_name="x.Floats")


def test_invalid_utf8_and_lone_surrogates_become_replacement_characters() -> None:
    w = dec(b'{"Image":"a\xffb\xe2\x82c","Labels":{"k\\ud800":"\\udc00\\ud83d\\ude00"}}')
    assert w.Config is not None
    assert w.Config.Image == "a\ufffdb\ufffd\ufffdc"
    assert w.Config.Labels == {"k\ufffd": "\ufffd\U0001f600"}


class Required(msgspec.Struct):
    A: str
    B: list[str]
    C: HealthConfig
    D: int | None


def test_fields_without_default_get_go_zero_values() -> None:
    assert decode(b'{"a":"x"}', Required, go_type_name="x.Required") == Required("x", [], HealthConfig(), None)
    assert go_name(Required) == "Required" and go_name(HostConfig) == "container.HostConfig"


def test_typical_cli_body_decodes_fast() -> None:
    body = (
        b'{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,'
        b'"AttachStderr":true,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,'
        b'"StdinOnce":false,"Env":["A=b"],"Cmd":["sh","-c","echo hi"],"Image":"busybox",'
        b'"Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"a":"b"},'
        b'"HostConfig":{"Binds":["/tmp:/x"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},'
        b'"NetworkMode":"default","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},'
        b'"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"",'
        b'"VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"",'
        b'"Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"",'
        b'"Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,'
        b'"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"",'
        b'"UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,'
        b'"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],'
        b'"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,'
        b'"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"",'
        b'"Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"KernelMemory":0,'
        b'"KernelMemoryTCP":0,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,'
        b'"OomKillDisable":false,"PidsLimit":0,"Ulimits":null,"CpuCount":0,"CpuPercent":0,'
        b'"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},'
        b'"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,'
        b'"Aliases":null,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,'
        b'"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"",'
        b'"DriverOpts":null}}}}'
    )
    w = dec(body)
    assert w.Config is not None and w.Config.Cmd == ["sh", "-c", "echo hi"]
    assert w.InnerHostConfig is not None
    assert w.InnerHostConfig.PortBindings == {"80/tcp": [PortBinding("", "8080")]}
    assert w.InnerHostConfig.PidsLimit == 0
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        dec(body)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 0.001, per_call  # about 0.1 ms on the development machine


def test_unsupported_types_are_refused_when_compiled() -> None:
    class Bad(msgspec.Struct):
        X: int | str = 0

    with pytest.raises(TypeError):
        decode(b'{"X":1}', Bad, go_type_name="x.Bad")


# --- encoding ---------------------------------------------------------------------------------


class Out(msgspec.Struct):
    Zeta: str
    Alpha: dict[str, Any]
    Name: str = ""


def test_encode_response_and_stream() -> None:
    obj = Out("<a&b>", {"z": 1, "B": {"y": 2, "x": 3}, "a": [1, "\u00e9"]}, "x")
    assert encode_response(obj) == (
        b'{"Zeta":"<a&b>","Alpha":{"B":{"x":3,"y":2},"a":[1,"\xc3\xa9"],"z":1},"Name":"x"}\n'
    )
    assert encode_stream(obj) == (
        b'{"Zeta":"\\u003ca\\u0026b\\u003e","Alpha":{"B":{"x":3,"y":2},"a":[1,"\xc3\xa9"],"z":1},"Name":"x"}\n'
    )


def test_encode_escapes_like_go_1_19() -> None:
    s = "\b\f\n\r\t\x01\x1f\x7f\\b\\f\u2028\u2029\"\\"
    want = b'"\\u0008\\u000c\\n\\r\\t\\u0001\\u001f\x7f\\\\b\\\\f\\u2028\\u2029\\"\\\\"\n'
    assert encode_response(s) == want
    assert encode_stream(s) == want
    assert encode_response({"k\udcff": "a\udc80b"}) == b'{"k\xef\xbf\xbd":"a\xef\xbf\xbdb"}\n'
    assert encode_response(Out("\ud800", {})) == b'{"Zeta":"\xef\xbf\xbd","Alpha":{},"Name":""}\n'
    assert encode_response(None) == b"null\n"


# --- time.Time --------------------------------------------------------------------------------


def test_format_go_time() -> None:
    assert format_go_time(None) == GO_ZERO_TIME == "0001-01-01T00:00:00Z"
    assert format_go_time(dt.datetime(1, 1, 1)) == GO_ZERO_TIME
    assert format_go_time(0) == "1970-01-01T00:00:00Z"
    assert format_go_time(1714557600_123456700) == "2024-05-01T10:00:00.1234567Z"
    assert format_go_time(1714557600_000000001) == "2024-05-01T10:00:00.000000001Z"
    assert format_go_time(-1) == "1969-12-31T23:59:59.999999999Z"
    tz = dt.timezone(dt.timedelta(hours=-5, minutes=-30))
    assert format_go_time(dt.datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=tz)) == "2024-05-01T10:00:00.5-05:30"
    assert format_go_time(dt.datetime(2024, 5, 1, tzinfo=dt.UTC)) == "2024-05-01T00:00:00Z"


def test_parse_go_time() -> None:
    assert parse_go_time(GO_ZERO_TIME) == GO_ZERO_TIME_NS
    assert format_go_time(GO_ZERO_TIME_NS) == GO_ZERO_TIME
    for ns in (0, 1714557600_123456700, 1714557600_000000001, -1):
        assert parse_go_time(format_go_time(ns)) == ns
    assert parse_go_time("2024-05-01T10:00:00.5-05:30") == parse_go_time("2024-05-01T15:30:00.5Z")
    assert parse_go_time("2024-05-01T10:00:00.1234567891Z") == 1714557600_123456789
    for bad in ("", "2024-05-01", "2024-05-01T10:00:00", "2024-13-01T00:00:00Z", "2024-05-01T10:00:00+25:00"):
        with pytest.raises(ValueError):
            parse_go_time(bad)


class WithUnset(msgspec.Struct):
    _go_name: ClassVar[str] = "pkg.WithUnset"
    A: str | msgspec.UnsetType = msgspec.UNSET
    B: list[str] | None | msgspec.UnsetType = msgspec.UNSET
    C: Annotated[int, GoType("int64")] | msgspec.UnsetType = msgspec.UNSET


def test_unset_type_in_unions_and_go_name_classvar() -> None:
    assert decode(b'{"a":"x","b":null}', WithUnset, go_type_name="pkg.WithUnset") == WithUnset("x", None)
    assert decode(b"{}", WithUnset, go_type_name="pkg.WithUnset") == WithUnset()
    assert go_name(WithUnset) == "pkg.WithUnset"
    with pytest.raises(GoJSONError, match="Go struct field WithUnset.C of type int64$"):
        decode(b'{"C":"x"}', WithUnset, go_type_name="pkg.WithUnset")
