# Source this file: it puts a Node.js >= 22 first on PATH, installing Node 24 from the npm
# registry into .node/ (git-ignored) when the machine's own Node is older or missing.
# Usage: source scripts/use-node.sh
_llama3_trt_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_llama3_trt_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$_llama3_trt_major" -lt 22 ]; then
  if [ ! -x "$_llama3_trt_root/.node/node_modules/.bin/node" ]; then
    echo "Node.js ${_llama3_trt_major} is older than 22: installing Node 24 into .node/ from the npm registry" >&2
    npm install --silent --no-save --no-package-lock --prefix "$_llama3_trt_root/.node" node@24 >&2 || return 1 2>/dev/null || exit 1
  fi
  export PATH="$_llama3_trt_root/.node/node_modules/.bin:$PATH"
fi
unset _llama3_trt_root _llama3_trt_major
