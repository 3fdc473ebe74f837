"""Absurdly large objects.

"Absurdly large" is about one event, not one object: the splitter streams
an object (gunzip, split, write to the cache) holding one event at a time,
and refuses an event over 16 MiB (WIV_MAX_EVENT_BYTES in src/tree/fetch.c).

- An object of 2,000 events totalling 200 MB decompressed simply works:
  every event is served whole and the daemon's peak memory (VmHWM) stays
  far below the object's size.
- An object whose single event is 200 MB is refused with one log line
  naming its key; the other object of the same directory, and the rest of
  the tree, are served as usual.

Both are gzip of very repetitive text, so they are a few hundred KB on the
wire and generated here in a second or two.
"""

import datetime
import gzip
import hashlib
import json
import os
import re
import shutil

import pytest

from conftest import assert_tree, generate, run, walk
import refmodel

BUCKET = "bigobject"
DAY = datetime.date(2026, 1, 20)
MANY_ORG = "b16b16b1-0000-4000-8000-000000000001"
HUGE_ORG = "b16b16b1-0000-4000-8000-000000000002"
MANY_EVENTS = 2000
EVENT_PAD = 100 * 1000          # bytes of padding per event: 200 MB in all
HUGE_BYTES = 200 * 1000 * 1000  # the one event of the refused object
MAX_EVENT = 16 * 1024 * 1024
# Peak memory of the daemon after serving the 200 MB object: well above
# its ordinary footprint plus one event, far below the object.
MAX_HWM_KB = 80 * 1024


def day_ms(hour):
    t = datetime.datetime(DAY.year, DAY.month, DAY.day, hour,
                          tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1000


def event(org, key_ms, n, pad):
    return {"id": "big-%06d" % n, "org_id": org, "org_name": "Big Corp",
            "event_type": "UserLoggedIn",
            "event_data": {"n": n, "blob": ("%06d." % n) * (pad // 7)},
            "created_at": key_ms // 1000 - 60 - n, "caused_by_id": None,
            "caused_by_type": "system", "caused_by_source_ip": None,
            "relevant_user_email": None}


def write_object(mirror, org, key_ms, chunks):
    """Streams chunks of JSON text into {org}/user-audit-logs-{ms}.json.gz;
    returns the key."""
    key = "%s/user-audit-logs-%d.json.gz" % (org, key_ms)
    path = os.path.join(mirror, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as f:
        for c in chunks:
            f.write(c.encode())
    return key


def array(events):
    yield "["
    for i, ev in enumerate(events):
        yield ("," if i else "") + json.dumps(ev, separators=(",", ":"))
    yield "]"


def pretty(ev):
    """The event as `jq .` lays it out (flat ASCII values only)."""
    return (json.dumps(ev, indent=2) + "\n").encode()


def huge_event(org, key_ms):
    head = json.dumps(event(org, key_ms, 0, 0), separators=(",", ":"))
    head = head[:head.index('"blob":"') + len('"blob":"')]
    yield "[" + head
    chunk = "0123456789abcdef" * 65536  # 1 MiB
    for _ in range(HUGE_BYTES // len(chunk)):
        yield chunk
    yield '"}}]'


@pytest.fixture(scope="module")
def bucket(s3, tmp_path_factory):
    base = tmp_path_factory.mktemp("bigobject")
    small = base / "small"
    generate(small, "--orgs", "2", "--days", "3", "--objects-per-day", "1",
             "--events-per-object", "3", "--seed", "41",
             "--end-date", DAY.isoformat())
    model = refmodel.Model(str(small))

    big = str(base / "big")
    many_ms = day_ms(12)
    many = [event(MANY_ORG, many_ms, n, EVENT_PAD)
            for n in range(MANY_EVENTS)]
    many_key = write_object(big, MANY_ORG, many_ms, array(many))
    huge_key = write_object(big, HUGE_ORG, day_ms(12),
                            huge_event(HUGE_ORG, day_ms(12)))
    # A neighbour of the refused object, in the same directory.
    near_ms = day_ms(13)
    near = [event(HUGE_ORG, near_ms, n, 200) for n in range(1, 4)]
    write_object(big, HUGE_ORG, near_ms, array(near))

    s3.seed(BUCKET, small)
    s3.sync(big, "s3://%s/" % BUCKET)
    return {"model": model, "many": many, "many_key": many_key,
            "huge_key": huge_key, "near": near}


def typedir(org):
    return os.path.join(org, "%04d" % DAY.year, "%02d" % DAY.month,
                        "%02d" % DAY.day, "user")


def is_asan(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def peak_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
                   .group(1))


def test_big_objects(s3, bucket, mounter):
    model = bucket["model"]
    m = mounter.mount("s3://" + BUCKET)
    # Stat everything: this downloads and splits every object.
    full = walk(m.path, content=False, timeout=300)

    # The 200 MB object: every event, exact sizes and times.
    many_dir = typedir(MANY_ORG).encode()
    want = {("big-%06d.json" % ev["event_data"]["n"]).encode(): ev
            for ev in bucket["many"]}
    assert sorted(full[many_dir]["children"]) == sorted(want)
    for name, ev in want.items():
        e = full[many_dir + b"/" + name]
        assert (e["size"], e["mtime"]) == (len(pretty(ev)),
                                           ev["created_at"]), name
    # ... and their bytes, read through the mount in name order.
    p = run(["sh", "-c", 'cd "$1" && printf "%s\\0" * | xargs -0 cat | '
             'sha256sum', "sh", os.path.join(m.path, os.fsdecode(many_dir))],
            timeout=300)
    h = hashlib.sha256()
    for name in sorted(want):
        h.update(pretty(want[name]))
    assert p.stdout.split()[0].decode() == h.hexdigest()
    hwm = peak_kb(m.proc.pid)
    print("daemon VmHWM after the 200 MB object: %d kB" % hwm)
    if not is_asan(m.argv[0]):  # ASan's quarantine holds freed memory
        assert hwm < MAX_HWM_KB, "the daemon peaked at %d kB" % hwm

    # The 200 MB event: refused, its neighbour served.
    huge_dir = typedir(HUGE_ORG).encode()
    near = {("big-%06d.json" % ev["event_data"]["n"]).encode(): ev
            for ev in bucket["near"]}
    assert sorted(full[huge_dir]["children"]) == sorted(near)
    for name, ev in near.items():
        with open(os.path.join(m.path, os.fsdecode(huge_dir),
                               os.fsdecode(name)), "rb") as f:
            assert f.read() == pretty(ev)

    # The rest of the tree is the small corpus's, content and all.
    big = {MANY_ORG.encode(), HUGE_ORG.encode()}
    tree = {p: e for p, e in full.items() if p.split(b"/")[0] not in big}
    tree[b""]["children"] = [c for c in tree[b""]["children"]
                             if c not in big]
    tree[b""]["nlink"] -= len(big)
    for org in model.listdir(b""):
        for rel, e in walk(os.path.join(m.path, os.fsdecode(org))).items():
            tree[org + b"/" + rel if rel else org] = e
    assert_tree(tree, model)

    mounter.unmount(m)
    shutil.rmtree(m.cache_dir)  # 200 MB that pytest would keep around
    log = m.stderr()
    named = [ln for ln in log.splitlines() if bucket["huge_key"] in ln]
    assert len(named) == 1, "want one line naming %s:\n%s" % (
        bucket["huge_key"], log[-3000:])
    assert "larger than %d bytes" % MAX_EVENT in named[0], named[0]
    assert bucket["many_key"] not in log, log[-3000:]
