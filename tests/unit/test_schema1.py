"""Schema1 → image config as dockerd 20.10.24 makes it (image/v1 MakeConfigFromV1Config,
HistoryFromConfig; distribution/pull_v2.go fixManifestLayers, verifySchema1Manifest;
libtrust's payload). The golden configs are the bytes the reference dockerd stored (read
back with `docker save`) after pulling these manifests from docker-registry 2.8."""
from __future__ import annotations

import hashlib
import json

import pytest
import schema1_cases as sc
from registry_helpers import sign_schema1
from schema1_cases import OLD_DIGEST, OLD_ID, RICH_DIGEST, RICH_ID

from berth.distribution import manifest as mf
from berth.distribution import schema1
from berth.image import reference as refmod
from berth.image import v1

DIFF_BASE = "sha256:9398d97621d6f1c440ed722c81675ed74aca3a719f11db737890c932518df7e7"
DIFF_APP = "sha256:bf5b3f79572f5a070de5ba98cd2af763b5af2990e71c254b3bec45a2acc3e271"
DIFF_EMPTY = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

# reference dockerd: 127.0.0.1:<port>/h18-s1/cases:rich, :old
RICH_CONFIG = (
    b'{"architecture":"amd64","author":"Me \\u003cme@example.com\\u003e","comment":"a \\u0026 b","config":{"Cmd":["s'
    b'h"],"Env":["PATH=/bin"],"Labels":{"l":"\\u003cv\\u003e"},"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT"},'
    b'"container":"f00d","container_config":{"Cmd":["/bin/sh","-c","#(nop) ","CMD [\\"sh\\"]"]},"created":"2025-03-0'
    b'4T05:06:07.123456780+02:00","custom":{"n":[1,2.50,1e3,-0],"s":"caf\\u00e9 caf\xc3\xa9 \\/ \\u2028 \\u003cx\\u0'
    b'03e"},"docker_version":"18.09.7","history":[{"created":"2025-03-04T05:06:04Z","created_by":"/bin/sh -c #(nop) '
    b'ADD file:base in /","comment":"base"},{"created":"2025-03-04T05:06:05Z","author":"lower","created_by":"/bin/sh'
    b' -c echo lower"},{"created":"2025-03-04T05:06:06Z","created_by":"/bin/sh -c #(nop)  ENV A=1","empty_layer":tru'
    b'e},{"created":"2025-03-04T05:06:07.12345678+02:00","author":"Me \\u003cme@example.com\\u003e","created_by":"/b'
    b'in/sh -c #(nop)  CMD [\\"sh\\"]","comment":"a \\u0026 b"}],"os":"linux","rootfs":{"type":"layers","diff_ids":['
    b'"sha256:9398d97621d6f1c440ed722c81675ed74aca3a719f11db737890c932518df7e7","sha256:bf5b3f79572f5a070de5ba98cd2a'
    b'f763b5af2990e71c254b3bec45a2acc3e271","sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef'
    b'"]}}'
)
OLD_CONFIG = (
    b'{"architecture":"amd64","author":"A \\u003ca@b\\u003e","config":{"Hostname":"h","Domainname":"","User":"","Att'
    b'achStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env'
    b'":null,"Cmd":["sh -c date"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"Image":"","Volumes":n'
    b'ull,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"a":"b"}},"container_config":{"Hostname":"","Do'
    b'mainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":true,"OpenStdin":fa'
    b'lse,"StdinOnce":false,"Env":null,"Cmd":["/bin/sh","-c","echo old"],"Image":"","Volumes":null,"WorkingDir":"","'
    b'Entrypoint":null,"OnBuild":null,"Labels":null},"created":"2015-01-02T03:04:05.000000001-07:00","docker_version'
    b'":"1.6.2","history":[{"created":"2015-01-02T03:04:04Z","created_by":"/bin/sh -c #(nop) ADD base"},{"created":"'
    b'2015-01-02T03:04:05.000000001-07:00","author":"A \\u003ca@b\\u003e","created_by":"/bin/sh -c echo old"}],"os":'
    b'"linux","rootfs":{"type":"layers","diff_ids":["sha256:9398d97621d6f1c440ed722c81675ed74aca3a719f11db737890c932'
    b'518df7e7","sha256:bf5b3f79572f5a070de5ba98cd2af763b5af2990e71c254b3bec45a2acc3e271"]}}'
)

