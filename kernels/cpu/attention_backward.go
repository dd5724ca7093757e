package cpu

import (
	"math"
	"sync"
)

// Attention backward without the Sq x Sk probability matrix (FlashAttention-2's
// recomputation, Dao 2023, arranged for the CPU as the forward in attention.go).
//
// The forward saves the log-sum-exp of each query's scaled scores (lse,
// AttentionWithLSE). The backward first computes Dv_i = rowsum(dO_i * O_i) for
// every query in one pass along the rows of do and o, then recomputes the
// probabilities of one tile of tq queries at a time, in the transposed layout
// of the forward (one column per query, so that every product reads its
// operands in layouts the Gemm packs well and the softmax runs along
// contiguous rows):
//
//	S^T  [Sk, tq] = scale * K Q_t^T                 (K packed once per task)
//	P^T           = exp(S^T - lse[col])            (vectorised exp; 0 where masked)
//	dV  [Sk, D]  += P^T dO_t                        (or dV^T += dO_t^T P, see below)
//	dP^T [Sk, tq] = V dO_t^T                        (V packed once per task)
//	dS^T          = P^T * (dP^T - Dv[col])         (vectorised)
//	dQ_t^T [D, tq] = scale * K^T dS^T               (K^T packed once per task; written transposed)
//	dK  [Sk, D]  += scale * dS^T Q_t                (or dK^T += scale * Q_t^T dS)
//
// Five products against the forward's two. dK and dV accumulate in their own
// layout when D is a multiple of the micro-kernel's panel width (64, 160, 512
// with AVX-512), else transposed ([D, Sk]: products with D rows waste less of
// the micro-tiles at D = 40 or 80) and are transposed at the end. The memory
// is O(Sk x tq) per goroutine (two score tiles) plus the packed K, V, K^T and
// the dK, dV accumulators of one head (5*Sk*D), never Sq x Sk.
//
// A task is a group of consecutive query tiles of one (batch, head); it owns
// the dQ rows of its tiles. With one group per head (enough heads to keep
// every goroutine busy) the task owns its head's dK and dV too (accumulating
// straight into dk and dv in their own layout); otherwise each task
// accumulates into its own partial dK, dV and a second parallel pass sums the
// partials of every head into dk and dv (memory bounded by
// attnBwdPartialFloats).

const (
	attnBwdScratchFloats = 1 << 18 // target size of each of the two score tiles per goroutine (floats)
	attnBwdPartialFloats = 1 << 25 // bound on the partial dK^T, dV^T of all tasks (floats)
)

// attnBwdTaskBufs and attnBwdPartialBufs hold the per-task scratch and the
// partial sums of the backward (a *[]float32 each), apart from the forward's
// attnScratch so that alternating forward and backward passes reuse their
// buffers.
var attnBwdTaskBufs, attnBwdPartialBufs sync.Pool

// attnBwdGet returns a buffer of n floats from pool (its contents undefined).
func attnBwdGet(pool *sync.Pool, n int) *[]float32 {
	if b, ok := pool.Get().(*[]float32); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]float32, n)
	return &b
}

// AttentionWithLSE is Attention that also stores in lse [B, H, Sq] the
// log-sum-exp of each query's scaled scores over the keys it sees
// (lse[(b*H+h)*Sq+i]; -Inf for a query that sees no key), the statistic
// AttentionBackward recomputes the probabilities from (see
// AttentionWithLSERef). The outputs o are those of Attention bit for bit.
func AttentionWithLSE(p AttnParams, q, k, v, o, lse []float32) {
	if p.B > 0 && p.H > 0 && p.Sq > 0 && len(lse) < p.B*p.H*p.Sq {
		panic("cpu: AttentionWithLSE: lse shorter than B*H*Sq")
	}
	if lse == nil {
		lse = []float32{} // not nil: attention stores the statistics when lse != nil
	}
	attention(p, q, k, v, o, lse)
}

// attnFillLSE sets lse[:n] to -Inf (the log-sum-exp over no key); a nil lse is
// left alone.
func attnFillLSE(lse []float32, n int) {
	if lse == nil {
		return
	}
	inf := float32(math.Inf(-1))
	for i := range lse[:n] {
		lse[i] = inf
	}
}

