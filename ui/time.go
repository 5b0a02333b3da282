package ui

import "time"

// zeroTime makes http.ServeContent skip Last-Modified: embedded files have
// no modification time, the ETag does the job.
var zeroTime time.Time
