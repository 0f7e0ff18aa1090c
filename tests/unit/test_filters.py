"""berth.types.filters: parsing the `filters` parameter and matching, as moby's filters.Args.

Error texts were taken from the reference dockerd 20.10 (GET /containers/json and
/images/json with the same `filters` value).
"""
from __future__ import annotations

import pytest

from berth import errdefs
from berth.types.filters import Args, invalid_filter


def test_empty_string_is_no_filter() -> None:
    args = Args.from_json("")
    assert len(args) == 0
    assert args.exact_match("type", "anything")


def test_current_and_legacy_forms_parse_the_same() -> None:
    cur = Args.from_json('{"type":{"container":true,"image":true},"label":{"a=b":true}}')
    legacy = Args.from_json('{"type":["container","image"],"label":["a=b"]}')
    for args in (cur, legacy):
        assert sorted(args.get("type")) == ["container", "image"]
        assert args.get("label") == ["a=b"]
        assert args.contains("type") and not args.contains("event")
        assert args.get("event") == []


def test_null_values() -> None:
    assert len(Args.from_json("null")) == 0
    args = Args.from_json('{"type":null}')
    assert args.contains("type") and args.get("type") == []
    assert args.exact_match("type", "x")  # an empty set filters nothing
    legacy = Args.from_json('{"type":["a",null]}')
    assert sorted(legacy.get("type")) == ["", "a"]


def test_false_values_are_listed_but_do_not_match() -> None:
    args = Args.from_json('{"type":{"container":false,"image":true}}')
    assert sorted(args.get("type")) == ["container", "image"]
    assert not args.exact_match("type", "container")
    assert args.exact_match("type", "image")
    # A null bool leaves Go's false in place: the key is there, but it does not match.
    args = Args.from_json('{"type":{"container":null}}')
    assert args.get("type") == ["container"] and not args.exact_match("type", "container")


