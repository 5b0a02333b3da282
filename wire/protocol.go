// Package wire is the agent↔collector format of gopulse: protobuf messages
// (package gopulse.wire.v1, generated into this package from
// proto/gopulse/wire/v1/wire.proto by gen.sh) and the framing of evidence
// bundles. README.md describes each message and the HTTP protocol in prose.
package wire

// HTTP protocol constants shared by the agent and the collector.
const (
	// PathPushMetrics receives one MetricBatch as a Connect unary call.
	PathPushMetrics = "/gopulse.wire.v1.Ingest/PushMetrics"
	// PathPushBundle receives one bundle stream (see BundleWriter).
	PathPushBundle = "/gopulse/v1/bundles"

	// ContentTypeProto is the Connect unary content type for protobuf bodies.
	ContentTypeProto = "application/proto"
	// ContentTypeBundle is the content type of a bundle stream.
	ContentTypeBundle = "application/vnd.gopulse.bundle.v1"

	// HeaderIdempotencyKey carries MetricBatch.batch_id or the bundle's event
	// id, so a collector can drop a retry before reading the body.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderConnectProtocol is sent on unary calls as Connect requires.
	HeaderConnectProtocol = "Connect-Protocol-Version"
)
