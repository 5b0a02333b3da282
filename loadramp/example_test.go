package loadramp_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gopulse/gopulse/loadramp"
)

// Search for the highest rate a local service sustains with p99 under
// 50 ms, then print the verdict. The service's /debug/vars and
// /debug/pprof, if it serves them, say what saturated first.
func Example() {
	slo, err := loadramp.ParseSLO("p99<50ms,errors<0.1%")
	if err != nil {
		panic(err)
	}
	res, err := loadramp.Run(context.Background(), loadramp.Config{
		Target:       loadramp.Target{URL: "http://127.0.0.1:8080/api"},
		SLO:          slo,
		StartRate:    200,
		StepDuration: 3 * time.Second,
	})
	if err != nil {
		fmt.Println("ramp:", err)
		return
	}
	fmt.Printf("max %.0f req/s; %s\n", res.MaxSustainableRPS, res.Saturation)
	res.WriteText(os.Stdout)
}

// One open-model step: 1000 requests per second for two seconds, latency
// both from the intended send time and from the actual send.
func ExampleGenerator_Step() {
	g, err := loadramp.NewGenerator(loadramp.Target{URL: "http://127.0.0.1:8080/"}, 64)
	if err != nil {
		panic(err)
	}
	defer g.Close()
	r, err := g.Step(context.Background(), loadramp.StepSpec{Rate: 1000, Warmup: time.Second, Duration: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	fmt.Println("p99", r.Corrected.Quantile(0.99), "uncorrected", r.Uncorrected.Quantile(0.99), "dropped", r.Dropped)
}
