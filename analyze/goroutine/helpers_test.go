package goroutine

import (
	"os"
	"runtime"
	"testing"
)

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runtimeStack(buf []byte) int { return runtime.Stack(buf, true) }
