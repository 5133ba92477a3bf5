"""RPC frameworks: gRPC (grpcio, sync and ``grpc.aio``)."""
