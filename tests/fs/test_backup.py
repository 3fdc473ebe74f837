"""Backup and forensic tools over the mount: what they see is stable and
truthful, checked against ground truth computed from the source objects
(refmodel.py for files; directory mtimes from the keys, as README says).

- stat is exact before any read (size, blocks, nlink, mtimes, inodes);
- inode numbers are unique, and the same after a remount with a cold cache
  and after the cache evicted everything;
- rsync, tar, cp -a, find -newermt, du, ls -lR, getfattr, df and restic
  round trips;
- a directory of 100,000 events lists completely, with telldir/seekdir;
- a walk while new objects are delivered sees whole events only, and the
  new ones after list_ttl.
"""

import gzip
import hashlib
import json
import os
import shutil
import threading
import time

import pytest

import refmodel
from conftest import PYTHON, assert_tree, run, show, walk

BUCKET = "backup"
DAY_S = 86400


@pytest.fixture(scope="module")
def bucket(s3, small_corpus):
    mirror, model = small_corpus
    s3.seed(BUCKET, mirror)
    return mirror, model


@pytest.fixture(scope="module")
def mnt(bucket, module_mounter):
    return module_mounter.mount("s3://" + BUCKET)


# --- ground truth ------------------------------------------------------------

def dir_mtimes(model):
    """{dir path: mtime}: the newest key timestamp of the objects below it
    (README, "The tree"); directories come from key days alone."""
    out = {}
    for _key, org, typ, ms in model.objects:
        y, m, d = refmodel.utc_day(ms // 1000)
        parts = [org.encode(), y, m, d, typ.encode()]
        for depth in range(len(parts) + 1):
            p = b"/".join(parts[:depth])
            out[p] = max(out.get(p, -1), ms // 1000)
    return out


def blocks(size):
    return (size + 511) // 512


def scan(root, timeout=120):
    """{relpath: dict(type, ino, size, blocks, nlink, mtime)} of a tree, from
    `find -printf` in a child (stat only: it reads no file)."""
    out = run(["find", root, "-printf",
               r"%P\0%y\0%i\0%s\0%b\0%n\0%T@\0"], timeout=timeout).stdout
    fields = out.split(b"\0")
    res = {}
    for i in range(0, len(fields) - 1, 7):
        p, typ, ino, size, blks, nlink, mtime = fields[i:i + 7]
        res[p] = {"type": typ.decode(), "ino": int(ino), "size": int(size),
                  "blocks": int(blks), "nlink": int(nlink),
                  "mtime": int(mtime.split(b".")[0]),
                  "mtime_frac": mtime.split(b".")[1].strip(b"0")
                  if b"." in mtime else b""}
    return res


def compare_scan(got, model, dmt, check_dir_mtimes=True, prefix=b""):
    """Differences between a scan (of the mount or of a copy) and the model,
    limited to paths under prefix."""
    diffs = []

    def under(p):
        return not prefix or p == prefix or p.startswith(prefix + b"/")

    want = {p for p in set(model.files) | set(model.dirs) if under(p)}
    got_paths = {p for p in got if under(p)}
    diffs += ["missing: " + show(p) for p in sorted(want - got_paths)[:20]]
    diffs += ["unexpected: " + show(p)
              for p in sorted(got_paths - want)[:20]]
    for p in sorted(want & got_paths):
        e = got[p]
        if e["mtime_frac"]:
            diffs.append("%s: mtime has a fraction" % show(p))
        if p in model.files:
            f = model.files[p]
            if e["type"] != "f":
                diffs.append("%s: type %s" % (show(p), e["type"]))
            elif e["size"] != len(f.content):
                diffs.append("%s: size %d, want %d" % (show(p), e["size"],
                                                       len(f.content)))
            elif e["mtime"] != f.mtime:
                diffs.append("%s: mtime %d, want %d" % (show(p), e["mtime"],
                                                        f.mtime))
        else:
            if e["type"] != "d":
                diffs.append("%s: type %s" % (show(p), e["type"]))
            elif check_dir_mtimes and e["mtime"] != dmt[p]:
                diffs.append("%s: dir mtime %d, want %d" % (
                    show(p), e["mtime"], dmt[p]))
        if len(diffs) > 30:
            break
    return diffs


def compare_copy(root, model, dmt, prefix=b"", root_mtime=True):
    """A local copy of (part of) the mount against the model: names, file
    bytes, file and directory mtimes (root_mtime False: not of the copy's
    top directory, for tools that make it themselves)."""
    got = scan(root)
    if prefix:
        got = {(prefix + b"/" + p if p else prefix): e
               for p, e in got.items()}
    if not root_mtime:
        top = dict(got[prefix], mtime=dmt[prefix], mtime_frac=b"")
        got[prefix] = top
    diffs = compare_scan(got, model, dmt, prefix=prefix)
    for p, f in sorted(model.files.items()):
        if prefix and not p.startswith(prefix + b"/"):
            continue
        rel = p[len(prefix) + 1:] if prefix else p
        try:
            with open(os.path.join(os.fsencode(root), rel), "rb") as fh:
                data = fh.read()
        except OSError as e:
            diffs.append("%s: %s" % (show(p), e))
            continue
        if data != f.content:
            diffs.append("%s: content differs" % show(p))
        if len(diffs) > 30:
            break
    return diffs


def assert_copy(root, model, dmt, prefix=b"", root_mtime=True):
    diffs = compare_copy(root, model, dmt, prefix, root_mtime)
    assert not diffs, "the copy differs from the ground truth:\n" + \
        "\n".join(diffs)


def assert_xattrs_kept(root, model, prefix=b""):
    """A sample of a copy's files carry their user.wivaudit.* provenance."""
    files = [(p, f) for p, f in sorted(model.files.items())
             if not prefix or p.startswith(prefix + b"/")]
    for p, f in files[::max(1, len(files) // 25)]:
        full = os.path.join(os.fsencode(root),
                            p[len(prefix) + 1:] if prefix else p)
        assert os.getxattr(full, "user.wivaudit.key") == f.key.encode(), \
            show(p)
        assert os.getxattr(full, "user.wivaudit.event_type") == \
            f.event_type.encode(), show(p)


def subdirs_by_listing(scanned):
    """{dir: number of subdirectories} counted from the scan's own paths."""
    count = {p: 0 for p, e in scanned.items() if e["type"] == "d"}
    for p, e in scanned.items():
        if e["type"] == "d" and p:
            parent = p.rsplit(b"/", 1)[0] if b"/" in p else b""
            count[parent] += 1
    return count


def drop_kernel_caches():
    """Makes the kernel forget dentries and inodes (as root), so that the
    next stat asks the daemon again; a no-op where not permitted."""
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")
    except OSError:
        pass


def child(script, *args, timeout=120):
    """Runs a Python snippet in a child (a hung mount costs a timeout, not
    the test run) and returns the JSON it prints."""
    p = run([PYTHON, "-c", script] + [str(a) for a in args], timeout=timeout)
    return json.loads(p.stdout)


# --- stat before read, nlink, inodes -----------------------------------------

def test_stat_is_exact_before_any_read(bucket, mounter):
    """A fresh mount, stat only: every file has its exact size and blocks
    (what rsync and tar copy), nlink 1, mtime = the event time; every
    directory nlink = 2 + subdirectories (by the model and by its own
    listing), mtime = newest delivery below it; inode numbers unique."""
    _mirror, model = bucket
    dmt = dir_mtimes(model)
    m = mounter.mount("s3://" + BUCKET)
    got = scan(m.path)
    diffs = compare_scan(got, model, dmt)
    subdirs = subdirs_by_listing(got)
    for p, e in sorted(got.items()):
        if e["type"] == "f":
            if e["blocks"] != blocks(e["size"]):
                diffs.append("%s: %d blocks for %d bytes" % (
                    show(p), e["blocks"], e["size"]))
            if e["nlink"] != 1:
                diffs.append("%s: nlink %d" % (show(p), e["nlink"]))
        elif e["type"] == "d":
            if p in model.dirs and e["nlink"] != 2 + model.subdir_count(p):
                diffs.append("%s: nlink %d, model has %d subdirs" % (
                    show(p), e["nlink"], model.subdir_count(p)))
            if e["nlink"] != 2 + subdirs[p]:
                diffs.append("%s: nlink %d, its listing has %d subdirs" % (
                    show(p), e["nlink"], subdirs[p]))
    inos = {}
    for p, e in got.items():
        if e["ino"] in inos:
            diffs.append("inode %d shared by %s and %s" % (
                e["ino"], show(inos[e["ino"]]), show(p)))
        inos[e["ino"]] = p
    assert not diffs, "\n".join(diffs[:40])
    # The sizes stated before were the sizes read after.
    assert_tree(walk(m.path), model)


SCANDIR_INOS = r"""
import json, os, sys
bad = []
n = 0
for root, dirs, files in os.walk(sys.argv[1]):
    with os.scandir(root) as it:
        for e in it:
            n += 1
            st = os.lstat(e.path)
            if e.inode() != st.st_ino:
                bad.append("%s: d_ino %d, st_ino %d" % (e.path, e.inode(),
                                                        st.st_ino))
print(json.dumps({"n": n, "bad": bad[:20]}))
"""


def test_inodes_stable_across_remount_and_eviction(bucket, mnt, mounter):
    """The same path has the same inode in the long-lived mount, in a new
    mount with a cold cache that loads objects in another order, and in a
    mount whose tiny cache evicted every object (re-read after the kernel
    forgot its inodes); readdir's d_ino agrees with stat's st_ino."""
    _mirror, model = bucket
    first = scan(mnt.path)
    assert len(first) == len(model.files) + len(model.dirs)

    tiny = mounter.mount("s3://" + BUCKET, opts=["cache_size=16K"])
    # Load the directories in reverse order first, so nothing that
    # depends on allocation order could match by luck.
    for p in sorted(model.dirs, reverse=True):
        if p.count(b"/") == 4:
            run(["ls", "-f", os.path.join(tiny.path, os.fsdecode(p))])
    assert {p: e["ino"] for p, e in scan(tiny.path).items()} == \
        {p: e["ino"] for p, e in first.items()}
    # Read everything: with a 16 KiB bound nearly every object is evicted.
    assert_tree(walk(tiny.path), model)
    drop_kernel_caches()
    after = scan(tiny.path)
    assert {p: e["ino"] for p, e in after.items()} == \
        {p: e["ino"] for p, e in first.items()}
    assert "error" not in tiny.stderr()

    res = child(SCANDIR_INOS, tiny.path)
    assert res["n"] == len(first) - 1
    assert not res["bad"], "\n".join(res["bad"])


# --- copies ------------------------------------------------------------------

def test_rsync_round_trip_then_nothing_to_do(bucket, mounter, tmp_path):
    """rsync -aX of the mount equals the ground truth (bytes, file and
    directory mtimes, the user.wivaudit.* xattrs); a second
    rsync -aXi has nothing to report, in the same mount and after a
    remount with a cold cache."""
    _mirror, model = bucket
    dmt = dir_mtimes(model)
    dst = str(tmp_path / "copy")
    m = mounter.mount("s3://" + BUCKET)
    run(["rsync", "-aX", m.path + "/", dst + "/"], timeout=120)
    assert_copy(dst, model, dmt)
    assert_xattrs_kept(dst, model)

    again = run(["rsync", "-aXi", m.path + "/", dst + "/"], timeout=120)
    assert again.stdout == b"", again.stdout.decode()[:2000]
    mounter.unmount(m)

    m2 = mounter.mount("s3://" + BUCKET)
    again = run(["rsync", "-aXi", m2.path + "/", dst + "/"], timeout=120)
    assert again.stdout == b"", \
        "after a remount rsync saw changes:\n" + again.stdout.decode()[:2000]
    # The checksum pass reads every byte and still finds nothing to do.
    again = run(["rsync", "-aci", m2.path + "/", dst + "/"], timeout=120)
    assert again.stdout == b"", again.stdout.decode()[:2000]


def test_tar_round_trip(mnt, bucket, tmp_path):
    """tar c of the mount, extracted, equals the ground truth; tar has no
    complaint (it says "file changed as we read it" when a size read
    differs from the size stated)."""
    _mirror, model = bucket
    archive = str(tmp_path / "audit.tar")
    dst = tmp_path / "x"
    dst.mkdir()
    p = run(["tar", "-C", mnt.path, "--xattrs", "-cf", archive, "."],
            timeout=120)
    assert p.stderr == b"", p.stderr.decode()
    p = run(["tar", "-C", str(dst), "--xattrs", "-xf", archive], timeout=120)
    assert p.stderr == b"", p.stderr.decode()
    assert_copy(str(dst), model, dir_mtimes(model))
    assert_xattrs_kept(str(dst), model)
    # A second archive of the same tree is the same byte for byte.
    archive2 = str(tmp_path / "audit2.tar")
    run(["tar", "-C", mnt.path, "--xattrs", "-cf", archive2, "."],
        timeout=120)
    with open(archive, "rb") as a, open(archive2, "rb") as b:
        assert a.read() == b.read()


def test_tar_incremental_after_remount(bucket, mounter, tmp_path):
    """tar --listed-incremental: a level 1 after a remount with a cold cache
    holds no file (README's invocation, with --no-check-device since a
    remount may get another device number)."""
    _mirror, model = bucket
    snap = str(tmp_path / "audit.snar")
    m = mounter.mount("s3://" + BUCKET)
    run(["tar", "-C", m.path, "--no-check-device", "-g", snap, "-cf",
         str(tmp_path / "level0.tar"), "."], timeout=120)
    mounter.unmount(m)
    m2 = mounter.mount("s3://" + BUCKET)
    p = run(["tar", "-C", m2.path, "--no-check-device", "-g", snap, "-cf",
             str(tmp_path / "level1.tar"), "."], timeout=120)
    assert p.stderr == b"", p.stderr.decode()
    names = run(["tar", "-tf", str(tmp_path / "level1.tar")]).stdout
    files = [n for n in names.splitlines() if not n.endswith(b"/")]
    assert files == [], files[:10]
    names = run(["tar", "-tf", str(tmp_path / "level0.tar")]).stdout
    assert len([n for n in names.splitlines() if not n.endswith(b"/")]) \
        == len(model.files)


def test_cp_a_preserves_mtimes(mnt, bucket, tmp_path):
    """cp -a of an org keeps every file's event time and every directory's
    delivery time, and the xattrs."""
    _mirror, model = bucket
    org = sorted(model.listdir(b""))[1]
    dst = str(tmp_path / "org")
    run(["cp", "-a", os.path.join(mnt.path, os.fsdecode(org)), dst],
        timeout=120)
    assert_copy(dst, model, dir_mtimes(model), prefix=org)
    assert_xattrs_kept(dst, model, prefix=org)


# --- finding, sizing, listing ------------------------------------------------

def find_set(root, *expr):
    out = run(["find", root] + list(expr) + ["-printf", r"%P\0"],
              timeout=120).stdout
    return {p for p in out.split(b"\0") if p}


def test_find_newermt_selects_by_event_time(mnt, bucket):
    """find -newermt picks files by their event time and directories by
    their newest delivery, at several cut-offs."""
    _mirror, model = bucket
    dmt = dir_mtimes(model)
    times = sorted({f.mtime for f in model.files.values()})
    for cut in (times[0] - 1, times[len(times) // 3],
                times[len(times) // 2], times[-2], times[-1]):
        got = find_set(mnt.path, "-type", "f", "-newermt", "@%d" % cut)
        want = {p for p, f in model.files.items() if f.mtime > cut}
        assert got == want, "cut %d: %d extra, %d missing" % (
            cut, len(got - want), len(want - got))
        older = find_set(mnt.path, "-type", "f", "!", "-newermt",
                         "@%d" % cut)
        assert older == set(model.files) - want
        got = find_set(mnt.path, "-mindepth", "1", "-type", "d",
                       "-newermt", "@%d" % cut)
        assert got == {p for p in model.dirs if p and dmt[p] > cut}


def test_du_and_ls_lR(mnt, bucket):
    """du -s (blocks and apparent size) adds up what stat says; ls -lR shows
    every event with its exact size and event time, and each directory's
    nlink and mtime."""
    _mirror, model = bucket
    dmt = dir_mtimes(model)
    ndirs = len(model.dirs)
    sizes = [len(f.content) for f in model.files.values()]
    out = run(["du", "-s", "--apparent-size", "-B1", mnt.path]).stdout
    assert int(out.split()[0]) == sum(sizes) + 4096 * ndirs
    out = run(["du", "-s", "-B512", mnt.path]).stdout
    assert int(out.split()[0]) == sum(blocks(s) for s in sizes) + 8 * ndirs

    out = run(["ls", "-lRn", "--time-style=+%s", "--quoting-style=literal",
               mnt.path], timeout=120).stdout.decode("utf-8", "replace")
    seen_files = {}
    seen_dirs = {}
    cur = None
    top = mnt.path
    for line in out.splitlines():
        if line.endswith(":") and line.startswith(top):
            cur = os.fsencode(line[len(top):-1].lstrip("/"))
            continue
        parts = line.split(None, 6)
        if len(parts) < 7 or parts[0][0] not in "-d":
            continue
        mode, nlink, _u, _g, size, mtime, name = parts
        path = cur + b"/" + os.fsencode(name) if cur else os.fsencode(name)
        if mode[0] == "-":
            seen_files[path] = (mode, int(nlink), int(size), int(mtime))
        else:
            seen_dirs[path] = (mode, int(nlink), int(mtime))
    want_files = {p: ("-r--r--r--", 1, len(f.content), f.mtime)
                  for p, f in model.files.items()}
    want_dirs = {p: ("dr-xr-xr-x", 2 + model.subdir_count(p), dmt[p])
                 for p in model.dirs if p}
    assert seen_files == want_files
    assert seen_dirs == want_dirs


# --- extended attributes and statfs ------------------------------------------

XATTRS = r"""
import errno, json, os, sys
path, dirpath = sys.argv[1], sys.argv[2]
res = {"names": sorted(os.listxattr(path)),
       "dir_names": sorted(os.listxattr(dirpath))}
for p, name in ((path, "user.wivaudit.nope"), (path, "user.other"),
                (path, "trusted.wivaudit.key"),
                (dirpath, "user.wivaudit.key")):
    try:
        os.getxattr(p, name)
        res[name + "@" + p] = "found"
    except OSError as e:
        res[name + "@" + p] = errno.errorcode[e.errno]
print(json.dumps(res))
"""


def test_xattrs_with_getfattr(mnt, bucket):
    """getfattr -d dumps source key, ETag and event_type; listxattr names
    exactly those; an unknown name is ENODATA, on files and directories."""
    mirror, model = bucket
    path, f = sorted(model.files.items())[3]
    full = os.path.join(mnt.path, os.fsdecode(path))
    dirpath = os.path.dirname(full)
    out = run(["getfattr", "-d", "--absolute-names", full]).stdout.decode()
    with open(os.path.join(str(mirror), f.key), "rb") as fh:
        md5 = hashlib.md5(fh.read()).hexdigest()
    # S3 quotes its ETags; the quotes may or may not be kept.
    lines = sorted(x.replace('\\"', "") for x in out.splitlines()
                   if x.startswith("user."))
    assert lines == sorted([
        'user.wivaudit.etag="%s"' % md5,
        'user.wivaudit.event_type="%s"' % f.event_type,
        'user.wivaudit.key="%s"' % f.key]), out
    res = child(XATTRS, full, dirpath)
    assert res["names"] == ["user.wivaudit.etag", "user.wivaudit.event_type",
                            "user.wivaudit.key"]
    assert res["dir_names"] == []
    for k, v in res.items():
        if "@" in k:
            assert v == "ENODATA", (k, v)
    p = run(["getfattr", "-n", "user.wivaudit.nope", full], check=False)
    assert p.returncode != 0 and b"No such attribute" in p.stderr
    # Every event in a day directory, recursively.
    day = os.path.dirname(dirpath)
    out = run(["getfattr", "-R", "-d", "-m", "^user\\.wivaudit\\.",
               "--absolute-names", day]).stdout.decode()
    files = [x for x in out.splitlines() if x.startswith("# file: ")]
    rel = os.fsencode(os.path.relpath(day, mnt.path))
    assert len(files) == sum(1 for p in model.files
                             if p.startswith(rel + b"/"))


def test_df_and_statfs(mnt):
    """df works on the mount and it says read-only; statfs has real block
    and name sizes and claims no invented capacity."""
    p = run(["df", "-P", mnt.path])
    assert mnt.path in p.stdout.decode()
    run(["df", "-i", mnt.path])
    out = run(["stat", "-f", "-c", "%s %S %l %b %c", mnt.path]).stdout.split()
    assert out[:3] == [b"4096", b"4096", b"255"]
    assert out[3] == b"0"
    res = child("import json, os, sys; s = os.statvfs(sys.argv[1]); "
                "print(json.dumps([s.f_flag, s.f_bsize, s.f_namemax]))",
                mnt.path)
    assert res[0] & os.ST_RDONLY
    opts = run(["findmnt", "-n", "-o", "OPTIONS", "-M", mnt.path]).stdout
    assert "ro" in opts.decode().strip().split(",")


# --- restic ------------------------------------------------------------------

def restic(repo, *args, cwd=None, timeout=180):
    env = dict(os.environ, RESTIC_PASSWORD="test", RESTIC_REPOSITORY=repo,
               RESTIC_CACHE_DIR=os.path.join(os.path.dirname(repo),
                                             "restic-cache"))
    return run(["restic"] + list(args), env=env, cwd=cwd, timeout=timeout)


def restic_summary(p):
    for line in reversed(p.stdout.decode().splitlines()):
        msg = json.loads(line)
        if msg.get("message_type") == "summary":
            return msg
    pytest.fail("no summary from restic: %s" % p.stdout.decode()[-2000:])


def test_restic_backup_and_restore(bucket, mounter, tmp_path):
    """restic backs the mount up and restores the ground truth; a second
    backup after a remount (cold cache, same relative paths) finds every
    file unmodified, since size, mtime, ctime and inode are all stable."""
    if shutil.which("restic") is None:
        pytest.skip("restic is not installed (contrib/install-deps.sh "
                    "--tests installs it)")
    _mirror, model = bucket
    repo = str(tmp_path / "repo")
    restic(repo, "init")
    m = mounter.mount("s3://" + BUCKET)
    s1 = restic_summary(restic(repo, "backup", "--json", ".", cwd=m.path))
    assert s1["files_new"] == len(model.files)
    snap = s1["snapshot_id"]
    mounter.unmount(m)

    m2 = mounter.mount("s3://" + BUCKET)
    s2 = restic_summary(restic(repo, "backup", "--json", "--parent", snap,
                               ".", cwd=m2.path))
    assert (s2["files_new"], s2["files_changed"], s2["files_unmodified"]) \
        == (0, 0, len(model.files)), s2

    dst = tmp_path / "restored"
    restic(repo, "restore", snap, "--target", str(dst))
    # restic makes the target itself and leaves its mtime alone.
    assert_copy(str(dst), model, dir_mtimes(model), root_mtime=False)
    assert_xattrs_kept(str(dst), model)
    restic(repo, "check")


# --- a directory of 100,000 events -------------------------------------------

BIG_ORG = "0b5e7a0c-6f0e-4d6b-9a51-1000000000aa"
BIG_OBJECTS = 100
BIG_EVENTS = 1000
BIG_DAY = 20480  # 2026-01-27


def write_big_mirror(root):
    """One org/day/user directory of BIG_OBJECTS x BIG_EVENTS events;
    returns the expected {name: (mtime, key)}."""
    os.makedirs(os.path.join(root, BIG_ORG))
    expected = {}
    for o in range(BIG_OBJECTS):
        key_ms = BIG_DAY * DAY_S * 1000 + 6 * 3600 * 1000 + o * 60000
        events = []
        for k in range(BIG_EVENTS):
            eid = "evt-%03d-%04d" % (o, k)
            created = key_ms // 1000 - 1 - k
            events.append({"id": eid, "org_id": BIG_ORG, "org_name": "Big",
                           "event_type": "UserLoggedIn",
                           "event_data": {"n": k}, "created_at": created,
                           "caused_by_id": None, "caused_by_type": "system",
                           "caused_by_source_ip": None,
                           "relevant_user_email": None})
            expected[eid + ".json"] = created
        key = "%s/user-audit-logs-%d.json.gz" % (BIG_ORG, key_ms)
        with open(os.path.join(root, key), "wb") as f:
            f.write(gzip.compress(json.dumps(
                events, separators=(",", ":")).encode(), compresslevel=1,
                mtime=0))
    return expected


DIRSEEK_C = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "dirseek.c")

SCANDIR_BIG = r"""
import json, os, sys, time
t = time.monotonic()
names = []
inos = set()
with os.scandir(sys.argv[1]) as it:
    for e in it:
        names.append(e.name)
        inos.add(e.inode())
print(json.dumps({"names": names, "inos": len(inos),
                  "seconds": time.monotonic() - t}))
"""


def test_directory_of_100000_events(mounter, tmp_path):
    """os.scandir lists every name once; telldir/seekdir positions resume
    identically (C helper); every listed name stats, with d_ino = st_ino
    and the exact size; mtimes are the events' times."""
    mirror = str(tmp_path / "big")
    t0 = time.monotonic()
    expected = write_big_mirror(mirror)
    gen_s = time.monotonic() - t0
    helper = str(tmp_path / "dirseek")
    run(["cc", "-O2", "-o", helper, DIRSEEK_C], timeout=60)

    m = mounter.mount(mirror)
    y, mo, d = (x.decode() for x in refmodel.utc_day(BIG_DAY * DAY_S))
    dirpath = os.path.join(m.path, BIG_ORG, y, mo, d, "user")
    t0 = time.monotonic()
    res = child(SCANDIR_BIG, dirpath, timeout=300)
    cold_s = time.monotonic() - t0
    assert len(res["names"]) == len(expected)
    assert set(res["names"]) == set(expected)
    assert res["inos"] == len(expected)

    names_file = str(tmp_path / "names")
    p = run([helper, dirpath, names_file, "997"], timeout=300)
    line = p.stdout.decode().strip()
    counts = dict(kv.split("=") for kv in line.split())
    for k in ("dups", "seek_bad", "tail_bad", "rewind_bad", "stat_fail",
              "ino_bad"):
        assert counts[k] == "0", "%s\n%s" % (line, p.stderr.decode())
    assert int(counts["entries"]) == len(expected) + 2
    assert int(counts["seeks"]) > 100
    with open(names_file, "rb") as f:
        names = [n.decode() for n in f.read().split(b"\0") if n]
    assert names[:2] == [".", ".."]
    assert names[2:] == res["names"], "two listings differ in order"

    # Sizes and times of a sample, stated by the mount and read back.
    sample = names[2::4999]
    stats = child(r"""
import json, os, sys
d = sys.argv[1]
out = {}
for n in sys.argv[2:]:
    st = os.stat(os.path.join(d, n))
    with open(os.path.join(d, n), "rb") as f:
        data = f.read()
    out[n] = [st.st_size, len(data), st.st_mtime, json.loads(data)["id"]]
print(json.dumps(out))
""", dirpath, *sample)
    for n, (size, length, mtime, eid) in stats.items():
        assert size == length and mtime == expected[n] and \
            eid + ".json" == n, n
    du = run(["du", "-s", "--apparent-size", "-B1", dirpath]).stdout
    assert int(du.split()[0]) > 4096 * 1000
    print("100k directory: generate %.1f s, first scandir %.1f s (%s)"
          % (gen_s, cold_s, line))


# --- a walk while objects are delivered --------------------------------------

def new_delivery(mirror, org, key_ms, n, tag):
    """Writes one new object into the local mirror; returns its key. Events
    happen before their delivery (as Wiv's do), so old events never move."""
    events = [{"id": "%s-%d" % (tag, k), "org_id": org, "org_name": "Late",
               "event_type": "UserLoggedIn", "event_data": {"k": k,
                                                            "pad": "x" * 300},
               "created_at": key_ms // 1000 - 60 * (k + 1),
               "caused_by_id": None, "caused_by_type": "system",
               "caused_by_source_ip": None, "relevant_user_email": None}
              for k in range(n)]
    key = "%s/user-audit-logs-%d.json.gz" % (org, key_ms)
    with open(os.path.join(mirror, key), "wb") as f:
        f.write(gzip.compress(json.dumps(events).encode(), mtime=0))
    return key


def test_walk_while_objects_are_delivered(s3, small_corpus, mounter,
                                          tmp_path):
    """rsync runs again and again while new objects arrive (list_ttl=1):
    every copy holds only whole events equal to the final bucket's, and at
    least everything that was there before; a later rsync brings the copy
    to exactly the final tree."""
    src, before = small_corpus
    mirror = str(tmp_path / "mirror")
    shutil.copytree(str(src), mirror)
    s3.make_bucket("delivery")
    s3.sync(mirror, "s3://delivery/")

    orgs = sorted(os.listdir(mirror))
    last_ms = max(ms for _k, _o, _t, ms in before.objects)
    uploads = []
    for i in range(6):
        # Into the newest day (next to existing events), and into two new
        # days, one of which begins just after midnight so that some of
        # its events fall on the day before.
        day = last_ms // (DAY_S * 1000) + (0 if i < 2 else 1 + (i % 2))
        key_ms = day * DAY_S * 1000 + (
            23 * 3600 * 1000 + 50 * 60 * 1000 + i * 1000 if i < 2 else
            600 * 1000 + i * 1000)
        key_ms = max(key_ms, last_ms + 1000 + i)
        uploads.append(new_delivery(mirror, orgs[i % len(orgs)], key_ms, 20,
                                    "late%d" % i))
    final = refmodel.Model(mirror)
    for p, f in before.files.items():
        assert p in final.files and final.files[p].content == f.content, \
            "test setup: a new delivery moved an old event %s" % show(p)
    new_files = set(final.files) - set(before.files)
    assert len(new_files) == 6 * 20

    m = mounter.mount("s3://delivery", opts=["list_ttl=1"])
    errors = []

    def deliver():
        try:
            for key in uploads:
                time.sleep(0.3)
                s3.aws("s3", "cp", os.path.join(mirror, key),
                       "s3://delivery/" + key, "--only-show-errors")
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=deliver)
    t.start()
    rounds = 0
    partial_rounds = 0
    try:
        deadline = time.monotonic() + 90
        while True:
            done = not t.is_alive()
            rounds += 1
            dst = str(tmp_path / ("copy%d" % rounds))
            run(["rsync", "-a", m.path + "/", dst + "/"], timeout=120)
            got = scan(dst)
            diffs = []
            files = {p for p, e in got.items() if e["type"] == "f"}
            for p in sorted(set(before.files) - files)[:10]:
                diffs.append("round %d lost %s" % (rounds, show(p)))
            for p in sorted(files - set(final.files))[:10]:
                diffs.append("round %d: not in the bucket: %s" % (rounds,
                                                                 show(p)))
            for p in sorted(files & set(final.files)):
                with open(os.path.join(os.fsencode(dst), p), "rb") as f:
                    data = f.read()
                if data != final.files[p].content or \
                        got[p]["mtime"] != final.files[p].mtime:
                    diffs.append("round %d: %s is not the whole event" % (
                        rounds, show(p)))
            assert not diffs, "\n".join(diffs[:20])
            if files & new_files and files != set(final.files):
                partial_rounds += 1
            shutil.rmtree(dst)
            if done:
                break
            assert time.monotonic() < deadline, "uploads did not finish"
    finally:
        t.join(120)
    assert not errors, errors

    # All new events show up within list_ttl (plus the kernel's attribute
    # timeout of the same length), then the tree is the final bucket.
    deadline = time.monotonic() + 15
    dst = str(tmp_path / "final")
    while True:
        run(["rsync", "-a", "--delete", m.path + "/", dst + "/"],
            timeout=120)
        diffs = compare_copy(dst, final, dir_mtimes(final))
        if not diffs:
            break
        assert time.monotonic() < deadline, \
            "15 s after the last delivery (list_ttl=1):\n" + "\n".join(diffs)
        time.sleep(0.5)
    print("delivery: %d rsync rounds, %d saw some new events but not all"
          % (rounds, partial_rounds))