// attnTileLSE sets lse[r] = mx[r] + log(sum[r]) for the rows queries of a tile
// starting at query i0 (-Inf for a query that sees no key).
func attnTileLSE(lse, mx, sum []float32, rows int, visible func(int) int, i0 int) {
	for r := 0; r < rows; r++ {
		if visible(i0+r) == 0 {
			lse[r] = float32(math.Inf(-1))
			continue
		}
		lse[r] = mx[r] + float32(math.Log(float64(sum[r])))
	}
}

// attnBwdTileRows returns the query tile height of the backward for p: score
// tiles of about attnBwdScratchFloats, but at least D queries, so that the
// products accumulating dK and dV (over the tile's queries) do at least 2*D
// flops per element of the accumulators they read and write (at D = 512 the
// accumulators of a head do not fit in the caches: with 64-query tiles at
// Sk = 4096 the backward ran at 140 to 170 GFLOP/s on 2 cores, with
// 512-query tiles at 185 to 190).
func attnBwdTileRows(p AttnParams) int {
	tq := max(attnBwdScratchFloats/max(p.Sk, 1), p.D)
	tq = min(max(tq, attnMinRows), attnMaxRows, max(p.Sq, 1))
	nt := (p.Sq + tq - 1) / tq
	return (p.Sq + nt - 1) / nt
}

// attnBwdGroups returns the number of query-tile groups per (batch, head) for
// nt tiles: one when the heads alone keep every goroutine busy, else enough
// for about two tasks per goroutine within the partial-sum budget.
func attnBwdGroups(p AttnParams, nt int) int {
	bh, t := p.B*p.H, Threads()
	if bh >= 2*t || bh >= t && bh%t == 0 {
		return 1
	}
	g := min(nt, (2*t+bh-1)/bh)
	part := 2 * p.D * p.Sk
	g = max(1, min(g, attnBwdPartialFloats/max(1, bh*part)))
	per := (nt + g - 1) / g
	return (nt + per - 1) / per
}

// attnBwdScratch is the per-task scratch of the backward: its float count and
// the offsets of its parts (each 16-float aligned).
type attnBwdScratch struct {
	kp, vp, ktp, st, dpt, dqT, lm, sums, dvec, acc, n int
}

// attnBwdLayout lays out the scratch of a task whose tiles see at most nkMax
// keys, with the packed K, V, K^T when ownPacks and the dK^T, dV^T
// accumulators when ownAcc.
func attnBwdLayout(p AttnParams, nkMax, tq int, ownPacks, ownAcc bool) attnBwdScratch {
	ld := attnLd(tq)
	var s attnBwdScratch
	add := func(n int) int {
		o := s.n
		s.n += (n + 15) &^ 15
		return o
	}
	if ownPacks {
		s.kp, s.vp, s.ktp = attnBwdPackLayout(p, nkMax, add)
	}
	s.st = add(nkMax * ld)
	s.dpt = add(nkMax * ld)
	s.dqT = add(p.D * tq)
	s.lm = add(ld)
	s.sums = add(ld)
	s.dvec = add(ld)
	s.acc = s.n
	if ownAcc {
		add(2 * p.D * p.Sk)
	}
	return s
}

// attnBwdPackLayout places the packed K, V [nk, D] and K^T [D, nk] with add.
func attnBwdPackLayout(p AttnParams, nk int, add func(int) int) (kp, vp, ktp int) {
	return add(PackedAFloats(nk, p.D)), add(PackedAFloats(nk, p.D)), add(PackedAFloats(p.D, nk))
}

// AttentionBackwardScratchFloats returns the number of float32 scratch elements
// AttentionBackward uses per goroutine for p (packed K, V and K^T of a head,
// two score tiles, vectors, and the dK^T and dV^T accumulators when they are
// transposed), for memory reports. The Gemm packing buffers come on top, and
// so do rowsum(dO * O) (B*H*Sq floats) and, when there are few heads, partial
// sums of dK and dV (at most 4*attnBwdPartialFloats bytes in all).
func AttentionBackwardScratchFloats(p AttnParams) int {
	return attnBwdLayout(p, p.Sk, attnBwdTileRows(p), true, p.D%pickKernel().nr != 0).n
}

