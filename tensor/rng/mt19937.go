package rng

// mtN and mtM are the Mersenne Twister state size and shift (MT19937).
const (
	mtN         = 624
	mtM         = 397
	mtMatrixA   = 0x9908b0df
	mtUpperMask = 0x80000000
	mtLowerMask = 0x7fffffff
)

// mt19937 is the 32-bit Mersenne Twister of Matsumoto and Nishimura (1998),
// with torch's (and C++'s std::mt19937's) seeding recurrence.
type mt19937 struct {
	state [mtN]uint32
	next  int // index of the next word of state to temper; mtN means regenerate
}

// seed initialises the state from the low 32 bits of s, as at::mt19937 does.
func (m *mt19937) seed(s uint64) {
	m.state[0] = uint32(s)
	for i := 1; i < mtN; i++ {
		prev := m.state[i-1]
		m.state[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	m.next = mtN
}

// twist regenerates the whole state block.
func (m *mt19937) twist() {
	s := &m.state
	mix := func(cur, next, far uint32) uint32 {
		y := cur&mtUpperMask | next&mtLowerMask
		return far ^ y>>1 ^ (-(y & 1) & mtMatrixA)
	}
	i := 0
	for ; i < mtN-mtM; i++ {
		s[i] = mix(s[i], s[i+1], s[i+mtM])
	}
	for ; i < mtN-1; i++ {
		s[i] = mix(s[i], s[i+1], s[i+mtM-mtN])
	}
	s[mtN-1] = mix(s[mtN-1], s[0], s[mtM-1])
	m.next = 0
}

// uint32 returns the next tempered output.
func (m *mt19937) uint32() uint32 {
	if m.next >= mtN {
		m.twist()
	}
	y := m.state[m.next]
	m.next++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}
