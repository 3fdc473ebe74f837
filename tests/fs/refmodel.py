"""Reference model of the wivaudit tree, written from DESIGN.md alone.

Given a local directory that mirrors the bucket (an `aws s3 sync` copy, or
gen-sample.py's output), compute every path the mount must show, with its
exact content, mtime and extended attributes. It shares no code with the
daemon: the JSON is scanned and re-laid out here, byte for byte, so number
and string text survive exactly as delivered.

    m = Model("/path/to/mirror", window=86400, layout="pretty")
    m.files[b"ORG/2026/01/28/user/ID.json"] -> FileEntry
    m.dirs[b"ORG/2026/01/28"]              -> set of child names (bytes)

Paths are bytes relative to the mount root ("" is the root itself), since a
name cut at 180 bytes need not be valid UTF-8.
"""

import calendar
import datetime
import hashlib
import json
import math
import os
import re
import zlib
from decimal import Decimal, InvalidOperation

TYPES = ("org", "user", "api")
KEY_RE = re.compile(r"^([^/]+)/(org|user|api)-audit-logs-([0-9]+)\.json\.gz$")
DAY_S = 86400
NAME_MAX = 200
NAME_CUT = 180


class BadBody(Exception):
    """The body is not a complete JSON array (or not valid gzip)."""


# --- JSON scanning ----------------------------------------------------------
#
# A small strict RFC 8259 scanner over bytes. Values are kept as raw text
# spans so layout can copy strings and numbers exactly.

_WS = b" \t\n\r"
_NUM_RE = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESC = set(b'"\\/bfnrtu')


class Node:
    """A JSON value: kind is 'obj' (items: [(key_raw, Node)]), 'arr' (items:
    [Node]), 'str', 'num' or 'lit' (raw: the exact bytes)."""

    __slots__ = ("kind", "items", "raw")

    def __init__(self, kind, items=None, raw=None):
        self.kind = kind
        self.items = items
        self.raw = raw


def _skip_ws(b, i):
    n = len(b)
    while i < n and b[i] in _WS:
        i += 1
    return i


def _scan_string(b, i):
    """b[i] is '"'. Returns the index after the closing quote."""
    n = len(b)
    j = i + 1
    while True:
        if j >= n:
            raise BadBody("unterminated string")
        c = b[j]
        if c == 0x22:
            break
        if c < 0x20:
            raise BadBody("control byte in string")
        if c == 0x5C:
            if j + 1 >= n or b[j + 1] not in _ESC:
                raise BadBody("bad escape")
            if b[j + 1] == 0x75:
                if not re.fullmatch(rb"[0-9a-fA-F]{4}", b[j + 2:j + 6]):
                    raise BadBody("bad \\u escape")
                j += 6
            else:
                j += 2
            continue
        j += 1
    try:
        b[i + 1:j].decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("string is not UTF-8")
    return j + 1


def _parse(b, i, depth=0):
    """Parses one value at b[i] (no leading whitespace); returns
    (Node, end)."""
    if depth > 500:
        raise BadBody("nesting too deep")
    if i >= len(b):
        raise BadBody("unexpected end")
    c = b[i]
    if c == 0x7B:  # {
        items = []
        i = _skip_ws(b, i + 1)
        if i < len(b) and b[i] == 0x7D:
            return Node("obj", items), i + 1
        while True:
            if i >= len(b) or b[i] != 0x22:
                raise BadBody("expected a key")
            e = _scan_string(b, i)
            key = b[i:e]
            i = _skip_ws(b, e)
            if i >= len(b) or b[i] != 0x3A:
                raise BadBody("expected ':'")
            i = _skip_ws(b, i + 1)
            v, i = _parse(b, i, depth + 1)
            items.append((key, v))
            i = _skip_ws(b, i)
            if i < len(b) and b[i] == 0x2C:
                i = _skip_ws(b, i + 1)
                continue
            if i < len(b) and b[i] == 0x7D:
                return Node("obj", items), i + 1
            raise BadBody("expected ',' or '}'")
    if c == 0x5B:  # [
        items = []
        i = _skip_ws(b, i + 1)
        if i < len(b) and b[i] == 0x5D:
            return Node("arr", items), i + 1
        while True:
            v, i = _parse(b, i, depth + 1)
            items.append(v)
            i = _skip_ws(b, i)
            if i < len(b) and b[i] == 0x2C:
                i = _skip_ws(b, i + 1)
                continue
            if i < len(b) and b[i] == 0x5D:
                return Node("arr", items), i + 1
            raise BadBody("expected ',' or ']'")
    if c == 0x22:
        e = _scan_string(b, i)
        return Node("str", raw=b[i:e]), e
    for lit in (b"true", b"false", b"null"):
        if b.startswith(lit, i):
            return Node("lit", raw=lit), i + len(lit)
    m = _NUM_RE.match(b, i)
    if m:
        return Node("num", raw=m.group(0)), m.end()
    raise BadBody("unexpected byte 0x%02x" % c)


