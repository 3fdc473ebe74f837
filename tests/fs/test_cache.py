"""Laziness and the on-disk cache, counted in requests at the S3 server."""

import ctypes
import gzip
import json
import mmap
import os
import pickle
import shutil
import stat
import subprocess
import time
import urllib.parse

import pytest

import refmodel
from conftest import (FSPROBE, PYTHON, Mounter, S3Server, assert_tree,
                      compare_tree, generate, probe, run, walk)

BUCKET = "cache"
DAY_MS = 86400 * 1000


@pytest.fixture(scope="module")
def bucket(s3, small_corpus):
    mirror, model = small_corpus
    s3.seed(BUCKET, mirror)
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


def day_of(rel):
    """The UTC day number of an org/yyyy/mm/dd/type directory."""
    _org, y, mo, d, _typ = rel.split(b"/")
    return (refmodel.datetime.date(int(y), int(mo), int(d)) -
            refmodel.datetime.date(1970, 1, 1)).days


def walked_pair(model, skip=()):
    """Two day directories of one org and type (not in skip) where the
    second follows the first among that type's key days: what a walk lists
    in turn."""
    def org_type_day(p):
        parts = p.split(b"/")
        return parts[0], parts[4], day_of(p)
    typedirs = sorted((p for p in model.dirs if p.count(b"/") == 4),
                      key=org_type_day)
    for a, b in zip(typedirs, typedirs[1:]):
        org, typ, _ = org_type_day(a)
        if org_type_day(b)[:2] != (org, typ) or (org, typ) in skip:
            continue
        key_days = {ms // DAY_MS for _k, o, t, ms in model.objects
                    if o.encode() == org and t.encode() == typ}
        d0, d1 = day_of(a), day_of(b)
        later = [d for d in key_days if d > d1 + 3]
        if d0 in key_days and d1 == min(d for d in key_days if d > d0) \
                and later:
            return a, b, org, typ
    pytest.fail("the corpus has no two walked days with later objects")


def fetched_keys(s3, mark):
    return {"/".join(u.split("?")[0].split("/")[2:])
            for u in s3.object_gets(mark)}


def wait_fetched(s3, mark, want):
    """Waits (bounded) until every key of want was fetched after mark."""
    deadline = time.monotonic() + 20
    while not want <= fetched_keys(s3, mark) and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("readahead", [2, 0])
def test_walk_reads_ahead(s3, bucket, mounter, readahead):
    """Listing a day right after the one before it (a walk) also fetches,
    in the background, the objects of the next `readahead` days of that org
    and type; a day listed on its own, or readahead=0, fetches only its
    window. The next day's listing then needs no download."""
    _mirror, model = bucket
    first, second, org, typ = walked_pair(model)
    d1 = day_of(second)
    w_ms = 86400 * 1000  # the default window

    def keys(lo_ms, hi_ms):  # this org and type's keys in [lo, hi]
        return {k for k, o, t, ms in model.objects
                if o.encode() == org and t.encode() == typ and
                lo_ms <= ms <= hi_ms}

    # parallel=4: one read-ahead thread, which runs jobs in the order queued.
    m = mounter.mount("s3://" + BUCKET, opts=["readahead=%d" % readahead,
                                              "parallel=4"])
    mark = s3.mark()
    listdir(os.path.join(m.path, os.fsdecode(first)))
    own = keys(day_of(first) * DAY_MS - w_ms, (day_of(first) + 1) * DAY_MS + w_ms)
    assert fetched_keys(s3, mark) <= own, "a day alone read ahead"

    listdir(os.path.join(m.path, os.fsdecode(second)))
    horizon = (d1 + 1 + readahead) * DAY_MS + w_ms
    ahead = keys((d1 + 1) * DAY_MS + w_ms + 1, horizon)
    windows = own | keys(d1 * DAY_MS - w_ms, (d1 + 1) * DAY_MS + w_ms)
    wait_fetched(s3, mark, ahead)
    if readahead:
        # A fence: a walk of another org and type queues its read-ahead
        # behind anything queued above; once the one thread has fetched it,
        # whatever was queued before is in the request log. (Without
        # read-ahead there is no queue: listing fetched everything.)
        f_first, f_second, f_org, f_typ = walked_pair(model, {(org, typ)})
        f_day = day_of(f_second)
        fence = {k for k, o, t, ms in model.objects
                 if o.encode() == f_org and t.encode() == f_typ and
                 (f_day + 1) * DAY_MS + w_ms < ms <=
                 (f_day + 1 + readahead) * DAY_MS + w_ms}
        assert fence, "nothing to read ahead for the fence"
        listdir(os.path.join(m.path, os.fsdecode(f_first)))
        listdir(os.path.join(m.path, os.fsdecode(f_second)))
        wait_fetched(s3, mark, fence)
    got = fetched_keys(s3, mark) & keys(0, 2 ** 62)
    assert ahead <= got, "not read ahead: %s" % sorted(ahead - got)
    assert got <= windows | ahead, "read beyond %d days: %s" % (
        readahead, sorted(got - windows - ahead))
    if readahead:
        assert ahead, "nothing to read ahead in this corpus"
        # The next day's objects are all in the cache already.
        third = [p for p in sorted(model.dirs) if p.count(b"/") == 4 and
                 p.startswith(org + b"/") and p.endswith(b"/" + typ) and
                 day_of(p) == d1 + 1]
        if third:
            mark = s3.mark()
            listdir(os.path.join(m.path, os.fsdecode(third[0])))
            assert s3.object_gets(mark) == []


