"""The cache directory against the host's other users and a full disk.

The cache directory is opened without following a symlink another user could
have placed, and everything below it is reached from its descriptor: a
symlink planted in it is named and never followed, and swapping the directory
for a symlink while mounted redirects nothing. The default directory is
created for a fresh user; a looser mode of our own is tightened. cache_size
bounds what is written, and a full filesystem evicts instead of failing
reads: what cannot be kept is served from memory. Temp files a killed daemon
left are counted and removed.
"""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import refmodel
from conftest import (ACCESS_KEY, SECRET, assert_tree, cli_bin, daemon_bin,
                      generate, is_mounted, run, walk)

BUCKET = "cachesafety"
BIG_BUCKET = "cachesafetybig"
OTHER_UID = 65533
MIB = 1 << 20


def cache_cmd(*args, status=0):
    p = run([cli_bin(), "cache"] + list(args), check=False, timeout=60)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(
        errors="replace")
    assert p.returncode == status, "wivaudit cache %s: status %d\n%s" % (
        " ".join(args), p.returncode, out)
    return out


@pytest.fixture(scope="module")
def bucket(s3, small_corpus):
    mirror, model = small_corpus
    s3.seed(BUCKET, mirror)
    return mirror, model


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (chown, tmpfs)")


def tree_of(path):
    """{relative path: (type, content)} of everything below path, not
    following symlinks: to show a target was never written."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, path)
            if os.path.islink(p) or os.path.isdir(p):
                out[rel] = ("d", None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", f.read())
    return out


def make_target(tmp_path):
    """A root-only directory with one file in it: what a planted symlink
    points to."""
    t = tmp_path / "target"
    t.mkdir(mode=0o700)
    (t / "keep").write_bytes(b"root's\n")
    return str(t), tree_of(str(t))


def filled_cache(mounter, bucket):
    """A cache directory holding every entry and listing of the bucket."""
    _mirror, model = bucket
    m = mounter.mount("s3://" + BUCKET)
    assert_tree(walk(m.path), model)
    mounter.unmount(m)
    return m.cache_dir


# --- the directory itself -------------------------------------------------

def test_symlinked_cache_dir_is_refused(s3, bucket, mounter, tmp_path):
    """As root, cache_dir=/home/u/cache where u made cache a symlink to a
    root-only directory: refused, and nothing is created in the target."""
    needs_root()
    home = tmp_path / "home" / "u"
    home.mkdir(parents=True)
    os.chown(str(home), OTHER_UID, OTHER_UID)
    target, before = make_target(tmp_path)
    link = home / "cache"
    os.symlink(target, str(link))
    os.lchown(str(link), OTHER_UID, OTHER_UID)
    status, err = mounter.mount_fails("s3://" + BUCKET,
                                      cache_dir=str(link))
    assert status == 32 or status == 1, err
    assert "symlink" in err and "cache" in err, err
    assert tree_of(target) == before


def test_loose_mode_is_tightened_and_foreign_owner_refused(s3, bucket,
                                                           mounter,
                                                           tmp_path):
    _mirror, model = bucket
    d = tmp_path / "loose"
    d.mkdir()
    os.chmod(str(d), 0o755)
    m = mounter.mount("s3://" + BUCKET, cache_dir=str(d))
    assert os.stat(str(d)).st_mode & 0o7777 == 0o700
    assert "made it 0700" in m.stderr()
    mounter.unmount(m)
    if os.geteuid() == 0:
        os.chown(str(d), OTHER_UID, OTHER_UID)
        status, err = mounter.mount_fails("s3://" + BUCKET,
                                          cache_dir=str(d))
        assert "owned by uid %d" % OTHER_UID in err, err


def test_fresh_user_gets_the_default_cache(s3, bucket):
    """A user with no ~/.cache mounts with the default cache dir: the
    parents are created, the leaf is 0700. /dev/fuse is root's alone in
    this test environment (0600) and fusermount3 cannot gain root here, so
    the daemon keeps CAP_DAC_OVERRIDE and CAP_SYS_ADMIN to mount; the cache
    is still created as, and checked against, the user's uid."""
    needs_root()
    mirror, model = bucket
    base = tempfile.mkdtemp(prefix="wiv-fresh-", dir="/tmp")
    os.chmod(base, 0o755)
    home = os.path.join(base, "home")
    mnt = os.path.join(base, "mnt")
    for d in (home, mnt):
        os.mkdir(d, 0o700)
        os.chown(d, OTHER_UID, OTHER_UID)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
           "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": "/nonexistent",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    as_user = ["setpriv", "--reuid=%d" % OTHER_UID,
               "--regid=%d" % OTHER_UID, "--clear-groups"]
    errpath = os.path.join(base, "daemon.err")
    proc = None
    try:
        with open(errpath, "wb") as err:
            proc = subprocess.Popen(
                as_user + ["--inh-caps=+dac_override,+sys_admin",
                           "--ambient-caps=+dac_override,+sys_admin",
                           daemon_bin(), "s3://" + BUCKET, mnt, "-f", "-o",
                           "endpoint=" + s3.endpoint],
                stdout=err, stderr=err, stdin=subprocess.DEVNULL, env=env,
                cwd=base)
        deadline = time.monotonic() + 15
        while not is_mounted(mnt):
            assert proc.poll() is None, open(errpath).read()
            assert time.monotonic() < deadline, open(errpath).read()
            time.sleep(0.05)
        p = run(as_user + ["ls", "-1", mnt], env=env)
        assert sorted(p.stdout.split()) == model.listdir(b"")
        cache = os.path.join(home, ".cache", "wivaudit")
        for d, mode in ((os.path.join(home, ".cache"), 0o700),
                        (cache, 0o700)):
            st = os.stat(d)
            assert st.st_uid == OTHER_UID and st.st_mode & 0o7777 == mode
        assert os.path.isdir(os.path.join(cache, "objects"))
    finally:
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True,
                           timeout=10)
        if proc is not None:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-uz", mnt], capture_output=True,
                           timeout=10)
        shutil.rmtree(base, ignore_errors=True)
    assert proc.returncode == 0, open(errpath).read() \
        if os.path.exists(errpath) else proc.returncode


