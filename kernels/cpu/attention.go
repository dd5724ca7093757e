package cpu

import (
	"math"
	"sync"
)

// Attention without the Sq x Sk score matrix.
//
// The queries of each (batch, head) are cut into tiles of tq rows. A tile works on
// the transposed scores, one column per query, so that both products read their
// operands in the layouts the Gemm packs fastest and the softmax runs along
// contiguous rows:
//
//	S^T [Sk, tq] = scale * K Q_tile^T            (GemmSerial; Q read transposed in place)
//	P^T          = exp(S^T - colmax(S^T))        (vectorised exp; column sums kept)
//	O^T [D, tq]  = V^T P^T                        (GemmSerial; V read transposed)
//	O_tile       = (O^T)^T / colsum               (written into o)
//
// A task is a group of consecutive tiles of one (batch, head) (enough groups to
// keep every goroutine busy); it first packs K [Sk, D] and V^T [D, Sk] of its
// head, the A operands of the two products (PackASerial), once for all its
// tiles, which then only pack their Q^T and P^T (with a causal mask, tiles that
// see fewer keys than the last one read V^T unpacked). The scratch is then
// about 2*Sk*D floats for packed K and V^T plus S^T, O^T and a few vectors,
// about tq*(Sk+D), with tq chosen so that S^T stays near attnScratchFloats
// (2 MiB; 128 queries at Sk = 4096). With a causal mask, a tile only computes the keys its last query may
// see; the scores of earlier queries beyond their limit are masked before the max
// and zeroed after the exp.