def resident(path):
    """Whether every page of the file is in the kernel's page cache, asked
    with mincore(2) on a mapping that is never touched (no READ is sent)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), \
            os.strerror(ctypes.get_errno())
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = ctypes.create_string_buffer(pages)
        rc = libc.mincore(ctypes.c_void_p(addr), size, vec)
        libc.munmap(ctypes.c_void_p(addr), size)
        assert rc == 0, os.strerror(ctypes.get_errno())
        return all(b & 1 for b in vec.raw)
    finally:
        os.close(fd)


def test_reading_walk_gets_files_in_page_cache(s3, bucket, mounter):
    """Once a walker has read a file, the next day/type directory it lists
    has its files (all but the first) written into the kernel's page cache
    while listing, with the right bytes; a directory listed with no read
    since the one before gets nothing pushed."""
    _mirror, model = bucket
    typedirs = [p for p in sorted(model.dirs) if p.count(b"/") == 4 and
                len(model.listdir(p)) >= 3]
    a, b, c = typedirs[0], typedirs[len(typedirs) // 2], typedirs[-1]
    m = mounter.mount("s3://" + BUCKET)

    def names(rel):
        return [n.encode() for n in
                os.listdir(os.path.join(m.path, os.fsdecode(rel)))]

    def path(rel, name):
        return os.path.join(m.path, os.fsdecode(rel), os.fsdecode(name))

    first_a = names(a)[0]
    with open(path(a, first_a), "rb") as f:
        f.read()
    listed_b = names(b)
    assert sorted(listed_b) == sorted(model.listdir(b))
    assert not resident(path(b, listed_b[0])), "the probe file was pushed"
    for n in listed_b[1:]:
        assert resident(path(b, n)), "%s is not in the page cache" % n
        with open(path(b, n), "rb") as f:
            assert f.read() == model.files[b + b"/" + n].content

    listed_c = names(c)
    assert not any(resident(path(c, n)) for n in listed_c), \
        "pushed to a walk that does not read"


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
    """With a short list_ttl a new object appears without remounting, and
    the refresh asks only for keys after the newest known (start-after)."""
    mirror, _model = small_corpus
    local = tmp_path / "mirror"
    shutil.copytree(mirror, local)
    s3.make_bucket("fresh")
    s3.sync(local, "s3://fresh/")
    m = mounter.mount("s3://fresh", opts=["list_ttl=2"])
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
    mark = s3.mark()
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
            "15 s after the upload (list_ttl=2) the tree still differs:\n" \
            + "\n".join(diffs)
        time.sleep(0.5)
    org_lists = [list_query(r[3]) for r in s3.requests(mark)
                 if r[2] == "list" and
                 list_query(r[3]).get("prefix", "").startswith(org + "/")]
    assert org_lists, "no LIST of the org after the upload"
    for q in org_lists:
        assert q.get("start-after", "").startswith(org + "/"), \
            "a refresh listed the whole org: %s" % q


def list_query(url):
    """The query of a LIST request's URL as a dict."""
    return {k: v[0] for k, v in urllib.parse.parse_qs(
        urllib.parse.urlsplit(url).query, keep_blank_values=True).items()}


