"""Vectorized edge-list parsing: whole file in memory, tokens found with numpy, no Python loop per line.

A file is a sequence of lines; a line holds whitespace- (and ``delimiter``-) separated tokens.
The first two tokens of every data line are the source and target ids; further columns (weights,
timestamps) are ignored. Every data line must have the same number of columns. Errors name the
1-based line number of the first offending line.
"""

from __future__ import annotations

import gzip
import os
from typing import NamedTuple, Optional, Union

import numpy as np
import torch

_MAX_TOKEN = 256  # longest id accepted, in bytes (guards the fixed-width token matrix)
_CHUNK = 1 << 20  # tokens per vectorized block (bounds the [chunk, width] temporaries)
_HEADER_NAMES = {
    b"src", b"dst", b"source", b"target", b"from", b"to", b"u", b"v", b"node1", b"node2", b"head",
    b"tail", b"id1", b"id2", b"source_id", b"target_id", b"src_id", b"dst_id", b"node", b"neighbor",
    b"i", b"j", b"a", b"b",
}


class EdgeListError(ValueError):
    """A malformed edge list; ``line`` is the 1-based line number (or None)."""

    def __init__(self, path: str, line: Optional[int], msg: str):
        self.path, self.line = path, line
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {msg}")


class ParsedEdges(NamedTuple):
    """src/dst: ``[E]`` int64 node indices in ``[0, num_nodes)``; node_ids: the original id of
    every node (int64 or str numpy array) when ids were remapped, else None."""

    src: np.ndarray
    dst: np.ndarray
    num_nodes: int
    node_ids: Optional[np.ndarray]


def read_bytes(path: Union[str, os.PathLike]) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``; clear errors for bad archives."""
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read ({type(e).__name__}: {e})") from e


def _line_of(nl: np.ndarray, pos: int) -> int:
    """1-based line number of byte ``pos`` given the newline positions."""
    return int(np.searchsorted(nl, pos)) + 1


def _show(data: bytes, nl: np.ndarray, line: int) -> str:
    start = 0 if line == 1 else int(nl[line - 2]) + 1
    end = int(nl[line - 1]) if line - 1 < nl.size else len(data)
    text = data[start:end][:80].decode("utf-8", "replace")
    return repr(text)


def _token_matrix(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray, width: int) -> np.ndarray:
    """``[T, width]`` uint8: each token's bytes, zero padded on the right (built column by
    column so no ``[T, width]`` index array is needed)."""
    mat = np.empty((starts.size, width), dtype=np.uint8)
    for j in range(width):
        mat[:, j] = np.where(j < lens, buf.take(starts + j, mode="clip"), 0)
    return mat


def _parse_ints(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Decimal integers (optional leading '-') of the tokens: (values int64, ok bool)."""
    neg = buf.take(starts, mode="clip") == ord("-")
    first = neg.astype(starts.dtype)
    ndig = lens - first
    ok = (ndig >= 1) & (ndig <= 18)
    val = np.zeros(starts.size, dtype=np.int64)
    for j in range(width):
        in_tok = (j < lens) & (j >= first)
        d = buf.take(starts + j, mode="clip").astype(np.int64) - 48
        ok &= ~in_tok | ((d >= 0) & (d <= 9))
        val = np.where(in_tok, val * 10 + d, val)
    return np.where(neg, -val, val), ok


