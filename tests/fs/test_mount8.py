"""mount(8) and fstab: `mount -t wivaudit`, `mount --fstab`, `umount`, with
the built mount.wivaudit installed as /sbin/mount.wivaudit.

These go through util-linux's real helper protocol: mount(8) finds the
helper only in /sbin (/sbin/fs.d, /sbin/fs), passes `SOURCE DIR [-sfnv]
-o OPTS` with `rw` added whenever neither ro nor rw is given, hands over its
environment, and waits for the helper to exit, so the daemon must detach.

The module runs in a private mount namespace of its own, where /sbin is
an overlay holding the built helper: the machine's /sbin, and a
mount.wivaudit installed there, are never touched, and the sanitizer
build's run of this module does not have to take turns."""

import ctypes
import glob
import os
import re
import signal
import time

import pytest

from conftest import (ACCESS_KEY, MOUNT_TIMEOUT, SECRET, UNMOUNT_TIMEOUT,
                      assert_tree, daemon_bin, is_mounted, run, walk)

HELPER = "/sbin/mount.wivaudit"
BUCKET = "mount8"
CLONE_NEWNS = 0x00020000
MNT_DETACH = 2


def _check(rc, what):
    if rc != 0:
        pytest.fail("%s: %s" % (what, os.strerror(ctypes.get_errno())))


