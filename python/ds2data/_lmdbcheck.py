"""Checks an LMDB file's structure before LMDB maps it (docs/FORMAT.md §6).

LMDB trusts its pages: a damaged meta or branch page makes it abort or read past the end
of the map (SIGBUS), which would kill the Python process. This reads the meta pages and
every branch and leaf page of the main tree with ordinary reads, never through a map, and
raises ``ValueError`` naming what is wrong. It mirrors ds2-data's own check
(Sources/Shards/LMDBFileCheck.swift): LMDB 0.9 on a 64-bit system.
"""

import os
import struct

_MAGIC = 0xBEEFC0DE
_HEADER = 16
_INVALID = 0xFFFFFFFFFFFFFFFF
_BRANCH, _LEAF = 0x01, 0x02
_BIGDATA = 0x01
_SUBDATABASE = 0x02 | 0x04


def validate(path, file_size):
    """Raises ValueError when the LMDB file at ``path`` (of ``file_size`` bytes) is damaged."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _validate(fd, file_size)
    finally:
        os.close(fd)


def _validate(fd, file_size):
    def read(offset, count):
        if offset < 0 or count < 0 or offset > file_size - count:
            raise ValueError("a page lies past the end of the file")
        data = os.pread(fd, count, offset)
        if len(data) != count:
            raise ValueError(f"cannot read {count} bytes at {offset}")
        return data

    def meta(offset):
        page = read(offset, _HEADER + 136)
        m = _HEADER
        magic, version = struct.unpack_from("<II", page, m)
        if magic != _MAGIC or version != 1:
            raise ValueError(f"not an LMDB meta page at byte {offset}")
        (page_size,) = struct.unpack_from("<I", page, m + 24)
        return {
            "page_size": page_size,
            "free_root": struct.unpack_from("<Q", page, m + 64)[0],
            "depth": struct.unpack_from("<H", page, m + 78)[0],
            "entries": struct.unpack_from("<Q", page, m + 104)[0],
            "root": struct.unpack_from("<Q", page, m + 112)[0],
            "last_page": struct.unpack_from("<Q", page, m + 120)[0],
            "txn": struct.unpack_from("<Q", page, m + 128)[0],
        }

    if file_size < 2 * 512:
        raise ValueError(f"{file_size} bytes, too short for an LMDB file")
    first = meta(0)
    page_size = first["page_size"]
    if not (512 <= page_size <= 65536 and page_size & (page_size - 1) == 0):
        raise ValueError(f"meta page gives a page size of {page_size} bytes")
    second = meta(page_size)
    if second["page_size"] != page_size:
        raise ValueError("the two meta pages give different page sizes")
    pages_in_file = file_size // page_size
    for m in (first, second):
        if not 1 <= m["last_page"] < pages_in_file:
            raise ValueError(f"meta page names page {m['last_page']} as the last; the file holds {pages_in_file}")
        for root in (m["root"], m["free_root"]):
            if root != _INVALID and not 2 <= root <= m["last_page"]:
                raise ValueError(f"meta page names root page {root}, outside 2…{m['last_page']}")
        if m["depth"] > 16:
            raise ValueError(f"meta page gives a tree depth of {m['depth']}")
    current = first if first["txn"] >= second["txn"] else second
    if current["root"] == _INVALID:
        if current["entries"] != 0:
            raise ValueError(f"an empty tree with {current['entries']} entries")
        return
    entries = 0
    visited = 0
    stack = [(current["root"], 1)]
    while stack:
        number, depth = stack.pop()
        visited += 1
        if visited > current["last_page"] or depth > current["depth"]:
            raise ValueError("the tree is deeper than its meta page says, or has a cycle")
        page = read(number * page_size, page_size)
        (carried,) = struct.unpack_from("<Q", page, 0)
        if carried != number:
            raise ValueError(f"page {number} carries number {carried}")
        flags, lower, upper = struct.unpack_from("<HHH", page, 10)
        is_branch, is_leaf = bool(flags & _BRANCH), bool(flags & _LEAF)
        if is_branch == is_leaf:
            raise ValueError(f"page {number} is neither a branch nor a leaf page")
        if not (_HEADER <= lower <= upper <= page_size and (lower - _HEADER) % 2 == 0):
            raise ValueError(f"page {number} has bounds {lower}…{upper}")
        keys = (lower - _HEADER) // 2
        if is_branch:
            if keys < 2:
                raise ValueError(f"branch page {number} has {keys} child(ren)")
            if depth >= current["depth"]:
                raise ValueError(f"branch page {number} at the leaf level")
        elif depth != current["depth"]:
            raise ValueError(f"leaf page {number} above the leaf level")
        for index in range(keys):
            (node,) = struct.unpack_from("<H", page, _HEADER + 2 * index)
            if node < upper or node + 8 > page_size:
                raise ValueError(f"page {number} node {index} lies outside the page")
            low, high, node_flags, key_size = struct.unpack_from("<HHHH", page, node)
            if is_branch:
                if node + 8 + key_size > page_size:
                    raise ValueError(f"branch page {number} key {index} runs past the page")
                child = low | high << 16 | node_flags << 32
                if not 2 <= child <= current["last_page"]:
                    raise ValueError(f"branch page {number} names page {child}")
                stack.append((child, depth + 1))
            else:
                if node_flags & _SUBDATABASE:
                    raise ValueError(f"leaf page {number} holds a sub-database")
                data_size = low | high << 16
                if node_flags & _BIGDATA:
                    if node + 8 + key_size + 8 > page_size:
                        raise ValueError(f"leaf page {number} node {index} runs past the page")
                    (overflow,) = struct.unpack_from("<Q", page, node + 8 + key_size)
                    needed = (data_size + _HEADER + page_size - 1) // page_size
                    if not (2 <= overflow <= current["last_page"] and overflow + needed <= current["last_page"] + 1):
                        raise ValueError(f"leaf page {number} node {index} names overflow page {overflow} for {data_size} bytes")
                elif node + 8 + key_size + data_size > page_size:
                    raise ValueError(f"leaf page {number} node {index} runs past the page")
                entries += 1
    if entries != current["entries"]:
        raise ValueError(f"the tree holds {entries} entries, its meta page says {current['entries']}")
