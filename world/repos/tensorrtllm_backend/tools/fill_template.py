#! /usr/bin/env python3
"""tools/fill_template.py of tensorrtllm_backend v0.8.0 -- stand-in of the llama3-trt test world.

Same semantics as the real tool: string.Template(text).safe_substitute(d), with d built by splitting
the substitutions on ',' and each item on ':' (so a value holding ',' or ':' breaks it: a ValueError
ends the tool). With --in_place the file is rewritten, otherwise the result goes to stdout.
"""

from argparse import ArgumentParser
from string import Template

from llama3_trt_standin import record

TOOL = "fill_template.py"


def main(file_path, substitutions, in_place):
    with open(file_path) as f:
        pbtxt = Template(f.read())

    sub_dict = {}
    for sub in substitutions.split(","):
        key, value = sub.split(":")
        sub_dict[key] = value

    pbtxt = pbtxt.safe_substitute(sub_dict)

    if in_place:
        with open(file_path, "w") as f:
            f.write(pbtxt)
    else:
        print(pbtxt)


def build_parser():
    parser = ArgumentParser()
    parser.add_argument("file_path", help="path of the .pbtxt to modify")
    parser.add_argument("substitutions",
                        help="substitutions to perform, in the format variable_name_1:value_1,variable_name_2:value_2...")
    parser.add_argument("--in_place", "-i", action="store_true", help="do the operation in-place")
    return parser


if __name__ == "__main__":
    record.start(TOOL)
    args = build_parser().parse_args()
    main(**vars(args))
