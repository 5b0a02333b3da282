// Command plain is the hello-world HTTP service the agent's binary size is
// measured against.
package main

import (
	"fmt"
	"net/http"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	http.ListenAndServe("127.0.0.1:8080", nil)
}