func attnBwdCheck(p AttnParams, do, q, k, v, o, lse, dq, dk, dv []float32) (qs, ks, vs, os int) {
	qs, ks, vs, os = attnCheck(p, q, k, v, o)
	hd := p.H * p.D
	need := func(s, seq int) int {
		if p.B == 0 || seq == 0 || p.H == 0 {
			return 0
		}
		return (p.B*seq-1)*s + hd
	}
	if len(do) < need(os, p.Sq) || len(dq) < need(qs, p.Sq) {
		panic("cpu: AttentionBackward: do or dq shorter than B*Sq rows")
	}
	if len(dk) < need(ks, p.Sk) || len(dv) < need(vs, p.Sk) {
		panic("cpu: AttentionBackward: dk or dv shorter than B*Sk rows")
	}
	if len(lse) < p.B*p.H*p.Sq {
		panic("cpu: AttentionBackward: lse shorter than B*H*Sq")
	}
	return
}

// AttentionBackward computes the gradients dq, dk, dv of attention (see
// AttentionBackwardRef) from do, the gradient of its output, the operands q,
// k, v, and the output o and log-sum-exp lse [B, H, Sq] saved by
// AttentionWithLSE. dq is laid out like q (row stride QStride), dk like k, dv
// like v, do like o; the H*D columns of each row are overwritten and the rest
// of the rows left alone. Memory is O(Sk x tile) per goroutine: no Sq x Sk
// matrix is formed. The outputs must not overlap the inputs or each other.
func AttentionBackward(p AttnParams, do, q, k, v, o, lse, dq, dk, dv []float32) {
	qs, ks, vs, os := attnBwdCheck(p, do, q, k, v, o, lse, dq, dk, dv)
	if p.B == 0 || p.H == 0 {
		return
	}
	D, Sk, Sq := p.D, p.Sk, p.Sq
	hd := p.H * D
	if Sq == 0 || Sk == 0 { // no products: the gradients are zero
		for i := 0; i < p.B*Sq; i++ {
			clear(dq[i*qs : i*qs+hd])
		}
		for j := 0; j < p.B*Sk; j++ {
			clear(dk[j*ks : j*ks+hd])
			clear(dv[j*vs : j*vs+hd])
		}
		return
	}
	tq := attnBwdTileRows(p)
	nt := (Sq + tq - 1) / tq
	groups := attnBwdGroups(p, nt)
	per := (nt + groups - 1) / groups
	visible := func(i int) int {
		if !p.Causal {
			return Sk
		}
		return max(0, min(Sk, i+Sk-Sq+1))
	}
	// dK and dV accumulate in their natural layout [Sk, D] (straight into dk
	// and dv with one group per head) when D is a multiple of the
	// micro-kernel's panel width; else as dK^T and dV^T [D, Sk] (the products
	// then have D rows, which waste less of the micro-tiles at D = 40 or 80:
	// with 32-wide panels, 40 columns take 64), transposed at the end.
	//
	// With several groups per head, each task accumulates into its own
	// partial dK, dV, and the groups share the head's packed K, V and K^T,
	// packed first (at D = 512 and Sk = 1024, packing them per task took a
	// fifth of the time).
	natural := D%pickKernel().nr == 0
	part := 2 * D * Sk // dK then dV (or their transposes)
	var packN int
	addPack := func(n int) int {
		o := packN
		packN += (n + 15) &^ 15
		return o
	}
	pk, pv, pkt := attnBwdPackLayout(p, Sk, addPack)
	nd, npart, npack := (p.B*p.H*Sq+15)&^15, 0, 0
	if groups > 1 {
		npart, npack = p.B*p.H*groups*part, p.B*p.H*packN
	}
	gbuf := attnBwdGet(&attnBwdPartialBufs, nd+npart+npack)
	defer attnBwdPartialBufs.Put(gbuf)
	dall, partial, packs := (*gbuf)[:nd], (*gbuf)[nd:nd+npart], (*gbuf)[nd+npart:]
	// Dv_i = rowsum(dO_i * O_i) for every (batch, head, query), first, in one
	// pass along the rows of do and o (in the tiles, the dot products of
	// rows of one head, 4*H*D bytes apart, ran at memory latency).
	ParallelFor(p.B*Sq, max(1, (1<<14)/hd), func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			b, i := r/Sq, r%Sq
			for h := 0; h < p.H; h++ {
				dall[(b*p.H+h)*Sq+i] = attnDot(do[r*os+h*D:r*os+h*D+D], o[r*os+h*D:r*os+h*D+D])
			}
		}
	})
	var shared [][3]PackedA // per head: K, V, K^T
	if groups > 1 {
		shared = make([][3]PackedA, p.B*p.H)
		ParallelTasks(p.B*p.H*3, func(i int) {
			bh, which := i/3, i%3
			b, h := bh/p.H, bh%p.H
			ps := packs[bh*packN : (bh+1)*packN]
			switch which {
			case 0:
				shared[bh][0] = PackASerial(ps[pk:], Sk, D, F32Mat(k[b*Sk*ks+h*D:], ks, false))
			case 1:
				shared[bh][1] = PackASerial(ps[pv:], Sk, D, F32Mat(v[b*Sk*vs+h*D:], vs, false))
			default:
				shared[bh][2] = PackASerial(ps[pkt:], D, Sk, F32Mat(k[b*Sk*ks+h*D:], ks, true))
			}
		})
	}
	ParallelTasks(p.B*p.H*groups, func(task int) {
		bh := task / groups
		b, h := bh/p.H, bh%p.H
		t0 := task % groups * per
		t1 := min(t0+per, nt)
		nkMax := visible(min(t1*tq, Sq) - 1)
		direct := groups == 1 && natural // accumulate straight into dk and dv
		lay := attnBwdLayout(p, nkMax, tq, groups == 1, groups == 1 && !natural)
		buf := attnBwdGet(&attnBwdTaskBufs, lay.n)
		defer attnBwdTaskBufs.Put(buf)
		s := *buf
		var acc []float32
		ac := attnBwdAcc{natural: natural}
		switch {
		case direct:
			for j := 0; j < Sk; j++ {
				clear(dk[(b*Sk+j)*ks+h*D : (b*Sk+j)*ks+h*D+D])
				clear(dv[(b*Sk+j)*vs+h*D : (b*Sk+j)*vs+h*D+D])
			}
			ac.dk, ac.ldk, ac.dv, ac.ldv = dk[b*Sk*ks+h*D:], ks, dv[b*Sk*vs+h*D:], vs
		case groups == 1:
			acc = s[lay.acc : lay.acc+part]
		default:
			acc = partial[task*part : (task+1)*part]
		}
		if !direct {
			clear(acc)
			ac.dk, ac.dv = acc[:D*Sk], acc[D*Sk:]
			ac.ldk, ac.ldv = Sk, Sk // dK^T, dV^T [D, Sk]
			if natural {
				ac.ldk, ac.ldv = D, D // dK, dV [Sk, D]
			}
		}
		kb := k[b*Sk*ks+h*D:]
		vb := v[b*Sk*vs+h*D:]
		km := F32Mat(kb, ks, true) // K^T [D, Sk]
		var kp, vp, ktp PackedA
		switch {
		case groups > 1: // shared, for all Sk keys (the products use their first rows)
			kp, vp, ktp = shared[bh][0], shared[bh][1], shared[bh][2]
		case nkMax > 0:
			kp = PackASerial(s[lay.kp:], nkMax, D, F32Mat(kb, ks, false))
			vp = PackASerial(s[lay.vp:], nkMax, D, F32Mat(vb, vs, false))
			ktp = PackASerial(s[lay.ktp:], D, nkMax, km)
		}
		ld := attnLd(tq)
		sc := attnBwdTileScratch{
			st: s[lay.st : lay.st+nkMax*ld], dpt: s[lay.dpt : lay.dpt+nkMax*ld], dqT: s[lay.dqT : lay.dqT+D*tq],
			lm: s[lay.lm : lay.lm+ld], sums: s[lay.sums : lay.sums+ld], dvec: s[lay.dvec : lay.dvec+ld],
		}
		for t := t0; t < t1; t++ {
			i0 := t * tq
			rows := min(tq, Sq-i0)
			row := b*Sq + i0
			attnBwdTile(p, visible, i0, rows, kp, vp, ktp, km,
				q[row*qs+h*D:], qs, do[row*os+h*D:], os, lse[bh*Sq+i0:bh*Sq+i0+rows], dall[bh*Sq+i0:bh*Sq+i0+rows],
				dq[row*qs+h*D:], &ac, &sc)
		}
		if groups == 1 && !natural {
			for t0 := 0; t0 < D; t0 += 16 {
				attnBwdWriteKV(acc, 1, D, Sk, 0, t0, dk[b*Sk*ks+h*D:], ks)
				attnBwdWriteKV(acc, 1, D, Sk, 1, t0, dv[b*Sk*vs+h*D:], vs)
			}
		}
	})
	if groups == 1 {
		return
	}
	if natural { // sum the partials of each head into dk and dv, by blocks of keys
		const keys = 64
		blocks := (Sk + keys - 1) / keys
		ParallelTasks(p.B*p.H*blocks, func(i int) {
			bh, j0 := i/blocks, i%blocks*keys
			b, h := bh/p.H, bh%p.H
			pb := partial[bh*groups*part : (bh+1)*groups*part]
			for j := j0; j < min(j0+keys, Sk); j++ {
				for m, out := range [2][]float32{dk[(b*Sk+j)*ks+h*D:][:D], dv[(b*Sk+j)*vs+h*D:][:D]} {
					o := m*Sk*D + j*D
					copy(out, pb[o:o+D])
					for g := 1; g < groups; g++ {
						convAddTo(out, pb[g*part+o:g*part+o+D])
					}
				}
			}
		})
		return
	}
	// Sum the partials of each head into dk and dv, by blocks of 16 rows of
	// dK^T and dV^T.
	blocks := (D + 15) / 16
	ParallelTasks(p.B*p.H*2*blocks, func(i int) {
		bh, m, blk := i/(2*blocks), i/blocks%2, i%blocks
		b, h := bh/p.H, bh%p.H
		out, st := dk[b*Sk*ks+h*D:], ks
		if m == 1 {
			out, st = dv[b*Sk*vs+h*D:], vs
		}
		attnBwdWriteKV(partial[bh*groups*part:(bh+1)*groups*part], groups, D, Sk, m, blk*16, out, st)
	})
}

