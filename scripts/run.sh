#!/bin/sh
# Serve the backend and open the app; without a display, keep serving and say how to log in.
set -eu
CARNET_PUBLIC_BASE_URL="${CARNET_PUBLIC_BASE_URL:-http://$HOST:$PORT}" "$BIN/carnet" serve --host "$HOST" --port "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' INT TERM EXIT
# wait until the API answers
i=0
until "$BIN/python" -c "import urllib.request,sys; urllib.request.urlopen('http://$HOST:$PORT/api/health', timeout=1)" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 60 ] && { echo "the backend did not start" >&2; exit 1; }
  sleep 0.5
done
echo
echo "Backend: http://$HOST:$PORT/api/v1  (OpenAPI: http://$HOST:$PORT/api/openapi.json)"
echo "Demo login: see above; one-time code: make otp"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  CARNET_API_URL="http://$HOST:$PORT" "$BIN/python" -m mobile || echo "the app exited; the backend keeps serving (Ctrl-C to stop)"
else
  echo "No display found (DISPLAY is not set): the app cannot open here."
  echo "The backend keeps serving at http://$HOST:$PORT — Ctrl-C to stop."
fi
wait $SERVER