# --- symlinks inside the cache ---------------------------------------------

def plant(cache_dir, where, target):
    """Replaces cache_dir/where (a directory or file) with a symlink to
    target; returns the relative path planted."""
    if where == "objects/XX":
        subs = sorted(os.listdir(os.path.join(cache_dir, "objects")))
        where = "objects/" + subs[0]
    path = os.path.join(cache_dir, where)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)
    return where


@pytest.mark.parametrize("where", ["objects/XX", "listings", "mounts",
                                   "lock", "objects"])
def test_planted_symlink_refuses_the_mount(s3, bucket, mounter, tmp_path,
                                           where):
    """A symlink at any level of the cache: the mount is refused naming it,
    `cache verify` and `cache stats` say symlink, `verify --repair` removes
    the link, and the target is never touched."""
    _mirror, model = bucket
    cache_dir = filled_cache(mounter, bucket)
    target, before = make_target(tmp_path)
    rel = plant(cache_dir, where, target)
    status, err = mounter.mount_fails("s3://" + BUCKET, cache_dir=cache_dir)
    assert rel + " is a symlink" in err, err
    assert "symlink" in cache_cmd("stats", "--cache-dir", cache_dir)
    out = cache_cmd("verify", "--cache-dir", cache_dir, status=1)
    assert "%s: symlink, not followed" % rel in out, out
    assert tree_of(target) == before
    cache_cmd("verify", "--repair", "--cache-dir", cache_dir, status=1)
    assert not os.path.lexists(os.path.join(cache_dir, rel))
    m = mounter.mount("s3://" + BUCKET, cache_dir=cache_dir)
    assert_tree(walk(m.path), model)
    mounter.unmount(m)
    assert tree_of(target) == before


def test_clear_removes_a_symlink_without_following_it(s3, bucket, mounter,
                                                      tmp_path):
    cache_dir = filled_cache(mounter, bucket)
    target, before = make_target(tmp_path)
    rel = plant(cache_dir, "objects/XX", target)
    out = cache_cmd("clear", "--cache-dir", cache_dir)
    assert "removed 1 symlinks (not followed)" in out, out
    assert not os.path.lexists(os.path.join(cache_dir, rel))
    assert tree_of(target) == before


