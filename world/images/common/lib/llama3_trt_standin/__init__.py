"""Shared code of the llama3-trt test world's stand-ins for NVIDIA's tools.

Every stand-in (convert_checkpoint.py, trtllm-build, run.py, mpirun, tritonserver,
launch_triton_server.py, fill_template.py, apt-get, pip, git) calls `record.start()` before it
does anything else, so that a test can tell which tools ran and with which command line.
See world/standins/README.md.
"""
