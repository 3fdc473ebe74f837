#!/usr/bin/env python3
"""Looks at a mounted tree from a child process, so a hung filesystem costs
the test a timeout (the child is killed) instead of hanging it forever.

    fsprobe.py walk ROOT [--no-content]   pickle of {relpath: Entry dict}
    fsprobe.py mutate FILE DIR            pickle of {operation: errno name}

Paths in the walk are bytes relative to ROOT ("" is ROOT itself).
"""

import errno
import os
import pickle
import stat
import sys


def _errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def _entry(path):
    st = os.lstat(path)
    e = {"mode": st.st_mode, "size": st.st_size, "mtime": int(st.st_mtime),
         "mtime_ns": st.st_mtime_ns, "nlink": st.st_nlink, "ino": st.st_ino,
         "uid": st.st_uid, "gid": st.st_gid}
    return e, st


def walk(root, content=True):
    out = {}
    stack = [b""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        try:
            e, st = _entry(full)
        except OSError as ex:
            out[rel] = {"error": "stat: " + _errname(ex)}
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(full))
            except OSError as ex:
                e["error"] = "listdir: " + _errname(ex)
                names = []
            e["children"] = names
            for n in names:
                stack.append(rel + b"/" + n if rel else n)
        elif stat.S_ISREG(st.st_mode):
            if content:
                try:
                    with open(full, "rb") as f:
                        e["content"] = f.read()
                except OSError as ex:
                    e["error"] = "read: " + _errname(ex)
            xattrs = {}
            try:
                for name in os.listxattr(full, follow_symlinks=False):
                    try:
                        xattrs[name] = os.getxattr(full, name,
                                                   follow_symlinks=False)
                    except OSError as ex:
                        xattrs[name] = "error: " + _errname(ex)
            except OSError as ex:
                xattrs = "error: " + _errname(ex)
            e["xattrs"] = xattrs
        out[rel] = e
    return out


def mutate(path, dirpath):
    """Tries every kind of write; returns {operation: "OK" or errno name}."""
    res = {}

    def attempt(name, fn):
        try:
            fn()
            res[name] = "OK"
        except OSError as ex:
            res[name] = _errname(ex)

    def write_existing():
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)

    def append_existing():
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"x\n")
        finally:
            os.close(fd)

    def trunc_open():
        os.close(os.open(path, os.O_WRONLY | os.O_TRUNC))

    def create():
        os.close(os.open(os.path.join(dirpath, b"new.json"),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

    attempt("write", write_existing)
    attempt("append", append_existing)
    attempt("open_trunc", trunc_open)
    attempt("truncate", lambda: os.truncate(path, 0))
    attempt("create", create)
    attempt("touch", lambda: os.utime(path, None))
    attempt("chmod", lambda: os.chmod(path, 0o644))
    attempt("chown", lambda: os.chown(path, 1, 1))
    attempt("unlink", lambda: os.unlink(path))
    attempt("rename", lambda: os.rename(path, path + b".moved"))
    attempt("mkdir", lambda: os.mkdir(os.path.join(dirpath, b"newdir")))
    attempt("rmdir", lambda: os.rmdir(dirpath))
    attempt("symlink", lambda: os.symlink(b"x",
                                          os.path.join(dirpath, b"link")))
    attempt("link", lambda: os.link(path, os.path.join(dirpath, b"hard")))
    attempt("mknod", lambda: os.mkfifo(os.path.join(dirpath, b"fifo")))
    attempt("setxattr", lambda: os.setxattr(path, "user.test", b"1"))
    attempt("removexattr",
            lambda: os.removexattr(path, "user.wivaudit.key"))
    attempt("chmod_dir", lambda: os.chmod(dirpath, 0o755))
    attempt("touch_dir", lambda: os.utime(dirpath, None))
    return res


def main():
    cmd = sys.argv[1]
    if cmd == "walk":
        result = walk(os.fsencode(sys.argv[2]),
                      content="--no-content" not in sys.argv[3:])
    elif cmd == "mutate":
        result = mutate(os.fsencode(sys.argv[2]), os.fsencode(sys.argv[3]))
    else:
        sys.exit("fsprobe: unknown command %s" % cmd)
    sys.stdout.buffer.write(pickle.dumps(result))


if __name__ == "__main__":
    main()
