"""bench/cgroup_compare.py's pure parts: what it treats as the same on both daemons."""
import importlib.util
import pathlib

_p = pathlib.Path(__file__).resolve().parents[2] / "bench" / "cgroup_compare.py"
_spec = importlib.util.spec_from_file_location("cgroup_compare", _p)
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)  # type: ignore[union-attr]

CID = "ab" * 32


def test_canon_makes_ids_names_and_scope_prefix_alike():
    r = cc.canon({"host_cgroup": f"/system.slice/docker-{CID}.scope", "err": "Container cmp-pause-r is paused"})
    c = cc.canon({"host_cgroup": f"/system.slice/berth-{CID}.scope", "err": "Container cmp-pause-c is paused"})
    assert r == c == {"host_cgroup": "/system.slice/<engine>-<id>.scope", "err": "Container cmp-pause is paused"}


def test_canon_keeps_other_differences():
    assert cc.canon({"x": "/system.slice/docker-1.scope"}) != cc.canon({"x": "/berth/1"})


def test_key_tree_lists_leaf_types_and_list_items():
    t = cc.key_tree({"blkio_stats": {"io_service_bytes_recursive": [{"major": 254, "op": "read"}],
                                     "io_queue_recursive": None}, "pids_stats": {}})
    assert t == ["blkio_stats.io_queue_recursive:NoneType",
                 "blkio_stats.io_service_bytes_recursive[].major:int",
                 "blkio_stats.io_service_bytes_recursive[].op:str", "pids_stats={}"]


def test_flatten_and_warnings():
    assert cc.flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a b": 1, "a c d": 2}
    assert cc.warnings_of("WARNING: x\nother\nWARNING: y") == ["x", "y"]
