"""Laziness and the on-disk cache, counted in requests at the S3 server."""

import gzip
import json
import os
import shutil
import stat
import time

import pytest

import refmodel
from conftest import assert_tree, compare_tree, run, walk

BUCKET = "cache"
DAY_MS = 86400 * 1000


@pytest.fixture(scope="module")
def bucket(s3, small_corpus):
    mirror, model = small_corpus
    s3.make_bucket(BUCKET)
    s3.sync(mirror, "s3://%s/" % BUCKET)
    return mirror, model


def listdir(path):
    return sorted(run(["ls", "-1A", "--quoting-style=literal",
                       path]).stdout.splitlines())


def test_listing_levels_read_no_object(s3, bucket, mounter):
    """ls of /, an org, a year, a month: listings only."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    mark = s3.mark()
    for rel in sorted(model.dirs):
        if rel.count(b"/") <= 2:  # "", org, org/yyyy, org/yyyy/mm
            path = os.path.join(m.path, os.fsdecode(rel)) if rel else m.path
            assert listdir(path) == model.listdir(rel)
    assert s3.object_gets(mark) == []
    assert any(r[2] == "list" for r in s3.requests(mark))


def test_day_reads_only_its_window(s3, bucket, mounter):
    """Listing a day/type directory fetches only objects of that org and type
    within W of the day, each once."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    typedirs = sorted(p for p in model.dirs if p.count(b"/") == 4)
    target = typedirs[len(typedirs) // 2]
    org, y, mo, d, typ = target.split(b"/")
    day_ms = refmodel.datetime.datetime(
        int(y), int(mo), int(d),
        tzinfo=refmodel.datetime.timezone.utc).timestamp() * 1000
    allowed = {k for k, o, t, ms in model.objects
               if o.encode() == org and t.encode() == typ and
               day_ms - DAY_MS <= ms < day_ms + 2 * DAY_MS}
    on_day = {k for k, o, t, ms in model.objects
              if o.encode() == org and t.encode() == typ and
              day_ms <= ms < day_ms + DAY_MS}
    mark = s3.mark()
    assert listdir(os.path.join(m.path, os.fsdecode(target))) == \
        model.listdir(target)
    gets = s3.object_gets(mark)
    keys = ["/".join(u.split("?")[0].split("/")[2:]) for u in gets]
    assert len(keys) == len(set(keys)), "an object fetched twice: %s" % keys
    assert set(keys) <= allowed, "outside the window: %s" % (
        set(keys) - allowed)
    assert on_day <= set(keys)


def test_remount_serves_from_cache(s3, bucket, mounter):
    """A second mount with the same cache dir: zero object GETs, the same
    tree, the same inode numbers."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    first = walk(m.path)
    assert_tree(first, model)
    mounter.unmount(m)
    mark = s3.mark()
    m2 = mounter.mount("s3://" + BUCKET, cache_dir=m.cache_dir)
    second = walk(m2.path)
    assert s3.object_gets(mark) == []
    assert_tree(second, model)
    moved = [p for p in first if first[p]["ino"] != second[p]["ino"]]
    assert not moved, "st_ino changed across remount: %d entries" % len(moved)


def test_cache_is_private(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    walk(m.path)
    mounter.unmount(m)
    bad = []
    for root, dirs, files in os.walk(m.cache_dir):
        for name in dirs + files:
            p = os.path.join(root, name)
            mode = os.lstat(p).st_mode
            if stat.S_IMODE(mode) & 0o077:
                bad.append("%s %o" % (p, stat.S_IMODE(mode)))
    top = stat.S_IMODE(os.stat(m.cache_dir).st_mode)
    assert top & 0o077 == 0, "cache dir mode %o" % top
    assert not bad


def test_damaged_cache_is_refetched(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    walk(m.path)
    mounter.unmount(m)
    damaged = 0
    for root, _dirs, files in os.walk(m.cache_dir):
        for name in files:
            p = os.path.join(root, name)
            size = os.path.getsize(p)
            if size == 0:
                continue
            with open(p, "r+b") as f:
                if damaged % 2:
                    f.truncate(size // 2)
                else:
                    f.seek(size // 2)
                    c = f.read(1)
                    f.seek(size // 2)
                    f.write(bytes([c[0] ^ 0x55]))
            damaged += 1
    assert damaged, "nothing in the cache dir"
    m2 = mounter.mount("s3://" + BUCKET, cache_dir=m.cache_dir)
    assert_tree(walk(m2.path), model)


def test_new_delivery_shows_up(s3, small_corpus, mounter, tmp_path):
    """With a short list_ttl a new object appears without remounting."""
    mirror, _model = small_corpus
    local = tmp_path / "mirror"
    shutil.copytree(mirror, local)
    s3.make_bucket("fresh")
    s3.sync(local, "s3://fresh/")
    m = mounter.mount("s3://fresh", opts=["list_ttl=1"])
    before = walk(m.path, content=False)
    org = sorted(os.listdir(local))[0]
    last = max(ms for k, o, t, ms in refmodel.Model(str(local)).objects)
    key_ms = (last // DAY_MS + 3) * DAY_MS + 3600 * 1000
    event = {"id": "late-delivery", "org_id": org, "org_name": "Late",
             "event_type": "OrgUpdated", "event_data": {"x": [1, 2]},
             "created_at": key_ms // 1000 - 30, "caused_by_id": None,
             "caused_by_type": "system", "caused_by_source_ip": None,
             "relevant_user_email": None}
    rel = "%s/org-audit-logs-%d.json.gz" % (org, key_ms)
    (local / rel).write_bytes(gzip.compress(
        json.dumps([event]).encode(), mtime=0))
    s3.aws("s3", "cp", str(local / rel), "s3://fresh/" + rel)
    model = refmodel.Model(str(local))
    assert set(model.dirs) - set(before)
    # Names, contents and attributes (a parent's nlink too) must all catch
    # up; attributes the kernel cached may lag a moment behind the names.
    deadline = time.monotonic() + 15
    while True:
        diffs = compare_tree(walk(m.path), model)
        if not diffs:
            break
        assert time.monotonic() < deadline, \
            "15 s after the upload (list_ttl=1) the tree still differs:\n" \
            + "\n".join(diffs)
        time.sleep(0.5)