def test_symlinks_planted_while_mounted(s3, bucket, mounter, tmp_path):
    """Symlinks planted under a running mount (every objects/XX, listings,
    mounts): each is named in the log, none is followed, and the tree stays
    exact (what cannot be written is served from memory)."""
    _mirror, model = bucket
    target, before = make_target(tmp_path)
    m = mounter.mount("s3://" + BUCKET)
    objects = os.path.join(m.cache_dir, "objects")
    for sub in os.listdir(objects):
        shutil.rmtree(os.path.join(objects, sub))
    for i in range(256):
        os.symlink(target, os.path.join(objects, "%02x" % i))
    for where in ("listings", "mounts"):
        plant(m.cache_dir, where, target)
    assert_tree(walk(m.path), model)
    mounter.unmount(m)
    err = m.stderr()
    assert re.search(r"objects/[0-9a-f]{2} is a symlink: not followed", err)
    assert "'listings' in the cache directory is a symlink" in err, err
    assert tree_of(target) == before
    assert re.search(r"served from memory", err)


def test_swapping_the_cache_dir_redirects_nothing(s3, bucket, mounter,
                                                  tmp_path):
    """The daemon keeps its descriptor: a symlink swapped in for the cache
    directory while mounted receives nothing."""
    _mirror, model = bucket
    target, before = make_target(tmp_path)
    m = mounter.mount("s3://" + BUCKET)
    moved = m.cache_dir + ".moved"
    os.rename(m.cache_dir, moved)
    os.symlink(target, m.cache_dir)
    assert_tree(walk(m.path), model)
    mounter.unmount(m)
    assert tree_of(target) == before
    entries = [n for _r, _d, files in os.walk(os.path.join(moved, "objects"))
               for n in files if n.endswith(".wvc")]
    assert len(entries) == len(model.objects)


# --- bounds and a full disk -------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """mount_fs(bytes): a tmpfs of that size (unmounted afterwards)."""
    needs_root()
    mounted = []

    def mount_fs(size):
        d = tmp_path / ("fs%d" % len(mounted))
        d.mkdir()
        run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % size,
             "wivtest", str(d)])
        mounted.append(str(d))
        return str(d)

    yield mount_fs
    for d in mounted:
        subprocess.run(["umount", d], capture_output=True, timeout=30)
        if is_mounted(d):
            subprocess.run(["umount", "-l", d], capture_output=True,
                           timeout=30)


def entry_bytes(cache_dir):
    return sum(os.path.getsize(os.path.join(r, n))
               for r, _d, files in os.walk(os.path.join(cache_dir, "objects"))
               for n in files)


def unmount_counters(m):
    """(evicted, served from memory) from the daemon's unmount line."""
    mm = re.search(r"(\d+) entries evicted, (\d+) served from memory",
                   m.stderr())
    assert mm, m.stderr()[-3000:]
    return int(mm.group(1)), int(mm.group(2))