# What docker-registry 2.8 made of a schema2 image (no docker_version: the V1Image path),
# and the config the reference dockerd stored for it.
CONV_HISTORY = [
    '{"architecture":"amd64","config":{"Cmd":["sh","-c","echo hi"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:'
    '/usr/sbin:/usr/bin:/sbin:/bin"],"Labels":{"k":"v"}},"created":"2026-01-01T00:00:00Z","id":"68b5c2249acf3731'
    '644775f04054df16b5f985aa3972c8dd1221c5615ed92dd1","os":"linux","parent":"f27f5bc512d686d892c98190d5942121247b'
    '6f5e3a22a5afbb28429978ee7d5b"}',
    '{"id":"f27f5bc512d686d892c98190d5942121247b6f5e3a22a5afbb28429978ee7d5b","created":"2026-01-01T00:00:00Z",'
    '"container_config":{"Cmd":["layer 0"]}}',
]
CONV_DIFFS = ["sha256:ea0629d5183e84e1eff235ad82fd00545f42e0d6406429c8ae5850b37556ecb4",
              "sha256:0de7b8301fafb6ba75bbf1f9db872b0050f15db2b9238acf8709153a5b2987e0"]
CONV_CONFIG = (
    b'{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":f'
    b'alse,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/lo'
    b'cal/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh","-c","echo hi"],"Image":"","Volumes":null,"WorkingDir":"",'
    b'"Entrypoint":null,"OnBuild":null,"Labels":{"k":"v"}},"container_config":{"Hostname":"","Domainname":"","User":'
    b'"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":fal'
    b'se,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":n'
    b'ull},"created":"2026-01-01T00:00:00Z","history":[{"created":"2026-01-01T00:00:00Z","created_by":"layer 0"},{"c'
    b'reated":"2026-01-01T00:00:00Z"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:ea0629d5183e84e1ef'
    b'f235ad82fd00545f42e0d6406429c8ae5850b37556ecb4","sha256:0de7b8301fafb6ba75bbf1f9db872b0050f15db2b9238acf870915'
    b'3a5b2987e0"]}}'
)
CONV_ID = "sha256:79ec5a2233a03f59c25f4c7b9515a2d8a3b42b7be4aa59c212663f430660148c"


def convert(history: list[str], fslayers: list[str], diff_ids: list[str]) -> tuple[bytes, list[str]]:
    """pullSchema1 without the downloads: (config, the blobSums it would pull, bottom first)."""
    m = schema1.Schema1(b"", 1, "n", "t", "amd64", list(fslayers), list(history))
    schema1.fix_layers(m)
    hist, pulled = [], []
    for i in range(len(m.history) - 1, -1, -1):
        entry = m.history[i].encode()
        throw = v1.throwaway(entry)
        hist.append(v1.history_from_config(entry, throw))
        if not throw:
            pulled.append(m.fs_layers[i])
    return v1.make_config_from_v1_config(m.history[0].encode(), diff_ids, hist), pulled


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_rich_entry_kept_byte_for_byte() -> None:
    sums = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    config, pulled = convert(sc.rich_history(), sc.rich_fslayers(sums), [DIFF_BASE, DIFF_APP, DIFF_EMPTY])
    assert config == RICH_CONFIG
    assert sha(config) == RICH_ID
    # the repeated B counts once (its lower entry), the throwaway ENV pulls nothing
    assert pulled == [sums[0], sums[1], sc.EMPTY_LAYER_DIGEST]


def test_old_docker_version_goes_through_the_struct() -> None:
    sums = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    config, _ = convert(sc.old_history(), sc.old_fslayers(sums), [DIFF_BASE, DIFF_APP])
    assert config == OLD_CONFIG and sha(config) == OLD_ID


def test_registry_converted_manifest() -> None:
    config, _ = convert(CONV_HISTORY, ["sha256:" + "1" * 64, "sha256:" + "2" * 64], CONV_DIFFS)
    assert config == CONV_CONFIG and sha(config) == CONV_ID


