"""The cache under abuse, checked with `wivaudit cache`: a daemon killed
mid-download, entries damaged on purpose, stats of a running mount, clear
while mounted."""

import os
import re
import signal
import struct
import subprocess
import time
import zlib

import pytest

from conftest import assert_tree, cli_bin, compare_tree, run, walk

BUCKET = "cachecli"

# The entry format of src/cache/cache.c (version 2), to damage entries past
# their checksums: header, texts, index, key.
HDR = struct.Struct("<8sIIIIQQ32sIII")
assert HDR.size == 84
H_N_EVENTS = 16
H_CRC = 80


def cache_cmd(*args, status=0):
    """Runs `wivaudit cache ARGS`; checks the exit status; returns stdout."""
    p = run([cli_bin(), "cache"] + list(args), check=False, timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == status, "wivaudit cache %s: status %d\n%s%s" % (
        " ".join(args), p.returncode, out, p.stderr.decode(errors="replace"))
    return out


@pytest.fixture(scope="module")
def bucket(s3, small_corpus):
    mirror, model = small_corpus
    s3.seed(BUCKET, mirror)
    return mirror, model


def entries(cache_dir):
    """{path: parsed entry} of every cache entry file."""
    out = {}
    objects = os.path.join(cache_dir, "objects")
    for sub in sorted(os.listdir(objects)):
        for name in sorted(os.listdir(os.path.join(objects, sub))):
            if name.endswith(".wvc"):
                p = os.path.join(objects, sub, name)
                out[p] = parse_entry(p)
    return out


def parse_entry(path):
    with open(path, "rb") as f:
        b = f.read()
    (_magic, _ver, status, n, _icrc, data_len, index_len, _hash, key_len,
     _kcrc, _crc) = HDR.unpack_from(b)
    start = HDR.size + data_len + index_len
    return {"status": status, "n": n, "data_len": data_len,
            "index_len": index_len, "size": len(b),
            "key": b[start:start + key_len].decode()}


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        c = f.read(1)
        f.seek(off)
        f.write(bytes([c[0] ^ 0x10]))


def point_past_data(path):
    """First index record's offset moved past the texts, with every
    checksum recomputed: only the bounds check can catch it."""
    with open(path, "r+b") as f:
        b = bytearray(f.read())
        fields = list(HDR.unpack_from(b))
        data_len, index_len = fields[5], fields[6]
        rec = HDR.size + data_len
        struct.pack_into("<Q", b, rec, data_len)
        fields[4] = zlib.crc32(bytes(b[rec:rec + index_len]))
        HDR.pack_into(b, 0, *fields)
        struct.pack_into("<I", b, H_CRC, zlib.crc32(bytes(b[:H_CRC])))
        f.seek(0)
        f.write(b)


def damage(path, how):
    e = parse_entry(path)
    if how == "truncate":
        os.truncate(path, HDR.size + e["data_len"] // 2)
    elif how == "header":
        flip(path, H_N_EVENTS)
    elif how == "index":
        flip(path, HDR.size + e["data_len"] + 1)
    elif how == "text":
        flip(path, HDR.size + 2)
    elif how == "past":
        point_past_data(path)
    return e["key"]


def ok_entries(cache_dir):
    """Entries holding events (status OK, at least two events)."""
    return [p for p, e in entries(cache_dir).items()
            if e["status"] == 0 and e["n"] >= 2]


def type_dirs(model):
    return sorted(p for p in model.dirs if p.count(b"/") == 4)


# --- crash safety ---------------------------------------------------------------

def test_kill9_during_cold_grep(s3, bucket, mounter):
    """SIGKILL while a cold grep -r downloads: the remounted tree equals the
    model and the cache verifies clean (no partial entry was published)."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET, opts=["parallel=4"])
    mark = s3.mark()
    grep = subprocess.Popen(["grep", "-r", "-c", "no-such-text", m.path],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(s3.object_gets(mark)) < 20:
            assert time.monotonic() < deadline, "grep -r downloads nothing"
            assert grep.poll() is None, "grep -r finished before the kill"
            time.sleep(0.01)
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(10)
    finally:
        grep.kill()
        grep.wait(10)
        subprocess.run(["fusermount3", "-uz", m.path], capture_output=True,
                       timeout=10)
        m.unmounted = True
    assert len(s3.object_gets(mark)) < len(model.objects), \
        "the kill came after every download"
    out = cache_cmd("verify", "--cache-dir", m.cache_dir)
    assert " 0 damaged" in out
    m2 = mounter.mount("s3://" + BUCKET, cache_dir=m.cache_dir)
    assert_tree(walk(m2.path), model)
    mounter.unmount(m2)
    assert " 0 damaged" in cache_cmd("verify", "--cache-dir", m.cache_dir)


# --- damage -----------------------------------------------------------------------

def test_damage_while_mounted_is_refetched(s3, bucket, mounter):
    """Entries damaged under a running daemon (texts flipped, truncated):
    reads still return the right bytes, and the log names each key."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    # Indexes loaded, no text read yet.
    for rel in type_dirs(model):
        run(["ls", "-l", os.path.join(m.path, os.fsdecode(rel))])
    victims = ok_entries(m.cache_dir)[:8]
    keys = {}
    for i, p in enumerate(victims):
        keys[damage(p, "text" if i % 2 else "truncate")] = p
    mark = s3.mark()
    assert_tree(walk(m.path), model)
    refetched = {"/".join(u.split("?")[0].split("/")[2:])
                 for u in s3.object_gets(mark)}
    err = m.stderr()
    for key in keys:
        assert re.search(r"damaged entry for %s \(" % re.escape(key), err), \
            "no log line names %s:\n%s" % (key, err[-3000:])
        assert key in refetched, "%s was not fetched again" % key
    mounter.unmount(m)
    assert " 0 damaged" in cache_cmd("verify", "--cache-dir", m.cache_dir)


def test_damage_at_rest_verify_and_remount(s3, bucket, mounter):
    """Every kind of damage to entries and listings of an unmounted cache:
    verify names each file with its key, exits 1 and changes nothing; the
    next mount serves the model, logging each key; then verify is clean.
    --repair removes what verify reports."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    assert_tree(walk(m.path), model)
    mounter.unmount(m)
    assert " 0 damaged" in cache_cmd("verify", "--cache-dir", m.cache_dir)

    kinds = ["truncate", "header", "index", "text", "past"]
    victims = ok_entries(m.cache_dir)[:2 * len(kinds)]
    damaged = {}
    for i, p in enumerate(victims):
        damaged[p] = (kinds[i % len(kinds)], damage(p, kinds[i % len(kinds)]))
    listings = os.path.join(m.cache_dir, "listings")
    lst = sorted(os.listdir(listings))[0]
    flip(os.path.join(listings, lst), 30)

    out = cache_cmd("verify", "--cache-dir", m.cache_dir, status=1)
    for p, (kind, key) in damaged.items():
        rel = os.path.relpath(p, m.cache_dir)
        line = [ln for ln in out.splitlines() if ln.startswith(rel + ":")]
        assert line, "verify missed %s (%s):\n%s" % (rel, kind, out)
        if kind != "truncate":  # a truncated entry lost its key
            assert "(key %s)" % key in line[0], line[0]
    assert "listings/%s:" % lst in out
    assert " %d damaged" % (len(damaged) + 1) in out
    assert all(os.path.exists(p) for p in damaged), "verify removed files"

    mark = s3.mark()
    m2 = mounter.mount("s3://" + BUCKET, cache_dir=m.cache_dir)
    assert_tree(walk(m2.path), model)
    err = m2.stderr()
    for p, (kind, key) in damaged.items():
        assert "damaged entry for %s (" % key in err, \
            "%s damage to %s not logged:\n%s" % (kind, key, err[-3000:])
    assert len(s3.object_gets(mark)) == len(damaged)
    mounter.unmount(m2)
    assert " 0 damaged" in cache_cmd("verify", "--cache-dir", m.cache_dir)

    p = ok_entries(m.cache_dir)[0]
    damage(p, "index")
    out = cache_cmd("verify", "--repair", "--cache-dir", m.cache_dir,
                    status=1)
    assert "removed" in out and not os.path.exists(p)
    assert " 0 damaged" in cache_cmd("verify", "--cache-dir", m.cache_dir)


# --- stats and clear --------------------------------------------------------------

def stats(cache_dir):
    return cache_cmd("stats", "--cache-dir", cache_dir)


def count(out, what):
    m = re.search(r"^%s: (\d+)" % what, out, re.M)
    assert m, "no '%s' in:\n%s" % (what, out)
    return int(m.group(1))


def test_stats_of_a_running_mount_and_clear(s3, bucket, mounter):
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    walk(m.path, content=False)
    mounter.unmount(m)
    out = stats(m.cache_dir)
    assert count(out, "entries") == len(model.objects)
    assert count(out, "listings") == 1 + len(model.listdir(b""))
    assert "mounts: none running" in out
    assert not os.listdir(os.path.join(m.cache_dir, "mounts")), \
        "a clean unmount left its stats file"

    # A stale stats file (its daemon is gone) is dropped.
    dead = 4194000
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
    stale = os.path.join(m.cache_dir, "mounts", "%d.stats" % dead)
    with open(stale, "w") as f:
        f.write("wivaudit-mount-stats 1\npid %d\nmountpoint /x\nsource y\n"
                % dead)

    m2 = mounter.mount("s3://" + BUCKET, cache_dir=m.cache_dir)
    out = stats(m.cache_dir)
    assert "mount %s (pid %d" % (m2.path, m2.proc.pid) in out, out
    assert "hit ratio -" in out
    assert not os.path.exists(stale)
    assert "bound: 1.0 GiB" in out

    # Counters are published at most once a second, on the next change:
    # the second walk comes once the stats file's last publication is older.
    orgs = model.listdir(b"")
    walk(os.path.join(m2.path, os.fsdecode(orgs[0])), content=False)
    published = os.path.join(m.cache_dir, "mounts", "%d.stats" % m2.proc.pid)
    deadline = time.monotonic() + 10
    while time.time() - os.stat(published).st_mtime <= 1.1:
        assert time.monotonic() < deadline, "stats file keeps changing"
        time.sleep(0.05)
    walk(os.path.join(m2.path, os.fsdecode(orgs[1])), content=False)
    out = stats(m.cache_dir)
    first_org = sum(1 for o in model.objects if o[1].encode() == orgs[0])
    hits = int(re.search(r"hits (\d+), misses (\d+)", out).group(1))
    assert hits > first_org, out
    assert "misses 0, hit ratio 100.0%" in out, out

    out = cache_cmd("clear", "--cache-dir", m.cache_dir)
    assert re.search(r"removed %d entries" % len(model.objects), out), out
    out = stats(m.cache_dir)
    assert count(out, "entries") == 0 and count(out, "listings") == 0
    # The daemon goes on serving: what it needs is fetched again.
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    assert not compare_tree(walk(m2.path), model)
    mounter.unmount(m2)
    assert " 0 damaged" in cache_cmd("verify", "--cache-dir", m.cache_dir)


def test_cli_usage(tmp_path):
    p = run([cli_bin()], check=False)
    assert p.returncode == 2 and b"cache" in p.stderr
    assert run([cli_bin(), "--help"]).stdout.count(b"cache") >= 1
    p = run([cli_bin(), "cache", "frobnicate", "--cache-dir", str(tmp_path)],
            check=False)
    assert p.returncode == 2 and b"unknown action" in p.stderr
    p = run([cli_bin(), "cache", "stats", "--cache-dir",
             str(tmp_path / "none")], check=False)
    assert p.returncode == 2 and b"no cache at" in p.stderr
    # Default directory: the same rule as mount.wivaudit's.
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    os.makedirs(tmp_path / "wivaudit", mode=0o700)
    p = run([cli_bin(), "cache", "stats"], env=env, check=False)
    if os.geteuid() != 0:
        assert b"cache directory: %s/wivaudit" % os.fsencode(tmp_path) \
            in p.stdout
    else:
        assert b"/var/cache/wivaudit" in p.stdout + p.stderr
