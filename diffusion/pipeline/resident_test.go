package pipeline

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGenerateDropsResidentWeights checks that generations that drop the
// mapped weights between phases (the default; the second run faults them
// back) and one that keeps them resident give the same latents and image bit
// for bit.
func TestGenerateDropsResidentWeights(t *testing.T) {
	p := loadGolden(t)
	lat1, pix1 := ddimFinal(t, p)
	lat2, pix2 := ddimFinal(t, p)
	requireBits(t, "second run's final latents", lat2, lat1)
	require.Equal(t, pix1, pix2, "second run's image")
	p.KeepWeightsResident = true
	defer func() { p.KeepWeightsResident = false }() // p is shared with other tests
	lat3, pix3 := ddimFinal(t, p)
	requireBits(t, "resident run's final latents", lat3, lat1)
	require.Equal(t, pix1, pix3, "resident run's image")
}
