package wire

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"google.golang.org/protobuf/proto"
)

// BundleMagic opens every bundle stream (before compression is removed, the
// HTTP body is gzip; BundleMagic is the first line of the decompressed bytes).
const BundleMagic = "GOPULSE-BUNDLE-1\n"

const (
	// MaxChunk is the largest chunk a BundleWriter emits.
	MaxChunk = 64 << 10
	// MaxFrame is the largest frame a BundleReader accepts: a chunk plus
	// framing, or a manifest. Larger frames are rejected as corrupt.
	MaxFrame = 1 << 20
)

// ErrBadBundle is wrapped by every error a BundleReader returns for malformed
// input.
var ErrBadBundle = errors.New("malformed bundle stream")

// BundleWriter writes a bundle stream: the magic line, then for each file a
// FileStart frame, chunk frames and a FileEnd frame, and finally the
// manifest. Each frame is a uvarint length followed by a BundleFrame. Memory
// use is one chunk regardless of file size.
type BundleWriter struct {
	w     io.Writer
	files []*BundleFile
	buf   []byte
	chunk []byte
	err   error
}

// NewBundleWriter writes the magic line to w and returns a writer.
func NewBundleWriter(w io.Writer) (*BundleWriter, error) {
	if _, err := io.WriteString(w, BundleMagic); err != nil {
		return nil, fmt.Errorf("write bundle header: %w", err)
	}
	return &BundleWriter{w: w}, nil
}

func (bw *BundleWriter) frame(f *BundleFrame) error {
	if bw.err != nil {
		return bw.err
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(bw.buf[:0], f)
	if err != nil {
		bw.err = fmt.Errorf("marshal bundle frame: %w", err)
		return bw.err
	}
	bw.buf = b
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b)))
	if _, err := bw.w.Write(hdr[:n]); err != nil {
		bw.err = fmt.Errorf("write bundle frame: %w", err)
		return bw.err
	}
	if _, err := bw.w.Write(b); err != nil {
		bw.err = fmt.Errorf("write bundle frame: %w", err)
		return bw.err
	}
	return nil
}

