#!/usr/bin/env bash
# Makes a local Co-op Cloud recipe "upstream" for canon's fixture recipe, with two release tags,
# an empty local mirror, and an enrollment file pointing at both: everything the standalone sweep
# needs, with no forge. Usage: make-upstream.sh DIR. Reuses DIR when it is already set up, so the
# tags keep their commits between runs.
set -euo pipefail

dir=${1:?usage: make-upstream.sh DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ -f "$dir/enrollment.yml" ] && [ -d "$dir/upstream.git" ]; then
  echo "Reusing the demo upstream in $dir" >&2
  exit 0
fi

export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="canon demo" GIT_AUTHOR_EMAIL=demo@canon.localhost
export GIT_COMMITTER_NAME="canon demo" GIT_COMMITTER_EMAIL=demo@canon.localhost

rm -rf "$dir/work" "$dir/upstream.git" "$dir/mirror.git"
git init -q --bare -b main "$dir/upstream.git"
git init -q --bare -b main "$dir/mirror.git"
git init -q -b main "$dir/work"
cp -r "$here/fixtures/recipe/." "$dir/work/"
cd "$dir/work"

release() {
  local tag=$1
  sed -i "s|coop-cloud.\${STACK_NAME}.version=[^\"]*|coop-cloud.\${STACK_NAME}.version=$tag|" compose.yml
  git add -A
  git commit -q -m "chore: publish $tag release"
  git tag -a "$tag" -m "chore: publish $tag release"
}

release "1.0.0+0.1.0"
echo "Demo release notes" > release.txt
release "1.1.0+0.1.0"
git remote add origin "$dir/upstream.git"
git push -q origin main --tags

cat > "$dir/enrollment.yml" <<YAML
# The standalone demo: upstream and mirror are local bare repos, no forge, no Drone.
recipes:
  - name: canon-fixture
    upstream: $dir/upstream.git
    mirror: $dir/mirror.git
    deploy_timeout: 120
YAML
echo "Made $dir/upstream.git with tags 1.0.0+0.1.0 and 1.1.0+0.1.0" >&2
