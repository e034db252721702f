package bench

import (
	"context"
	"time"
)

// cpuSpent is CPU time, user and system, of Redis (every thread of
// redis-server; on a cluster, the masters' total) and of this process (the in-process Kafka, the project's
// components and the clients of the bench).
type cpuSpent struct{ redis, self time.Duration }

func (c cpuSpent) sub(d cpuSpent) cpuSpent { return cpuSpent{c.redis - d.redis, c.self - d.self} }

// cpuNow returns the CPU time Redis (every master of a cluster) and this
// process have used so far.
func (r *runner) cpuNow(ctx context.Context) (cpuSpent, error) {
	used, err := r.env.usedCPU(ctx)
	if err != nil {
		return cpuSpent{}, err
	}
	return cpuSpent{redis: used, self: processCPU()}, nil
}

// measured is the wall and CPU time of a phase.
type measured struct {
	elapsed time.Duration
	cpu     cpuSpent
}

// measure runs fn and returns its wall time and the CPU time spent
// meanwhile.
func (r *runner) measure(ctx context.Context, fn func() error) (measured, error) {
	before, err := r.cpuNow(ctx)
	if err != nil {
		return measured{}, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return measured{}, err
	}
	elapsed := time.Since(start)
	after, err := r.cpuNow(ctx)
	if err != nil {
		return measured{}, err
	}
	return measured{elapsed: elapsed, cpu: after.sub(before)}, nil
}

// cpuMetrics are the CPU time Redis and this process spent per unit of
// work on each side.
func cpuMetrics(unit string, project measured, n int64, raw measured, rawN int64) []Metric {
	per := func(d time.Duration, n int64) float64 {
		if n <= 0 {
			return 0
		}
		return float64(d.Microseconds()) / float64(n)
	}
	return []Metric{
		metric("redis CPU µs/"+unit, per(project.cpu.redis, n), per(raw.cpu.redis, rawN)),
		metric("process CPU µs/"+unit, per(project.cpu.self, n), per(raw.cpu.self, rawN)),
	}
}
