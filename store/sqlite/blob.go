package sqlite

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/gopulse/gopulse/store"
)

// FileBlobs is a store.BlobStore on a local directory. A key is a relative
// slash-separated path. Put writes to tmp/, fsyncs, renames into place and
// fsyncs the directory, so a blob is either whole or absent after a crash.
type FileBlobs struct {
	root string
}

var _ store.BlobStore = (*FileBlobs)(nil)

// NewFileBlobs uses root (created if needed) and empties root/tmp, which
// holds only the leftovers of interrupted writes.
func NewFileBlobs(root string) (*FileBlobs, error) {
	if err := os.RemoveAll(filepath.Join(root, "tmp")); err != nil {
		return nil, fmt.Errorf("clean blob tmp: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o750); err != nil {
		return nil, fmt.Errorf("create blob directory: %w", mapErr(err))
	}
	return &FileBlobs{root: root}, nil
}

func (b *FileBlobs) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || path.Clean(key) != key || strings.HasPrefix(key, "../") || key == ".." || strings.HasPrefix(key, "tmp/") {
		return "", fmt.Errorf("%w: blob key %q", store.ErrInvalid, key)
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

type limitErrReader struct {
	r    io.Reader
	left int64
	h    hash.Hash
}

func (l *limitErrReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.h.Write(p[:n])
	if l.left >= 0 {
		l.left -= int64(n)
		if l.left < 0 {
			return n, errTooBig
		}
	}
	return n, err
}

var errTooBig = errors.New("blob larger than its limit")

// Put implements store.BlobStore.
func (b *FileBlobs) Put(ctx context.Context, key string, r io.Reader, max int64) (int64, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	dst, err := b.path(key)
	if err != nil {
		return 0, sum, err
	}
	f, err := os.CreateTemp(filepath.Join(b.root, "tmp"), "put-*")
	if err != nil {
		return 0, sum, fmt.Errorf("blob %s: %w", key, mapErr(err))
	}
	tmp := f.Name()
	fail := func(err error) (int64, [sha256.Size]byte, error) {
		f.Close()
		os.Remove(tmp)
		return 0, sum, err
	}
	left := int64(-1)
	if max > 0 {
		left = max
	}
	lr := &limitErrReader{r: ctxReader{ctx, r}, left: left, h: sha256.New()}
	n, err := io.Copy(f, lr)
	if errors.Is(err, errTooBig) {
		return fail(fmt.Errorf("blob %s: %w: larger than %d bytes", key, store.ErrFull, max))
	}
	if err != nil {
		return fail(fmt.Errorf("blob %s: %w", key, mapErr(err)))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("blob %s: fsync: %w", key, mapErr(err)))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return 0, sum, fmt.Errorf("blob %s: %w", key, mapErr(err))
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		os.Remove(tmp)
		return 0, sum, fmt.Errorf("blob %s: %w", key, mapErr(err))
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return 0, sum, fmt.Errorf("blob %s: %w", key, mapErr(err))
	}
	if err := syncDir(dir); err != nil {
		return 0, sum, fmt.Errorf("blob %s: fsync directory: %w", key, mapErr(err))
	}
	copy(sum[:], lr.h.Sum(nil))
	return n, sum, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Open implements store.BlobStore.
func (b *FileBlobs) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", key, store.ErrNotFound)
	}
	return f, err
}

// Delete implements store.BlobStore; it also removes directories left empty.
func (b *FileBlobs) Delete(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	for dir := filepath.Dir(p); dir != b.root && strings.HasPrefix(dir, b.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty, or gone
			break
		}
	}
	return nil
}

// List implements store.BlobStore.
func (b *FileBlobs) List(ctx context.Context, prefix string, fn func(key string, size int64, mod time.Time) error) error {
	err := filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(b.root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "tmp" {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(rel, prefix) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(rel, info.Size(), info.ModTime())
	})
	return err
}
