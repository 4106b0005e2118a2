/**
 * Parses config.pbtxt texts as Triton's `inference.ModelConfig` with the real schema: python's
 * protobuf in the world's Triton image, where model_config.proto was compiled at build time.
 * Returns protobuf's JSON form of each (field names as in the .proto), or throws with the parse
 * error, as Triton would refuse the model.
 */
import { runContainer } from "./docker.ts";
import type { World } from "./world.ts";

const script = `
import json, sys
from google.protobuf import text_format, json_format
from llama3_trt_standin.triton import model_config_pb2 as mc
out = {}
for name, text in json.loads(sys.argv[1]).items():
    config = mc.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        out[name] = {"parse_error": str(e)}
        continue
    out[name] = json_format.MessageToDict(config, preserving_proto_field_name=True)
print(json.dumps(out))
`;

export type ParsedConfig = Record<string, unknown> & { parse_error?: string };

export async function parseModelConfigs(world: World, texts: Record<string, string>): Promise<Record<string, ParsedConfig>> {
  const result = await runContainer(world.env.LLAMA3_TRT_TRITON_IMAGE, ["python3", "-c", script, JSON.stringify(texts)]);
  if (result.exitCode !== 0) throw new Error(`parsing in ${world.env.LLAMA3_TRT_TRITON_IMAGE} failed (${result.exitCode}):\n${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, ParsedConfig>;
}

/** `parameters { key: k value { string_value: v } }` of a parsed config, as k → v. */
export function parametersOf(config: ParsedConfig): Record<string, string> {
  const parameters = (config.parameters ?? {}) as Record<string, { string_value?: string }>;
  return Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, v.string_value ?? ""]));
}
