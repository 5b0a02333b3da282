package wire

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func writeBundle(t testing.TB, files map[string]string, order []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	bw, err := NewBundleWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range order {
		if _, err := bw.WriteFile(name, "text/plain", strings.NewReader(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Close(&BundleManifest{EventId: "ev1", Rule: "manual"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(r io.Reader) (*BundleManifest, map[string][]byte, error) {
	br, err := NewBundleReader(r)
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{}
	var cur string
	for {
		f, err := br.Next()
		if err == io.EOF {
			return nil, nil, errors.New("no manifest")
		}
		if err != nil {
			return nil, nil, err
		}
		switch fr := f.Frame.(type) {
		case *BundleFrame_FileStart:
			cur = fr.FileStart.Name
			files[cur] = nil
		case *BundleFrame_Chunk:
			files[cur] = append(files[cur], fr.Chunk...)
		case *BundleFrame_Manifest:
			if _, err := br.Next(); err != io.EOF {
				return nil, nil, err
			}
			return fr.Manifest, files, nil
		}
	}
}

func TestBundleRoundTrip(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 3*MaxChunk/16+7) // spans several chunks
	tests := []struct {
		name  string
		files map[string]string
		order []string
	}{
		{"empty bundle", map[string]string{}, nil},
		{"one empty file", map[string]string{"a": ""}, []string{"a"}},
		{"small files", map[string]string{"a": "hello", "b": "world"}, []string{"b", "a"}},
		{"multi-chunk file", map[string]string{"big": big, "x": "y"}, []string{"big", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := writeBundle(t, tt.files, tt.order)
			m, got, err := readAll(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Files) != len(tt.order) {
				t.Fatalf("manifest has %d files, want %d", len(m.Files), len(tt.order))
			}
			for i, name := range tt.order {
				if string(got[name]) != tt.files[name] {
					t.Errorf("file %s: content differs (%d vs %d bytes)", name, len(got[name]), len(tt.files[name]))
				}
				sum := sha256.Sum256([]byte(tt.files[name]))
				if m.Files[i].Name != name || m.Files[i].Size != uint64(len(tt.files[name])) || !bytes.Equal(m.Files[i].Sha256, sum[:]) {
					t.Errorf("manifest entry %d = %v", i, m.Files[i])
				}
			}
		})
	}
}

func TestBundleWriterReadError(t *testing.T) {
	var buf bytes.Buffer
	bw, _ := NewBundleWriter(&buf)
	r := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("disk gone")))
	f, err := bw.WriteFile("t", "x", r)
	if err == nil || f == nil || !strings.Contains(f.Note, "disk gone") || f.Size != 7 {
		t.Fatalf("got %v, %v", f, err)
	}
	if err := bw.Close(&BundleManifest{EventId: "e"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(&buf); err != nil {
		t.Fatalf("a truncated file must still make a valid stream: %v", err)
	}
}

func TestBundleReaderRejects(t *testing.T) {
	good := writeBundle(t, map[string]string{"a": "hello"}, []string{"a"})
	flip := append([]byte(nil), good...)
	flip[len(BundleMagic)+12] ^= 0xff // inside the first chunk's data
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad magic", []byte("GOPULSE-BUNDLE-9\n")},
		{"truncated", good[:len(good)-3]},
		{"no manifest", good[:len(BundleMagic)]},
		{"corrupted chunk", flip},
		{"trailing data", append(append([]byte(nil), good...), 1, 0)},
		{"huge frame", append([]byte(BundleMagic), 0xff, 0xff, 0xff, 0xff, 0x0f)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll(bytes.NewReader(tt.in))
			if !errors.Is(err, ErrBadBundle) {
				t.Fatalf("err = %v, want ErrBadBundle", err)
			}
		})
	}
}

func FuzzBundleReader(f *testing.F) {
	f.Add(writeBundle(f, map[string]string{"a": "hello", "b": ""}, []string{"a", "b"}))
	f.Add([]byte(BundleMagic))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := readAll(bytes.NewReader(b))
		if err == nil && m == nil {
			t.Fatal("nil manifest without error")
		}
		if err != nil && !errors.Is(err, ErrBadBundle) && err.Error() != "no manifest" {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
