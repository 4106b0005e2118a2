import { FailedError, UsageError } from "../common/errors.ts";
import type { ContainerSpec } from "../docker/container-spec.ts";
import { containerUser, inContainer, mount, tokenizerDirIn } from "../pipeline/container-paths.ts";
import type { Session } from "../pipeline/session.ts";
import { readBuilt, type Built } from "../server/deployment.ts";
import { cleanAnswer } from "../triton/chat-template.ts";
import { promptText, usesChatTemplate, type AskRequest } from "../triton/generate-request.ts";
import { runPyAnswer, runPyArgv } from "../trtllm/argv.ts";

/** Lines of run.py's output quoted when it fails. */
const failureTailLines = 20;

/**
 * The container of `ask --local`: TensorRT-LLM's examples/run.py from the cloned repository, in
 * the build image, on the engine, with the tokenizer mounted read-only: no server involved.
 */
export function askLocalSpec(session: Pick<Session, "settings">, built: Built, request: AskRequest): ContainerSpec {
  if (!built.buildImage || !built.trtllmRepo) throw new Error("askLocalSpec needs the build image and the TensorRT-LLM checkout");
  const user = containerUser();
  return {
    image: built.buildImage.ref,
    cmd: runPyArgv({
      engineDir: inContainer.engine,
      tokenizerDir: tokenizerDirIn(built.weights.modelPath),
      inputText: promptText(request),
      maxOutputLen: request.maxTokens,
      maxInputLength: built.engine.maxInputLen,
      // The chat template starts with <|begin_of_text|> itself; run.py would add a second one.
      addSpecialTokens: !usesChatTemplate(request),
      temperature: request.temperature,
      topK: request.topK,
      topP: request.topP,
      tp: built.engine.tp,
    }),
    workingDir: `${inContainer.trtllm}/examples`,
    mounts: [mount(built.trtllmRepo.dir, inContainer.trtllm), mount(built.engine.dir, inContainer.engine), mount(built.weights.mountDir, inContainer.weights)],
    gpus: session.settings.gpus,
    ...(user ? { user } : {}),
  };
}

/** Runs the prompt through run.py and returns only the answer. */
export async function askLocal(session: Session, request: AskRequest, signal: AbortSignal): Promise<{ answer: string; spec: ContainerSpec }> {
  const built = await readBuilt(session, ["trtllm-repo", "weights", "build-image", "engine"], "ask --local on");
  if (request.maxTokens > built.engine.maxOutputLen) {
    throw new UsageError(`--max-tokens ${request.maxTokens} is more than the engine's max output length (${built.engine.maxOutputLen}): lower it, or build with \`--max-output-len\`.`);
  }
  const spec = askLocalSpec(session, built, request);
  const lines: string[] = [];
  const result = await session.docker.runToCompletion(spec, {
    labels: session.labelsFor("ask-local"),
    onLine: (line) => lines.push(line),
    signal,
    engine: await session.engine(),
  });
  const tail = () => lines.slice(-failureTailLines).map((l) => `    ${l}`).join("\n");
  if (result.exitCode !== 0) {
    throw new FailedError(`run.py exited with code ${result.exitCode}${result.oomKilled ? " (killed by the OOM killer)" : ""}.\n  Last lines:\n${tail()}`);
  }
  const answer = runPyAnswer(lines.join("\n"));
  if (answer === undefined) throw new FailedError(`run.py printed no answer.\n  Last lines:\n${tail()}`);
  return { answer: cleanAnswer(answer).trim(), spec };
}