def parse_array(text):
    """Parses a whole body that must be one JSON array. Returns its element
    Nodes; raises BadBody otherwise."""
    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != 0x5B:
        raise BadBody("not a JSON array")
    node, i = _parse(text, i)
    if _skip_ws(text, i) != len(text):
        raise BadBody("trailing data after the array")
    return node.items


def layout(node, pretty=True):
    """The value re-laid out as `jq .` (pretty) or `jq -c` (compact) would,
    strings and numbers copied byte for byte; ends with one newline."""
    out = []

    def emit(n, ind):
        if n.kind in ("str", "num", "lit"):
            out.append(n.raw)
            return
        op, cl = (b"{", b"}") if n.kind == "obj" else (b"[", b"]")
        if not n.items:
            out.append(op + cl)
            return
        out.append(op)
        inner = ind + b"  "
        for k, item in enumerate(n.items):
            if k:
                out.append(b",")
            if pretty:
                out.append(b"\n" + inner)
            if n.kind == "obj":
                out.append(item[0] + (b": " if pretty else b":"))
                emit(item[1], inner)
            else:
                emit(item, inner)
        if pretty:
            out.append(b"\n" + ind)
        out.append(cl)

    emit(node, b"")
    return b"".join(out) + b"\n"


def decode_string(raw):
    """The str a raw JSON string token stands for."""
    return json.loads(raw.decode("utf-8"))


def canonical(node):
    """Text that is equal for two nodes exactly when they are the same JSON
    value: object keys sorted (by decoded key), strings decoded, number text
    as delivered."""
    if node.kind == "obj":
        items = sorted(((decode_string(k), canonical(v))
                        for k, v in node.items), key=lambda kv: kv[0])
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + v
                              for k, v in items) + "}"
    if node.kind == "arr":
        return "[" + ",".join(canonical(v) for v in node.items) + "]"
    if node.kind == "str":
        return json.dumps(decode_string(node.raw), ensure_ascii=False)
    return node.raw.decode("ascii")


def member(node, name):
    """The value of member `name` of an object node (last one wins), or
    None."""
    found = None
    for k, v in node.items:
        if decode_string(k) == name:
            found = v
    return found


# --- naming -----------------------------------------------------------------

def encode_name(id_bytes):
    """DESIGN.md's percent-encoding of an id's bytes."""
    out = bytearray()
    for i, c in enumerate(id_bytes):
        if c in (0x2F, 0x25) or c < 0x20 or c == 0x7F or (i == 0 and
                                                          c == 0x2E):
            out += b"%%%02X" % c
        else:
            out.append(c)
    return bytes(out)


def base_name(id_bytes, key_ms, position):
    """The file name without ".json" and "~N"; id_bytes None for no id."""
    if id_bytes is None:
        return b"_noid-%d-%d" % (key_ms, position)
    name = encode_name(id_bytes)
    if len(name) > NAME_MAX:
        name = (name[:NAME_CUT] + b"-" +
                hashlib.sha256(id_bytes).hexdigest()[:16].encode())
    return name


def event_id(node):
    """The id's bytes (string: its UTF-8 bytes; number: its JSON text), or
    None when missing, empty or of another type."""
    v = member(node, "id")
    if v is None:
        return None
    if v.kind == "str":
        s = decode_string(v.raw).encode("utf-8", "surrogatepass")
        return s or None
    if v.kind == "num":
        return v.raw
    return None


