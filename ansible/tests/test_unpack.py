"""The collect role's unpacker (roles/collect/files/redpacket-unpack.py), run as the role
runs it, on archives crafted with tarfile: every kind of member a host that is not clean
could send is rejected whole, with one line naming the host and why, and nothing is
written; a good archive lands with our modes and replaces the earlier copy. Run from the
repository's root:

    python3 -m unittest ansible/tests/test_unpack.py -v

(`cargo test --test ansible_units` runs it too, with `python3 -B -E -S`.)
"""

import gzip
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

UNPACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "roles", "collect", "files",
                      "redpacket-unpack.py")
HOST = "cli1"
KIB = 1024
MIB = 1024 * KIB
# Small caps for the ordinary cases: 64 KiB per file, 256 KiB per host, 50 members.
CAPS = (64 * KIB, 256 * KIB, 50)

# Runs the unpacker as a child and reports its exit, output and peak memory: the
# children's rusage of this one process holds the unpacker's alone.
MEASURE = """
import json, resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": p.returncode, "out": p.stdout, "err": p.stderr, "seconds": time.monotonic() - t,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def info(name, kind=tarfile.REGTYPE, data=b"", mode=None, **attrs):
    """A member: (TarInfo, data)."""
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    ti.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    ti.mtime = 1700000000
    for k, v in attrs.items():
        setattr(ti, k, v)
    return ti, data


def folder(name, **kw):
    return info(name, tarfile.DIRTYPE, **kw)


def tar_bytes(members, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def good_members():
    return [folder(HOST), info(HOST + "/summary.json", data=b'{"ok": true}\n'),
            folder(HOST + "/instance-1"), info(HOST + "/instance-1/server.jsonl", data=b"{}\n" * 100)]


def tree(root):
    """Everything under root, links not followed: path -> (type, mode, size, content)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    what = f.read()
            else:
                what = None
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, what)
    return out


