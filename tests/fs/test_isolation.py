"""One object costs only itself. An object that cannot be read as listed --
archived (GLACIER / DEEP_ARCHIVE in the listing), denied alone (403
AccessDenied), deleted (404) or replaced (412) after it was listed --
removes its own events and nothing else: every readable event of the same
days is served exactly (checked against the reference model), the
directories list without error, and the type directories within W of it
name it in user.wivaudit.missing, the mount stats count it, and the log
names it once with the fix. A transient failure stays EIO and is retried on
the next access. Archived listings come from tests/s3/faultproxy.py's
storage_class rule, deletions and replacements from the aws CLI."""

import gzip
import json
import os
import re
import shutil
import sys
import time

import pytest

import refmodel
from conftest import SRC, assert_tree, cli_bin, generate, run, walk

sys.path.insert(0, os.path.join(SRC, "tests", "s3"))
from faultproxy import FaultProxy  # noqa: E402

XATTR = "user.wivaudit.missing"
STEP_TIMEOUT = 60
WAIT_S = 30  # bound on waiting for a listing to be refreshed


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("iso") / "mirror"
    generate(d, "--orgs", "2", "--days", "4", "--objects-per-day", "2",
             "--events-per-object", "5", "--seed", "31")
    return d


@pytest.fixture(scope="module")
def proxy(s3, tmp_path_factory):
    fp = FaultProxy(s3.port, str(tmp_path_factory.mktemp("fp") / "log"))
    yield fp
    fp.stop()


@pytest.fixture
def fp(proxy):
    proxy.clear()
    yield proxy
    proxy.clear()


_buckets = [0]


def seeded(s3, mirror):
    """A new bucket holding mirror; returns its name."""
    _buckets[0] += 1
    name = "isolation%d" % _buckets[0]
    s3.seed(name, mirror)
    return name


def mount(mounter, fp, bucket, extra=()):
    opts = ["endpoint=" + fp.endpoint, "retries=1", "timeout=2"] + \
        list(extra)
    return mounter.mount("s3://" + bucket, opts=opts, endpoint=False)


def type_dirs(model):
    return sorted(p for p in model.dirs if p.count(b"/") == 4)


def missing_attr(mnt, dpath):
    """{key: (reason, detail)} of a directory's user.wivaudit.missing, or
    None when listxattr does not name it."""
    full = os.path.join(os.fsencode(mnt), dpath)
    if XATTR not in os.listxattr(full):
        return None
    out = {}
    for line in os.getxattr(full, XATTR).decode().splitlines():
        key, reason, detail = line.split("\t")
        assert key not in out, "key named twice: " + line
        out[key] = (reason, detail)
    return out


def check_missing(mnt, model, keys, want_reason):
    """Every type directory names exactly the keys within W of it."""
    want = model.missing_in(keys)
    assert want, "the chosen keys fall in no directory"
    for d in type_dirs(model):
        got = missing_attr(mnt, d)
        if d not in want:
            assert got is None, "%s names %s" % (d, got)
            continue
        assert got is not None, "%s does not name %s" % (d, want[d])
        assert set(got) == want[d], d
        for key, (reason, _detail) in got.items():
            assert reason == want_reason(key), (d, key, reason)
    return want


def stats_missing(cache_dir):
    p = run([cli_bin(), "cache", "stats", "--cache-dir", cache_dir])
    m = re.search(r"objects not shown (\d+)", p.stdout.decode())
    return int(m.group(1)) if m else 0


def log_lines(m, key):
    return [ln for ln in m.stderr().splitlines()
            if key in ln and "not shown" in ln]


