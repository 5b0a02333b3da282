// Package autostart starts the gopulse agent when it is imported, for
// services that want it without code changes beyond one import:
//
//	import _ "github.com/gopulse/gopulse/agent/autostart"
//
// Configuration comes from the GOPULSE_* environment variables (see
// agent.Options); GOPULSE_DISABLE=1 keeps the agent off. Starting
// goroutines on import is exactly what the agent package itself never does:
// this package exists so that doing it is an explicit choice.
package autostart

import (
	"context"
	"log/slog"
	"os"

	"github.com/gopulse/gopulse/agent"
)

var started *agent.Agent

func init() {
	if os.Getenv("GOPULSE_DISABLE") == "1" {
		return
	}
	a, err := agent.Start(context.Background(), agent.Options{})
	if err != nil {
		// Never fail the service for its monitoring.
		slog.Warn("gopulse autostart: agent not started", "err", err)
		return
	}
	started = a
}

// Agent returns the agent started on import, or nil if it is disabled or
// failed to start (the reason was logged).
func Agent() *agent.Agent { return started }
