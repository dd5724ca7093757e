package cpu

import "math"

func fromBits(b uint32) float32 { return math.Float32frombits(b) }
func toBits(f float32) uint32   { return math.Float32bits(f) }
