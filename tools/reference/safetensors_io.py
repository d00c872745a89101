"""Minimal safetensors writer/reader (Debian's python has no `safetensors` package).

Format (sd-architecture.md header): u64 little-endian header length, a JSON header mapping each
name to {dtype, shape, data_offsets: [start, end]} (offsets relative to the end of the header),
then the raw little-endian row-major data. We sort names, lay the data out contiguously in that
order, and pad the header with spaces to a multiple of 8 so every tensor starts 8-byte aligned.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {
    torch.float32: ("F32", np.float32),
    torch.float16: ("F16", np.float16),
    torch.int64: ("I64", np.int64),
    torch.int32: ("I32", np.int32),
}
_NP = {name: np_t for name, np_t in _DTYPES.values()}


def save_file(tensors, path, metadata=None):
    """tensors: {name: torch.Tensor}. Writes one safetensors file, one tensor at a time (the SD 1.5
    UNet is 3.4 GB; we never hold a second copy of it)."""
    header = {}
    offset = 0
    names = sorted(tensors)
    for name in names:
        t = tensors[name]
        if t.dtype not in _DTYPES:
            raise ValueError(f"{path}: unsupported dtype {t.dtype} for {name}")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype][0], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name in names:
            arr = tensors[name].detach().contiguous().cpu().numpy()
            f.write(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())


def load_file(path):
    """-> {name: torch.Tensor} (copies; fine for the sizes we use)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        arr = np.frombuffer(data[s:e], dtype=np.dtype(_NP[info["dtype"]]).newbyteorder("<"))
        out[name] = torch.from_numpy(arr.astype(_NP[info["dtype"]]).reshape(info["shape"]))
    return out
