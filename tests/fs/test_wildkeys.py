"""Keys from the wild: S3 takes any UTF-8 key up to 1,024 bytes, and XML 1.0
cannot carry a control byte, so the daemon lists with encoding-type=url and
decodes. Odd keys at the bucket root and inside an org are ignored and logged
once; they never stop the mount, hide an org or change the tree."""

import os
import shutil

import pytest

import refmodel
from conftest import assert_tree, generate, walk

BUCKET = "wildkeys"
# A valid org name that url encoding must carry exactly: "+" is not a
# space, "%41" is not "A", and non-ASCII survives.
ODD_ORG = "o+1 %41 \u00fc~"


def long_key(head, total=1024):
    """A key of exactly `total` bytes under `head` (s3rver keeps keys as
    paths, so no component is longer than 200 bytes)."""
    key = head
    while len(key.encode()) < total:
        room = total - len(key.encode())
        key += ("d" * min(200, room - 1) + "/") if room > 201 else "k" * room
    assert len(key.encode()) == total
    return key


def odd_keys(org):
    """(root keys, keys inside org): none of them is a delivery."""
    root = [
        "\x01stray",
        "a\nb.json.gz",
        "esc\x1b[31mred",
        "del\x7f",
        "sp ace+plus%25.json.gz",
        "pct%zz%",
        # An org name with a control byte: ignored as a common prefix.
        "\x01org/org-audit-logs-1769590000000.json.gz",
        long_key("\x01org/"),
    ]
    inside = [
        org + "/\x01x",
        org + "/org-audit-logs-1769590000000.json.gz\x1b",
        org + "/a b+c%25",
        org + "/\x7f",
        long_key(org + "/"),
    ]
    return root, inside


# Ignored keys as the daemon meets them: every root object, the one common
# prefix ("\x01org/"), every key inside the org.
EXPECTED_IGNORED = 6 + 1 + 5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A clean corpus with one org renamed to ODD_ORG, and its model."""
    d = tmp_path_factory.mktemp("wild") / "mirror"
    generate(d, "--orgs", "3", "--days", "4", "--objects-per-day", "2",
             "--events-per-object", "3", "--seed", "5")
    orgs = sorted(os.listdir(d))
    os.rename(d / orgs[0], d / ODD_ORG)
    return d, refmodel.Model(str(d)), orgs[1]


@pytest.fixture(scope="module")
def bucket(s3, corpus, tmp_path_factory):
    mirror, model, org = corpus
    s3.seed(BUCKET, mirror)
    body = tmp_path_factory.mktemp("body") / "x"
    body.write_bytes(b"not a delivery\n")
    root, inside = odd_keys(org)
    for key in root + inside:
        s3.aws("s3api", "put-object", "--bucket", BUCKET, "--key", key,
               "--body", str(body))
    return model


def ignored_lines(err):
    return err.count("ignoring key '")


def test_listing_requests_ask_for_url_encoding(s3, bucket, mounter):
    since = s3.mark()
    m = mounter.mount("s3://" + BUCKET)
    os.listdir(m.path)
    lists = [r for r in s3.requests(since) if r[2] == "list"]
    assert lists
    assert all("encoding-type=url" in r[3] for r in lists), lists


def test_odd_keys_cost_only_themselves(s3, bucket, mounter):
    model = bucket
    m = mounter.mount("s3://" + BUCKET)
    got = sorted(os.listdir(os.fsencode(m.path)))
    assert got == model.listdir(b"") and ODD_ORG.encode() in got, got
    tree = walk(m.path)
    assert_tree(tree, model)
    err = m.stderr()
    assert ignored_lines(err) == EXPECTED_IGNORED, err
    assert "(%d such keys so far)" % EXPECTED_IGNORED in err, err
    assert "not valid XML" not in err
    # A second walk relists nothing new to say: each key was logged once.
    assert_tree(walk(m.path), model)
    assert ignored_lines(m.stderr()) == EXPECTED_IGNORED


def test_local_mirror_with_odd_names(corpus, mounter, tmp_path):
    mirror, model, org = corpus
    local = tmp_path / "mirror"
    shutil.copytree(mirror, local)
    root, inside = odd_keys(org)
    for key in root + inside:
        path = local / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a delivery\n")
    m = mounter.mount(str(local))
    assert_tree(walk(m.path), model)
    assert ignored_lines(m.stderr()) == EXPECTED_IGNORED, m.stderr()
