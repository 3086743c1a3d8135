"""A Python C extension's buffer read before written: ctypes.create_string_buffer is
zeroed, but bytearray growth through a memoryview of malloc'd memory is not."""

import ctypes

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
p = libc.malloc(64)
data = ctypes.string_at(p, 8)
print(data.hex())