// WriteFile copies r into the stream as one file and returns its entry for
// the manifest (also remembered for Close). A read error from r ends the file
// early; the file is still closed with the bytes written so far, the error is
// noted in the entry and returned.
func (bw *BundleWriter) WriteFile(name, contentType string, r io.Reader) (*BundleFile, error) {
	if err := bw.frame(&BundleFrame{Frame: &BundleFrame_FileStart{FileStart: &FileStart{Name: name, ContentType: contentType}}}); err != nil {
		return nil, err
	}
	if bw.chunk == nil {
		bw.chunk = make([]byte, MaxChunk)
	}
	h := sha256.New()
	var size uint64
	var readErr error
	chunkFrame := &BundleFrame_Chunk{}
	for {
		n, err := r.Read(bw.chunk)
		if n > 0 {
			h.Write(bw.chunk[:n])
			size += uint64(n)
			chunkFrame.Chunk = bw.chunk[:n]
			if err := bw.frame(&BundleFrame{Frame: chunkFrame}); err != nil {
				return nil, err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read %s: %w", name, err)
			break
		}
	}
	sum := h.Sum(nil)
	if err := bw.frame(&BundleFrame{Frame: &BundleFrame_FileEnd{FileEnd: &FileEnd{Size: size, Sha256: sum}}}); err != nil {
		return nil, err
	}
	f := &BundleFile{Name: name, ContentType: contentType, Size: size, Sha256: sum}
	if readErr != nil {
		f.Note = "truncated: " + readErr.Error()
	}
	bw.files = append(bw.files, f)
	return f, readErr
}

// Close writes the manifest as the last frame. The manifest's Files are set
// to the files written, in order.
func (bw *BundleWriter) Close(m *BundleManifest) error {
	m.Files = bw.files
	return bw.frame(&BundleFrame{Frame: &BundleFrame_Manifest{Manifest: m}})
}

// BundleReader reads a bundle stream frame by frame and checks it: frames in
// the right order, sizes and SHA-256 sums matching the FileEnd frames and
// the manifest.
type BundleReader struct {
	r     *bufio.Reader
	buf   []byte
	state int // 0 between files, 1 inside a file, 2 after the manifest
	h     hash.Hash
	size  uint64
	name  string
	ends  []*FileEnd
	names []string
	off   int64
}

// NewBundleReader checks the magic line and returns a reader. r must already
// be decompressed.
func NewBundleReader(r io.Reader) (*BundleReader, error) {
	br := &BundleReader{r: bufio.NewReader(r), h: sha256.New()}
	magic := make([]byte, len(BundleMagic))
	if _, err := io.ReadFull(br.r, magic); err != nil {
		return nil, fmt.Errorf("%w: read header: %v", ErrBadBundle, err)
	}
	if string(magic) != BundleMagic {
		return nil, fmt.Errorf("%w: header %q is not %q", ErrBadBundle, magic, BundleMagic)
	}
	br.off = int64(len(magic))
	return br, nil
}

// Next returns the next frame. After the manifest it returns io.EOF. A chunk
// frame's bytes are only valid until the next call.
func (br *BundleReader) Next() (*BundleFrame, error) {
	start := br.off
	n, err := binary.ReadUvarint(br.r)
	if err != nil {
		if err == io.EOF && br.state == 2 {
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%w: stream ended at offset %d before the manifest", ErrBadBundle, start)
		}
		return nil, fmt.Errorf("%w: frame length at offset %d: %v", ErrBadBundle, start, err)
	}
	if br.state == 2 {
		return nil, fmt.Errorf("%w: data after the manifest at offset %d", ErrBadBundle, start)
	}
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: frame at offset %d is %d bytes, limit %d", ErrBadBundle, start, n, MaxFrame)
	}
	if uint64(cap(br.buf)) < n {
		br.buf = make([]byte, n)
	}
	b := br.buf[:n]
	if _, err := io.ReadFull(br.r, b); err != nil {
		return nil, fmt.Errorf("%w: frame at offset %d: %v", ErrBadBundle, start, err)
	}
	br.off = start + int64(uvarintLen(n)) + int64(n)
	f := &BundleFrame{}
	if err := proto.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("%w: frame at offset %d: %v", ErrBadBundle, start, err)
	}
	switch fr := f.Frame.(type) {
	case *BundleFrame_FileStart:
		if br.state != 0 {
			return nil, fmt.Errorf("%w: file %q starts inside file %q", ErrBadBundle, fr.FileStart.GetName(), br.name)
		}
		br.state, br.name, br.size = 1, fr.FileStart.GetName(), 0
		br.h.Reset()
	case *BundleFrame_Chunk:
		if br.state != 1 {
			return nil, fmt.Errorf("%w: chunk outside a file at offset %d", ErrBadBundle, start)
		}
		br.h.Write(fr.Chunk)
		br.size += uint64(len(fr.Chunk))
	case *BundleFrame_FileEnd:
		if br.state != 1 {
			return nil, fmt.Errorf("%w: file end outside a file at offset %d", ErrBadBundle, start)
		}
		sum := br.h.Sum(nil)
		if fr.FileEnd.GetSize() != br.size || string(fr.FileEnd.GetSha256()) != string(sum) {
			return nil, fmt.Errorf("%w: file %q: got %d bytes sha256 %x, end frame says %d bytes %x", ErrBadBundle, br.name, br.size, sum, fr.FileEnd.GetSize(), fr.FileEnd.GetSha256())
		}
		br.ends = append(br.ends, fr.FileEnd)
		br.names = append(br.names, br.name)
		br.state = 0
	case *BundleFrame_Manifest:
		if br.state != 0 {
			return nil, fmt.Errorf("%w: manifest inside file %q", ErrBadBundle, br.name)
		}
		files := fr.Manifest.GetFiles()
		if len(files) != len(br.ends) {
			return nil, fmt.Errorf("%w: manifest lists %d files, stream had %d", ErrBadBundle, len(files), len(br.ends))
		}
		for i, mf := range files {
			if mf.GetName() != br.names[i] || mf.GetSize() != br.ends[i].GetSize() || string(mf.GetSha256()) != string(br.ends[i].GetSha256()) {
				return nil, fmt.Errorf("%w: manifest entry %d (%q) does not match the file streamed", ErrBadBundle, i, mf.GetName())
			}
		}
		br.state = 2
	default:
		return nil, fmt.Errorf("%w: empty or unknown frame at offset %d", ErrBadBundle, start)
	}
	return f, nil
}

func uvarintLen(n uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], n)
}
