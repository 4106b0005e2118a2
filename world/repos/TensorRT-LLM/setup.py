# Stand-in of TensorRT-LLM's setup.py for the llama3-trt test world: only the version matters
# here (the product checks the checkout it builds from). The package itself is installed into the
# world's images from world/standins/tensorrt_llm_pkg.
from setuptools import setup

setup(name="tensorrt_llm", version="0.8.0", description="TensorRT-LLM (test-world stand-in)")
