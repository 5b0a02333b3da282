package ship

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Spool is the bounded on-disk queue used while the collector is
// unreachable. Layout (one directory, documented in wire/README.md):
//
//	seg-<seq>-<YYYYMMDDHH>.seg   metric batches, appended; a new segment
//	                             each hour (rotation)
//	bnd-<seq>-<event id>.gz      one gzip bundle stream per file
//	*.tmp                        being written; ignored and removed at open
//
// seq orders files oldest first regardless of wall-clock jumps. A segment
// record is a 4-byte big-endian length, a 4-byte CRC-32 (IEEE) of the
// payload, and the payload (a wire.MetricBatch). A torn or corrupt tail
// ends the segment's reading; the rest is counted as lost.
type Spool struct {
	Dir      string
	MaxBytes int64
	MaxAge   time.Duration
	Rotate   time.Duration

	mu      sync.Mutex
	seq     uint64
	active  *os.File
	actName string
	actHour string
	size    int64 // bytes in all files

	// offsets of records already sent per segment (in-process only:
	// after a restart a segment is resent whole, which the collector
	// de-duplicates by key).
	sent map[string]int64

	EvictedItems, EvictedBytes uint64
	Corrupt                    uint64
}

// ErrSpoolFull is returned when an item alone is larger than the cap.
var ErrSpoolFull = errors.New("item larger than the spool's size cap")

// OpenSpool creates dir if needed and checks it is writable.
func OpenSpool(dir string, maxBytes int64, maxAge, rotate time.Duration) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool dir %s: %w", dir, err)
	}
	probe := filepath.Join(dir, ".probe.tmp")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return nil, fmt.Errorf("spool dir %s is not writable: %w", dir, err)
	}
	os.Remove(probe)
	s := &Spool{Dir: dir, MaxBytes: maxBytes, MaxAge: maxAge, Rotate: rotate, sent: map[string]int64{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spool dir %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if q, ok := seqOf(name); ok {
			if q > s.seq {
				s.seq = q
			}
			if info, err := e.Info(); err == nil {
				s.size += info.Size()
			}
		}
	}
	return s, nil
}

func seqOf(name string) (uint64, bool) {
	if strings.HasSuffix(name, ".tmp") {
		return 0, false // still being written
	}
	var rest string
	switch {
	case strings.HasPrefix(name, "seg-"):
		rest = name[4:]
	case strings.HasPrefix(name, "bnd-"):
		rest = name[4:]
	default:
		return 0, false
	}
	i := strings.IndexByte(rest, '-')
	if i < 0 {
		return 0, false
	}
	q, err := strconv.ParseUint(rest[:i], 10, 64)
	return q, err == nil
}

// Files lists spooled items oldest first.
func (s *Spool) Files() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filesLocked()
}

func (s *Spool) filesLocked() []string {
	ents, _ := os.ReadDir(s.Dir)
	var names []string
	for _, e := range ents {
		if _, ok := seqOf(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	sort.Slice(names, func(i, j int) bool {
		a, _ := seqOf(names[i])
		b, _ := seqOf(names[j])
		return a < b
	})
	return names
}

// Size is the spool's current size in bytes.
func (s *Spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// makeRoom evicts oldest files until need more bytes fit, and files older
// than MaxAge. Called with mu held.
func (s *Spool) makeRoom(need int64, now time.Time) error {
	if need > s.MaxBytes {
		return fmt.Errorf("%w: %d bytes, cap %d", ErrSpoolFull, need, s.MaxBytes)
	}
	for _, name := range s.filesLocked() {
		p := filepath.Join(s.Dir, name)
		info, err := os.Stat(p)
		if err != nil {
			continue
		}
		old := s.MaxAge > 0 && now.Sub(info.ModTime()) > s.MaxAge
		if !old && s.size+need <= s.MaxBytes {
			break
		}
		if name == s.actName {
			s.active.Close()
			s.active, s.actName = nil, ""
		}
		items := uint64(1)
		if strings.HasPrefix(name, "seg-") {
			items = countRecords(p, s.sent[name])
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("evict %s: %w", p, err)
		}
		delete(s.sent, name)
		s.size -= info.Size()
		s.EvictedItems += items
		s.EvictedBytes += uint64(info.Size())
	}
	return nil
}

func countRecords(path string, from int64) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0
	}
	r := bufio.NewReader(f)
	var n uint64
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return n
		}
		l := binary.BigEndian.Uint32(hdr[:4])
		if _, err := r.Discard(int(l)); err != nil {
			return n
		}
		n++
	}
}

