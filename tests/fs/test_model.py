"""The sample generator and the reference model, checked on their own (no
mount): the mount tests are only as good as the model they compare with."""

import gzip
import hashlib
import json
import os
import re
import sys

import pytest

import refmodel
from conftest import SMALL, generate, run

DAY = 86400


def test_generator_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    sa = generate(a, *SMALL, "--messy")
    sb = generate(b, *SMALL, "--messy")
    assert sa == sb
    assert run(["diff", "-r", str(a), str(b)], check=False).returncode == 0
    c = tmp_path / "c"
    generate(c, *SMALL[:-1], "8")
    assert run(["diff", "-rq", str(a), str(c)], check=False).returncode != 0


def test_generator_layout_and_summary(tmp_path):
    d = tmp_path / "m"
    summary = generate(d, "--orgs", "2", "--days", "3", "--objects-per-day",
                       "1", "--events-per-object", "4", "--gaps", "0")
    orgs = sorted(os.listdir(d))
    assert len(orgs) == 2
    n_events = 0
    for org in orgs:
        names = sorted(os.listdir(d / org))
        assert len(names) == 9
        for n in names:
            assert refmodel.KEY_RE.match("%s/%s" % (org, n)), n
            with open(d / org / n, "rb") as f:
                body = gzip.decompress(f.read())
            events = json.loads(body)
            assert isinstance(events, list) and events
            assert body == json.dumps(events, ensure_ascii=False,
                                      separators=(",", ":")).encode()
            key_ms = int(n.split("-")[-1].split(".")[0])
            for e in events:
                n_events += 1
                assert set(e) >= {"id", "org_id", "org_name", "event_type",
                                  "event_data", "created_at", "caused_by_id",
                                  "caused_by_type", "caused_by_source_ip",
                                  "relevant_user_email"}
                assert e["org_id"] == org
                assert 0 < key_ms / 1000 - e["created_at"] <= 601
    assert summary == "orgs 2, objects 18 (0 bad), other keys 0, " \
        "events %d" % n_events
    m = refmodel.Model(str(d))
    assert m.event_count() == n_events
    assert len(m.files_with(b'"event_type": "OrgCreated"')) == 2


def _plain(node):
    """True if `jq .` reproduces this value's text exactly: integers that a
    double holds, strings without escapes jq would rewrite."""
    if node.kind == "obj":
        return all(_plain(v) for _k, v in node.items) and \
            all(b"\\u" not in k and b"\\/" not in k for k, _v in node.items)
    if node.kind == "arr":
        return all(_plain(v) for v in node.items)
    if node.kind == "num":
        t = node.raw.decode()
        if t.lstrip("-").isdigit():
            return len(t) < 16 and t != "-0"
        return re.fullmatch(r"-?[0-9]+\.[0-9]*[1-9]", t) is not None and \
            repr(float(t)) == t
    if node.kind == "str":
        return b"\\u" not in node.raw and b"\\/" not in node.raw and \
            b"\x7f" not in node.raw
    return True


@pytest.mark.parametrize("messy", [False, True])
def test_model_content_is_jq_layout(tmp_path, messy):
    """Every expected file of a plain event is exactly what `jq .` (and
    `jq -c .`) prints for it; every file parses."""
    d = tmp_path / "m"
    generate(d, *SMALL, *(["--messy"] if messy else []))
    for layout, jq in (("pretty", ["jq", "."]), ("compact", ["jq", "-c",
                                                             "."])):
        m = refmodel.Model(str(d), layout=layout)
        plain = [p for p, f in sorted(m.files.items())
                 if _plain(refmodel.parse_array(b"[" + f.content + b"]")[0])]
        assert len(plain) > 0.9 * len(m.files)
        blob = b"".join(m.files[p].content for p in plain)
        out = run(jq, input=blob).stdout
        assert out == blob
        for p, f in m.files.items():
            json.loads(f.content)
            assert f.content.endswith(b"\n")
            assert f.content.count(b"\n") == 1 or layout == "pretty"


def write_obj(root, org, typ, key_ms, events, raw=None, gz=True):
    body = raw if raw is not None else json.dumps(
        events, separators=(",", ":")).encode()
    if gz:
        body = gzip.compress(body, mtime=0)
    p = root / org / ("%s-audit-logs-%d.json.gz" % (typ, key_ms))
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(body)


def test_model_date_rule_by_hand(tmp_path):
    """A few cases worked out by hand from DESIGN.md."""
    D = 20481 * DAY  # 2026-01-28 00:00:00 UTC
    o = "org1"
    # An object on day D, 60 s after midnight, and one on D-1 (user only).
    write_obj(tmp_path, o, "user", D * 1000 - 5 * 3600 * 1000,
              [{"id": "prev", "created_at": D - 5 * 3600 - 10}])
    write_obj(tmp_path, o, "user", (D + 60) * 1000, [
        {"id": "a", "created_at": D - 2},          # D-1: has a user dir
        {"id": "b", "created_at": D + 30.9},       # D, mtime floored
        {"id": "c", "created_at": str(D - 2)},     # a string: key day
        {"id": "d", "created_at": D - 2 * DAY},    # outside W: key day
        {"id": "e"},                               # missing: key day
        {"id": "f", "created_at": D + DAY + 10},   # D+1: no dir there
    ])
    write_obj(tmp_path, o, "api", (D + 60) * 1000, [
        {"id": "g", "created_at": D - 2},          # D-1: no api dir
    ])
    m = refmodel.Model(str(tmp_path))
    f = m.files
    assert f[b"org1/2026/01/27/user/a.json"].mtime == D - 2
    assert f[b"org1/2026/01/28/user/b.json"].mtime == D + 30
    assert f[b"org1/2026/01/28/user/c.json"].mtime == D + 60
    assert f[b"org1/2026/01/28/user/d.json"].mtime == D + 60
    assert f[b"org1/2026/01/28/user/e.json"].mtime == D + 60
    assert f[b"org1/2026/01/28/user/f.json"].mtime == D + 60
    assert f[b"org1/2026/01/28/api/g.json"].mtime == D + 60
    assert b"org1/2026/01/27/user/prev.json" in f
    assert m.listdir(b"org1/2026/01/27") == [b"user"]
    assert m.listdir(b"org1/2026/01/28") == [b"api", b"user"]
    # A narrower window sends "a" back to the key day.
    m = refmodel.Model(str(tmp_path), window=60)
    assert b"org1/2026/01/28/user/a.json" in m.files
    assert m.files[b"org1/2026/01/28/user/b.json"].mtime == D + 30