def parse_edge_list(
    data: bytes,
    *,
    path: str = "<bytes>",
    delimiter: Optional[str] = None,
    comment: Optional[str] = "#",
    header: Optional[bool] = None,
    ids: str = "auto",
    remap: Optional[bool] = None,
    num_nodes: Optional[int] = None,
) -> ParsedEdges:
    """Parse an edge list held in memory (see :func:`scalevgae.data.io.load_edge_list`).

    Args:
        data: the file's bytes (UTF-8 / ASCII).
        delimiter: column separator characters besides whitespace (ASCII; None: ``,``).
        comment: tokens starting with this string end the line (None: no comments).
        header: True/False, or None to detect a first line of column names.
        ids: "int" (decimal integers), "str" (any token) or "auto" (int if the first data
            line's ids are integers).
        remap: True/False, or None: remap integer ids unless they are non-negative and use at
            least half of ``0..max``. String ids are always remapped (sorted order).
        num_nodes: at least ``max id + 1`` when integer ids are kept as they are.
    """
    if ids not in ("auto", "int", "str"):
        raise ValueError(f"ids must be 'auto', 'int' or 'str', got {ids!r}")
    if delimiter is not None and (not delimiter or not delimiter.isascii()):
        raise ValueError(f"delimiter must be non-empty ASCII, got {delimiter!r}")
    if b"\r" in data and b"\n" not in data:
        data = data.replace(b"\r", b"\n")  # classic Mac line endings
    if data.startswith(b"\xef\xbb\xbf"):
        data = b"   " + data[3:]  # UTF-8 byte-order mark; keep offsets
    table = bytearray(range(256))
    for c in b"\t\r\f\v" + (b"," if delimiter is None else delimiter.encode()):
        table[c] = 32
    data_t = data.translate(bytes(table))
    buf = np.frombuffer(data_t, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    ctrl = np.flatnonzero((buf < 32) & (buf != 10))
    if ctrl.size:
        line = _line_of(nl, int(ctrl[0]))
        raise EdgeListError(path, line, f"control byte 0x{int(buf[ctrl[0]]):02x} (a binary file?)")

    is_tok = (buf > 32).view(np.int8)
    edges = np.diff(is_tok, prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    del edges, is_tok
    tok_line = np.searchsorted(nl, starts)  # 0-based line of every token

    if comment:
        cb = comment.encode()
        isc = np.ones(starts.size, dtype=bool)
        for i, ch in enumerate(cb):
            pos = starts + i
            isc &= (pos < ends) & (buf[np.minimum(pos, max(buf.size - 1, 0))] == ch)
        ct = np.flatnonzero(isc)
        if ct.size:
            cl = tok_line[ct]  # sorted: the first comment token of a line is where cl changes
            first = np.flatnonzero(np.diff(cl, prepend=-1) != 0)
            lines_c = cl[first]
            cut = np.full(nl.size + 1, starts.size, dtype=np.int64)
            cut[lines_c] = ct[first]
            keep = np.arange(starts.size) < cut[tok_line]
            starts, ends, tok_line = starts[keep], ends[keep], tok_line[keep]

    if starts.size == 0:
        return ParsedEdges(np.zeros(0, np.int64), np.zeros(0, np.int64), int(num_nodes or 0), None)

    # tok_line is sorted: line boundaries are where it changes.
    first_tok = np.flatnonzero(np.diff(tok_line, prepend=-1) != 0)
    lines = tok_line[first_tok]
    counts = np.diff(first_tok, append=starts.size)
    lens = ends - starts
    if header is None:
        header = _looks_like_header(buf, starts, lens, first_tok, counts)
    if header:
        lines, first_tok, counts = lines[1:], first_tok[1:], counts[1:]
        if lines.size == 0:
            return ParsedEdges(np.zeros(0, np.int64), np.zeros(0, np.int64), int(num_nodes or 0), None)
    ncols = int(counts[0])
    if ncols < 2:
        raise EdgeListError(path, int(lines[0]) + 1, f"expected at least 2 columns (source, target), got "
                            f"{ncols}: {_show(data, nl, int(lines[0]) + 1)}")
    bad = np.flatnonzero(counts != ncols)
    if bad.size:
        ln = int(lines[bad[0]]) + 1
        raise EdgeListError(path, ln, f"expected {ncols} columns like the first data line, got "
                            f"{int(counts[bad[0]])}: {_show(data, nl, ln)} ({bad.size} malformed line(s))")

    tok = np.stack([first_tok, first_tok + 1], axis=1).reshape(-1)  # src, dst interleaved
    s, ln_ = starts[tok], lens[tok]
    long_ = np.flatnonzero(ln_ > _MAX_TOKEN)
    if long_.size:
        line = int(lines[long_[0] // 2]) + 1
        raise EdgeListError(path, line, f"node id longer than {_MAX_TOKEN} bytes")
    width = int(ln_.max())

    if ids == "auto":
        _, ok = _parse_ints(buf, s[:2], ln_[:2], width)
        ids = "int" if bool(ok.all()) else "str"

    if ids == "int":
        vals = np.empty(tok.size, dtype=np.int64)
        for a in range(0, tok.size, _CHUNK):
            b = min(a + _CHUNK, tok.size)
            v, ok = _parse_ints(buf, s[a:b], ln_[a:b], width)
            if not bool(ok.all()):
                i = a + int(np.flatnonzero(~ok)[0])
                line = int(lines[i // 2]) + 1
                raise EdgeListError(path, line, f"node id is not a decimal integer of at most 18 digits: "
                                    f"{_show(data, nl, line)} (string ids: --ids str, or ids='str' in Python)")
            vals[a:b] = v
        return _finish_int(vals, remap, num_nodes, path)

    parts = []
    for a in range(0, tok.size, _CHUNK):
        b = min(a + _CHUNK, tok.size)
        parts.append(np.ascontiguousarray(_token_matrix(buf, s[a:b], ln_[a:b], width)).view(f"S{width}").ravel())
    toks = np.concatenate(parts)
    uniq, inv = np.unique(toks, return_inverse=True)
    try:
        names = np.char.decode(uniq, "utf-8")
    except UnicodeDecodeError:
        for k, u in enumerate(uniq):
            try:
                u.decode("utf-8")
            except UnicodeDecodeError:
                line = int(lines[int(np.flatnonzero(inv == k)[0]) // 2]) + 1
                raise EdgeListError(path, line, "node id is not valid UTF-8") from None
        raise
    if remap is False:
        raise ValueError(f"{path}: string node ids need remapping (remap=False was given)")
    inv = inv.reshape(-1).astype(np.int64)
    n = _check_num_nodes(uniq.size, num_nodes, path)
    return ParsedEdges(inv[0::2], inv[1::2], n, names)


def _check_num_nodes(n: int, num_nodes: Optional[int], path: str) -> int:
    if num_nodes is None:
        return n
    if num_nodes < n:
        raise ValueError(f"{path}: num_nodes={num_nodes} but the file has {n} nodes")
    return int(num_nodes)


def _finish_int(vals: np.ndarray, remap: Optional[bool], num_nodes: Optional[int], path: str) -> ParsedEdges:
    lo, hi = (int(vals.min()), int(vals.max())) if vals.size else (0, -1)
    if remap is None:
        remap = lo < 0
        if not remap:
            if hi + 1 > 4 * vals.size + 1024:
                remap = True
            else:
                present = np.zeros(hi + 1, dtype=bool)
                present[vals] = True
                remap = 2 * int(present.sum()) < hi + 1
    if remap:
        # torch's sort-based unique: numpy 2.x's hash-based np.unique is ~10x slower on int64 here
        u, i = torch.unique(torch.from_numpy(vals), sorted=True, return_inverse=True)
        uniq, inv = u.numpy(), i.numpy().astype(np.int64, copy=False)
        return ParsedEdges(inv[0::2], inv[1::2], _check_num_nodes(uniq.size, num_nodes, path), uniq)
    if lo < 0:
        raise ValueError(f"{path}: negative node id {lo} (remap=True in Python remaps ids)")
    n = _check_num_nodes(hi + 1, num_nodes, path)
    return ParsedEdges(vals[0::2].copy(), vals[1::2].copy(), n, None)


def _looks_like_header(
    buf: np.ndarray, starts: np.ndarray, lens: np.ndarray, first_tok: np.ndarray, counts: np.ndarray
) -> bool:
    """The first data line is a header if its first two tokens are not integers while the next
    line's are, or if they are common column names."""
    if counts[0] < 2:
        return False
    t0 = [bytes(buf[starts[first_tok[0] + k]: starts[first_tok[0] + k] + lens[first_tok[0] + k]]) for k in (0, 1)]
    if all(t.lower() in _HEADER_NAMES for t in t0):
        return True

    def is_int(t: bytes) -> bool:
        return t.lstrip(b"-").isdigit()

    if all(is_int(t) for t in t0) or first_tok.size < 2 or counts[1] < 2:
        return False
    t1 = [bytes(buf[starts[first_tok[1] + k]: starts[first_tok[1] + k] + lens[first_tok[1] + k]]) for k in (0, 1)]
    return all(is_int(t) for t in t1)