def test_walk_on_a_filesystem_a_third_of_the_tree(s3, bucket, mounter,
                                                  small_fs):
    """cache_dir on a filesystem a third of the split tree's size, with the
    default cache_size: a whole walk is exact, by evicting as the disk
    fills."""
    _mirror, model = bucket
    size = entry_bytes(filled_cache(mounter, bucket))
    fs = small_fs((size // 3 + 4095) // 4096 * 4096)
    m = mounter.mount("s3://" + BUCKET, cache_dir=os.path.join(fs, "c"))
    assert_tree(walk(m.path), model)
    mounter.unmount(m)
    evicted, _uncached = unmount_counters(m)
    assert evicted > 0, m.stderr()[-3000:]
    assert entry_bytes(os.path.join(fs, "c")) <= size // 3 + 4096


def test_full_disk_serves_from_memory(s3, bucket, mounter, small_fs):
    """A filesystem filled by something else, nothing left to evict: the
    walk is still exact, served from memory, and logged once with the
    sizes."""
    _mirror, model = bucket
    fs = small_fs(2 * MIB)
    m = mounter.mount("s3://" + BUCKET, cache_dir=os.path.join(fs, "c"))
    with open(os.path.join(fs, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    assert_tree(walk(m.path), model)
    mounter.unmount(m)
    _evicted, uncached = unmount_counters(m)
    assert uncached > 0
    lines = [ln for ln in m.stderr().splitlines() if "is full" in ln]
    assert len(lines) == 1, m.stderr()[-3000:]
    assert re.search(r"needed \d+ bytes, free \d+, cache_size \d+", lines[0])


@pytest.fixture(scope="module")
def big_bucket(s3, tmp_path_factory):
    """One org, one day, one object per type; the org object splits into
    about 15 MiB of events."""
    d = tmp_path_factory.mktemp("big") / "mirror"
    generate(d, "--orgs", "1", "--days", "1", "--objects-per-day", "1",
             "--events-per-object", "6", "--seed", "41")
    key = sorted(os.path.relpath(os.path.join(r, n), str(d))
                 for r, _d, files in os.walk(str(d)) for n in files
                 if "org-audit-logs" in n)[0]
    path = os.path.join(str(d), key)
    with gzip.open(path, "rb") as f:
        events = json.loads(f.read())
    pad = "x" * 1000
    template = events[0]
    big = []
    for i in range(15 * 1024):
        ev = dict(template)
        ev["id"] = "%s-%05d" % (template.get("id", "ev"), i)
        ev["padding"] = pad
        big.append(ev)
    with gzip.open(path, "wb") as f:
        f.write(json.dumps(big).encode())
    s3.seed(BIG_BUCKET, d)
    return d, refmodel.Model(str(d))


def test_entry_larger_than_cache_size_is_not_kept(s3, big_bucket, mounter):
    """A 15 MiB entry under cache_size=4M: served, logged once, not kept;
    the cache never holds more than cache_size."""
    _mirror, model = big_bucket
    m = mounter.mount("s3://" + BIG_BUCKET, opts=["cache_size=4M"])
    assert_tree(walk(m.path), model)
    assert entry_bytes(m.cache_dir) <= 4 * MIB
    mounter.unmount(m)
    assert entry_bytes(m.cache_dir) <= 4 * MIB
    lines = [ln for ln in m.stderr().splitlines()
             if "more than cache_size" in ln]
    assert len(lines) == 1, m.stderr()[-3000:]
    _evicted, uncached = unmount_counters(m)
    assert uncached >= 1


def test_leftover_temp_file_is_counted_and_cleaned(s3, big_bucket, mounter):
    """kill -9 while the big object is being written leaves a temp file:
    `cache stats` counts it, `verify --repair` removes it; one left again is
    removed by the next mount."""
    _mirror, model = big_bucket
    m = mounter.mount("s3://" + BIG_BUCKET)
    org = model.listdir(b"")[0]
    days = [p for p in model.dirs if p.count(b"/") == 4 and b"/org" in p]
    lister = subprocess.Popen(["ls", os.path.join(m.path,
                                                  os.fsdecode(days[0]))],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    objects = os.path.join(m.cache_dir, "objects")
    deadline = time.monotonic() + 60
    tmp = None
    try:
        while tmp is None:
            assert time.monotonic() < deadline, "no temp file appeared"
            for r, _d, files in os.walk(objects):
                for n in files:
                    p = os.path.join(r, n)
                    if n.startswith(".tmp.") and os.path.getsize(p) > MIB:
                        tmp = p
            time.sleep(0.005)
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(10)
    finally:
        lister.kill()
        lister.wait(10)
        subprocess.run(["fusermount3", "-uz", m.path], capture_output=True,
                       timeout=10)
        m.unmounted = True
    assert os.path.exists(tmp), "the kill came after the rename"
    out = cache_cmd("stats", "--cache-dir", m.cache_dir)
    assert re.search(r"temporary files: 1 \(", out), out
    out = cache_cmd("verify", "--repair", "--cache-dir", m.cache_dir)
    assert "1 temporary files, 1 of them abandoned and removed" in out, out
    assert not os.path.exists(tmp)
    assert "temporary files" not in cache_cmd("stats", "--cache-dir",
                                              m.cache_dir)
    left = os.path.join(os.path.dirname(tmp), ".tmp.4194000.7")
    with open(left, "wb") as f:
        f.write(b"\0" * 4096)
    m2 = mounter.mount("s3://" + BIG_BUCKET, cache_dir=m.cache_dir)
    assert not os.path.exists(left)
    assert org in os.listdir(m2.path.encode())
    mounter.unmount(m2)
