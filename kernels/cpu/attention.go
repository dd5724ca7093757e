package cpu

import (
	"math"
	"sync"
)

// Attention without the Sq x Sk score matrix.
//
// The queries of each (batch, head) are cut into tiles of tq rows. For a tile,
//
//	S [tq, Sk]  = scale * Q_tile K^T          (GemmSerial, K read transposed in place)
//	P           = exp(S - rowmax(S))          (vectorised exp, row sums kept)
//	O_tile      = P V / rowsum                (GemmSerial straight into o, then a row scale)
//
// Only S is scratch, tq*Sk floats per goroutine, with tq chosen so that it stays near
// attnScratchFloats (1 MiB); (batch, head, tile) tasks are spread over the goroutines.
// With a causal mask, a tile only computes the keys its last row may see and the
// masked scores of earlier rows are zeroed after the exp.

const (
	attnScratchFloats = 1 << 18 // target scratch per goroutine (floats)
	attnMinRows       = 16      // smallest query tile
	attnMaxRows       = 512     // largest query tile
)

var attnScratch sync.Pool

func attnGetScratch(n int) *[]float32 {
	if b, ok := attnScratch.Get().(*[]float32); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]float32, n)
	return &b
}

// attnTileRows returns the query tile height for p.
func attnTileRows(p AttnParams) int {
	tq := attnScratchFloats / max(p.Sk, 1)
	tq = min(max(tq, attnMinRows), attnMaxRows, max(p.Sq, 1))
	// Balance the tiles, and make sure every goroutine has work.
	nt := (p.Sq + tq - 1) / tq
	for p.B*p.H*nt < 2*Threads() && (p.Sq+nt)/(nt+1) >= attnMinRows {
		nt++
	}
	return (p.Sq + nt - 1) / nt
}

// AttentionScratchFloats returns the number of float32 scratch elements Attention
// uses per goroutine for p (the score tile plus the row sums), for memory reports.
func AttentionScratchFloats(p AttnParams) int {
	tq := attnTileRows(p)
	return tq*p.Sk + tq
}

func attnCheck(p AttnParams, q, k, v, o []float32) (qs, ks, vs, os int) {
	if p.B < 0 || p.H < 0 || p.Sq < 0 || p.Sk < 0 || p.D < 1 {
		panic("cpu: Attention: negative size or D < 1 in AttnParams")
	}
	qs, ks, vs, os = p.strides()
	hd := p.H * p.D
	if qs < hd || ks < hd || vs < hd || os < hd {
		panic("cpu: Attention: row stride smaller than H*D")
	}
	need := func(s, seq int) int {
		if p.B == 0 || seq == 0 || p.H == 0 {
			return 0
		}
		return (p.B*seq-1)*s + hd
	}
	if len(q) < need(qs, p.Sq) || len(o) < need(os, p.Sq) {
		panic("cpu: Attention: q or o shorter than B*Sq rows")
	}
	if len(k) < need(ks, p.Sk) || len(v) < need(vs, p.Sk) {
		panic("cpu: Attention: k or v shorter than B*Sk rows")
	}
	return
}