def entry_bytes(cache_dir):
    total = 0
    for root, _dirs, files in os.walk(os.path.join(cache_dir, "objects")):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                     if f.endswith(".wvc"))
    return total


def walk_concurrently(paths, timeout=120):
    """Walks (with content) several mounts at once, each in its own child;
    returns their trees in order."""
    procs = [subprocess.Popen([PYTHON, FSPROBE, "walk", p],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for p in paths]
    trees = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a concurrent walk did not finish in %d s" % timeout)
        assert p.returncode == 0, err.decode(errors="replace")
        trees.append(pickle.loads(out))
    return trees


def test_eviction_while_reading(s3, bucket, mounter):
    """A cache far smaller than the bucket: two readers at once still get
    every byte right (evicted objects are fetched again, no EIO, no short
    read), and the entries stay near the bound."""
    _mirror, model = bucket
    bound = 64 * 1024
    m = mounter.mount("s3://" + BUCKET, opts=["cache_size=%d" % bound])
    mark = s3.mark()
    # Every index loaded first, so that most entries are evicted before
    # their texts are read.
    walk(m.path, content=False)
    for tree in walk_concurrently([m.path, m.path]):
        assert_tree(tree, model)
    gets = s3.object_gets(mark)
    assert len(gets) > len(model.objects), \
        "nothing was evicted and fetched again (%d GETs)" % len(gets)
    # One entry over the bound at most: the one just written is kept.
    assert entry_bytes(m.cache_dir) <= bound + 16 * 1024
    assert "error" not in m.stderr()


def test_two_mounts_share_one_cache(s3, bucket, mounter):
    """Two daemons on one cache directory, read at the same time, cold and
    with a bound small enough that both evict."""
    _mirror, model = bucket
    cache = mounter.new_cache_dir()
    opts = ["cache_size=%d" % (256 * 1024)]
    m1 = mounter.mount("s3://" + BUCKET, opts=opts, cache_dir=cache)
    m2 = mounter.mount("s3://" + BUCKET, opts=opts, cache_dir=cache)
    for tree in walk_concurrently([m1.path, m2.path]):
        assert_tree(tree, model)
    for m in (m1, m2):
        assert "error" not in m.stderr()
    mounter.unmount(m1)
    mounter.unmount(m2)


def test_warm_remount_lists_each_org_once(s3, bucket, mounter):
    """After a remount with a warm cache, find over the whole tree downloads
    nothing and sends at most one LIST per org; offline, nothing at all."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    run(["find", m.path], timeout=120)
    mounter.unmount(m)
    want = sorted(os.path.join(m.path, os.fsdecode(p)) if p else m.path
                  for p in set(model.dirs) | set(model.files))

    for offline in (False, True):
        mark = s3.mark()
        m2 = mounter.mount("s3://" + BUCKET, cache_dir=m.cache_dir,
                           opts=["offline"] if offline else [])
        out = run(["find", m2.path], timeout=120).stdout.decode()
        got = sorted(p.replace(m2.path, m.path, 1) for p in out.splitlines())
        assert got == want
        reqs = s3.requests(mark)
        mounter.unmount(m2)
        if offline:
            assert reqs == [], "offline mount sent requests: %s" % reqs[:5]
            continue
        assert s3.object_gets(mark) == []
        per_org = {}
        for r in reqs:
            q = list_query(r[3])
            if r[2] == "list" and q.get("prefix") and \
                    "continuation-token" not in q:
                org = q["prefix"].split("/")[0]
                per_org[org] = per_org.get(org, 0) + 1
        assert all(n <= 1 for n in per_org.values()), per_org


def test_offline_and_unreachable(tmp_path):
    """The server stopped: -o offline serves what is cached (listings
    included) and answers EIO, quickly and with one log line per object,
    for a day never fetched; without -o offline the mount still comes up
    (a warning says S3 is unreachable) and serves the cache."""
    mirror = tmp_path / "mirror"
    generate(mirror, "--orgs", "1", "--days", "8", "--objects-per-day", "1",
             "--events-per-object", "3", "--seed", "5")
    model = refmodel.Model(str(mirror))
    srv = S3Server(tmp_path / "s3")
    mounter = Mounter(tmp_path / "mounts", srv)
    try:
        srv.make_bucket("gone")
        srv.sync(mirror, "s3://gone/")
        days = sorted(p for p in model.dirs if p.count(b"/") == 3)
        cached_day, far_day = days[0], days[-1]
        m = mounter.mount("s3://gone")
        run(["grep", "-r", "-c", "x", os.path.join(
            m.path, os.fsdecode(cached_day))], check=False)
        mounter.unmount(m)
        srv.stop()

        def check_cached(mnt):
            tree = probe("walk", os.path.join(mnt, os.fsdecode(cached_day)))
            for rel, e in tree.items():
                full = cached_day + (b"/" + rel if rel else b"")
                if full in model.files:
                    assert e.get("content") == model.files[full].content, \
                        full
            assert len(tree) > 3

        m = mounter.mount("s3://gone", cache_dir=m.cache_dir,
                          opts=["offline"])
        check_cached(m.path)
        far = os.path.join(m.path, os.fsdecode(far_day))
        for _ in range(2):
            for typ in os.listdir(far):
                start = time.monotonic()
                p = run(["ls", os.path.join(far, typ)], check=False)
                assert p.returncode != 0 and \
                    b"Input/output error" in p.stderr, p.stderr
                assert time.monotonic() - start < 3
        never = [k for k, o, t, ms in model.objects
                 if m.stderr().count(k) > 0]
        assert never, m.stderr()
        for key in never:
            lines = [ln for ln in m.stderr().splitlines() if key in ln]
            assert len(lines) == 1 and "never fetched" in lines[0], lines
        mounter.unmount(m)

        start = time.monotonic()
        m = mounter.mount("s3://gone", cache_dir=m.cache_dir,
                          opts=["retries=1", "timeout=2"])
        assert time.monotonic() - start < 10
        assert "cannot reach the bucket" in m.stderr()
        check_cached(m.path)
        mounter.unmount(m)
    finally:
        problems = mounter.cleanup()
        srv.stop()
    assert not problems, problems


def test_concurrent_cold_readers(s3, bucket, mounter):
    """Four readers walk a cold mount at once: all see the model, and each
    object is downloaded once."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    mark = s3.mark()
    for tree in walk_concurrently([m.path] * 4, timeout=180):
        assert_tree(tree, model)
    gets = s3.object_gets(mark)
    twice = sorted({u for u in gets if gets.count(u) > 1})
    assert not twice, "downloaded more than once: %s" % twice[:5]
    assert len(gets) == len(model.objects)


def test_offline_serves_the_cache(s3, bucket, mounter):
    """-o offline after a full read: the same tree, not one request."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    walk(m.path)
    mounter.unmount(m)
    mark = s3.mark()
    m2 = mounter.mount("s3://" + BUCKET, cache_dir=m.cache_dir,
                       opts=["offline"])
    assert_tree(walk(m2.path), model)
    assert s3.requests(mark) == []
