// Command withagent is the hello-world HTTP service with the agent, for
// the binary-size comparison.
package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gopulse/gopulse/agent"
)

func main() {
	a, err := agent.Start(context.Background(), agent.Options{Service: "hello"})
	if err != nil {
		panic(err)
	}
	defer a.Stop(context.Background())
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	http.ListenAndServe("127.0.0.1:8080", nil)
}