# --- the tree ---------------------------------------------------------------

def utc_day(seconds):
    """(yyyy, mm, dd) byte strings of the UTC day holding epoch `seconds`
    (an int)."""
    d = datetime.date(1970, 1, 1) + datetime.timedelta(
        days=seconds // DAY_S)
    return (b"%04d" % d.year, b"%02d" % d.month, b"%02d" % d.day)


class FileEntry:
    __slots__ = ("content", "mtime", "key", "etag", "event_type", "position",
                 "canonical")

    def __init__(self, content, mtime, key, etag, event_type, position,
                 canon):
        self.content = content
        self.mtime = mtime
        self.key = key
        self.etag = etag
        self.event_type = event_type
        self.position = position
        self.canonical = canon

    def __repr__(self):
        return "FileEntry(key=%r, pos=%d, mtime=%d, %d bytes)" % (
            self.key, self.position, self.mtime, len(self.content))


class Model:
    """The expected tree of a mirror directory.

    Attributes:
      files:  {path: FileEntry}
      dirs:   {path: set of child names}  ("" is the root)
      objects: [(key, org, type, key_ms)] of matching keys, in tree order
      bad_keys: keys whose body was skipped whole, {key: reason}
      skipped_elements: {key: count of non-object elements}
      plain_keys: keys whose body was a plain (not gzip) array
      other_keys: keys not matching the delivery pattern
      redeliveries: number of events not shown because already shown
      unreadable: keys listed but never read (archived, denied...): their
                  days exist, their events are not shown

    """

    def __init__(self, mirror, window=86400, layout="pretty",
                 unreadable=()):
        self.mirror = mirror
        self.window = window
        self.pretty = layout == "pretty"
        self.files = {}
        self.dirs = {b"": set()}
        self.objects = []
        self.bad_keys = {}
        self.skipped_elements = {}
        self.plain_keys = []
        self.other_keys = []
        self.redeliveries = 0
        self.unreadable = set(unreadable)
        self._build()

    def _add_dir(self, parts):
        path = b""
        for p in parts:
            self.dirs.setdefault(path, set()).add(p)
            path = path + b"/" + p if path else p
            self.dirs.setdefault(path, set())
        return path

    def _read_body(self, key):
        with open(os.path.join(self.mirror, key), "rb") as f:
            data = f.read()
        etag = hashlib.md5(data).hexdigest()
        if data[:2] == b"\x1f\x8b":
            try:
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                text = d.decompress(data) + d.flush()
                if not d.eof:
                    raise BadBody("truncated gzip")
                if d.unused_data:
                    raise BadBody("data after the gzip stream")
            except zlib.error as e:
                raise BadBody("corrupt gzip: %s" % e)
            return text, etag, False
        return data, etag, True

    def _build(self):
        keys = []
        for root, _dirs, names in os.walk(self.mirror):
            for name in names:
                full = os.path.join(root, name)
                keys.append(os.path.relpath(full, self.mirror)
                            .replace(os.sep, "/"))
        matching = []
        for key in sorted(keys):
            m = KEY_RE.match(key)
            if not m:
                self.other_keys.append(key)
                continue
            org, typ, ms = m.group(1), m.group(2), int(m.group(3))
            matching.append((ms, key, org, typ))
        matching.sort()

        # Directories come from the listing alone.
        typedirs = set()
        for ms, key, org, typ in matching:
            day = utc_day(ms // 1000)
            typedirs.add((org, day, typ))
            self._add_dir([org.encode()] + list(day) + [typ.encode()])

        per_dir = {}
        for ms, key, org, typ in matching:
            self.objects.append((key, org, typ, ms))
            if key in self.unreadable:
                continue
            try:
                text, etag, plain = self._read_body(key)
                elements = parse_array(text)
            except BadBody as e:
                self.bad_keys[key] = str(e)
                continue
            if plain:
                self.plain_keys.append(key)
            for pos, node in enumerate(elements):
                if node.kind != "obj":
                    self.skipped_elements[key] = \
                        self.skipped_elements.get(key, 0) + 1
                    continue
                day, mtime = self._date(node, ms, org, typ, typedirs)
                d = (org, day, typ)
                per_dir.setdefault(d, []).append((ms, key, pos, node, etag,
                                                  mtime))

        for (org, day, typ), events in per_dir.items():
            dpath = b"/".join([org.encode()] + list(day) + [typ.encode()])
            taken = self.dirs[dpath]
            seen = set()
            for ms, key, pos, node, etag, mtime in sorted(
                    events, key=lambda e: (e[0], e[1], e[2])):
                canon = canonical(node)
                if canon in seen:
                    self.redeliveries += 1
                    continue
                seen.add(canon)
                base = base_name(event_id(node), ms, pos)
                fname = base + b".json"
                n = 2
                while fname in taken:
                    fname = base + b"~%d.json" % n
                    n += 1
                taken.add(fname)
                et = member(node, "event_type")
                et = decode_string(et.raw) if et is not None and \
                    et.kind == "str" else None
                self.files[dpath + b"/" + fname] = FileEntry(
                    layout(node, self.pretty), mtime, key, etag, et, pos,
                    canon)

    def _date(self, node, key_ms, org, typ, typedirs):
        """DESIGN.md's date rule: (day, mtime) for one event."""
        c = member(node, "created_at")
        if c is not None and c.kind == "num":
            try:
                secs = Decimal(c.raw.decode())
            except InvalidOperation:
                secs = None
            if secs is not None and secs.is_finite() and \
                    abs(secs * 1000 - key_ms) <= self.window * 1000:
                whole = math.floor(secs)
                day = utc_day(whole)
                if (org, day, typ) in typedirs:
                    return day, whole
        return utc_day(key_ms // 1000), key_ms // 1000

    # --- queries used by the tests -----------------------------------------

    def missing_in(self, keys):
        """{type directory path: set of keys}: where each of keys is named
        as missing, every directory whose window (its day, widened by W on
        both sides) holds the key's timestamp."""
        out = {}
        day_ms = 86400 * 1000
        for key, org, typ, ms in self.objects:
            if key not in keys:
                continue
            for path in self.dirs:
                parts = path.split(b"/")
                if len(parts) != 5 or parts[0] != org.encode() or \
                        parts[4] != typ.encode():
                    continue
                day = calendar.timegm((int(parts[1]), int(parts[2]),
                                       int(parts[3]), 0, 0, 0)) * 1000
                if day - self.window * 1000 <= ms <= \
                        day + day_ms + self.window * 1000:
                    out.setdefault(path, set()).add(key)
        return out

    def listdir(self, path=b""):
        """Sorted child names of a directory path."""
        return sorted(self.dirs[path])

    def is_dir(self, path):
        return path in self.dirs

    def event_count(self):
        return len(self.files)

    def files_with(self, needle):
        """Paths of files whose content contains the bytes `needle`."""
        return sorted(p for p, f in self.files.items() if needle in f.content)

    def subdir_count(self, path):
        return sum(1 for c in self.dirs[path]
                   if (path + b"/" + c if path else c) in self.dirs)


def main(argv=None):
    """Prints the model's tree (for eyeballing a corpus)."""
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mirror")
    p.add_argument("--window", type=int, default=86400)
    p.add_argument("--layout", choices=("pretty", "compact"),
                   default="pretty")
    p.add_argument("--summary", action="store_true")
    a = p.parse_args(argv)
    m = Model(a.mirror, a.window, a.layout)
    if not a.summary:
        for path in sorted(m.files):
            f = m.files[path]
            print("%s\t%d\t%d\t%s" % (path.decode("utf-8", "replace"),
                                      f.mtime, len(f.content), f.key))
    print("dirs %d, files %d, objects %d, bad %d, plain %d, other %d, "
          "redeliveries %d" % (len(m.dirs), len(m.files), len(m.objects),
                               len(m.bad_keys), len(m.plain_keys),
                               len(m.other_keys), m.redeliveries))


if __name__ == "__main__":
    main()
