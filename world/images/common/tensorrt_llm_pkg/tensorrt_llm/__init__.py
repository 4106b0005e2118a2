"""Stand-in of the `tensorrt_llm` Python package (v0.8.0) for the llama3-trt test world.

It carries only what the examples and `trtllm-build` of the world need: the version, the MPI
rank helpers the examples call, and `tensorrt_llm.commands.build` behind `trtllm-build`.
Scripts that `import tensorrt_llm` fail outside the images that install it, as the real ones do.
"""

import os

from .version import __version__  # noqa: F401


def mpi_rank() -> int:
    # Open MPI tells each rank who it is through its environment.
    return int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))


def mpi_world_size() -> int:
    return int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
