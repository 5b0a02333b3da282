package agent_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gopulse/gopulse/agent"
	"github.com/gopulse/gopulse/wire/wiretest"
)

func Example() {
	// An in-process collector stands in for `gopulse server`.
	collector, err := wiretest.New()
	if err != nil {
		panic(err)
	}
	defer collector.Close()

	ctx := context.Background()
	a, err := agent.Start(ctx, agent.Options{
		Service:            "checkout",
		Collector:          collector.URL,
		SpoolDir:           "-", // no on-disk spool in this example
		CPUProfileDuration: 200 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	a.Trigger("checking the agent works")

	for len(collector.Bundles()) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	a.Stop(ctx)

	b := collector.Bundles()[0]
	fmt.Println(b.Manifest.Rule, b.Manifest.Reason)
	for _, f := range b.Manifest.Files {
		if f.Name == "goroutine.pb.gz" || f.Name == "cpu.pb.gz" {
			fmt.Println(f.Name, f.ContentType)
		}
	}
	fmt.Println("batches:", len(collector.Batches()) > 0)
	// Output:
	// manual checking the agent works
	// goroutine.pb.gz application/vnd.google.protobuf+pprof
	// cpu.pb.gz application/vnd.google.protobuf+pprof
	// batches: true
}
