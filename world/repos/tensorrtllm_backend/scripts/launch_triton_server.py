"""scripts/launch_triton_server.py of tensorrtllm_backend v0.8.0 -- stand-in of the llama3-trt test world.

Same flags and the same command line as the script of that release (test/fixtures/
trtllm-v0.8.0-flags.json in the llama3-trt project): one `mpirun --allow-run-as-root` with one
`-n 1 tritonserver ...` app context per rank; ranks > 0 load only the TensorRT-LLM model. It refuses
to start when `pgrep -r R tritonserver` finds a running server (unless --force), then starts mpirun
and returns at once: the servers run on in the background.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from llama3_trt_standin import record

TOOL = "launch_triton_server.py"


def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument('--world_size', type=int, default=1)
    parser.add_argument('--tritonserver', type=str, default='/opt/tritonserver/bin/tritonserver')
    parser.add_argument('--grpc_port', type=str, default='8001')
    parser.add_argument('--http_port', type=str, default='8000')
    parser.add_argument('--metrics_port', type=str, default='8002')
    parser.add_argument('--force', '-f', action='store_true')
    parser.add_argument('--log', action='store_true')
    parser.add_argument('--log-file', type=str, default='triton_log.txt')
    path = str(Path(__file__).parent.absolute()) + '/../all_models/gpt'
    parser.add_argument('--model_repo', type=str, default=path)
    parser.add_argument('--tensorrt_llm_model_name', type=str, default='tensorrt_llm')
    return parser


def get_cmd(world_size, tritonserver, grpc_port, http_port, metrics_port, model_repo, log, log_file,
            tensorrt_llm_model_name):
    cmd = ['mpirun', '--allow-run-as-root']
    for i in range(world_size):
        cmd += ['-n', '1', tritonserver, f'--model-repository={model_repo}']
        if log and (i == 0):
            cmd += ['--log-verbose=3', f'--log-file={log_file}']
        if i != 0:
            # Worker ranks only host the TensorRT-LLM model.
            cmd += ['--model-control-mode=explicit', f'--load-model={tensorrt_llm_model_name}']
        cmd += [f'--grpc-port={grpc_port}', f'--http-port={http_port}', f'--metrics-port={metrics_port}',
                '--disable-auto-complete-config',
                f'--backend-config=python,shm-region-prefix-name=prefix{i}_', ':']
    return cmd


def running_tritonservers():
    """PIDs `pgrep -r R tritonserver` prints: servers in run state R only."""
    try:
        res = subprocess.run(['pgrep', '-r', 'R', 'tritonserver'], capture_output=True, encoding='utf-8')
        return res.stdout
    except FileNotFoundError:
        # The world's base image has no procps: read /proc the way pgrep does.
        pids = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open(f'/proc/{entry}/stat') as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index('(') + 1:stat.rindex(')')]
            state = stat[stat.rindex(')') + 2:].split(' ', 1)[0]
            if comm == 'tritonserver' and state == 'R':
                pids.append(entry)
        return ''.join(p + '\n' for p in pids)


if __name__ == '__main__':
    record.start(TOOL)
    args = build_parser().parse_args()
    out = running_tritonservers()
    if out:
        pids = out.replace('\n', ' ').rstrip()
        msg = f'tritonserver process(es) already found with PID(s): {pids}.\n\tUse `kill {pids}` to stop them.'
        if args.force:
            print(msg, file=sys.stderr)
        else:
            raise RuntimeError(msg + ' Or use --force.')
    cmd = get_cmd(int(args.world_size), args.tritonserver, args.grpc_port, args.http_port, args.metrics_port,
                  args.model_repo, args.log, args.log_file, args.tensorrt_llm_model_name)
    subprocess.Popen(cmd)
