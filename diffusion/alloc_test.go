package diffusion

import (
	"context"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// TestSampleRecyclesBuffers checks that a warm sampling run takes every
// tensor buffer from the pool: the schedulers release their intermediates
// and the history they drop, so a 50-step run does not churn the allocator.
func TestSampleRecyclesBuffers(t *testing.T) {
	cfg := mustConfig(t, sdConfig)
	x := tensor.Randn(rng.New(3), 1, 4, 16, 16)
	for _, name := range SchedulerNames {
		s, err := New(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		run := func() {
			if err := s.SetTimesteps(12); err != nil {
				t.Fatal(err)
			}
			calls := 0
			out, err := Sample(context.Background(), s, fakeModel(&calls), x, SampleOptions{Noise: rng.New(4)})
			if err != nil {
				t.Fatal(err)
			}
			out.Release()
		}
		run()
		before := tensor.GetPoolStats()
		run()
		after := tensor.GetPoolStats()
		if after.Misses != before.Misses {
			t.Errorf("%s: %d buffer allocations outside the pool in a warm run (%d from the pool)",
				name, after.Misses-before.Misses, after.Hits-before.Hits)
		}
	}
}