def test_payload_is_the_manifest_without_signatures() -> None:
    doc = sc.manifest("h18-s1/cases", "rich", sc.rich_fslayers(["sha256:" + "1" * 64] * 2), sc.rich_history())
    signed, payload = sign_schema1(doc)
    assert b'"signatures"' in signed
    m = mf.parse("application/vnd.docker.distribution.manifest.v1+prettyjws", signed)
    assert m.signed is not None and m.signed.canonical == payload
    assert m.digest == sha(payload) and m.raw == signed
    # any type but the schema2/OCI ones is read as schema1 (dockerd's default unmarshaller)
    for ctype in ("", "application/json", "text/plain", "application/vnd.docker.distribution.manifest.v1+json"):
        assert mf.parse(ctype, signed).digest == m.digest
    # the same manifest with its canonical payload as the reference dockerd digested it
    sums = [sc.compressed_digests()[0], sc.compressed_digests()[1]]
    doc = sc.manifest("h18-s1/cases", "rich", sc.rich_fslayers(sums), sc.rich_history())
    assert sha(sign_schema1(doc)[1]) == RICH_DIGEST
    doc = sc.manifest("h18-s1/cases", "old", sc.old_fslayers(sums), sc.old_history())
    assert sha(sign_schema1(doc)[1]) == OLD_DIGEST


def test_unsigned_and_broken_signatures() -> None:
    doc = {"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": [], "history": []}
    with pytest.raises(mf.ManifestError, match="^missing signature key$"):
        mf.parse("application/vnd.docker.distribution.manifest.v1+json", json.dumps(doc).encode())
    with pytest.raises(mf.ManifestError, match="^unexpected end of JSON input$"):
        mf.parse("", json.dumps({**doc, "signatures": []}).encode())
    with pytest.raises(mf.ManifestError, match="^missing formatted length$"):
        mf.parse("", json.dumps({**doc, "signatures": [{"protected": "e30"}]}).encode())
    with pytest.raises(mf.ManifestError, match="^invalid format length$"):
        mf.parse("", json.dumps({**doc, "signatures": [{"protected": "eyJmb3JtYXRMZW5ndGgiOjEwMDAsImZvcm1hdFRhaWwiOiIifQ"}]}).encode())


def test_verify_and_fix_errors() -> None:
    ref = refmod.parse_normalized_named("127.0.0.1:5000/a/b:t")
    good = schema1.Schema1(b"", 1, "", "", "", ["x"], ["{}"])
    with pytest.raises(mf.ManifestError, match=r'^unsupported schema version 2 for "127.0.0.1:5000/a/b:t"$'):
        schema1.verify(schema1.Schema1(b"", 2, "", "", "", ["x"], ["{}"]), ref, "")
    with pytest.raises(mf.ManifestError, match="^length of history not equal to number of layers for"):
        schema1.verify(schema1.Schema1(b"", 1, "", "", "", ["x"], []), ref, "")
    with pytest.raises(mf.ManifestError, match="^no FSLayers in manifest for"):
        schema1.verify(schema1.Schema1(b"", 1, "", "", "", [], []), ref, "")
    schema1.verify(good, ref, "")
    by_digest = refmod.with_digest(refmod.trim_named(ref), "sha256:" + "0" * 64)
    with pytest.raises(mf.ManifestError, match="^image verification failed for digest sha256:0{64}$"):
        schema1.verify(good, by_digest, "sha256:" + "1" * 64)
    a, b = "a" * 64, "b" * 64
    with pytest.raises(mf.ManifestError, match='^image ID "" is invalid$'):
        schema1.fix_layers(schema1.Schema1(b"", 1, "", "", "", ["x"], ["{}"]))
    with pytest.raises(mf.ManifestError, match="^invalid parent ID in the base layer of the image$"):
        schema1.fix_layers(schema1.Schema1(b"", 1, "", "", "", ["x"], [json.dumps({"id": a, "parent": b})]))
    with pytest.raises(mf.ManifestError, match=f"^invalid parent ID. Expected {b}, got {a}$"):
        schema1.fix_layers(schema1.Schema1(b"", 1, "", "", "", ["x", "y"],
                                           [json.dumps({"id": a, "parent": a}), json.dumps({"id": b})]))
    with pytest.raises(mf.ManifestError, match=f"^ID {a} appears multiple times in manifest$"):
        schema1.fix_layers(schema1.Schema1(b"", 1, "", "", "", ["x", "y", "z"],
                                           [json.dumps({"id": a, "parent": b}), json.dumps({"id": b, "parent": a}),
                                            json.dumps({"id": a})]))


