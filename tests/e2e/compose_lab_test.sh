#!/usr/bin/env bash
# End to end, the compose lab as a user brings it up: `docker compose up lab` from a clean
# state, a four-scheme run from the host's labctl across the agent containers (every probe
# accounted for, each client on its own container), the dashboard and its API, one agent
# container stopped mid-run (its client lost, the others complete), then
# `docker compose down -v` and nothing left.
#
#   usage: tests/e2e/compose_lab_test.sh [LABCTL]      (CTest: compose_lab)
#
# Its own project name, image tag, host ports and lab subnet, so a lab the user has up is
# left alone.
# Exits 77 (CTest: skipped) when no Docker engine with Compose v2 answers, unless
# LAB_REQUIRE_DOCKER=1 (CI sets it after scripts/docker-setup): then that is a failure.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
labctl=${1:-$repo/build/labctl/labctl}
step() { echo "== $(date +%T) $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

if ! docker info >/dev/null 2>&1 || ! docker compose version >/dev/null 2>&1; then
  if [[ "${LAB_REQUIRE_DOCKER:-0}" == 1 ]]; then
    fail "no Docker engine with Compose v2 answers (run scripts/docker-setup)"
  fi
  echo "SKIP: no Docker engine with Compose v2 (scripts/docker-setup installs and starts them)"
  exit 77
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
project="labe2e$$"
export LAB_GRPC_PORT LAB_HTTP_PORT LAB_NET LAB_IMAGE
LAB_IMAGE="netlab:$project"
LAB_GRPC_PORT=$(free_port)
LAB_HTTP_PORT=$(free_port)
LAB_NET="172.29.$((RANDOM % 200 + 20))"
compose() { docker compose -p "$project" -f "$repo/compose.yaml" "$@"; }
ctl() { "$labctl" --controller "127.0.0.1:$LAB_GRPC_PORT" "$@"; }
work=$(mktemp -d)
run_pid=""
cleanup() {
  local rc=$?
  if [[ -n "$run_pid" ]]; then kill "$run_pid" 2>/dev/null || true; wait "$run_pid" 2>/dev/null || true; fi
  if [[ $rc -ne 0 ]]; then
    echo "--- logs of the compose lab (exit $rc)"
    compose logs --no-color --tail 40 2>&1 | tail -200 || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  docker image rm "$LAB_IMAGE" >/dev/null 2>&1 || true  # the layers stay in the build cache
  rm -rf "$work"
}
trap cleanup EXIT

step "clean state: project $project, ports $LAB_GRPC_PORT/$LAB_HTTP_PORT, subnet $LAB_NET.0/24"
compose down -v --remove-orphans >/dev/null 2>&1 || true

step "docker compose up -d lab (builds the image when needed)"
started=$(date +%s)
compose up -d --build lab
for _ in $(seq 1 120); do
  ctl --output json agents >"$work/agents.json" 2>/dev/null \
    && python3 - "$work/agents.json" <<'PY' && break
import json, sys
agents = json.load(open(sys.argv[1]))["agents"]
sys.exit(0 if sum(1 for a in agents if a.get("alive")) >= 4 else 1)
PY
  sleep 1
done
python3 - "$work/agents.json" <<'PY' || fail "the four agents did not connect within 120 s"
import json, sys
agents = json.load(open(sys.argv[1]))["agents"]
names = sorted(a["name"] for a in agents if a.get("alive"))
print("   agents:", ", ".join(f'{a["name"]} {",".join(a["addresses"])}' for a in agents))
sys.exit(0 if names == ["agent-1", "agent-2", "agent-3", "agent-4"] else 1)
PY
echo "   lab up in $(( $(date +%s) - started )) s"

step "labctl run --clients raw,ewma,kalman,pid --count 200 from the host"
ctl run --clients raw,ewma,kalman,pid --count 200 --output json >"$work/run.json" 2>"$work/run.err" \
  || { cat "$work/run.err"; fail "the four-scheme run did not complete"; }
python3 - "$work/run.json" "$LAB_NET" <<'PY' || fail "the run's result is wrong"
import json, sys
result = json.load(open(sys.argv[1]))
net = sys.argv[2]
clients = result["clients"]
assert len(clients) == 4, clients
agents = set()
for c in clients:
    assert c["state"] == "complete", c
    assert c["sent"] == 200 and c["received"] + c["lost"] == 200, c
    assert c["lost"] == 0, c
    assert c["truth_known"] is True, c  # containers share the host kernel's clock
    assert c["agent_address"].startswith(net + "."), c
    agents.add(c["agent"])
    print(f'   {c["scheme"]:7} on {c["agent"]} ({c["agent_address"]}): '
          f'{c["received"]}/{c["sent"]}, p99 |error| {c["error_us"]["abs_p99"]:.2f} us')
assert len(agents) == 4, f"clients shared agents: {sorted(agents)}"
PY
run_id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["experiment_id"])' "$work/run.json")

