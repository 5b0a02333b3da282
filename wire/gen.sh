#!/bin/sh
# Regenerates wire.pb.go from proto/gopulse/wire/v1/wire.proto.
# Needs protoc (apt-get install -y protobuf-compiler) and
# go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
# (the version in go.mod, so the generated code matches the runtime).
set -eu
cd "$(dirname "$0")"
protoc -I proto \
  --go_out=. --go_opt=module=github.com/gopulse/gopulse/wire \
  proto/gopulse/wire/v1/wire.proto
