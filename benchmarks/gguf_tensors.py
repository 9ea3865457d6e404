"""The tensor table of a GGUF file (name and element count of every tensor), read from its header.

The ``gguf`` package's reader also maps every metadata array item by item (the tokenizer's ~100k strings:
seconds per read); this skips the metadata and reads only the tensor infos. Format: little-endian GGUF v2/v3
(https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): magic, version, tensor count, metadata count,
the metadata key-value pairs, then one (name, dims, type, offset) record per tensor.
"""

from __future__ import annotations

import struct
from pathlib import Path

#: byte size of each fixed-size metadata value type (8: string and 9: array are read separately)
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u32(self) -> int:
        (v,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        return int(v)

    def u64(self) -> int:
        (v,) = struct.unpack_from("<Q", self.data, self.pos)
        self.pos += 8
        return int(v)

    def string(self) -> str:
        n = self.u64()
        self.pos += n
        return self.data[self.pos - n:self.pos].decode("utf-8")

    def skip_value(self, vtype: int) -> None:
        if vtype == _STRING:
            n = self.u64()  # (not ``self.pos += self.u64()``: that adds to the position before the read)
            self.pos += n
        elif vtype == _ARRAY:
            itype, count = self.u32(), self.u64()
            if itype in _SIZES:
                self.pos += _SIZES[itype] * count
            else:
                for _ in range(count):
                    self.skip_value(itype)
        else:
            self.pos += _SIZES[vtype]


def gguf_tensor_sizes(path: Path | str) -> dict[str, int]:
    """``{tensor name: number of elements}`` of a GGUF v2/v3 file."""
    with open(path, "rb") as f:
        head = f.read(24)
        if head[:4] != b"GGUF" or struct.unpack_from("<I", head, 4)[0] < 2:
            raise ValueError(f"{path}: not a GGUF v2/v3 file")
        n_tensors, n_kv = struct.unpack_from("<QQ", head, 8)
        size = 1 << 22
        while True:  # the header (metadata and tensor infos) is read in growing chunks until it parses
            f.seek(0)
            cur = _Cursor(f.read(size))
            cur.pos = 24
            try:
                for _ in range(n_kv):
                    cur.string()
                    cur.skip_value(cur.u32())
                out = {}
                for _ in range(n_tensors):
                    name = cur.string()
                    dims = [cur.u64() for _ in range(cur.u32())]
                    cur.u32(), cur.u64()  # type, offset
                    n = 1
                    for d in dims:
                        n *= d
                    out[name] = n
                if cur.pos <= len(cur.data):
                    return out
                raise struct.error("read past the chunk")
            except (struct.error, UnicodeDecodeError):
                if len(cur.data) < size:
                    raise ValueError(f"{path}: truncated GGUF header") from None
                size *= 4
