#!/usr/bin/env python3
"""Unpacks one fleet host's archive of a run on the controller, trusting nothing in it.

    redpacket-unpack.py ARCHIVE DEST_RUN_DIR HOST
        --max-file-bytes N --max-host-bytes N --max-members N

ARCHIVE (tar, gzip-compressed) was made by HOST, a client VM or server that may not be
clean. It may hold only regular files and folders, all under `HOST/`: no symbolic or
hard links, devices, FIFOs, setuid/setgid/sticky bits, absolute or `..` paths, no other
top-level name, no member listed twice; no file over --max-file-bytes, no more than
--max-host-bytes of files in all, no more than --max-members members. Anything else
rejects the whole archive and nothing is written.

Two passes, so that nothing is written before every member has been checked:
1. read the whole archive (headers and data, decompressing as a stream) and check each
   member; the decompressed bytes are counted as they come, so a gzip bomb is rejected
   as soon as it passes what the caps allow, never inflated in full, in memory or on
   disk;
2. read it again, check it the same way, and write each file ourselves
   (`O_CREAT|O_EXCL|O_NOFOLLOW`, relative to folders opened with `O_NOFOLLOW`, bounded
   copies) into a fresh folder `DEST_RUN_DIR/.HOST.tmp-XXXX`; modes are 0644 for files
   and 0755 for folders, owned by whoever runs this, whatever the archive says. Then
   that folder replaces `DEST_RUN_DIR/HOST` by a rename: a folder there is moved aside
   and removed, anything else there (a symbolic link) is unlinked, never followed.

Exit 0: unpacked (one line on stdout); 1: rejected, or the folder could not be written,
with one line on stderr, `HOST: why`; 2: usage. Standard library only, so it runs with
the Python that runs Ansible (`-I`, isolated).
"""

import argparse
import gzip
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import zlib

# The only member types accepted: regular files and folders.
REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)
# Types whose header data tarfile reads into memory whole (long names, pax records).
EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
            tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
# An extended header larger than this is refused before it is read (GNU tar writes a
# few hundred bytes: a long name, pax times).
MAX_EXTENDED = 16 * 1024
# Decompressed bytes the archive may hold beyond its files' data: per member a header,
# a long-name or pax header and the padding of its data to 512 bytes; once, the
# end-of-archive blocks and the padding to tar's 10 KiB records.
OVERHEAD_PER_MEMBER = 4096
OVERHEAD = 1024 * 1024
CHUNK = 1024 * 1024
# tarfile's read size from the stream (its default is 10 KiB).
STREAM_BUFFER = 64 * 1024
NAMES = {"file": "redpacket_collect_max_file_mb", "host": "redpacket_collect_max_host_mb",
         "members": "redpacket_collect_max_members"}
TYPES = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link",
         tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
         tarfile.FIFOTYPE: "a FIFO", tarfile.CONTTYPE: "a contiguous file",
         tarfile.GNUTYPE_SPARSE: "a sparse file"}


class Rejected(Exception):
    """The archive breaks a rule; the message says which, in one line."""


def shown(name, limit=120):
    """A member's name as it may be printed: quoted, escaped, cut short."""
    text = repr(name)
    return text if len(text) <= limit else text[:limit] + "..."


