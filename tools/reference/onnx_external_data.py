"""Gathers torch.onnx.export's one-file-per-initializer external data into a single
`<model>.onnx.data` file (Debian's python has no `onnx` package, so this edits the protobuf wire
format directly; only ModelProto.graph.initializer[*].external_data is rewritten).

ONNX field numbers used (onnx.proto): ModelProto.graph = 7; GraphProto.initializer = 5;
TensorProto.external_data = 13 (StringStringEntryProto key = 1, value = 2), data_location = 14
(EXTERNAL = 1).
"""
import os


def _read_varint(buf, i):
    shift = 0
    out = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, i
        shift += 7


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def parse(buf):
    """-> list of [field, wire_type, value]; value is int (varint) or bytes (others)."""
    fields = []
    i = 0
    n = len(buf)
    while i < n:
        key, i = _read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 1:
            v, i = bytes(buf[i:i + 8]), i + 8
        elif wt == 2:
            ln, i = _read_varint(buf, i)
            v, i = bytes(buf[i:i + ln]), i + ln
        elif wt == 5:
            v, i = bytes(buf[i:i + 4]), i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        fields.append([field, wt, v])
    return fields


def serialize(fields):
    out = bytearray()
    for field, wt, v in fields:
        out += _varint((field << 3) | wt)
        if wt == 0:
            out += _varint(v)
        elif wt == 2:
            out += _varint(len(v)) + v
        else:
            out += v
    return bytes(out)


def _entry(key, value):
    return serialize([[1, 2, key.encode()], [2, 2, value.encode()]])


def consolidate(onnx_path, align=4096):
    """Rewrites onnx_path in place so every external initializer lives in onnx_path + '.data'
    (each one starting at a multiple of `align` bytes, so onnxruntime can mmap it), and deletes
    the per-tensor files. Returns the number of tensors moved (0 when there was no external data)."""
    folder = os.path.dirname(os.path.abspath(onnx_path))
    data_name = os.path.basename(onnx_path) + ".data"
    with open(onnx_path, "rb") as f:
        model = parse(f.read())
    moved = 0
    old_files = []
    with open(os.path.join(folder, data_name), "wb") as data:
        offset = 0
        for mf in model:
            if mf[0] != 7 or mf[1] != 2:
                continue
            graph = parse(mf[2])
            for gf in graph:
                if gf[0] != 5 or gf[1] != 2:
                    continue
                tensor = parse(gf[2])
                if not any(t[0] == 14 and t[1] == 0 and t[2] == 1 for t in tensor):
                    continue
                info = {}
                for t in tensor:
                    if t[0] == 13:
                        kv = {e[0]: e[2].decode() for e in parse(t[2])}
                        info[kv.get(1, "")] = kv.get(2, "")
                src = os.path.join(folder, info["location"])
                with open(src, "rb") as s:
                    s.seek(int(info.get("offset", 0)))
                    blob = s.read(int(info["length"])) if "length" in info else s.read()
                pad = (-offset) % align
                data.write(b"\0" * pad)
                offset += pad
                data.write(blob)
                tensor = [t for t in tensor if t[0] != 13]
                tensor += [[13, 2, _entry("location", data_name)], [13, 2, _entry("offset", str(offset))],
                           [13, 2, _entry("length", str(len(blob)))]]
                offset += len(blob)
                gf[2] = serialize(tensor)
                old_files.append(src)
                moved += 1
            mf[2] = serialize(graph)
    if moved == 0:
        os.remove(os.path.join(folder, data_name))
        return 0
    with open(onnx_path, "wb") as f:
        f.write(serialize(model))
    for p in set(old_files):
        os.remove(p)
    return moved