const (
	attnScratchFloats = 1 << 19 // target size of the score tile per goroutine (floats)
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

// attnLd returns the row length of the score tile for tq queries (a multiple of 16).
func attnLd(tq int) int { return (tq + 15) &^ 15 }

// AttentionScratchFloats returns the number of float32 scratch elements Attention
// uses per goroutine for p (packed K and V^T of a head, score tile, output tile
// and column vectors), for memory reports. The Gemm packing buffers of Q^T and
// P^T come on top.
func AttentionScratchFloats(p AttnParams) int {
	tq := attnTileRows(p)
	ld := attnLd(tq)
	return (PackedAFloats(p.Sk, p.D)+PackedAFloats(p.D, p.Sk)+15)&^15 + ld*p.Sk + p.D*tq + 2*ld
}

func attnCheck(p AttnParams, q, k, v, o []float32) (qs, ks, vs, os int) {
	if p.B < 0 || p.H < 0 || p.Sq < 0 || p.Sk < 0 || p.D < 1 {
		panic("cpu: Attention: negative size or D < 1 in AttnParams")
	}
	qs, ks, vs, os = p.Strides()
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
	attention(p, q, k, v, o, nil)
}

// attention is Attention, storing the log-sum-exp of each query's scores in
// lse [B, H, Sq] when lse is not nil (AttentionWithLSE).
func attention(p AttnParams, q, k, v, o, lse []float32) {
	qs, ks, vs, os := attnCheck(p, q, k, v, o)
	if p.B == 0 || p.H == 0 || p.Sq == 0 {
		return
	}
	D := p.D
	if p.Sk == 0 {
		for i := 0; i < p.B*p.Sq; i++ {
			clear(o[i*os : i*os+p.H*D])
		}
		attnFillLSE(lse, p.B*p.H*p.Sq)
		return
	}
	tq := attnTileRows(p)
	nt := (p.Sq + tq - 1) / tq
	// Tasks are groups of consecutive tiles of one (batch, head); each packs K
	// and V^T of its head once for all its tiles.
	groups := min(nt, max(1, (2*Threads()+p.B*p.H-1)/(p.B*p.H)))
	per := (nt + groups - 1) / groups
	groups = (nt + per - 1) / per
	// Keys visible to query i: [0, n_i), n_i = min(Sk, i+Sk-Sq+1) when causal.
	visible := func(i int) int {
		if !p.Causal {
			return p.Sk
		}
		return max(0, min(p.Sk, i+p.Sk-p.Sq+1))
	}
	Sk := p.Sk
	ld := attnLd(tq)
	ParallelTasks(p.B*p.H*groups, func(task int) {
		b := task / (p.H * groups)
		h := task / groups % p.H
		t0 := task % groups * per
		t1 := min(t0+per, nt)
		nkMax := visible(min(t1*tq, p.Sq) - 1)
		nK, nV := PackedAFloats(nkMax, D), PackedAFloats(D, nkMax)
		nKV := (nK + nV + 15) &^ 15 // keep the rest 64-byte aligned
		buf := attnGetScratch(nKV + Sk*ld + D*tq + 2*ld)
		rest := (*buf)[nKV:]
		mx, sum, rest := rest[:ld], rest[ld:2*ld], rest[2*ld:]
		ot, st := rest[:D*tq], rest[D*tq:]
		kb := k[b*Sk*ks+h*D:]
		vb := v[b*Sk*vs+h*D:]
		// K [nkMax, D] and V^T [D, nkMax] of the head, packed once for all the
		// tiles: the A operands of S^T = K Q^T and O^T = V^T P^T.
		kp := PackASerial((*buf)[:nK], nkMax, D, F32Mat(kb, ks, false))
		vm := F32Mat(vb, vs, true)
		vp := PackASerial((*buf)[nK:nK+nV], D, nkMax, vm)
		for t := t0; t < t1; t++ {
			i0 := t * tq
			rows := min(tq, p.Sq-i0)
			var lt []float32
			if lse != nil {
				lt = lse[(b*p.H+h)*p.Sq+i0:][:rows]
			}
			attnTile(p, visible, i0, rows, kp, vp, vm, q[b*p.Sq*qs+i0*qs+h*D:], qs, o[b*p.Sq*os+i0*os+h*D:], os,
				st, ot, mx, sum, lt)
		}
		attnScratch.Put(buf)
	})
}

// attnTile computes the outputs of queries [i0, i0+rows) of one head: q and o start
// at the tile's first row (row strides qs, os); kp is K and vp is V^T of the
// head packed (for at least the keys the tile sees; vp is used only when it
// holds exactly those, else V^T is read from vm); st, ot, mx and sum are scratch.
// When lse is not nil, the log-sum-exp of the scores of query i0+r goes to lse[r].
func attnTile(p AttnParams, visible func(int) int, i0, rows int, kp, vp PackedA, vm Mat, q []float32, qs int, o []float32, os int,
	st, ot, mx, sum, lse []float32) {
	D, Sk := p.D, p.Sk
	nk := visible(i0 + rows - 1)
	if nk == 0 {
		for r := 0; r < rows; r++ {
			clear(o[r*os : r*os+D])
		}
		attnFillLSE(lse, rows)
		return
	}
	ld := attnLd(rows)
	st = st[:nk*ld] // S^T, then P^T: [nk, ld]
	ot = ot[:D*rows]
	mx, sum = mx[:ld], sum[:ld]
	if rows < ld {
		// Columns past the tile are never written by the product; keep them finite.
		for j := 0; j < nk; j++ {
			clear(st[j*ld+rows : (j+1)*ld])
		}
	}
	GemmPackedSerial(nk, rows, D, p.Scale, kp, F32Mat(q, qs, true), 0, st, ld)
	// Causal: key j is hidden from tile column c when j >= n_{i0+c}, i.e. for
	// c <= j - (i0 + Sk - Sq + 1).
	first := visible(i0) // keys below this are visible to every column
	negInf := float32(math.Inf(-1))
	for j := first; j < nk; j++ {
		last := min(j-(i0+Sk-p.Sq+1), rows-1)
		for c := 0; c <= last; c++ {
			st[j*ld+c] = negInf
		}
	}
	attnColMax(st, ld, mx)
	for c := range mx {
		if mx[c] == negInf { // no visible key (possible only when Sk < Sq)
			mx[c] = 0
		}
	}
	attnExpCols(st, ld, mx, sum)
	for j := first; j < nk; j++ {
		last := min(j-(i0+Sk-p.Sq+1), rows-1)
		clear(st[j*ld : j*ld+max(last+1, 0)])
	}
	if nk == vp.K() {
		GemmPackedSerial(D, rows, nk, 1, vp, F32Mat(st, ld, false), 0, ot, rows)
	} else { // causal: fewer keys than the packed V^T holds
		GemmSerial(D, rows, nk, 1, vm, F32Mat(st, ld, false), 0, ot, rows)
	}
	if lse != nil {
		attnTileLSE(lse, mx, sum, rows, visible, i0)
	}
	// o[r, :] = O^T[:, r] / sum[r], 8 queries at a time so that both sides stay in L1.
	for r := 0; r < rows; r++ {
		if visible(i0+r) == 0 {
			sum[r] = 0
		} else {
			sum[r] = 1 / sum[r]
		}
	}
	for r0 := 0; r0 < rows; r0 += 8 {
		r1 := min(r0+8, rows)
		inv := sum[r0:r1]
		for t := 0; t < D; t++ {
			src := ot[t*rows+r0 : t*rows+r1]
			for i, x := range src {
				o[(r0+i)*os+t] = x * inv[i]
			}
		}
	}
}

// attnColMax sets m[c] to the largest x[j*ld+c] over the rows j of x [rows, ld]
// (len(m) == ld, a multiple of 16; at least one row).
func attnColMax(x []float32, ld int, m []float32) {
	if attnUseAVX2 {
		if attnUseAVX512 {
			attnColMaxAVX512(x, ld, m)
		} else {
			attnColMaxAVX2(x, ld, m)
		}
		return
	}
	copy(m, x[:ld])
	for j := ld; j < len(x); j += ld {
		row := x[j : j+ld]
		for c, v := range row {
			m[c] = max(m[c], v)
		}
	}
}

// attnExpCols replaces x[j*ld+c] by exp(x[j*ld+c]-m[c]) over x [rows, ld] and sets
// s[c] to the column sums of the results (len(m) == len(s) == ld, a multiple of 16).
func attnExpCols(x []float32, ld int, m, s []float32) {
	if attnUseAVX2 {
		if attnUseAVX512 {
			attnExpColsAVX512(x, ld, m, s)
		} else {
			attnExpColsAVX2(x, ld, m, s)
		}
		return
	}
	clear(s)
	for j := 0; j < len(x); j += ld {
		row := x[j : j+ld]
		for c, v := range row {
			e := expf(v - m[c])
			row[c] = e
			s[c] += e
		}
	}
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
