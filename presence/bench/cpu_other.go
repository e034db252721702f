//go:build !unix

package bench

import "time"

// processCPU is unknown here: the process's CPU time is reported as 0.
func processCPU() time.Duration { return 0 }
