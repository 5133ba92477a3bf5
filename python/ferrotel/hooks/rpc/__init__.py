"""RPC frameworks: gRPC (grpcio, sync and ``grpc.aio``) and the AWS SDK (botocore)."""