// attnBwdWriteKV writes rows [t0, t0+16) (or up to D) of the sum of n
// partials of one head into the rows of out: each partial in acc is dK^T
// [D, Sk] then dV^T [D, Sk] (partials 2*D*Sk floats apart), m selects which,
// and out[j*st+t] (starting at the head's first column of dk or dv) gets the
// sum's element (t, j). The partials' rows are added into the first
// partial's (contiguous vector adds), then transposed by 16 x 16 tiles, so
// that every cache line is read and written once (row by row, the rows are
// Sk floats apart: at Sk = 1024 all in the same cache set).
func attnBwdWriteKV(acc []float32, n, D, Sk, m, t0 int, out []float32, st int) {
	part := 2 * D * Sk
	nt := min(16, D-t0)
	base := m*D*Sk + t0*Sk
	for g := 1; g < n; g++ {
		convAddTo(acc[base:base+nt*Sk], acc[g*part+base:g*part+base+nt*Sk])
	}
	var tile [16][16]float32
	for jb := 0; jb < Sk; jb += 16 {
		nj := min(16, Sk-jb)
		for i := 0; i < nt; i++ {
			copy(tile[i][:nj], acc[base+i*Sk+jb:base+i*Sk+jb+nj])
		}
		for j := 0; j < nj; j++ {
			dst := out[(jb+j)*st+t0 : (jb+j)*st+t0+nt]
			for i := range dst {
				dst[i] = tile[i][j]
			}
		}
	}
}

