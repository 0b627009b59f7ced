#!/usr/bin/env python3
"""Binding libzerohop from Python with ctypes alone (no compiler, no extension module).

    ZEROHOP_SOCKET=/run/zerohop/zerohop.sock ZEROHOP_ACCESS_KEY=dev-key \\
        python3 zerohop_ctypes.py /demo

LIBZEROHOP names the library when it is not on the loader's path.
"""
import ctypes
import os
import sys

lib = ctypes.CDLL(os.environ.get("LIBZEROHOP", "libzerohop.so"))


class Info(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int32), ("mode", ctypes.c_uint32), ("uid", ctypes.c_uint32),
                ("gid", ctypes.c_uint32), ("id", ctypes.c_uint64), ("size", ctypes.c_uint64),
                ("mtime_secs", ctypes.c_int64), ("mtime_nsecs", ctypes.c_int32),
                ("ctime_secs", ctypes.c_int64), ("ctime_nsecs", ctypes.c_int32),
                ("last_sequence", ctypes.c_uint64), ("atime_secs", ctypes.c_int64),
                ("atime_nsecs", ctypes.c_int32), ("subdirs", ctypes.c_uint64)]


P = ctypes.c_void_p
lib.zh_last_error.restype = ctypes.c_char_p
lib.zh_connect.restype = P
lib.zh_connect.argtypes = [P]
lib.zh_close.argtypes = [P]
lib.zh_attrs_new.restype = P
lib.zh_attrs_free.argtypes = [P]
lib.zh_attrs_count.restype = ctypes.c_size_t
lib.zh_attrs_count.argtypes = [P]
lib.zh_attrs_name.restype = ctypes.c_char_p
lib.zh_attrs_name.argtypes = [P, ctypes.c_size_t]
lib.zh_attrs_type.argtypes = [P, ctypes.c_char_p]
lib.zh_attrs_set_int64.argtypes = [P, ctypes.c_char_p, ctypes.c_int64]
lib.zh_attrs_set_double.argtypes = [P, ctypes.c_char_p, ctypes.c_double]
lib.zh_attrs_set_string.argtypes = [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
lib.zh_attrs_get_int64.argtypes = [P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]
lib.zh_attrs_get_double.argtypes = [P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_double)]
lib.zh_attrs_get_string.argtypes = [P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
                                    ctypes.POINTER(ctypes.c_size_t)]
lib.zh_put_item.argtypes = [P, ctypes.c_char_p, P, ctypes.c_char_p, ctypes.POINTER(Info)]
lib.zh_get_item.argtypes = [P, ctypes.c_char_p, P, ctypes.c_size_t, ctypes.POINTER(P)]
lib.zh_update_item.argtypes = [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.POINTER(Info)]
lib.zh_put.argtypes = [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, P, ctypes.c_char_p,
                       ctypes.POINTER(Info)]
lib.zh_get.argtypes = [P, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.POINTER(P)]
lib.zh_view_data.restype = P
lib.zh_view_data.argtypes = [P]
lib.zh_view_size.restype = ctypes.c_size_t
lib.zh_view_size.argtypes = [P]
lib.zh_view_release.argtypes = [P]
lib.zh_stat.argtypes = [P, ctypes.c_char_p, ctypes.POINTER(Info)]
lib.zh_mkdir.argtypes = [P, ctypes.c_char_p, ctypes.c_uint32]

ZH_ALREADY_EXISTS = 6
ZH_INT64, ZH_DOUBLE, ZH_STRING = 2, 3, 4
ZH_TO_END = 2**64 - 1


class Error(Exception):
    def __init__(self, code, message):
        super().__init__(f"{message} (code {code})")
        self.code = code


def _check(rc):
    if rc != 0:
        raise Error(rc, lib.zh_last_error().decode())


class Client:
    def __init__(self):
        self._c = lib.zh_connect(None)
        if not self._c:
            raise Error(14, lib.zh_last_error().decode())

    def close(self):
        if self._c:
            lib.zh_close(self._c)
            self._c = None

    def mkdir(self, path, mode=0o755, exist_ok=False):
        rc = lib.zh_mkdir(self._c, path.encode(), mode)
        if not (exist_ok and rc == ZH_ALREADY_EXISTS):
            _check(rc)

    def put_item(self, path, attrs, condition=None):
        a = lib.zh_attrs_new()
        try:
            for k, v in attrs.items():
                key = k.encode()
                if isinstance(v, int):
                    _check(lib.zh_attrs_set_int64(a, key, v))
                elif isinstance(v, float):
                    _check(lib.zh_attrs_set_double(a, key, v))
                else:
                    b = str(v).encode()
                    _check(lib.zh_attrs_set_string(a, key, b, len(b)))
            _check(lib.zh_put_item(self._c, path.encode(), a, condition.encode() if condition else None, None))
        finally:
            lib.zh_attrs_free(a)

    def get_item(self, path):
        out = P()
        _check(lib.zh_get_item(self._c, path.encode(), None, 0, ctypes.byref(out)))
        try:
            result = {}
            for i in range(lib.zh_attrs_count(out)):
                name = lib.zh_attrs_name(out, i)
                t = lib.zh_attrs_type(out, name)
                if t == ZH_INT64:
                    v = ctypes.c_int64()
                    _check(lib.zh_attrs_get_int64(out, name, ctypes.byref(v)))
                    result[name.decode()] = v.value
                elif t == ZH_DOUBLE:
                    v = ctypes.c_double()
                    _check(lib.zh_attrs_get_double(out, name, ctypes.byref(v)))
                    result[name.decode()] = v.value
                elif t == ZH_STRING:
                    s, n = ctypes.c_char_p(), ctypes.c_size_t()
                    _check(lib.zh_attrs_get_string(out, name, ctypes.byref(s), ctypes.byref(n)))
                    result[name.decode()] = ctypes.string_at(s, n.value).decode()
            return result
        finally:
            lib.zh_attrs_free(out)

    def update_item(self, path, update, condition=None):
        _check(lib.zh_update_item(self._c, path.encode(), update.encode(),
                                  condition.encode() if condition else None, None, None))

    def put(self, path, data):
        _check(lib.zh_put(self._c, path.encode(), data, len(data), None, None, None))

    def get(self, path):
        """The object's bytes, read in place and copied once into a Python bytes object."""
        v = P()
        _check(lib.zh_get(self._c, path.encode(), 0, ZH_TO_END, ctypes.byref(v)))
        try:
            return ctypes.string_at(lib.zh_view_data(v), lib.zh_view_size(v))
        finally:
            lib.zh_view_release(v)

    def stat(self, path):
        info = Info()
        _check(lib.zh_stat(self._c, path.encode(), ctypes.byref(info)))
        return info


def main():
    container = sys.argv[1] if len(sys.argv) > 1 else "/demo"
    c = Client()
    try:
        c.mkdir(f"{container}/py-example", exist_ok=True)
        c.put_item(f"{container}/py-example/bob", {"name": "Bob", "visits": 0, "score": 1.5})
        c.update_item(f"{container}/py-example/bob", "visits = visits + 1")
        print("item:", c.get_item(f"{container}/py-example/bob"))
        c.put(f"{container}/py-example/blob.bin", b"\x00\x01binary\xff")
        data = c.get(f"{container}/py-example/blob.bin")
        print("object:", data, "size", c.stat(f"{container}/py-example/blob.bin").size)
        try:
            c.put_item(f"{container}/py-example/bob", {"visits": 9}, condition="visits == 100")
        except Error as e:
            print("conditional put refused:", e)
    finally:
        c.close()


if __name__ == "__main__":
    main()