// AppendBatch appends one encoded batch to the current hour's segment.
func (s *Spool) AppendBatch(payload []byte, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	need := int64(len(payload) + 8)
	if err := s.makeRoom(need, now); err != nil {
		return err
	}
	hour := now.UTC().Format("2006010215")
	if s.active == nil || hour != s.actHour {
		if s.active != nil {
			s.active.Close()
		}
		s.seq++
		name := fmt.Sprintf("seg-%012d-%s.seg", s.seq, hour)
		f, err := os.OpenFile(filepath.Join(s.Dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			s.active = nil
			return fmt.Errorf("create spool segment: %w", err)
		}
		s.active, s.actName, s.actHour = f, name, hour
	}
	rec := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint32(rec[:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[4:8], crc32.ChecksumIEEE(payload))
	copy(rec[8:], payload)
	n, err := s.active.Write(rec)
	s.size += int64(n)
	if err != nil {
		// A torn record may now end this segment; it is read as the end,
		// and later batches go to a fresh segment.
		name := s.actName
		s.active.Close()
		s.active, s.actName = nil, ""
		return fmt.Errorf("append to spool segment %s: %w", name, err)
	}
	return nil
}

// CreateBundle returns a temporary file for a bundle and a commit function
// that renames it into the spool (evicting older items to make room) or,
// with a non-nil error, removes it.
func (s *Spool) CreateBundle(eventID string) (*os.File, func(failed error, now time.Time) error, error) {
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("bnd-%012d-%s.gz", s.seq, sanitize(eventID))
	s.mu.Unlock()
	tmp := filepath.Join(s.Dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("create spooled bundle: %w", err)
	}
	commit := func(failed error, now time.Time) error {
		info, statErr := f.Stat()
		closeErr := f.Close()
		if failed == nil {
			failed = closeErr
		}
		if failed == nil {
			failed = statErr
		}
		if failed != nil {
			os.Remove(tmp)
			return failed
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.makeRoom(info.Size(), now); err != nil {
			os.Remove(tmp)
			return err
		}
		if err := os.Rename(tmp, filepath.Join(s.Dir, name)); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("commit spooled bundle: %w", err)
		}
		s.size += info.Size()
		return nil
	}
	return f, commit, nil
}

func sanitize(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// EventIDOf returns the event id encoded in a bundle file name.
func EventIDOf(name string) string {
	rest := strings.TrimSuffix(strings.TrimPrefix(name, "bnd-"), ".gz")
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		return rest[i+1:]
	}
	return rest
}

// NextRecord returns the next unsent record of segment name and the offset
// after it, or io.EOF when all were sent.
func (s *Spool) NextRecord(name string) ([]byte, int64, error) {
	s.mu.Lock()
	off := s.sent[name]
	s.mu.Unlock()
	f, err := os.Open(filepath.Join(s.Dir, name))
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, 0, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, 0, io.EOF // torn tail: treated as the end
		}
		return nil, 0, err
	}
	l := binary.BigEndian.Uint32(hdr[:4])
	info, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if off+8+int64(l) > info.Size() {
		// A torn tail, or a corrupt length: never allocate past the file.
		if off+8+int64(l) > info.Size()+int64(s.MaxBytes) {
			s.markCorrupt(name)
		}
		return nil, 0, io.EOF
	}
	p := make([]byte, l)
	if _, err := io.ReadFull(f, p); err != nil {
		return nil, 0, io.EOF
	}
	if crc32.ChecksumIEEE(p) != binary.BigEndian.Uint32(hdr[4:]) {
		s.markCorrupt(name)
		return nil, 0, io.EOF
	}
	return p, off + 8 + int64(l), nil
}

func (s *Spool) markCorrupt(name string) {
	s.mu.Lock()
	s.Corrupt++
	s.sent[name] = 1 << 62
	s.mu.Unlock()
}

// MarkSent records that the records before off were delivered.
func (s *Spool) MarkSent(name string, off int64) {
	s.mu.Lock()
	s.sent[name] = off
	s.mu.Unlock()
}

// Active reports whether name is the segment currently appended to.
func (s *Spool) Active(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return name == s.actName
}

// Remove deletes a delivered item.
func (s *Spool) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := filepath.Join(s.Dir, name)
	if info, err := os.Stat(p); err == nil {
		s.size -= info.Size()
	}
	if name == s.actName {
		s.active.Close()
		s.active, s.actName = nil, ""
	}
	os.Remove(p)
	delete(s.sent, name)
}

// Close closes the active segment.
func (s *Spool) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil {
		s.active.Close()
		s.active, s.actName = nil, ""
	}
}

// Expire removes items older than MaxAge (counted as evicted).
func (s *Spool) Expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.makeRoom(0, now)
}

// Pending reports whether anything is left to send: a bundle, or a segment
// with records past its sent offset.
func (s *Spool) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range s.filesLocked() {
		if strings.HasPrefix(name, "bnd-") {
			return true
		}
		info, err := os.Stat(filepath.Join(s.Dir, name))
		if err == nil && info.Size() > s.sent[name] {
			return true
		}
	}
	return false
}
