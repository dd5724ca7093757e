//go:build cuda

package tensor

import "testing"

// These tests run on a machine with an NVIDIA GPU (scripts/gpu-check.sh runs
// them as -test.run '^TestCUDA'): the same cases as the simulated device,
// now through kernels/cuda.

func openCUDA(t *testing.T, dt DType) Device {
	t.Helper()
	d, err := Open("cuda:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := SetComputeDType(d, dt); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: %s", d, DeviceName(d))
	return d
}

func TestCUDAMatchesCPU(t *testing.T) {
	for _, dt := range []DType{F32, F16, BF16} {
		runAccelCases(t, openCUDA(t, dt), dt)
	}
}

func TestCUDATransfers(t *testing.T) { checkTransfers(t, openCUDA(t, F16)) }

func TestCUDAMemory(t *testing.T) {
	dev := openCUDA(t, F16)
	checkMemory(t, dev)
	if err := Synchronize(dev); err != nil {
		t.Fatal(err)
	}
	m := DeviceMemory(dev)
	t.Logf("device memory: %d in use, %d cached, %d total", m.InUse, m.Cached, m.Total)
}

// TestCUDAGrads runs every backward rule (gradCases) on the CUDA device
// against the CPU, as TestGradAccelMatchesCPU does on the simulated device.
func TestCUDAGrads(t *testing.T) {
	for _, dt := range []DType{F32, F16, BF16} {
		dev := openCUDA(t, dt)
		t.Run(dt.String(), func(t *testing.T) { checkGradsOn(t, dev, dt) })
	}
}
