"""A clean bucket mounted from S3: the tree, the bytes, the metadata and the
tools users point at it, all against the reference model."""

import hashlib
import os
import shutil
import signal
import subprocess

import pytest

from conftest import assert_tree, is_mounted, run, show, walk

BUCKET = "basic"


@pytest.fixture(scope="module")
def mnt(s3, small_corpus, module_mounter):
    mirror, model = small_corpus
    s3.seed(BUCKET, mirror)
    m = module_mounter.mount("s3://" + BUCKET)
    return m, model


@pytest.fixture(scope="module")
def tree(mnt):
    m, _model = mnt
    return walk(m.path)


def ls(path):
    out = run(["ls", "-1A", "--quoting-style=literal", path]).stdout
    return sorted(out.splitlines())


def test_ls_each_level(mnt):
    m, model = mnt
    for rel in sorted(model.dirs):
        path = os.path.join(m.path, os.fsdecode(rel)) if rel else m.path
        assert ls(path) == model.listdir(rel), "ls " + show(rel)


def test_find_counts_every_event(mnt):
    m, model = mnt
    out = run(["find", m.path, "-type", "f"]).stdout
    assert len(out.splitlines()) == model.event_count()
    out = run(["find", m.path, "-mindepth", "1", "-type", "d"]).stdout
    assert len(out.splitlines()) == len(model.dirs) - 1


def test_grep_finds_exactly_the_model_files(mnt):
    m, model = mnt
    for needle in (b"OrgCreated", b'"event_type": "OrgCreated"',
                   b"UserLoggedIn"):
        p = run(["grep", "-rlZF", needle, m.path], check=False)
        assert p.returncode in (0, 1), p.stderr
        got = sorted(os.path.relpath(x, os.fsencode(m.path))
                     for x in p.stdout.split(b"\0") if x)
        want = model.files_with(needle)
        assert want, needle
        assert got == want, needle


def test_jq_parses_every_file(mnt):
    m, model = mnt
    p = run(["find", m.path, "-type", "f", "-exec", "jq", "empty", "{}",
             "+"], check=False)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert p.stderr == b""


def test_tree_matches_model(tree, mnt):
    _m, model = mnt
    assert_tree(tree, model, uid=os.getuid(), gid=os.getgid())


def test_xattrs(tree, mnt, small_corpus):
    mirror, model = small_corpus
    md5 = {}
    bad = []
    for path, f in sorted(model.files.items()):
        x = tree[path].get("xattrs")
        if not isinstance(x, dict):
            bad.append("%s: %s" % (show(path), x))
            continue
        if f.key not in md5:
            with open(os.path.join(mirror, f.key), "rb") as fh:
                md5[f.key] = hashlib.md5(fh.read()).hexdigest()
        want = {"user.wivaudit.key": f.key.encode(),
                "user.wivaudit.event_type": f.event_type.encode()}
        for name, value in want.items():
            if x.get(name) != value:
                bad.append("%s: %s = %r, want %r" % (show(path), name,
                                                     x.get(name), value))
        etag = x.get("user.wivaudit.etag")
        if not isinstance(etag, bytes) or \
                etag.strip(b'"') != md5[f.key].encode():
            bad.append("%s: etag %r, want md5 %s" % (show(path), etag,
                                                     md5[f.key]))
        if len(bad) > 20:
            break
    assert not bad, "\n".join(bad)


def test_getfattr_and_stat_tools(mnt):
    m, model = mnt
    path, f = sorted(model.files.items())[0]
    full = os.path.join(m.path, os.fsdecode(path))
    out = run(["getfattr", "--absolute-names", "-n", "user.wivaudit.key",
               "--only-values", full]).stdout
    assert out == f.key.encode()
    out = run(["stat", "-c", "%a %s %Y %h", full]).stdout.decode().split()
    assert out == ["444", str(len(f.content)), str(f.mtime), "1"]
    out = run(["ls", "-l", os.path.dirname(full)]).stdout
    assert out.startswith(b"total")


