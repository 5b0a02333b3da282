package gctuner

import (
	"errors"
	"os"
	"testing"
	"testing/fstest"
)

const (
	mountsV2     = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	mountsV1     = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
	mountsHybrid = mountsV1 + "40 31 0:35 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
)

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string
		want      uint64
		wantWhere string
		wantErr   error
	}{
		{
			name: "v2 leaf",
			files: map[string]string{
				"proc/self/mountinfo":                        mountsV2,
				"proc/self/cgroup":                           "0::/kubepods/pod1/ctr\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "536870912\n",
				"sys/fs/cgroup/kubepods/pod1/memory.max":     "max\n",
			},
			want: 512 << 20, wantWhere: "/sys/fs/cgroup/kubepods/pod1/ctr/memory.max",
		},
		{
			name: "v2 tighter ancestor",
			files: map[string]string{
				"proc/self/mountinfo":                        mountsV2,
				"proc/self/cgroup":                           "0::/kubepods/pod1/ctr\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "max\n",
				"sys/fs/cgroup/kubepods/pod1/memory.max":     "268435456\n",
				"sys/fs/cgroup/kubepods/memory.max":          "1073741824\n",
			},
			want: 256 << 20, wantWhere: "/sys/fs/cgroup/kubepods/pod1/memory.max",
		},
		{
			name: "v2 no limit",
			files: map[string]string{
				"proc/self/mountinfo":                 mountsV2,
				"proc/self/cgroup":                    "0::/user.slice\n",
				"sys/fs/cgroup/user.slice/memory.max": "max\n",
			},
			wantErr: ErrNoLimit,
		},
		{
			name: "v1 limit and unlimited sentinel",
			files: map[string]string{
				"proc/self/mountinfo": mountsV1,
				"proc/self/cgroup":    "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n",
				"sys/fs/cgroup/memory/docker/memory.limit_in_bytes":     "1073741824\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
			},
			want: 1 << 30, wantWhere: "/sys/fs/cgroup/memory/docker/memory.limit_in_bytes",
		},
		{
			name: "v1 namespaced root: hierarchical_memory_limit sees the hidden ancestor",
			files: map[string]string{
				"proc/self/mountinfo":                        "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
				"proc/self/cgroup":                           "4:memory:/docker/abc\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
				"sys/fs/cgroup/memory/memory.stat":           "cache 0\nhierarchical_memory_limit 805306368\ntotal_rss 1\n",
			},
			want: 768 << 20, wantWhere: "/sys/fs/cgroup/memory/memory.stat hierarchical_memory_limit",
		},
		{
			name: "hybrid: the tighter of v1 and v2",
			files: map[string]string{
				"proc/self/mountinfo":                            mountsHybrid,
				"proc/self/cgroup":                               "4:memory:/svc\n0::/svc\n",
				"sys/fs/cgroup/memory/svc/memory.limit_in_bytes": "2147483648\n",
				"sys/fs/cgroup/unified/svc/memory.max":           "1610612736\n",
			},
			want: 1536 << 20, wantWhere: "/sys/fs/cgroup/unified/svc/memory.max",
		},
		{
			name: "escaped mount point",
			files: map[string]string{
				"proc/self/mountinfo":        `30 23 0:26 / /mnt/my\040cgroup rw - cgroup2 cgroup2 rw` + "\n",
				"proc/self/cgroup":           "0::/a\n",
				"mnt/my cgroup/a/memory.max": "104857600\n",
			},
			want: 100 << 20, wantWhere: "/mnt/my cgroup/a/memory.max",
		},
		{
			name: "cgroup outside the mount's root",
			files: map[string]string{
				"proc/self/mountinfo":      "30 23 0:26 /other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
				"proc/self/cgroup":         "0::/mine\n",
				"sys/fs/cgroup/memory.max": "104857600\n",
			},
			wantErr: ErrNoLimit,
		},
		{name: "no proc", files: map[string]string{}, wantErr: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for k, v := range tt.files {
				fsys[k] = &fstest.MapFile{Data: []byte(v)}
			}
			got, where, err := MemoryLimit(fsys)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || where != tt.wantWhere {
				t.Errorf("got %d from %q, want %d from %q", got, where, tt.want, tt.wantWhere)
			}
		})
	}
}

// TestMemoryLimitThisHost reads the real /proc of this process: it must
// either find a limit or say there is none, never fail.
func TestMemoryLimitThisHost(t *testing.T) {
	v, where, err := MemoryLimit(os.DirFS("/"))
	if err != nil && !errors.Is(err, ErrNoLimit) {
		if _, statErr := os.Stat("/proc/self/mountinfo"); statErr != nil {
			t.Skip("no /proc here")
		}
		t.Fatal(err)
	}
	t.Logf("limit %d from %q (err %v)", v, where, err)
}
