"""The FUSE door: a local kernel mount of the namespace (pyfuse3, asyncio mode)."""
