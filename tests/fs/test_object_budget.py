"""What one object may cost: the ceilings on events and decompressed bytes.

Whoever writes the bucket chooses object sizes. An object over a ceiling
(-o max_object_events=, -o max_object_bytes=) is skipped like a bad
object: one log line naming the limit and the key, counted in the mount's
stats, its events gone and the rest of the tree as the reference model
says. The verdict is not cached: a mount with higher ceilings reads it.

- Over the events ceiling: 50 tiny events under max_object_events=20.
- A gzip bomb: a valid one-event array padded with 2 GiB of whitespace,
  2 MB of gzip, stopped by the default byte ceiling (256 MiB).
- Memory: objects of 1 and 3 million tiny events, each listed in a fresh
  mount with the default ceilings, leave the daemon with the same peak
  (VmHWM), under a fixed bound.
"""

import datetime
import gzip
import os
import re
import time
import zlib

import pytest

from conftest import assert_tree, generate, run, walk
import refmodel
from test_bigobject import is_asan, peak_kb
from test_cache_cli import cache_cmd

BUCKET = "budget"
DAY = datetime.date(2026, 2, 10)
EVENTS_LIMIT = 20
MANY_EVENTS = 50
DEFAULT_MAX_BYTES = 256 << 20
BOMB_SPACES = 2 << 30
MEM_ORG = "b0d9e700-0000-4000-8000-00000000000%d"
# Peak memory of a daemon that met a multi-million-event object: the
# splitter stops at the default ceiling (200,000 events), so the peak is
# the same for 1 and 3 million events.
MAX_HWM_KB = 128 * 1024
MAX_HWM_SPREAD_KB = 8 * 1024


class Skipping(refmodel.Model):
    """The reference model of the bucket minus the given objects, as if
    their bodies were unreadable: their key still makes its directories."""

    def __init__(self, mirror, skipped):
        self.skipped = set(skipped)
        super().__init__(mirror)

    def _read_body(self, key):
        if key in self.skipped:
            raise refmodel.BadBody("over a ceiling")
        return super()._read_body(key)


def gzip_file(path, chunks, level=6):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with gzip.GzipFile(path, "wb", compresslevel=level, mtime=0) as f:
        for c in chunks:
            f.write(c)


def tiny_events(n, first=0):
    """`[{"id":"t0"},{"id":"t1"},...]` in chunks."""
    yield b"["
    step = 100000
    for start in range(first, first + n, step):
        end = min(start + step, first + n)
        yield b",".join(b'{"id":"t%d"}' % i for i in range(start, end)) + \
            (b"," if end < first + n else b"")
    yield b"]"


def write_bomb(path, event, spaces):
    """A valid gzip of `[event` + spaces + `]`, built without compressing
    every space: a 1 MiB block of spaces compressed once after a full flush
    deflates to the same bytes each time."""
    block = b" " * (1 << 20)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = z.compress(b"[" + event) + z.flush(zlib.Z_FULL_FLUSH)
    one = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    assert z.compress(block) + z.flush(zlib.Z_FULL_FLUSH) == one
    tail = z.compress(b"]") + z.flush()
    crc = zlib.crc32(b"[" + event)
    n = spaces // len(block)
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(b"]", crc)
    size = len(event) + 2 + n * len(block)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head)
        for _ in range(n):
            f.write(one)
        f.write(tail + crc.to_bytes(4, "little") +
                (size & 0xFFFFFFFF).to_bytes(4, "little"))


