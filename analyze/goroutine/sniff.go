package goroutine

import (
	"bytes"
)

// sniffLines is how many lines of the prefix Sniff looks at for a goroutine
// header: enough to get past a panic message, a SIGQUIT register preamble or
// a few log lines.
const sniffLines = 64

// Sniff tells the format of a dump from its first bytes (a few KiB are
// plenty). Gzipped input is looked into when the prefix holds enough of the
// compressed stream; a gzipped prefix that cannot be opened is reported as
// FormatProto, since that is what Go serves gzipped. Text is recognized by a
// goroutine header ("goroutine 7 [") on any of the first lines, also behind
// a log prefix; a dump further into a log is still found by Scan, which reads
// everything.
func Sniff(prefix []byte) Format {
	if isGzip(prefix) {
		if inner := gunzipPrefix(prefix); len(inner) > 0 {
			if f := Sniff(inner); f != FormatUnknown {
				return f
			}
		}
		return FormatProto
	}
	if looksLikeProto(prefix) {
		return FormatProto
	}
	rest := prefix
	for i := 0; i < sniffLines && len(rest) > 0; i++ {
		line := rest
		if j := bytes.IndexByte(rest, '\n'); j >= 0 {
			line, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		if isDebug1Header(line) {
			return FormatDebug1
		}
		if findHeader(line) >= 0 {
			return FormatText
		}
	}
	return FormatUnknown
}

func isGzip(b []byte) bool { return len(b) >= 3 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 8 }

// isDebug1Header matches "goroutine profile: total N" and the goroutineleak
// profile's "goroutineleak profile: total N", also behind a log prefix.
func isDebug1Header(line []byte) bool {
	_, ok := debug1Header(line)
	return ok
}

// debug1Header returns the offset of the "goroutine… profile: total" text.
func debug1Header(line []byte) (int, bool) {
	for _, h := range [...]string{"goroutine profile: total ", "goroutineleak profile: total "} {
		i := bytes.Index(line, []byte(h))
		if i < 0 {
			continue
		}
		n := line[i+len(h):]
		n = bytes.TrimRight(n, "\r")
		if len(n) == 0 {
			return 0, false
		}
		for _, c := range n {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
		return i, true
	}
	return 0, false
}

// findHeader returns the offset of a goroutine header ("goroutine 12 [" or
// "goroutine 12 gp=0x… m=… [") in line, or -1.
func findHeader(line []byte) int {
	off := 0
	for {
		i := bytes.Index(line[off:], []byte("goroutine "))
		if i < 0 {
			return -1
		}
		i += off
		if headerStart(line[i:]) {
			return i
		}
		off = i + len("goroutine ")
	}
}

// headerStart reports whether b starts with "goroutine N " followed by "[" or
// the "gp=" field that GOTRACEBACK=system prints.
func headerStart(b []byte) bool {
	b = b[len("goroutine "):]
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 || n > 19 || n+1 >= len(b) || b[n] != ' ' {
		return false
	}
	return b[n+1] == '[' || bytes.HasPrefix(b[n+1:], []byte("gp="))
}

// looksLikeProto checks that the prefix parses as protobuf fields of
// perftools.profiles.Profile (field numbers 1-14, varint or length-delimited
// wire types). Go's writer starts with period_type (field 11), others with
// sample_type (field 1), so no fixed magic exists.
func looksLikeProto(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	printable := true
	for _, c := range b[:min(len(b), 16)] {
		if c < 0x20 || c > 0x7e {
			printable = false
			break
		}
	}
	if printable {
		return false
	}
	fields := 0
	for len(b) > 0 && fields < 8 {
		tag, n := uvarint(b)
		if n <= 0 {
			return fields >= 2 && n == 0
		}
		b = b[n:]
		field, wire := tag>>3, tag&7
		if field < 1 || field > 14 {
			return false
		}
		switch wire {
		case 0:
			_, n := uvarint(b)
			if n < 0 {
				return false
			}
			if n == 0 {
				return fields >= 2
			}
			b = b[n:]
		case 2:
			l, n := uvarint(b)
			if n < 0 || l > 1<<31 {
				return false
			}
			if n == 0 {
				return fields >= 2
			}
			b = b[n:]
			if l > uint64(len(b)) {
				return fields >= 2
			}
			b = b[l:]
		default:
			return false
		}
		fields++
	}
	return fields >= 2
}

// uvarint decodes a protobuf varint: n > 0 bytes used, 0 when b ends
// inside it, < 0 when it overflows.
func uvarint(b []byte) (uint64, int) {
	var x uint64
	var s uint
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		if c < 0x80 {
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}
