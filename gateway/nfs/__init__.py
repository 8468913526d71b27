"""The NFS door: NFSv3 and MOUNT v3 over ONC RPC on TCP."""