@pytest.fixture(scope="module")
def bucket(s3, tmp_path_factory):
    mirror = tmp_path_factory.mktemp("budget") / "mirror"
    generate(mirror, "--orgs", "2", "--days", "3", "--objects-per-day", "1",
             "--events-per-object", "3", "--seed", "43",
             "--end-date", DAY.isoformat())
    model = refmodel.Model(str(mirror))
    # Beside an existing object, so that no directory depends on them.
    key, org, typ, ms = model.objects[0]
    many_key = "%s/%s-audit-logs-%d.json.gz" % (org, typ, ms + 1)
    gzip_file(os.path.join(mirror, many_key), tiny_events(MANY_EVENTS))
    bomb_key = "%s/%s-audit-logs-%d.json.gz" % (org, typ, ms + 2)
    write_bomb(os.path.join(mirror, bomb_key),
               b'{"id":"padded","created_at":%d}' % (ms // 1000),
               BOMB_SPACES)
    print("gzip bomb: %d bytes of gzip, %d decompressed" % (
        os.path.getsize(os.path.join(mirror, bomb_key)), BOMB_SPACES))
    s3.seed(BUCKET, mirror)
    day = refmodel.utc_day(ms // 1000)
    typedir = b"/".join([org.encode()] + list(day) + [typ.encode()])
    return {"mirror": str(mirror), "many_key": many_key,
            "bomb_key": bomb_key, "beside": (org, typ, ms),
            "typedir": os.fsdecode(typedir)}


def lines_naming(log, key):
    return [ln for ln in log.splitlines() if key in ln]


def skipped_in_stats(cache_dir):
    out = cache_cmd("stats", "--cache-dir", cache_dir)
    m = re.search(r"objects skipped over a ceiling (\d+)", out)
    assert m, out
    return int(m.group(1))


def test_objects_over_a_ceiling_are_skipped(s3, bucket, mounter):
    mirror, many, bomb = bucket["mirror"], bucket["many_key"], \
        bucket["bomb_key"]
    m = mounter.mount("s3://" + BUCKET,
                      ["max_object_events=%d" % EVENTS_LIMIT, "list_ttl=1"])
    tree = walk(m.path)
    assert_tree(tree, Skipping(mirror, {many, bomb}))
    # Counted, and published at once.
    assert skipped_in_stats(m.cache_dir) == 2

    # Once per mount: a new delivery beside them rebuilds their directory
    # without downloading them again.
    since = s3.mark()
    org, typ, ms = bucket["beside"]
    new_key = "%s/%s-audit-logs-%d.json.gz" % (org, typ, ms + 3)
    gzip_file(os.path.join(mirror, new_key),
              [b'[{"id":"new-1"},{"id":"new-2"}]'])
    s3.aws("s3", "cp", os.path.join(mirror, new_key),
           "s3://%s/%s" % (BUCKET, new_key))
    typedir = os.path.join(m.path, bucket["typedir"])
    deadline = time.monotonic() + 60
    while "new-1.json" not in os.listdir(typedir):
        assert time.monotonic() < deadline, "the new delivery never showed"
        time.sleep(0.2)
    gets = s3.object_gets(since)
    assert any(new_key in g for g in gets), gets
    assert not [g for g in gets if many in g or bomb in g], gets
    mounter.unmount(m)

    log = m.stderr()
    named = lines_naming(log, many)
    assert len(named) == 1, log[-3000:]
    assert "more than %d events" % EVENTS_LIMIT in named[0], named[0]
    assert "max_object_events" in named[0], named[0]
    named = lines_naming(log, bomb)
    assert len(named) == 1, log[-3000:]
    assert "more than %d bytes decompressed" % DEFAULT_MAX_BYTES \
        in named[0], named[0]
    assert "max_object_bytes" in named[0], named[0]
    assert "2 skipped over a ceiling" in log, log[-3000:]
    assert not os.listdir(os.path.join(m.cache_dir, "mounts"))

    # Not a cached verdict: with a higher ceiling and the same cache, the
    # object is read.
    m = mounter.mount("s3://" + BUCKET, ["max_object_events=%d" % MANY_EVENTS],
                      cache_dir=m.cache_dir)
    assert_tree(walk(m.path), Skipping(mirror, {bomb}))
    mounter.unmount(m)
    assert not lines_naming(m.stderr(), many), m.stderr()[-3000:]
    assert len(lines_naming(m.stderr(), bomb)) == 1, m.stderr()[-3000:]


def mem_object(s3, base, i, n):
    """An object of n tiny events alone in org MEM_ORG % i; returns the
    path of its type directory."""
    org = MEM_ORG % i
    ms = int(datetime.datetime(DAY.year, DAY.month, DAY.day, 12,
                               tzinfo=datetime.timezone.utc)
             .timestamp()) * 1000
    key = "%s/user-audit-logs-%d.json.gz" % (org, ms)
    gzip_file(os.path.join(base, key), tiny_events(n), level=1)
    s3.aws("s3", "cp", os.path.join(base, key),
           "s3://%s/%s" % (BUCKET, key))
    return key, "%s/%04d/%02d/%02d/user" % (org, DAY.year, DAY.month,
                                            DAY.day)


def test_memory_does_not_grow_with_events(s3, bucket, mounter,
                                          tmp_path):
    peaks = {}
    for i, n in enumerate((1000000, 3000000)):
        key, path = mem_object(s3, str(tmp_path / "mem"), i, n)
        m = mounter.mount("s3://" + BUCKET)
        assert os.listdir(os.path.join(m.path, path)) == []
        peaks[n] = peak_kb(m.proc.pid)
        rss = run(["ps", "-o", "rss=,cputime=", "-p", str(m.proc.pid)])
        print("%d tiny events: VmHWM %d kB; rss, cpu: %s" % (
            n, peaks[n], rss.stdout.decode().strip()))
        mounter.unmount(m)
        named = lines_naming(m.stderr(), key)
        assert len(named) == 1 and "more than 200000 events" in named[0], \
            m.stderr()[-3000:]
    assert abs(peaks[3000000] - peaks[1000000]) < MAX_HWM_SPREAD_KB, peaks
    if not is_asan(m.argv[0]):  # ASan's quarantine holds freed memory
        assert max(peaks.values()) < MAX_HWM_KB, peaks
