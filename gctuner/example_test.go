package gctuner_test

import (
	"fmt"
	"testing/fstest"

	"github.com/gopulse/gopulse/gctuner"
)

// MemoryLimit reads the tightest limit up the cgroup hierarchy; here from a
// fake cgroup v2 tree where the pod's limit is tighter than the container's.
func ExampleMemoryLimit() {
	fsys := fstest.MapFS{
		"proc/self/mountinfo":                        {Data: []byte("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")},
		"proc/self/cgroup":                           {Data: []byte("0::/kubepods/pod1/ctr\n")},
		"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": {Data: []byte("max\n")},
		"sys/fs/cgroup/kubepods/pod1/memory.max":     {Data: []byte("536870912\n")},
	}
	limit, where, err := gctuner.MemoryLimit(fsys)
	fmt.Println(limit>>20, "MiB from", where, err)
	// Output: 512 MiB from /sys/fs/cgroup/kubepods/pod1/memory.max <nil>
}
