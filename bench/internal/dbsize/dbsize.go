// Package dbsize measures how the bytes of a gopulse SQLite database are
// spent, table by table, from SQLite's dbstat virtual table: the benches
// report storage per kind of data, not only the file's size.
package dbsize

import (
	"database/sql"
	"fmt"
	"path/filepath"

	_ "modernc.org/sqlite" // the driver store/sqlite uses, with dbstat built in
)

// Tables returns the bytes of the pages of each table of the database in
// dir (gopulse.db), its indexes counted with it. It opens the database
// read-only, so it may run while the store is open; what the WAL holds is
// counted as committed.
func Tables(dir string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "gopulse.db")+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_schema m ON m.name = d.name GROUP BY m.tbl_name`)
	if err != nil {
		return nil, fmt.Errorf("dbstat of %s: %w", dir, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("dbstat of %s: %w", dir, err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dbstat of %s: %w", dir, err)
	}
	return out, nil
}