// attnBwdTileScratch holds the scratch of one backward tile: the score tiles
// P^T and dP^T/dS^T [nk, ld], dQ^T [D, rows], and vectors of ld.
type attnBwdTileScratch struct {
	st, dpt, dqT, lm, sums, dvec []float32
}

// attnBwdAcc is where a task accumulates the dK and dV of its head: in their
// natural layout [Sk, D] (row strides ldk, ldv) or as dK^T and dV^T [D, Sk].
type attnBwdAcc struct {
	dk, dv   []float32
	ldk, ldv int
	natural  bool
}

// attnBwdTile runs the backward of queries [i0, i0+rows) of one head: q, do
// and dq start at the tile's first row (row strides qs, os, qs), lse and dd
// (the queries' rowsum(dO * O)) at its first query; kp, vp are K and V
// [nkMax, D] and ktp is K^T [D, nkMax] of the head packed (ktp used only when
// it holds exactly the keys the tile sees, else K^T is read from km); the
// tile's contributions to dK and dV are added into ac.
func attnBwdTile(p AttnParams, visible func(int) int, i0, rows int, kp, vp, ktp PackedA, km Mat,
	q []float32, qs int, do []float32, os int, lse, dd, dq []float32, ac *attnBwdAcc, sc *attnBwdTileScratch) {
	D, Sk := p.D, p.Sk
	nk := visible(i0 + rows - 1)
	if nk == 0 {
		for r := 0; r < rows; r++ {
			clear(dq[r*qs : r*qs+D])
		}
		return
	}
	ld := attnLd(rows)
	st, dpt := sc.st[:nk*ld], sc.dpt[:nk*ld]
	lm, dvec := sc.lm[:ld], sc.dvec[:ld]
	if rows < ld {
		// Columns past the tile are never written by the products; keep them finite.
		for j := 0; j < nk; j++ {
			clear(st[j*ld+rows : (j+1)*ld])
			clear(dpt[j*ld+rows : (j+1)*ld])
		}
	}
	// S^T = scale K Q^T, then P^T = exp(S^T - lse) with the masked scores zeroed.
	GemmPackedSerial(nk, rows, D, p.Scale, kp, F32Mat(q, qs, true), 0, st, ld)
	clear(lm[rows:])
	for c, l := range lse[:rows] {
		if math.IsInf(float64(l), -1) { // no visible key: the column is masked out below
			l = 0
		}
		lm[c] = l
	}
	attnExpCols(st, ld, lm, sc.sums[:ld])
	first := visible(i0) // keys below this are visible to every column
	for j := first; j < nk; j++ {
		last := min(j-(i0+Sk-p.Sq+1), rows-1)
		clear(st[j*ld : j*ld+max(last+1, 0)])
	}
	// dV += P^T dO (or dV^T += dO^T P).
	if ac.natural {
		GemmSerial(nk, D, rows, 1, F32Mat(st, ld, false), F32Mat(do, os, false), 1, ac.dv, ac.ldv)
	} else {
		GemmSerial(D, nk, rows, 1, F32Mat(do, os, true), F32Mat(st, ld, true), 1, ac.dv, ac.ldv)
	}
	// dP^T = V dO^T; dS^T = P^T (dP^T - Dv).
	GemmPackedSerial(nk, rows, D, 1, vp, F32Mat(do, os, true), 0, dpt, ld)
	copy(dvec, dd[:rows])
	clear(dvec[rows:])
	attnBwdDS(st, dpt, ld, dvec)
	// dQ^T = scale K^T dS^T, written transposed into dq.
	dqT := sc.dqT[:D*rows]
	if nk == ktp.K() {
		GemmPackedSerial(D, rows, nk, p.Scale, ktp, F32Mat(dpt, ld, false), 0, dqT, rows)
	} else { // causal: fewer keys than the packed K^T holds
		GemmSerial(D, rows, nk, p.Scale, km, F32Mat(dpt, ld, false), 0, dqT, rows)
	}
	for r0 := 0; r0 < rows; r0 += 8 {
		r1 := min(r0+8, rows)
		for t := 0; t < D; t++ {
			for i, x := range dqT[t*rows+r0 : t*rows+r1] {
				dq[(r0+i)*qs+t] = x
			}
		}
	}
	// dK += scale dS^T Q (or dK^T += scale Q^T dS).
	if ac.natural {
		GemmSerial(nk, D, rows, p.Scale, F32Mat(dpt, ld, false), F32Mat(q, qs, false), 1, ac.dk, ac.ldk)
	} else {
		GemmSerial(D, nk, rows, p.Scale, F32Mat(q, qs, true), F32Mat(dpt, ld, true), 1, ac.dk, ac.ldk)
	}
}

// attnDot returns the dot product of a and b (equal lengths), in float32 over
// four partial sums.
func attnDot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// attnBwdDS sets dp[j*ld+c] = pt[j*ld+c] * (dp[j*ld+c] - dv[c]) over the rows
// of pt and dp [rows, ld] (len(dv) == ld, a multiple of 16).
func attnBwdDS(pt, dp []float32, ld int, dv []float32) {
	if attnBwdDSAsm(pt, dp, ld, dv) {
		return
	}
	dv = dv[:ld]
	for j := 0; j+ld <= len(dp); j += ld {
		pr := pt[j : j+ld : j+ld]
		dr := dp[j : j+ld : j+ld]
		for c := 0; c+4 <= ld; c += 4 {
			d := dr[c : c+4 : c+4]
			s := pr[c : c+4 : c+4]
			m := dv[c : c+4 : c+4]
			d[0] = s[0] * (d[0] - m[0])
			d[1] = s[1] * (d[1] - m[1])
			d[2] = s[2] * (d[2] - m[2])
			d[3] = s[3] * (d[3] - m[3])
		}
	}
}