def test_missing_names_are_enoent(mnt):
    m, model = mnt
    some = sorted(model.files)[0].split(b"/")
    org = os.fsdecode(some[0])
    for rel in ("no-such-org", org + "/1999", org + "/2026/13",
                org + "/2026/00", org + "/" + "/".join(
                    os.fsdecode(x) for x in some[1:4]) + "/nope",
                os.fsdecode(b"/".join(some[:5])) + "/no-such-event.json",
                os.fsdecode(b"/".join(some)) + "/below-a-file"):
        p = run(["stat", os.path.join(m.path, rel)], check=False)
        assert p.returncode != 0, rel
        assert (b"No such file or directory" in p.stderr or
                b"Not a directory" in p.stderr), (rel, p.stderr)


def test_everything_is_read_only(mnt, tree):
    m, model = mnt
    from conftest import probe
    path = sorted(model.files)[0]
    full = os.path.join(m.path, os.fsdecode(path))
    res = probe("mutate", full, os.path.dirname(full))
    wrong = {k: v for k, v in res.items() if v != "EROFS"}
    assert not wrong, "expected EROFS, got %s" % wrong
    shell = {
        "echo": "echo x > '%s'" % full,
        "append": "echo x >> '%s'" % full,
        "touch": "touch '%s'" % full,
        "touch_new": "touch '%s/new'" % os.path.dirname(full),
        "mkdir": "mkdir '%s/d'" % os.path.dirname(full),
        "mkdir_root": "mkdir '%s/d'" % m.path,
        "rm": "rm -f '%s'" % full,
        "rm_dir": "rm -rf '%s'" % os.path.dirname(full),
        "mv": "mv '%s' '%s.x'" % (full, full),
        "chmod": "chmod 600 '%s'" % full,
    }
    for name, cmd in shell.items():
        p = run(["sh", "-c", cmd], check=False)
        assert p.returncode != 0, name
        assert b"Read-only file system" in p.stderr, (name, p.stderr)
    # Nothing changed.
    again = walk(m.path)
    assert again.keys() == tree.keys()
    assert again[path]["content"] == model.files[path].content


def test_daemon_refuses_changes_without_the_kernels_ro_flag(s3, mnt,
                                                            mounter):
    """Root can lift the kernel's read-only flag (`mount -o remount,rw`,
    -i: no helper); every change then reaches the daemon, which answers
    EROFS itself."""
    if os.geteuid() != 0:
        pytest.skip("remounting read-write needs root")
    _m, model = mnt
    m = mounter.mount("s3://" + BUCKET)
    run(["mount", "-i", "-o", "remount,rw", m.path])
    options = run(["findmnt", "-n", "-M", m.path, "-o", "OPTIONS"])
    assert "rw" in options.stdout.decode().strip().split(","), options.stdout
    from conftest import probe
    path = sorted(model.files)[0]
    full = os.path.join(m.path, os.fsdecode(path))
    res = probe("mutate", full, os.path.dirname(full))
    wrong = {k: v for k, v in res.items() if v != "EROFS"}
    assert not wrong, "expected EROFS from the daemon, got %s" % wrong
    assert_tree(walk(m.path), model)


def test_copy_out_with_cp_and_tar(mnt, tmp_path):
    m, model = mnt
    tool = shutil.which("rsync")
    dst = tmp_path / "copy"
    if tool:
        run([tool, "-a", m.path + "/", str(dst) + "/"], timeout=120)
    else:
        run(["cp", "-a", m.path, str(dst)], timeout=120)
    copied = walk(str(dst))
    assert_tree(copied, model, check_modes=False)
    p = run(["tar", "-cf", "-", "-C", m.path, "."], timeout=120)
    listing = run(["tar", "-tf", "-"], input=p.stdout).stdout.splitlines()
    assert len([n for n in listing if not n.endswith(b"/")]) == \
        model.event_count()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT,
                                 signal.SIGHUP])
def test_signal_unmounts_and_exits_zero(s3, small_corpus, mounter, sig):
    """The man page promises status 0 after an unmount asked for by signal
    (how systemd and Ctrl-C stop a foreground mount)."""
    mirror, _model = small_corpus
    bucket = "basic-" + sig.name.lower()
    s3.seed(bucket, mirror)
    m = mounter.mount("s3://" + bucket)
    assert os.listdir(m.path)
    m.proc.send_signal(sig)
    try:
        rc = m.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("daemon did not exit after %s" % sig.name)
    assert not is_mounted(m.path), "still mounted after " + sig.name
    assert rc == 0, "exit status %d after %s:\n%s" % (rc, sig.name,
                                                      m.stderr())
    mounter.unmount(m)