def test_duplicate_keys_last_wins() -> None:
    args = Args.from_json('{"a":{"x":true},"a":{"y":true}}')
    assert args.get("a") == ["y"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("xx", "invalid character 'x' looking for beginning of value"),
        ('{"a":1}', "json: cannot unmarshal number into Go value of type map[string]bool"),
        ("[]", "json: cannot unmarshal array into Go value of type map[string]map[string]bool"),
        ('{"type":"x"}', "json: cannot unmarshal string into Go value of type map[string]bool"),
        ('{"type":{"container":"x"}}', "json: cannot unmarshal string into Go value of type bool"),
        ("{", "unexpected end of JSON input"),
        ('{"a":{"x":true}', "unexpected end of JSON input"),
        (" ", "unexpected end of JSON input"),
        ('{"a":{"x":true}}x', "invalid character 'x' after top-level value"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ('{"a":{"x":tru}}', "invalid character '}' in literal true (expecting 'e')"),
        ("{a:1}", "invalid character 'a' looking for beginning of object key string"),
        ('{"a":{"x":true},}', "invalid character '}' looking for beginning of object key string"),
        ("[1,]", "invalid character ']' looking for beginning of value"),
        ('"\\x"', "invalid character 'x' in string escape code"),
        # Both forms fail: the error of the first (current) form is returned.
        ('{"a":[1]}', "json: cannot unmarshal array into Go value of type map[string]bool"),
        ('{"a":["x"],"b":{"y":true}}', "json: cannot unmarshal array into Go value of type map[string]bool"),
        ('{"a":{"x":1}}', "json: cannot unmarshal number into Go value of type bool"),
        ("1", "json: cannot unmarshal number into Go value of type map[string]map[string]bool"),
        ("true", "json: cannot unmarshal bool into Go value of type map[string]map[string]bool"),
        ('{"a":-}', "invalid character '}' in numeric literal"),
        ('{"a":01}', "invalid character '1' after object key:value pair"),
        ('{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
    ],
)
def test_from_json_errors_are_gos_untyped(text: str, message: str) -> None:
    with pytest.raises(errdefs.DockerError) as exc:
        Args.from_json(text)
    assert type(exc.value) is errdefs.Untyped  # dockerd answers these with 500
    assert str(exc.value) == message


def test_validate() -> None:
    args = Args.from_json('{"foo":{"x":true}}')
    with pytest.raises(errdefs.InvalidParameter) as exc:
        args.validate({"label", "name"})
    assert str(exc.value) == "Invalid filter 'foo'"
    Args.from_json('{"name":{"x":true}}').validate({"label", "name"})


def test_exact_unique_fuzzy_and_regexp_match() -> None:
    args = Args([("name", "web"), ("name", "db"), ("id", "abc")])
    assert args.exact_match("name", "web") and not args.exact_match("name", "we")
    assert args.exact_match("unset", "whatever")
    assert not args.unique_exact_match("name", "web")  # two values
    assert args.unique_exact_match("id", "abc") and not args.unique_exact_match("id", "ab")
    assert args.fuzzy_match("id", "abcdef") and not args.fuzzy_match("id", "xabc")
    assert Args([("name", "^w.b$")]).match("name", "web")
    assert Args([("name", "e")]).match("name", "web")  # unanchored, as regexp.MatchString
    assert not Args([("name", "[")]).match("name", "web")  # bad expressions are skipped


def test_match_kv_list() -> None:
    labels = {"a": "1", "b": ""}
    assert Args().match_kv_list("label", labels)
    assert Args([("label", "a")]).match_kv_list("label", labels)
    assert Args([("label", "a=1")]).match_kv_list("label", labels)
    assert not Args([("label", "a=2")]).match_kv_list("label", labels)
    assert Args([("label", "b=")]).match_kv_list("label", labels)
    assert not Args([("label", "a"), ("label", "c")]).match_kv_list("label", labels)  # all must hold
    assert not Args([("label", "a")]).match_kv_list("label", {})
    assert not Args([("label", "a")]).match_kv_list("label", None)
    assert Args([("label", "a=1=2")]).match_kv_list("label", {"a": "1=2"})


def test_get_bool_or_default() -> None:
    assert Args().get_bool_or_default("dangling", True) is True
    assert Args([("dangling", "false")]).get_bool_or_default("dangling", True) is False
    assert Args([("dangling", "1")]).get_bool_or_default("dangling", False) is True
    with pytest.raises(errdefs.InvalidParameter) as exc:
        Args([("dangling", "xx")]).get_bool_or_default("dangling", True)
    assert str(exc.value) == "Invalid filter 'dangling=[xx]'"
    with pytest.raises(errdefs.InvalidParameter) as exc:
        Args([("dangling", "true"), ("dangling", "false")]).get_bool_or_default("dangling", True)
    assert str(exc.value) == "Invalid filter 'dangling=[true false]'"
    with pytest.raises(errdefs.InvalidParameter) as exc:
        Args.from_json('{"dangling":{}}').get_bool_or_default("dangling", True)
    assert str(exc.value) == "Invalid filter 'dangling'"


def test_walk_values_add_delete_clone_to_json() -> None:
    args = Args([("k", "a"), ("k", "b")])
    seen: list[str] = []
    args.walk_values("k", seen.append)
    args.walk_values("missing", seen.append)
    assert seen == ["a", "b"]

    def stop(v: str) -> None:
        raise errdefs.InvalidParameter(f"bad {v}")

    with pytest.raises(errdefs.InvalidParameter, match="bad a"):
        args.walk_values("k", stop)
    clone = args.clone()
    args.delete("k", "a")
    args.delete("k", "b")
    assert not args.contains("k")
    assert clone.get("k") == ["a", "b"]
    assert clone.to_json() == '{"k":{"a":true,"b":true}}'
    assert Args().to_json() == ""
    assert Args.from_json(clone.to_json()).get("k") == ["a", "b"]


def test_invalid_filter_messages() -> None:
    assert str(invalid_filter("foo")) == "Invalid filter 'foo'"
    assert str(invalid_filter("dangling", ["a", "b"])) == "Invalid filter 'dangling=[a b]'"
