"""Stand-in of Triton Inference Server 2.44.0 (NGC 24.03) with the TensorRT-LLM v0.8.0 backend.

`model_config_pb2` is generated at image build time from Triton's model_config.proto
(world/standins/proto/model_config.proto) with the image's protoc.
"""
