package tensor

import (
	"testing"
	"unsafe"
)

func TestFromBytesAliasAndCopy(t *testing.T) {
	// 1.0f = 0x3F800000, -2.0f = 0xC0000000 (little-endian bytes).
	raw := []byte{0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0}
	buf := make([]byte, 1+len(raw)+8)
	// Find an offset aligned for float32 and one that is not.
	base := uintptr(unsafe.Pointer(&buf[0]))
	al := int((4 - base%4) % 4)
	aligned := buf[al : al+len(raw)]
	copy(aligned, raw)
	x, err := fromBytes(F32, []int{2}, aligned, "keep")
	if err != nil {
		t.Fatal(err)
	}
	requireClose(t, "aligned", x.Float32s(), []float32{1, -2}, 0, 0)
	aligned[2], aligned[3] = 0, 0x40 // 2.0f = 0x40000000: the tensor aliases the bytes
	if x.At(0) != 2 {
		t.Fatal("aligned F32 bytes not aliased")
	}
	mis := buf[al+1 : al+1+len(raw)]
	copy(mis, raw)
	y, err := fromBytes(F32, []int{2, 1}, mis, nil)
	if err != nil {
		t.Fatal(err)
	}
	requireClose(t, "misaligned copy", y.Float32s(), []float32{1, -2}, 0, 0)
	mis[2], mis[3] = 0, 0x40
	if y.At(0, 0) != 1 {
		t.Fatal("misaligned bytes must be copied")
	}
	// Round trip through appendBytes for every dtype, including a strided view.
	src := FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3).T2()
	for _, dt := range []DType{F32, F16, BF16, I64} {
		v := src.To(dt)
		b := appendBytes(nil, v)
		back, err := fromBytes(dt, []int{3, 2}, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		requireClose(t, "bytes "+dt.String(), back.Float32s(), []float32{1, 4, 2, 5, 3, 6}, 0, 0)
	}
	if _, err := fromBytes(F16, []int{3}, make([]byte, 4), nil); err == nil {
		t.Fatal("size mismatch accepted")
	}
}