def pick(model, n, org_index=0):
    """n keys of one org, spread over its days."""
    orgs = sorted({o for _k, o, _t, _ms in model.objects})
    objs = [o for o in model.objects if o[1] == orgs[org_index]]
    step = max(1, len(objs) // n)
    return [objs[i * step + step // 2][0] for i in range(n)]


# --- archived --------------------------------------------------------------

def test_archived_objects_cost_only_themselves(s3, corpus, fp, mounter):
    bucket = seeded(s3, corpus)
    full = refmodel.Model(str(corpus))
    glacier, deep, instant = pick(full, 3)
    classes = {glacier: "GLACIER", deep: "DEEP_ARCHIVE",
               instant: "GLACIER_IR"}
    since = fp.mark()
    fp.add(fault="storage_class", op="list", classes=classes)
    # Were a GET sent for them, S3 would refuse it just so.
    for key in (glacier, deep):
        fp.add(fault="archived", op="get", key=key)
    m = mount(mounter, fp, bucket, extra=["list_ttl=2"])
    archived = {glacier, deep}
    model = refmodel.Model(str(corpus), unreadable=archived)
    assert model.event_count() < full.event_count()

    assert_tree(walk(m.path), model)
    check_missing(m.path, model, archived, lambda k: "archived")
    for key in archived:
        d = next(iter(d for d, ks in model.missing_in({key}).items()))
        detail = missing_attr(m.path, d)[key][1]
        assert "storage class %s" % classes[key] in detail, detail
        cmd = ("aws s3api restore-object --bucket %s --key %s "
               "--restore-request Days=7" % (bucket, key))
        assert cmd in detail, detail
        lines = log_lines(m, key)
        assert len(lines) == 1, m.stderr()
        assert cmd in lines[0] and classes[key] in lines[0], lines[0]
    assert instant not in m.stderr()
    gets = [e["key"] for e in fp.log(since) if e["op"] == "get"]
    assert not archived & set(gets), "archived objects were fetched"
    assert instant in gets
    assert stats_missing(m.cache_dir) == 2

    # Restored: the listing no longer says GLACIER. Within list_ttl the
    # directories show their events and name nothing.
    fp.clear()
    d = next(iter(model.missing_in({glacier})))
    full_dir = os.path.join(os.fsencode(m.path), d)
    want = sorted(full.dirs[d])
    deadline = time.monotonic() + WAIT_S
    while sorted(os.listdir(full_dir)) != want:
        assert time.monotonic() < deadline, "restore not seen"
        time.sleep(0.5)
    assert_tree(walk(m.path), full)
    for d in type_dirs(full):
        assert missing_attr(m.path, d) is None, d


# --- denied ----------------------------------------------------------------

def test_one_denied_key_costs_only_itself(s3, corpus, fp, mounter):
    bucket = seeded(s3, corpus)
    full = refmodel.Model(str(corpus))
    (denied,) = pick(full, 1, org_index=1)
    fp.add(fault="forbidden", op="get", key=denied)
    m = mount(mounter, fp, bucket)
    model = refmodel.Model(str(corpus), unreadable={denied})
    # A 403 before any object was read may be the policy's for the whole
    # bucket; once others read, it is this key's alone.
    other = next(d for d in type_dirs(model)
                 if d not in model.missing_in({denied}))
    os.listdir(os.path.join(os.fsencode(m.path), other))

    tree = walk(m.path)
    assert_tree(tree, model)
    check_missing(m.path, model, {denied}, lambda k: "denied")
    assert len(log_lines(m, denied)) == 1, m.stderr()
    assert stats_missing(m.cache_dir) == 1


def test_denied_everywhere_is_permission_denied(s3, corpus, fp, mounter):
    """No object readable at all: the policy, not one key. EACCES, and
    nothing is named missing."""
    bucket = seeded(s3, corpus)
    fp.add(fault="forbidden", op="get")
    m = mount(mounter, fp, bucket)
    full = refmodel.Model(str(corpus))
    d = os.path.join(os.fsencode(m.path), type_dirs(full)[0])
    with pytest.raises(PermissionError):
        os.listdir(d)
    assert stats_missing(m.cache_dir) == 0


# --- transient -------------------------------------------------------------

def test_transient_failure_is_eio_and_retried(s3, corpus, fp, mounter):
    bucket = seeded(s3, corpus)
    full = refmodel.Model(str(corpus))
    (key,) = pick(full, 1)
    since = fp.mark()
    fp.add(fault="internal", op="get", key=key)
    m = mount(mounter, fp, bucket)
    d = next(iter(full.missing_in({key})))
    path = os.path.join(os.fsencode(m.path), d)
    with pytest.raises(OSError) as e:
        os.listdir(path)
    assert e.value.errno == 5, e.value  # EIO
    tries = len(fp.faults(since, key=key))
    # The next access asks S3 again rather than repeating the error.
    with pytest.raises(OSError):
        os.listdir(path)
    assert len(fp.faults(since, key=key)) > tries
    fp.clear()
    assert sorted(os.listdir(path)) == sorted(full.dirs[d])
    assert missing_attr(m.path, d) is None
    assert not log_lines(m, key)
    assert stats_missing(m.cache_dir) == 0


# --- the bucket changes under the mount --------------------------------------

def rewrite(mirror, key):
    """Replaces key's body in the mirror with other events."""
    p = os.path.join(mirror, key)
    with gzip.open(p, "rb") as f:
        events = json.loads(f.read())
    for ev in events:
        ev["event_type"] = "Replaced" + str(ev.get("event_type"))
    events.append(dict(events[0], id=str(events[0].get("id")) + "-new"))
    with gzip.open(p, "wb") as f:
        f.write(json.dumps(events).encode())


def test_deleted_and_replaced_objects_relist_at_once(s3, corpus, fp,
                                                     mounter, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(corpus, mirror)
    bucket = seeded(s3, mirror)
    before = refmodel.Model(str(mirror))
    gone, replaced = pick(before, 2)
    # A listing trusted for an hour: only a relisting on the spot can
    # show the change.
    m = mount(mounter, fp, bucket, extra=["list_ttl=3600"])
    for org in before.listdir():
        os.listdir(os.path.join(m.path, org.decode()))

    s3.aws("s3", "rm", "s3://%s/%s" % (bucket, gone))
    os.unlink(mirror / gone)
    rewrite(str(mirror), replaced)
    s3.aws("s3", "cp", str(mirror / replaced),
           "s3://%s/%s" % (bucket, replaced))
    after = refmodel.Model(str(mirror))
    since = fp.mark()

    assert_tree(walk(m.path), after)
    for d in type_dirs(after):
        assert missing_attr(m.path, d) is None, d
    log = fp.log(since)
    statuses = {(e["key"], e["status"]) for e in log if e["op"] == "get"}
    # The first of the two found relists the org, which drops the other
    # (a 404 then only if it came first).
    assert (replaced, 412) in statuses or (gone, 404) in statuses, statuses
    assert (replaced, 200) in statuses and (gone, 200) not in statuses
    assert any(e["op"] == "list" for e in log)


def test_open_file_reads_what_it_opened(s3, corpus, fp, mounter, tmp_path):
    """An fd opened before its object was deleted or replaced keeps reading
    the bytes it opened, from their cache entry, after the org relisted;
    a new open of the replaced event's name reads the new version."""
    mirror = tmp_path / "mirror"
    shutil.copytree(corpus, mirror)
    bucket = seeded(s3, mirror)
    model = refmodel.Model(str(mirror))
    gone, replaced, trigger = pick(model, 3)
    held = {key: next((p, f) for p, f in sorted(model.files.items())
                      if f.key == key)
            for key in (gone, replaced)}
    m = mount(mounter, fp, bucket, extra=["list_ttl=3600"])
    mnt = os.fsencode(m.path)
    fds = {key: os.open(os.path.join(mnt, p), os.O_RDONLY)
           for key, (p, _f) in held.items()}
    try:
        for key, fd in fds.items():
            assert os.pread(fd, 1 << 20, 0) == held[key][1].content
        for key in (gone, trigger):
            s3.aws("s3", "rm", "s3://%s/%s" % (bucket, key))
            os.unlink(mirror / key)
        rewrite(str(mirror), replaced)
        s3.aws("s3", "cp", str(mirror / replaced),
               "s3://%s/%s" % (bucket, replaced))
        after = refmodel.Model(str(mirror))
        since = fp.mark()

        # The trigger's 404 relists the org: the held objects leave it,
        # or come back as their new version.
        assert_tree(walk(m.path), after)
        assert (trigger, 404) in {(e["key"], e["status"])
                                  for e in fp.log(since) if e["op"] == "get"}
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        for key, fd in fds.items():
            old = held[key][1].content
            assert os.fstat(fd).st_size == len(old)
            assert os.pread(fd, 1 << 20, 0) == old
            assert os.pread(fd, 1 << 20, 1) == old[1:]

        path, entry = held[replaced]
        new = after.files[path].content
        assert new != entry.content
        with open(os.path.join(mnt, path), "rb") as f:
            assert f.read() == new
            assert os.fstat(f.fileno()).st_ino != \
                os.fstat(fds[replaced]).st_ino
        # The kernel is told to forget the deleted name by the daemon's
        # notify thread: wait for it.
        gone_path = os.path.join(mnt, held[gone][0])
        deadline = time.monotonic() + 15
        while os.path.exists(gone_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(gone_path)
        assert os.pread(fds[replaced], 1 << 20, 0) == entry.content
    finally:
        for fd in fds.values():
            os.close(fd)


# --- doctor ------------------------------------------------------------------

def test_doctor_warns_about_archived_objects(s3, corpus, fp, mounter):
    bucket = seeded(s3, corpus)
    full = refmodel.Model(str(corpus))
    archived = pick(full, 3)
    fp.add(fault="storage_class", op="list",
           classes={k: "DEEP_ARCHIVE" for k in archived})
    env = mounter.env()
    p = run([cli_bin(), "doctor", "s3://" + bucket, "-o",
             "endpoint=" + fp.endpoint], env=env, check=False,
            timeout=STEP_TIMEOUT)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    line = next(ln for ln in out.splitlines() if "archived objects" in ln)
    assert line.startswith("warn"), line
    days = sorted({b"-".join(refmodel.utc_day(ms // 1000)).decode()
                   for k, _o, _t, ms in full.objects if k in archived})
    assert "3 deliveries" in line and ("%d day" % len(days)) in line, line
    for day in days:
        assert day in line, line
    assert "aws s3api restore-object --bucket %s --key " % bucket in line
    assert "--restore-request Days=7" in line
    assert "FAIL" not in out, out


# --- bad bodies, named the same way --------------------------------------------

def test_bad_objects_are_named_too(s3, messy_corpus, mounter):
    mirror, model = messy_corpus
    assert model.bad_keys, "the messy corpus has no bad object"
    bucket = seeded(s3, mirror)
    m = mounter.mount("s3://" + bucket)
    assert_tree(walk(m.path), model)
    check_missing(m.path, model, set(model.bad_keys), lambda k: "bad")
    assert stats_missing(m.cache_dir) == len(model.bad_keys)
