//go:build !unix

package sqlite

// freeBytes is unknown here: the reserve check is skipped and a full disk
// is noticed by the failing write instead.
func freeBytes(dir string) (uint64, bool) { return 0, false }
