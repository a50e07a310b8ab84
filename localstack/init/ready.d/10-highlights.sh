#!/bin/bash
# LocalStack READY hook: the same migrations and provisioning as the no-Docker stack
# (`highlights local provision`, then `highlights migrate --login-users`), run by the host-built binary.
set -euo pipefail
echo "highlights-init: migrating and provisioning"
export AWS_ENDPOINT_URL=http://localhost:4566
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
bin=/opt/highlights/highlights
if [[ ! -x $bin ]]; then
  echo "highlights-init: $bin is missing: run 'cargo build --release -p highlights-cli' on the host first" >&2
  exit 1
fi
# Provisioning first: it creates the database users' secrets that `--login-users` reads.
"$bin" local provision
DATABASE_URL="$HIGHLIGHTS_DATABASE_URL" "$bin" migrate --create-database --login-users
echo "highlights-init: done"
