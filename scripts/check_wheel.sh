#!/usr/bin/env bash
# Build the abi3 wheel, install it into a fresh venv, and serve the embedded default config from
# an unrelated directory: proves the wheel carries the extension, the tokenizer ranks, the
# default config and the Redis script, and that `relay serve` needs no file of the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

rm -rf dist
$PYTHON -m pip wheel . --no-deps -w dist -q
wheel=$(ls dist/*.whl)
case "$wheel" in *abi3*) ;; *) echo "not an abi3 wheel: $wheel" >&2; exit 1 ;; esac
$PYTHON -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"

cd "$work"
"$work/venv/bin/relay" check-config
# the Lua script of the Redis limits ships beside its module (read at import)
"$work/venv/bin/python" -c 'import relay.storage.redis'
port=$("$work/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$work/venv/bin/relay" serve --port "$port" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
reply=$(curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"echo","messages":[{"role":"user","content":"wheel ok"}]}')
case "$reply" in
  *'"content":"You said: wheel ok"'*) echo "wheel check: ok ($(basename "$wheel"))" ;;
  *) echo "unexpected reply: $reply" >&2; cat "$work/serve.log" >&2; exit 1 ;;
esac
