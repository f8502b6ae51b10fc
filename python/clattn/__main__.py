"""python -m clattn: the devices and the library this package sees."""
from . import Context, __version__, devices, library_path

print("clattn %s (%s)" % (__version__, library_path()))
for d in devices():
    print("  %s  %-11s %s  [%s]" % (d.selector, d.type, d.name, d.platform_name))
with Context() as ctx:
    print("default device: %s" % ctx.device_name)