def _let_go_of_fuse_mounts(libc):
    """The new namespace holds a copy of every mount, other tests' wivaudit
    mounts included, and while a copy lives, unmounting the original does
    not end its daemon (the kernel keeps the connection for the copy).
    Detaches the copies at once; this module's own mounts come later."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split() for line in f]
    for _dev, target, fstype, *_ in reversed(mounts):
        if fstype == "fuse.wivaudit":
            target = re.sub(r"\\([0-7]{3})",
                            lambda m: chr(int(m.group(1), 8)), target)
            libc.umount2(target.encode(), MNT_DETACH)


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    """This process (so mount(8), the daemons and the probes it starts)
    moves to a private mount namespace where HELPER is the built binary;
    it moves back when the module is done, and the namespace, with its
    overlay, goes away with its last process."""
    if os.geteuid() != 0:
        pytest.skip("mount(8) with a helper in /sbin needs root")
    binary = daemon_bin()
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        try:
            run(["mount", "--make-rprivate", "/"])
            _let_go_of_fuse_mounts(libc)
            sbin = os.path.dirname(os.path.realpath(HELPER))
            # An overlay's upper directory cannot sit on every file system
            # (not on another overlay): a tmpfs always works.
            tmp = str(tmp_path_factory.mktemp("sbin-overlay"))
            run(["mount", "-t", "tmpfs", "tmpfs", tmp])
            os.mkdir(os.path.join(tmp, "upper"))
            os.mkdir(os.path.join(tmp, "work"))
            run(["mount", "-t", "overlay", "overlay", "-o",
                 "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (
                     sbin, tmp, tmp), sbin])
            if os.path.lexists(HELPER):
                os.unlink(HELPER)  # in the overlay only
            os.symlink(binary, HELPER)
            yield HELPER
        finally:
            _check(libc.setns(home, CLONE_NEWNS), "setns back")
    finally:
        os.close(home)


@pytest.fixture(scope="module")
def bucket(s3, small_corpus):
    mirror, model = small_corpus
    s3.seed(BUCKET, mirror)
    return mirror, model


class Mount8:
    """Mounts through mount(8) and always unmounts, then waits (bounded)
    for the detached daemon, whose pid its cache directory names."""

    def __init__(self, tmp_path, s3=None):
        self.tmp = tmp_path
        self.s3 = s3
        self.n = 0
        self.mounted = []
        home = tmp_path / "home"
        home.mkdir()
        empty = home / "empty"
        empty.write_text("")
        # Credentials only in the environment: if mount(8) did not pass it
        # on, the helper would find none.
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("AWS_") and k != "WIVAUDIT_CONFIG"}
        self.env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY,
                        AWS_SECRET_ACCESS_KEY=SECRET,
                        AWS_REGION="us-east-1",
                        AWS_CONFIG_FILE=str(empty),
                        AWS_SHARED_CREDENTIALS_FILE=str(empty),
                        AWS_EC2_METADATA_DISABLED="true", HOME=str(home))

    def paths(self):
        self.n += 1
        mnt = self.tmp / ("mnt%d" % self.n)
        mnt.mkdir()
        return str(mnt), str(self.tmp / ("cache%d" % self.n))

    def mount(self, argv, mnt, cache, check=True):
        """Runs mount(8); returns the CompletedProcess. mount(8) must come
        back on its own: a helper that did not detach times out here."""
        p = run(argv, timeout=MOUNT_TIMEOUT + 15, check=False, env=self.env)
        if is_mounted(mnt):
            self.mounted.append((mnt, cache))
        if check:
            assert p.returncode == 0, p.stderr.decode()
            assert is_mounted(mnt), "mount(8) said 0 but nothing is mounted"
        return p

    def daemon_pids(self, cache):
        return [int(os.path.basename(f).split(".")[0])
                for f in glob.glob(os.path.join(cache, "mounts", "*.stats"))]

    def umount(self, mnt, cache):
        pids = self.daemon_pids(cache)
        p = run(["umount", mnt], timeout=UNMOUNT_TIMEOUT, check=False)
        if p.returncode != 0:
            run(["fusermount3", "-uz", mnt], timeout=UNMOUNT_TIMEOUT,
                check=False)
        self.mounted = [m for m in self.mounted if m[0] != mnt]
        lingering = self._reap(pids)
        assert p.returncode == 0, p.stderr.decode()
        assert not is_mounted(mnt)
        assert not lingering, "daemon %s still running after umount" % \
            lingering

    @staticmethod
    def _reap(pids):
        deadline = time.monotonic() + 5
        alive = list(pids)
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if os.path.exists("/proc/%d" % p)]
            time.sleep(0.05)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return alive

    def cleanup(self):
        for mnt, cache in list(self.mounted):
            pids = self.daemon_pids(cache)
            run(["umount", mnt], timeout=UNMOUNT_TIMEOUT, check=False)
            if is_mounted(mnt):
                run(["fusermount3", "-uz", mnt], timeout=UNMOUNT_TIMEOUT,
                    check=False)
            self._reap(pids)
        self.mounted = []


@pytest.fixture
def m8(tmp_path, helper, request):
    s3srv = request.getfixturevalue("s3") if "s3" in request.fixturenames \
        else None
    m = Mount8(tmp_path, s3srv)
    yield m
    m.cleanup()


def mount_entry(mnt):
    p = run(["findmnt", "-n", "-M", mnt, "-o", "FSTYPE,OPTIONS,SOURCE"])
    fstype, options, source = p.stdout.decode().split()
    return fstype, options.split(","), source


def test_mount_t_local_mirror(m8, small_corpus):
    """mount -t wivaudit MIRROR DIR -o ...: mount(8) finds the helper, the
    helper daemonizes (mount returns), and umount ends the daemon."""
    mirror, model = small_corpus
    mnt, cache = m8.paths()
    m8.mount(["mount", "-t", "wivaudit", str(mirror), mnt, "-o",
              "cache_dir=%s,list_ttl=5" % cache], mnt, cache)
    fstype, options, source = mount_entry(mnt)
    assert fstype == "fuse.wivaudit"
    assert "ro" in options
    assert source == str(mirror)
    assert len(m8.daemon_pids(cache)) == 1
    assert_tree(walk(mnt), model)
    m8.umount(mnt, cache)


def test_mount_t_s3_with_environment_credentials(s3, bucket, m8):
    """The AWS_* variables of the caller reach the helper through mount(8):
    there are no credentials anywhere else."""
    _mirror, model = bucket
    mnt, cache = m8.paths()
    m8.mount(["mount", "-t", "wivaudit", "s3://" + BUCKET, mnt, "-o",
              "endpoint=%s,cache_dir=%s,list_ttl=5" % (s3.endpoint, cache)],
             mnt, cache)
    assert mount_entry(mnt)[2] == "s3://" + BUCKET
    assert_tree(walk(mnt), model)
    m8.umount(mnt, cache)


def test_mount_fstab_line(s3, bucket, m8, tmp_path):
    """The README's fstab line, in a temporary fstab, through
    `mount --fstab FILE DIR`: allow_other brings default_permissions."""
    _mirror, model = bucket
    mnt, cache = m8.paths()
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# wivaudit\ns3://%s %s wivaudit ro,_netdev,nofail,allow_other,"
        "endpoint=%s,cache_dir=%s 0 0\n" % (BUCKET, mnt, s3.endpoint, cache))
    m8.mount(["mount", "--fstab", str(fstab), mnt], mnt, cache)
    _fstype, options, _source = mount_entry(mnt)
    assert "ro" in options and "allow_other" in options
    assert "default_permissions" in options
    assert sorted(os.listdir(os.fsencode(mnt))) == model.listdir(b"")
    m8.umount(mnt, cache)


@pytest.mark.parametrize("options", [
    "defaults",
    "noauto,x-systemd.automount,x-systemd.idle-timeout=10min",
    "_netdev,nofail,user,comment=audit",
    "rw",
])
def test_fstab_generic_options(m8, small_corpus, tmp_path, options):
    """mount's generic options are accepted. `defaults` and no ro at all
    make mount(8) pass `rw` (indistinguishable from an explicit rw), so rw
    is accepted too and the mount is read-only anyway."""
    mirror, model = small_corpus
    mnt, cache = m8.paths()
    fstab = tmp_path / "fstab"
    fstab.write_text("%s %s wivaudit %s,cache_dir=%s 0 0\n" % (
        mirror, mnt, options, cache))
    m8.mount(["mount", "--fstab", str(fstab), mnt], mnt, cache)
    assert "ro" in mount_entry(mnt)[1]
    org = os.listdir(mnt)[0]
    with pytest.raises(OSError) as e:
        open(os.path.join(mnt, org, "new.json"), "w").close()
    assert e.value.errno == 30  # EROFS
    assert sorted(os.listdir(os.fsencode(mnt))) == model.listdir(b"")
    m8.umount(mnt, cache)


def test_helper_flags(m8, small_corpus):
    """-v and -n are taken, -s turns an unknown option into a warning."""
    mirror, _model = small_corpus
    mnt, cache = m8.paths()
    p = m8.mount(["mount", "-v", "-n", "-s", "-t", "wivaudit", str(mirror),
                  mnt, "-o", "cache_dir=%s,no_such_option" % cache], mnt,
                 cache)
    assert b"ignoring unknown option 'no_such_option'" in p.stderr
    m8.umount(mnt, cache)


@pytest.mark.parametrize("source,options,message", [
    ("/no/such/mirror", "", "is neither s3://bucket"),
    (None, "no_such_option", "bad option 'no_such_option'"),
    (None, "cache_size=lots", "bad option 'cache_size=lots'"),
])
def test_mount_t_failures_are_one_clear_line(m8, small_corpus, source,
                                             options, message):
    mirror, _model = small_corpus
    mnt, cache = m8.paths()
    argv = ["mount", "-t", "wivaudit", source or str(mirror), mnt, "-o",
            "cache_dir=" + cache + ("," + options if options else "")]
    p = m8.mount(argv, mnt, cache, check=False)
    assert p.returncode != 0
    assert not is_mounted(mnt)
    err = p.stderr.decode()
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