// Attention computes multi-head scaled-dot-product attention (see AttentionRef)
// with memory O(Sk x tile) per goroutine: no Sq x Sk score matrix is formed.
// o must not overlap q, k or v.
func Attention(p AttnParams, q, k, v, o []float32) {
	qs, ks, vs, os := attnCheck(p, q, k, v, o)
	if p.B == 0 || p.H == 0 || p.Sq == 0 {
		return
	}
	D := p.D
	if p.Sk == 0 {
		for i := 0; i < p.B*p.Sq; i++ {
			clear(o[i*os : i*os+p.H*D])
		}
		return
	}
	tq := attnTileRows(p)
	nt := (p.Sq + tq - 1) / tq
	ParallelTasks(p.B*p.H*nt, func(task int) {
		b := task / (p.H * nt)
		h := task / nt % p.H
		i0 := task % nt * tq
		rows := min(tq, p.Sq-i0)
		// Keys visible to query row i: [0, n_i), n_i = min(Sk, i+Sk-Sq+1).
		visible := func(i int) int {
			if !p.Causal {
				return p.Sk
			}
			return max(0, min(p.Sk, i+p.Sk-p.Sq+1))
		}
		nk := visible(i0 + rows - 1)
		obase := b*p.Sq*os + i0*os + h*D
		if nk == 0 {
			for r := 0; r < rows; r++ {
				clear(o[obase+r*os : obase+r*os+D])
			}
			return
		}
		buf := attnGetScratch(rows*nk + rows)
		s := (*buf)[:rows*nk]
		inv := (*buf)[rows*nk : rows*nk+rows]
		qm := F32Mat(q[b*p.Sq*qs+i0*qs+h*D:], qs, false)
		km := F32Mat(k[b*p.Sk*ks+h*D:], ks, true)
		GemmSerial(rows, nk, D, p.Scale, qm, km, 0, s, nk)
		for r := 0; r < rows; r++ {
			row := s[r*nk : (r+1)*nk]
			n := visible(i0 + r)
			if n == 0 {
				clear(row)
				inv[r] = 0
				continue
			}
			mx := attnRowMax(row[:n])
			sum := attnExpSum(row[:n], mx)
			clear(row[n:])
			inv[r] = 1 / sum
		}
		vm := F32Mat(v[b*p.Sk*vs+h*D:], vs, false)
		GemmSerial(rows, D, nk, 1, F32Mat(s, nk, false), vm, 0, o[obase:], os)
		for r := 0; r < rows; r++ {
			orow := o[obase+r*os : obase+r*os+D]
			f := inv[r]
			for t := range orow {
				orow[t] *= f
			}
		}
		attnScratch.Put(buf)
	})
}

// attnRowMax returns the largest element of x (len(x) >= 1).
func attnRowMax(x []float32) float32 {
	if attnUseAVX2 && len(x) >= 32 {
		n := len(x) &^ 31
		m := attnMaxAVX2(x[:n])
		for _, v := range x[n:] {
			m = max(m, v)
		}
		return m
	}
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	return m
}

// attnExpSum replaces x[i] by exp(x[i]-sub) and returns the sum of the results.
func attnExpSum(x []float32, sub float32) float32 {
	var sum float32
	n := 0
	if attnUseAVX2 && len(x) >= 16 {
		n = len(x) &^ 15
		sum = attnExpSumAVX2(x[:n], sub)
	}
	for i := n; i < len(x); i++ {
		e := expf(x[i] - sub)
		x[i] = e
		sum += e
	}
	return sum
}

// Constants of the exp approximation: exp(x) = 2^n * exp(r), n = round(x*log2 e),
// r = x - n*ln 2 (ln 2 split into a short high part and a correction), exp(r) by a
// degree-6 minimax-style polynomial on [-ln2/2, ln2/2] (the Cephes expf
// coefficients), relative error about 1e-7. Inputs are clamped to
// [expLo, expHi] so that 2^n stays a normal float32.
const (
	expLog2e = 1.44269504088896341
	expLn2Hi = 0.693359375
	expLn2Lo = -2.12194440e-4
	expLo    = -87.0
	expHi    = 88.0
	expP0    = 1.9875691500e-4
	expP1    = 1.3981999507e-3
	expP2    = 8.3334519073e-3
	expP3    = 4.1665795894e-2
	expP4    = 1.6666665459e-1
	expP5    = 5.0000001201e-1
)

// expf is the scalar version of the vectorised exp (same formula).
func expf(x float32) float32 {
	if x != x {
		return x
	}
	x = min(max(x, expLo), expHi)
	fn := float32(math.RoundToEven(float64(x * expLog2e)))
	r := x - fn*expLn2Hi
	r -= fn * expLn2Lo
	p := float32(expP0)
	p = p*r + expP1
	p = p*r + expP2
	p = p*r + expP3
	p = p*r + expP4
	p = p*r + expP5
	y := p*r*r + r + 1
	return y * math.Float32frombits(uint32(int32(fn)+127)<<23)
}
