package autostart

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if started != nil {
		started.Stop(context.Background())
	}
	// Once stopped, the agent started on import must leave nothing behind.
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		code = 1
	}
	os.Exit(code)
}

func TestStartedOnImport(t *testing.T) {
	if os.Getenv("GOPULSE_DISABLE") == "1" {
		t.Skip("disabled by environment")
	}
	if Agent() == nil {
		t.Fatal("importing autostart did not start the agent")
	}
	if Agent().Status().Service == "" {
		t.Fatal("no service name")
	}
}
