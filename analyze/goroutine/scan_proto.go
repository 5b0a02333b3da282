package goroutine

import (
	"fmt"
	"io"
	"strconv"

	"github.com/google/pprof/profile"
)

// scanProto reads the pprof protobuf goroutine (or goroutineleak) profile.
// Each sample is one stack with its count; each location lists its inlined
// calls innermost first, which is top-first order for Frames. The profile
// has no goroutine IDs, wait durations or created-by sites.
func (s *scanner) scanProto(src io.Reader, cr *countingReader) error {
	data, err := io.ReadAll(src)
	if err != nil {
		return err
	}
	p, err := profile.ParseData(data)
	if err != nil {
		return fmt.Errorf("parse goroutine profile (protobuf, %d bytes): %w", len(data), err)
	}
	if len(p.SampleType) == 0 || (p.SampleType[0].Type != "goroutine" && p.SampleType[0].Type != "goroutineleak") {
		typ := "none"
		if len(p.SampleType) > 0 {
			typ = p.SampleType[0].Type
		}
		return fmt.Errorf("%w: protobuf profile of type %q, want a goroutine profile (/debug/pprof/goroutine)", ErrNotDump, typ)
	}
	for i, smp := range p.Sample {
		if len(smp.Value) == 0 || smp.Value[0] <= 0 {
			continue
		}
		s.resetGoroutine()
		s.g.Count = int(min(smp.Value[0], 1<<40))
		nilChan := false
		for _, loc := range smp.Location {
			if len(loc.Line) == 0 {
				s.addFrame(s.internString("0x"+strconv.FormatUint(loc.Address, 16)), internEntry{}, 0, "")
				continue
			}
			for _, ln := range loc.Line {
				name, file, start := "", "", int64(0)
				if ln.Function != nil {
					name, file, start = ln.Function.Name, ln.Function.Filename, ln.Function.StartLine
				}
				if len(s.g.Frames) < 3 && start > 0 && (name == "runtime.chanrecv" || name == "runtime.chansend") {
					// The nil-channel gopark is the first statement of
					// chanrecv/chansend; the real-channel one is 100+ lines on.
					nilChan = ln.Line-start < 20
				}
				fe := internEntry{}
				if file != "" {
					fe = s.internString(file)
				}
				s.addFrame(s.internString(printName(name)), fe, int(ln.Line), "")
			}
		}
		for k, v := range smp.Label {
			if len(v) > 0 {
				s.setLabel(k, v[0])
			}
		}
		st := deriveState(s.g.Frames, nilChan)
		if st == "" {
			st = "running"
		}
		s.setStateString(st)
		if err := s.deliver(); err != nil {
			return fmt.Errorf("parse goroutine profile sample %d: %w", i, err)
		}
	}
	return nil
}