class Unpack(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="redpacket-unpack-test.")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.dest = os.path.join(self.tmp, "results", "run-1")       # the run folder
        self.outside = os.path.join(self.tmp, "outside")             # must never change
        os.makedirs(os.path.join(self.dest, "cli2"))
        os.makedirs(os.path.join(self.dest, HOST))
        os.makedirs(self.outside)
        for path, text in [("cli2/summary.json", "another host's\n"), ("run.json", "{}\n"),
                           (HOST + "/old.json", "an earlier copy\n")]:
            with open(os.path.join(self.dest, path), "w") as f:
                f.write(text)
        with open(os.path.join(self.outside, "secret"), "w") as f:
            f.write("keep\n")
        self.archive = os.path.join(self.dest, HOST + ".tar.gz")

    def write(self, members=None, raw=None, fmt=tarfile.GNU_FORMAT):
        with open(self.archive, "wb") as f:
            f.write(raw if raw is not None else gzip.compress(tar_bytes(members, fmt)))

    def unpack(self, caps=CAPS, measure=False, umask=None, host=HOST):
        argv = [sys.executable, "-I", UNPACK, self.archive, self.dest, host,
                "--max-file-bytes", str(caps[0]), "--max-host-bytes", str(caps[1]), "--max-members", str(caps[2])]
        if measure:
            p = subprocess.run([sys.executable, "-I", "-c", MEASURE] + argv, capture_output=True, text=True,
                               timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr)
            return json.loads(p.stdout)
        pre = (lambda: os.umask(umask)) if umask is not None else None
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300, preexec_fn=pre)
        return {"rc": p.returncode, "out": p.stdout, "err": p.stderr}

    def snapshot(self):
        """The run folder (less the archive) and the folder outside it."""
        t = tree(self.dest)
        t.pop(os.path.basename(self.archive), None)
        return t, tree(self.outside)

    def assert_rejected(self, why, members=None, raw=None, caps=CAPS, fmt=tarfile.GNU_FORMAT, measure=False):
        """Rejected with one line `cli1: ...why...`, and nothing written anywhere."""
        self.write(members, raw, fmt)
        before = self.snapshot()
        r = self.unpack(caps, measure)
        self.assertEqual(r["rc"], 1, r)
        self.assertEqual(len(r["err"].strip().splitlines()), 1, r["err"])
        self.assertTrue(r["err"].startswith(HOST + ": "), r["err"])
        self.assertIn(why, r["err"])
        self.assertEqual(self.snapshot(), before, "a rejected archive wrote something")
        return r

    # --- what a host that is not clean could send ---------------------------------------

    def test_symlink(self):
        self.assert_rejected("is a symbolic link (-> '/etc/hostname')",
                             good_members() + [info(HOST + "/evil", tarfile.SYMTYPE, linkname="/etc/hostname")])

    def test_symlinked_folder(self):
        self.assert_rejected("symbolic link", [folder(HOST), info(HOST + "/charts", tarfile.SYMTYPE, linkname="/")])

    def test_hard_link(self):
        self.assert_rejected("is a hard link",
                             good_members() + [info(HOST + "/h", tarfile.LNKTYPE, linkname=HOST + "/summary.json")])

    def test_devices_and_fifo(self):
        for kind, what in [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
                           (tarfile.FIFOTYPE, "is a FIFO")]:
            with self.subTest(what):
                self.assert_rejected(what, good_members() + [info(HOST + "/dev", kind, devmajor=1, devminor=3)])

    def test_other_types(self):
        for kind, what in [(tarfile.CONTTYPE, "contiguous file"), (b"V", "of type b'V'")]:
            with self.subTest(what):
                self.assert_rejected(what, good_members() + [info(HOST + "/odd", kind)])

    def test_setuid_setgid_sticky(self):
        for member in [info(HOST + "/suid", data=b"#!/bin/sh\n", mode=0o4755),
                       info(HOST + "/sgid", data=b"x", mode=0o2755),
                       folder(HOST + "/sticky", mode=0o1777), folder(HOST + "/sgid-dir", mode=0o2755)]:
            with self.subTest(member[0].name):
                self.assert_rejected("setuid, setgid and sticky bits are refused", good_members() + [member])

    def test_absolute_path(self):
        self.assert_rejected("absolute path", good_members() + [info("/tmp/redpacket-planted", data=b"x")])
        self.assertFalse(os.path.exists("/tmp/redpacket-planted"))

    def test_dotdot_path(self):
        self.assert_rejected("'..'", good_members() + [info(HOST + "/../cli2/summary.json", data=b"mine\n")])
        self.assert_rejected("'..'", good_members() + [info(HOST + "/../../../outside/secret", data=b"x")])

    def test_another_hosts_name(self):
        self.assert_rejected("under another name than cli1/",
                             good_members() + [info("cli2/summary.json", data=b"overwritten\n")])

    def test_top_level_member(self):
        self.assert_rejected("at the top level", good_members() + [info("report.html", data=b"<html>")])
        self.assert_rejected("at the top level", good_members() + [folder("charts")])

    def test_odd_paths(self):
        for name, why in [(HOST + "//a", "empty or '.'"), (HOST + "/./a", "empty or '.'"),
                          ("./" + HOST + "/a", "empty or '.'"), (HOST + "/" + "n" * 300, "longer than 255")]:
            with self.subTest(name[:20]):
                self.assert_rejected(why, good_members() + [info(name, data=b"x")])

    def test_host_name_is_a_file(self):
        self.assert_rejected("is a file, not a folder", [info(HOST, data=b"x")])

    def test_listed_twice_and_file_under_file(self):
        self.assert_rejected("listed twice", good_members() + [info(HOST + "/summary.json", data=b"second\n")])
        self.assert_rejected("lies under a file", good_members() + [info(HOST + "/summary.json/x", data=b"x")])
        self.assert_rejected("a file where a folder was", [info(HOST + "/a/b", data=b"x"), info(HOST + "/a", data=b"x")])

    def test_file_over_its_cap(self):
        self.assert_rejected("over the per-file cap of 65536 bytes (redpacket_collect_max_file_mb)",
                             good_members() + [info(HOST + "/big", data=b"x" * (CAPS[0] + 1))])

    def test_file_at_its_cap_passes(self):
        self.write(good_members() + [info(HOST + "/big", data=b"x" * CAPS[0])])
        r = self.unpack()
        self.assertEqual(r["rc"], 0, r)
        self.assertEqual(os.path.getsize(os.path.join(self.dest, HOST, "big")), CAPS[0])

    def test_host_over_its_cap(self):
        parts = [info("%s/part-%d" % (HOST, i), data=b"y" * (60 * KIB)) for i in range(5)]   # 300 KiB
        self.assert_rejected("more than the per-host cap of 262144 bytes (redpacket_collect_max_host_mb)",
                             good_members() + parts)

    def test_too_many_members(self):
        many = [info("%s/f%03d" % (HOST, i), data=b"z") for i in range(CAPS[2])]
        self.assert_rejected("more than 50 members (redpacket_collect_max_members)", good_members() + many)

    def test_extended_header_bombs(self):
        for kind in (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE):
            with self.subTest(kind):
                head = tarfile.TarInfo("././@LongLink")
                head.type, head.size = kind, 1 << 40
                raw = gzip.compress(head.tobuf(tarfile.GNU_FORMAT) + bytes(64 * KIB))
                self.assert_rejected("an extended header of 1099511627776 bytes", raw=raw)

    def test_global_pax_header(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                          pax_headers={"comment": "x" * 1000}) as tf:
            for ti, data in good_members():
                tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
        self.assert_rejected("a global pax header", raw=gzip.compress(buf.getvalue()))

    def test_pax_archive_with_long_names_passes(self):
        deep = HOST + "/" + "/".join(["d" * 60] * 5) + "/f"
        self.write(good_members() + [info(deep, data=b"deep\n")], fmt=tarfile.PAX_FORMAT)
        r = self.unpack()
        self.assertEqual(r["rc"], 0, r)
        with open(os.path.join(self.dest, deep), "rb") as f:
            self.assertEqual(f.read(), b"deep\n")

    def test_truncated_and_not_gzip(self):
        whole = tar_bytes(good_members() + [info(HOST + "/tail", data=b"t" * 5000)])
        cut = whole[:whole.index(b"t" * 100) + 2000]
        self.assert_rejected("member 'cli1/tail': unexpected end of data", raw=gzip.compress(cut))
        self.assert_rejected("not a whole gzip archive", raw=gzip.compress(whole)[:-100])
        self.assert_rejected("not a whole gzip archive", raw=b"<html>not an archive</html>\n" * 20)
        self.assert_rejected("the archive is empty", raw=gzip.compress(bytes(10240)))

    def test_archive_is_a_symlink(self):
        real = os.path.join(self.tmp, "real.tar.gz")
        with open(real, "wb") as f:
            f.write(gzip.compress(tar_bytes(good_members())))
        os.symlink(real, self.archive)
        before = self.snapshot()
        r = self.unpack()
        self.assertEqual(r["rc"], 1, r)
        self.assertIn("cannot open the archive", r["err"])
        self.assertEqual(self.snapshot(), before)

    def test_usage(self):
        self.write(good_members())
        for host in ("a/b", "..", ""):
            with self.subTest(host):
                self.assertEqual(self.unpack(host=host)["rc"], 2)
        p = subprocess.run([sys.executable, "-I", UNPACK, self.archive, self.dest, HOST], capture_output=True)
        self.assertEqual(p.returncode, 2)

    # --- gzip bombs: a few MB that would inflate to gigabytes -----------------------------

    BOMB_CAPS = (64 * MIB, 128 * MIB, 1000)

    def bomb_parts(self):
        """One gzip member of 60 MiB of zeros, compressed once (~60 KB): concatenated gzip
        members are one gzip stream, so a bomb is built in a moment."""
        return gzip.compress(bytes(60 * MIB), 9)

    def assert_bounded(self, r, raw):
        self.assertLess(len(raw), 8 * MIB)
        self.assertLess(r["seconds"], 30, r)
        self.assertLess(r["maxrss_kib"], 100 * KIB, "the unpacker used %d KiB" % r["maxrss_kib"])
        print("\n    %s: %.1f MB compressed, rejected in %.2f s, peak memory %d MiB"
              % (self.id().rsplit(".", 1)[-1], len(raw) / 1e6, r["seconds"], r["maxrss_kib"] // 1024),
              file=sys.stderr)

    def test_deflate_bomb_in_files(self):
        """64 members of 60 MiB each (3.75 GiB): each within the per-file cap, the total not."""
        zeros = self.bomb_parts()
        raw = b"".join(self._bomb_member(i, zeros) for i in range(64)) + gzip.compress(bytes(1024))
        r = self.assert_rejected("more than the per-host cap", raw=raw, caps=self.BOMB_CAPS, measure=True)
        self.assert_bounded(r, raw)

    def _bomb_member(self, i, zeros):
        """A header of a 60 MiB file, then its data: 60 MiB of zeros."""
        ti = tarfile.TarInfo("%s/zero-%02d" % (HOST, i))
        ti.size = 60 * MIB
        return gzip.compress(ti.tobuf(tarfile.GNU_FORMAT)) + zeros

    def test_deflate_bomb_after_the_end(self):
        """A small good archive followed by 3.75 GiB of zeros: never unpacked, but read
        (for gzip's check) only as far as the caps allow."""
        zeros = self.bomb_parts()
        raw = gzip.compress(tar_bytes(good_members())) + zeros * 64
        r = self.assert_rejected("inflates to more than", raw=raw, caps=self.BOMB_CAPS, measure=True)
        self.assert_bounded(r, raw)

    # --- what must work ---------------------------------------------------------------------

    def test_good_archive(self):
        """Files land 0644, folders 0755 whatever the archive and the umask say, contents
        intact, the earlier copy replaced, nothing left beside it."""
        members = [folder(HOST, mode=0o700, uid=12345, gid=12345),
                   info(HOST + "/summary.json", data=b'{"ok": true}\n', mode=0o600, uid=12345),
                   info(HOST + "/run.sh", data=b"#!/bin/sh\n", mode=0o777),
                   folder(HOST + "/instance-1", mode=0o777),
                   info(HOST + "/instance-1/server.jsonl", data=bytes(range(256)) * 200),
                   info(HOST + "/implied/folder/file", data=b"parents not listed\n"),
                   info(HOST + "/empty", data=b"")]
        self.write(members)
        others = tree(os.path.join(self.dest, "cli2")), tree(self.outside)
        r = self.unpack(umask=0o077)
        self.assertEqual(r["rc"], 0, r)
        self.assertEqual(r["err"], "")
        root = os.path.join(self.dest, HOST)
        self.assertFalse(os.path.exists(os.path.join(root, "old.json")), "the earlier copy was not replaced")
        got = tree(root)
        want_files = {ti.name[len(HOST) + 1:]: data for ti, data in members if ti.isreg()}
        for rel, (kind, mode, _, content) in got.items():
            if rel in want_files:
                self.assertEqual((kind, mode, content), (stat.S_IFREG, 0o644, want_files.pop(rel)), rel)
            else:
                self.assertEqual((kind, mode), (stat.S_IFDIR, 0o755), rel)
        self.assertEqual(want_files, {}, "files missing")
        st = os.lstat(root)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o755, os.getuid()))
        self.assertEqual(os.stat(os.path.join(root, "summary.json")).st_uid, os.getuid())
        self.assertEqual(sorted(os.listdir(self.dest)), sorted(["cli2", HOST, "run.json", HOST + ".tar.gz"]),
                         "something was left beside the host's folder")
        self.assertEqual((tree(os.path.join(self.dest, "cli2")), tree(self.outside)), others)

    def test_symlink_at_the_hosts_folder_is_replaced_not_followed(self):
        shutil.rmtree(os.path.join(self.dest, HOST))
        os.symlink(self.outside, os.path.join(self.dest, HOST))
        self.write(good_members())
        before = tree(self.outside)
        r = self.unpack()
        self.assertEqual(r["rc"], 0, r)
        self.assertFalse(os.path.islink(os.path.join(self.dest, HOST)))
        self.assertTrue(os.path.isfile(os.path.join(self.dest, HOST, "summary.json")))
        self.assertEqual(tree(self.outside), before, "the unpacker wrote through the symlink")

    def test_rejected_archive_leaves_a_symlink_at_the_hosts_folder_alone(self):
        shutil.rmtree(os.path.join(self.dest, HOST))
        os.symlink(self.outside, os.path.join(self.dest, HOST))
        self.assert_rejected("symbolic link", good_members() + [info(HOST + "/e", tarfile.SYMTYPE, linkname="/")])

    def test_a_real_tar_of_a_host_folder(self):
        """What the host's `tar -czf` makes of a run folder unpacks as it was."""
        src = os.path.join(self.tmp, "host-side")
        os.makedirs(os.path.join(src, HOST, "instance-1"))
        for rel, text in [("summary.json", "{}\n"), ("instance-1/server.log", "started\n" * 1000),
                          ("l" * 120 + ".jsonl", "long name\n")]:
            with open(os.path.join(src, HOST, rel), "w") as f:
                f.write(text)
        subprocess.run(["tar", "-C", src, "-czf", self.archive, HOST], check=True)
        r = self.unpack()
        self.assertEqual(r["rc"], 0, r)
        self.assertIn("3 files in 2 folders", r["out"])
        self.assertEqual(tree(os.path.join(self.dest, HOST)).keys(), tree(os.path.join(src, HOST)).keys())


if __name__ == "__main__":
    unittest.main()