def test_go_helpers() -> None:
    assert v1.version_less("", "1.8.3") and v1.version_less("1.8.3-rc1", "1.8.3")
    assert not v1.version_less("1.10.0", "1.8.3") and not v1.version_less("1.8.3", "1.8.3")
    assert v1.go_time("2025-03-04T05:06:07.1234567890+00:00") == "2025-03-04T05:06:07.123456789Z"
    assert v1.go_time("2025-03-04T05:06:07.500-07:30") == "2025-03-04T05:06:07.5-07:30"
    assert v1.compact(' { "a" : [ 1 , "x < y & \u2028 \\" " ] }\n') == '{"a":[1,"x \\u003c y \\u0026 \\u2028 \\" "]}'
    assert v1.raw_members('{"a": 1, "b" : {"c": [ 2 ]}, "a": "again"}') == {"b": '{"c": [ 2 ]}', "a": '"again"'}


# What the reference dockerd answered (in the pull's stream) for manifests with these top entries.
REFD_ERRORS = {
    json.dumps({"id": sc.A, "created": "bad"}):
        'parsing time "\\"bad\\"" as "\\"2006-01-02T15:04:05Z07:00\\"": cannot parse "bad\\"" as "2006"',
    json.dumps({"id": sc.A, "created": "2025-13-01T00:00:00Z"}):
        'parsing time "\\"2025-13-01T00:00:00Z\\"": month out of range',
    json.dumps({"id": sc.A, "created": "2025-01-01 00:00:00Z"}):
        'parsing time "\\"2025-01-01 00:00:00Z\\"" as "\\"2006-01-02T15:04:05Z07:00\\"": cannot parse '
        '" 00:00:00Z\\"" as "T"',
    json.dumps({"id": sc.A, "throwaway": "yes"}): "json: cannot unmarshal string into Go struct field .throwaway of type bool",
    json.dumps({"id": "xyz"}): 'image ID "xyz" is invalid',
    json.dumps({"id": sc.A, "container_config": {"Cmd": 5}}):
        "json: cannot unmarshal number into Go struct field Config.container_config.Cmd of type string",
    json.dumps({"id": sc.A, "created": 5}):
        'parsing time "5" as "\\"2006-01-02T15:04:05Z07:00\\"": cannot parse "5" as "\\""',
    json.dumps({"id": sc.A, "docker_version": 1}):
        "json: cannot unmarshal number into Go struct field V1Image.docker_version of type string",
}


@pytest.mark.parametrize("entry", list(REFD_ERRORS))
def test_errors_as_dockerd(entry: str) -> None:
    with pytest.raises((mf.ManifestError, v1.V1Error)) as e:
        convert([entry], ["sha256:" + "1" * 64], [DIFF_BASE])
    assert str(e.value) == REFD_ERRORS[entry]


def test_times_as_go_reads_them() -> None:
    assert v1.go_time("2025-03-04T05:06:07,5Z") == "2025-03-04T05:06:07.5Z"  # Go 1.17+: a comma too
    assert v1.go_time("2024-02-29T00:00:00+00:00") == "2024-02-29T00:00:00Z"
    assert v1.go_time("2025-01-01T00:00:00+24:60") == "2025-01-01T00:00:00+25:00"  # Go allows 24 and 60 there
    with pytest.raises(v1.V1Error, match="day out of range"):
        v1.go_time("2025-02-29T00:00:00Z")
    with pytest.raises(v1.V1Error, match=r"hour out of range"):
        v1.go_time("2025-01-01T24:00:00Z")
    assert v1.history_from_config(b'{"Created": null, "created": "2025-01-01T00:00:00.000Z"}', False).created == \
        "2025-01-01T00:00:00Z"
