"""all_models/inflight_batcher_llm/preprocessing/1/model.py -- stand-in of the llama3-trt test world.

The real file is a Triton Python-backend model. The world's tritonserver does not execute model
files: it checks that this one exists and reproduces the model's behaviour itself
(llama3_trt_standin/triton in the llama3-trt project).
"""


class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("the test world's model.py stand-ins are not meant to be executed")
