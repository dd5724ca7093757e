package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/roentgo/roentgo/tensor"
)

// progress draws a one-line progress bar with the step rate and the
// estimated time left, redrawn in place (carriage return) at most ten times
// a second.
type progress struct {
	w       io.Writer
	start   time.Time
	last    time.Time
	drawn   bool
	step, n int
}

func (p *progress) update(step, total int, _ float64, _ *tensor.Tensor) bool {
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	p.step, p.n = step+1, total
	if p.step == p.n || now.Sub(p.last) >= 100*time.Millisecond {
		p.draw(now)
	}
	return true
}

func (p *progress) draw(now time.Time) {
	const width = 30
	el := now.Sub(p.start).Seconds()
	fill := width * p.step / max(p.n, 1)
	rate, eta := "", ""
	if el > 0 {
		r := float64(p.step) / el
		rate = fmt.Sprintf("%.2f it/s", r)
		eta = fmt.Sprintf("ETA %s", (time.Duration(float64(p.n-p.step) / r * float64(time.Second))).Round(time.Second))
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %s %s ", strings.Repeat("#", fill), strings.Repeat(".", width-fill), p.step, p.n, rate, eta)
	p.last, p.drawn = now, true
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}