def mib(n):
    return "%d MiB" % (n // 1048576) if n % 1048576 == 0 else "%d bytes" % n


class Caps:
    def __init__(self, file_bytes, host_bytes, members):
        self.file_bytes = file_bytes
        self.host_bytes = host_bytes
        self.members = members
        # What an archive within the caps can decompress to, at most.
        self.stream_bytes = host_bytes + members * OVERHEAD_PER_MEMBER + OVERHEAD


class Counted:
    """The decompressed stream, counted: reading past `limit` bytes rejects the archive."""

    def __init__(self, raw, limit):
        self.gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self.limit = limit
        self.count = 0

    def read(self, size=-1):
        if size is None or size < 0:
            size = CHUNK
        try:
            data = self.gz.read(min(size, CHUNK))
        except (OSError, EOFError, zlib.error) as e:
            raise Rejected("not a whole gzip archive: %s" % e) from None
        self.count += len(data)
        if self.count > self.limit:
            raise Rejected("the archive inflates to more than %d MiB, more than files within the caps need "
                           "(a gzip bomb?)" % (self.limit >> 20))
        return data

    def drain(self):
        """Reads what follows the end of the tar archive, to its end (checking gzip's CRC)."""
        while self.read(CHUNK):
            pass


class BoundedInfo(tarfile.TarInfo):
    """tarfile reads a long name's or a pax header's data into memory whole: refuse a
    large one before it is read, and any global one (the hook tarfile documents for
    subclasses)."""

    def _proc_member(self, tarfile_):
        # A global pax header's records would pile up for every later member: tar -czf
        # writes none.
        if self.type == tarfile.XGLTYPE:
            raise Rejected("a global pax header")
        if self.type in EXTENDED and self.size > MAX_EXTENDED:
            raise Rejected("an extended header of %d bytes (more than %d)" % (self.size, MAX_EXTENDED))
        return super()._proc_member(tarfile_)


def check_name(name, host):
    """The member's path inside HOST/ as a tuple of components, or Rejected."""
    if name.startswith("/"):
        raise Rejected("member %s has an absolute path" % shown(name))
    parts = name.split("/")
    if ".." in parts:
        raise Rejected("member %s has a '..' in its path" % shown(name))
    if any(p in ("", ".") or "\0" in p for p in parts):
        raise Rejected("member %s has an empty or '.' part in its path" % shown(name))
    if any(len(os.fsencode(p)) > 255 for p in parts):
        raise Rejected("member %s has a name longer than 255 bytes" % shown(name))
    if parts[0] != host:
        where = "at the top level" if len(parts) == 1 else "under another name than %s/" % host
        raise Rejected("member %s is %s; only %s/ is accepted" % (shown(name), where, host))
    return tuple(parts[1:])


def members(path, host, caps):
    """Yields (TarInfo, its path inside HOST/, the open archive) for each member in order,
    once it has passed every check; the caller reads each file's data before the next.
    Raises Rejected for the first member or byte that breaks a rule."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise Rejected("cannot open the archive: %s" % e) from None
    with os.fdopen(fd, "rb") as raw:
        if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
            raise Rejected("the archive is not a regular file")
        stream = Counted(raw, caps.stream_bytes)
        try:
            tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=BoundedInfo, bufsize=STREAM_BUFFER)
        except (tarfile.TarError, RecursionError, ValueError, UnicodeError) as e:
            raise Rejected("not a tar archive: %s" % e) from None
        files, folders, parents = set(), set(), set()
        count = total = 0
        with tar:
            while True:
                try:
                    info = tar.next()
                except Rejected:
                    raise
                except (tarfile.TarError, RecursionError, ValueError, UnicodeError) as e:
                    raise Rejected("unreadable member after %d: %s" % (count, e)) from None
                if info is None:
                    break
                count += 1
                if count > caps.members:
                    raise Rejected("more than %d members (%s)" % (caps.members, NAMES["members"]))
                rel = check_name(info.name, host)
                name = shown(info.name)
                if info.type not in REGULAR + (tarfile.DIRTYPE,):
                    what = TYPES.get(info.type, "of type %r" % info.type)
                    if info.type == tarfile.SYMTYPE:
                        what += " (-> %s)" % shown(info.linkname, 60)
                    raise Rejected("member %s is %s; only regular files and folders are accepted" % (name, what))
                if info.sparse is not None:
                    raise Rejected("member %s is a sparse file" % name)
                if info.mode & 0o7000:
                    raise Rejected("member %s has mode %04o: setuid, setgid and sticky bits are refused"
                                   % (name, info.mode & 0o7777))
                if rel in files or rel in folders:
                    raise Rejected("member %s is listed twice" % name)
                for i in range(1, len(rel)):
                    if rel[:i] in files:
                        raise Rejected("member %s lies under a file" % name)
                if info.isdir():
                    if info.size:
                        raise Rejected("folder %s has %d bytes of data" % (name, info.size))
                    folders.add(rel)
                else:
                    if not rel:
                        raise Rejected("%s is a file, not a folder" % name)
                    if rel in parents:
                        raise Rejected("member %s is a file where a folder was" % name)
                    if info.size > caps.file_bytes:
                        raise Rejected("member %s holds %d bytes, over the per-file cap of %s (%s)"
                                       % (name, info.size, mib(caps.file_bytes), NAMES["file"]))
                    total += info.size
                    if total > caps.host_bytes:
                        raise Rejected("the files hold more than the per-host cap of %s (%s), at member %s"
                                       % (mib(caps.host_bytes), NAMES["host"], name))
                    files.add(rel)
                parents.update(rel[:i] for i in range(1, len(rel)))
                yield info, rel, tar
            stream.drain()


def data(tar, info):
    """A regular member's data, in bounded chunks; a short member rejects the archive."""
    src = tar.extractfile(info)
    left = info.size
    while left:
        try:
            chunk = src.read(min(left, CHUNK))
        except tarfile.TarError as e:
            raise Rejected("member %s: %s" % (shown(info.name), e)) from None
        if not chunk:
            raise Rejected("member %s ends early" % shown(info.name))
        left -= len(chunk)
        yield chunk


def check(path, host, caps):
    """Pass 1: every member and byte checked, nothing written. Returns the member list."""
    seen = []
    for info, rel, tar in members(path, host, caps):
        if info.isreg():
            for _ in data(tar, info):
                pass
        seen.append((rel, info.isdir()))
    if not seen:
        raise Rejected("the archive is empty")
    return seen


def open_folder(root_fd, rel, create):
    """An fd of the folder `rel` under root_fd, opened part by part without following any
    link; missing parts are created 0755 when `create`."""
    fd = os.dup(root_fd)
    try:
        for part in rel:
            made = False
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    made = True
                except FileExistsError:
                    pass
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
            if made:
                os.fchmod(fd, 0o755)  # whatever the umask
        return fd
    except BaseException:
        os.close(fd)
        raise


def write(path, host, caps, root_fd, expected):
    """Pass 2: the same checks again, each member written under root_fd."""
    i = 0
    for info, rel, tar in members(path, host, caps):
        if i >= len(expected) or expected[i] != (rel, info.isdir()):
            raise Rejected("the archive changed between its check and its unpacking")
        i += 1
        if info.isdir():
            os.close(open_folder(root_fd, rel, True))
            continue
        parent = open_folder(root_fd, rel[:-1], True)
        try:
            fd = os.open(rel[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644, dir_fd=parent)
        finally:
            os.close(parent)
        try:
            os.fchmod(fd, 0o644)
            for chunk in data(tar, info):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            try:
                os.utime(fd, (info.mtime, info.mtime))
            except (OverflowError, ValueError, OSError):
                pass  # a time the file system cannot hold: keep the time of writing
        finally:
            os.close(fd)
    if i != len(expected):
        raise Rejected("the archive changed between its check and its unpacking")


def replace(dest_fd, dest, tmp_name, host):
    """Puts the unpacked folder at DEST/HOST: what was there is moved aside and removed
    (a folder) or unlinked (anything else, a symbolic link included: never followed)."""
    try:
        st = os.lstat(host, dir_fd=dest_fd)
    except FileNotFoundError:
        st = None
    old = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        # Renaming a folder onto an empty one replaces it: the empty one reserves a name.
        old = os.path.basename(tempfile.mkdtemp(prefix=".%s.old-" % host, dir=dest))
        os.rename(host, old, src_dir_fd=dest_fd, dst_dir_fd=dest_fd)
    elif st is not None:
        os.unlink(host, dir_fd=dest_fd)
    try:
        os.rename(tmp_name, host, src_dir_fd=dest_fd, dst_dir_fd=dest_fd)
    except OSError:
        if old:
            os.rename(old, host, src_dir_fd=dest_fd, dst_dir_fd=dest_fd)
        raise
    if old:
        shutil.rmtree(old, dir_fd=dest_fd, ignore_errors=True)


def unpack(archive, dest, host, caps):
    """Both passes and the replacement. Returns (files, folders)."""
    expected = check(archive, host, caps)
    dest_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tmp_name = os.path.basename(tempfile.mkdtemp(prefix=".%s.tmp-" % host, dir=dest))
        try:
            root_fd = os.open(tmp_name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=dest_fd)
            try:
                write(archive, host, caps, root_fd, expected)
                os.fchmod(root_fd, 0o755)
            finally:
                os.close(root_fd)
            replace(dest_fd, dest, tmp_name, host)
        except BaseException:
            shutil.rmtree(tmp_name, dir_fd=dest_fd, ignore_errors=True)
            raise
    finally:
        os.close(dest_fd)
    files = sum(1 for _, is_dir in expected if not is_dir)
    return files, len(expected) - files


def positive(text):
    n = int(text)
    if n <= 0:
        raise ValueError(text)
    return n


def run(argv):
    ap = argparse.ArgumentParser(prog="redpacket-unpack", description=__doc__.split("\n\n")[0])
    ap.add_argument("archive")
    ap.add_argument("dest_run_dir")
    ap.add_argument("host")
    ap.add_argument("--max-file-bytes", type=positive, required=True)
    ap.add_argument("--max-host-bytes", type=positive, required=True)
    ap.add_argument("--max-members", type=positive, required=True)
    a = ap.parse_args(argv)  # exits 2 on a usage error
    if a.host in ("", ".", "..") or "/" in a.host or "\0" in a.host:
        ap.error("HOST must be one name, the host's inventory name")
    if not os.path.isdir(a.dest_run_dir):
        ap.error("DEST_RUN_DIR %s is not a folder" % a.dest_run_dir)
    caps = Caps(a.max_file_bytes, a.max_host_bytes, a.max_members)
    try:
        files, folders = unpack(a.archive, a.dest_run_dir, a.host, caps)
    except Rejected as e:
        print("%s: %s" % (a.host, e), file=sys.stderr)
        return 1
    except Exception as e:  # the folder could not be written (OSError), or a flaw here
        print("%s: could not unpack: %s: %s" % (a.host, type(e).__name__, e), file=sys.stderr)
        return 1
    print("%s: %d files in %d folders unpacked into %s"
          % (a.host, files, folders, os.path.join(a.dest_run_dir, a.host)))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
