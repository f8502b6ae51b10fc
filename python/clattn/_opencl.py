"""The OpenCL devices the ICD loader offers, read through libOpenCL with ctypes (no pyopencl
needed), in the platform and device order that clattn's "P:D" selectors use."""
import ctypes
import ctypes.util

CL_DEVICE_TYPE_ALL = 0xFFFFFFFF
CL_DEVICE_TYPE = 0x1000
CL_DEVICE_NAME = 0x102B
CL_PLATFORM_NAME = 0x0902
_TYPES = ((4, "gpu"), (8, "accelerator"), (2, "cpu"))


def _opencl():
    name = ctypes.util.find_library("OpenCL") or "libOpenCL.so.1"
    cl = ctypes.CDLL(name)
    v, u, sz = ctypes.c_void_p, ctypes.c_uint, ctypes.c_size_t
    cl.clGetPlatformIDs.argtypes = [u, ctypes.POINTER(v), ctypes.POINTER(u)]
    cl.clGetDeviceIDs.argtypes = [v, ctypes.c_ulonglong, u, ctypes.POINTER(v), ctypes.POINTER(u)]
    cl.clGetDeviceInfo.argtypes = [v, u, sz, v, ctypes.POINTER(sz)]
    cl.clGetPlatformInfo.argtypes = [v, u, sz, v, ctypes.POINTER(sz)]
    return cl


def _string(fn, obj, param):
    n = ctypes.c_size_t()
    if fn(obj, param, 0, None, ctypes.byref(n)) != 0:
        return ""
    buf = ctypes.create_string_buffer(n.value)
    fn(obj, param, n.value, buf, None)
    return buf.value.decode(errors="replace")


def list_devices():
    """[(platform index, device index, name, type, platform name)]; [] without OpenCL."""
    try:
        cl = _opencl()
    except OSError:
        return []
    n = ctypes.c_uint()
    if cl.clGetPlatformIDs(0, None, ctypes.byref(n)) != 0 or n.value == 0:
        return []
    plats = (ctypes.c_void_p * n.value)()
    cl.clGetPlatformIDs(n.value, plats, None)
    found = []
    for p, plat in enumerate(plats):
        nd = ctypes.c_uint()
        if cl.clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 0, None, ctypes.byref(nd)) != 0:
            continue
        devs = (ctypes.c_void_p * nd.value)()
        cl.clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, nd.value, devs, None)
        pname = _string(cl.clGetPlatformInfo, plat, CL_PLATFORM_NAME)
        for d, dev in enumerate(devs):
            t = ctypes.c_ulonglong()
            cl.clGetDeviceInfo(dev, CL_DEVICE_TYPE, ctypes.sizeof(t), ctypes.byref(t), None)
            kind = next((name for bit, name in _TYPES if t.value & bit), "other")
            found.append((p, d, _string(cl.clGetDeviceInfo, dev, CL_DEVICE_NAME), kind, pname))
    return found
