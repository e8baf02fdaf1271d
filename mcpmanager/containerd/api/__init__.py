"""Generated protobuf/gRPC modules for the subset of containerd's v1 API we use.

The ``.proto`` files here keep containerd 1.6's package, message and field
names and numbers (the wire contract); regenerate with ``scripts/gen-protos``.
"""
