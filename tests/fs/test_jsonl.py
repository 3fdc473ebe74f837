"""The JSON Lines view (-o layout=jsonl) of the messy corpus: exactly the
reference model's events, compact and as delivered, queried with DuckDB;
sharing the cache with the per-event tree; `wivaudit export`."""

import collections
import json
import os
import re

import pytest

import refmodel
from conftest import SRC, run

BUCKET = "jsonl"
QUERY_JS = os.path.join(SRC, "tests", "s3", "duckdb-query.js")
KEY_RE = re.compile(r"^(.+)/(org|user|api)-audit-logs-(\d+)\.json\.gz$")


@pytest.fixture(scope="module")
def bucket(s3, messy_corpus):
    mirror, _pretty = messy_corpus
    s3.seed(BUCKET, mirror)
    return mirror, refmodel.Model(str(mirror), layout="compact")


def expected_files(model):
    """{"org=O/date=D/type=T/events.jsonl": (bytes, mtime)} of the model:
    its type directories' compact events in the tree's order, mtime the
    newest key timestamp of that org, day and type."""
    lines = collections.defaultdict(list)
    for path, f in model.files.items():
        lines[path.rsplit(b"/", 1)[0]].append(f.content)
    newest = {}
    for _key, org, typ, ms in model.objects:
        day = refmodel.utc_day(ms // 1000)
        d = b"/".join([org.encode()] + list(day) + [typ.encode()])
        newest[d] = max(newest.get(d, 0), ms // 1000)
    out = {}
    for d in model.dirs:
        parts = d.split(b"/")
        if len(parts) != 5:
            continue
        org, y, m, dd, typ = (p.decode() for p in parts)
        name = "org=%s/date=%s-%s-%s/type=%s/events.jsonl" % (
            org, y, m, dd, typ)
        out[name] = (b"".join(lines.get(d, [])), newest[d])
    return out


def view_files(root):
    """{relative path: (bytes, stat)} of every file below root."""
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = (f.read(), os.stat(p))
    return out


def duckdb(sql):
    p = run(["node", QUERY_JS, sql], timeout=120, check=False)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return json.loads(p.stdout)


def test_view_is_the_model(s3, bucket, mounter):
    _mirror, model = bucket
    want = expected_files(model)
    m = mounter.mount("s3://" + BUCKET, opts=["layout=jsonl"])
    got = view_files(m.path)
    assert sorted(got) == sorted(want)
    for name, (text, mtime) in want.items():
        data, st = got[name]
        assert data == text, name
        assert st.st_size == len(text), name
        assert st.st_mtime == mtime, name
        assert st.st_mode & 0o777 == 0o444
        for line in data.splitlines():
            json.loads(line)
    # Number texts as delivered: json.loads would turn them into floats.
    every = b"".join(d for d, _st in got.values())
    for text in (b'"big":123456789012345678901234567890',
                 b'"neg_big":-987654321098765432109876543210',
                 b'"ratio":0.1', b'"trailing_zero":1.50', b'"exp":1E+2'):
        assert text in every, text
    # Reads at any offset and of any size see the same bytes.
    name, (text, _m) = max(want.items(), key=lambda kv: len(kv[1][0]))
    fd = os.open(os.path.join(m.path, name), os.O_RDONLY)
    try:
        for off in range(0, len(text) + 2, 97):
            assert os.pread(fd, 333, off) == text[off:off + 333]
    finally:
        os.close(fd)
    mounter.unmount(m)


def test_duckdb_counts_match_model(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET, opts=["layout=jsonl"])
    glob = os.path.join(m.path, "*", "*", "*", "*.jsonl")
    rows = duckdb(
        "SELECT org, date, type, CASE WHEN json_type(json->'event_type') = "
        "'VARCHAR' THEN json->>'event_type' END AS event_type, count(*) AS n "
        "FROM read_ndjson_objects('%s', hive_partitioning = true) "
        "GROUP BY ALL" % glob)
    got = collections.Counter()
    for r in rows:
        got[(r["org"], r["date"], r["type"], r["event_type"])] += int(r["n"])
    want = collections.Counter()
    for path, f in model.files.items():
        org, y, mo, d, typ = (p.decode() for p in path.split(b"/")[:5])
        want[(org, "%s-%s-%s" % (y, mo, d), typ, f.event_type)] += 1
    assert got == want
    total = duckdb("SELECT count(*) AS n FROM read_json('%s', "
                   "hive_partitioning = true)" % glob)
    assert int(total[0]["n"]) == model.event_count()
    mounter.unmount(m)


def test_listing_downloads_nothing(s3, bucket, mounter):
    _mirror, model = bucket
    mark = s3.mark()
    m = mounter.mount("s3://" + BUCKET, opts=["layout=jsonl"])
    names = run(["find", m.path, "-mindepth", "4"]).stdout.split()
    assert len(names) == len(expected_files(model))
    assert s3.object_gets(mark) == []
    mounter.unmount(m)


def test_shares_cache_with_tree(s3, bucket, mounter):
    """A jsonl mount after a tree walk on the same cache, both mounted at
    once, reads every day without one object GET."""
    _mirror, model = bucket
    cache = mounter.new_cache_dir()
    tree = mounter.mount("s3://" + BUCKET, cache_dir=cache)
    run(["grep", "-rc", "event_type", tree.path])
    mark = s3.mark()
    view = mounter.mount("s3://" + BUCKET, opts=["layout=jsonl"],
                         cache_dir=cache)
    got = view_files(view.path)
    assert {k: v[0] for k, v in got.items()} == \
        {k: v[0] for k, v in expected_files(model).items()}
    assert s3.object_gets(mark) == []
    mounter.unmount(view)
    mounter.unmount(tree)


def export(mounter, s3, *args):
    cli = os.environ.get("WIVAUDIT_CLI") or os.path.join(
        SRC, "build", "src", "wivaudit")
    argv = [cli, "export", "s3://" + BUCKET] + list(args) + [
        "-o", "endpoint=%s,cache_dir=%s" % (s3.endpoint,
                                            mounter.new_cache_dir())]
    return run(argv, env=mounter.env(), timeout=120)


def test_export_equals_view(s3, bucket, mounter, tmp_path):
    _mirror, model = bucket
    want = {k: v[0] for k, v in expected_files(model).items()}
    out = tmp_path / "export"
    p = export(mounter, s3, str(out), "--json")
    lines = [json.loads(ln) for ln in p.stdout.decode().splitlines()]
    assert lines[-1]["written"] == len(want) and lines[-1]["failed"] == 0
    got = {k: v[0] for k, v in view_files(out).items()}
    assert got == want

    # A re-run leaves every file alone but the one that differs.
    changed = sorted(want)[0]
    with open(out / changed, "ab") as f:
        f.write(b"{}\n")
    inodes = {k: os.stat(out / k).st_ino for k in want}
    p = export(mounter, s3, str(out), "--json")
    summary = json.loads(p.stdout.decode().splitlines()[-1])
    assert (summary["written"], summary["unchanged"]) == (1, len(want) - 1)
    assert {k: v[0] for k, v in view_files(out).items()} == want
    assert [k for k in want if os.stat(out / k).st_ino != inodes[k]] == \
        [changed]

    # To stdout, filtered: the selected files' lines, in order.
    org, date = changed.split("/")[:2]
    day = date[len("date="):]
    p = export(mounter, s3, "-", "--org", org[len("org="):], "--from", day,
               "--to", day)
    assert p.stdout == b"".join(
        want[k] for k in sorted(want) if k.startswith(org + "/" + date + "/"))