def test_model_order_dedupe_and_names(tmp_path):
    D = 20481 * DAY
    e1 = {"id": "x", "created_at": D + 100, "v": 1}
    e1_reordered = {"v": 1, "created_at": D + 100, "id": "x"}
    e2 = {"id": "x", "created_at": D + 100, "v": 2}
    write_obj(tmp_path, "o", "org", (D + 3600) * 1000,
              [e1, 7, e2, {"id": "x~2", "created_at": D + 100}])
    # Earlier key, same directory: its events come first.
    write_obj(tmp_path, "o", "org", (D + 1800) * 1000,
              [{"id": "x", "created_at": D + 100, "v": 0}])
    # A re-delivery (same value, other key order and whitespace), plain JSON.
    write_obj(tmp_path, "o", "org", (D + 7200) * 1000, None,
              raw=json.dumps([e1_reordered], indent=3).encode(), gz=False)
    # Bad bodies: nothing from them, directories still exist.
    write_obj(tmp_path, "o", "api", (D + 1) * 1000, None, raw=b"[{}, {]")
    write_obj(tmp_path, "o", "api", (D + 2) * 1000, None,
              raw=gzip.compress(b"[{}]")[:-3], gz=False)
    write_obj(tmp_path, "o", "user", (D + 1) * 1000, None, raw=b'{"a":1}')
    m = refmodel.Model(str(tmp_path))
    d = b"o/2026/01/28/org/"
    assert json.loads(m.files[d + b"x.json"].content)["v"] == 0
    assert json.loads(m.files[d + b"x~2.json"].content)["v"] == 1
    assert json.loads(m.files[d + b"x~3.json"].content)["v"] == 2
    assert m.files[d + b"x~3.json"].position == 2
    assert d + b"x~2~2.json" in m.files
    assert len(m.listdir(d[:-1])) == 4
    assert m.redeliveries == 1
    assert set(m.bad_keys) == {
        "o/api-audit-logs-%d.json.gz" % ((D + 1) * 1000),
        "o/api-audit-logs-%d.json.gz" % ((D + 2) * 1000),
        "o/user-audit-logs-%d.json.gz" % ((D + 1) * 1000)}
    assert m.listdir(b"o/2026/01/28/api") == []
    assert m.plain_keys == ["o/org-audit-logs-%d.json.gz" % ((D + 7200) *
                                                             1000)]


def test_model_naming():
    enc = refmodel.encode_name
    assert enc(b"a/b%c") == b"a%2Fb%25c"
    assert enc(b".x.y") == b"%2Ex.y"
    assert enc(b"..") == b"%2E."
    assert enc(b"a\x00\x1f\x7f\x80b") == b"a%00%1F%7F\x80b"
    assert refmodel.base_name(None, 123, 4) == b"_noid-123-4"
    long_id = b"/" * 70
    n = refmodel.base_name(long_id, 0, 0)
    assert n == b"%2F" * 60 + b"-" + \
        hashlib.sha256(long_id).hexdigest()[:16].encode()
    assert len(refmodel.base_name(b"y" * 200, 0, 0)) == 200
    assert len(refmodel.base_name(b"y" * 201, 0, 0)) == 197


def test_model_layout_keeps_text():
    text = (b'[{"a" : 0.1,"b":123456789012345678901234567890,"c":"\\/\\u00e9",'
            b'"d":{},"e":[],"f":[1,{"g":null}],"h":-0,"i":1E+2}]')
    node = refmodel.parse_array(text)[0]
    assert refmodel.layout(node) == (
        b'{\n  "a": 0.1,\n  "b": 123456789012345678901234567890,\n'
        b'  "c": "\\/\\u00e9",\n  "d": {},\n  "e": [],\n  "f": [\n    1,\n'
        b'    {\n      "g": null\n    }\n  ],\n  "h": -0,\n  "i": 1E+2\n}\n')
    assert refmodel.layout(node, pretty=False) == text[1:-1].replace(
        b" : ", b":") + b"\n"
    for bad in (b"[1,]", b"[01]", b"[1 2]", b'["\x01"]', b"[tru]",
                b"[1] x", b"{}", b"", b'["\\x"]', b"[NaN]"):
        with pytest.raises(refmodel.BadBody):
            refmodel.parse_array(bad)


def test_model_cli(tmp_path):
    d = tmp_path / "m"
    generate(d, "--orgs", "1", "--days", "2", "--messy")
    p = run([sys.executable,
             os.path.join(os.path.dirname(refmodel.__file__), "refmodel.py"),
             "--summary", str(d)])
    assert p.stdout.startswith(b"dirs ")
