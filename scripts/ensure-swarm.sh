#!/usr/bin/env bash
# Makes the local Docker engine a single-node swarm manager, as Co-op Cloud servers are, when it
# is not one yet: the docker runner deploys with `docker stack deploy`. Fails loudly when no
# engine answers.
set -euo pipefail

if ! state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>&1); then
  echo "error: no Docker engine answers (docker info: $state)" >&2
  exit 1
fi
if [ "$state" != "active" ]; then
  echo "+ docker swarm init --advertise-addr 127.0.0.1" >&2
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
fi
