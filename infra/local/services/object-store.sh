#!/usr/bin/env bash
# S3-compatible object store: versitygw (Apache-2.0) on a POSIX directory.
source "$(dirname "$0")/common.sh"
require S3_PORT S3_ACCESS_KEY S3_SECRET_KEY S3_REGION
need_file "$CACHE/bin/versitygw"
mkdir -p "$VAR/data/s3"
exec "$CACHE/bin/versitygw" --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" --region "$S3_REGION" \
  --port "$BIND_HOST:$S3_PORT" --quiet posix "$VAR/data/s3"