step "the dashboard and /api/v1/experiments"
curl -fsS "http://127.0.0.1:$LAB_HTTP_PORT/" | grep -q "<html" || fail "no dashboard page"
curl -fsS "http://127.0.0.1:$LAB_HTTP_PORT/vendor/uplot/uPlot.esm.js" >/dev/null \
  || fail "the chart library is not served"
curl -fsS "http://127.0.0.1:$LAB_HTTP_PORT/api/v1/experiments" | grep -q "\"$run_id\"" \
  || fail "the run $run_id is not in /api/v1/experiments"
docker compose -p "$project" -f "$repo/compose.yaml" exec -T lab labctl agents >/dev/null \
  || fail "labctl inside the lab container cannot reach the controller"

step "an agent container stopped mid-run: its client lost, the others complete"
ctl run --clients raw,ewma,kalman,pid --count 4000 --interval 5ms --output json \
  >"$work/lost.json" 2>"$work/lost.err" &
run_pid=$!
# The run is going once every client has stored samples.
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$LAB_HTTP_PORT/api/v1/experiments?limit=1" >"$work/list.json" || true
  id=$(python3 -c 'import json, sys; e = json.load(open(sys.argv[1]))["experiments"]; print(e[0]["experiment_id"] if e and e[0]["state"] == "running" else "")' "$work/list.json" 2>/dev/null || true)
  if [[ -n "$id" ]]; then
    curl -fsS "http://127.0.0.1:$LAB_HTTP_PORT/api/v1/experiments/$id/samples?max_points=100" \
      >"$work/samples.json" || true
    python3 -c 'import json, sys; t = json.load(open(sys.argv[1]))["tasks"]; sys.exit(0 if len(t) == 4 and all(x["stored"] >= 50 for x in t) else 1)' \
      "$work/samples.json" 2>/dev/null && break
  fi
  sleep 0.2
done
[[ -n "${id:-}" ]] || fail "the long run never showed up as running"
python3 -c 'import json, sys; t = json.load(open(sys.argv[1]))["tasks"]; sys.exit(0 if len(t) == 4 and all(x["stored"] >= 50 for x in t) else 1)' \
  "$work/samples.json" 2>/dev/null || fail "the long run's clients stored no samples within 20 s"
# The victim runs a client but not the time server (that would lose every client).
curl -fsS "http://127.0.0.1:$LAB_HTTP_PORT/api/v1/experiments/$id" >"$work/run-detail.json"
victim=$(python3 - "$work/run-detail.json" <<'PY'
import json, sys
tasks = json.load(open(sys.argv[1]))["tasks"]
server = [t["agent"] for t in tasks if t["role"] == "server"][0]
print([t["agent"] for t in tasks if t["role"] == "client" and t["agent"] != server][0])
PY
)
echo "   stopping $victim (runs a client of $id, not its server)"
compose stop -t 5 "$victim"
set +e
wait "$run_pid"
code=$?
set -e
run_pid=""
[[ $code -eq 3 ]] || { cat "$work/lost.err"; fail "labctl exited $code, expected 3 (partial)"; }
python3 - "$work/lost.json" "$victim" <<'PY' || fail "the partial run's result is wrong"
import json, sys
result = json.load(open(sys.argv[1]))
victim = sys.argv[2]
for c in result["clients"]:
    if c["agent"] == victim:
        assert c["state"] == "lost", c
        print(f'   {c["scheme"]:7} on {victim}: lost ({c.get("detail", "")})')
    else:
        assert c["state"] == "complete" and c["received"] + c["lost"] == 4000, c
        print(f'   {c["scheme"]:7} on {c["agent"]}: complete')
PY

step "docker compose down -v leaves nothing"
compose down -v --remove-orphans
left=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
[[ -z "$left" ]] || fail "containers left: $left"
[[ -z "$(docker network ls -q --filter "label=com.docker.compose.project=$project")" ]] \
  || fail "the lab network is left"
[[ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$project")" ]] \
  || fail "the results volume is left"
echo "PASS"
